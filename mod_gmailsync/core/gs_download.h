/* gs_download.h -- how a stored attachment is offered for download (issue 24): the headers that
 * make any name and type the sender chose safe to send to a browser. Pure APR, no httpd. */
#ifndef GS_DOWNLOAD_H
#define GS_DOWNLOAD_H

#include <apr_pools.h>

/* a name longer than this (bytes of UTF-8) is cut, at a character boundary */
#define GS_DOWNLOAD_NAME_MAX 255

/* The Content-Type for a stored MIME type (compared without case): the type itself when it is on
 * the list of types that carry no active content a browser would run in the site's origin (PDF,
 * images but SVG, audio, video, office documents, archives, text/plain, text/csv, text/calendar,
 * message/rfc822), else "application/octet-stream". Static text. */
const char *gs_download_type(const char *stored);

/* The Content-Disposition of a download named `name` (UTF-8 as stored; NULL or "" uses
 * `fallback`): "attachment; filename=\"ASCII\"" where each character that is not printable
 * ASCII, and each quote, backslash or slash, is '_'; and, when that changed anything,
 * "; filename*=UTF-8''..." with the name percent-encoded (RFC 6266 section 4.3, RFC 5987),
 * slashes and backslashes as '_'. Invalid UTF-8 becomes U+FFFD; the name is cut at
 * GS_DOWNLOAD_NAME_MAX bytes. The result is printable ASCII only. From p. */
const char *gs_download_disposition(apr_pool_t *p, const char *name, const char *fallback);

#endif /* GS_DOWNLOAD_H */
