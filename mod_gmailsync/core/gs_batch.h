/* gs_batch.h -- Google's batch HTTP format: many API calls in one multipart/mixed request.
 *
 * The request body carries one application/http part per inner call, each with a Content-ID;
 * the answer carries one part per call, possibly in another order, each with Content-ID
 * "response-<ours>" and a complete HTTP response inside (status line, headers, body). An answer
 * of 200 says nothing about its parts: each has its own status (200, 404, 429, 5xx...).
 *
 * gs_batch_parse splits an answer held in memory; gs_batch_reader takes one that was spooled
 * to a file (gs_http.h) a part at a time, so that only one part's body is in memory. Both apply
 * the same rules (the fuzz harness checks that they agree). Unit-tested against the shapes
 * Google sends.
 */
#ifndef GS_BATCH_H
#define GS_BATCH_H

#include <apr_file_io.h>
#include <apr_pools.h>
#include <apr_tables.h>

typedef struct {
    int index;              /* the position of the inner request we sent, from its Content-ID */
    int status;             /* the inner HTTP status */
    char *body;             /* the inner body, NUL-terminated, in the parse (part) pool; the
                             * caller may change it in place */
    apr_size_t body_len;
    const char *retry_after;/* inner Retry-After header, or NULL */
    apr_pool_t *pool;       /* gs_batch_reader_next: the part's own pool (a subpool of the
                             * part_pool given), which holds it alone; NULL from gs_batch_parse */
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

/* ------------------------------------------------------------------ a part at a time */

/* Where a reader gets the answer: up to *len bytes at offset `off` into buf; *len is set to what
 * was read, 0 at the end. Any status but APR_SUCCESS is an I/O error. */
typedef apr_status_t gs_batch_read_fn(void *baton, apr_off_t off, char *buf, apr_size_t *len);

typedef struct gs_batch_reader_t gs_batch_reader_t;

/* The bytes a reader asks its source for at once while it looks for delimiters. */
#define GS_BATCH_CHUNK (64 * 1024)

/* A reader of the batch answer `read` gives, for n inner requests; chunk 0 is GS_BATCH_CHUNK.
 * Memory: a window of chunk bytes from p, and each part as gs_batch_reader_next reads it.
 * APR_EINVAL with *err when content_type is not multipart with a boundary. */
apr_status_t gs_batch_reader_make(gs_batch_reader_t **r, apr_pool_t *p, const char *content_type,
                                  int n, gs_batch_read_fn *read, void *baton, apr_size_t chunk,
                                  const char **err);

/* The same over a file (read with apr_file_seek and apr_file_read: a spooled answer). */
apr_status_t gs_batch_reader_file(gs_batch_reader_t **r, apr_pool_t *p, const char *content_type,
                                  int n, apr_file_t *f, const char **err);

/* The next part that gs_batch_parse would have kept (ours, not a repeat, followed by a
 * delimiter), in the order of the answer; the part's bytes are read from the source into
 * part_pool (a subpool of it: the parts dropped on the way are freed at once), its body in place
 * there. Returns APR_SUCCESS with *part; APR_EOF when no part is left; APR_EINVAL with *err on
 * the first call when the answer holds no delimiter at all (gs_batch_parse's "holds no part");
 * the source's status on an I/O error (*err says so). */
apr_status_t gs_batch_reader_next(gs_batch_reader_t *r, apr_pool_t *part_pool,
                                  gs_batch_part_t *part, const char **err);

#endif /* GS_BATCH_H */
