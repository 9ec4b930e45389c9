/* gs_store.h -- what a sync writes besides the task row: messages, the account's token cache,
 * its history cursor and the bookkeeping of a resumable full sync (migration 002).
 *
 * Every statement runs through gs_task_exec (one reconnect on a broken connection; failures
 * become db_unavailable/internal). Message upserts are guarded by the lease inside the statement
 * itself, so a worker that lost its task cannot overwrite newer data, in one round trip per batch.
 */
#ifndef GS_STORE_H
#define GS_STORE_H

#include <apr_hash.h>
#include <apr_pools.h>

#include "gs_config.h"
#include "gs_task.h"

typedef struct {
    const char *refresh_token;        /* NULL: not linked */
    const char *access_token;         /* cached, or NULL */
    apr_int64_t access_ttl;           /* seconds the cached token still lives (database clock) */
    const char *history_id;           /* the incremental cursor, or NULL */
    const char *pending_task;         /* generation of an unfinished full sync, or NULL */
    const char *pending_history_id;   /* the historyId its first attempt recorded */
    int pending_fresh;                /* it began recently enough to be resumed */
    int parts_in_flight;              /* Gmail batch parts at once that worked last time, 0: none */
} gs_account_t;

/* Loads the task user's account. GS_EFAILED (auth_revoked) when the user has none. */
apr_status_t gs_store_load_account(gs_task_t *t, apr_pool_t *p, gs_account_t *out);

/* Remembers the parts in flight that Gmail's concurrency limit let through. */
apr_status_t gs_store_save_flight(gs_task_t *t, apr_pool_t *p, int level);

/* Caches a new access token (and a rotated refresh token, if any). */
apr_status_t gs_store_save_token(gs_task_t *t, apr_pool_t *p, const char *access_token,
                                 long expires_in, const char *new_refresh);

/* Begins a new full sync: this task is the generation, history_id its cursor-to-be. Guarded. */
apr_status_t gs_store_full_begin(gs_task_t *t, apr_pool_t *p, const char *history_id);

/* Of ids[0..n-1], which are already stored by full-sync generation `gen`? They are stamped as
 * listed by this task; *existing maps each of them to itself. With the lease gone none are
 * (the fetches that follow then find out, at their guarded upsert). */
apr_status_t gs_store_mark_seen(gs_task_t *t, apr_pool_t *p, const char *gen,
                                const char *const *ids, int n, apr_hash_t **existing);

/* The repair's read of what is stored: a page of the user's rows not deleted after gmail_id
 * `after` ("" first), each as (gmail_id, label ids sorted bytewise and joined by ","). */
apr_status_t gs_store_repair_stored(gs_task_t *t, apr_pool_t *p, const char *after, int limit,
                                    gs_db_rows_t **rows);

/* Replaces label sets: rows_json a JSON array of {"id","labels":[...]} of ids[0..n-1]; only the rows whose set
 * differs are written (kept labels keep their place, new ones follow). *changed: those rows. */
apr_status_t gs_store_set_labels(gs_task_t *t, apr_pool_t *p, const char *rows_json,
                                 const char *const *ids, int n, int *changed);

/* The repair's end (inside the finishing transaction): removes ids (keep: sets their
 * deleted_at), sets the cursor to history_id and clears a pending full sync. */
apr_status_t gs_store_repair_finish(gs_task_t *t, apr_pool_t *p, const char *history_id,
                                    const char *const *ids, int n, gs_deletions_t mode,
                                    int *removed);

/* (Re)indexes the user's messages `ids` for search (sql/012's gmailsync.search_refresh) with the
 * text-search configuration `config`, from their stored content: inside the transaction that
 * stored it. */
apr_status_t gs_store_search_refresh(gs_task_t *t, apr_pool_t *p, const char *config,
                                     const char *const *ids, int n);

/* Upserts rows (a JSON array of gs_gmail_message_row objects), one statement. gen and seen_by
 * are the full-sync stamps (NULL for incremental syncs). GS_ELOST if the lease is gone. */
apr_status_t gs_store_upsert(gs_task_t *t, apr_pool_t *p, const char *gen, const char *seen_by,
                             const char *rows_json, int nrows);

/* Deletes the given messages; with GmailSyncDeletions keep, sets their deleted_at instead. */
apr_status_t gs_store_delete(gs_task_t *t, apr_pool_t *p, const char *const *ids, int n,
                             gs_deletions_t mode, int *deleted);

/* Replaces the user's labels with Gmail's list (gs_gmail_labels' JSON): *written new or changed
 * ones, *removed the ones Gmail no longer has. */
apr_status_t gs_store_labels(gs_task_t *t, apr_pool_t *p, const char *labels_json, int *written,
                             int *removed);

/* Applies label changes: a JSON array of {"id","history_id","add":[...],"remove":[...]}; the
 * row's history_id moves up to the record's. */
apr_status_t gs_store_relabel(gs_task_t *t, apr_pool_t *p, const char *ops_json, int *changed);

/* Moves the incremental cursor forward (never backward). */
apr_status_t gs_store_advance_cursor(gs_task_t *t, apr_pool_t *p, const char *history_id);

/* The end of a full sync (inside the finishing transaction): deletes the rows this task did not
 * list (keep: sets their deleted_at), sets the cursor to history_id and clears the pending full
 * sync. */
apr_status_t gs_store_full_finish(gs_task_t *t, apr_pool_t *p, const char *history_id,
                                  gs_deletions_t mode, int *removed);

/* A PostgreSQL text[] literal of any strings: "{\"a\",\"b\"}", each element double-quoted with its
 * double quotes and backslashes escaped (Gmail ids need none; user ids may hold both). */
const char *gs_store_text_array(apr_pool_t *p, const char *const *ids, int n);

#endif /* GS_STORE_H */
