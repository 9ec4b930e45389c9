/* gs_batch.c -- see gs_batch.h */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_batch.h"

#define BOUNDARY_PREFIX "gs_batch_"

const char *gs_batch_build(apr_pool_t *p, const char *const *paths, int n,
                           const char **content_type, apr_size_t *len)
{
    /* unique enough: a boundary only has to be absent from our own short request lines */
    const char *boundary = apr_psprintf(p, BOUNDARY_PREFIX "%" APR_UINT64_T_HEX_FMT,
                                        (apr_uint64_t)apr_time_now()
                                        ^ (apr_uint64_t)(apr_uintptr_t)paths);
    struct { const char *base; apr_size_t len; } *vec;
    apr_size_t total = 0;
    char *body, *o;
    int i;

    vec = apr_palloc(p, sizeof *vec * (apr_size_t)(n + 1));
    for (i = 0; i < n; i++) {
        char *part = apr_psprintf(p, "--%s\r\nContent-Type: application/http\r\nContent-ID: <gs-%d>"
                                  "\r\n\r\nGET %s HTTP/1.1\r\n\r\n", boundary, i, paths[i]);
        vec[i].base = part;
        vec[i].len = strlen(part);
        total += vec[i].len;
    }
    vec[n].base = apr_psprintf(p, "--%s--\r\n", boundary);
    vec[n].len = strlen(vec[n].base);
    total += vec[n].len;
    o = body = apr_palloc(p, total + 1);
    for (i = 0; i <= n; i++) {
        memcpy(o, vec[i].base, vec[i].len);
        o += vec[i].len;
    }
    *o = '\0';
    *len = total;
    *content_type = apr_pstrcat(p, "multipart/mixed; boundary=", boundary, NULL);
    return body;
}

/* The boundary parameter of a multipart Content-Type, unquoted; NULL if there is none. */
static const char *boundary_of(apr_pool_t *p, const char *content_type)
{
    const char *b, *end;

    if (!content_type || strncasecmp(content_type, "multipart/", 10)) {
        return NULL;
    }
    for (b = content_type; (b = strchr(b, ';')); ) {
        b++;
        while (*b == ' ' || *b == '\t') {
            b++;
        }
        if (!strncasecmp(b, "boundary=", 9)) {
            b += 9;
            if (*b == '"') {
                b++;
                end = strchr(b, '"');
            }
            else {
                for (end = b; *end && *end != ';' && *end != ' '; end++) {
                }
            }
            if (!end || end == b) {
                return NULL;
            }
            return apr_pstrmemdup(p, b, (apr_size_t)(end - b));
        }
    }
    return NULL;
}

/* Next line of [*pos, end): returns its start, sets *llen without the line break, advances. */
static const char *next_line(const char **pos, const char *end, apr_size_t *llen)
{
    const char *s = *pos, *nl;

    if (s >= end) {
        return NULL;
    }
    nl = memchr(s, '\n', (apr_size_t)(end - s));
    *pos = nl ? nl + 1 : end;
    if (!nl) {
        nl = end;
    }
    *llen = (apr_size_t)(nl - s);
    if (*llen && s[*llen - 1] == '\r') {
        (*llen)--;
    }
    return s;
}

/* Value of header `name` if the line is that header, else NULL. */
static const char *header(apr_pool_t *p, const char *line, apr_size_t len, const char *name)
{
    apr_size_t nlen = strlen(name);
    const char *v, *e = line + len;

    if (len <= nlen || strncasecmp(line, name, nlen) || line[nlen] != ':') {
        return NULL;
    }
    for (v = line + nlen + 1; v < e && (*v == ' ' || *v == '\t'); v++) {
    }
    return apr_pstrmemdup(p, v, (apr_size_t)(e - v));
}

