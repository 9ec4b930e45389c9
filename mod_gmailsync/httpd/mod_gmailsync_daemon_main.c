/* mod_gmailsync_daemon_main.c -- the daemon process: its signals, its hand-off socket, its
 * database connection, the main loop (poll the socket and the workers' pipes; claim, reap and
 * rescue on timers) and the rescue of stale tasks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SO_PEERCRED, struct ucred, accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
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
#include "gs_log.h"
#include "gs_queue.h"
#include "gs_sql.h"
#include "gs_push_start.h"
#include "gs_start.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_daemon.h"

APLOG_USE_MODULE(gmailsync);

volatile sig_atomic_t gs_daemon_should_exit;
volatile sig_atomic_t gs_daemon_should_stop;

static void daemon_signal(int sig)
{
    if (sig == SIGINT) {
        gs_daemon_should_stop = 1;
    }
    gs_daemon_should_exit = 1;
}

static void daemon_log(void *baton, const char *file, int line, gs_log_level_t level,
                       apr_status_t rv, const char *msg)
{
    ap_log_error(file, line, APLOG_MODULE_INDEX, (int)level, rv, (server_rec *)baton, "%s", msg);
}

static int daemon_log_level(void *baton, gs_log_level_t level)
{
    return APLOG_IS_LEVEL((server_rec *)baton, (int)level);
}

static int open_socket(daemon_t *d)
{
    struct sockaddr_un sa;
    mode_t omask;
    int fd, rc;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, d->ctx->sockname, sizeof sa.sun_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        return -1;
    }
    unlink(sa.sun_path);
    omask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(omask);
    if (rc < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, 128) < 0
        || (!geteuid() && chown(sa.sun_path, ap_unixd_config.user_id, -1) < 0)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, d->ctx->s, "cannot listen on %s",
                     sa.sun_path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Accepts one hand-off. Only httpd's User (or root) may talk to the daemon. */
static void accept_handoff(daemon_t *d)
{
    struct ucred cred;
    socklen_t clen = sizeof cred;
    char buf[GS_HANDOFF_MAX];
    struct pollfd pfd;
    ssize_t n;
    int fd;

    while ((fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0
            || (cred.uid != 0 && cred.uid != geteuid() && cred.uid != ap_unixd_config.user_id)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->ctx->s,
                         "event=daemon.handoff_refused uid=%ld", (long)cred.uid);
            close(fd);
            continue;
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        n = poll(&pfd, 1, 100) == 1 ? read(fd, buf, sizeof buf - 1) : -1;
        close(fd);
        if (n > 0) {
            gs_handoff_t msg;
            if (gs_handoff_parse(buf, (apr_size_t)n, &msg) != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->ctx->s,
                             "event=daemon.handoff_malformed bytes=%ld", (long)n);
            }
        }
    }
}

/* The daemon's session: no statement of its loop may wait long on a lock a worker holds (a
 * worker frozen inside its transaction) or run away, since every other task of this host waits
 * behind it. A statement that times out fails its round, which the next round repeats. */
static void daemon_session(daemon_t *d)
{
    gs_db_session_t session = { "gmailsync-daemon", 0, 0, 0 };

    session.lock_timeout = GS_DAEMON_LOCK_TIMEOUT;
    session.statement_timeout = GS_DAEMON_STATEMENT_TIMEOUT;
    gs_db_set_session(d->db, &session);
}

int gs_daemon_ensure_db(daemon_t *d)
{
    const char *err = NULL;

    if (d->db && gs_db_ping(d->db, d->tick)) {
        GS_LOG_REPEAT_END(&d->log_db);
        return 1;
    }
    if (apr_time_now() < d->db_retry_at) {
        return 0;
    }
    if (d->db) {
        if (gs_db_reconnect(d->db, &err) == APR_SUCCESS) {
            GS_LOG_REPEAT_END(&d->log_db);
            return 1;
        }
    }
    else if (gs_db_open(&d->db, d->pool, d->ctx->db_params, &err) == APR_SUCCESS) {
        daemon_session(d);
        GS_LOG_REPEAT_END(&d->log_db);
        return 1;
    }
    d->db_retry_at = apr_time_now() + apr_time_from_sec(1);
    GS_LOG_REPEAT(&d->log_db, GS_LOG_ERR, APR_SUCCESS, "event=daemon.db_unavailable reason=\"%s\"",
                  err ? err : "unknown");
    return 0;
}

