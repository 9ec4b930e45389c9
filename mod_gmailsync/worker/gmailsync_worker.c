/* gmailsync_worker.c -- main() of gmailsync-worker, the process that runs one sync task.
 *
 *   gmailsync-worker --task UUID [--lease UUID] [--config FILE|-]
 *
 * Without --lease it claims a CREATED task itself (CREATED -> RUNNING with a fresh lease); with
 * --lease it adopts a task the daemon already moved to RUNNING under that lease. The configuration
 * comes from FILE, from stdin ("-", how the daemon passes secrets), or without --config from the
 * environment (GS_PG_DSN, GS_API_BASE, GS_TOKEN_URL, GS_CLIENT_ID, GS_CLIENT_SECRET_FILE).
 *
 * stdout carries the live-progress protocol of gs_board.h; stderr the log (key=value events).
 * This file only wires things up; the sync itself lives in the core (gs_sync.c).
 *
 * Exit codes (see README.md beside this file):
 *   0  the task ended SUCCEEDED          1  the task ended FAILED (error_code recorded)
 *   2  usage error                       3  the task was not ours: not claimable, or lost mid-run
 *   4  could not start (configuration, database), or could not record the end
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_allocator.h>
#include <apr_getopt.h>
#include <apr_dbd.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_signal.h>
#include <apr_strings.h>

#include "gs_board.h"
#include "gs_db.h"
#include "gs_http.h"
#include "gs_log.h"
#include "gs_mime.h"
#include "gs_sync.h"
#include "gs_task.h"
#include "gs_taskview.h"
#include "gs_worker_conf.h"

#define EXIT_SUCCEEDED 0
#define EXIT_FAILED    1
#define EXIT_USAGE     2
#define EXIT_LOST      3
#define EXIT_NOSTART   4

/* Memory freed is given back (issue 22: peak RSS bounded by the largest message): the worker's
 * pools keep at most this much free memory for reuse; a larger block (a message, a part's
 * text) goes back to malloc, which, for a block of at least MMAP_AT, returns it to the system
 * at once. glibc's own threshold moves up to 32 MB after a large free, after which such blocks
 * come from, and stay in, the heap: it is pinned here. */
#define POOL_MAX_FREE (2 * 1024 * 1024)
#define MMAP_AT       (1024 * 1024)

static const apr_getopt_option_t options[] = {
    { "task", 't', 1, "UUID of the sync task to run (required)" },
    { "lease", 'l', 1, "adopt a RUNNING task under this lease instead of claiming a CREATED one" },
    { "config", 'c', 1, "key = value configuration file, or - for stdin (default: environment)" },
    { "version", 'V', 0, "print the version and exit" },
    { "help", 'h', 0, "print this help and exit" },
    { NULL, 0, 0, NULL }
};

static void usage(FILE *out, const char *argv0)
{
    const apr_getopt_option_t *o;

    fprintf(out, "usage: %s --task UUID [--lease UUID] [--config FILE|-]\n", argv0);
    for (o = options; o->name; o++) {
        fprintf(out, "  --%-8s %s\n", o->name, o->description);
    }
}

/* ------------------------------------------------------------------ log sink: stderr */

static int log_debug;

static void stderr_print(void *baton, const char *file, int line, gs_log_level_t level,
                         apr_status_t rv, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)rv;
    /* one write per line, so lines of a log pipeline never interleave */
    dprintf(STDERR_FILENO, "[gmailsync:%s] [pid %d] %s\n", gs_log_level_name(level), (int)getpid(),
            msg);
}

static int stderr_is_level(void *baton, gs_log_level_t level)
{
    (void)baton;
    return level <= (log_debug ? GS_LOG_DEBUG : GS_LOG_INFO);
}

/* ------------------------------------------------------------------ board sink: stdout */

typedef struct {
    int closed;     /* EPIPE: nobody reads; stop trying */
} board_t;

static void board_write(void *baton, const char *line, int len)
{
    board_t *b = baton;
    ssize_t n;

    if (b->closed) {
        return;
    }
    do {
        n = write(STDOUT_FILENO, line, (size_t)len);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        b->closed = 1;   /* EPIPE and friends: the database stays the truth, keep syncing */
    }
}

static void board_init(board_t *b)
{
    struct stat st;

    memset(b, 0, sizeof *b);
    /* A pipe nobody drains must not stall the sync: drop lines instead of blocking. Only for a
     * pipe, which is ours alone; a terminal or file is shared with others. */
    if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode)) {
        int flags = fcntl(STDOUT_FILENO, F_GETFL);
        if (flags >= 0 && fcntl(STDOUT_FILENO, F_SETFL, flags | O_NONBLOCK) != 0) {
            gs_log_error(GS_LOG_DEBUG, NULL,
                         "event=worker.stdout reason=\"cannot make it non-blocking\"");
        }
    }
}

