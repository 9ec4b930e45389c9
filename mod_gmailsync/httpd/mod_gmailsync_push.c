/* mod_gmailsync_push.c -- POST {prefix}/push: a Gmail notification pushed by Cloud Pub/Sub
 * (issue 26). No session: the request's own credential is the OIDC token of the push
 * subscription (Authorization: Bearer), verified with cjose against the JWKS
 * (gs_push_token.h); then the body is decoded (gs_push_msg.h) and applied (gs_push_start.h).
 *
 * Answers: 204 for every push taken (started, queued, follow-up, a replay, a history id the
 * account has, an address no account has: Pub/Sub must not redeliver those, and the answer does
 * not say which); 401 problem for a refused token (nothing read further, nothing started; logged
 * once per source per minute per httpd child); 400 problem for an authenticated body that is not
 * a notification; 503 problem when the database or the JWKS cannot be reached (Pub/Sub then
 * redelivers); 404 problem when GmailSyncPushTopic is not set.
 */
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_connect.h"
#include "gs_log.h"
#include "gs_oauth.h"
#include "gs_push_msg.h"
#include "gs_push_start.h"
#include "gs_push_token.h"
#include "gs_watch.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_PUSH_LOG_SOURCES   64
#define GS_PUSH_LOG_EVERY     apr_time_from_sec(60)

/* Refusals logged per source (client address) at most once per GS_PUSH_LOG_EVERY in this
 * child; the sources of the last GS_PUSH_LOG_SOURCES refusals are remembered. */
static struct {
    char ip[64];
    apr_time_t at;
    unsigned long quiet;   /* refusals not logged since */
} log_sources[GS_PUSH_LOG_SOURCES];
static apr_thread_mutex_t *log_mu;

void gs_httpd_push_log_init(apr_pool_t *p)
{
    if (!log_mu && apr_thread_mutex_create(&log_mu, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        log_mu = NULL;
    }
}

/* Whether to log this refusal; *quiet the refusals of the source not logged since the last. */
static int log_refusal_now(const char *ip, apr_time_t now, unsigned long *quiet)
{
    int i, oldest = 0, log = 1;

    *quiet = 0;
    if (!log_mu || apr_thread_mutex_lock(log_mu) != APR_SUCCESS) {
        return 1;
    }
    for (i = 0; i < GS_PUSH_LOG_SOURCES; i++) {
        if (!strcmp(log_sources[i].ip, ip)) {
            break;
        }
        if (log_sources[i].at < log_sources[oldest].at) {
            oldest = i;
        }
    }
    if (i == GS_PUSH_LOG_SOURCES) {
        i = oldest;
        apr_cpystrn(log_sources[i].ip, ip, sizeof log_sources[i].ip);
        log_sources[i].at = 0;
        log_sources[i].quiet = 0;
    }
    if (log_sources[i].at && now - log_sources[i].at < GS_PUSH_LOG_EVERY) {
        log_sources[i].quiet++;
        log = 0;
    }
    else {
        *quiet = log_sources[i].quiet;
        log_sources[i].quiet = 0;
        log_sources[i].at = now;
    }
    apr_thread_mutex_unlock(log_mu);
    return log;
}

/* The audience by default: this server's {prefix}/push, by its ServerName and port. */
static const char *default_audience(request_rec *r, const gs_srv_conf_t *conf)
{
    const char *scheme = ap_http_scheme(r);
    apr_port_t port = r->server->port ? r->server->port : r->connection->local_addr->port;
    int default_port = (!strcmp(scheme, "https") && port == 443) || (!strcmp(scheme, "http") && port == 80);

    return apr_psprintf(r->pool, "%s://%s%s%s%s/push", scheme, r->server->server_hostname,
                        default_port ? "" : ":", default_port ? "" : apr_itoa(r->pool, port),
                        conf->prefix);
}

/* The bearer token of the request, or NULL. */
static const char *bearer(request_rec *r, apr_size_t *len)
{
    const char *h = apr_table_get(r->headers_in, "Authorization"), *t;
    apr_size_t n;

    if (!h || strncasecmp(h, "Bearer ", 7)) {
        return NULL;
    }
    for (t = h + 7; *t == ' '; t++) {
    }
    n = strlen(t);
    while (n && t[n - 1] == ' ') {
        n--;
    }
    *len = n;
    return n ? t : NULL;
}

static int refuse(request_rec *r, gs_push_verdict_t v)
{
    unsigned long quiet;

    gs_httpd_leave_body_unread(r);
    gs_httpd_count(GS_CTR_PUSH_REFUSED, 1);
    if (log_refusal_now(r->useragent_ip ? r->useragent_ip : "-", apr_time_now(), &quiet)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=push.refused reason=%s "
                      "source=%s not_logged_since=%lu", gs_push_verdict_name(v),
                      r->useragent_ip ? r->useragent_ip : "-", quiet);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=push.refused_quietly reason=%s",
                      gs_push_verdict_name(v));
    }
    apr_table_setn(r->headers_out, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return gs_httpd_send_problem(r, HTTP_UNAUTHORIZED, "push-token-refused",
                                 "the push's bearer token was refused");
}

static int no_content(request_rec *r)
{
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    r->status = HTTP_NO_CONTENT;
    return OK;
}

