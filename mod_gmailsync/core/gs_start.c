/* gs_start.c -- see gs_start.h */
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "gs_log.h"
#include "gs_sql.h"
#include "gs_start.h"

static const char *millis(apr_pool_t *p, apr_interval_time_t t)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)(t / 1000));
}

apr_status_t gs_start_sync(gs_db_t *db, apr_pool_t *p, const char *user_id, int force_full,
                           const gs_start_opts_t *opts, gs_start_result_t *out)
{
    return gs_start_sync_as(db, p, user_id, force_full, GS_TRIGGER_USER, opts, out);
}

apr_status_t gs_start_sync_as(gs_db_t *db, apr_pool_t *p, const char *user_id, int force_full,
                              const char *trigger, const gs_start_opts_t *opts,
                              gs_start_result_t *out)
{
    const char *timeouts[2], *user[1] = { user_id }, *insert[3];
    gs_db_rows_t *rows;
    apr_status_t rv;
    apr_time_t t0 = apr_time_now(), t1;

    /* the repeat start: one read through the partial unique index, without the lock, so that a
     * burst of clicks on a running sync does not queue on the advisory lock. The answer is true
     * when it is read; a task that ends a moment later is the same as one ending after the reply */
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_ACTIVE_TASK, &rows, 1, user))) {
        return rv;
    }
    t1 = apr_time_now();
    out->t_check = t1 - t0;
    if (rows->nrows) {
        out->task_id = gs_db_cell(rows, 0, 0);
        out->state = gs_db_cell(rows, 0, 1);
        out->reused = 1;
        gs_log_perror(GS_LOG_MARK, GS_LOG_INFO, APR_SUCCESS, p, "event=active.check user=%s "
                      "active=%s source=index", gs_log_value(p, user_id), out->task_id);
        return APR_SUCCESS;
    }

    timeouts[0] = millis(p, opts->lock_timeout);
    timeouts[1] = millis(p, opts->statement_timeout);
    insert[0] = user_id;
    insert[1] = force_full ? "true" : "false";
    insert[2] = trigger;

    if (APR_SUCCESS != (rv = gs_db_begin(db, p))
        || APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_START_TIMEOUTS, &rows, 2, timeouts))
        || APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_START_LOCK, &rows, 1, user))) {
        goto leave;
    }
    t0 = apr_time_now();
    out->t_lock = t0 - t1;
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_ACTIVE_TASK_LOCK, &rows, 1, user))) {
        goto leave;
    }
    gs_log_perror(GS_LOG_MARK, GS_LOG_INFO, APR_SUCCESS, p,
                  "event=active.check user=%s active=%s", gs_log_value(p, user_id),
                  rows->nrows ? gs_db_cell(rows, 0, 0) : "none");
    if (rows->nrows == 0) {
        if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_ACCOUNT_EXISTS, &rows, 1, user))) {
            goto leave;
        }
        if (rows->nrows == 0) {
            rv = APR_NOTFOUND;
            goto leave;
        }
        if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_INSERT_TASK, &rows, 3, insert))) {
            goto leave;
        }
        out->reused = rows->nrows == 0;
        if (out->reused) {
            /* ON CONFLICT DO NOTHING returns nothing: someone without the lock got there first */
            rv = gs_db_select(db, p, GS_SQL_ACTIVE_TASK_LOCK, &rows, 1, user);
            if (rv == APR_SUCCESS && rows->nrows == 0) {
                db->last_error = "active task vanished during start";
                rv = APR_EGENERAL;
            }
            if (rv != APR_SUCCESS) {
                goto leave;
            }
        }
    }
    else {
        out->reused = 1;
    }
    out->task_id = gs_db_cell(rows, 0, 0);
    out->state = gs_db_cell(rows, 0, 1);
    t1 = apr_time_now();
    out->t_insert = t1 - t0;
    rv = gs_db_commit(db);
    out->t_commit = apr_time_now() - t1;

leave:
    if (rv != APR_SUCCESS) {
        gs_db_rollback(db);
    }
    return rv;
}

/* One due account of a scheduling round, inside the round's transaction: the user's start lock
 * (not waited for: a click holding it is starting a sync), the due check again with a fresh
 * snapshot under it, then the same insert as a click, guarded by the same partial unique index.
 * Returns APR_SUCCESS with *created set (0: skipped, *why says why). */
