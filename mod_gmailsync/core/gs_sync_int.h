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

/* gs_gmail_store_cb: one upsert per fetched batch (format=metadata); with format=raw, one
 * transaction that stores each message with its content (gs_content_store). */
apr_status_t gs_sync_store_rows(void *baton, apr_pool_t *p, json_object *rows,
                                const apr_array_header_t *raws, int nrows, int gone);

/* Fetches ids[0..n-1] and stores them: with GmailSyncContent full, the ids whose content is
 * stored already (complete or parse_error) are asked with format=metadata (their labels and
 * envelope; never their content again) and the others with format=raw; with metadata, all of
 * them with format=metadata. */
apr_status_t gs_sync_fetch(gs_sync_t *s, apr_pool_t *p, const char *const *ids, int n,
                           gs_sync_store_ctx_t *ctx);

/* One page of a listing of every id (full sync, repair): the ids not in `existing` (NULL:
 * none) are fetched and stored, the others counted as skipped; all of them as processed. */
apr_status_t gs_sync_fetch_page(gs_sync_t *s, apr_pool_t *p, const gs_list_page_t *page,
                                apr_hash_t *existing, gs_sync_store_ctx_t *ctx);

/* GmailSyncContent full: fetches the content of the user's messages that have none
 * (content_state NULL or metadata_only: stored by GmailSyncContent metadata or an older
 * release), in pages, each id once (a message gone from Gmail stays as it was). seen_by: only
 * the rows this full sync listed; NULL: all of the user's. count_progress: each one is a
 * change of the incremental sync's total. */
apr_status_t gs_sync_backfill(gs_sync_t *s, apr_pool_t *p, const char *gen, const char *seen_by,
                              int count_progress);

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

/* The repair after GS_ENOTFOUND (issue 23): every id listed, only the new ones fetched, each
 * message's labels rebuilt from the per-label listings, the rows not listed removed as by a full
 * sync; ends SUCCEEDED with the cursor taken before the listings. When it cannot be exact (a
 * label listing refused, the label list changed meanwhile) it returns APR_SUCCESS with *inexact
 * set to the reason and without ending the task: the caller falls back to gs_sync_full. */
apr_status_t gs_sync_repair(gs_sync_t *s, apr_pool_t *p, const char **inexact);

#endif /* GS_SYNC_INT_H */
