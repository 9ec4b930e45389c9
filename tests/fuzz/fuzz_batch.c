/* fuzz_batch.c -- Google's multipart batch answers (gs_batch.c). Input: the first byte gives the
 * number of inner requests (1..100), then the Content-Type line, then the body. */
#include "fuzz.h"
#include "gs_batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_array_header_t *parts = NULL;
    const char *err = NULL, *rest, *nl;
    char *ct, *body;
    size_t left, ctlen;
    int n, i;

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
    if (gs_batch_parse(p, ct, body, left, n, &parts, &err) == APR_SUCCESS) {
        for (i = 0; i < parts->nelts; i++) {
            const gs_batch_part_t *part = &APR_ARRAY_IDX(parts, i, gs_batch_part_t);
            if (part->index < 0 || part->index >= n || strlen(part->body) > part->body_len) {
                abort();
            }
        }
    }
    apr_pool_destroy(p);
    return 0;
}
