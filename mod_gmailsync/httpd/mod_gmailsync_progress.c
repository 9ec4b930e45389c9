/* mod_gmailsync_progress.c -- what a user sees of their syncs:
 *   GET  {prefix}/progress/{task_id}   the task JSON (owner only; another user's id is a 404 with
 *                                      the same body as an unknown one)
 *   GET  {prefix}/status               the user's user_sync_status row and latest task
 *   POST {prefix}/cancel/{task_id}     CANCELLED (202), 409 if it already ended
 * A task this host's daemon runs is answered from the shared-memory board without a query.
 */
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>

#include "gs_accept.h"
#include "gs_db.h"
#include "gs_json.h"
#include "gs_log.h"
#include "gs_sql.h"
#include "gs_taskview.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

static int no_such_task(request_rec *r)
{
    return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "no-such-task", "no such task");
}

/* Lower-cases a task id from the URL (UUIDs compare case-insensitively; the board stores them
 * as PostgreSQL prints them). NULL if it is not a UUID. */
static const char *task_id_arg(request_rec *r, const char *arg)
{
    char *id, *c;

    if (!gs_is_uuid(arg)) {
        return NULL;
    }
    id = apr_pstrdup(r->pool, arg);
    for (c = id; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    return id;
}

/* The task JSON for the owner, from the board or the database, allocated from p. Returns OK
 * with *task, or an HTTP status (404, 503) after logging. */
int gs_httpd_load_task(request_rec *r, apr_pool_t *p, gs_db_t **db, const char *user_id,
                       const char *task_id, json_object **task)
{
    const char *args[2] = { task_id, user_id };
    gs_registry_task_t live;
    gs_db_rows_t *rows;

    if (gs_httpd_registry_task_find(task_id, &live) && !strcmp(live.user_id, user_id)) {
        *task = gs_json_own(p, gs_taskview_from_board(p, &live));
        return OK;
    }
    if (!*db && !(*db = gs_httpd_request_db(r))) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (gs_db_select(*db, p, GS_SQL_TASK_GET, &rows, 2, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=progress.db_error reason=\"%s\"",
                      (*db)->last_error);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (rows->nrows == 0) {
        return HTTP_NOT_FOUND;
    }
    *task = gs_json_own(p, gs_taskview_from_row(rows, 0, 0));
    if (gs_httpd_registry_task_seen(task_id, &live) && !strcmp(live.user_id, user_id)) {
        gs_taskview_floor(*task, &live);
    }
    return OK;
}

static int answer_load_failure(request_rec *r, int status)
{
    if (status == HTTP_NOT_FOUND) {
        return no_such_task(r);
    }
    return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                 "the database cannot be reached");
}

int gs_httpd_handle_progress(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *task_id;
    gs_id_result_t who;
    json_object *task;
    gs_db_t *db = NULL;
    int status;

    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (!(task_id = task_id_arg(r, arg))) {
        return no_such_task(r);
    }
    if (gs_accept_wants_event_stream(apr_table_get(r->headers_in, "Accept"))) {
        return gs_httpd_progress_stream(r, conf, db, user_id, task_id);
    }
    if ((status = gs_httpd_load_task(r, r->pool, &db, user_id, task_id, &task)) != OK) {
        return answer_load_failure(r, status);
    }
    return gs_httpd_send_json(r, HTTP_OK, task);
}

/* {"email","connected"} of the linked account (columns 0 and 5 of GS_SQL_USER_ACCOUNT), or
 * NULL; connected is false for a row without a refresh token (nothing a sync could use). */
static json_object *account_json(const gs_db_rows_t *rows)
{
    const char *email = gs_db_cell(rows, 0, 0), *has_token = gs_db_cell(rows, 0, 5);
    json_object *account;

    if (!email) {
        return NULL;
    }
    account = json_object_new_object();
    json_object_object_add(account, "email", json_object_new_string(email));
    json_object_object_add(account, "connected",
                           json_object_new_boolean(has_token && !strcmp(has_token, "true")));
    return account;
}

/* {"task_id","finished_at","processed","duration_s"} of the newest SUCCEEDED task (columns 1-4
 * of GS_SQL_USER_ACCOUNT), or NULL. */
static json_object *last_success_json(const gs_db_rows_t *rows)
{
    const char *task_id = gs_db_cell(rows, 0, 1), *finished = gs_db_cell(rows, 0, 2);
    const char *processed = gs_db_cell(rows, 0, 3), *duration = gs_db_cell(rows, 0, 4);
    json_object *last;

    if (!task_id) {
        return NULL;
    }
    last = json_object_new_object();
    json_object_object_add(last, "task_id", json_object_new_string(task_id));
    json_object_object_add(last, "finished_at", finished ? json_object_new_string(finished) : NULL);
    json_object_object_add(last, "processed",
                           json_object_new_int64(processed ? apr_atoi64(processed) : 0));
    json_object_object_add(last, "duration_s",
                           duration ? json_object_new_double_s(strtod(duration, NULL), duration)
                                    : NULL);
    return last;
}

/* "mailbox": {"messages", "unread", "threads", "labels"} of what is stored for the user
 * (messages deleted in archive mode left out). Returns 0 on a database error. */
static int add_mailbox(request_rec *r, gs_db_t *db, const char *user_id, json_object *body)
{
    const char *args[2] = { user_id, user_id };
    static const char *const names[] = { "messages", "unread", "threads", "labels" };
    json_object *mailbox;
    gs_db_rows_t *rows;
    int i;

    if (gs_db_select(db, r->pool, GS_SQL_USER_MAILBOX, &rows, 2, args) != APR_SUCCESS
        || rows->nrows != 1) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=status.db_error reason=\"%s\"",
                      db->last_error ? db->last_error : "no row");
        return 0;
    }
    mailbox = json_object_new_object();
    for (i = 0; i < 4; i++) {
        const char *v = gs_db_cell(rows, 0, i);
        json_object_object_add(mailbox, names[i], json_object_new_int64(v ? apr_atoi64(v) : 0));
    }
    json_object_object_add(body, "mailbox", mailbox);
    return 1;
}