/* ------------------------------------------------------------------ database */

/* Opens the database connection. A database that is away at this moment (a restart, a failover)
 * is waited for, like every later statement waits for it (db_wait, back-off 100 ms to 1 s): a
 * worker started during an outage runs its sync when the database is back. */
static apr_status_t open_db(gs_db_t **db, apr_pool_t *p, const gs_worker_conf_t *conf,
                            const char *task_id, const char **err)
{
    apr_time_t began = apr_time_now();
    apr_interval_time_t delay = apr_time_from_msec(100);
    apr_status_t rv;
    int logged = 0;

    while ((rv = gs_db_open(db, p, conf->db, err)) != APR_SUCCESS
           && apr_time_now() - began < conf->db_wait) {
        if (!logged) {
            logged = 1;
            gs_log_error(GS_LOG_WARNING, p, "event=db.waiting task=%s max_wait_ms=%"
                         APR_INT64_T_FMT " reason=\"%s\"", task_id,
                         (apr_int64_t)apr_time_as_msec(conf->db_wait), *err);
        }
        apr_sleep(delay);
        delay = delay * 2 > apr_time_from_sec(1) ? apr_time_from_sec(1) : delay * 2;
    }
    if (rv == APR_SUCCESS && logged) {
        gs_log_error(GS_LOG_NOTICE, p, "event=db.back task=%s waited_ms=%" APR_INT64_T_FMT,
                     task_id, (apr_int64_t)apr_time_as_msec(apr_time_now() - began));
    }
    if (rv == APR_SUCCESS) {
        gs_db_session_t session = { NULL, 0, 0, 0 };

        /* named after the task, so that operators find it in pg_stat_activity. The worker's
         * transactions hold the task's row: a worker frozen inside one (SIGSTOP, a stall) must
         * not keep the row locked until the rescue gives up on it, so PostgreSQL ends such a
         * session after a quarter of the stuck threshold (the stall limit is half of it), at
         * most 30 s; nothing the worker does inside a transaction waits on Gmail */
        session.name = apr_pstrcat(p, "gmailsync-worker ", task_id, NULL);
        session.idle_in_transaction_timeout = conf->stall_limit > 0 ? conf->stall_limit / 2
                                                                    : apr_time_from_sec(30);
        if (session.idle_in_transaction_timeout > apr_time_from_sec(30)) {
            session.idle_in_transaction_timeout = apr_time_from_sec(30);
        }
        if (session.idle_in_transaction_timeout < apr_time_from_sec(1)) {
            session.idle_in_transaction_timeout = apr_time_from_sec(1);
        }
        gs_db_set_session(*db, &session);
    }
    return rv;
}

/* ------------------------------------------------------------------ main */

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_allocator_t *allocator;
    apr_getopt_t *opt;
    apr_status_t rv;
    const char *arg, *task_id = NULL, *lease = NULL, *config = NULL, *err = NULL;
    gs_worker_conf_t *conf;
    gs_failure_t failure;
    gs_http_settings_t hs;
    gs_http_t *http;
    gs_db_t *db;
    gs_task_t *task;
    gs_sync_t *sync;
    board_t board;
    char line[GS_BOARD_LINE_MAX];
    int ch;

    memset(&failure, 0, sizeof failure);
    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-worker: cannot initialize APR\n");
        return EXIT_NOSTART;
    }
    atexit(apr_terminate);
#ifdef M_MMAP_THRESHOLD
    if (!mallopt(M_MMAP_THRESHOLD, MMAP_AT)) {
        fprintf(stderr, "gmailsync-worker: cannot set the mmap threshold (memory is kept longer)\n");
    }