static void publish_round(gs_gauge_t at, gs_gauge_t failures, apr_uint64_t *count, int ok)
{
    if (ok) {
        *count = 0;
        gs_httpd_gauge_set(at, (apr_uint64_t)apr_time_now());
    }
    else {
        (*count)++;
    }
    gs_httpd_gauge_set(failures, *count);
}

void gs_daemon_claim_done(daemon_t *d, int ok)
{
    publish_round(GS_GAUGE_CLAIM_OK_AT, GS_GAUGE_CLAIM_FAILURES, &d->claim_failures, ok);
    if (ok) {
        GS_LOG_REPEAT_END(&d->log_claim);
    }
}

void gs_daemon_rescue_done(daemon_t *d, int ok)
{
    publish_round(GS_GAUGE_RESCUE_OK_AT, GS_GAUGE_RESCUE_FAILURES, &d->rescue_failures, ok);
    if (ok) {
        GS_LOG_REPEAT_END(&d->log_rescue);
    }
}

static void rescue(daemon_t *d)
{
    gs_rescue_counts_t counts;

    if (!gs_daemon_ensure_db(d)) {
        gs_daemon_rescue_done(d, 0);
        return;
    }
    if (gs_queue_rescue(d->db, d->tick, d->host, d->conf->stuck_after, GS_CLAIM_TIMEOUT,
                        gs_workers_kill_frozen, d, &counts) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_rescue, GS_LOG_ERR, APR_SUCCESS, "event=daemon.rescue_failed "
                      "reason=\"%s\"", d->db->last_error);
        gs_daemon_rescue_done(d, 0);
        return;
    }
    gs_daemon_rescue_done(d, 1);
}

/* The change feed's retention (GmailSyncChangeRetention): a bounded batch per round, every
 * 10 s (an index scan that finds nothing most times); more right away while a round finds a
 * full batch. */
static int purge_changes(daemon_t *d)
{
    const char *args[2];
    gs_db_rows_t *rows;
    apr_int64_t removed;

    if (!gs_daemon_ensure_db(d)) {
        return 0;
    }
    args[0] = apr_psprintf(d->tick, "%.3f", (double)d->conf->change_retention / APR_USEC_PER_SEC);
    args[1] = apr_itoa(d->tick, GS_PURGE_BATCH);
    if (gs_db_select(d->db, d->tick, GS_SQL_CHANGES_PURGE, &rows, 2, args) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_purge, GS_LOG_WARNING, APR_SUCCESS, "event=daemon.purge_failed "
                      "reason=\"%s\"", d->db->last_error);
        return 0;
    }
    GS_LOG_REPEAT_END(&d->log_purge);
    removed = rows->nrows ? apr_atoi64(gs_db_cell(rows, 0, 0)) : 0;
    if (removed > 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->ctx->s, "event=changes.purged changes=%"
                     APR_INT64_T_FMT " users=%s", removed, gs_db_cell(rows, 0, 1));
    }
    return removed >= GS_PURGE_BATCH;
}

/* The daemons LISTEN on gmailsync_queue (sql/007 notifies it for every new task), so that a
 * task created on any host is claimed by an idle daemon at once; the poll every
 * GS_POLL_INTERVAL stays as the fallback for lost notifications. A new or reset connection has
 * no LISTEN: it is sent again, and one poll follows (what was notified meanwhile is lost).
 * Returns 1 when the queue should be polled now. */
static int ensure_listen(daemon_t *d)
{
    if (d->listening && d->db && d->db->resets == d->listen_resets) {
        return 0;
    }
    d->listening = 0;
    if (!gs_daemon_ensure_db(d)) {
        return 0;
    }
    if (gs_db_listen(d->db, d->tick) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_listen, GS_LOG_ERR, APR_SUCCESS, "event=daemon.listen_failed "
                      "reason=\"%s\"", d->db->last_error ? d->db->last_error : "unknown");
        return 0;
    }
    GS_LOG_REPEAT_END(&d->log_listen);
    d->listening = 1;
    d->listen_resets = d->db->resets;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->ctx->s, "event=daemon.listening channel="
                 GS_SQL_QUEUE_CHANNEL " resets=%lu", d->listen_resets);
    return 1;
}

/* Notifications that arrived (read now, or queued by libpq during other statements): 1 when a
 * task was created somewhere. A lost connection ends the LISTEN (ensure_listen redoes it). */
static int take_notifications(daemon_t *d)
{
    int n;

    if (!d->listening || !d->db) {
        return 0;
    }
    if ((n = gs_db_notifications(d->db)) < 0) {
        d->listening = 0;
        return 1;
    }
    return n > 0;
}

