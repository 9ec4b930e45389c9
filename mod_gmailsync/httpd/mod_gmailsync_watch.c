/* mod_gmailsync_watch.c -- the daemon's users.watch calls for push notifications (issue 26,
 * sql/014, gs_watch.h).
 *
 * Why here, and not in a worker: a watch is two small requests (the token endpoint when the
 * cached access token is old, then users.watch) once a day per account, and the daemon already
 * holds all it needs (the token keys, the client secret, a database connection); a worker
 * process per watch would cost a fork, an exec and a database connection each. The daemon's
 * loop must not stall on them, so a round runs at most once a second, takes at most
 * GS_WATCH_PER_ROUND accounts (and no more than GmailSyncQuotaUnits allows at 100 units a
 * watch), its requests have short timeouts (GS_WATCH_TIMEOUT), and a round that finds Gmail or
 * the token endpoint unreachable pauses the next ones with the same backoff as a failed
 * account (gs_watch_backoff): a hanging Google costs the loop one timeout per backoff, not one
 * per account. Accounts are taken under a lease in the database (watch_retry_at), so two
 * daemons never watch the same account at once, and a failed attempt waits its backoff there.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "gs_db.h"
#include "gs_http.h"
#include "gs_log.h"
#include "gs_oauth.h"
#include "gs_sql.h"
#include "gs_tokenbox.h"
#include "gs_watch.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_daemon.h"

APLOG_USE_MODULE(gmailsync);

#define GS_WATCH_INTERVAL   apr_time_from_sec(1)
#define GS_WATCH_PER_ROUND  4
#define GS_WATCH_LEASE      "30"                       /* seconds */
#define GS_WATCH_TIMEOUT    apr_time_from_sec(5)

typedef struct {
    daemon_t *d;
    const char *user_id;
    int watched;              /* a renewal */
    int failures;             /* before this attempt */
    int unreachable;          /* no answer at all (a transport error) */
    const char *retry_after;  /* of a refusal */
} watch_one_t;

static apr_status_t watch_tick(void *baton)
{
    (void)baton;
    return gs_daemon_should_exit ? APR_EINTR : APR_SUCCESS;
}

static int ensure_http(daemon_t *d)
{
    gs_http_settings_t hs;
    const char *err = NULL;

    if (d->watch_http) {
        return 1;
    }
    memset(&hs, 0, sizeof hs);
    hs.timeout = GS_WATCH_TIMEOUT;
    hs.connect_timeout = apr_time_from_sec(3);
    hs.low_speed_time = apr_time_from_sec(3);
    hs.max_parallel = 1;
    hs.user_agent = "mod_gmailsync/" GS_VERSION " (gzip)";
    if (gs_curl_create(&d->watch_http, d->pool, &hs, &err) != APR_SUCCESS) {
        d->watch_http = NULL;
        GS_LOG_REPEAT(&d->log_watch, GS_LOG_ERR, APR_SUCCESS, "event=push.watch_failed "
                      "reason=\"no HTTP client: %s\"", err ? err : "unknown");
        return 0;
    }
    gs_http_set_tick(d->watch_http, watch_tick, d);
    return 1;
}

static apr_status_t perform(watch_one_t *w, gs_http_request_t *req)
{
    apr_status_t rv = gs_http_perform(w->d->watch_http, w->d->tick, &req, 1);

    if (rv == APR_SUCCESS && req->status == 0) {
        w->unreachable = 1;
    }
    return rv;
}

/* The attempt failed: the account waits its backoff; the first failure of a streak is logged
 * as a warning, the next ones at debug level (a refused watch is logged once, not every try). */
