/* gs_batch.h -- Google's batch HTTP format: many API calls in one multipart/mixed request.
 *
 * The request body carries one application/http part per inner call, each with a Content-ID;
 * the answer carries one part per call, possibly in another order, each with Content-ID
 * "response-<ours>" and a complete HTTP response inside (status line, headers, body). An answer
 * of 200 says nothing about its parts: each has its own status (200, 404, 429, 5xx...).
 *
 * Pure text handling, no I/O: unit-tested against the shapes Google sends.
 */
#ifndef GS_BATCH_H
#define GS_BATCH_H

#include <apr_pools.h>
#include <apr_tables.h>

typedef struct {
    int index;              /* the position of the inner request we sent, from its Content-ID */
    int status;             /* the inner HTTP status */
    const char *body;       /* the inner body, NUL-terminated, in the parse pool */
    apr_size_t body_len;
    const char *retry_after;/* inner Retry-After header, or NULL */
} gs_batch_part_t;

/* Builds the body of a batch request whose inner requests are "GET <paths[i]>", with
 * Content-IDs <gs-i>. *content_type receives the matching multipart/mixed header value. */
const char *gs_batch_build(apr_pool_t *p, const char *const *paths, int n,
                           const char **content_type, apr_size_t *len);

/* Splits a batch answer into parts (an array of gs_batch_part_t). Parts whose Content-ID is not
 * one of ours (0..n-1) or repeats one are dropped: a caller treats an index without a part as
 * missing and asks again. Returns APR_EINVAL with *err when the answer is not a multipart
 * document at all. */
apr_status_t gs_batch_parse(apr_pool_t *p, const char *content_type, const char *body,
                            apr_size_t len, int n, apr_array_header_t **parts, const char **err);

#endif /* GS_BATCH_H */
