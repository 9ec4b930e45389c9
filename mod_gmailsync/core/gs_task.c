/* gs_task.c -- see gs_task.h */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gs_board.h"
#include "gs_log.h"
#include "gs_sql.h"
#include "gs_task.h"

int gs_task_pct(apr_int64_t processed, apr_int64_t total)
{
    apr_int64_t pct;

    if (total <= 0 || processed <= 0) {
        return 0;
    }
    pct = processed >= total ? 10000 : processed * 10000 / total;
    return pct > 9900 ? 9900 : (int)pct;
}

/* Is the connection usable? libpq may still call a connection OK right after the server
 * closed it (a FATAL message read, the EOF not yet): a trivial query tells for sure. */
static int alive(gs_task_t *t, apr_pool_t *p)
{
    gs_db_rows_t *rows;
    const char *saved = t->db->last_error;
    int ok = gs_db_ping(t->db, p)
             && (t->db->in_transaction
                 || gs_db_select(t->db, p, GS_SQL_SCHEMA_VERSION, &rows, 0, NULL) == APR_SUCCESS);

    t->db->last_error = saved;   /* keep the error of the statement that failed */
    return ok;
}

static apr_status_t db_failure(gs_task_t *t, apr_pool_t *p, const char *label)
{
    const char *why = t->db->last_error ? t->db->last_error : "unknown error";

    if (!alive(t, p)) {
        return gs_fail(t->failure, p, GS_ERR_DB_UNAVAILABLE,
                       "the database connection was lost (%s): %s", label, why);
    }
    if (!strcmp(t->db->last_sqlstate, "53100")) {
        /* disk_full (class 53's other states: out of memory, too many connections... are not
         * storage) */
        return gs_fail(t->failure, p, GS_ERR_STORAGE_FULL,
                       "the database is out of disk space (%s, SQLSTATE 53100): %s; what was "
                       "stored is kept, and the next sync continues once an operator frees space",
                       label, why);
    }
    return gs_fail(t->failure, p, GS_ERR_INTERNAL, "a database statement failed (%s): %s", label,
                   why);
}

/* The database went away (a restart, a failover): outside a transaction, wait for it to come
 * back, with a bounded back-off, so that the statement can run again and the sync continues.
 * `resets` is the connection's reset count before the statement ran: a connection that is alive
 * now but was reset since lost the statement to the outage too. Returns 1 when it is back; 0 for
 * an ordinary SQL error, inside a transaction, or when the outage outlasts t->db_wait (the sync
 * then fails with db_unavailable). See gs_task.h. */
int gs_task_db_back(gs_task_t *t, apr_pool_t *p, unsigned long resets)
{
    apr_time_t began = apr_time_now(), deadline = began + t->db_wait;
    apr_interval_time_t delay = apr_time_from_msec(100);

    if (t->db->in_transaction) {
        return 0;
    }
    if (alive(t, p)) {
        return t->db->resets != resets;
    }
    gs_log_error(GS_LOG_WARNING, p, "event=db.waiting task=%s max_wait_ms=%" APR_INT64_T_FMT
                 " reason=\"%s\"", t->task_id, (apr_int64_t)apr_time_as_msec(t->db_wait),
                 t->db->last_error ? gs_error_clean(p, t->db->last_error, 200) : "unknown");
    while (apr_time_now() < deadline) {
        apr_sleep(delay);
        delay = delay * 2 > apr_time_from_sec(1) ? apr_time_from_sec(1) : delay * 2;
        if (alive(t, p)) {
            gs_log_error(GS_LOG_NOTICE, p, "event=db.back task=%s waited_ms=%" APR_INT64_T_FMT,
                         t->task_id, (apr_int64_t)apr_time_as_msec(apr_time_now() - began));
            return 1;
        }
    }
    return 0;
}

