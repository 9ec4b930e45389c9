/* mod_gmailsync_daemon.c -- the sync daemon: a process httpd forks at post_config (after
 * mod_cgid's model) that claims queued tasks, runs one gmailsync-worker per task with
 * apr_proc_create, reads their live progress into the shared registry, reaps them, and rescues
 * tasks whose worker stopped beating.
 *
 * Lifecycle
 *  - The parent forks the daemon in post_config (never in the configuration dry run) and watches
 *    it with apr_proc_other_child_register: if it dies while httpd runs, it is started again,
 *    unless it exited with GS_DAEMON_STARTUP_ERROR (no restart loops).
 *  - Graceful or plain restart: the parent sends SIGHUP; the daemon exits and leaves its workers
 *    running. They hold their leases and write to PostgreSQL directly, so the syncs complete; the
 *    next generation's daemon does not adopt their pipes (no live board for them, progress is
 *    read from the database) and its rescuer fails them if they stop beating.
 *  - Stop: the parent sends SIGINT and waits for the daemon; the daemon sends SIGTERM to its
 *    workers and to those an earlier daemon of this httpd left running (graceful restart), gives
 *    them GS_STOP_GRACE to exit, kills the rest, and moves every task they held that is still
 *    RUNNING to FAILED (error_code shutdown). The parent waits GS_STOP_GRACE + GS_STOP_FINISH at
 *    most, then kills the daemon's process group. No task is left RUNNING (unless the database
 *    cannot take the writes in time) and no worker outlives httpd.
 *
 * Hand-off: request handlers write "gs1 start task=<uuid> user=<id>\n" to a Unix socket in
 * DefaultRuntimeDir (mode 0600, owned by httpd's User; the daemon checks SO_PEERCRED). The
 * message only wakes the daemon: PostgreSQL is the queue, so a lost message delays a task by
 * at most GS_POLL_INTERVAL, and a task created on a host whose daemon is gone is claimed by any
 * other host's daemon.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SO_PEERCRED, struct ucred, accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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
#include "gs_log.h"
#include "gs_queue.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_daemon.h"

APLOG_USE_MODULE(gmailsync);

/* ------------------------------------------------------------------ parent side */

/* mod_dbd's per-server record starts with its dbd_cfg_t (mod_dbd.c, svr_cfg), unchanged since
 * 2.2: how the daemon and workers get "the same parameters" as mod_dbd's pool. */
typedef struct {
    dbd_cfg_t *cfg;
} mod_dbd_svr_prefix_t;

/* One per httpd generation, set in post_config; read by request handlers (the socket name) and
 * by the forked daemon. */
static gs_daemon_ctx_t *daemon_ctx;

static void daemon_maint(int reason, void *data, apr_wait_t status);

static int daemon_fork(gs_daemon_ctx_t *ctx)
{
    pid_t pid;

    ctx->parent = getpid(); /* the daemon stops when this process is gone */
    pid = fork();
    if (pid < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, ctx->s, "event=daemon.fork_failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (pid == 0) {
        exit(gs_daemon_main(ctx));
    }
    ctx->proc = apr_pcalloc(ctx->pconf, sizeof *ctx->proc);
    ctx->proc->pid = pid;
    apr_pool_note_subprocess(ctx->pconf, ctx->proc, APR_KILL_AFTER_TIMEOUT);
    apr_proc_other_child_register(ctx->proc, daemon_maint, ctx, NULL, ctx->pconf);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ctx->s, "event=daemon.started pid=%d", (int)pid);
    return OK;
}

static void daemon_maint(int reason, void *data, apr_wait_t status)
{
    gs_daemon_ctx_t *ctx = data;
    int mpm_state = AP_MPMQ_STOPPING;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(ctx);
        if (ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state) != APR_SUCCESS
            || mpm_state == AP_MPMQ_STOPPING) {
            break;
        }
        if (reason == APR_OC_REASON_DEATH && WIFEXITED(status)
            && WEXITSTATUS(status) == GS_DAEMON_STARTUP_ERROR) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, ctx->s,
                         "event=daemon.startup_failed: not restarting it; see the lines above");
            break;
        }
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ctx->s,
                     "event=daemon.died status=%d: starting a new one", (int)status);
        daemon_fork(ctx);
        break;
    case APR_OC_REASON_RESTART:
        apr_proc_other_child_unregister(ctx);
        break;
    default:
        break;
    }
}

/* httpd stops: waits until the daemon has stopped its workers and failed their tasks. APR's
 * subprocess kill of pconf, which runs next, sends it SIGTERM and SIGKILL 3 s later: less than
 * the daemon needs once a worker ignores SIGTERM (GS_STOP_GRACE, then one write per task), and a
 * daemon killed there leaves tasks RUNNING and, if it had not signalled them yet, workers alive
 * (they are in its process group, which APR does not signal).
 * After GS_STOP_GRACE + GS_STOP_FINISH the daemon's process group (the daemon and its workers)
 * is killed, so that no worker outlives httpd whatever the daemon is blocked on. */
