/* mod_gmailsync_health.c -- what operators watch.
 *
 * GET {prefix}/health reports the task counts, the stuck tasks, and the seed's four metrics over
 * GmailSyncMetricsWindow, each with its threshold and whether its alert fires:
 *   success_rate     SUCCEEDED / (SUCCEEDED + FAILED) of the tasks created in the window, %
 *   mean_duration_s  mean finished_at - started_at of the SUCCEEDED ones
 *   stuck_tasks      STUCK now, plus RUNNING ones whose heartbeat is already too old
 *   error_rate       FAILED / all tasks created in the window, %
 * "degraded" when any alert fires. A metric without data (no task in the window) is null and
 * does not fire.
 *
 * Both only read (issue 21): one read-only transaction whose every statement has a lock and a
 * statement timeout, so a database problem (a lock held by a frozen worker, a table lock, a slow
 * server) makes them answer 503 within seconds, never hang; and a SELECT never waits on row
 * locks. Marking stale RUNNING tasks STUCK is the daemon's rescue (and gmailsync-cleanup's):
 * /health counts them as stuck without writing them. By default the answer holds counts and
 * alerts only: task and user ids come with ?detail=1, and only to a caller who presented the
 * bearer token of GmailSyncHealthTokenFile. With that directive set, both answer 401 to anyone
 * else (the token is compared through its SHA-256, in constant time): a reverse proxy on the
 * same host makes every client a loopback one, so `Require ip 127.0.0.1` alone protects nothing.
 *
 * GET {prefix}/metrics is the Prometheus text format. Task figures come from PostgreSQL (the same
 * for every host and MPM); start counters and the start latency histogram live in this host's
 * shared memory (restart at 0 with each httpd generation, as Prometheus counters may).
 */
#include <stdlib.h>
#include <strings.h>

#include <apr_strings.h>
#include <openssl/crypto.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>

#include "gs_board.h"
#include "gs_db.h"
#include "gs_json.h"
#include "gs_sha256.h"
#include "gs_sql.h"
#include "gs_watch.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_health.h"

APLOG_USE_MODULE(gmailsync);

/* Every statement of /health and /metrics: waits for a lock at most this long, runs at most
 * this long (ms). */
#define GS_HEALTH_LOCK_TIMEOUT_MS      "1000"
#define GS_HEALTH_STATEMENT_TIMEOUT_MS "2000"

const char *const gs_health_states[] = { "CREATED", "RUNNING", "STUCK", "SUCCEEDED", "FAILED",
                                          "CANCELLED", NULL };

const char *gs_health_seconds(apr_pool_t *p, apr_interval_time_t t)
{
    return apr_psprintf(p, "%.3f", (double)t / APR_USEC_PER_SEC);
}

static json_object *metric(double value, int has_value, double threshold, int fires)
{
    json_object *m = json_object_new_object();

    json_object_object_add(m, "value", has_value ? json_object_new_double(value) : NULL);
    json_object_object_add(m, "threshold", json_object_new_double(threshold));
    json_object_object_add(m, "alert", json_object_new_boolean(has_value && fires));
    return m;
}


apr_status_t gs_health_autosync_stats(request_rec *r, gs_db_t *db, gs_autosync_stats_t *st)
{
    const gs_srv_conf_t *main_conf = gs_httpd_srv_conf(ap_server_conf);
    const char *args[2];
    gs_db_rows_t *rows;
    apr_status_t rv;

    st->interval = main_conf->autosync;
    args[0] = gs_health_seconds(r->pool, st->interval ? st->interval : apr_time_from_sec(1));
    args[1] = gs_health_seconds(r->pool, main_conf->autosync_backoff_max);
    if ((rv = gs_db_select(db, r->pool, GS_SQL_SCHEDULE_STATS, &rows, 2, args)) != APR_SUCCESS) {
        return rv;
    }
    if (rows->nrows != 1) {
        return APR_EGENERAL;
    }
    st->due = apr_atoi64(gs_db_cell(rows, 0, 0));
    st->active = apr_atoi64(gs_db_cell(rows, 0, 1));
    st->backoff = apr_atoi64(gs_db_cell(rows, 0, 2));
    st->revoked = apr_atoi64(gs_db_cell(rows, 0, 3));
    st->oldest_age = atof(gs_db_cell(rows, 0, 4));
    st->linked = apr_atoi64(gs_db_cell(rows, 0, 5));
    st->late = atof(gs_db_cell(rows, 0, 6));
    return APR_SUCCESS;
}

