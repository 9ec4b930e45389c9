/* gs_search_page.c -- what the search's answer needs besides the query (gs_search.h): the
 * configuration name check, the snippet's highlight and the page cursor. */
#include <string.h>

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_search.h"

int gs_search_config_valid(const char *name)
{
    int parts = 0, len;

    if (!name) {
        return 0;
    }
    for (;;) {
        if (!(apr_isalpha(*name) || *name == '_')) {
            return 0;
        }
        for (len = 0; apr_isalnum(*name) || *name == '_'; name++, len++) {
        }
        if (len > 63 || ++parts > 2) {
            return 0;
        }
        if (!*name) {
            return 1;
        }
        if (*name++ != '.') {
            return 0;
        }
    }
}

/* Does the mark match at s (n bytes left)? Its length, or 0. */
static apr_size_t mark_at(const char *snippet, const char *s, apr_size_t n, const char *mark)
{
    apr_size_t len = strlen(mark), i;

    if (!len || len > n) {
        return 0;
    }
    if (apr_isalnum(mark[0]) && s > snippet && apr_isalnum(s[-1])) {
        return 0;    /* an ASCII word matches at the start of a word */
    }
    for (i = 0; i < len; i++) {
        if (apr_tolower((unsigned char)s[i]) != apr_tolower((unsigned char)mark[i])) {
            return 0;
        }
    }
    return len;
}

apr_array_header_t *gs_search_highlight(apr_pool_t *p, const char *snippet,
                                        const apr_array_header_t *marks)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(gs_search_segment_t));
    apr_size_t n = strlen(snippet), i = 0, plain = 0, best, m, step;
    apr_uint32_t c;
    int k;

    while (i < n) {
        best = 0;
        for (k = 0; marks && k < marks->nelts; k++) {
            m = mark_at(snippet, snippet + i, n - i, APR_ARRAY_IDX(marks, k, const char *));
            if (m > best) {
                best = m;
            }
        }
        if (!best) {
            step = gs_search_utf8_char((const unsigned char *)snippet + i, n - i, &c);
            i += step ? step : 1;
            continue;
        }
        if (i > plain) {
            gs_search_segment_t *seg = apr_array_push(out);
            seg->text = apr_pstrmemdup(p, snippet + plain, i - plain);
            seg->match = 0;
        }
        {
            gs_search_segment_t *seg = apr_array_push(out);
            seg->text = apr_pstrmemdup(p, snippet + i, best);
            seg->match = 1;
        }
        i += best;
        plain = i;
    }
    if (n > plain) {
        gs_search_segment_t *seg = apr_array_push(out);
        seg->text = apr_pstrmemdup(p, snippet + plain, n - plain);
        seg->match = 0;
    }
    return out;
}

const char *gs_search_cursor_make(apr_pool_t *p, const char *date_us, const char *id)
{
    const char *plain = apr_pstrcat(p, "1:", date_us ? date_us : "", ":", id, NULL);
    int len = (int)strlen(plain);
    char *out = apr_palloc(p, (apr_size_t)apr_base64_encode_len(len));
    char *c;

    apr_base64_encode(out, plain, len);
    for (c = out; *c; c++) {
        if (*c == '+') {
            *c = '-';
        }
        else if (*c == '/') {
            *c = '_';
        }
        else if (*c == '=') {
            *c = '\0';
            break;
        }
    }
    return out;
}

int gs_search_cursor_parse(apr_pool_t *p, const char *cursor, const char **date_us,
                           const char **id)
{
    apr_size_t n = strlen(cursor), i;
    char *b64, *plain, *colon;
    const char *d;
    int len;

    if (n == 0 || n > 400) {
        return 0;
    }
    b64 = apr_palloc(p, n + 4);
    for (i = 0; i < n; i++) {
        char c = cursor[i];
        if (!(apr_isalnum(c) || c == '-' || c == '_')) {
            return 0;
        }
        b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (i % 4) {
        b64[i++] = '=';
    }
    b64[i] = '\0';
    plain = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64) + 1);
    len = apr_base64_decode(plain, b64);
    plain[len] = '\0';
    if (len < 4 || strlen(plain) != (apr_size_t)len || strncmp(plain, "1:", 2)
        || !(colon = strchr(plain + 2, ':'))) {
        return 0;
    }
    *colon = '\0';
    d = plain + 2;
    if (*d == '-' ? !d[1] : 0) {
        return 0;
    }
    for (i = *d == '-' ? 1 : 0; d[i]; i++) {
        if (!apr_isdigit(d[i]) || i > 19) {
            return 0;
        }
    }
    for (i = 0; colon[1 + i]; i++) {
        if (!(apr_isalnum(colon[1 + i]) || colon[1 + i] == '-' || colon[1 + i] == '_')) {
            return 0;
        }
    }
    if (i == 0 || i > 256) {
        return 0;
    }
    *date_us = *d ? d : NULL;
    *id = colon + 1;
    return 1;
}