static apr_status_t schedule_one(gs_db_t *db, apr_pool_t *p, const gs_schedule_opts_t *opts,
                                 const char *user_id, int *created, const char **why,
                                 const char **task_id)
{
    const char *user[1] = { user_id }, *due[3], *insert[3];
    gs_db_rows_t *rows;
    apr_status_t rv;

    *created = 0;
    *why = "active";
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_START_TRY_LOCK, &rows, 1, user))) {
        return rv;
    }
    if (!rows->nrows || strcmp(gs_db_cell(rows, 0, 0) ? gs_db_cell(rows, 0, 0) : "", "true")) {
        *why = "locked";
        return APR_SUCCESS;
    }
    due[0] = opts->interval_s;
    due[1] = opts->backoff_max_s;
    due[2] = user_id;
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_D_SCHEDULE_DUE, &rows, 3, due))) {
        return rv;
    }
    if (!rows->nrows) {
        return APR_SUCCESS; /* a click or another host started it, or it just ended */
    }
    insert[0] = user_id;
    insert[1] = "false";
    insert[2] = GS_TRIGGER_SCHEDULE;
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_INSERT_TASK, &rows, 3, insert))) {
        return rv;
    }
    if (rows->nrows) {
        *created = 1;
        *why = "started";
        *task_id = gs_db_cell(rows, 0, 0);
    }
    return APR_SUCCESS;
}

apr_status_t gs_start_scheduled(gs_db_t *db, apr_pool_t *p, const gs_schedule_opts_t *opts,
                                long room, gs_schedule_result_t *out)
{
    const char *timeouts[2], *pick[3];
    gs_db_rows_t *rows;
    apr_status_t rv;
    int i, n;

    memset(out, 0, sizeof *out);
    if (room <= 0) {
        return APR_SUCCESS;
    }
    timeouts[0] = millis(p, opts->start.lock_timeout);
    timeouts[1] = millis(p, opts->start.statement_timeout);
    pick[0] = opts->interval_s;
    pick[1] = opts->backoff_max_s;
    pick[2] = apr_ltoa(p, room);
    if (APR_SUCCESS != (rv = gs_db_begin(db, p))
        || APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_START_TIMEOUTS, &rows, 2, timeouts))
        || APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_D_SCHEDULE_PICK, &rows, 3, pick))) {
        goto leave;
    }
    /* one row more than the room (the room less the tasks queued on every host, in the third
     * column) says that more are due than this round starts; that one is left alone */
    n = rows->nrows;
    if (n > 0 && gs_db_cell(rows, 0, 2) && apr_atoi64(gs_db_cell(rows, 0, 2)) < n) {
        n = (int)apr_atoi64(gs_db_cell(rows, 0, 2));
        out->more = 1;
    }
    out->picked = n;
    out->started = apr_array_make(p, n ? n : 1, sizeof(const char *));
    for (i = 0; i < n; i++) {
        const char *user_id = gs_db_cell(rows, i, 0), *why = "", *task_id = NULL;
        int created;

        if (APR_SUCCESS != (rv = schedule_one(db, p, opts, user_id, &created, &why, &task_id))) {
            goto leave;
        }
        if (created) {
            APR_ARRAY_PUSH(out->started, const char *) = task_id;
            gs_log_perror(GS_LOG_MARK, GS_LOG_INFO, APR_SUCCESS, p, "event=autosync.started "
                          "user=%s task=%s reason=%s", gs_log_value(p, user_id), task_id,
                          gs_db_cell(rows, i, 1) ? gs_db_cell(rows, i, 1) : "-");
        }
        else {
            out->skipped_active++;
            gs_log_perror(GS_LOG_MARK, GS_LOG_DEBUG, APR_SUCCESS, p, "event=autosync.skipped "
                          "user=%s reason=%s", gs_log_value(p, user_id), why);
        }
    }
    rv = gs_db_commit(db);

leave:
    if (rv != APR_SUCCESS) {
        gs_db_rollback(db);
        if (out->started) {
            apr_array_clear(out->started);
        }
        out->more = 0;
    }
    return rv;
}

apr_status_t gs_session_user(gs_db_t *db, apr_pool_t *p, const char *token_sha256_hex,
                             const char **user_id, apr_time_t *expires)
{
    const char *args[1] = { token_sha256_hex };
    gs_db_rows_t *rows;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_SESSION_USER, &rows, 1, args))) {
        return rv;
    }
    if (rows->nrows == 0) {
        return APR_NOTFOUND;
    }
    *user_id = gs_db_cell(rows, 0, 0);
    *expires = (apr_time_t)apr_atoi64(gs_db_cell(rows, 0, 1));
    return APR_SUCCESS;
}