static void daemon_wait_stopped(gs_daemon_ctx_t *ctx)
{
    apr_time_t deadline = apr_time_now() + GS_STOP_GRACE + GS_STOP_FINISH;

    while (apr_proc_wait(ctx->proc, NULL, NULL, APR_NOWAIT) == APR_CHILD_NOTDONE) {
        if (apr_time_now() >= deadline) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ctx->s, "event=daemon.stop_timeout pid=%d "
                         "waited_ms=%" APR_TIME_T_FMT ": killing it and its workers; tasks it "
                         "had not failed yet stay RUNNING until the rescue (stuck)",
                         (int)ctx->proc->pid,
                         apr_time_as_msec(GS_STOP_GRACE + GS_STOP_FINISH));
            kill(-ctx->proc->pid, SIGKILL); /* its process group (setpgid in gs_daemon_main) */
            kill(ctx->proc->pid, SIGKILL);
            apr_proc_wait(ctx->proc, NULL, NULL, APR_WAIT);
            return;
        }
        apr_sleep(apr_time_from_msec(10));
    }
}

/* Runs before the subprocess kill of pconf: tells the daemon whether httpd stops (workers must
 * go too; then waits for it) or only starts a new generation (workers carry on). Only signals
 * its own child that has not been reaped: a pid already collected may belong to anyone. */
static apr_status_t daemon_notify_end(void *data)
{
    gs_daemon_ctx_t *ctx = data;

    if (ctx->proc && ctx->proc->pid > 0
        && apr_proc_wait(ctx->proc, NULL, NULL, APR_NOWAIT) == APR_CHILD_NOTDONE) {
        if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING) {
            kill(ctx->proc->pid, SIGINT);
            daemon_wait_stopped(ctx);
        }
        else {
            kill(ctx->proc->pid, SIGHUP);
        }
    }
    /* httpd stops: the daemon (no longer root) may not have been allowed to remove its
     * socket from the runtime directory; the parent is (a restart keeps it: the next
     * generation's daemon rebinds the same name) */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING && ctx->sockname
        && unlink(ctx->sockname) != 0 && errno != ENOENT) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ctx->s,
                     "event=daemon.socket_unlink_failed path=%s", ctx->sockname);
    }
    if (daemon_ctx == ctx) {
        daemon_ctx = NULL;
    }
    return APR_SUCCESS;
}

int gs_httpd_daemon_post_config(apr_pool_t *pconf, server_rec *s)
{
    module *dbd = ap_find_linked_module("mod_dbd.c");
    const mod_dbd_svr_prefix_t *dbd_conf;
    gs_daemon_ctx_t *ctx;
    struct sockaddr_un sa;

    ctx = apr_pcalloc(pconf, sizeof *ctx);
    ctx->s = s;
    ctx->pconf = pconf;
    ctx->sockname = ap_runtime_dir_relative(
        pconf, apr_psprintf(pconf, "gmailsync.%" APR_PID_T_FMT ".sock", getpid()));
    if (!ctx->sockname || strlen(ctx->sockname) >= sizeof sa.sun_path) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "the daemon socket path %s is too long: "
                     "shorten DefaultRuntimeDir", ctx->sockname ? ctx->sockname : "(null)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    dbd_conf = dbd ? ap_get_module_config(s->module_config, dbd) : NULL;
    if (!dbd_conf || !dbd_conf->cfg || !dbd_conf->cfg->name
        || strcmp(dbd_conf->cfg->name, "pgsql") || !dbd_conf->cfg->params) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "mod_gmailsync needs DBDriver pgsql and DBDParams in the main server");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ctx->db_params = dbd_conf->cfg->params;
    /* read at post_config while still root (the file may be readable by root only) */
    ctx->client_secret = gs_httpd_srv_conf(s)->client_secret;
    daemon_ctx = ctx;
    apr_pool_cleanup_register(pconf, ctx, daemon_notify_end, apr_pool_cleanup_null);
    return daemon_fork(ctx);
}

/* ------------------------------------------------------------------ hand-off (request side) */

void gs_httpd_daemon_notify(request_rec *r, const char *task_id, const char *user_id)
{
    static const apr_interval_time_t backoff[] = { 0, 20000, 80000 };
    struct sockaddr_un sa;
    char msg[GS_HANDOFF_MAX];
    size_t i;
    int len;

    if (!daemon_ctx) {
        return;
    }
    if ((len = gs_handoff_format(msg, sizeof msg, task_id, user_id)) < 0) {
        return;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, daemon_ctx->sockname, sizeof sa.sun_path);
    for (i = 0; i < sizeof backoff / sizeof backoff[0]; i++) {
        int fd;

        if (backoff[i]) {
            apr_sleep(backoff[i]);
        }
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
            break;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0
            && write(fd, msg, (size_t)len) == len) {
            close(fd);
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "event=daemon.notified task=%s",
                          task_id);
            return;
        }
        close(fd);
    }
    /* the daemon's periodic pick-up will claim the task from the database */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, errno, r, "event=daemon.unreachable task=%s "
                  "(the task waits in CREATED for the next pick-up)", task_id);
}
