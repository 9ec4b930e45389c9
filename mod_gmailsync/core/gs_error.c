/* gs_error.c -- see gs_error.h */
#include <stdarg.h>
#include <string.h>

#include <apr_strings.h>

#include "gs_error.h"

apr_status_t gs_fail(gs_failure_t *f, apr_pool_t *p, const char *code, const char *fmt, ...)
{
    if (!f->code) {
        va_list ap;

        va_start(ap, fmt);
        apr_cpystrn(f->buf, gs_error_clean(p, apr_pvsprintf(p, fmt, ap), GS_ERROR_MESSAGE_MAX),
                    sizeof f->buf);
        f->message = f->buf;
        va_end(ap);
        f->code = code;
    }
    return GS_EFAILED;
}

const char *gs_error_clean(apr_pool_t *p, const char *s, apr_size_t max)
{
    apr_size_t len = strlen(s), i;
    char *out;

    if (len > max) {
        len = max;
        /* back off over continuation bytes so that no sequence is split */
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) {
            len--;
        }
    }
    out = apr_pstrmemdup(p, s, len);
    for (i = 0; i < len; i++) {
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f || out[i] == '"') {
            out[i] = out[i] == '"' ? '\'' : ' ';
        }
    }
    return out;
}
