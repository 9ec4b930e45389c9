/* gs_batch.c -- see gs_batch.h */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_batch.h"
#include "gs_mem.h"

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

/* Parses one part [s, e): MIME headers, blank line, then an HTTP response. Sets everything but
 * the body, whose start is *body (NULL when the response has no blank line: no body). */
static int parse_part(apr_pool_t *p, const char *s, const char *e, gs_batch_part_t *part,
                      const char **body)
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
    part->body = NULL;
    part->body_len = line ? (apr_size_t)(e - pos) : 0;
    *body = line ? pos : NULL;
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
        const char *s, *next, *e, *b;
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
        if (next && parse_part(p, s, e, &part, &b) && part.index < n && !seen[part.index]) {
            seen[part.index] = 1;
            part.body = b ? apr_pstrmemdup(p, b, part.body_len) : apr_pcalloc(p, 1);
            part.pool = NULL;
            APR_ARRAY_PUSH(*parts, gs_batch_part_t) = part;
        }
        if (!next) {
            break;
        }
        pos = next + 1;
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ a part at a time */

struct gs_batch_reader_t {
    gs_batch_read_fn *read;
    void *baton;
    const char *delim;       /* "--boundary" */
    const char *nl_delim;    /* "\n--boundary" */
    apr_size_t blen;         /* strlen(delim) */
    char *win;               /* the window find() reads into */
    apr_size_t cap;          /* its size: chunk + blen + 1, room for any pattern */
    char *seen;
    int n;
    apr_off_t pos;           /* the delimiter to take next */
    int started, done;
};

/* Reads up to len bytes at off (fewer only at the end); *got says how many. */
static apr_status_t read_upto(gs_batch_reader_t *r, apr_off_t off, char *buf, apr_size_t len,
                              apr_size_t *got)
{
    apr_status_t rv;

    *got = 0;
    while (*got < len) {
        apr_size_t n = len - *got;

        if ((rv = r->read(r->baton, off + (apr_off_t)*got, buf + *got, &n)) != APR_SUCCESS) {
            return rv;
        }
        if (n == 0) {
            break;
        }
        *got += n;
    }
    return APR_SUCCESS;
}

/* The offset of the first pat at or after `from`, reading a window at a time (the last
 * plen - 1 bytes of a window are kept: a pattern split across two reads is found).
 * APR_EOF when the answer ends without one. */
static apr_status_t find(gs_batch_reader_t *r, apr_off_t from, const char *pat, apr_size_t plen,
                         apr_off_t *at)
{
    apr_off_t base = from;
    apr_size_t have = 0;
    apr_status_t rv;

    for (;;) {
        apr_size_t got = r->cap - have;
        const char *hit;

        if ((rv = r->read(r->baton, base + (apr_off_t)have, r->win + have, &got)) != APR_SUCCESS) {
            return rv;
        }
        if (got == 0) {
            return APR_EOF;
        }
        have += got;
        if ((hit = memmem(r->win, have, pat, plen))) {
            *at = base + (hit - r->win);
            return APR_SUCCESS;
        }
        if (have >= plen) {
            apr_size_t keep = plen - 1;

            memmove(r->win, r->win + have - keep, keep);
            base += (apr_off_t)(have - keep);
            have = keep;
        }
    }
}

apr_status_t gs_batch_reader_make(gs_batch_reader_t **pr, apr_pool_t *p, const char *content_type,
                                  int n, gs_batch_read_fn *read, void *baton, apr_size_t chunk,
                                  const char **err)
{
    const char *boundary = boundary_of(p, content_type);
    gs_batch_reader_t *r;

    if (!boundary) {
        *err = "the batch answer is not multipart/mixed with a boundary";
        return APR_EINVAL;
    }
    r = apr_pcalloc(p, sizeof *r);
    r->read = read;
    r->baton = baton;
    r->delim = apr_pstrcat(p, "--", boundary, NULL);
    r->nl_delim = apr_pstrcat(p, "\n", r->delim, NULL);
    r->blen = strlen(r->delim);
    r->cap = (chunk ? chunk : GS_BATCH_CHUNK) + r->blen + 1;
    r->win = apr_palloc(p, r->cap);
    r->n = n;
    r->seen = apr_pcalloc(p, (apr_size_t)(n > 0 ? n : 1));
    *pr = r;
    return APR_SUCCESS;
}