/* The scheduled starts this host may make now: GmailSyncAutoSyncMaxStarts a second, as a
 * token bucket that holds one second's worth. */
static double schedule_tokens(daemon_t *d, apr_time_t now)
{
    double cap = (double)d->conf->autosync_max_starts;

    if (d->sched_tokens_at == 0 || now < d->sched_tokens_at) {
        d->sched_tokens = cap;
    }
    else {
        d->sched_tokens += cap * (double)(now - d->sched_tokens_at) / APR_USEC_PER_SEC;
        if (d->sched_tokens > cap) {
            d->sched_tokens = cap;
        }
    }
    d->sched_tokens_at = now;
    return d->sched_tokens;
}

/* Is a round due before the next second's: the last one left accounts due that it had no room
 * for, a worker's slot has freed since, and a start is allowed. Rounds are then bounded by the
 * workers' exits (no busy loop while accounts are due but nothing frees). */
static int schedule_early(daemon_t *d, apr_time_t now)
{
    if (d->running > d->sched_running) {
        d->sched_running = d->running; /* started by a claim since the round */
    }
    return d->sched_more && d->running < d->sched_running
           && d->running + d->strays < d->conf->max_workers && schedule_tokens(d, now) >= 1;
}

/* One auto sync round (GmailSyncAutoSync, main server): starts the linked accounts that are
 * due, at most the room this host's GmailSyncMaxWorkers leaves (less the tasks queued on every
 * host) and GmailSyncAutoSyncMaxStarts a second, through the start's lock and insert
 * (gs_start.h), so that a click, this host and the others never create two tasks. Notes in
 * d->sched_more whether it left due accounts for lack of room. Returns how many it started. */
static int schedule_round(daemon_t *d, apr_time_t now)
{
    const gs_srv_conf_t *c = d->conf;
    gs_schedule_opts_t o;
    gs_schedule_result_t res;
    double tokens;
    long room;
    apr_status_t rv;

    d->sched_running = d->running;
    if (!c->autosync || !c->enabled || gs_daemon_should_exit) {
        d->sched_more = 0;
        return 0;
    }
    tokens = schedule_tokens(d, now);
    room = c->max_workers - d->running - d->strays;
    if (room > (long)tokens) {
        room = (long)tokens;
    }
    if (room <= 0) {
        /* every worker busy (or no start allowed this second): whether accounts are due is
         * asked when a slot frees */
        d->sched_more = c->max_workers > 0;
        return 0;
    }
    if (!gs_daemon_ensure_db(d)) {
        return 0;
    }
    o.start.lock_timeout = apr_time_from_sec(1);
    o.start.statement_timeout = apr_time_from_sec(10);
    o.interval_s = apr_psprintf(d->tick, "%.3f", (double)c->autosync / APR_USEC_PER_SEC);
    o.backoff_max_s = apr_psprintf(d->tick, "%.3f",
                                   (double)c->autosync_backoff_max / APR_USEC_PER_SEC);
    gs_httpd_count(GS_CTR_AUTOSYNC_ROUNDS, 1);
    if ((rv = gs_start_scheduled(d->db, d->tick, &o, room, &res)) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_schedule, GS_LOG_ERR, APR_SUCCESS, "event=autosync.round_failed "
                      "reason=\"%s\"", d->db->last_error ? d->db->last_error : "unknown");
        return 0;
    }
    GS_LOG_REPEAT_END(&d->log_schedule);
    d->sched_more = res.more;
    if (res.started) {
        d->sched_tokens -= res.started->nelts;
    }
    if (res.started && res.started->nelts) {
        gs_httpd_count(GS_CTR_AUTOSYNC_STARTED, (apr_uint64_t)res.started->nelts);
    }
    if (res.skipped_active) {
        gs_httpd_count(GS_CTR_AUTOSYNC_SKIPPED, (apr_uint64_t)res.skipped_active);
    }
    return res.started ? res.started->nelts : 0;
}

/* The push follow-ups (issue 26): accounts whose sync was RUNNING when a push came get one
 * more sync once none is active, within this host's free workers. */
static int push_round(daemon_t *d)
{
    const gs_srv_conf_t *c = d->conf;
    gs_start_opts_t o = { apr_time_from_sec(1), apr_time_from_sec(10) };
    apr_array_header_t *started;
    long room = c->max_workers - d->running - d->strays;

    if (!c->push_topic || !c->enabled || gs_daemon_should_exit || room <= 0
        || !gs_daemon_ensure_db(d)) {
        return 0;
    }
    if (gs_push_followups(d->db, d->tick, &o, room, &started) != APR_SUCCESS) {
        GS_LOG_REPEAT(&d->log_schedule, GS_LOG_ERR, APR_SUCCESS, "event=push.follow_up_failed "
                      "reason=\"%s\"", d->db->last_error ? d->db->last_error : "unknown");
        return 0;
    }
    if (started->nelts) {
        gs_httpd_count(GS_CTR_PUSH_FOLLOW_UPS, (apr_uint64_t)started->nelts);
    }
    return started->nelts;
}

