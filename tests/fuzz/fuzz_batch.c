/* fuzz_batch.c -- Google's multipart batch answers (gs_batch.c). Input: the first byte gives the
 * number of inner requests (1..100), then the Content-Type line, then the body.
 *
 * The body goes through gs_batch_parse (an answer in memory) and through gs_batch_reader (a
 * spooled answer, a part at a time), read in chunks and short reads whose sizes the input sets:
 * both must give the same parts in the same order, byte for byte. */
#include "fuzz.h"
#include "gs_batch.h"

typedef struct {
    const char *data;
    apr_size_t len, max_read;
} src_t;

static apr_status_t src_read(void *baton, apr_off_t off, char *buf, apr_size_t *len)
{
    src_t *s = baton;
    apr_size_t n = off < (apr_off_t)s->len ? s->len - (apr_size_t)off : 0;

    if (n > *len) {
        n = *len;
    }
    if (n > s->max_read) {
        n = s->max_read;
    }
    if (n) {
        memcpy(buf, s->data + off, n);
    }
    *len = n;
    return APR_SUCCESS;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p, *pp;
    apr_array_header_t *parts = NULL;
    const char *err = NULL, *rest, *nl;
    char *ct, *body;
    size_t left, ctlen;
    int n, i;
    apr_status_t prv, rv;
    gs_batch_reader_t *r;
    gs_batch_part_t part;
    src_t src;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    n = 1 + data[0] % 100;
    rest = (const char *)data + 1;
    left = size - 1;
    nl = memchr(rest, '\n', left);
    ctlen = nl ? (size_t)(nl - rest) : left;
    ct = fuzz_cstr(p, (const uint8_t *)rest, ctlen);
    rest += nl ? ctlen + 1 : left;
    left -= nl ? ctlen + 1 : left;
    /* the body as the HTTP client hands it over: NUL-terminated, with its length */
    body = fuzz_cstr(p, (const uint8_t *)rest, left);
    prv = gs_batch_parse(p, ct, body, left, n, &parts, &err);
    if (prv == APR_SUCCESS) {
        for (i = 0; i < parts->nelts; i++) {
            const gs_batch_part_t *got = &APR_ARRAY_IDX(parts, i, gs_batch_part_t);
            if (got->index < 0 || got->index >= n || strlen(got->body) > got->body_len) {
                abort();
            }
        }
    }

    /* the same answer a part at a time, in chunks of 1..97 bytes and reads of 1..size bytes */
    src.data = body;
    src.len = left;
    src.max_read = 1 + (data[0] * 31u + size) % (size + 1);
    rv = gs_batch_reader_make(&r, p, ct, n, src_read, &src, 1 + (data[0] * 7u + size) % 97, &err);
    if (rv != APR_SUCCESS) {
        if (prv == APR_SUCCESS) {
            abort();                /* the reader refused a Content-Type the parser took */
        }
        apr_pool_destroy(p);
        return 0;
    }
    if (apr_pool_create(&pp, p) != APR_SUCCESS) {
        abort();
    }
    for (i = 0; (rv = gs_batch_reader_next(r, pp, &part, &err)) == APR_SUCCESS; i++) {
        const gs_batch_part_t *want;

        if (prv != APR_SUCCESS || i >= parts->nelts) {
            abort();                /* a part the parser did not give */
        }
        want = &APR_ARRAY_IDX(parts, i, gs_batch_part_t);
        if (part.index != want->index || part.status != want->status
            || part.body_len != want->body_len || memcmp(part.body, want->body, part.body_len)
            || part.body[part.body_len] != '\0' || !same_str(part.retry_after, want->retry_after)) {
            abort();                /* not the part the parser gave */
        }
        apr_pool_clear(pp);
    }
    if (rv != (prv == APR_SUCCESS ? APR_EOF : prv) || (prv == APR_SUCCESS && i != parts->nelts)) {
        abort();                    /* an end or an error the parser did not see */
    }
    apr_pool_destroy(p);
    return 0;
}