/* "<response-gs-12>" (or without "response-", or without brackets) -> 12; -1 if not ours. */
static int content_id_index(const char *cid)
{
    char *end;
    long v;

    if (*cid == '<') {
        cid++;
    }
    if (!strncmp(cid, "response-", 9)) {
        cid += 9;
    }
    if (strncmp(cid, "gs-", 3) || !apr_isdigit(cid[3])) {
        return -1;
    }
    v = strtol(cid + 3, &end, 10);
    if ((*end && *end != '>') || v < 0 || v > 100000) {
        return -1;
    }
    return (int)v;
}

/* Parses one part [s, e): MIME headers, blank line, then an HTTP response. */
static int parse_part(apr_pool_t *p, const char *s, const char *e, gs_batch_part_t *part)
{
    const char *pos = s, *line, *v;
    apr_size_t llen;
    int index = -1, status;

    while ((line = next_line(&pos, e, &llen)) && llen > 0) {
        if ((v = header(p, line, llen, "Content-ID"))) {
            index = content_id_index(v);
        }
    }
    if (index < 0 || !line) {
        return 0;
    }
    /* the status line: "HTTP/1.1 200 OK" */
    if (!(line = next_line(&pos, e, &llen)) || llen < 12 || strncmp(line, "HTTP/", 5)) {
        return 0;
    }
    v = memchr(line, ' ', llen);
    if (!v || v + 4 > line + llen
        || !apr_isdigit(v[1]) || !apr_isdigit(v[2]) || !apr_isdigit(v[3])) {
        return 0;
    }
    status = (v[1] - '0') * 100 + (v[2] - '0') * 10 + (v[3] - '0');
    part->retry_after = NULL;
    while ((line = next_line(&pos, e, &llen)) && llen > 0) {
        if ((v = header(p, line, llen, "Retry-After"))) {
            part->retry_after = v;
        }
    }
    part->index = index;
    part->status = status;
    part->body_len = line ? (apr_size_t)(e - pos) : 0;
    part->body = line ? apr_pstrmemdup(p, pos, part->body_len) : "";
    return 1;
}

apr_status_t gs_batch_parse(apr_pool_t *p, const char *content_type, const char *body,
                            apr_size_t len, int n, apr_array_header_t **parts, const char **err)
{
    const char *boundary = boundary_of(p, content_type);
    const char *end = body + len, *pos, *delim;
    char *seen;
    apr_size_t blen;

    if (!boundary) {
        *err = "the batch answer is not multipart/mixed with a boundary";
        return APR_EINVAL;
    }
    delim = apr_pstrcat(p, "--", boundary, NULL);
    blen = strlen(delim);
    seen = apr_pcalloc(p, (apr_size_t)(n > 0 ? n : 1));
    *parts = apr_array_make(p, n > 0 ? n : 1, sizeof(gs_batch_part_t));

    /* the first delimiter: at the very start or at a line start */
    if (len >= blen && !memcmp(body, delim, blen)) {
        pos = body;
    }
    else {
        const char *d = apr_pstrcat(p, "\n", delim, NULL);
        pos = memmem(body, len, d, blen + 1);
        if (!pos) {
            *err = "the batch answer holds no part";
            return APR_EINVAL;
        }
        pos++;
    }
    for (;;) {
        const char *s, *next, *e;
        gs_batch_part_t part;

        /* pos is at a delimiter */
        s = pos + blen;
        if (end - s >= 2 && s[0] == '-' && s[1] == '-') {
            break;                              /* close delimiter */
        }
        if (!(s = memchr(s, '\n', (apr_size_t)(end - s)))) {
            break;                              /* truncated after a delimiter */
        }
        s++;
        next = memmem(s, (apr_size_t)(end - s), apr_pstrcat(p, "\n", delim, NULL), blen + 1);
        e = next ? next : end;   /* a part with no delimiter after it is truncated: dropped below */
        if (e > s && e[-1] == '\r' && next) {
            e--;
        }
        if (next && parse_part(p, s, e, &part) && part.index < n && !seen[part.index]) {
            seen[part.index] = 1;
            APR_ARRAY_PUSH(*parts, gs_batch_part_t) = part;
        }
        if (!next) {
            break;
        }
        pos = next + 1;
    }
    return APR_SUCCESS;
}