/* httpd's parent is gone (kill -9, a crash): nobody will tell this daemon to stop, and a new
 * httpd must find neither it nor its workers. PR_SET_PDEATHSIG sends SIGINT (the stop) when the
 * parent dies; the kernel clears it when the credentials change (ap_run_drop_privileges), so it
 * is set again after that, and getppid() closes the window before each prctl and covers the
 * rest (a parent that died before the call; a subreaper). */
static int parent_gone(const gs_daemon_ctx_t *ctx)
{
    return ctx->parent > 0 && getppid() != ctx->parent;
}

static void watch_parent(gs_daemon_ctx_t *ctx)
{
    if (prctl(PR_SET_PDEATHSIG, SIGINT) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ctx->s, "event=daemon.pdeathsig_failed");
    }
    if (parent_gone(ctx)) {
        gs_daemon_should_stop = gs_daemon_should_exit = 1;
    }
}

int gs_daemon_main(gs_daemon_ctx_t *ctx)
{
    struct pollfd pfds[2 + 2 * GS_MAX_WORKER_SLOTS];
    worker_t *owner[2 + 2 * GS_MAX_WORKER_SLOTS];
    apr_time_t next_poll = 0, next_rescue = 0, next_schedule = 0, next_purge = 0;
    char hostname[256];
    daemon_t *d;
    int rc;

    apr_signal(SIGTERM, daemon_signal);
    apr_signal(SIGHUP, daemon_signal);
    apr_signal(SIGINT, daemon_signal);
    apr_signal(SIGUSR1, SIG_IGN);   /* AP_SIG_GRACEFUL sent to the process group */
    apr_signal(SIGWINCH, SIG_IGN);  /* AP_SIG_GRACEFUL_STOP */
    apr_signal(SIGPIPE, SIG_IGN);
    apr_signal(SIGCHLD, SIG_DFL);   /* we need our workers' exit statuses */
    watch_parent(ctx);
    /* a process group of our own, inherited by the workers: httpd signals its group on restarts
     * (SIGUSR1, SIGHUP), and those must not kill running syncs. The parent tells this daemon
     * explicitly what to do (daemon_notify_end) */
    if (setpgid(0, 0) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ctx->s, "event=daemon.setpgid_failed");
    }
    ap_close_listeners();

    d = calloc(1, sizeof *d);
    if (!d || apr_pool_create(&d->pool, ctx->pconf) != APR_SUCCESS
        || apr_pool_create(&d->tick, d->pool) != APR_SUCCESS) {
        return GS_DAEMON_STARTUP_ERROR;
    }
    d->ctx = ctx;
    d->conf = gs_httpd_srv_conf(ctx->s);
    gs_log_set(daemon_log, daemon_log_level, ctx->s);
    gs_httpd_shm_child_init(d->pool, ctx->s);
    /* entries of a previous daemon of this generation (it died) describe workers this one does
     * not watch: drop them, so that starts consult PostgreSQL */
    gs_httpd_registry_tasks_clear();
    if (gethostname(hostname, sizeof hostname) != 0) {
        apr_cpystrn(hostname, "localhost", sizeof hostname);
    }
    hostname[sizeof hostname - 1] = '\0';
    d->host = apr_pstrdup(d->pool, hostname);
    if ((d->listen_fd = open_socket(d)) < 0) {
        return GS_DAEMON_STARTUP_ERROR;
    }
    if ((rc = ap_run_drop_privileges(d->pool, ctx->s)) != 0) {
        return GS_DAEMON_STARTUP_ERROR;
    }
    watch_parent(ctx); /* the credentials changed: the kernel forgot the death signal */
    gs_httpd_gauge_set(GS_GAUGE_DAEMON_PID, (apr_uint64_t)getpid());
    gs_httpd_gauge_set(GS_GAUGE_DAEMON_READY_AT, (apr_uint64_t)apr_time_now());
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ctx->s, "event=daemon.ready pid=%d host=%s "
                 "max_workers=%ld socket=%s autosync=%s", (int)getpid(), d->host,
                 d->conf->max_workers, ctx->sockname,
                 d->conf->autosync ? gs_format_duration(d->pool, d->conf->autosync) : "off");

    while (!gs_daemon_should_exit) {
        int n = 2, i, ready;
        apr_time_t now;

        apr_pool_clear(d->tick);
        if (parent_gone(ctx)) {
            gs_daemon_should_stop = 1;
            break;
        }
        if (ensure_listen(d) || take_notifications(d)) {
            next_poll = 0; /* (re)connected, or a task was created on some host */
        }
        pfds[0].fd = d->listen_fd;
        pfds[0].events = POLLIN;
        owner[0] = NULL;
        pfds[1].fd = d->listening ? gs_db_socket(d->db) : -1; /* poll skips a negative fd */
        pfds[1].events = POLLIN;
        pfds[1].revents = 0;
        owner[1] = NULL;
        for (i = 0; i < GS_MAX_WORKER_SLOTS; i++) {
            worker_t *w = &d->workers[i];
            if (w->used && w->out_fd >= 0) {
                pfds[n].fd = w->out_fd;
                pfds[n].events = POLLIN;
                owner[n++] = w;
            }
            if (w->used && w->err_fd >= 0) {
                pfds[n].fd = w->err_fd;
                pfds[n].events = POLLIN;
                owner[n++] = w;
            }
        }
        ready = poll(pfds, (nfds_t)n, next_poll == 0 ? 0 : 100);
        if (ready > 0) {
            if (pfds[0].revents) {
                accept_handoff(d);
                next_poll = 0; /* a new task: claim now */
            }
            if (pfds[1].revents && take_notifications(d)) {
                next_poll = 0;
            }
            for (i = 2; i < n; i++) {
                if (pfds[i].revents) {
                    gs_workers_drain(d, owner[i], pfds[i].fd == owner[i]->err_fd);
                }
            }
        }
        gs_workers_reap(d, NULL);
        now = apr_time_now();
        if (now >= next_poll) {
            gs_workers_claim_and_spawn(d);
            next_poll = now + GS_POLL_INTERVAL;
        }
        if (now >= next_schedule || schedule_early(d, now)) {
            next_schedule = now + GS_SCHEDULE_INTERVAL;
            if (schedule_round(d, now) + push_round(d) > 0) {
                gs_workers_claim_and_spawn(d); /* its own tasks: no need to wait for the echo */
                next_poll = now + GS_POLL_INTERVAL;
            }
            d->sched_running = d->running;
        }
        if (now >= next_rescue) {
            rescue(d);
            gs_workers_reconcile(d);
            gs_workers_check_ended(d);
            gs_workers_count_strays(d);
            gs_httpd_registry_tasks_sweep(now - GS_BOARD_LINGER);
            next_rescue = now + GS_RESCUE_INTERVAL;
        }
        gs_daemon_watch_round(d, now);
        if (now >= next_purge) {
            next_purge = now + (purge_changes(d) ? GS_RESCUE_INTERVAL : GS_PURGE_INTERVAL);
        }
    }
    close(d->listen_fd);
    if (parent_gone(ctx)) {
        gs_daemon_should_stop = 1;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ctx->s, "event=daemon.parent_gone "
                     "parent=%d: stopping the workers and the daemon, as httpd's stop would",
                     (int)ctx->parent);
    }
    /* on a restart the next generation's daemon binds the same name (the parent's pid) and
     * may already have: only a stop removes it. Without privileges (DefaultRuntimeDir owned by
     * root) this fails; httpd's parent removes it then (daemon_notify_end) */
    if (gs_daemon_should_stop && unlink(ctx->sockname) != 0 && errno != ENOENT
        && errno != EACCES && errno != EPERM) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ctx->s,
                     "event=daemon.socket_unlink_failed path=%s", ctx->sockname);
    }
    if (gs_daemon_should_stop) {
        gs_workers_stop(d);
    }
    GS_LOG_REPEAT_END(&d->log_db);
    GS_LOG_REPEAT_END(&d->log_claim);
    GS_LOG_REPEAT_END(&d->log_rescue);
    GS_LOG_REPEAT_END(&d->log_reconcile);
    GS_LOG_REPEAT_END(&d->log_schedule);
    GS_LOG_REPEAT_END(&d->log_listen);
    GS_LOG_REPEAT_END(&d->log_watch);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ctx->s, "event=daemon.exit reason=%s workers=%d",
                 gs_daemon_should_stop ? "stop" : "restart", d->running);
    if (d->db) {
        gs_db_close(d->db);
    }
    return 0;
}