apr_status_t gs_task_check_server(gs_task_t *t, apr_pool_t *p)
{
    unsigned long sessions = t->db->sessions;
    const char *saved = t->db->last_error, *id;
    gs_db_rows_t *rows;

    if (sessions == t->db_sessions) {
        return APR_SUCCESS;
    }
    if (gs_db_select(t->db, p, GS_SQL_W_DB_IDENTITY, &rows, 0, NULL) != APR_SUCCESS
        || !(id = gs_db_cell(rows, 0, 0))) {
        /* asked again after the next statement (a connection that broke again is waited for
         * there) */
        t->db->last_error = saved;
        return APR_SUCCESS;
    }
    t->db_sessions = sessions;
    if (!t->db_identity) {
        t->db_identity = apr_pstrdup(t->pool, id);
        return APR_SUCCESS;
    }
    if (!strcmp(t->db_identity, id)) {
        return APR_SUCCESS;
    }
    gs_log_error(GS_LOG_WARNING, p, "event=db.moved task=%s was=%s now=%s reason=\"the database "
                 "is another server now (a failover): what this sync wrote since the standby's "
                 "last replay may be lost; starting again from what is stored\"", t->task_id,
                 t->db_identity, id);
    t->db_identity = apr_pstrdup(t->pool, id);
    return GS_EMOVED;
}

void gs_task_restart(gs_task_t *t)
{
    t->processed = 0;
    t->dirty = 1;
    t->last_progress = 0;
}

apr_status_t gs_task_exec(gs_task_t *t, apr_pool_t *p, const char *label, int guarded,
                          int *affected, int nargs, const char *const *args)
{
    unsigned long resets = t->db->resets;
    int n = 0;
    apr_status_t rv = gs_db_exec(t->db, p, label, &n, nargs, args);

    if (rv != APR_SUCCESS && gs_task_db_back(t, p, resets)) {
        rv = gs_db_exec(t->db, p, label, &n, nargs, args);
    }
    if (rv != APR_SUCCESS) {
        return db_failure(t, p, label);
    }
    if ((rv = gs_task_check_server(t, p)) != APR_SUCCESS) {
        return rv;
    }
    if (affected) {
        *affected = n;
    }
    return guarded && n == 0 ? GS_ELOST : APR_SUCCESS;
}

apr_status_t gs_task_select(gs_task_t *t, apr_pool_t *p, const char *label, gs_db_rows_t **rows,
                            int nargs, const char *const *args)
{
    unsigned long resets = t->db->resets;
    apr_status_t rv = gs_db_select(t->db, p, label, rows, nargs, args);

    if (rv != APR_SUCCESS && gs_task_db_back(t, p, resets)) {
        rv = gs_db_select(t->db, p, label, rows, nargs, args);
    }
    return rv == APR_SUCCESS ? gs_task_check_server(t, p) : db_failure(t, p, label);
}

apr_status_t gs_task_acquire(gs_task_t **pt, apr_pool_t *p, gs_db_t *db, gs_failure_t *failure,
                             const char *task_id, const char *lease, const char *host, int pid,
                             const char *version)
{
    gs_task_t *t = apr_pcalloc(p, sizeof *t);
    const char *pid_s = apr_itoa(p, pid);
    const char *args[5] = { host, pid_s, version, task_id, lease };
    gs_db_rows_t *rows;
    apr_status_t rv;

    t->pool = p;
    t->db = db;
    t->failure = failure;
    t->task_id = apr_pstrdup(p, task_id);
    t->db_wait = GS_TASK_DB_WAIT;
    rv = gs_task_select(t, p, lease ? GS_SQL_W_TASK_ADOPT : GS_SQL_W_TASK_CLAIM, &rows,
                        lease ? 5 : 4, args);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rows->nrows != 1) {
        return GS_ELOST;
    }
    t->lease = gs_db_cell(rows, 0, 0);
    t->user_id = gs_db_cell(rows, 0, 1);
    t->force_full = gs_db_cell(rows, 0, 2) && !strcmp(gs_db_cell(rows, 0, 2), "1");
    /* an adopted task may have run before (its end was lost in a failover): the percentage it
     * showed never goes back */
    if (rows->ncols > 3 && gs_db_cell(rows, 0, 3)) {
        t->pct = atoi(gs_db_cell(rows, 0, 3));
        t->pct = t->pct < 0 ? 0 : t->pct > 9900 ? 9900 : t->pct;
    }
    t->heartbeat = apr_time_from_sec(5);
    t->progress_interval = apr_time_from_sec(1);
    t->db_wait = GS_TASK_DB_WAIT;
    t->last_beat = t->last_advance = apr_time_now();
    *pt = t;
    return APR_SUCCESS;
}

void gs_task_note_advance(gs_task_t *t)
{
    t->last_advance = apr_time_now();
    t->stalled = 0;
}

