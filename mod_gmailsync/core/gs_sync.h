/* gs_sync.h -- the sync engine: one task from its account to SUCCEEDED or FAILED.
 *
 * Smart sync: incremental from accounts.history_id through history.list, unless the task asks
 * for a full sync (force_full), the configuration does (mode = full), there is no cursor, or an
 * unfinished full sync is waiting to be resumed; a history 404 (cursor older than Gmail keeps)
 * falls back to a repair (issue 23): every id listed (5 units per 500), only the ids not stored
 * fetched, the rows not listed removed, every message's labels rebuilt from per-label listings
 * (messages.list?labelIds=X, 5 units per 500) and written where they differ; the cursor is the
 * profile's historyId taken first. Where that cannot be exact (a label listing refused, the
 * label list changed meanwhile) it falls back to a full sync (event=sync.fallback from=repair).
 *
 * Full sync: getProfile first (its historyId becomes the cursor, its messagesTotal the total),
 * then pages of 500 ids, each fetched in batches and upserted one statement per batch. An
 * interrupted full sync is resumed by the next task: ids it already stored are skipped, and the
 * cursor saved at the end is the one the first attempt recorded (see sql/002). When it
 * completes, rows of messages it did not list are deleted, in the transaction that marks the
 * task SUCCEEDED and sets the cursor.
 *
 * Incremental sync: per history page, the added messages are fetched and upserted, then in one
 * transaction deletions and label changes are applied and the cursor moves to the page's last
 * record; the end sets the cursor to at least the historyId of the first answer.
 *
 * Memory is bounded by a page (500 ids) and a batch, whatever the mailbox size.
 */
#ifndef GS_SYNC_H
#define GS_SYNC_H

#include <apr_pools.h>

#include "gs_gmail.h"
#include "gs_http.h"
#include "gs_store.h"
#include "gs_task.h"
#include "gs_worker_conf.h"

typedef enum {
    GS_SYNC_SUCCEEDED = 0,   /* SUCCEEDED committed */
    GS_SYNC_FAILED,          /* FAILED written with the failure record */
    GS_SYNC_LOST,            /* the task was taken away; nothing more was written */
    GS_SYNC_UNRECORDED       /* it failed and the end could not be written (database gone) */
} gs_sync_outcome_t;

typedef struct {
    apr_pool_t *pool;
    const gs_worker_conf_t *conf;
    gs_task_t *task;
    gs_gmail_t *gm;
    gs_failure_t *failure;
    gs_account_t account;
    const char *mode;          /* "full", "incremental" or "repair", once decided (the task
                                  row says "full" for a repair) */
    const char *reason;        /* why that mode */
    int resumed;               /* a full sync continued an interrupted one */
    apr_int64_t fetched, skipped, gone, deleted, relabeled, removed, pages;
    /* message content (issue 22): messages stored with content, of which parse errors;
     * messages fetched for content they lacked (the backfill); attachment bytes sent and found
     * stored already */
    apr_int64_t contents, parse_errors, backfilled, blobs_stored, blobs_known;
    /* the costliest message stored with content: the worker's CPU time for it (parse, build,
     * the client side of its statements) and the longest wall time of one, in ms; its id */
    apr_int64_t content_cpu_max_us, content_wall_max_us;
    char content_cpu_max_id[129];   /* a Gmail id: at most 128 characters */
    int labels, labels_written, labels_removed;   /* Gmail's labels at the end (issue 23), of
                                                     which new or changed, and labels gone */
    apr_int64_t answers_seen;   /* Gmail answers at the last tick (stall watchdog) */
    apr_int64_t duration_ms;
} gs_sync_t;

/* Prepares a sync of the acquired task over http (whose tick becomes the task's heartbeat). */
gs_sync_t *gs_sync_create(apr_pool_t *p, const gs_worker_conf_t *conf, gs_task_t *task,
                          gs_http_t *http, gs_failure_t *failure);

/* Runs it to the end and logs event=task.succeeded|failed|lost. */
gs_sync_outcome_t gs_sync_run(gs_sync_t *s);

#endif /* GS_SYNC_H */