/* "last_synced_ago_s" (seconds since the last successful sync, database clock; null: never)
 * and "auto_sync": null when GmailSyncAutoSync is Off, else {"interval_s", "state" (new,
 * interval, backoff, relinked: next_at is the next scheduled start; active: a sync runs;
 * revoked: link the account again), "next_at"}. The daemon schedules with the main server's
 * setting, so that is the one reported on every virtual host. Returns 0 on a database error. */
static int add_schedule(request_rec *r, gs_db_t *db, const char *user_id, json_object *body)
{
    const gs_srv_conf_t *main_conf = gs_httpd_srv_conf(ap_server_conf);
    apr_interval_time_t iv = main_conf->autosync;
    const char *args[3], *why, *next, *age;
    json_object *auto_sync;
    gs_db_rows_t *rows;

    args[0] = apr_psprintf(r->pool, "%.3f", (double)(iv ? iv : apr_time_from_sec(1))
                                           / APR_USEC_PER_SEC);
    args[1] = apr_psprintf(r->pool, "%.3f", (double)main_conf->autosync_backoff_max
                                           / APR_USEC_PER_SEC);
    args[2] = user_id;
    if (gs_db_select(db, r->pool, GS_SQL_SCHEDULE_NEXT, &rows, 3, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=status.db_error reason=\"%s\"",
                      db->last_error);
        return 0;
    }
    why = rows->nrows ? gs_db_cell(rows, 0, 0) : NULL;
    next = rows->nrows ? gs_db_cell(rows, 0, 1) : NULL;
    age = rows->nrows ? gs_db_cell(rows, 0, 2) : NULL;
    json_object_object_add(body, "last_synced_ago_s",
                           age && *age ? json_object_new_int64(apr_atoi64(age)) : NULL);
    if (!iv) {
        json_object_object_add(body, "auto_sync", NULL);
        return 1;
    }
    auto_sync = json_object_new_object();
    json_object_object_add(auto_sync, "interval_s",
                           json_object_new_int64(apr_time_sec(iv)));
    json_object_object_add(auto_sync, "state", why && *why ? json_object_new_string(why) : NULL);
    json_object_object_add(auto_sync, "next_at",
                           next && *next ? json_object_new_string(next) : NULL);
    json_object_object_add(body, "auto_sync", auto_sync);
    return 1;
}