static void failed(watch_one_t *w, const char *why)
{
    daemon_t *d = w->d;
    apr_interval_time_t wait = gs_watch_backoff(w->failures + 1, d->conf->autosync_backoff_max,
                                                w->retry_after);
    const char *args[3];

    args[0] = why;
    args[1] = apr_psprintf(d->tick, "%.3f", (double)wait / APR_USEC_PER_SEC);
    args[2] = w->user_id;
    gs_httpd_count(GS_CTR_PUSH_WATCH_FAILURES, 1);
    if (gs_db_exec(d->db, d->tick, GS_SQL_D_WATCH_FAILED, NULL, 3, args) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_watch, GS_LOG_ERR, APR_SUCCESS, "event=push.watch_db_failed "
                      "reason=\"%s\"", d->db->last_error ? d->db->last_error : "unknown");
    }
    ap_log_error(APLOG_MARK, w->failures ? APLOG_DEBUG : APLOG_WARNING, 0, d->ctx->s,
                 "event=push.watch_failed user=%s failures=%d retry_in=%s reason=\"%s\"",
                 gs_log_value(d->tick, w->user_id), w->failures + 1,
                 gs_format_duration(d->tick, wait), why);
    if (w->unreachable) {
        d->watch_unreachable++;
        d->watch_pause_until = apr_time_now()
            + gs_watch_backoff(d->watch_unreachable, d->conf->autosync_backoff_max, NULL);
    }
}

static const char *open_sealed(daemon_t *d, const char *column, const char *user_id,
                               const char *sealed, const char **why)
{
    const char *plain = NULL;

    if (!sealed || !*sealed) {
        return NULL;
    }
    if (gs_tokenbox_open(d->conf->token_keys, d->tick,
                         gs_tokenbox_context(d->tick, column, user_id), sealed, &plain, why)
        != APR_SUCCESS) {
        return NULL;
    }
    return plain;
}

/* A fresh access token from the token endpoint, stored sealed as the worker stores it. NULL
 * with *why when there is none. */
static int refresh(watch_one_t *w, gs_oauth_t *o, const char **why)
{
    daemon_t *d = w->d;
    gs_http_request_t *req = gs_oauth_refresh_request(o, d->tick);
    const char *new_refresh = NULL, *args[4], *sealed_refresh = NULL;
    gs_oauth_outcome_t out;
    long expires_in = 0;

    if (perform(w, req) != APR_SUCCESS) {
        *why = "stopping";
        return 0;
    }
    out = gs_oauth_parse(o, d->tick, req, apr_time_now(), &expires_in, &new_refresh, why);
    if (out != GS_OAUTH_OK) {
        w->retry_after = req->retry_after;
        *why = apr_pstrcat(d->tick, out == GS_OAUTH_REVOKED ? "auth_revoked: " : "token: ",
                           *why ? *why : "refused", NULL);
        return 0;
    }
    args[0] = NULL;
    if (gs_tokenbox_seal(d->conf->token_keys, d->tick,
                         gs_tokenbox_context(d->tick, "access_token", w->user_id),
                         o->access_token, &args[0]) != APR_SUCCESS
        || (new_refresh && gs_tokenbox_seal(d->conf->token_keys, d->tick,
                                            gs_tokenbox_context(d->tick, "refresh_token",
                                                                w->user_id),
                                            new_refresh, &sealed_refresh) != APR_SUCCESS)) {
        *why = "cannot seal the new token";
        return 0;
    }
    args[1] = apr_ltoa(d->tick, expires_in);
    args[2] = sealed_refresh;
    args[3] = w->user_id;
    if (gs_db_exec(d->db, d->tick, GS_SQL_W_ACCOUNT_TOKEN, NULL, 4, args) != APR_SUCCESS) {
        *why = "cannot store the new token";
        return 0;
    }
    return 1;
}

