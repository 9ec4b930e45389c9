/* mod_gmailsync_workers.c -- the daemon's workers: claim a queued task, spawn
 * gmailsync-worker for it with apr_proc_create (configuration through stdin), read its gs1
 * progress lines into the shared-memory board and its log lines into the error log, reap it and
 * fail its task if it ended without finalising it, and stop them all when httpd stops.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SO_PEERCRED, struct ucred, accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_portable.h>
#include <apr_signal.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_listen.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <unixd.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "gs_board.h"
#include "gs_db.h"
#include "gs_error.h"
#include "gs_log.h"
#include "gs_queue.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_daemon.h"

APLOG_USE_MODULE(gmailsync);

/* The live board: an entry appears when the task is claimed, follows the worker's progress
 * lines and goes when the task ends (or is cancelled: then a late line must not bring it back). */
static void board_put(worker_t *w, const gs_claim_t *claim, const gs_board_line_t *line,
                      const char *state)
{
    gs_registry_task_t t;

    memset(&t, 0, sizeof t);
    apr_cpystrn(t.user_id, w->user_id, sizeof t.user_id);
    apr_cpystrn(t.task_id, w->task_id, sizeof t.task_id);
    apr_cpystrn(t.state, state, sizeof t.state);
    apr_cpystrn(t.created_at, w->created_at, sizeof t.created_at);
    apr_cpystrn(t.started_at, w->started_at, sizeof t.started_at);
    t.total = -1;
    if (line) {
        apr_cpystrn(w->mode, line->mode, sizeof w->mode);
        apr_cpystrn(t.mode, line->mode, sizeof t.mode);
        t.processed = line->processed;
        t.total = line->total;
        t.progress_percentage = line->pct >= 0 ? line->pct / 100.0 : 0;
    }
    t.updated = apr_time_now();
    if (!strcmp(state, "RUNNING") && w->retry_reason[0]) {
        apr_cpystrn(t.retry_reason, w->retry_reason, sizeof t.retry_reason);
        t.retry_until = w->retry_until;
        t.retry_attempt = w->retry_attempt;
    }
    if (!strcmp(state, "SUCCEEDED")) {
        t.finished = t.updated;
    }
    if (claim) {
        gs_httpd_registry_task_put(&t);
    }
    else {
        gs_httpd_registry_task_update(&t);
    }
}

/* A SUCCEEDED task stays on the board for GS_BOARD_LINGER, so that its watchers see the end
 * without a query each; starts ignore such entries. */
static void board_finish(worker_t *w, const gs_board_line_t *line)
{
    gs_board_line_t done = *line;

    apr_cpystrn(done.mode, w->mode, sizeof done.mode);
    done.pct = 10000;
    board_put(w, NULL, &done, "SUCCEEDED");
    w->succeeded = 1;
}

static void handle_worker_line(daemon_t *d, worker_t *w, int is_err, char *line)
{
    gs_board_line_t parsed;

    if (is_err) {
        /* the worker logs "[gmailsync:<level>] [pid N] message": keep its level */
        static const char *const names[] = { "emerg", "alert", "crit", "error", "warn", "notice",
                                             "info", "debug" };
        int level = APLOG_NOTICE, i;
        char *msg = line;

        if (!strncmp(line, "[gmailsync:", 11)) {
            char *end = strchr(line, ']');
            for (i = 0; end && i < (int)(sizeof names / sizeof names[0]); i++) {
                if ((size_t)(end - line - 11) == strlen(names[i])
                    && !strncmp(line + 11, names[i], strlen(names[i]))) {
                    level = i;
                    break;
                }
            }
            msg = end ? end + 1 : line;
            while (*msg == ' ') {
                msg++;
            }
        }
        ap_log_error(APLOG_MARK, level, 0, d->ctx->s, "worker: %s", msg);
        return;
    }
    if (gs_board_parse(line, &parsed) != APR_SUCCESS || strcmp(parsed.task, w->task_id)) {
        return;
    }
    if (!strcmp(parsed.event, "calls")) {
        int c;
        for (c = 0; c < GS_BOARD_CALL_CLASSES; c++) {
            gs_httpd_count((gs_counter_t)(GS_CTR_GMAIL0 + c), (apr_uint64_t)parsed.calls[c]);
        }
    }
    else if (!strcmp(parsed.event, "progress")) {
        w->last = parsed;
        w->have_last = 1;
        board_put(w, NULL, &parsed, "RUNNING");
    }
    else if (!strcmp(parsed.event, "retrying")) {
        /* the worker waits on Gmail (or no longer does): the watchers see why nothing moves */
        if (!strcmp(parsed.reason, "none") || !parsed.reason[0]) {
            w->retry_reason[0] = '\0';
            w->retry_until = 0;
            w->retry_attempt = 0;
        }
        else {
            apr_cpystrn(w->retry_reason, parsed.reason, sizeof w->retry_reason);
            w->retry_until = apr_time_now() + apr_time_from_msec(parsed.wait_ms);
            w->retry_attempt = parsed.attempt;
        }
        board_put(w, NULL, w->have_last ? &w->last : NULL, "RUNNING");
    }
    else if (!strcmp(parsed.event, "state") && !strcmp(parsed.state, "SUCCEEDED")) {
        /* kept a little while, so that progress watchers see the end without a query each */
        board_finish(w, &parsed);
    }
    else if (!strcmp(parsed.event, "state") && strcmp(parsed.state, "RUNNING")) {
        /* FAILED, LOST (cancelled, rescued): the database has the details */
        gs_httpd_registry_task_remove(w->user_id, w->task_id);
    }
}

