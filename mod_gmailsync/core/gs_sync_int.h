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

/* The statements of one transaction, run between BEGIN and COMMIT in a pool of their own. They
 * must be safe to run twice: a transaction whose connection was lost runs again whole. */
typedef apr_status_t gs_sync_txn_fn(gs_sync_t *s, apr_pool_t *p, void *baton);

/* BEGIN (READ COMMITTED), body, COMMIT; rolled back when body fails. When the connection is lost
 * on the way (a restart, a failover) and the database is back within db_wait, the transaction
 * runs again on the new connection: the lost one rolled back whole (or, when only the COMMIT's
 * answer was lost, committed: bodies are idempotent, and a task end written already makes the
 * rerun GS_ELOST, as for any task that ended elsewhere). db_unavailable when it stays away. */
apr_status_t gs_sync_transaction(gs_sync_t *s, apr_pool_t *p, gs_sync_txn_fn *body, void *baton);

/* Writes, inside the final transaction, what the end of a sync covers (cursor, removals). */
typedef gs_sync_txn_fn gs_sync_record_fn;

/* Ends a sync in one transaction: SUCCEEDED (lease-guarded) and `record`, or neither, so the
 * cursor never moves without the state and the state never without the cursor. */
apr_status_t gs_sync_succeed(gs_sync_t *s, apr_pool_t *p, gs_sync_record_fn *record,
                             void *baton);

/* The two kinds of sync; each ends with SUCCEEDED committed together with the cursor.
 * gs_sync_incremental returns GS_ENOTFOUND when the cursor is older than Gmail's history. */
apr_status_t gs_sync_full(gs_sync_t *s, apr_pool_t *p);
apr_status_t gs_sync_incremental(gs_sync_t *s, apr_pool_t *p);

#endif /* GS_SYNC_INT_H */
