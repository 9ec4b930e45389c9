/* mod_gmailsync_metrics.c -- GET {prefix}/metrics, the Prometheus text format.
 *
 * Task and mailbox figures come from PostgreSQL (the same for every host and MPM), read in the
 * read-only transaction /health uses; start counters, Gmail answer classes and the start
 * latency histogram live in this host's shared memory (they restart at 0 with each httpd
 * generation, as Prometheus counters may).
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_board.h"
#include "gs_db.h"
#include "gs_sql.h"
#include "gs_watch.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_health.h"

APLOG_USE_MODULE(gmailsync);

/* A Prometheus label value: backslash, double quote and newline escaped. */
static const char *gs_prom_label(apr_pool_t *p, const char *v)
{
    char *out = apr_palloc(p, 2 * strlen(v) + 1), *o = out;

    for (; *v; v++) {
        if (*v == '\\' || *v == '"') {
            *o++ = '\\';
            *o++ = *v;
        }
        else if (*v == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *v;
        }
    }
    *o = '\0';
    return out;
}

#define GS_HIST_BUCKETS 10

static void histogram_in(apr_bucket_brigade *bb, const char *name, const char *help,
                         const gs_db_rows_t *rows, int col, const double *bounds)
{
    apr_uint64_t counts[GS_HIST_BUCKETS] = { 0 };
    double sum = 0;
    unsigned b;
    int i;

    for (i = 0; i < rows->nrows; i++) {
        const char *cell = gs_db_cell(rows, i, col);
        double v = cell ? atof(cell) : 0;
        sum += v;
        for (b = 0; b < GS_HIST_BUCKETS; b++) {
            if (v <= bounds[b]) {
                counts[b]++;
            }
        }
    }
    apr_brigade_printf(bb, NULL, NULL, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (b = 0; b < GS_HIST_BUCKETS; b++) {
        apr_brigade_printf(bb, NULL, NULL, "%s_bucket{le=\"%g\"} %" APR_UINT64_T_FMT "\n", name,
                           bounds[b], counts[b]);
    }
    apr_brigade_printf(bb, NULL, NULL, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %.3f\n%s_count %d\n",
                       name, rows->nrows, name, sum, name, rows->nrows);
}

static void histogram(apr_bucket_brigade *bb, request_rec *r, const char *name, const char *help,
                      const gs_db_rows_t *rows, int col)
{
    static const double bounds[GS_HIST_BUCKETS] = { 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600 };

    (void)r;
    histogram_in(bb, name, help, rows, col, bounds);
}

/* The watches of push notifications (sql/014) and the push-to-sync latency of the last day. */
static void push_watch_metrics(apr_bucket_brigade *bb, const gs_watch_stats_t *ws,
                               const gs_db_rows_t *latencies)
{
    static const double bounds[GS_HIST_BUCKETS] = { 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60 };

    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_push_watches Linked accounts by the state of their Gmail watch "
        "(every host): watched (not lapsed), due (at or past the renewal time, lapsed included), "
        "lapsed, unwatched (never watched yet), failing (the last attempt failed).\n"
        "# TYPE gmailsync_push_watches gauge\n"
        "gmailsync_push_watches{state=\"watched\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_push_watches{state=\"due\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_push_watches{state=\"lapsed\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_push_watches{state=\"unwatched\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_push_watches{state=\"failing\"} %" APR_INT64_T_FMT "\n"
        "# HELP gmailsync_push_watch_calls_total users.watch and users.stop calls of this host "
        "by outcome.\n"
        "# TYPE gmailsync_push_watch_calls_total counter\n"
        "gmailsync_push_watch_calls_total{outcome=\"granted\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_push_watch_calls_total{outcome=\"failed\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_push_watch_calls_total{outcome=\"stopped\"} %" APR_UINT64_T_FMT "\n",
        ws->watched, ws->due, ws->lapsed, ws->unwatched, ws->failing,
        gs_httpd_counter(GS_CTR_PUSH_WATCHES), gs_httpd_counter(GS_CTR_PUSH_WATCH_FAILURES),
        gs_httpd_counter(GS_CTR_PUSH_STOPS));
    histogram_in(bb, "gmailsync_push_to_sync_seconds", "From a push's arrival (its task's "
                 "creation) to that sync's RUNNING, push-started tasks of the last day.",
                 latencies, 0, bounds);
}