#endif
    if (apr_allocator_create(&allocator) != APR_SUCCESS
        || apr_pool_create_ex(&pool, NULL, NULL, allocator) != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-worker: out of memory\n");
        return EXIT_NOSTART;
    }
    apr_allocator_owner_set(allocator, pool);
    apr_allocator_max_free_set(allocator, POOL_MAX_FREE);
    /* the parent may go away and close our stdout: a write must fail with EPIPE, not kill us */
    apr_signal(SIGPIPE, SIG_IGN);
    gs_log_set(stderr_print, stderr_is_level, NULL);

    if ((rv = apr_getopt_init(&opt, pool, argc, argv)) != APR_SUCCESS) {
        return EXIT_USAGE;
    }
    opt->errfn = NULL;
    while ((rv = apr_getopt_long(opt, options, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 't':
            task_id = arg;
            break;
        case 'l':
            lease = arg;
            break;
        case 'c':
            config = arg;
            break;
        case 'V':
            printf("gmailsync-worker %s\n", GS_VERSION);
            return EXIT_SUCCEEDED;
        case 'h':
            usage(stdout, argv[0]);
            return EXIT_SUCCEEDED;
        default:
            break;
        }
    }
    if (rv != APR_EOF || opt->ind < argc || !task_id) {
        fprintf(stderr, "gmailsync-worker: %s\n", !task_id && rv == APR_EOF && opt->ind >= argc
                ? "--task is required" : "unknown option or argument");
        usage(stderr, argv[0]);
        return EXIT_USAGE;
    }
    if (!gs_is_uuid(task_id) || (lease && !gs_is_uuid(lease))) {
        fprintf(stderr, "gmailsync-worker: --task and --lease take UUIDs\n");
        return EXIT_USAGE;
    }

    conf = gs_worker_conf_make(pool);
    rv = config ? gs_worker_conf_load(conf, pool, config, &err)
                : gs_worker_conf_from_env(conf, pool, &err);
    if (rv == APR_SUCCESS) {
        rv = gs_worker_conf_check(conf, pool, &err);
    }
    if (rv != APR_SUCCESS) {
        gs_log_error(GS_LOG_ERR, pool, "event=worker.error task=%s reason=\"configuration: %s\"",
                     task_id, err);
        return EXIT_NOSTART;
    }
    log_debug = conf->debug;
    /* GMime's tables, once, before the first message is parsed (GmailSyncContent full) */
    if (conf->content == GS_CONTENT_FULL) {
        gs_mime_init();
    }

    if ((rv = apr_dbd_init(pool)) != APR_SUCCESS
        || (rv = open_db(&db, pool, conf, task_id, &err)) != APR_SUCCESS) {
        if (!err) {
            err = "cannot initialise apr_dbd";
        }
        gs_log_error(GS_LOG_ERR, pool, "event=worker.error task=%s reason=\"%s\"", task_id, err);
        return EXIT_NOSTART;
    }
    rv = gs_task_acquire(&task, pool, db, &failure, task_id, lease, conf->host, (int)getpid(),
                         GS_VERSION);
    if (rv == GS_ELOST) {
        gs_log_error(GS_LOG_NOTICE, pool, "event=worker.not_claimed task=%s reason=\"%s\"", task_id,
                     lease ? "the task is not RUNNING under this lease"
                           : "the task does not exist or is not CREATED");
        return EXIT_LOST;
    }
    if (rv != APR_SUCCESS) {
        gs_log_error(GS_LOG_ERR, pool, "event=worker.error task=%s reason=\"%s\"", task_id,
                     failure.message ? failure.message : "cannot claim the task");
        return EXIT_NOSTART;
    }

    board_init(&board);
    gs_task_set_announce(task, board_write, &board);
    apr_snprintf(line, sizeof line, "pid=%d", (int)getpid());
    gs_task_announce_state(task, "RUNNING", line);
    gs_log_error(GS_LOG_INFO, pool, "event=worker.started task=%s user=%s pid=%d host=%s how=%s "
                 "version=%s", task->task_id, gs_log_value(pool, task->user_id),
                 (int)getpid(), conf->host,
                 lease ? "adopted" : "claimed", GS_VERSION);

    /* from here on every way out records an end state (or leaves it to the daemon: exit 4) */
    memset(&hs, 0, sizeof hs);
    hs.timeout = conf->timeout;
    hs.connect_timeout = conf->connect_timeout;
    hs.low_speed_time = conf->low_speed_time;
    hs.max_parallel = conf->parallel;
    /* Google compresses answers only for clients with "gzip" in the User-Agent that accept it
     * (gs_curl.c sets Accept-Encoding): metadata batches shrink several times */
    hs.user_agent = "mod_gmailsync/" GS_VERSION " gmailsync-worker (gzip)";
    if (gs_curl_global_init() != APR_SUCCESS
        || gs_curl_create(&http, pool, &hs, &err) != APR_SUCCESS) {
        apr_int64_t ms;
        gs_fail(&failure, pool, GS_ERR_INTERNAL, "cannot initialise libcurl");
        return gs_task_fail(task, pool, &ms) == APR_SUCCESS ? EXIT_FAILED : EXIT_NOSTART;
    }
    sync = gs_sync_create(pool, conf, task, http, &failure);
    switch (gs_sync_run(sync)) {
    case GS_SYNC_SUCCEEDED:
        return EXIT_SUCCEEDED;
    case GS_SYNC_FAILED:
        return EXIT_FAILED;
    case GS_SYNC_LOST:
        return EXIT_LOST;
    default:
        return EXIT_NOSTART;
    }
}