/* One account of the round: row i of the pick. */
static void watch_one(daemon_t *d, const gs_db_rows_t *rows, int i)
{
    const gs_srv_conf_t *c = d->conf;
    watch_one_t w;
    gs_oauth_t *o;
    gs_http_request_t *req = NULL;
    const char *refresh_token, *access, *why = NULL, *history_id, *expiration, *args[3];
    int attempt;

    memset(&w, 0, sizeof w);
    w.d = d;
    w.user_id = gs_db_cell(rows, i, 0);
    w.watched = !strcmp(gs_db_cell(rows, i, 5), "true");
    w.failures = atoi(gs_db_cell(rows, i, 6));
    if (!(refresh_token = open_sealed(d, "refresh_token", w.user_id, gs_db_cell(rows, i, 2),
                                      &why))) {
        failed(&w, apr_pstrcat(d->tick, "token_undecryptable: ", why ? why : "none", NULL));
        return;
    }
    o = gs_oauth_make(d->tick, c->token_url, c->client_id, d->ctx->client_secret, refresh_token);
    if ((access = open_sealed(d, "access_token", w.user_id, gs_db_cell(rows, i, 3), &why))) {
        gs_oauth_set_token(o, access, apr_time_from_sec(apr_atoi64(gs_db_cell(rows, i, 4))),
                           apr_time_now());
    }
    for (attempt = 0; attempt < 2; attempt++) {
        if (gs_oauth_needs_refresh(o, apr_time_now()) && !refresh(&w, o, &why)) {
            failed(&w, why);
            return;
        }
        req = gs_watch_request(d->tick, c->api_base, o->access_token, c->push_topic);
        if (perform(&w, req) != APR_SUCCESS) {
            return; /* stopping: the lease lapses, the next daemon asks again */
        }
        if (req->status != 401) {
            break;
        }
        gs_oauth_invalidate(o); /* the cached token was refused: one more with a new one */
    }
    if (gs_watch_parse(d->tick, req, &history_id, &expiration, &why) != APR_SUCCESS) {
        w.retry_after = req->retry_after;
        failed(&w, why);
        return;
    }
    d->watch_unreachable = 0;
    args[0] = expiration;
    args[1] = history_id;
    args[2] = w.user_id;
    if (gs_db_exec(d->db, d->tick, GS_SQL_D_WATCH_OK, NULL, 3, args) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_watch, GS_LOG_ERR, APR_SUCCESS, "event=push.watch_db_failed "
                      "reason=\"%s\"", d->db->last_error ? d->db->last_error : "unknown");
        return;
    }
    gs_httpd_count(GS_CTR_PUSH_WATCHES, 1);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->ctx->s, "event=push.watch user=%s renewal=%s "
                 "expiration_ms=%s history_id=%s after_failures=%d",
                 gs_log_value(d->tick, w.user_id), w.watched ? "true" : "false", expiration,
                 history_id, w.failures);
}

void gs_daemon_watch_round(daemon_t *d, apr_time_t now)
{
    const gs_srv_conf_t *c = d->conf;
    const char *args[2];
    gs_db_rows_t *rows;
    long n = GS_WATCH_PER_ROUND;
    int i;

    if (!c->push_topic || !c->enabled || !c->client_id || !c->token_keys
        || gs_daemon_should_exit || now < d->watch_next || now < d->watch_pause_until) {
        return;
    }
    d->watch_next = now + GS_WATCH_INTERVAL;
    /* paced as a worker paces itself: GmailSyncQuotaUnits a second, 100 units a watch */
    if (c->quota_units > 0 && c->quota_units / GS_WATCH_UNITS < n) {
        n = c->quota_units / GS_WATCH_UNITS > 0 ? c->quota_units / GS_WATCH_UNITS : 1;
    }
    if (!gs_daemon_ensure_db(d) || !ensure_http(d)) {
        return;
    }
    args[0] = GS_WATCH_LEASE;
    args[1] = apr_ltoa(d->tick, n);
    if (gs_db_select(d->db, d->tick, GS_SQL_D_WATCH_PICK, &rows, 2, args) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_watch, GS_LOG_ERR, APR_SUCCESS, "event=push.watch_round_failed "
                      "reason=\"%s\"", d->db->last_error ? d->db->last_error : "unknown");
        return;
    }
    GS_LOG_REPEAT_END(&d->log_watch);
    for (i = 0; i < rows->nrows && !gs_daemon_should_exit && apr_time_now() >= d->watch_pause_until;
         i++) {
        watch_one(d, rows, i);
    }
}
