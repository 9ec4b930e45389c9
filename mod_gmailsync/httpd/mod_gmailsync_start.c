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
#include "gs_start.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_START_LOCK_TIMEOUT      apr_time_from_sec(5)
#define GS_START_STATEMENT_TIMEOUT apr_time_from_sec(10)

/* Reads at most GS_MAX_BODY bytes. Returns OK, the status to answer (400, 408, 413), or
 * AP_FILTER_ERROR when HTTP_IN has already answered a malformed body (bad chunking, over
 * LimitRequestBody): ap_get_client_block() would hide that as -1 and a second answer would
 * follow the first on the wire. */
static int read_body(request_rec *r, char **data, apr_size_t *len)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    apr_size_t total = 0;
    apr_status_t rv;
    char *buf;
    int seen_eos = 0;

    *data = NULL;
    *len = 0;
    if (cl) {
        apr_off_t declared;
        char *end;
        if (apr_strtoff(&declared, cl, &end, 10) != APR_SUCCESS || *end || declared < 0) {
            return HTTP_BAD_REQUEST;
        }
        if (declared > GS_MAX_BODY) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    buf = apr_palloc(r->pool, GS_MAX_BODY + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_bucket *b;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                            GS_MAX_BODY + 1 - total);
        if (rv != APR_SUCCESS) {
            apr_brigade_destroy(bb);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *chunk;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if (apr_bucket_read(b, &chunk, &n, APR_BLOCK_READ) != APR_SUCCESS) {
                apr_brigade_destroy(bb);
                return HTTP_BAD_REQUEST;
            }
            if (n > GS_MAX_BODY - total) {
                apr_brigade_destroy(bb);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(buf + total, chunk, n);
            total += n;
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    buf[total] = '\0';
    *data = buf;
    *len = total;
    return OK;
}

/* For refusals before the body is read (origin, identity): the connection is closed rather
 * than the body read after the answer, which costs nothing for a refused request and keeps a
 * malformed body from turning into a second error answer. */
static void leave_body_unread(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    if (apr_table_get(r->headers_in, "Transfer-Encoding") || (cl && strcmp(cl, "0"))) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
}

static int is_json_media_type(const char *ct)
{
    const char *semi;
    size_t len;

    if (!ct) {
        return 0;
    }
    while (apr_isspace(*ct)) {
        ct++;
    }
    semi = ap_strchr_c(ct, ';');
    len = semi ? (size_t)(semi - ct) : strlen(ct);
    while (len > 0 && apr_isspace(ct[len - 1])) {
        len--;
    }
    return len == strlen("application/json") && !strncasecmp(ct, "application/json", len);
}

/* Parses the optional body into *force_full. Returns OK or answers the problem itself. */
static int parse_start_body(request_rec *r, int *force_full, int *answered)
{
    const char *err = NULL;
    json_object *doc, *value;
    apr_size_t len;
    char *data;
    int status;

    *answered = 1;
    if ((status = read_body(r, &data, &len)) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE; /* do not read the rest of a refused body */
        if (status == AP_FILTER_ERROR) {
            return status;
        }
        if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return gs_httpd_send_problem(r, status, "body-too-large",
                                         "the request body is limited to 4096 bytes");
        }
        if (status == HTTP_REQUEST_TIME_OUT) {
            return gs_httpd_send_problem(r, status, "request-timeout",
                                         "the request body did not arrive in time");
        }
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-body",
                                     "the request body could not be read");
    }
    *force_full = 0;
    if (len == 0) {
        *answered = 0;
        return OK;
    }
    if (!is_json_media_type(apr_table_get(r->headers_in, "Content-Type"))) {
        return gs_httpd_send_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                                     "the body must be application/json");
    }
    if (!(doc = gs_json_parse(r->pool, data, len, &err))) {
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "malformed-json",
                                     apr_pstrcat(r->pool, "malformed JSON: ", err, NULL));
    }
    if (!json_object_is_type(doc, json_type_object)) {
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "invalid-request",
                                     "the body must be a JSON object");
    }
    if (json_object_object_get_ex(doc, "force_full", &value)) {
        if (!json_object_is_type(value, json_type_boolean)) {
            return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "invalid-request",
                                         "force_full must be true or false");
        }
        *force_full = json_object_get_boolean(value) ? 1 : 0;
    }
    *answered = 0;
    return OK;
}

int gs_httpd_handle_start(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_start_opts_t opts = { GS_START_LOCK_TIMEOUT, GS_START_STATEMENT_TIMEOUT };
    gs_start_result_t result = { NULL, NULL, 0 };
    const char *user_id = NULL, *progress_url;
    gs_id_result_t who;
    json_object *body;
    gs_db_t *db = NULL;
    int force_full = 0, answered = 0, status;
    apr_status_t rv;

    (void)arg;
    if (!gs_httpd_origin_allowed(r, conf)) {
        leave_body_unread(r);
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=start.rejected reason=origin");
        return gs_httpd_send_problem(r, HTTP_FORBIDDEN, "cross-site-request",
                                     "the Origin of this request is not allowed to start syncs");
    }
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        leave_body_unread(r);
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        return gs_httpd_identify_failed(r, who);
    }
    status = parse_start_body(r, &force_full, &answered);
    if (answered) {
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=start.rejected user=%s status=%d",
                      user_id, r->status);
        return status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=start.requested user=%s force_full=%s",
                  user_id, force_full ? "true" : "false");
    if (!db && !(db = gs_httpd_request_db(r))) {
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    /* PostgreSQL answers every start: a task can leave RUNNING anywhere (a cancel on another
     * host, a rescue, the cleanup script), so no per-host cache may say it is still running */
    rv = gs_start_sync(db, r->pool, user_id, force_full, &opts, &result);
    if (rv != APR_SUCCESS) {
        gs_httpd_count(GS_CTR_START_REJECTED, 1);
    }
    if (rv == APR_NOTFOUND) {
        return gs_httpd_send_problem(r, HTTP_CONFLICT, "account-not-linked",
                                     "no Gmail account is linked to this user");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=start.failed user=%s "
                      "reason=\"%s\"", user_id, db->last_error ? db->last_error : "unknown");
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                     "the sync could not be started now; retry shortly");
    }
    gs_httpd_count(result.reused ? GS_CTR_START_REUSED : GS_CTR_START_CREATED, 1);
    gs_httpd_observe_start(apr_time_now() - r->request_time);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=%s user=%s task=%s state=%s",
                  result.reused ? "task.reused" : "task.created", user_id, result.task_id,
                  result.state);

    progress_url = apr_pstrcat(r->pool, conf->prefix, "/progress/", result.task_id, NULL);
    body = gs_json_object(r->pool);
    gs_json_set_string(body, "task_id", result.task_id);
    gs_json_set_string(body, "state", result.state);
    gs_json_set_bool(body, "reused", result.reused);
    gs_json_set_string(body, "progress_url", progress_url);
    if (!result.reused) {
        apr_table_setn(r->headers_out, "Location", progress_url);
        gs_httpd_daemon_notify(r, result.task_id, user_id);
    }
    return gs_httpd_send_json(r, result.reused ? HTTP_OK : HTTP_ACCEPTED, body);
}
