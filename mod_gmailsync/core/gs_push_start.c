/* gs_push_start.c -- see gs_push_start.h */
#include <string.h>

#include <apr_strings.h>

#include "gs_log.h"
#include "gs_push_start.h"
#include "gs_sql.h"

static const char *const outcome_names[] = {
    "replay", "unknown", "current", "started", "queued", "follow_up",
};

const char *gs_push_outcome_name(gs_push_outcome_t o)
{
    return (unsigned)o < sizeof outcome_names / sizeof outcome_names[0] ? outcome_names[o] : "?";
}

/* The stronger of two outcomes for the answer and the counters. */
static gs_push_outcome_t stronger(gs_push_outcome_t a, gs_push_outcome_t b)
{
    static const int rank[] = { 0, 1, 2, 5, 3, 4 };   /* replay < unknown < current < queued ... */

    return rank[b] > rank[a] ? b : a;
}

/* One account of the address: start, or note the follow-up. */
static apr_status_t push_one(gs_db_t *db, apr_pool_t *p, const char *user_id,
                             const gs_start_opts_t *opts, gs_push_result_t *out,
                             gs_push_outcome_t *outcome)
{
    gs_start_result_t res;
    const char *user[1] = { user_id };
    apr_status_t rv;

    memset(&res, 0, sizeof res);
    rv = gs_start_sync_as(db, p, user_id, 0, GS_TRIGGER_PUSH, opts, &res);
    if (rv == APR_NOTFOUND) {
        *outcome = GS_PUSH_UNKNOWN;   /* unlinked since the lookup */
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!res.reused) {
        gs_push_started_t *s = apr_array_push(out->started);
        s->user_id = user_id;
        s->task_id = res.task_id;
        *outcome = GS_PUSH_STARTED;
        return APR_SUCCESS;
    }
    if (res.state && !strcmp(res.state, "RUNNING")) {
        if ((rv = gs_db_exec(db, p, GS_SQL_PUSH_FOLLOW_UP, NULL, 1, user)) != APR_SUCCESS) {
            return rv;
        }
        *outcome = GS_PUSH_FOLLOW_UP;
        return APR_SUCCESS;
    }
    *outcome = GS_PUSH_QUEUED;
    return APR_SUCCESS;
}

apr_status_t gs_push_apply(gs_db_t *db, apr_pool_t *p, const char *address, apr_uint64_t history_id,
                           const char *message_id, apr_time_t keep_until,
                           const gs_start_opts_t *opts, gs_push_result_t *out)
{
    const char *seen[1] = { message_id }, *lookup[2], *record[2];
    gs_db_rows_t *rows;
    apr_status_t rv;
    int i;

    memset(out, 0, sizeof *out);
    out->started = apr_array_make(p, 1, sizeof(gs_push_started_t));
    out->outcome = GS_PUSH_REPLAY;
    if ((rv = gs_db_select(db, p, GS_SQL_PUSH_SEEN, &rows, 1, seen)) != APR_SUCCESS) {
        return rv;
    }
    if (rows->nrows) {
        return APR_SUCCESS;
    }
    out->outcome = GS_PUSH_UNKNOWN;
    lookup[0] = apr_psprintf(p, "%" APR_UINT64_T_FMT, history_id);
    lookup[1] = address;
    if ((rv = gs_db_select(db, p, GS_SQL_PUSH_ACCOUNTS, &rows, 2, lookup)) != APR_SUCCESS) {
        return rv;
    }
    out->accounts = rows->nrows;
    for (i = 0; i < rows->nrows; i++) {
        const char *user_id = gs_db_cell(rows, i, 0), *has = gs_db_cell(rows, i, 1);
        gs_push_outcome_t o = GS_PUSH_CURRENT;

        if (!user_id) {
            continue;
        }
        if ((!has || strcmp(has, "true")) && (rv = push_one(db, p, user_id, opts, out, &o)) != APR_SUCCESS) {
            return rv;
        }
        out->outcome = i == 0 ? o : stronger(out->outcome, o);
    }
    record[0] = message_id;
    record[1] = apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_sec(keep_until) + 1);
    if (gs_db_exec(db, p, GS_SQL_PUSH_RECORD, NULL, 2, record) == APR_SUCCESS) {
        out->recorded = 1;
    }
    else {
        /* the work is done; a redelivery of this message would find it done as well */
        gs_log_perror(GS_LOG_MARK, GS_LOG_WARNING, APR_SUCCESS, p, "event=push.record_failed "
                      "reason=\"%s\"", db->last_error ? db->last_error : "unknown");
    }
    return APR_SUCCESS;
}

static const char *millis(apr_pool_t *p, apr_interval_time_t t)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)(t / 1000));
}

apr_status_t gs_push_followups(gs_db_t *db, apr_pool_t *p, const gs_start_opts_t *opts, long room,
                               apr_array_header_t **started)
{
    const char *timeouts[2], *pick[1];
    gs_db_rows_t *rows, *r2;
    apr_status_t rv;
    int i;

    *started = apr_array_make(p, 1, sizeof(const char *));
    if (room <= 0) {
        return APR_SUCCESS;
    }
    timeouts[0] = millis(p, opts->lock_timeout);
    timeouts[1] = millis(p, opts->statement_timeout);
    pick[0] = apr_ltoa(p, room);
    if ((rv = gs_db_begin(db, p)) != APR_SUCCESS
        || (rv = gs_db_select(db, p, GS_SQL_START_TIMEOUTS, &rows, 2, timeouts)) != APR_SUCCESS
        || (rv = gs_db_select(db, p, GS_SQL_D_PUSH_PICK, &rows, 1, pick)) != APR_SUCCESS) {
        goto leave;
    }
    for (i = 0; i < rows->nrows; i++) {
        const char *user[1] = { gs_db_cell(rows, i, 0) }, *insert[3];

        if (!user[0]) {
            continue;
        }
        /* a click or a push holding the start's lock is starting a sync: its turn */
        if ((rv = gs_db_select(db, p, GS_SQL_START_TRY_LOCK, &r2, 1, user)) != APR_SUCCESS) {
            goto leave;
        }
        if (!r2->nrows || strcmp(gs_db_cell(r2, 0, 0) ? gs_db_cell(r2, 0, 0) : "", "true")) {
            continue;
        }
        if ((rv = gs_db_select(db, p, GS_SQL_ACTIVE_TASK_LOCK, &r2, 1, user)) != APR_SUCCESS) {
            goto leave;
        }
        if (r2->nrows) {
            continue;   /* started meanwhile: the flag waits for that one to end */
        }
        insert[0] = user[0];
        insert[1] = "false";
        insert[2] = GS_TRIGGER_PUSH;
        if ((rv = gs_db_select(db, p, GS_SQL_INSERT_TASK, &r2, 3, insert)) != APR_SUCCESS) {
            goto leave;
        }
        if (!r2->nrows) {
            continue;
        }
        APR_ARRAY_PUSH(*started, const char *) = gs_db_cell(r2, 0, 0);
        if ((rv = gs_db_exec(db, p, GS_SQL_D_PUSH_CLEAR, NULL, 1, user)) != APR_SUCCESS) {
            goto leave;
        }
        gs_log_perror(GS_LOG_MARK, GS_LOG_INFO, APR_SUCCESS, p, "event=push.follow_up_started "
                      "user=%s task=%s", gs_log_value(p, user[0]), gs_db_cell(r2, 0, 0));
    }
    rv = gs_db_commit(db);

leave:
    if (rv != APR_SUCCESS) {
        gs_db_rollback(db);
        apr_array_clear(*started);
    }
    return rv;
}