/* Reads what a worker wrote; returns 0 at EOF. */
int gs_workers_drain(daemon_t *d, worker_t *w, int is_err)
{
    int *fd = is_err ? &w->err_fd : &w->out_fd;
    line_buf_t *lb = is_err ? &w->err : &w->out;
    ssize_t n;

    while (*fd >= 0) {
        char *nl;

        n = read(*fd, lb->buf + lb->len, sizeof lb->buf - 1 - lb->len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            *fd = -1; /* the apr_file_t in w->proc closes it with w->pool */
            return 0;
        }
        if (n < 0) {
            return 1;
        }
        lb->len += (apr_size_t)n;
        lb->buf[lb->len] = '\0';
        while ((nl = strchr(lb->buf, '\n'))) {
            *nl = '\0';
            handle_worker_line(d, w, is_err, lb->buf);
            lb->len -= (apr_size_t)(nl + 1 - lb->buf);
            memmove(lb->buf, nl + 1, lb->len + 1);
        }
        if (lb->len == sizeof lb->buf - 1) {
            handle_worker_line(d, w, is_err, lb->buf); /* an overlong line: pass it on whole */
            lb->len = 0;
        }
    }
    return 0;
}

/* "token_key = <hex>" per key of GmailSyncTokenKeyFile, the current (sealing) key first. */
static const char *token_key_lines(const gs_srv_conf_t *c, apr_pool_t *p)
{
    const char *lines = "", *hex;
    int i;

    for (i = 0; c->token_keys && (hex = gs_keyring_hex(c->token_keys, p, i)); i++) {
        lines = apr_pstrcat(p, lines, "token_key = ", hex, "\n", NULL);
    }
    return lines;
}

static const char *worker_config(daemon_t *d, apr_pool_t *p)
{
    const gs_srv_conf_t *c = d->conf;

    return apr_pstrcat(p,
        "db = ", d->ctx->db_params, "\n",
        "api_base = ", c->api_base, "\n",
        "token_url = ", c->token_url, "\n",
        c->client_id ? "client_id = " : "", c->client_id ? c->client_id : "",
        c->client_id ? "\n" : "",
        d->ctx->client_secret ? "client_secret = " : "",
        d->ctx->client_secret ? d->ctx->client_secret : "", d->ctx->client_secret ? "\n" : "",
        token_key_lines(c, p),
        "mode = ", gs_sync_mode_name((gs_sync_mode_t)c->mode), "\n",
        "batch_size = ", apr_ltoa(p, c->batch_size), "\n",
        "quota_units = ", apr_ltoa(p, c->quota_units), "\n",
        "heartbeat = ", gs_format_duration(p, c->heartbeat), "\n",
        "progress_interval = ", gs_format_duration(p, c->progress_interval), "\n",
        /* a worker without a forward step for half the stuck threshold stops beating, so that
         * it is found STUCK and cleaned up */
        "stall_limit = ", gs_format_duration(p, c->stuck_after / 2), "\n",
        "retry_budget = ", gs_format_duration(p, c->retry_budget), "\n",
        "content = ", gs_content_mode_name((gs_content_mode_t)c->content), "\n",
        "attachments = ", gs_attach_mode_name((gs_attach_mode_t)c->attachments), "\n",
        "deletions = ", gs_deletions_name((gs_deletions_t)c->deletions), "\n",
        "attachment_max_size = ", apr_off_t_toa(p, (apr_off_t)c->attachment_max_size), "\n",
        "store_raw = ", c->store_raw ? "on" : "off", "\n",
        "search_config = ", c->search_config, "\n",
        "host = ", d->host, "\n", NULL);
}