int gs_httpd_handle_status(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *args[1];
    gs_id_result_t who;
    gs_db_rows_t *rows;
    json_object *body, *task = NULL;
    gs_db_t *db = NULL;

    (void)arg;
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    args[0] = user_id;
    if (gs_db_select(db, r->pool, GS_SQL_USER_STATUS, &rows, 1, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=status.db_error reason=\"%s\"",
                      db->last_error);
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    body = gs_json_object(r->pool);
    gs_json_set_string(body, "user_id", user_id);
    if (rows->nrows) {
        task = gs_taskview_from_row(rows, 0, 2);
    }
    gs_json_set_bool(body, "is_syncing", rows->nrows && !strcmp(gs_db_cell(rows, 0, 0), "true"));
    gs_json_set_string(body, "task_id", task ? gs_db_cell(rows, 0, 2) : NULL);
    json_object_object_add(body, "progress_percentage",
                           task ? json_object_get(json_object_object_get(task,
                                                                         "progress_percentage"))
                                : json_object_new_double(0));
    json_object_object_add(body, "started_at",
                           task ? json_object_get(json_object_object_get(task, "started_at"))
                                : NULL);
    gs_json_set_string(body, "updated_at", rows->nrows ? gs_db_cell(rows, 0, 1) : NULL);
    gs_json_set_object(body, "task", task);
    /* what the sync page shows: the linked address and the last successful sync */
    if (gs_db_select(db, r->pool, GS_SQL_USER_ACCOUNT, &rows, 1, args) != APR_SUCCESS
        || rows->nrows != 1) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=status.db_error reason=\"%s\"",
                      db->last_error ? db->last_error : "no row");
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    gs_json_set_object(body, "account", account_json(rows));
    gs_json_set_bool(body, "connected", json_object_get_boolean(
                         json_object_object_get(json_object_object_get(body, "account"),
                                                "connected")));
    gs_json_set_object(body, "last_success", last_success_json(rows));
    if (!add_schedule(r, db, user_id, body) || !add_mailbox(r, db, user_id, body)) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    return gs_httpd_send_json(r, HTTP_OK, body);
}

int gs_httpd_handle_cancel(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *task_id, *args[2];
    gs_id_result_t who;
    gs_db_rows_t *rows;
    json_object *task;
    gs_db_t *db = NULL;
    int status;

    if (!gs_httpd_origin_allowed(r, conf)) {
        return gs_httpd_send_problem(r, HTTP_FORBIDDEN, "cross-site-request",
                                     "the Origin of this request is not allowed");
    }
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (!(task_id = task_id_arg(r, arg))) {
        return no_such_task(r);
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    args[0] = task_id;
    args[1] = user_id;
    if (gs_db_select(db, r->pool, GS_SQL_TASK_CANCEL, &rows, 2, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=cancel.db_error reason=\"%s\"",
                      db->last_error);
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    if (rows->nrows == 1) {
        /* the worker sees its lease-guarded writes fail and stops; the board forgets it now */
        gs_httpd_registry_task_remove(user_id, task_id);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=task.cancelled user=%s task=%s",
                      gs_log_value(r->pool, user_id), task_id);
        return gs_httpd_send_json(r, HTTP_ACCEPTED,
                                  gs_json_own(r->pool, gs_taskview_from_row(rows, 0, 0)));
    }
    if ((status = gs_httpd_load_task(r, r->pool, &db, user_id, task_id, &task)) != OK) {
        return answer_load_failure(r, status);
    }
    return gs_httpd_send_problem(r, HTTP_CONFLICT, "task-finished",
                                 "the task has already ended and cannot be cancelled");
}