int gs_httpd_handle_push(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_start_opts_t opts = { apr_time_from_sec(5), apr_time_from_sec(10) };
    gs_push_expect_t x;
    gs_push_claims_t claims;
    gs_push_verdict_t v;
    gs_push_result_t res;
    gs_push_msg_t msg;
    const char *token, *fetch_err = NULL, *why = NULL;
    apr_size_t token_len = 0, len = 0;
    apr_time_t t0 = apr_time_now();
    char *body;
    gs_db_t *db;
    int status, answered = 0, i;

    (void)arg;
    if (!conf->push_topic) {
        gs_httpd_leave_body_unread(r);
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "push-not-configured",
                                     "push notifications are not configured on this server");
    }
    gs_httpd_count(GS_CTR_PUSH_RECEIVED, 1);
    if (!conf->push_cache) {
        gs_httpd_leave_body_unread(r);
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "push-unavailable",
                                     "push notifications cannot be verified now");
    }
    if (!(token = bearer(r, &token_len))) {
        return refuse(r, GS_PUSH_MALFORMED);
    }
    x.audience = conf->push_audience ? conf->push_audience : default_audience(r, conf);
    x.email = conf->push_service_account;
    x.now = t0;
    v = gs_push_cache_verify(conf->push_cache, r->pool, token, token_len, &x, &claims, &fetch_err);
    if (v == GS_PUSH_NO_KEYS) {
        gs_httpd_leave_body_unread(r);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=push.no_keys jwks=%s reason=\"%s\"",
                      conf->push_jwks, fetch_err ? fetch_err : "no usable key");
        apr_table_setn(r->headers_out, "Retry-After", "10");
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "push-keys-unavailable",
                                     "the keys that sign push tokens cannot be fetched now");
    }
    if (v != GS_PUSH_OK) {
        return refuse(r, v);
    }
    if ((status = gs_httpd_raw_body(r, GS_PUSH_BODY_MAX, &body, &len, &answered)) != OK || answered) {
        gs_httpd_count(GS_CTR_PUSH_REFUSED, 1);
        return status;
    }
    if (gs_push_msg_parse(r->pool, body, len, &msg, &why) != APR_SUCCESS) {
        gs_httpd_count(GS_CTR_PUSH_REFUSED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=push.bad_body reason=\"%s\"", why);
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "push-body-invalid", why);
    }
    if (!(db = gs_httpd_request_db(r))
        || gs_push_apply(db, r->pool, msg.email, msg.history_id, msg.message_id, claims.exp, &opts,
                         &res) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=push.failed message=%s reason=\"%s\"",
                      gs_log_value(r->pool, msg.message_id),
                      db && db->last_error ? db->last_error : "no database connection");
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    for (i = 0; i < res.started->nelts; i++) {
        const gs_push_started_t *s = &APR_ARRAY_IDX(res.started, i, gs_push_started_t);
        gs_httpd_daemon_notify(r, s->task_id, s->user_id);
    }
    switch (res.outcome) {
    case GS_PUSH_STARTED:
    case GS_PUSH_QUEUED:
    case GS_PUSH_FOLLOW_UP:
        gs_httpd_count(GS_CTR_PUSH_ACCEPTED, 1);
        break;
    case GS_PUSH_UNKNOWN:
        gs_httpd_count(GS_CTR_PUSH_UNKNOWN, 1);
        /* fall through */
    default:
        gs_httpd_count(GS_CTR_PUSH_IGNORED, 1);
        break;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=push.taken message=%s outcome=%s "
                  "accounts=%d started=%d history=%" APR_UINT64_T_FMT " ms=%" APR_TIME_T_FMT,
                  gs_log_value(r->pool, msg.message_id), gs_push_outcome_name(res.outcome),
                  res.accounts, res.started->nelts, msg.history_id,
                  apr_time_as_msec(apr_time_now() - t0));
    return no_content(r);
}

/* ------------------------------------------------------------------ stop (disconnect) */

int gs_httpd_push_stop_watch(request_rec *r, const gs_srv_conf_t *conf, const char *user_id,
                             const char *refresh_token)
{
    gs_oauth_t *o = gs_oauth_make(r->pool, conf->token_url, conf->client_id,
                                  conf->client_secret, refresh_token);
    gs_http_request_t *req = gs_oauth_refresh_request(o, r->pool);
    const char *err = NULL, *why = NULL, *new_refresh = NULL;
    long expires_in = 0;

    if (gs_httpd_perform_one(r, req, &err) != APR_SUCCESS
        || gs_oauth_parse(o, r->pool, req, apr_time_now(), &expires_in, &new_refresh, &why)
           != GS_OAUTH_OK) {
        why = err ? err : why ? why : "no access token";
    }
    else {
        req = gs_watch_stop_request(r->pool, conf->api_base, o->access_token);
        if (gs_httpd_perform_one(r, req, &err) != APR_SUCCESS || req->status < 200
            || req->status > 299) {
            why = err ? err : req->transport_error ? req->transport_error
                : apr_psprintf(r->pool, "stop answered %d", req->status);
        }
    }
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=push.stop_failed user=%s "
                      "reason=\"%s\"", gs_log_value(r->pool, user_id), why);
        return 0;
    }
    gs_httpd_count(GS_CTR_PUSH_STOPS, 1);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=push.stop user=%s",
                  gs_log_value(r->pool, user_id));
    return 1;
}