/* Runs in the forked child when exec fails: its stderr is already the pipe the daemon reads, so
 * it writes one line of the worker's own log format ("[gmailsync:error] ..."), which the daemon
 * relays once, prefixed "worker:", at that level. ap_log_error here would write a whole error-log
 * line (date, module, pid) into the pipe, and the daemon would wrap it in another. */
static const char *spawning_task = ""; /* the task of the worker being spawned (for the child) */

static void worker_errfn(apr_pool_t *p, apr_status_t err, const char *description)
{
    char why[128], line[GS_LINE_MAX];
    int n;

    (void)p;
    apr_strerror(err, why, sizeof why);
    n = apr_snprintf(line, sizeof line, "[gmailsync:error] event=worker.exec_failed task=%s "
                     "reason=\"%s\" detail=\"%s\"\n", spawning_task, why,
                     description ? description : "");
    if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
        _exit(127); /* nowhere to say it: the exit status tells the daemon */
    }
}

/* Fails a task this daemon leased, if it is still RUNNING under that lease. Returns 1 when done
 * (written, or nothing left to write) and 0 when the database could not be reached: the caller
 * keeps the task and tries again, so that no task stays RUNNING because of an outage. */
static int fail_task(daemon_t *d, const char *task, const char *lease, const char *user,
                     const char *code, const char *message)
{
    apr_int64_t ms = 0;
    apr_status_t rv;

    if (!gs_daemon_ensure_db(d)) {
        return 0;
    }
    rv = gs_queue_fail(d->db, d->tick, task, lease, code, message, &ms);
    if (rv == APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->ctx->s,
                     "event=task.failed task=%s user=%s error=%s duration_ms=%" APR_INT64_T_FMT
                     " reason=\"%s\"", task, gs_log_value(d->tick, user), code, ms, message);
    }
    return rv == APR_SUCCESS || rv == APR_NOTFOUND;
}

static apr_status_t spawn_worker(daemon_t *d, worker_t *w)
{
    const char *argv[8], *config;
    static const char *const env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8",
                                       NULL };
    apr_procattr_t *attr;
    apr_size_t len;
    apr_os_file_t fd;
    apr_status_t rv;

    spawning_task = w->task_id;
    argv[0] = d->conf->worker_path;
    argv[1] = "--task";
    argv[2] = w->task_id;
    argv[3] = "--lease";
    argv[4] = w->lease;
    argv[5] = "--config";
    argv[6] = "-";
    argv[7] = NULL;
    if (APR_SUCCESS != (rv = apr_procattr_create(&attr, w->pool))
        || APR_SUCCESS != (rv = apr_procattr_io_set(attr, APR_CHILD_BLOCK, APR_CHILD_BLOCK,
                                                    APR_CHILD_BLOCK))
        || APR_SUCCESS != (rv = apr_procattr_cmdtype_set(attr, APR_PROGRAM))
        || APR_SUCCESS != (rv = apr_procattr_dir_set(attr, "/"))
        || APR_SUCCESS != (rv = apr_procattr_error_check_set(attr, 1))
        || APR_SUCCESS != (rv = apr_procattr_child_errfn_set(attr, worker_errfn))
        || APR_SUCCESS != (rv = apr_proc_create(&w->proc, argv[0], argv, env, attr, w->pool))) {
        return rv;
    }
    /* the configuration (with the OAuth secret and the token keys) goes through the pipe, never
     * argv or env */
    config = worker_config(d, d->tick);
    len = strlen(config);
    rv = apr_file_write_full(w->proc.in, config, len, NULL);
    apr_file_close(w->proc.in);
    memset((char *)config, 0, len);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->ctx->s, "event=worker.config_failed task=%s",
                     w->task_id);
    }
    apr_os_file_get(&fd, w->proc.out);
    w->out_fd = fd;
    apr_os_file_get(&fd, w->proc.err);
    w->err_fd = fd;
    w->out.len = w->err.len = 0;
    w->started = apr_time_now();
    return APR_SUCCESS;
}

