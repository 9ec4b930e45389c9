/* mod_gmailsync_start.c -- POST {prefix}/smart: start the caller's sync, or return the one running.
 *
 * Checks run cheapest first and nothing is written for a rejected request: origin (403),
 * identity (401), body size (413), media type (415), JSON shape (400). The start itself is the
 * core's single transaction (gs_start.h).
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_db.h"
#include "gs_json.h"
#include "gs_log.h"
#include "gs_start.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_START_LOCK_TIMEOUT      apr_time_from_sec(5)
#define GS_START_STATEMENT_TIMEOUT apr_time_from_sec(10)

/* Parses the optional body into *force_full. Returns OK or answers the problem itself. */
static int parse_start_body(request_rec *r, int *force_full, int *answered)
{
    json_object *doc;
    int status;

    *force_full = 0;
    if ((status = gs_httpd_json_body(r, &doc, answered)) != OK || *answered || !doc) {
        return status;
    }
    return gs_httpd_json_bool(r, doc, "force_full", force_full, answered);
}

int gs_httpd_handle_start(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_start_opts_t opts = { GS_START_LOCK_TIMEOUT, GS_START_STATEMENT_TIMEOUT };
    gs_start_result_t result = { NULL, NULL, 0, 0, 0, 0, 0 };
    apr_time_t t_id, t_db, t_start, t_notify;
    const char *user_id = NULL, *progress_url;
    gs_id_result_t who;
    json_object *body;
    gs_db_t *db = NULL;
    int force_full = 0, answered = 0, status;
    apr_status_t rv;

    (void)arg;
    if (!gs_httpd_origin_allowed(r, conf)) {
        gs_httpd_leave_body_unread(r);
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=start.rejected reason=origin");
        return gs_httpd_send_problem(r, HTTP_FORBIDDEN, "cross-site-request",
                                     "the Origin of this request is not allowed to start syncs");
    }
    t_id = apr_time_now();
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        gs_httpd_leave_body_unread(r);
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        return gs_httpd_identify_failed(r, who);
    }
    status = parse_start_body(r, &force_full, &answered);
    if (answered) {
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=start.rejected user=%s status=%d",
                      gs_log_value(r->pool, user_id), r->status);
        return status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=start.requested user=%s force_full=%s",
                  gs_log_value(r->pool, user_id), force_full ? "true" : "false");
    t_db = apr_time_now();
    if (!db && !(db = gs_httpd_request_db(r))) {
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    t_start = apr_time_now();
    /* PostgreSQL answers every start: a task can leave RUNNING anywhere (a cancel on another
     * host, a rescue, the cleanup script), so no per-host cache may say it is still running */
    rv = gs_start_sync(db, r->pool, user_id, force_full, &opts, &result);
    if (rv != APR_SUCCESS) {
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
    }
    if (rv == APR_NOTFOUND) {
        return gs_httpd_send_problem(r, HTTP_CONFLICT, "account-not-linked",
                                     "no Gmail account connected: connect one first "
                                     "(GET oauth/start)");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=start.failed user=%s "
                      "reason=\"%s\"", gs_log_value(r->pool, user_id),
                      db->last_error ? db->last_error : "unknown");
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                     "the sync could not be started now; retry shortly");
    }
    gs_httpd_count(result.reused ? GS_CTR_START_REUSED : GS_CTR_START_CREATED, 1);

    progress_url = apr_pstrcat(r->pool, conf->prefix, "/progress/", result.task_id, NULL);
    body = gs_json_object(r->pool);
    gs_json_set_string(body, "task_id", result.task_id);
    gs_json_set_string(body, "state", result.state);
    gs_json_set_bool(body, "reused", result.reused);
    gs_json_set_string(body, "progress_url", progress_url);
    t_notify = apr_time_now();
    if (!result.reused) {
        apr_table_setn(r->headers_out, "Location", progress_url);
        gs_httpd_daemon_notify(r, result.task_id, user_id);
    }
    gs_httpd_observe_start(apr_time_now() - r->request_time);
    /* where the time went (us): before the handler, the session (with its connection), a
     * connection when the session came from the cache, gs_start_sync's phases, the hand-off */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=%s user=%s task=%s state=%s us_total=%"
                  APR_INT64_T_FMT " us_pre=%" APR_INT64_T_FMT " us_identify=%" APR_INT64_T_FMT
                  " us_dbconn=%" APR_INT64_T_FMT " us_check=%" APR_INT64_T_FMT " us_lock=%"
                  APR_INT64_T_FMT " us_insert=%" APR_INT64_T_FMT " us_commit=%" APR_INT64_T_FMT
                  " us_notify=%" APR_INT64_T_FMT,
                  result.reused ? "task.reused" : "task.created", gs_log_value(r->pool, user_id),
                  result.task_id,
                  result.state, (apr_int64_t)(apr_time_now() - r->request_time),
                  (apr_int64_t)(t_id - r->request_time), (apr_int64_t)(t_db - t_id),
                  (apr_int64_t)(t_start - t_db), (apr_int64_t)result.t_check,
                  (apr_int64_t)result.t_lock, (apr_int64_t)result.t_insert,
                  (apr_int64_t)result.t_commit, (apr_int64_t)(apr_time_now() - t_notify));
    return gs_httpd_send_json(r, result.reused ? HTTP_OK : HTTP_ACCEPTED, body);
}
