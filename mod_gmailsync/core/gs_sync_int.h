/* gs_sync_int.h -- internal to the sync engine (gs_sync*.c). Use gs_sync.h. */
#ifndef GS_SYNC_INT_H
#define GS_SYNC_INT_H

#include "gs_sync.h"

/* Baton of gs_sync_store_rows. */
typedef struct {
    gs_sync_t *s;
    const char *gen;          /* full-sync stamps, NULL for incremental */
    const char *seen_by;
    int count_progress;       /* full sync: a stored (or gone) message is one processed */
} gs_sync_store_ctx_t;

/* gs_gmail_store_cb: one upsert per fetched batch. */
apr_status_t gs_sync_store_rows(void *baton, apr_pool_t *p, json_object *rows, int nrows, int gone);

/* BEGIN (READ COMMITTED, rolled back if p dies first); db_unavailable on failure. */
apr_status_t gs_sync_begin(gs_sync_t *s, apr_pool_t *p);

/* Commits when rv is APR_SUCCESS, else rolls back; returns the outcome. */
apr_status_t gs_sync_commit(gs_sync_t *s, apr_pool_t *p, apr_status_t rv);

/* Writes, inside the final transaction, what the end of a sync covers (cursor, removals). */
typedef apr_status_t gs_sync_record_fn(gs_sync_t *s, apr_pool_t *p, void *baton);

/* Ends a sync in one transaction: SUCCEEDED (lease-guarded) and `record`, or neither, so the
 * cursor never moves without the state and the state never without the cursor. */
apr_status_t gs_sync_succeed(gs_sync_t *s, apr_pool_t *p, gs_sync_record_fn *record,
                             void *baton);

/* The two kinds of sync; each ends with SUCCEEDED committed together with the cursor.
 * gs_sync_incremental returns GS_ENOTFOUND when the cursor is older than Gmail's history. */
apr_status_t gs_sync_full(gs_sync_t *s, apr_pool_t *p);
apr_status_t gs_sync_incremental(gs_sync_t *s, apr_pool_t *p);

#endif /* GS_SYNC_INT_H */
