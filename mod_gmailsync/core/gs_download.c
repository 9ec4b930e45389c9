/* gs_download.c -- see gs_download.h */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_download.h"
#include "gs_gmail_parse.h"

/* The stored type is a claim of the message's sender: text/html, image/svg+xml or XML would run
 * in the site's origin if a browser ever rendered them (nosniff, the disposition and the
 * sandbox policy say it must not; this list does not rely on that). */
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

const char *gs_download_type(const char *stored)
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

const char *gs_download_disposition(apr_pool_t *p, const char *name, const char *fallback)
{
    char *ascii, *star, *out;
    const unsigned char *s;
    int exact = 1;

    if (!name || !*name) {
        name = fallback ? fallback : "download";
    }
    name = gs_utf8_clean(p, name, GS_DOWNLOAD_NAME_MAX);
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