static worker_t *free_slot(daemon_t *d)
{
    int i;

    for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
        if (!d->workers[i].used) {
            return &d->workers[i];
        }
    }
    return NULL;
}

void gs_workers_claim_and_spawn(daemon_t *d)
{
    /* `GmailSync Off` (the kill switch) and `GmailSyncMaxWorkers 0` (pause) start nothing: queued
     * tasks wait in CREATED; running ones finish. A round that claims nothing because there is
     * nothing to claim, or no room, did not fail (gs_daemon_claim_done). */
    while (d->conf->enabled && d->running + d->strays < d->conf->max_workers
           && !gs_daemon_should_exit) {
        gs_claim_t claim;
        worker_t *w = free_slot(d);
        apr_status_t rv;

        if (!w) {
            break;
        }
        if (!gs_daemon_ensure_db(d)) {
            gs_daemon_claim_done(d, 0);
            return;
        }
        rv = gs_queue_claim(d->db, d->tick, d->host, &claim);
        if (rv == APR_NOTFOUND) {
            break;
        }
        if (rv != APR_SUCCESS) {
            GS_LOG_REPEAT(&d->log_claim, GS_LOG_ERR, APR_SUCCESS, "event=daemon.claim_failed "
                          "reason=\"%s\"", d->db->last_error);
            gs_daemon_claim_done(d, 0);
            return;
        }
        memset(w, 0, sizeof *w);
        if (apr_pool_create(&w->pool, d->pool) != APR_SUCCESS) {
            return;
        }
        w->used = 1;
        apr_cpystrn(w->task_id, claim.task_id, sizeof w->task_id);
        apr_cpystrn(w->lease, claim.lease, sizeof w->lease);
        apr_cpystrn(w->user_id, claim.user_id, sizeof w->user_id);
        apr_cpystrn(w->created_at, claim.created_at ? claim.created_at : "", sizeof w->created_at);
        apr_cpystrn(w->started_at, claim.started_at ? claim.started_at : "", sizeof w->started_at);
        board_put(w, &claim, NULL, "RUNNING");
        if ((rv = spawn_worker(d, w)) != APR_SUCCESS) {
            char err[128];
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->ctx->s,
                         "event=worker.spawn_failed task=%s binary=%s", w->task_id,
                         d->conf->worker_path);
            gs_httpd_registry_task_remove(w->user_id, w->task_id);
            fail_task(d, w->task_id, w->lease, w->user_id, "worker_spawn_failed",
                      apr_strerror(rv, err, sizeof err));
            apr_pool_destroy(w->pool);
            w->used = 0;
            continue;
        }
        d->running++;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->ctx->s,
                     "event=worker.spawned task=%s user=%s pid=%d binary=%s queued_ms=%"
                     APR_INT64_T_FMT, w->task_id, gs_log_value(d->tick, w->user_id),
                     (int)w->proc.pid,
                     d->conf->worker_path, claim.queued_ms);
    }
    gs_daemon_claim_done(d, 1);
}

static void release_slot(daemon_t *d, worker_t *w)
{
    apr_pool_destroy(w->pool);
    w->used = 0;
    (void)d;
}

/* Runs the task of slot w again, under the same lease (the worker adopts it): its end was lost.
 * The new worker starts from what the database stores. Returns 1 when it runs. */
static int resume_in_slot(daemon_t *d, worker_t *w)
{
    apr_status_t rv;

    if (w->resumes >= GS_MAX_RESUMES) {
        return 0;
    }
    w->resumes++;
    w->exited = w->succeeded = w->lost = w->have_last = 0;
    w->out_fd = w->err_fd = -1;
    if ((rv = spawn_worker(d, w)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->ctx->s, "event=worker.spawn_failed task=%s "
                     "binary=%s", w->task_id, d->conf->worker_path);
        w->exited = 1;
        return 0;
    }
    d->running++;
    board_put(w, NULL, NULL, "RUNNING");
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->ctx->s, "event=worker.resumed task=%s user=%s "
                 "pid=%d resume=%d reason=\"its worker ended it, but the database does not have "
                 "that end (a failover to a standby that lagged): it runs again from what is "
                 "stored\"", w->task_id, gs_log_value(d->tick, w->user_id), (int)w->proc.pid,
                 w->resumes);
    return 1;
}