int gs_httpd_handle_metrics(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    static const double start_bounds[] = GS_START_BUCKETS;
    gs_db_rows_t *totals, *durations, *versions, *mailbox, *latencies = NULL, *version = NULL;
    gs_watch_stats_t ws;
    gs_liveness_t lv;
    gs_autosync_stats_t as;
    apr_bucket_brigade *bb;
    apr_int64_t messages = 0, rescues = 0;
    double oldest = 0;
    const char *state;
    unsigned b;
    int i, j;
    gs_db_t *db;

    (void)arg;
    if (!gs_health_bearer_ok(r, conf)) {
        return gs_health_unauthorized(r);
    }
    if (!(db = gs_httpd_request_db(r))) {
        return gs_health_db_unavailable(r, NULL);
    }
    if (gs_health_begin_read_only(r, db) != APR_SUCCESS
        || gs_db_select(db, r->pool, GS_SQL_METRICS_TOTALS, &totals, 0, NULL) != APR_SUCCESS
        || gs_db_select(db, r->pool, GS_SQL_METRICS_DURATIONS, &durations, 0, NULL)
               != APR_SUCCESS
        || gs_db_select(db, r->pool, GS_SQL_RUNNING_VERSIONS, &versions, 0, NULL)
               != APR_SUCCESS
        || gs_db_select(db, r->pool, GS_SQL_METRICS_MAILBOX, &mailbox, 0, NULL) != APR_SUCCESS
        || mailbox->nrows != 1
        || gs_health_liveness(r, db, &lv) != APR_SUCCESS || gs_health_autosync_stats(r, db, &as) != APR_SUCCESS
        || (conf->push_topic
            && (gs_db_select(db, r->pool, GS_SQL_SCHEMA_VERSION, &version, 0, NULL) != APR_SUCCESS
                || version->nrows != 1 || !gs_db_cell(version, 0, 0)))
        || (conf->push_topic && atol(gs_db_cell(version, 0, 0)) >= GS_WATCH_MIN_SCHEMA
            && (gs_watch_stats(db, r->pool, &ws) != APR_SUCCESS
                || gs_db_select(db, r->pool, GS_SQL_PUSH_LATENCIES, &latencies, 0, NULL)
                   != APR_SUCCESS))
        || gs_db_commit(db) != APR_SUCCESS) {
        return gs_health_db_unavailable(r, db);
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_build_info The mod_gmailsync version this host's httpd runs.\n"
        "# TYPE gmailsync_build_info gauge\ngmailsync_build_info{version=\"%s\"} 1\n"
        "# HELP gmailsync_info Version of mod_gmailsync on this host (old name of "
        "gmailsync_build_info).\n"
        "# TYPE gmailsync_info gauge\ngmailsync_info{version=\"%s\"} 1\n", GS_VERSION,
        GS_VERSION);
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_running_tasks RUNNING tasks by the version of their worker (all hosts; "
        "unknown: not recorded).\n# TYPE gmailsync_running_tasks gauge\n");
    for (i = 0; i < versions->nrows; i++) {
        const char *v = gs_db_cell(versions, i, 0);
        apr_brigade_printf(bb, NULL, NULL, "gmailsync_running_tasks{worker_version=\"%s\"} %s\n",
                           v && *v ? gs_prom_label(r->pool, v) : "unknown",
                           gs_db_cell(versions, i, 1));
    }
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_starts_total Start requests on this host by result.\n"
        "# TYPE gmailsync_starts_total counter\n"
        "gmailsync_starts_total{result=\"created\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_starts_total{result=\"reused\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_starts_total{result=\"rejected\"} %" APR_UINT64_T_FMT "\n",
        gs_httpd_counter(GS_CTR_START_CREATED), gs_httpd_counter(GS_CTR_START_REUSED),
        gs_httpd_counter(GS_CTR_START_REJECTED));
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_progress_streams Open progress streams (SSE) on this host.\n"
        "# TYPE gmailsync_progress_streams gauge\ngmailsync_progress_streams %u\n"
        "# HELP gmailsync_progress_streams_limit The host's limit (GmailSyncMaxStreams).\n"
        "# TYPE gmailsync_progress_streams_limit gauge\ngmailsync_progress_streams_limit %ld\n"
        "# HELP gmailsync_progress_streams_refused_total Streams refused by limit.\n"
        "# TYPE gmailsync_progress_streams_refused_total counter\n"
        "gmailsync_progress_streams_refused_total{limit=\"user\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_progress_streams_refused_total{limit=\"host\"} %" APR_UINT64_T_FMT "\n",
        (unsigned)gs_httpd_streams_open(), gs_httpd_streams_limit(),
        gs_httpd_counter(GS_CTR_STREAMS_REFUSED_USER),
        gs_httpd_counter(GS_CTR_STREAMS_REFUSED_HOST));

    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_gmail_calls_total Gmail answers to this host's workers (requests and "
        "batch parts) by status class; error = no answer.\n"
        "# TYPE gmailsync_gmail_calls_total counter\n");
    for (b = 0; b < GS_BOARD_CALL_CLASSES; b++) {
        apr_brigade_printf(bb, NULL, NULL, "gmailsync_gmail_calls_total{status=\"%s\"} %"
                           APR_UINT64_T_FMT "\n", gs_board_call_class_names[b],
                           gs_httpd_counter((gs_counter_t)(GS_CTR_GMAIL0 + b)));
    }
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_mailbox_messages Stored messages of every user, deleted ones (archive "
        "mode) left out.\n# TYPE gmailsync_mailbox_messages gauge\ngmailsync_mailbox_messages %s\n"
        "# HELP gmailsync_mailbox_unread Of those, the unread ones.\n"
        "# TYPE gmailsync_mailbox_unread gauge\ngmailsync_mailbox_unread %s\n"
        "# HELP gmailsync_mailbox_threads Stored threads of every user.\n"
        "# TYPE gmailsync_mailbox_threads gauge\ngmailsync_mailbox_threads %s\n"
        "# HELP gmailsync_mailbox_labels Stored labels (system and user) of every user.\n"
        "# TYPE gmailsync_mailbox_labels gauge\ngmailsync_mailbox_labels %s\n",
        gs_db_cell(mailbox, 0, 0), gs_db_cell(mailbox, 0, 1), gs_db_cell(mailbox, 0, 2),
        gs_db_cell(mailbox, 0, 3));
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_tasks Tasks by state (all hosts).\n# TYPE gmailsync_tasks gauge\n");
    for (j = 0; gs_health_states[j]; j++) {
        const char *count = "0";
        for (i = 0; i < totals->nrows; i++) {
            if (!strcmp(gs_db_cell(totals, i, 0), gs_health_states[j])) {
                count = gs_db_cell(totals, i, 1);
            }
        }
        apr_brigade_printf(bb, NULL, NULL, "gmailsync_tasks{state=\"%s\"} %s\n", gs_health_states[j],
                           count);
    }
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_tasks_finished_total Finished tasks by final state (all hosts).\n"
        "# TYPE gmailsync_tasks_finished_total counter\n");
    for (j = 3; gs_health_states[j]; j++) {
        const char *count = "0";
        for (i = 0; i < totals->nrows; i++) {
            if (!strcmp(gs_db_cell(totals, i, 0), gs_health_states[j])) {
                count = gs_db_cell(totals, i, 1);
            }
        }
        apr_brigade_printf(bb, NULL, NULL, "gmailsync_tasks_finished_total{state=\"%s\"} %s\n",
                           gs_health_states[j], count);
    }
    for (i = 0; i < totals->nrows; i++) {
        state = gs_db_cell(totals, i, 0);
        messages += apr_atoi64(gs_db_cell(totals, i, 2));
        rescues += apr_atoi64(gs_db_cell(totals, i, 3));
        if (!strcmp(state, "RUNNING")) {
            oldest = atof(gs_db_cell(totals, i, 4));
        }
    }
    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_messages_synced_total Messages processed by succeeded tasks.\n"
        "# TYPE gmailsync_messages_synced_total counter\n"
        "gmailsync_messages_synced_total %" APR_INT64_T_FMT "\n"
        "# HELP gmailsync_rescues_total Tasks ended by the rescuer (stuck, not started, crashed).\n"
        "# TYPE gmailsync_rescues_total counter\ngmailsync_rescues_total %" APR_INT64_T_FMT "\n"
        "# HELP gmailsync_oldest_heartbeat_age_seconds Age of the oldest running heartbeat.\n"
        "# TYPE gmailsync_oldest_heartbeat_age_seconds gauge\n"
        "gmailsync_oldest_heartbeat_age_seconds %.3f\n", messages, rescues, oldest);

    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_oldest_queued_age_seconds Age of the oldest CREATED task (all hosts; "
        "0 when none).\n# TYPE gmailsync_oldest_queued_age_seconds gauge\n"
        "gmailsync_oldest_queued_age_seconds %.3f\n"
        "# HELP gmailsync_daemon_last_claim_age_seconds Seconds since this host's daemon last "
        "finished a claim round without an error.\n"
        "# TYPE gmailsync_daemon_last_claim_age_seconds gauge\n"
        "gmailsync_daemon_last_claim_age_seconds %.3f\n"
        "# HELP gmailsync_daemon_last_rescue_age_seconds Seconds since this host's daemon last "
        "finished a rescue round without an error.\n"
        "# TYPE gmailsync_daemon_last_rescue_age_seconds gauge\n"
        "gmailsync_daemon_last_rescue_age_seconds %.3f\n"
        "# HELP gmailsync_daemon_failing_rounds Consecutive failed rounds of this host's daemon.\n"
        "# TYPE gmailsync_daemon_failing_rounds gauge\n"
        "gmailsync_daemon_failing_rounds{round=\"claim\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_daemon_failing_rounds{round=\"rescue\"} %" APR_UINT64_T_FMT "\n"
        "# HELP gmailsync_queued_alert_after_seconds The alert threshold of the three ages "
        "above (GmailSyncQueuedAlertAfter).\n"
        "# TYPE gmailsync_queued_alert_after_seconds gauge\n"
        "gmailsync_queued_alert_after_seconds %.3f\n",
        lv.queued_age > 0 ? lv.queued_age : 0.0, lv.claim_age, lv.rescue_age, lv.claim_failures,
        lv.rescue_failures, (double)conf->queued_alert_after / APR_USEC_PER_SEC);

    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_autosync_interval_seconds GmailSyncAutoSync (0: Off).\n"
        "# TYPE gmailsync_autosync_interval_seconds gauge\n"
        "gmailsync_autosync_interval_seconds %.3f\n"
        "# HELP gmailsync_autosync_starts_total Syncs this host's scheduler started.\n"
        "# TYPE gmailsync_autosync_starts_total counter\n"
        "gmailsync_autosync_starts_total %" APR_UINT64_T_FMT "\n"
        "# HELP gmailsync_autosync_skipped_total Due accounts this host's scheduler found "
        "already started (by a click or another host) under the start lock.\n"
        "# TYPE gmailsync_autosync_skipped_total counter\n"
        "gmailsync_autosync_skipped_total{reason=\"active\"} %" APR_UINT64_T_FMT "\n"
        "# HELP gmailsync_autosync_rounds_total Scheduling rounds of this host's daemon that "
        "asked the database (one a second, and one when a worker's slot frees while accounts "
        "are due).\n"
        "# TYPE gmailsync_autosync_rounds_total counter\n"
        "gmailsync_autosync_rounds_total %" APR_UINT64_T_FMT "\n"
        "# HELP gmailsync_autosync_accounts Linked accounts by schedule state (all hosts): due "
        "now, skipped because a sync is active, backing off after failures, waiting for a new "
        "link after auth_revoked or token_undecryptable.\n"
        "# TYPE gmailsync_autosync_accounts gauge\n"
        "gmailsync_autosync_accounts{state=\"due\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_autosync_accounts{state=\"active\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_autosync_accounts{state=\"backing_off\"} %" APR_INT64_T_FMT "\n"
        "gmailsync_autosync_accounts{state=\"revoked\"} %" APR_INT64_T_FMT "\n"
        "# HELP gmailsync_oldest_sync_age_seconds Seconds since the stalest linked account last "
        "synced successfully (since it was linked, if never; 0 when none is linked).\n"
        "# TYPE gmailsync_oldest_sync_age_seconds gauge\n"
        "gmailsync_oldest_sync_age_seconds %.3f\n"
        "# HELP gmailsync_stale_alert_after_seconds Its alert threshold "
        "(GmailSyncStaleAlertAfter; 0: no alert).\n"
        "# TYPE gmailsync_stale_alert_after_seconds gauge\n"
        "gmailsync_stale_alert_after_seconds %.3f\n"
        "# HELP gmailsync_autosync_late_seconds How long the most overdue account that is due "
        "for a scheduled sync has waited past its due time (all hosts; 0 when none is due).\n"
        "# TYPE gmailsync_autosync_late_seconds gauge\n"
        "gmailsync_autosync_late_seconds %.3f\n"
        "# HELP gmailsync_autosync_late_alert_after_seconds Its alert threshold "
        "(GmailSyncAutoSyncLateAlertAfter; 0: no alert).\n"
        "# TYPE gmailsync_autosync_late_alert_after_seconds gauge\n"
        "gmailsync_autosync_late_alert_after_seconds %.3f\n",
        (double)as.interval / APR_USEC_PER_SEC, gs_httpd_counter(GS_CTR_AUTOSYNC_STARTED),
        gs_httpd_counter(GS_CTR_AUTOSYNC_SKIPPED), gs_httpd_counter(GS_CTR_AUTOSYNC_ROUNDS),
        as.interval ? as.due : 0,
        as.interval ? as.active : 0, as.interval ? as.backoff : 0, as.interval ? as.revoked : 0,
        as.oldest_age, (double)conf->stale_alert_after / APR_USEC_PER_SEC,
        as.interval ? as.late : 0.0, (double)conf->autosync_late_alert_after / APR_USEC_PER_SEC);

    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_push_requests_total POST {prefix}/push on this host by outcome: "
        "accepted (a sync started, found queued, or a follow-up set), ignored (a replay, a "
        "history id the account has, an address no account has), refused (a bad token or body).\n"
        "# TYPE gmailsync_push_requests_total counter\n"
        "gmailsync_push_requests_total{outcome=\"received\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_push_requests_total{outcome=\"accepted\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_push_requests_total{outcome=\"ignored\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_push_requests_total{outcome=\"refused\"} %" APR_UINT64_T_FMT "\n"
        "# HELP gmailsync_push_unknown_address_total Pushes of this host for an address no "
        "account has (acknowledged, part of ignored).\n"
        "# TYPE gmailsync_push_unknown_address_total counter\n"
        "gmailsync_push_unknown_address_total %" APR_UINT64_T_FMT "\n"
        "# HELP gmailsync_push_follow_ups_total Follow-up syncs this host's daemon started for "
        "pushes that came while a sync ran.\n"
        "# TYPE gmailsync_push_follow_ups_total counter\n"
        "gmailsync_push_follow_ups_total %" APR_UINT64_T_FMT "\n",
        gs_httpd_counter(GS_CTR_PUSH_RECEIVED), gs_httpd_counter(GS_CTR_PUSH_ACCEPTED),
        gs_httpd_counter(GS_CTR_PUSH_IGNORED), gs_httpd_counter(GS_CTR_PUSH_REFUSED),
        gs_httpd_counter(GS_CTR_PUSH_UNKNOWN), gs_httpd_counter(GS_CTR_PUSH_FOLLOW_UPS));

    if (latencies) {   /* push on, schema 014 or later */
        push_watch_metrics(bb, &ws, latencies);
    }
    histogram(bb, r, "gmailsync_task_duration_seconds",
              "Duration of tasks finished in the last day (started to finished).", durations, 0);
    histogram(bb, r, "gmailsync_queue_latency_seconds",
              "CREATED to RUNNING latency of tasks finished in the last day.", durations, 1);

    apr_brigade_printf(bb, NULL, NULL,
        "# HELP gmailsync_start_latency_seconds Handling time of POST /smart on this host.\n"
        "# TYPE gmailsync_start_latency_seconds histogram\n");
    for (b = 0; b < sizeof start_bounds / sizeof start_bounds[0]; b++) {
        apr_brigade_printf(bb, NULL, NULL,
                           "gmailsync_start_latency_seconds_bucket{le=\"%g\"} %" APR_UINT64_T_FMT
                           "\n", start_bounds[b], gs_httpd_counter(GS_CTR_START_BUCKET0 + b));
    }
    apr_brigade_printf(bb, NULL, NULL,
        "gmailsync_start_latency_seconds_bucket{le=\"+Inf\"} %" APR_UINT64_T_FMT "\n"
        "gmailsync_start_latency_seconds_sum %.6f\n"
        "gmailsync_start_latency_seconds_count %" APR_UINT64_T_FMT "\n",
        gs_httpd_counter(GS_CTR_START_COUNT),
        (double)gs_httpd_counter(GS_CTR_START_SECONDS_US) / APR_USEC_PER_SEC,
        gs_httpd_counter(GS_CTR_START_COUNT));

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (r->header_only) {
        return OK;
    }
    if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "event=metrics.client_gone");
    }
    return OK;
}
