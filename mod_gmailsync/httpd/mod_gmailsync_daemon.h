/* mod_gmailsync_daemon.h -- internals shared by the daemon's files:
 *   mod_gmailsync_daemon.c       the parent side (fork, watch, restart) and the request hand-off
 *   mod_gmailsync_daemon_main.c  the daemon process: signals, socket, main loop, rescue
 *   mod_gmailsync_workers.c      the workers: claim, spawn, live board, reap, stop
 * See mod_gmailsync_daemon.c for the lifecycle.
 */
#ifndef MOD_GMAILSYNC_DAEMON_H
#define MOD_GMAILSYNC_DAEMON_H

#include <signal.h>

#include <apr_thread_proc.h>

#include "gs_board.h"
#include "gs_db.h"
#include "gs_handoff.h"
#include "gs_log.h"
#include "gs_queue.h"
#include "mod_gmailsync.h"

#define GS_DAEMON_STARTUP_ERROR 86
#define GS_MAX_WORKER_SLOTS     256
#define GS_POLL_INTERVAL        apr_time_from_msec(1000)  /* queue pick-up without hand-off */
#define GS_RESCUE_INTERVAL      apr_time_from_msec(1000)
#define GS_PURGE_INTERVAL       apr_time_from_sec(10)     /* the change feed's retention */
#define GS_PURGE_BATCH          5000
#define GS_SCHEDULE_INTERVAL    apr_time_from_msec(1000)  /* auto sync rounds (and when a slot
                                                             frees while accounts are due) */
#define GS_BOARD_LINGER         apr_time_from_sec(30)     /* SUCCEEDED entries for watchers */
#define GS_STOP_GRACE           apr_time_from_msec(2500)  /* workers: SIGTERM .. SIGKILL */
#define GS_STOP_FINISH          apr_time_from_msec(2500)  /* then the daemon's FAILED writes */
#define GS_LINE_MAX             2048
/* the daemon's session (gs_db_session_t): no statement of its loop waits long on a lock */
#define GS_DAEMON_LOCK_TIMEOUT       apr_time_from_sec(2)
#define GS_DAEMON_STATEMENT_TIMEOUT  apr_time_from_sec(15)

typedef struct {
    server_rec *s;
    apr_pool_t *pconf;
    apr_proc_t *proc;
    pid_t parent;             /* httpd's parent process that forked the daemon */
    const char *sockname;
    const char *db_params;
    const char *client_secret;
} gs_daemon_ctx_t;

typedef struct {
    char buf[GS_LINE_MAX];
    apr_size_t len;
} line_buf_t;

typedef struct {
    int used;
    apr_pool_t *pool;
    apr_proc_t proc;
    int out_fd, err_fd;       /* -1 once closed */
    line_buf_t out, err;
    char task_id[40];
    char lease[40];
    char user_id[GS_REGISTRY_USER_MAX + 1];
    char created_at[32];
    char started_at[32];
    char mode[16];
    gs_board_line_t last;     /* the last progress line (have_last), kept across retry lines */
    int have_last;
    char retry_reason[16];    /* "" or why the worker waits to ask Gmail again */
    apr_time_t retry_until;
    apr_int64_t retry_attempt;
    int succeeded;            /* the board shows its SUCCEEDED state for a while */
    int exited;               /* reaped; the slot waits for fail_code to be written */
    int lost;                 /* its task left RUNNING elsewhere; told to stop */
    const char *fail_code, *fail_message;
    apr_time_t started;
    int resumes;              /* times its task was run again because its end was lost */
} worker_t;

/* A task whose worker ended it (exit 0 or 1) lately: a failover to a standby that lagged can
 * lose that end, and then the task is RUNNING again with nobody running it. */
typedef struct {
    char task_id[40];
    char lease[40];
    char user_id[GS_REGISTRY_USER_MAX + 1];
    apr_time_t at;            /* 0: empty */
    int resumes;
} ended_t;

#define GS_ENDED_MAX            64
#define GS_ENDED_WATCH          apr_time_from_sec(600)  /* how long an end is checked again */
#define GS_MAX_RESUMES          2