/* Is the task of w still RUNNING under its lease, though its worker ended it? Then it runs
 * again (1). 0: it is over, or the database cannot say now (ended_remember keeps asking). */
static int ended_check_one(daemon_t *d, worker_t *w)
{
    const char *ids[1] = { w->task_id }, *leases[1] = { w->lease };
    apr_hash_t *held;

    if (!gs_daemon_ensure_db(d)
        || gs_queue_leases_held(d->db, d->tick, ids, leases, 1, &held) != APR_SUCCESS
        || !apr_hash_get(held, w->task_id, APR_HASH_KEY_STRING)) {
        return 0;
    }
    return resume_in_slot(d, w);
}

/* Keeps the end of w for GS_ENDED_WATCH (checked again after a failover) and frees the slot.
 * Returns 1. */
static int ended_remember(daemon_t *d, worker_t *w)
{
    ended_t *e = &d->ended[d->ended_next];

    d->ended_next = (d->ended_next + 1) % GS_ENDED_MAX;
    apr_cpystrn(e->task_id, w->task_id, sizeof e->task_id);
    apr_cpystrn(e->lease, w->lease, sizeof e->lease);
    apr_cpystrn(e->user_id, w->user_id, sizeof e->user_id);
    e->resumes = w->resumes;
    e->at = apr_time_now();
    if (!d->ended_sessions && d->db) {
        d->ended_sessions = d->db->sessions;
    }
    release_slot(d, w);
    return 1;
}

/* After the daemon's connection got a new session (a restart or a failover of PostgreSQL): the
 * tasks whose workers ended them lately are asked for once more, in one query; one that is
 * RUNNING again under its lease (its end was lost with the old primary) runs again at once,
 * instead of waiting RUNNING for the stuck threshold with its user locked out. */
void gs_workers_check_ended(daemon_t *d)
{
    const char *ids[GS_ENDED_MAX], *leases[GS_ENDED_MAX];
    ended_t *who[GS_ENDED_MAX];
    apr_time_t now = apr_time_now();
    apr_hash_t *held;
    int i, n = 0;

    if (!d->db || d->db->sessions == d->ended_sessions) {
        return;
    }
    for (i = 0; i < GS_ENDED_MAX; i++) {
        ended_t *e = &d->ended[i];
        if (e->at && now - e->at < GS_ENDED_WATCH) {
            ids[n] = e->task_id;
            leases[n] = e->lease;
            who[n++] = e;
        }
    }
    if (n > 0 && gs_queue_leases_held(d->db, d->tick, ids, leases, n, &held) != APR_SUCCESS) {
        return; /* asked again next round */
    }
    d->ended_sessions = d->db->sessions;
    for (i = 0; i < n; i++) {
        ended_t *e = who[i];
        worker_t *w;

        if (!apr_hash_get(held, e->task_id, APR_HASH_KEY_STRING)) {
            continue;
        }
        e->at = 0;
        if (!(w = free_slot(d))) {
            fail_task(d, e->task_id, e->lease, e->user_id, GS_ERR_WORKER_CRASHED,
                      "its end was lost in a failover and no worker slot is free");
            continue;
        }
        memset(w, 0, sizeof *w);
        if (apr_pool_create(&w->pool, d->pool) != APR_SUCCESS) {
            continue;
        }
        w->used = 1;
        apr_cpystrn(w->task_id, e->task_id, sizeof w->task_id);
        apr_cpystrn(w->lease, e->lease, sizeof w->lease);
        apr_cpystrn(w->user_id, e->user_id, sizeof w->user_id);
        w->resumes = e->resumes;
        if (!resume_in_slot(d, w)) {
            fail_task(d, e->task_id, e->lease, e->user_id, GS_ERR_WORKER_CRASHED,
                      "its end was lost in a failover and it could not run again");
            release_slot(d, w);
        }
    }
}

/* Collects exited workers; a task its worker left RUNNING is failed as worker_crashed. A slot
 * whose FAILED could not be written (the database was away) stays taken, and the write is tried
 * again on every round until it lands. */
