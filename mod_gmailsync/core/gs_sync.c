/* gs_sync.c -- see gs_sync.h */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gs_content.h"
#include "gs_json.h"
#include "gs_log.h"
#include "gs_sql.h"
#include "gs_sync.h"
#include "gs_sync_int.h"
#include "gs_tokenbox.h"

/* Runs while the engine waits (on Gmail, or in a back-off): an answer from Gmail since the last
 * tick, whatever its status, is a forward step for the stall watchdog (errors and rate limits
 * are bounded by the retry budget and end the sync with their own code); only silence is not:
 * requests that time out or hang without an answer. Then the task's heartbeat and progress. */
static apr_status_t heartbeat_tick(void *baton)
{
    gs_sync_t *s = baton;
    apr_int64_t answered = 0;
    int c;

    for (c = 0; c < GS_BOARD_CALL_CLASSES; c++) {
        if (c != gs_board_call_class(0)) {      /* status 0: no answer at all */
            answered += s->gm->answers[c];
        }
    }
    if (answered != s->answers_seen) {
        s->answers_seen = answered;
        gs_task_note_advance(s->task);
    }
    return gs_task_tick(s->task);
}

/* The Gmail client waits before asking again, or a call succeeded after such a wait: the task
 * records it where the task JSON reads it. */
static apr_status_t retry_state(void *baton, const char *reason, apr_interval_time_t wait,
                                int attempt)
{
    gs_sync_t *s = baton;

    return reason ? gs_task_retrying(s->task, reason, wait, attempt) : gs_task_recovered(s->task);
}

/* A stored token, opened with the worker's keys; token_undecryptable when it does not open. The
 * log line names the column and the key id (or that there is none), never the value. */