void gs_task_set_announce(gs_task_t *t, gs_task_announce_cb *cb, void *baton)
{
    t->announce = cb;
    t->announce_baton = baton;
}

void gs_task_announce_state(gs_task_t *t, const char *state, const char *extra)
{
    if (t->announce) {
        char line[GS_BOARD_LINE_MAX];

        t->announce(t->announce_baton, line, gs_board_state(line, t->task_id, state, extra));
    }
}

void gs_task_announce_calls(gs_task_t *t, const apr_int64_t calls[GS_BOARD_CALL_CLASSES])
{
    if (t->announce) {
        char line[GS_BOARD_LINE_MAX];

        t->announce(t->announce_baton, line, gs_board_calls(line, t->task_id, calls));
    }
}

static void announce_progress(gs_task_t *t, apr_time_t now)
{
    if (t->announce && t->mode) {
        char line[GS_BOARD_LINE_MAX];

        t->last_announce = now;
        t->announce(t->announce_baton, line,
                    gs_board_progress(line, t->task_id, t->mode, t->processed,
                                      t->total > t->processed ? t->total : t->processed, t->pct));
    }
}

static apr_status_t write_progress(gs_task_t *t, apr_time_t now)
{
    apr_pool_t *p;
    apr_status_t rv;
    const char *args[6];

    if ((rv = apr_pool_create(&p, t->pool)) != APR_SUCCESS) {
        return rv;
    }
    args[0] = t->mode;
    args[1] = apr_ltoa(p, (long)t->processed);
    args[2] = apr_ltoa(p, (long)(t->total > t->processed ? t->total : t->processed));
    args[3] = apr_psprintf(p, "%d.%02d", t->pct / 100, t->pct % 100);
    args[4] = t->task_id;
    args[5] = t->lease;
    rv = gs_task_exec(t, p, GS_SQL_W_TASK_PROGRESS, 1, NULL, 6, args);
    if (rv == APR_SUCCESS) {
        t->dirty = 0;
        t->last_progress = t->last_beat = now;
        t->progress_writes++;
        gs_log_error(GS_LOG_INFO, p, "event=progress task=%s mode=%s processed=%s total=%s pct=%s",
                     t->task_id, t->mode ? t->mode : "-", args[1], args[2], args[3]);
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t gs_task_retrying(gs_task_t *t, const char *reason, apr_interval_time_t wait,
                              int attempt)
{
    apr_time_t now = apr_time_now();
    const char *args[5];
    apr_status_t rv;
    apr_pool_t *p;

    if ((rv = apr_pool_create(&p, t->pool)) != APR_SUCCESS) {
        return rv;
    }
    args[0] = reason;
    args[1] = apr_psprintf(p, "%.3f", (double)wait / APR_USEC_PER_SEC);
    args[2] = apr_itoa(p, attempt);
    args[3] = t->task_id;
    args[4] = t->lease;
    rv = gs_task_exec(t, p, GS_SQL_W_TASK_RETRYING, 1, NULL, 5, args);
    if (rv == APR_SUCCESS) {
        t->retry_reason = reason;
        t->retry_until = now + wait;
        t->last_beat = now;
        gs_task_note_advance(t);
        if (t->announce) {
            char line[GS_BOARD_LINE_MAX];

            t->announce(t->announce_baton, line,
                        gs_board_retrying(line, t->task_id, reason,
                                          (apr_int64_t)apr_time_as_msec(wait), attempt));
        }
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t gs_task_recovered(gs_task_t *t)
{
    const char *args[2] = { t->task_id, t->lease };
    apr_status_t rv;
    apr_pool_t *p;

    if (!t->retry_reason) {
        return APR_SUCCESS;
    }
    if ((rv = apr_pool_create(&p, t->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = gs_task_exec(t, p, GS_SQL_W_TASK_RECOVERED, 1, NULL, 2, args);
    if (rv == APR_SUCCESS) {
        gs_log_error(GS_LOG_INFO, p, "event=gmail.recovered task=%s reason=%s", t->task_id,
                     t->retry_reason);
        t->retry_reason = NULL;
        t->retry_until = 0;
        t->last_beat = apr_time_now();
        if (t->announce) {
            char line[GS_BOARD_LINE_MAX];

            t->announce(t->announce_baton, line, gs_board_retrying(line, t->task_id, NULL, 0, 0));
        }
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t gs_task_tick(gs_task_t *t)
{
    apr_time_t now = apr_time_now();
    const char *args[2] = { t->task_id, t->lease };
    apr_status_t rv;
    apr_pool_t *p;

    if (t->retry_until && now < t->retry_until) {
        /* a declared wait on Gmail (a backoff, a Retry-After) is going somewhere: the watchdog
         * measures silence from its end */
        gs_task_note_advance(t);
    }
    if (t->dirty && (!t->last_progress || now - t->last_progress >= t->progress_interval)) {
        return write_progress(t, now);
    }
    if (now - t->last_beat < t->heartbeat) {
        return APR_SUCCESS;
    }
    if (t->stall_limit > 0 && now - t->last_advance > t->stall_limit) {
        /* alive but going nowhere: stop vouching for this worker, so that the task is found
         * STUCK and finished off instead of blocking the user's syncs for good */
        if (!t->stalled) {
            t->stalled = 1;
            gs_log_error(GS_LOG_WARNING, t->pool, "event=worker.stalled task=%s "
                         "no_progress_ms=%" APR_INT64_T_FMT " processed=%" APR_INT64_T_FMT,
                         t->task_id, (apr_int64_t)apr_time_as_msec(now - t->last_advance),
                         t->processed);
        }
        return APR_SUCCESS;
    }
    if ((rv = apr_pool_create(&p, t->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = gs_task_exec(t, p, GS_SQL_W_TASK_HEARTBEAT, 1, NULL, 2, args);
    if (rv == APR_SUCCESS) {
        t->last_beat = now;
        t->heartbeats++;
        gs_log_error(GS_LOG_DEBUG, p, "event=heartbeat task=%s", t->task_id);
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t gs_task_progress(gs_task_t *t, const char *mode, apr_int64_t total,
                              apr_int64_t done)
{
    apr_time_t now = apr_time_now();
    int pct;

    if (mode && (!t->mode || strcmp(mode, t->mode))) {
        t->mode = mode;
        t->dirty = 1;
    }
    if (total != t->total || done) {
        t->dirty = 1;
    }
    if (t->dirty) {
        gs_task_note_advance(t);
    }
    t->total = total;
    t->processed += done;
    pct = gs_task_pct(t->processed, t->total);
    if (pct > t->pct) {
        t->pct = pct;
    }
    if (now - t->last_announce >= GS_BOARD_MIN_GAP) {
        announce_progress(t, now);
    }
    return gs_task_tick(t);
}

apr_status_t gs_task_hold(gs_task_t *t, apr_pool_t *p)
{
    const char *args[2] = { t->task_id, t->lease };
    apr_status_t rv = gs_task_exec(t, p, GS_SQL_W_TASK_HEARTBEAT, 1, NULL, 2, args);

    if (rv == APR_SUCCESS) {
        t->last_beat = apr_time_now();
    }
    return rv;
}

static apr_status_t finish(gs_task_t *t, apr_pool_t *p, const char *label, int nargs,
                           const char *const *args, apr_int64_t *duration_ms)
{
    gs_db_rows_t *rows;
    apr_status_t rv = gs_task_select(t, p, label, &rows, nargs, args);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rows->nrows != 1) {
        return GS_ELOST;
    }
    *duration_ms = gs_db_cell(rows, 0, 0) ? apr_atoi64(gs_db_cell(rows, 0, 0)) : 0;
    return APR_SUCCESS;
}

apr_status_t gs_task_succeed(gs_task_t *t, apr_pool_t *p, apr_int64_t *duration_ms)
{
    const char *n = apr_ltoa(p, (long)t->processed);
    const char *args[5] = { t->mode, n, n, t->task_id, t->lease };

    return finish(t, p, GS_SQL_W_TASK_SUCCEED, 5, args, duration_ms);
}

apr_status_t gs_task_fail(gs_task_t *t, apr_pool_t *p, apr_int64_t *duration_ms)
{
    const char *args[5] = { t->mode, t->failure->code ? t->failure->code : GS_ERR_INTERNAL,
                            t->failure->message ? t->failure->message : "unknown error",
                            t->task_id, t->lease };

    return finish(t, p, GS_SQL_W_TASK_FAIL, 5, args, duration_ms);
}
