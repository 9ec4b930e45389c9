/* gs_queue.c -- see gs_queue.h */
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "gs_log.h"
#include "gs_queue.h"
#include "gs_sql.h"

static apr_status_t rescue(gs_db_t *db, apr_pool_t *p, const char *host,
                           apr_interval_time_t stuck_after, apr_interval_time_t claim_timeout,
                           gs_queue_stuck_cb *on_stuck, void *baton,
                           gs_rescue_counts_t *counts);

static const char *seconds(apr_pool_t *p, apr_interval_time_t t)
{
    return apr_psprintf(p, "%.3f", (double)t / APR_USEC_PER_SEC);
}

apr_status_t gs_queue_claim(gs_db_t *db, apr_pool_t *p, const char *host, gs_claim_t *claim)
{
    const char *args[1] = { host };
    gs_db_rows_t *rows;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_D_CLAIM_NEXT, &rows, 1, args))) {
        return rv;
    }
    if (rows->nrows == 0) {
        return APR_NOTFOUND;
    }
    claim->task_id = gs_db_cell(rows, 0, 0);
    claim->lease = gs_db_cell(rows, 0, 1);
    claim->user_id = gs_db_cell(rows, 0, 2);
    claim->queued_ms = apr_atoi64(gs_db_cell(rows, 0, 3));
    claim->created_at = gs_db_cell(rows, 0, 4);
    claim->started_at = gs_db_cell(rows, 0, 5);
    return APR_SUCCESS;
}

/* A PostgreSQL array literal of UUIDs (validated by the caller: no quoting needed). */
static const char *uuid_array(apr_pool_t *p, const char *const *ids, int n)
{
    apr_array_header_t *parts = apr_array_make(p, n > 0 ? n : 1, sizeof(const char *));
    int i;

    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(parts, const char *) = ids[i];
    }
    return apr_pstrcat(p, "{", apr_array_pstrcat(p, parts, ','), "}", NULL);
}

apr_status_t gs_queue_leases_held(gs_db_t *db, apr_pool_t *p, const char *const *task_ids,
                                  const char *const *leases, int n, apr_hash_t **held)
{
    const char *args[2];
    gs_db_rows_t *rows;
    apr_status_t rv;
    int i;

    args[0] = uuid_array(p, task_ids, n);
    args[1] = uuid_array(p, leases, n);
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_D_LEASES_HELD, &rows, 2, args))) {
        return rv;
    }
    *held = apr_hash_make(p);
    for (i = 0; i < rows->nrows; i++) {
        const char *id = gs_db_cell(rows, i, 0);
        apr_hash_set(*held, id, APR_HASH_KEY_STRING, id);
    }
    return APR_SUCCESS;
}

apr_status_t gs_queue_fail(gs_db_t *db, apr_pool_t *p, const char *task_id, const char *lease,
                           const char *code, const char *message, apr_int64_t *duration_ms)
{
    const char *args[4] = { code, message, task_id, lease };
    gs_db_rows_t *rows;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_D_FAIL_LEASED, &rows, 4, args))) {
        return rv;
    }
    if (rows->nrows == 0) {
        return APR_NOTFOUND;
    }
    if (duration_ms) {
        *duration_ms = gs_db_cell(rows, 0, 1) ? apr_atoi64(gs_db_cell(rows, 0, 1)) : 0;
    }
    return APR_SUCCESS;
}

apr_status_t gs_queue_rescue(gs_db_t *db, apr_pool_t *p, const char *host,
                             apr_interval_time_t stuck_after, apr_interval_time_t claim_timeout,
                             gs_queue_stuck_cb *on_stuck, void *baton, gs_rescue_counts_t *counts)
{
    return rescue(db, p, host, stuck_after, claim_timeout, on_stuck, baton, counts);
}

static apr_status_t rescue(gs_db_t *db, apr_pool_t *p, const char *host,
                           apr_interval_time_t stuck_after, apr_interval_time_t claim_timeout,
                           gs_queue_stuck_cb *on_stuck, void *baton,
                           gs_rescue_counts_t *counts)
{
    const char *stuck_args[1], *list_args[2], *unclaimed_args[1];
    gs_db_rows_t *rows;
    apr_status_t rv;
    int i;

    counts->marked_stuck = counts->failed_stuck = counts->failed_unclaimed = 0;
    stuck_args[0] = seconds(p, stuck_after);
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_MARK_STUCK, &rows, 1, stuck_args))) {
        return rv;
    }
    for (i = 0; i < rows->nrows; i++) {
        gs_log_perror(GS_LOG_MARK, GS_LOG_WARNING, APR_SUCCESS, p,
                      "event=task.stuck task=%s user=%s host=%s pid=%s heartbeat_age_s=%s",
                      gs_db_cell(rows, i, 0), gs_log_value(p, gs_db_cell(rows, i, 1)),
                      gs_db_cell(rows, i, 2),
                      gs_db_cell(rows, i, 3), gs_db_cell(rows, i, 5));
    }
    counts->marked_stuck = rows->nrows;

    list_args[0] = host;
    list_args[1] = seconds(p, 2 * stuck_after);
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_D_STUCK_TASKS, &rows, 2, list_args))) {
        return rv;
    }
    for (i = 0; i < rows->nrows; i++) {
        const char *task = gs_db_cell(rows, i, 0), *age = gs_db_cell(rows, i, 4);
        const char *fail_args[2];
        int affected = 0;

        if (on_stuck) {
            on_stuck(baton, task, gs_db_cell(rows, i, 1), atol(gs_db_cell(rows, i, 2)),
                     gs_db_cell(rows, i, 3), apr_atoi64(age));
        }
        fail_args[0] = apr_psprintf(p, "no heartbeat for %s s", age);
        fail_args[1] = task;
        if (APR_SUCCESS != (rv = gs_db_exec(db, p, GS_SQL_D_FAIL_STUCK, &affected, 2, fail_args))) {
            return rv;
        }
        if (affected) {
            counts->failed_stuck++;
            gs_log_perror(GS_LOG_MARK, GS_LOG_NOTICE, APR_SUCCESS, p,
                          "event=task.failed task=%s user=%s error=stuck heartbeat_age_s=%s",
                          task, gs_log_value(p, gs_db_cell(rows, i, 1)), age);
        }
    }

    unclaimed_args[0] = seconds(p, claim_timeout);
    if (APR_SUCCESS != (rv = gs_db_select(db, p, GS_SQL_FAIL_UNCLAIMED, &rows, 1,
                                          unclaimed_args))) {
        return rv;
    }
    for (i = 0; i < rows->nrows; i++) {
        gs_log_perror(GS_LOG_MARK, GS_LOG_WARNING, APR_SUCCESS, p,
                      "event=task.failed task=%s user=%s error=not_started", gs_db_cell(rows, i, 0),
                      gs_log_value(p, gs_db_cell(rows, i, 1)));
    }
    counts->failed_unclaimed = rows->nrows;
    return APR_SUCCESS;
}