static apr_status_t file_read(void *baton, apr_off_t off, char *buf, apr_size_t *len)
{
    apr_file_t *f = baton;
    apr_status_t rv;

    if ((rv = apr_file_seek(f, APR_SET, &off)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_read(f, buf, len);
    if (rv == APR_EOF) {
        *len = 0;
        return APR_SUCCESS;
    }
    return rv;
}

apr_status_t gs_batch_reader_file(gs_batch_reader_t **r, apr_pool_t *p, const char *content_type,
                                  int n, apr_file_t *f, const char **err)
{
    return gs_batch_reader_make(r, p, content_type, n, file_read, f, 0, err);
}

/* Where the first delimiter is (gs_batch_parse's rule: at the very start or at a line start). */
static apr_status_t first_delimiter(gs_batch_reader_t *r, const char **err)
{
    apr_size_t got;
    apr_off_t at;
    apr_status_t rv;

    if ((rv = read_upto(r, 0, r->win, r->blen, &got)) != APR_SUCCESS) {
        *err = "cannot read the batch answer";
        return rv;
    }
    if (got == r->blen && !memcmp(r->win, r->delim, r->blen)) {
        r->pos = 0;
        return APR_SUCCESS;
    }
    if ((rv = find(r, 0, r->nl_delim, r->blen + 1, &at)) == APR_EOF) {
        *err = "the batch answer holds no part";
        return APR_EINVAL;
    }
    if (rv != APR_SUCCESS) {
        *err = "cannot read the batch answer";
        return rv;
    }
    r->pos = at + 1;
    return APR_SUCCESS;
}

/* The next part's bytes [*s, *e) (without the line break before the next delimiter), and the
 * reader moved on to that delimiter. APR_EOF: the close delimiter, or a truncated answer. */
static apr_status_t next_extent(gs_batch_reader_t *r, apr_off_t *ps, apr_off_t *pe)
{
    char two[2];
    apr_size_t got;
    apr_off_t s, next, e;
    apr_status_t rv;

    /* r->pos is at a delimiter */
    s = r->pos + (apr_off_t)r->blen;
    if ((rv = read_upto(r, s, two, 2, &got)) != APR_SUCCESS) {
        return rv;
    }
    if (got == 2 && two[0] == '-' && two[1] == '-') {
        return APR_EOF;                         /* close delimiter */
    }
    if ((rv = find(r, s, "\n", 1, &s)) != APR_SUCCESS) {
        return rv;                              /* APR_EOF: truncated after a delimiter */
    }
    s++;
    /* a part with no delimiter after it is truncated: dropped (APR_EOF) */
    if ((rv = find(r, s, r->nl_delim, r->blen + 1, &next)) != APR_SUCCESS) {
        return rv;
    }
    e = next;
    if (e > s) {
        if ((rv = read_upto(r, e - 1, two, 1, &got)) != APR_SUCCESS) {
            return rv;
        }
        if (got == 1 && two[0] == '\r') {
            e--;
        }
    }
    r->pos = next + 1;
    *ps = s;
    *pe = e;
    return APR_SUCCESS;
}

apr_status_t gs_batch_reader_next(gs_batch_reader_t *r, apr_pool_t *part_pool,
                                  gs_batch_part_t *part, const char **err)
{
    apr_status_t rv;

    if (r->done) {
        return APR_EOF;
    }
    if (!r->started) {
        r->started = 1;
        if ((rv = first_delimiter(r, err)) != APR_SUCCESS) {
            r->done = 1;
            return rv;
        }
    }
    for (;;) {
        apr_off_t s, e;
        apr_size_t len, got;
        apr_pool_t *pp;
        const char *body;
        char *buf;

        if ((rv = next_extent(r, &s, &e)) != APR_SUCCESS) {
            r->done = 1;
            if (rv != APR_EOF) {
                *err = "cannot read the batch answer";
            }
            return rv;
        }
        len = (apr_size_t)(e - s);
        if ((rv = apr_pool_create(&pp, part_pool)) != APR_SUCCESS) {
            r->done = 1;
            *err = "out of memory";
            return rv;
        }
        buf = apr_palloc(pp, len + 1);
        (void)gs_mem_huge(buf, len + 1);     /* advice only: a large part fills it at once */
        if ((rv = read_upto(r, s, buf, len, &got)) != APR_SUCCESS || got != len) {
            apr_pool_destroy(pp);
            r->done = 1;
            *err = rv != APR_SUCCESS ? "cannot read the batch answer"
                                     : "the batch answer got shorter while it was read";
            return rv != APR_SUCCESS ? rv : APR_EGENERAL;
        }
        buf[len] = '\0';
        if (parse_part(pp, buf, buf + len, part, &body) && part->index < r->n
            && !r->seen[part->index]) {
            r->seen[part->index] = 1;
            part->body = body ? (char *)body : buf + len;
            part->pool = pp;
            return APR_SUCCESS;
        }
        apr_pool_destroy(pp);
    }
}
