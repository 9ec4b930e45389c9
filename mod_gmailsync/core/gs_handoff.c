/* gs_handoff.c -- see gs_handoff.h */
#include <string.h>

#include <apr_strings.h>

#include "gs_handoff.h"

int gs_handoff_format(char *buf, apr_size_t size, const char *task, const char *user)
{
    static const char hex[] = "0123456789ABCDEF";
    char encoded[sizeof ((gs_handoff_t *)0)->user];
    apr_size_t n = 0;
    int len;

    if (size < 2 || size > GS_HANDOFF_MAX) {
        return -1;
    }
    /* a user id may hold spaces (remote-user names): %XX for what would end the field */
    for (; *user; user++) {
        unsigned char c = (unsigned char)*user;

        if (c > 0x20 && c < 0x7f && c != '%') {
            if (n + 1 >= sizeof encoded) {
                return -1;
            }
            encoded[n++] = (char)c;
        }
        else {
            if (n + 3 >= sizeof encoded) {
                return -1;
            }
            encoded[n++] = '%';
            encoded[n++] = hex[c >> 4];
            encoded[n++] = hex[c & 15];
        }
    }
    encoded[n] = '\0';
    /* apr_snprintf returns what it wrote: a message that filled the buffer was cut */
    len = apr_snprintf(buf, size, "gs1 start task=%s user=%s\n", task, encoded);
    return len <= 0 || (apr_size_t)len >= size - 1 ? -1 : len;
}

/* Copies value[0..n) into dst (size bytes) when it fits, is not empty and is printable ASCII
 * (no NUL, no control character: it ends up in log lines). */
static int take(char *dst, apr_size_t size, const char *value, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n >= size) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)value[i] <= 0x20 || (unsigned char)value[i] >= 0x7f) {
            return 0;
        }
    }
    memcpy(dst, value, n);
    dst[n] = '\0';
    return 1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The user field, %XX-decoded (gs_handoff_format's encoding): a bad escape, an empty or too
 * long value, or a decoded control character (never in a user id) is refused. */
static int take_user(char *dst, apr_size_t size, const char *value, apr_size_t n)
{
    apr_size_t i, o = 0;

    if (!take(dst, size, value, n)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        int c = (unsigned char)value[i];

        if (c == '%') {
            int hi = i + 2 < n ? hexval(value[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(value[i + 2]) : -1;
            if (lo < 0) {
                return 0;
            }
            c = hi * 16 + lo;
            i += 2;
            if (c < 0x20 || c == 0x7f) {
                return 0;
            }
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 1;
}

apr_status_t gs_handoff_parse(const char *buf, apr_size_t len, gs_handoff_t *out)
{
    static const char prefix[] = "gs1 start";
    const char *p, *end;

    memset(out, 0, sizeof *out);
    if (len > GS_HANDOFF_MAX || len < sizeof prefix || memcmp(buf, prefix, sizeof prefix - 1)
        || !(end = memchr(buf, '\n', len))) {
        return APR_EINVAL;
    }
    p = buf + sizeof prefix - 1;
    while (p < end) {
        const char *field, *eq;
        apr_size_t n;

        if (*p != ' ') {
            return APR_EINVAL;
        }
        field = ++p;
        while (p < end && *p != ' ') {
            p++;
        }
        n = (apr_size_t)(p - field);
        if (!(eq = memchr(field, '=', n))) {
            continue;
        }
        if ((apr_size_t)(eq - field) == 4 && !memcmp(field, "task", 4)) {
            if (!take(out->task, sizeof out->task, eq + 1, (apr_size_t)(p - eq - 1))) {
                return APR_EINVAL;
            }
        }
        else if ((apr_size_t)(eq - field) == 4 && !memcmp(field, "user", 4)) {
            if (!take_user(out->user, sizeof out->user, eq + 1, (apr_size_t)(p - eq - 1))) {
                return APR_EINVAL;
            }
        }
    }
    return out->task[0] && out->user[0] ? APR_SUCCESS : APR_EINVAL;
}