static apr_status_t open_token(gs_sync_t *s, apr_pool_t *p, const char *column,
                               const char *sealed, const char **plain)
{
    const char *err = NULL, *id, *hint;
    apr_status_t rv;

    *plain = NULL;
    if (!sealed) {
        return APR_SUCCESS;
    }
    rv = gs_tokenbox_open(s->conf->token_keys, p, gs_tokenbox_context(p, column, s->task->user_id),
                          sealed, plain, &err);
    if (rv == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    hint = rv == APR_ENOENT ? "put that key back in GmailSyncTokenKeyFile, below the current one"
         : rv == APR_EINVAL ? "a plaintext token from before tokens were sealed: run "
                              "gmailsync-rotate-key --key-file FILE"
         : "link the Gmail account again";
    id = gs_tokenbox_key_id(p, sealed);
    gs_log_error(GS_LOG_ERR, p, "event=token.undecryptable task=%s user=%s column=%s key=%s "
                 "current_key=%s reason=\"%s\"", s->task->task_id,
                 gs_log_value(p, s->task->user_id), column,
                 id ? id : "none", gs_keyring_current_id(s->conf->token_keys), err);
    return gs_fail(s->failure, p, GS_ERR_TOKEN_UNDECRYPTABLE, "the stored %s cannot be "
                   "decrypted: %s; %s", column, err, hint);
}

/* A new access token (and a rotated refresh token) is stored sealed under the current key. */
static apr_status_t save_token(void *baton, apr_pool_t *p, const char *access_token,
                               long expires_in, const char *new_refresh)
{
    gs_sync_t *s = baton;
    const char *access = NULL, *refresh = NULL;

    if (gs_tokenbox_seal(s->conf->token_keys, p,
                         gs_tokenbox_context(p, "access_token", s->task->user_id), access_token,
                         &access) != APR_SUCCESS
        || (new_refresh && gs_tokenbox_seal(s->conf->token_keys, p,
                                            gs_tokenbox_context(p, "refresh_token",
                                                                s->task->user_id),
                                            new_refresh, &refresh) != APR_SUCCESS)) {
        return gs_fail(s->failure, p, GS_ERR_INTERNAL, "cannot encrypt the new token");
    }
    return gs_store_save_token(s->task, p, access, expires_in, refresh);
}

static apr_status_t save_flight(void *baton, apr_pool_t *p, int level)
{
    gs_sync_t *s = baton;

    return gs_store_save_flight(s->task, p, level);
}

gs_sync_t *gs_sync_create(apr_pool_t *p, const gs_worker_conf_t *conf, gs_task_t *task,
                          gs_http_t *http, gs_failure_t *failure)
{
    gs_sync_t *s = apr_pcalloc(p, sizeof *s);
    gs_oauth_t *oauth = gs_oauth_make(p, conf->token_url, conf->client_id, conf->client_secret,
                                      NULL);

    s->pool = p;
    s->conf = conf;
    s->task = task;
    s->failure = failure;
    task->heartbeat = conf->heartbeat;
    task->progress_interval = conf->progress_interval;
    task->stall_limit = conf->stall_limit;
    task->db_wait = conf->db_wait;
    s->gm = gs_gmail_make(p, http, oauth, conf, failure,
                          apr_pstrcat(p, "task=", task->task_id, NULL));
    gs_http_set_tick(http, heartbeat_tick, s);
    s->gm->token_saved = save_token;
    s->gm->token_baton = s;
    s->gm->on_wait = retry_state;
    s->gm->wait_baton = s;
    s->gm->on_flight = save_flight;
    s->gm->flight_baton = s;
    return s;
}

/* The messages of one store with their content, in one transaction (run again whole when the
 * connection was lost: each message is upserted with its old content deleted first). */
typedef struct {
    gs_sync_store_ctx_t *ctx;
    json_object *rows;
    const apr_array_header_t *raws;
    gs_content_result_t result;
} content_txn_t;

static apr_status_t content_txn(gs_sync_t *s, apr_pool_t *p, void *baton)
{
    content_txn_t *c = baton;
    const char **ids;
    gs_content_opts_t o;
    apr_status_t rv;
    int i;

    o.attachments = s->conf->attachments;
    o.attachment_max_size = s->conf->attachment_max_size;
    o.store_raw = s->conf->store_raw;
    memset(&c->result, 0, sizeof c->result);
    if ((rv = gs_task_hold(s->task, p)) != APR_SUCCESS) {
        return rv;
    }
    ids = apr_palloc(p, sizeof(char *) * (apr_size_t)(c->raws->nelts + 1));
    for (i = 0; i < c->raws->nelts; i++) {
        json_object *row = json_object_array_get_idx(c->rows, (size_t)i);

        rv = gs_content_store(s->task, p, &o, c->ctx->gen, c->ctx->seen_by, row,
                              &APR_ARRAY_IDX(c->raws, i, gs_gmail_raw_t), &c->result);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        ids[i] = json_object_get_string(json_object_object_get(row, "id"));
    }
    /* the search index of the messages, from what was just stored (sql/012), in the same
     * transaction: a message is searchable exactly when its content is committed */
    if ((rv = gs_store_search_refresh(s->task, p, s->conf->search_config, ids, c->raws->nelts))
        != APR_SUCCESS) {
        return rv;
    }
    /* parsing a batch of large or hostile messages can take seconds (more under a loaded
     * machine or a sanitizer): beat again before the commit, so that the beat the daemon sees
     * once it commits is not as old as the transaction (it could be older than StuckAfter) */
    if (apr_time_now() - s->task->last_beat > apr_time_from_sec(1)) {
        return gs_task_hold(s->task, p);
    }
    return APR_SUCCESS;
}

apr_status_t gs_sync_store_rows(void *baton, apr_pool_t *p, json_object *rows,
                                const apr_array_header_t *raws, int nrows, int gone)
{
    gs_sync_store_ctx_t *ctx = baton;
    gs_sync_t *s = ctx->s;
    apr_status_t rv;

    if (raws && nrows > 0) {
        content_txn_t c;

        memset(&c, 0, sizeof c);
        c.ctx = ctx;
        c.rows = rows;
        c.raws = raws;
        rv = gs_sync_transaction(s, p, content_txn, &c);
        if (rv == APR_SUCCESS) {
            s->contents += nrows;
            s->parse_errors += c.result.parse_error;
            s->blobs_stored += c.result.blobs_stored;
            s->blobs_known += c.result.blobs_known;
            if (c.result.cpu_max_id && c.result.cpu_max_us >= s->content_cpu_max_us) {
                s->content_cpu_max_us = c.result.cpu_max_us;
                apr_cpystrn(s->content_cpu_max_id, c.result.cpu_max_id,
                            sizeof s->content_cpu_max_id);
            }
            if (c.result.wall_max_us > s->content_wall_max_us) {
                s->content_wall_max_us = c.result.wall_max_us;
            }
        }
    }
    else {
        rv = gs_store_upsert(s->task, p, ctx->gen, ctx->seen_by, gs_json_to_string(p, rows), nrows);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->fetched += nrows;
    s->gone += gone;
    return ctx->count_progress ? gs_task_progress(s->task, NULL, s->task->total, nrows + gone)
                               : APR_SUCCESS;
}

apr_status_t gs_sync_fetch(gs_sync_t *s, apr_pool_t *p, const char *const *ids, int n,
                           gs_sync_store_ctx_t *ctx)
{
    const char *args[2];
    const char **raw, **meta;
    apr_hash_t *known;
    gs_db_rows_t *rows;
    apr_status_t rv;
    int i, nraw = 0, nmeta = 0;

    if (s->conf->content != GS_CONTENT_FULL || n == 0) {
        return gs_gmail_fetch(s->gm, p, ids, n, GS_FETCH_METADATA, gs_sync_store_rows, ctx);
    }
    args[0] = s->task->user_id;
    args[1] = gs_store_text_array(p, ids, n);
    if ((rv = gs_task_select(s->task, p, GS_SQL_W_CONTENT_KNOWN, &rows, 2, args))
        != APR_SUCCESS) {
        return rv;
    }
    known = apr_hash_make(p);
    for (i = 0; i < rows->nrows; i++) {
        const char *id = gs_db_cell(rows, i, 0);
        if (id) {
            apr_hash_set(known, id, APR_HASH_KEY_STRING, id);
        }
    }
    raw = apr_palloc(p, sizeof(char *) * (apr_size_t)n);
    meta = apr_palloc(p, sizeof(char *) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        if (apr_hash_get(known, ids[i], APR_HASH_KEY_STRING)) {
            meta[nmeta++] = ids[i];
        }
        else {
            raw[nraw++] = ids[i];
        }
    }
    if (nmeta > 0 && (rv = gs_gmail_fetch(s->gm, p, meta, nmeta, GS_FETCH_METADATA,
                                          gs_sync_store_rows, ctx)) != APR_SUCCESS) {
        return rv;
    }
    return nraw > 0 ? gs_gmail_fetch(s->gm, p, raw, nraw, GS_FETCH_RAW, gs_sync_store_rows, ctx)
                    : APR_SUCCESS;
}

/* Ids of messages without content asked per page of the backfill. */
#define BACKFILL_PAGE 500

apr_status_t gs_sync_backfill(gs_sync_t *s, apr_pool_t *p, const char *gen, const char *seen_by,
                              int count_progress)
{
    gs_task_t *t = s->task;
    gs_sync_store_ctx_t ctx;
    const char *after = "";
    apr_status_t rv = APR_SUCCESS;
    int n;

    if (s->conf->content != GS_CONTENT_FULL) {
        return APR_SUCCESS;
    }
    ctx.s = s;
    ctx.gen = gen;
    ctx.seen_by = seen_by;
    ctx.count_progress = count_progress;
    do {
        const char *args[5] = { t->user_id, after, seen_by, seen_by, NULL };
        const char **ids;
        gs_db_rows_t *rows;
        apr_pool_t *pp;
        int i;

        if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
            return rv;
        }
        args[4] = apr_itoa(pp, BACKFILL_PAGE);
        rv = gs_task_select(t, pp, GS_SQL_W_CONTENT_MISSING, &rows, 5, args);
        n = rv == APR_SUCCESS ? rows->nrows : 0;
        if (n > 0) {
            ids = apr_palloc(pp, sizeof(char *) * (apr_size_t)n);
            for (i = 0; i < n; i++) {
                ids[i] = gs_db_cell(rows, i, 0);
            }
            after = apr_pstrdup(p, ids[n - 1]);
            if (s->backfilled == 0) {
                gs_log_error(GS_LOG_INFO, pp, "event=sync.backfill task=%s reason=\"messages "
                             "stored without their content: fetching it\"", t->task_id);
            }
            s->backfilled += n;
            if (count_progress) {
                rv = gs_task_progress(t, NULL, t->total + n, 0);
            }
            if (rv == APR_SUCCESS) {
                rv = gs_gmail_fetch(s->gm, pp, ids, n, GS_FETCH_RAW, gs_sync_store_rows, &ctx);
            }
        }
        apr_pool_destroy(pp);
    } while (rv == APR_SUCCESS && n == BACKFILL_PAGE);
    return rv;
}

/* How many times one transaction runs again after losing its connection. */
#define TXN_REPLAYS 5

static apr_status_t txn_once(gs_sync_t *s, apr_pool_t *p, gs_sync_txn_fn *body, void *baton)
{
    gs_db_t *db = s->task->db;
    apr_status_t rv;

    if (gs_db_begin(db, p) != APR_SUCCESS) {
        return gs_fail(s->failure, p, GS_ERR_DB_UNAVAILABLE, "the database did not begin a "
                       "transaction: %s", db->last_error ? db->last_error : "unknown error");
    }
    if ((rv = body(s, p, baton)) != APR_SUCCESS) {
        gs_db_rollback(db);
        return rv;
    }
    if (gs_db_commit(db) != APR_SUCCESS) {
        return gs_fail(s->failure, p, GS_ERR_DB_UNAVAILABLE, "the database did not commit: %s",
                       db->last_error ? db->last_error : "unknown error");
    }
    return APR_SUCCESS;
}

apr_status_t gs_sync_transaction(gs_sync_t *s, apr_pool_t *p, gs_sync_txn_fn *body, void *baton)
{
    gs_task_t *t = s->task;
    apr_status_t rv;
    int replays = 0;

    for (;;) {
        unsigned long resets = t->db->resets;
        apr_pool_t *tp;

        if ((rv = apr_pool_create(&tp, p)) != APR_SUCCESS) {
            return rv;
        }
        rv = txn_once(s, tp, body, baton);
        if (rv != GS_EFAILED || !s->failure->code
            || strcmp(s->failure->code, GS_ERR_DB_UNAVAILABLE) || replays == TXN_REPLAYS
            || !gs_task_db_back(t, p, resets)) {
            apr_pool_destroy(tp);     /* the failure record owns its message */
            return rv;
        }
        apr_pool_destroy(tp);
        replays++;
        gs_log_error(GS_LOG_NOTICE, p, "event=db.transaction_replayed task=%s replay=%d "
                     "reason=\"the connection was lost during the transaction\"", t->task_id,
                     replays);
        s->failure->code = NULL;
        s->failure->message = NULL;
    }
}

/* The final transaction: SUCCEEDED (lease-guarded) and what the end records. */
typedef struct {
    gs_sync_record_fn *record;
    void *baton;
    const char *labels;     /* users.labels.list as gmailsync.labels rows (JSON) */
} succeed_ctx_t;

/* The finished-sync event on gmailsync_events, last in the final transaction (after the record,
 * which may count removals): sent when, and only if, the transaction commits. Added are the
 * messages written (new, or refetched by a full sync); deleted counts Gmail's deletions and the
 * rows a full sync did not list; relabeled the label changes applied. */
static apr_status_t notify_synced(gs_sync_t *s, apr_pool_t *p)
{
    const char *args[5];
    gs_db_rows_t *rows;

    args[0] = s->mode ? s->mode : "incremental";
    args[1] = apr_psprintf(p, "%" APR_INT64_T_FMT, s->fetched);
    args[2] = apr_psprintf(p, "%" APR_INT64_T_FMT, s->deleted + s->removed);
    args[3] = apr_psprintf(p, "%" APR_INT64_T_FMT, s->relabeled);
    args[4] = s->task->task_id;
    return gs_task_select(s->task, p, GS_SQL_W_SYNC_NOTIFY, &rows, 5, args);
}

static apr_status_t succeed_body(gs_sync_t *s, apr_pool_t *p, void *baton)
{
    succeed_ctx_t *ctx = baton;
    apr_status_t rv = gs_task_succeed(s->task, p, &s->duration_ms);

    if (rv == APR_SUCCESS) {
        rv = ctx->record(s, p, ctx->baton);
    }
    if (rv == APR_SUCCESS) {
        rv = gs_store_labels(s->task, p, ctx->labels, &s->labels_written, &s->labels_removed);
    }
    return rv == APR_SUCCESS ? notify_synced(s, p) : rv;
}

apr_status_t gs_sync_succeed(gs_sync_t *s, apr_pool_t *p, gs_sync_record_fn *record,
                             void *baton)
{
    succeed_ctx_t ctx = { record, baton, NULL };
    apr_status_t rv;

    /* the label names with every sync (1 unit), asked before the final transaction: a Gmail
     * call never holds one open. A label renamed after this answer shows after the next sync */
    if ((rv = gs_gmail_labels(s->gm, p, &ctx.labels, &s->labels)) != APR_SUCCESS) {
        return rv;
    }
    return gs_sync_transaction(s, p, succeed_body, &ctx);
}

/* ------------------------------------------------------------------ the task */

static apr_status_t run(gs_sync_t *s, apr_pool_t *p)
{
    gs_task_t *t = s->task;
    gs_account_t *acc = &s->account;
    const char *refresh, *access = NULL, *inexact = NULL;
    apr_status_t rv;

    if ((rv = gs_store_load_account(t, p, acc)) != APR_SUCCESS
        || (rv = open_token(s, p, "refresh_token", acc->refresh_token, &refresh)) != APR_SUCCESS
        || (acc->access_ttl > 0
            && (rv = open_token(s, p, "access_token", acc->access_token, &access))
               != APR_SUCCESS)) {
        return rv;
    }
    s->gm->oauth->refresh_token = refresh;
    gs_gmail_flight_reset(s->gm, acc->parts_in_flight);
    if (access) {
        gs_oauth_set_token(s->gm->oauth, access, apr_time_from_sec(acc->access_ttl),
                           apr_time_now());
    }
    if ((rv = gs_gmail_ensure_token(s->gm, p)) != APR_SUCCESS) {
        return rv;
    }
    if (t->force_full) {
        s->reason = "force_full";
    }
    else if (s->conf->mode == GS_SYNC_FULL) {
        s->reason = "mode_full";
    }
    else if (acc->pending_task && acc->pending_fresh) {
        s->reason = "resume";
    }
    else if (!acc->history_id) {
        s->reason = "no_cursor";
    }
    else {
        s->reason = "cursor";
        rv = gs_sync_incremental(s, p);
        if (rv != GS_ENOTFOUND) {
            return rv;
        }
        gs_log_error(GS_LOG_NOTICE, p, "event=sync.fallback task=%s reason=history_expired "
                     "start_history_id=%s to=repair", t->task_id, acc->history_id);
        s->reason = "history_expired";
        rv = gs_sync_repair(s, p, &inexact);
        if (rv != APR_SUCCESS || !inexact) {
            return rv;
        }
        gs_log_error(GS_LOG_NOTICE, p, "event=sync.fallback task=%s from=repair reason=%s "
                     "to=full detail=\"the repair cannot be exact: every message is fetched "
                     "again\"", t->task_id, inexact);
        s->reason = apr_pstrcat(p, "repair_", inexact, NULL);
    }
    return gs_sync_full(s, p);
}

/* The process's peak resident memory in KB: VmHWM of /proc/self/status (Linux), -1 where there
 * is none. Not getrusage's ru_maxrss: that also counts the memory of the process the worker was
 * forked from, until its exec. */
static long peak_rss_kb(apr_pool_t *p)
{
    apr_file_t *f;
    char line[256];
    long kb = -1;

    if (apr_file_open(&f, "/proc/self/status", APR_FOPEN_READ | APR_FOPEN_BUFFERED, 0, p)
        != APR_SUCCESS) {
        return -1;
    }
    while (apr_file_gets(line, sizeof line, f) == APR_SUCCESS) {
        if (!strncmp(line, "VmHWM:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    (void)apr_file_close(f);
    return kb;
}

static void log_end(gs_sync_t *s, apr_pool_t *p, const char *event)
{
    gs_gmail_t *gm = s->gm;

    gs_log_error(s->failure->code ? GS_LOG_WARNING : GS_LOG_INFO, p,
                 "event=%s task=%s user=%s mode=%s duration_ms=%" APR_INT64_T_FMT
                 " processed=%" APR_INT64_T_FMT " fetched=%" APR_INT64_T_FMT
                 " skipped=%" APR_INT64_T_FMT " gone=%" APR_INT64_T_FMT " deleted=%" APR_INT64_T_FMT
                 " relabeled=%" APR_INT64_T_FMT " removed=%" APR_INT64_T_FMT
                 " gmail_calls=%" APR_INT64_T_FMT " batch_parts=%" APR_INT64_T_FMT
                 " quota_units=%" APR_INT64_T_FMT " retries=%" APR_INT64_T_FMT
                 " rate_limited=%" APR_INT64_T_FMT " refused_rate=%" APR_INT64_T_FMT
                 " refused_concurrent=%" APR_INT64_T_FMT " parts_in_flight=%d"
                 " contents=%" APR_INT64_T_FMT " parse_errors=%" APR_INT64_T_FMT
                 " backfilled=%" APR_INT64_T_FMT " blobs_stored=%" APR_INT64_T_FMT
                 " blobs_known=%" APR_INT64_T_FMT " content_cpu_max_ms=%.1f"
                 " content_cpu_max_id=%s content_wall_max_ms=%.1f"
                 " spooled=%" APR_INT64_T_FMT
                 " spooled_mb=%" APR_INT64_T_FMT " batch_size=%d peak_rss_kb=%ld"
                 " labels=%d labels_written=%d labels_removed=%d pace_units=%.0f progress_writes=%" APR_INT64_T_FMT
                 "%s%s%s%s%s",
                 event, s->task->task_id, gs_log_value(p, s->task->user_id),
                 s->mode ? s->mode : "-",
                 s->duration_ms, s->task->processed, s->fetched, s->skipped, s->gone, s->deleted,
                 s->relabeled, s->removed, gm->calls, gm->batch_parts, gm->units,
                 gm->retries_done, gm->rate_limited, gm->refused_rate, gm->refused_concurrent,
                 gm->flight.level, s->contents, s->parse_errors, s->backfilled, s->blobs_stored,
                 s->blobs_known, (double)s->content_cpu_max_us / 1000.0,
                 s->content_cpu_max_id[0] ? s->content_cpu_max_id : "-",
                 (double)s->content_wall_max_us / 1000.0, gm->spooled, gm->spooled_bytes >> 20,
                 gm->batch_size, peak_rss_kb(p), s->labels, s->labels_written, s->labels_removed,
                 gm->pace.rate, s->task->progress_writes,
                 s->failure->code ? " error=" : "", s->failure->code ? s->failure->code : "",
                 s->failure->code ? " message=\"" : "",
                 s->failure->code ? s->failure->message : "", s->failure->code ? "\"" : "");
}

/* How many times a sync starts again after the database changed servers under it. */
#define GS_SYNC_MAX_RESTARTS 3

gs_sync_outcome_t gs_sync_run(gs_sync_t *s)
{
    gs_task_t *t = s->task;
    apr_pool_t *p;
    apr_status_t rv;
    char extra[128];
    int restarts = 0;

    if (apr_pool_create(&p, s->pool) != APR_SUCCESS) {
        return GS_SYNC_UNRECORDED;
    }
    while ((rv = run(s, p)) == GS_EMOVED && restarts < GS_SYNC_MAX_RESTARTS) {
        /* a failover: the new server may lack what this sync wrote (its last pages, even the
         * cursor or the full sync's bookkeeping). Nothing is taken from memory: the sync starts
         * again from the account as this server stores it (a full sync resumes, skipping what
         * it has), so it cannot end SUCCEEDED over a hole */
        restarts++;
        gs_log_error(GS_LOG_NOTICE, p, "event=sync.restarted task=%s restart=%d mode=%s "
                     "processed=%" APR_INT64_T_FMT " reason=database_changed", t->task_id,
                     restarts, s->mode ? s->mode : "-", t->processed);
        gs_db_rollback(t->db);
        gs_task_restart(t);
        s->resumed = 0;
    }
    if (rv == GS_EMOVED) {
        rv = gs_fail(s->failure, p, GS_ERR_DB_UNAVAILABLE, "the database changed servers %d "
                     "times during the sync (failovers); the next sync continues", restarts + 1);
    }
    /* before the final state line, whatever the outcome: the daemon counts Gmail's answers */
    gs_task_announce_calls(t, s->gm->answers);
    if (rv == APR_SUCCESS) {
        apr_snprintf(extra, sizeof extra, "processed=%" APR_INT64_T_FMT " total=%" APR_INT64_T_FMT
                     " pct=100.00", t->processed, t->processed);
        gs_task_announce_state(t, "SUCCEEDED", extra);
        log_end(s, p, "task.succeeded");
        apr_pool_destroy(p);
        return GS_SYNC_SUCCEEDED;
    }
    if (rv != GS_ELOST) {
        if (rv != GS_EFAILED) {
            char buf[120];
            gs_fail(s->failure, p, GS_ERR_INTERNAL, "unexpected error: %s",
                    apr_strerror(rv, buf, sizeof buf));
        }
        gs_db_rollback(t->db);
        rv = gs_task_fail(t, p, &s->duration_ms);
        if (rv == APR_SUCCESS) {
            apr_snprintf(extra, sizeof extra, "code=%s", s->failure->code);
            gs_task_announce_state(t, "FAILED", extra);
            log_end(s, p, "task.failed");
            apr_pool_destroy(p);
            return GS_SYNC_FAILED;
        }
        if (rv != GS_ELOST) {
            log_end(s, p, "task.failed");
            gs_log_error(GS_LOG_ERR, p, "event=task.unrecorded task=%s reason=\"the FAILED state "
                         "could not be written; the daemon or cleanup will finish the task\"",
                         t->task_id);
            apr_pool_destroy(p);
            return GS_SYNC_UNRECORDED;
        }
    }
    gs_task_announce_state(t, "LOST", NULL);
    gs_log_error(GS_LOG_NOTICE, p, "event=task.lost task=%s mode=%s processed=%" APR_INT64_T_FMT
                 " reason=\"the task was cancelled or taken over; stopped without writing\"",
                 t->task_id, s->mode ? s->mode : "-", t->processed);
    apr_pool_destroy(p);
    return GS_SYNC_LOST;
}