void gs_workers_reap(daemon_t *d, const char *code_if_running)
{
    int i;

    for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
        worker_t *w = &d->workers[i];
        apr_exit_why_e why;
        int code;

        if (!w->used) {
            continue;
        }
        if (w->exited) {
            if (fail_task(d, w->task_id, w->lease, w->user_id, w->fail_code, w->fail_message)) {
                release_slot(d, w);
            }
            continue;
        }
        if (apr_proc_wait(&w->proc, &code, &why, APR_NOWAIT) != APR_CHILD_DONE) {
            continue;
        }
        gs_workers_drain(d, w, 0);
        gs_workers_drain(d, w, 1);
        if (!w->succeeded) {
            gs_httpd_registry_task_remove(w->user_id, w->task_id);
        }
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->ctx->s, "event=worker.exited task=%s pid=%d "
                     "%s=%d", w->task_id, (int)w->proc.pid,
                     APR_PROC_CHECK_SIGNALED(why) ? "signal" : "exit_code", code);
        w->exited = 1;
        d->running--;
        if (!code_if_running && !APR_PROC_CHECK_SIGNALED(why) && (code == 0 || code == 1)) {
            /* it wrote its task's end (SUCCEEDED or FAILED): unless a failover lost that write
             * already, the task is over. Checked now, and again after a failover */
            if (ended_check_one(d, w) || ended_remember(d, w)) {
                continue;
            }
        }
        /* a worker that ended without finalising its task (crash, signal, lost database): the
         * lease-guarded update changes nothing if the worker did finish it */
        w->fail_code = apr_pstrdup(w->pool, code_if_running ? code_if_running : "worker_crashed");
        w->fail_message = apr_psprintf(w->pool, "worker pid %d %s %d", (int)w->proc.pid,
                                       APR_PROC_CHECK_SIGNALED(why) ? "killed by signal"
                                                                    : "exited with code", code);
        if (fail_task(d, w->task_id, w->lease, w->user_id, w->fail_code, w->fail_message)) {
            release_slot(d, w);
        }
        else {
            /* a notice, not a warning: right after a database restart the daemon waits a second
             * before it reconnects, and the write lands on the next round (event=task.failed);
             * a database that stays away is reported as event=daemon.db_unavailable */
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->ctx->s, "event=task.fail_deferred "
                         "task=%s user=%s reason=\"the database is unavailable; retrying\"",
                         w->task_id, gs_log_value(d->tick, w->user_id));
        }
    }
}

/* Holds the board to the database: a task this daemon runs that was cancelled, rescued or
 * cleaned up elsewhere (another host, the /health rescue, gmailsync-cleanup) leaves the board
 * now, and its worker, whose writes would change nothing any more, is told to stop. One query
 * per round for all workers. */
void gs_workers_reconcile(daemon_t *d)
{
    const char *ids[GS_MAX_WORKER_SLOTS], *leases[GS_MAX_WORKER_SLOTS];
    worker_t *who[GS_MAX_WORKER_SLOTS];
    apr_hash_t *held;
    int i, n = 0;

    for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
        worker_t *w = &d->workers[i];
        if (w->used && !w->exited && !w->succeeded && !w->lost) {
            ids[n] = w->task_id;
            leases[n] = w->lease;
            who[n++] = w;
        }
    }
    if (n == 0 || !gs_daemon_ensure_db(d)) {
        return;
    }
    if (gs_queue_leases_held(d->db, d->tick, ids, leases, n, &held) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_reconcile, GS_LOG_ERR, APR_SUCCESS, "event=daemon.reconcile_failed "
                      "reason=\"%s\"", d->db->last_error);
        return;
    }
    GS_LOG_REPEAT_END(&d->log_reconcile);
    for (i = 0; i < n; i++) {
        worker_t *w = who[i];
        if (apr_hash_get(held, w->task_id, APR_HASH_KEY_STRING) || w->succeeded) {
            continue; /* still ours, or it just ended well (its line arrived meanwhile) */
        }
        gs_httpd_registry_task_remove(w->user_id, w->task_id);
        w->lost = 1;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->ctx->s, "event=worker.lease_lost task=%s "
                     "user=%s pid=%d reason=\"the task left RUNNING elsewhere\"", w->task_id,
                     gs_log_value(d->tick, w->user_id), (int)w->proc.pid);
        kill(w->proc.pid, SIGTERM);
    }
}