typedef struct {
    gs_daemon_ctx_t *ctx;
    const gs_srv_conf_t *conf;
    apr_pool_t *pool;
    apr_pool_t *tick;
    gs_db_t *db;
    apr_time_t db_retry_at;
    int listen_fd;
    const char *host;
    worker_t workers[GS_MAX_WORKER_SLOTS];
    int running;
    int strays;               /* workers an earlier daemon of this httpd left running (a
                                 graceful restart, a rollback): they count against the cap */
    ended_t ended[GS_ENDED_MAX];   /* a ring: the latest ends, checked again after a failover */
    int ended_next;
    unsigned long ended_sessions;  /* d->db->sessions when they were last checked */
    /* errors that can repeat every tick are written once, then summarised (gs_log.h) */
    gs_log_repeat_t log_db, log_claim, log_rescue, log_reconcile, log_schedule, log_listen, log_purge;
    int listening;            /* LISTEN gmailsync_queue holds on d->db */
    unsigned long listen_resets; /* d->db->resets when it was sent */
    apr_uint64_t claim_failures, rescue_failures;
    /* the scheduler (schedule_round): GmailSyncAutoSyncMaxStarts starts a second (a token
     * bucket), and whether its last round left accounts due that it had no room for; it then
     * runs again as soon as a worker's slot frees (d->running falls below sched_running, its
     * highest value since that round) */
    double sched_tokens;
    apr_time_t sched_tokens_at;
    int sched_more;
    int sched_running;
    /* the watches of push notifications (mod_gmailsync_watch.c) */
    struct gs_http_t *watch_http;  /* made at the first round */
    apr_time_t watch_next;         /* the next round */
    apr_time_t watch_pause_until;  /* Gmail or the token endpoint was unreachable: no round */
    int watch_unreachable;         /* consecutive rounds that found it unreachable */
    gs_log_repeat_t log_watch;
} daemon_t;

extern volatile sig_atomic_t gs_daemon_should_exit;   /* restart: leave workers */
extern volatile sig_atomic_t gs_daemon_should_stop;   /* httpd stops: stop workers */

/* The daemon process; returns its exit status (GS_DAEMON_STARTUP_ERROR: do not restart). */
int gs_daemon_main(gs_daemon_ctx_t *ctx);
/* Is the daemon's database connection usable (reconnecting with a back-off)? */
int gs_daemon_ensure_db(daemon_t *d);

/* Publishes the outcome of a claim or rescue round for /health (shared memory). */
void gs_daemon_claim_done(daemon_t *d, int ok);
void gs_daemon_rescue_done(daemon_t *d, int ok);

/* One round of users.watch calls (mod_gmailsync_watch.c), when due: returns at once without
 * GmailSyncPushTopic. */
void gs_daemon_watch_round(daemon_t *d, apr_time_t now);

/* Workers (mod_gmailsync_workers.c). */
void gs_workers_claim_and_spawn(daemon_t *d);
void gs_workers_reap(daemon_t *d, const char *code_if_running);
void gs_workers_reconcile(daemon_t *d);
/* What a worker wrote (mod_gmailsync_worker_lines.c); returns 0 at EOF */
int gs_workers_drain(daemon_t *d, worker_t *w, int is_err);
/* The worker's task on this host's live board: put (claim given) or updated, in state */
void gs_workers_board_put(worker_t *w, const gs_claim_t *claim, const gs_board_line_t *line,
                          const char *state);
void gs_workers_count_strays(daemon_t *d);
void gs_workers_check_ended(daemon_t *d);
void gs_workers_kill_frozen(void *baton, const char *task_id, const char *user_id, long pid,
                            const char *lease, apr_int64_t age);
void gs_workers_stop(daemon_t *d);

/* Workers an earlier daemon of this httpd left running (mod_gmailsync_strays.c). */
typedef struct {
    pid_t pid;
    int done;
    char task_id[40];
    char lease[40];
} gs_stray_t;
/* Finds up to max of them (none unless httpd's parent d_parent leads this session). */
int gs_strays_find(pid_t d_parent, gs_stray_t *strays, int max);
/* Is st's process still that worker (its pid not reused)? */
int gs_stray_alive(gs_stray_t *st);
/* Kills the one that holds task_id under lease (a stuck task nobody else will end). */
void gs_strays_kill_frozen(daemon_t *d, const char *task_id, const char *user_id,
                           const char *lease, apr_int64_t age);

#endif /* MOD_GMAILSYNC_DAEMON_H */
