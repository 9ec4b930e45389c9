/* mod_gmailsync_attachment.c -- an attachment's stored bytes (issue 24):
 *   GET|HEAD {prefix}/messages/{id}/attachments/{n}
 * n is the attachment's number in the message view (from 0, in the order of the MIME tree).
 * The bytes come from gmailsync.attachment_blobs (content-addressed per user), streamed in
 * slices like /raw. Always a download that no browser renders in the site's origin:
 * Content-Disposition: attachment (RFC 6266, filename* for a name that is not ASCII),
 * X-Content-Type-Options: nosniff, Content-Security-Policy: sandbox, and a Content-Type taken
 * from the stored type only when it is on a list of types that cannot carry active content
 * (else application/octet-stream). 404: another user's, an unknown or a malformed id ("no such
 * message", the same body as /raw's); an n the message does not have; an attachment whose bytes
 * were not stored (GmailSyncAttachments metadata, or over GmailSyncAttachmentMaxSize).
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_db.h"
#include "gs_gmail_parse.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_ATTACHMENTS_SEGMENT "/attachments/"
/* a file name longer than this (in bytes of UTF-8) is cut: it only names the download */
#define GS_FILENAME_MAX 255

/* Types a browser shows, if at all, as a document without scripts of ours to steal from: the
 * stored type is a claim of the message's sender, and text/html, image/svg+xml or XML would
 * run in the site's origin if a browser ever rendered them (nosniff, the disposition and the
 * sandbox say it must not; this list does not rely on it). */
static const char *const safe_types[] = {
    "application/pdf", "application/zip", "application/gzip", "application/x-7z-compressed",
    "application/x-tar", "application/msword", "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation", "application/rtf", "message/rfc822",
    "text/plain", "text/csv", "text/calendar", "image/png", "image/jpeg", "image/gif",
    "image/webp", "image/bmp", "image/tiff", "image/heic", "audio/mpeg", "audio/ogg",
    "audio/wav", "audio/mp4", "video/mp4", "video/webm", "video/quicktime", NULL
};

static const char *safe_content_type(const char *stored)
{
    const char *const *t;

    for (t = safe_types; stored && *t; t++) {
        if (!strcasecmp(stored, *t)) {
            return *t;
        }
    }
    return "application/octet-stream";
}

/* RFC 5987 attr-char: what filename* keeps as it is. */
static int attr_char(unsigned char c)
{
    return apr_isalnum(c) || (c && strchr("!#$&+-.^_`|~", c));
}

/* The Content-Disposition of a download named `name` (UTF-8; NULL: none stored): an ASCII
 * filename (what is not printable ASCII, a quote, a backslash or a slash becomes '_') and, when
 * that is not the name itself, filename* with the name percent-encoded (RFC 6266 section 4.3). */
static const char *disposition(apr_pool_t *p, const char *name, const char *fallback_name)
{
    char *ascii, *star, *out;
    const unsigned char *s;
    int exact = 1;

    if (!name || !*name) {
        name = fallback_name;
    }
    name = gs_utf8_clean(p, name, GS_FILENAME_MAX);
    ascii = out = apr_palloc(p, strlen(name) + 1);
    for (s = (const unsigned char *)name; *s; s++) {
        if ((*s & 0xC0) == 0x80) {
            continue;               /* a continuation byte: one '_' per character */
        }
        if (*s < 0x20 || *s > 0x7E || *s == '"' || *s == '\\' || *s == '/') {
            *out++ = '_';
            exact = 0;
        }
        else {
            *out++ = (char)*s;
        }
    }
    *out = '\0';
    if (exact) {
        return apr_psprintf(p, "attachment; filename=\"%s\"", ascii);
    }
    star = out = apr_palloc(p, strlen(name) * 3 + 1);
    for (s = (const unsigned char *)name; *s; s++) {
        if (*s == '/' || *s == '\\') {
            *out++ = '_';
        }
        else if (attr_char(*s)) {
            *out++ = (char)*s;
        }
        else {
            out += apr_snprintf(out, 4, "%%%02X", *s);
        }
    }
    *out = '\0';
    return apr_psprintf(p, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, star);
}

/* n: 1 to 6 digits. */
static int parse_n(const char *s, int *n)
{
    int v = 0, i;

    for (i = 0; s[i]; i++) {
        if (i == 6 || !apr_isdigit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *n = v;
    return i > 0;
}

int gs_httpd_handle_attachment(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_httpd_slices_t blob = { GS_SQL_BLOB_SLICE, NULL, NULL, NULL, "attachment" };
    const char *slash, *id;
    gs_db_rows_t *rows;
    int n = 0, rc;

    /* arg is "{id}/attachments/{n}" (the route checked the shape); a malformed n is one the
     * message does not have, once the message is known to be the caller's */
    slash = ap_strchr_c(arg, '/');
    id = slash ? apr_pstrmemdup(r->pool, arg, (apr_size_t)(slash - arg)) : arg;
    if (slash && (strncmp(slash, GS_ATTACHMENTS_SEGMENT, sizeof GS_ATTACHMENTS_SEGMENT - 1)
                  || !parse_n(slash + sizeof GS_ATTACHMENTS_SEGMENT - 1, &n))) {
        n = -1;
    }
    rc = gs_httpd_message_select(r, conf, id, GS_SQL_ATTACHMENT_GET, apr_itoa(r->pool, n),
                                 &blob.user_id, &rows);
    if (!rows) {
        return rc;
    }
    if (!gs_db_cell(rows, 0, 0)) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such attachment");
    }
    if (!gs_db_cell(rows, 0, 5) || !(blob.key = gs_db_cell(rows, 0, 4))) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found",
                                     "only this attachment's metadata is stored, not its bytes "
                                     "(GmailSyncAttachments metadata, or larger than "
                                     "GmailSyncAttachmentMaxSize)");
    }
    blob.message = id;
    apr_table_setn(r->headers_out, "Content-Security-Policy", "sandbox");
    return gs_httpd_send_download(r, &blob, safe_content_type(gs_db_cell(rows, 0, 2)),
                                  disposition(r->pool, gs_db_cell(rows, 0, 1),
                                              apr_psprintf(r->pool, "%s-%d", id, n)),
                                  gs_db_cell(rows, 0, 5));
}
