/* gs_taskview.c -- see gs_taskview.h */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gs_taskview.h"

static json_object *string_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *int_or_null(const char *s)
{
    return s ? json_object_new_int64(apr_atoi64(s)) : NULL;
}

/* Two decimals, as stored (numeric(5,2)); json-c prints doubles with up to 17 digits. */
static json_object *percentage(double v)
{
    char buf[16];

    if (!isfinite(v) || v < 0) {
        v = 0;
    }
    if (v > 100) {
        v = 100;
    }
    apr_snprintf(buf, sizeof buf, "%.2f", v);
    return json_object_new_double_s(v, buf);
}

/* {"reason","until","attempt"} while a RUNNING task waits to ask Gmail again, else NULL. */
static json_object *retrying(const char *state, const char *reason, json_object *until,
                             apr_int64_t attempt)
{
    json_object *r;

    if (!reason || !*reason || !state || strcmp(state, "RUNNING")) {
        json_object_put(until);
        return NULL;
    }
    r = json_object_new_object();
    json_object_object_add(r, "reason", json_object_new_string(reason));
    json_object_object_add(r, "until", until);
    json_object_object_add(r, "attempt", json_object_new_int64(attempt));
    return r;
}

json_object *gs_taskview_from_row(const gs_db_rows_t *rows, int row, int col)
{
    const char *id = gs_db_cell(rows, row, col), *code, *pct, *attempt;
    json_object *task, *error = NULL;

    if (!id) {
        return NULL;
    }
    task = json_object_new_object();
    json_object_object_add(task, "task_id", json_object_new_string(id));
    json_object_object_add(task, "state", string_or_null(gs_db_cell(rows, row, col + 1)));
    json_object_object_add(task, "mode", string_or_null(gs_db_cell(rows, row, col + 2)));
    pct = gs_db_cell(rows, row, col + 3);
    json_object_object_add(task, "progress_percentage", percentage(pct ? atof(pct) : 0));
    json_object_object_add(task, "processed", int_or_null(gs_db_cell(rows, row, col + 4)));
    json_object_object_add(task, "total", int_or_null(gs_db_cell(rows, row, col + 5)));
    if ((code = gs_db_cell(rows, row, col + 6))) {
        const char *message = gs_db_cell(rows, row, col + 7);
        error = json_object_new_object();
        json_object_object_add(error, "code", json_object_new_string(code));
        json_object_object_add(error, "message", json_object_new_string(message ? message : ""));
    }
    json_object_object_add(task, "error", error);
    json_object_object_add(task, "created_at", string_or_null(gs_db_cell(rows, row, col + 8)));
    json_object_object_add(task, "started_at", string_or_null(gs_db_cell(rows, row, col + 9)));
    json_object_object_add(task, "heartbeat_at", string_or_null(gs_db_cell(rows, row, col + 10)));
    json_object_object_add(task, "finished_at", string_or_null(gs_db_cell(rows, row, col + 11)));
    attempt = gs_db_cell(rows, row, col + 14);
    json_object_object_add(task, "retrying",
                           retrying(gs_db_cell(rows, row, col + 1), gs_db_cell(rows, row, col + 12),
                                    string_or_null(gs_db_cell(rows, row, col + 13)),
                                    attempt ? apr_atoi64(attempt) : 0));
    return task;
}

static json_object *rfc3339(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    if (t <= 0 || apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        return NULL;
    }
    return json_object_new_string(apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                               x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
                                               x.tm_hour, x.tm_min, x.tm_sec, x.tm_usec / 1000));
}

json_object *gs_taskview_from_board(apr_pool_t *p, const gs_registry_task_t *t)
{
    json_object *task = json_object_new_object();

    json_object_object_add(task, "task_id", json_object_new_string(t->task_id));
    json_object_object_add(task, "state", json_object_new_string(t->state));
    json_object_object_add(task, "mode", t->mode[0] ? json_object_new_string(t->mode) : NULL);
    json_object_object_add(task, "progress_percentage", percentage(t->progress_percentage));
    json_object_object_add(task, "processed", json_object_new_int64(t->processed));
    json_object_object_add(task, "total", t->total >= 0 ? json_object_new_int64(t->total) : NULL);
    json_object_object_add(task, "error", NULL);
    json_object_object_add(task, "created_at", t->created_at[0]
                                                   ? json_object_new_string(t->created_at) : NULL);
    json_object_object_add(task, "started_at", t->started_at[0]
                                                   ? json_object_new_string(t->started_at) : NULL);
    json_object_object_add(task, "heartbeat_at", rfc3339(p, t->updated));
    json_object_object_add(task, "finished_at", t->finished ? rfc3339(p, t->finished) : NULL);
    json_object_object_add(task, "retrying", retrying(t->state, t->retry_reason,
                                                      rfc3339(p, t->retry_until), t->retry_attempt));
    return task;
}

void gs_taskview_floor(json_object *task, const gs_registry_task_t *seen)
{
    json_object *pct;

    if (!task || !json_object_object_get_ex(task, "progress_percentage", &pct)
        || json_object_get_double(pct) >= seen->progress_percentage) {
        return;
    }
    json_object_object_add(task, "progress_percentage", percentage(seen->progress_percentage));
    json_object_object_add(task, "processed", json_object_new_int64(seen->processed));
    json_object_object_add(task, "total",
                           seen->total >= 0 ? json_object_new_int64(seen->total) : NULL);
}

int gs_is_uuid(const char *s)
{
    int i;

    if (!s || strlen(s) != 36) {
        return 0;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
        }
        else if (!apr_isxdigit(s[i])) {
            return 0;
        }
    }
    return 1;
}

int gs_state_is_terminal(const char *state)
{
    return state && (!strcmp(state, "SUCCEEDED") || !strcmp(state, "FAILED")
                     || !strcmp(state, "CANCELLED"));
}