apr_status_t gs_health_liveness(request_rec *r, gs_db_t *db, gs_liveness_t *lv)
{
    apr_time_t now = apr_time_now();
    apr_time_t since = (apr_time_t)gs_httpd_gauge(GS_GAUGE_GENERATION_AT);
    gs_db_rows_t *queued;
    apr_status_t rv;

    if ((rv = gs_db_select(db, r->pool, GS_SQL_HEALTH_QUEUED, &queued, 0, NULL)) != APR_SUCCESS) {
        return rv;
    }
    lv->queued_age = queued->nrows == 1 && gs_db_cell(queued, 0, 0)
                         ? atof(gs_db_cell(queued, 0, 0)) : -1;
    lv->claim_at = (apr_time_t)gs_httpd_gauge(GS_GAUGE_CLAIM_OK_AT);
    lv->rescue_at = (apr_time_t)gs_httpd_gauge(GS_GAUGE_RESCUE_OK_AT);
    lv->claim_age = (double)(now - (lv->claim_at > since ? lv->claim_at : since))
                    / APR_USEC_PER_SEC;
    lv->rescue_age = (double)(now - (lv->rescue_at > since ? lv->rescue_at : since))
                     / APR_USEC_PER_SEC;
    if (lv->claim_age < 0) {
        lv->claim_age = 0;
    }
    if (lv->rescue_age < 0) {
        lv->rescue_age = 0;
    }
    lv->claim_failures = gs_httpd_gauge(GS_GAUGE_CLAIM_FAILURES);
    lv->rescue_failures = gs_httpd_gauge(GS_GAUGE_RESCUE_FAILURES);
    lv->pid = gs_httpd_gauge(GS_GAUGE_DAEMON_PID);
    return APR_SUCCESS;
}

static json_object *time_or_null(apr_pool_t *p, apr_time_t t)
{
    char buf[APR_RFC822_DATE_LEN + 8];
    apr_time_exp_t e;
    apr_size_t len;

    (void)p;
    if (!t || apr_time_exp_gmt(&e, t) != APR_SUCCESS
        || apr_strftime(buf, &len, sizeof buf, "%Y-%m-%dT%H:%M:%S", &e) != APR_SUCCESS) {
        return NULL;
    }
    return json_object_new_string(apr_psprintf(p, "%s.%03dZ", buf, e.tm_usec / 1000));
}

int gs_health_db_unavailable(request_rec *r, gs_db_t *db)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=health.db_error reason=\"%s\"",
                  db && db->last_error ? db->last_error : "the database cannot be reached");
    return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                 "the database cannot be reached (or the schema is missing: "
                                 "gmailsync-migrate up)");
}

/* May r read /health and /metrics? Yes without GmailSyncHealthTokenFile; else only with
 * `Authorization: Bearer <the token>`, compared through SHA-256 digests with CRYPTO_memcmp: the
 * time taken says nothing about the token. */
int gs_health_bearer_ok(request_rec *r, const gs_srv_conf_t *conf)
{
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    const char *h;
    apr_size_t len;

    if (!conf->health_token_sha256) {
        return 1;
    }
    h = apr_table_get(r->headers_in, "Authorization");
    if (!h || strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t')) {
        return 0;
    }
    for (h += 6; *h == ' ' || *h == '\t'; h++) {
    }
    len = strlen(h);
    while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t')) {
        len--;
    }
    gs_sha256(h, len, digest);
    return CRYPTO_memcmp(digest, conf->health_token_sha256, GS_SHA256_DIGEST_LEN) == 0;
}