void gs_workers_kill_frozen(void *baton, const char *task_id, const char *user_id, long pid,
                            const char *lease, apr_int64_t age)
{
    daemon_t *d = baton;
    int i;

    for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
        worker_t *w = &d->workers[i];

        /* only a process this daemon started: a recorded pid alone could have been reused */
        if (w->used && !w->exited && !strcmp(w->task_id, task_id)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->ctx->s,
                         "event=worker.killed task=%s user=%s pid=%d reason=stuck "
                         "heartbeat_age_s=%" APR_INT64_T_FMT, task_id,
                         gs_log_value(d->tick, user_id),
                         (int)w->proc.pid, age);
            kill(w->proc.pid, SIGKILL);
            gs_httpd_registry_task_remove(w->user_id, w->task_id);
            return;
        }
    }
    (void)pid;
    gs_strays_kill_frozen(d, task_id, user_id, lease, age);
}

/* Counts the workers an earlier daemon of this httpd left running: a rollback or graceful
 * restart must not let the new daemon start GmailSyncMaxWorkers more beside them. */
void gs_workers_count_strays(daemon_t *d)
{
    gs_stray_t strays[GS_MAX_WORKER_SLOTS];

    d->strays = gs_strays_find(d->ctx->parent, strays, GS_MAX_WORKER_SLOTS);
}

/* Fails the tasks of the strays that are gone (they are not our children: the pid is checked
 * again, not waited for); returns how many are left. */
static int strays_reap(daemon_t *d, gs_stray_t *strays, int n)
{
    int i, left = 0;

    for (i = 0; i < n; i++) {
        gs_stray_t *st = &strays[i];

        if (st->done) {
            continue;
        }
        if (gs_stray_alive(st)) {
            left++;
            continue;
        }
        st->done = 1;
        fail_task(d, st->task_id, st->lease, "-", "shutdown",
                  apr_psprintf(d->tick, "httpd stopped (worker pid %d of an earlier daemon)",
                               (int)st->pid));
    }
    return left;
}

/* httpd stops: every worker (this daemon's and the strays) gets SIGTERM, then SIGKILL after the
 * grace period; every task they held that is still RUNNING ends FAILED (shutdown). The parent
 * waits GS_STOP_GRACE + GS_STOP_FINISH for this, then kills this daemon's process group. */
void gs_workers_stop(daemon_t *d)
{
    gs_stray_t strays[GS_MAX_WORKER_SLOTS];
    int nstrays = gs_strays_find(d->ctx->parent, strays, GS_MAX_WORKER_SLOTS), left, i;
    apr_time_t deadline = apr_time_now() + GS_STOP_GRACE;

    /* the writes below are the last chance: not skipped for a reconnection back-off */
    d->db_retry_at = 0;
    for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
        if (d->workers[i].used && !d->workers[i].exited) {
            kill(d->workers[i].proc.pid, SIGTERM);
        }
    }
    for (i = 0; i < nstrays; i++) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->ctx->s, "event=worker.stopping task=%s pid=%d "
                     "reason=\"left by an earlier daemon\"", strays[i].task_id,
                     (int)strays[i].pid);
        kill(strays[i].pid, SIGTERM);
    }
    for (;;) {
        apr_pool_clear(d->tick);
        gs_workers_reap(d, "shutdown");
        left = strays_reap(d, strays, nstrays);
        if ((d->running == 0 && left == 0) || apr_time_now() >= deadline) {
            break;
        }
        apr_sleep(apr_time_from_msec(20));
    }
    for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
        worker_t *w = &d->workers[i];
        if (w->used) {
            if (!w->exited) {
                kill(w->proc.pid, SIGKILL);
                apr_proc_wait(&w->proc, NULL, NULL, APR_WAIT);
                d->running--;
            }
            /* last chance: a task left RUNNING now is finished by the stuck rescue */
            fail_task(d, w->task_id, w->lease, w->user_id, "shutdown", "httpd stopped");
            release_slot(d, w);
        }
    }
    if (left > 0) {
        for (i = 0; i < nstrays; i++) {
            /* checked again right before the kill: a pid reused meanwhile is left alone */
            if (!strays[i].done && gs_stray_alive(&strays[i])) {
                kill(strays[i].pid, SIGKILL);
            }
        }
        deadline = apr_time_now() + apr_time_from_msec(500);
        while (strays_reap(d, strays, nstrays) > 0 && apr_time_now() < deadline) {
            apr_sleep(apr_time_from_msec(10));
        }
    }
}