int gs_health_unauthorized(request_rec *r)
{
    /* info, not warn: a monitor without the token would flood the log; never the header */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=health.unauthorized client=%s",
                  r->useragent_ip);
    apr_table_setn(r->headers_out, "WWW-Authenticate", "Bearer realm=\"gmailsync\"");
    return gs_httpd_send_problem(r, HTTP_UNAUTHORIZED, "unauthorized",
                                 "this server requires Authorization: Bearer <the token of "
                                 GS_DIR_HEALTH_TOKEN_FILE ">");
}

/* The read-only transaction of /health and /metrics, with its timeouts. */
apr_status_t gs_health_begin_read_only(request_rec *r, gs_db_t *db)
{
    static const char *const timeouts[2] = { GS_HEALTH_LOCK_TIMEOUT_MS,
                                             GS_HEALTH_STATEMENT_TIMEOUT_MS };
    gs_db_rows_t *rows;
    apr_status_t rv;

    if ((rv = gs_db_begin(db, r->pool)) != APR_SUCCESS) {
        return rv;
    }
    return gs_db_select(db, r->pool, GS_SQL_HEALTH_READ_ONLY, &rows, 2, timeouts);
}

/* ?detail=1 (or true): the task and user ids of the stuck and running tasks. */
static int wants_detail(request_rec *r)
{
    char *args, *pair, *state = NULL;
    int detail = 0;

    if (!r->args) {
        return 0;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        if (!strcmp(pair, "detail=1") || !strcasecmp(pair, "detail=true")) {
            detail = 1;
        }
        else if (!strncmp(pair, "detail=", 7)) {
            detail = 0;
        }
    }
    return detail;
}

int gs_httpd_handle_health(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *stuck_args[1], *window_args[1];
    gs_db_rows_t *version, *states, *stuck_count, *stuck = NULL, *window, *running = NULL,
                 *versions;
    gs_liveness_t lv;
    gs_autosync_stats_t as;
    gs_watch_stats_t ws;
    double queued_after, stale_after, late_after;
    json_object *body, *dbj, *tasks, *stuck_list, *metrics, *alerts, *runj, *list, *counts, *wj;
    apr_int64_t running_count = 0;
    double success = 0, errors = 0, mean = 0;
    apr_int64_t created, succeeded, failed, stuck_n;
    long schema_version;
    int has_success, has_mean, degraded = 0, detail, i;
    gs_db_t *db;

    (void)arg;
    if (!gs_health_bearer_ok(r, conf)) {
        return gs_health_unauthorized(r);
    }
    /* the version that answers, even in a 503: a rollback can tell which generation serves */
    apr_table_setn(r->headers_out, "X-GmailSync-Version", GS_VERSION);
    detail = wants_detail(r);
    if (detail && !conf->health_token_sha256) {
        return gs_httpd_send_problem(r, HTTP_FORBIDDEN, "health-detail-needs-token",
                                     "task and user ids are shown only with "
                                     GS_DIR_HEALTH_TOKEN_FILE " set, to a caller who sends its "
                                     "token; without ?detail=1 this answers counts and alerts");
    }
    memset(&ws, 0, sizeof ws);
    if (!(db = gs_httpd_request_db(r))) {
        return gs_health_db_unavailable(r, NULL);
    }
    if (gs_health_begin_read_only(r, db) != APR_SUCCESS
        || gs_db_select(db, r->pool, GS_SQL_SCHEMA_VERSION, &version, 0, NULL) != APR_SUCCESS
        || version->nrows != 1 || !gs_db_cell(version, 0, 0)) {
        return gs_health_db_unavailable(r, db);
    }
    schema_version = strtol(gs_db_cell(version, 0, 0), NULL, 10);
    stuck_args[0] = gs_health_seconds(r->pool, conf->stuck_after);
    window_args[0] = gs_health_seconds(r->pool, conf->metrics_window);
    if (gs_db_select(db, r->pool, GS_SQL_HEALTH_STATES, &states, 0, NULL) != APR_SUCCESS
        || gs_db_select(db, r->pool, GS_SQL_HEALTH_STUCK_COUNT, &stuck_count, 1, stuck_args)
               != APR_SUCCESS
        || stuck_count->nrows != 1
        || (detail && gs_db_select(db, r->pool, GS_SQL_HEALTH_STUCK, &stuck, 1, stuck_args)
                          != APR_SUCCESS)
        || gs_db_select(db, r->pool, GS_SQL_HEALTH_WINDOW, &window, 1, window_args)
               != APR_SUCCESS
        || (detail && gs_db_select(db, r->pool, GS_SQL_HEALTH_RUNNING, &running, 0, NULL)
                          != APR_SUCCESS)
        || gs_db_select(db, r->pool, GS_SQL_RUNNING_VERSIONS, &versions, 0, NULL)
               != APR_SUCCESS
        || gs_health_liveness(r, db, &lv) != APR_SUCCESS || gs_health_autosync_stats(r, db, &as) != APR_SUCCESS
        || (conf->push_topic && schema_version >= GS_WATCH_MIN_SCHEMA
            && gs_watch_stats(db, r->pool, &ws) != APR_SUCCESS)
        || gs_db_commit(db) != APR_SUCCESS) {
        return gs_health_db_unavailable(r, db);
    }
    stuck_n = apr_atoi64(gs_db_cell(stuck_count, 0, 0));

    body = gs_json_object(r->pool);
    gs_json_set_string(body, "version", GS_VERSION);
    gs_json_set_bool(body, "enabled", conf->enabled);
    gs_json_set_string(body, "mode", gs_sync_mode_name((gs_sync_mode_t)conf->mode));
    gs_json_set_int(body, "max_workers", conf->max_workers);
    gs_json_set_bool(body, "detail", detail);

    dbj = json_object_new_object();
    gs_json_set_bool(dbj, "ok", 1);
    gs_json_set_int(dbj, "schema_version", schema_version);
    gs_json_set_string(dbj, "now", gs_db_cell(version, 0, 1));
    gs_json_set_object(body, "database", dbj);

    tasks = json_object_new_object();
    for (i = 0; i < 3; i++) { /* the non-terminal states, 0 when absent */
        gs_json_set_int(tasks, gs_health_states[i], 0);
    }
    for (i = 0; i < states->nrows; i++) {
        gs_json_set_int(tasks, gs_db_cell(states, i, 0), apr_atoi64(gs_db_cell(states, i, 1)));
    }
    gs_json_set_object(body, "tasks", tasks);

    /* ids only on request, to a caller with the token (checked above) */
    if (stuck) {
        stuck_list = json_object_new_array();
        for (i = 0; i < stuck->nrows; i++) {
            json_object *t = json_object_new_object();
            gs_json_set_string(t, "task_id", gs_db_cell(stuck, i, 0));
            gs_json_set_string(t, "user_id", gs_db_cell(stuck, i, 1));
            gs_json_set_string(t, "state", gs_db_cell(stuck, i, 2));
            gs_json_set_int(t, "heartbeat_age_s", apr_atoi64(gs_db_cell(stuck, i, 3)));
            json_object_array_add(stuck_list, t);
        }
        gs_json_set_object(body, "stuck", stuck_list);
    }

    /* which version runs what (all hosts): RUNNING tasks by the worker version they recorded
     * ("unknown": code older than migration 003, or the instant between claim and adopt) */
    runj = json_object_new_object();
    counts = json_object_new_object();
    for (i = 0; i < versions->nrows; i++) {
        const char *v = gs_db_cell(versions, i, 0);
        apr_int64_t n = apr_atoi64(gs_db_cell(versions, i, 1));
        gs_json_set_int(counts, v && *v ? v : "unknown", n);
        running_count += n;
    }
    gs_json_set_int(runj, "count", running_count);
    gs_json_set_object(runj, "worker_versions", counts);
    if (running) {
        list = json_object_new_array();
        for (i = 0; i < running->nrows; i++) {
            json_object *t = json_object_new_object();
            gs_json_set_string(t, "task_id", gs_db_cell(running, i, 0));
            gs_json_set_string(t, "user_id", gs_db_cell(running, i, 1));
            gs_json_set_string(t, "worker_version", gs_db_cell(running, i, 2));
            gs_json_set_string(t, "worker_host", gs_db_cell(running, i, 3));
            gs_json_set_string(t, "started_at", gs_db_cell(running, i, 4));
            json_object_array_add(list, t);
        }
        gs_json_set_object(runj, "tasks", list);
    }
    gs_json_set_object(body, "running", runj);

    created = apr_atoi64(gs_db_cell(window, 0, 0));
    succeeded = apr_atoi64(gs_db_cell(window, 0, 1));
    failed = apr_atoi64(gs_db_cell(window, 0, 2));
    has_success = succeeded + failed > 0;
    if (has_success) {
        success = 100.0 * (double)succeeded / (double)(succeeded + failed);
    }
    if (created > 0) {
        errors = 100.0 * (double)failed / (double)created;
    }
    has_mean = gs_db_cell(window, 0, 4) != NULL;
    if (has_mean) {
        mean = atof(gs_db_cell(window, 0, 4));
    }

    metrics = json_object_new_object();
    alerts = json_object_new_array();
#define METRIC(name, value, has, threshold, fires)                                              \
    do {                                                                                         \
        json_object_object_add(metrics, name, metric(value, has, threshold, fires));            \
        if ((has) && (fires)) {                                                                  \
            json_object_array_add(alerts, json_object_new_string(name));                         \
            degraded = 1;                                                                        \
        }                                                                                        \
    } while (0)
    METRIC("success_rate", success, has_success, conf->alert_success_rate,
           success < conf->alert_success_rate);
    METRIC("mean_duration_s", mean, has_mean,
           (double)conf->alert_mean_duration / APR_USEC_PER_SEC,
           mean > (double)conf->alert_mean_duration / APR_USEC_PER_SEC);
    METRIC("stuck_tasks", (double)stuck_n, 1, (double)conf->alert_stuck_tasks,
           stuck_n > conf->alert_stuck_tasks);
    METRIC("error_rate", errors, created > 0, conf->alert_error_rate,
           errors > conf->alert_error_rate);
    /* nothing runs: tasks wait, or this host's daemon has not finished a claim or rescue round
     * for GmailSyncQueuedAlertAfter (it fails every round, is wedged, or is gone) */
    queued_after = (double)conf->queued_alert_after / APR_USEC_PER_SEC;
    METRIC("oldest_queued_age_s", lv.queued_age, lv.queued_age >= 0, queued_after,
           lv.queued_age > queued_after);
    METRIC("daemon_claim_age_s", lv.claim_age, 1, queued_after, lv.claim_age > queued_after);
    METRIC("daemon_rescue_age_s", lv.rescue_age, 1, queued_after, lv.rescue_age > queued_after);
    /* a linked account whose last successful sync is older than GmailSyncStaleAlertAfter */
    stale_after = (double)conf->stale_alert_after / APR_USEC_PER_SEC;
    METRIC("oldest_sync_age_s", as.oldest_age, conf->stale_alert_after > 0 && as.linked > 0,
           stale_after, as.oldest_age > stale_after);
    /* the scheduler's backlog: how long the most overdue due account has waited past its due
     * time (0: none due). It grows without bound when the accounts need more than the workers
     * give (accounts x sync duration / interval > GmailSyncMaxWorkers), whatever their number */
    late_after = (double)conf->autosync_late_alert_after / APR_USEC_PER_SEC;
    METRIC("autosync_late_s", as.late, as.interval > 0, late_after,
           conf->autosync_late_alert_after > 0 && as.late > late_after);
#undef METRIC
    /* push configured on a schema without its tables and columns (sql/013, 014: the module
     * runs on schema 12 and up): every push would fail, no watch is renewed */
    if (conf->push_topic && schema_version < GS_WATCH_MIN_SCHEMA) {
        json_object_array_add(alerts, json_object_new_string("push_schema"));
        degraded = 1;
    }
    gs_json_set_object(body, "metrics", metrics);

    /* the daemon's schedule (main server's GmailSyncAutoSync); null when Off */
    if (as.interval) {
        const gs_srv_conf_t *main_conf = gs_httpd_srv_conf(ap_server_conf);

        dbj = json_object_new_object();
        gs_json_set_int(dbj, "interval_s", apr_time_sec(as.interval));
        gs_json_set_int(dbj, "max_starts", main_conf->autosync_max_starts);
        gs_json_set_int(dbj, "backoff_max_s", apr_time_sec(main_conf->autosync_backoff_max));
        gs_json_set_int(dbj, "linked", as.linked);
        gs_json_set_int(dbj, "due", as.due);
        json_object_object_add(dbj, "late_s", json_object_new_double(as.late));
        gs_json_set_int(dbj, "active", as.active);
        gs_json_set_int(dbj, "backing_off", as.backoff);
        gs_json_set_int(dbj, "revoked", as.revoked);
        gs_json_set_object(body, "auto_sync", dbj);
    }
    else {
        json_object_object_add(body, "auto_sync", NULL);
    }
    /* push notifications (issue 26): this host's counters; null without GmailSyncPushTopic */
    if (conf->push_topic) {
        dbj = json_object_new_object();
        gs_json_set_string(dbj, "topic", conf->push_topic);
        gs_json_set_int(dbj, "received", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_RECEIVED));
        gs_json_set_int(dbj, "accepted", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_ACCEPTED));
        gs_json_set_int(dbj, "ignored", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_IGNORED));
        gs_json_set_int(dbj, "unknown_address", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_UNKNOWN));
        gs_json_set_int(dbj, "refused", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_REFUSED));
        gs_json_set_int(dbj, "follow_ups", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_FOLLOW_UPS));
        /* the watches (sql/014, every host) and this host's calls; null before migration 014 */
        wj = json_object_new_object();
        gs_json_set_int(wj, "watched", ws.watched);
        gs_json_set_int(wj, "due", ws.due);
        gs_json_set_int(wj, "lapsed", ws.lapsed);
        gs_json_set_int(wj, "unwatched", ws.unwatched);
        gs_json_set_int(wj, "failing", ws.failing);
        gs_json_set_int(wj, "max_failures", ws.max_failures);
        gs_json_set_int(wj, "granted", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_WATCHES));
        gs_json_set_int(wj, "failed", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_WATCH_FAILURES));
        gs_json_set_int(wj, "stopped", (apr_int64_t)gs_httpd_counter(GS_CTR_PUSH_STOPS));
        if (schema_version >= GS_WATCH_MIN_SCHEMA) {
            gs_json_set_object(dbj, "watches", wj);
        }
        else {
            json_object_put(wj);
            json_object_object_add(dbj, "watches", NULL);
        }
        gs_json_set_object(body, "push", dbj);
    }
    else {
        json_object_object_add(body, "push", NULL);
    }
    gs_json_set_object(body, "alerts", alerts);

    dbj = json_object_new_object();
    gs_json_set_int(dbj, "seconds", conf->metrics_window / APR_USEC_PER_SEC);
    gs_json_set_int(dbj, "tasks_created", created);
    gs_json_set_int(dbj, "succeeded", succeeded);
    gs_json_set_int(dbj, "failed", failed);
    gs_json_set_int(dbj, "cancelled", apr_atoi64(gs_db_cell(window, 0, 3)));
    gs_json_set_object(body, "window", dbj);

    dbj = json_object_new_object();
    json_object_object_add(dbj, "pid", lv.pid ? json_object_new_int64((int64_t)lv.pid) : NULL);
    json_object_object_add(dbj, "last_claim_at", time_or_null(r->pool, lv.claim_at));
    json_object_object_add(dbj, "last_rescue_at", time_or_null(r->pool, lv.rescue_at));
    gs_json_set_int(dbj, "claim_failures", (apr_int64_t)lv.claim_failures);
    gs_json_set_int(dbj, "rescue_failures", (apr_int64_t)lv.rescue_failures);
    gs_json_set_object(body, "daemon", dbj);

    if (schema_version < GS_SQL_MIN_SCHEMA) {
        degraded = 1;
    }
    gs_json_set_string(body, "status", degraded ? "degraded" : "ok");
    return gs_httpd_send_json(r, HTTP_OK, body);
}
