/* mod_gmailsync_strays.c -- the workers an earlier daemon of this httpd left running (a graceful
 * restart or a rollback leaves running syncs to finish; a daemon that died leaves its workers):
 * found in /proc by their session, process group and command line, counted against
 * GmailSyncMaxWorkers, killed when their task is stuck, stopped with httpd
 * (mod_gmailsync_workers.c). Linux only, like the rest of the daemon.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "gs_log.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_daemon.h"

APLOG_USE_MODULE(gmailsync);

/* Reads /proc/PID/NAME into buf (NUL-terminated); returns the bytes read, <= 0 on failure. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
    char path[64];
    ssize_t n;
    int fd;

    apr_snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return -1;
    }
    n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* Reads the command line of `pid` if it is such a worker (task and lease into *st). */
static int stray_match(pid_t pid, pid_t sid, gs_stray_t *st)
{
    char buf[1024], *p, *argv[16], state;
    long ppid, pgrp, session;
    int argc = 0, i;
    ssize_t n;

    if (read_proc(pid, "stat", buf, sizeof buf) <= 0) {
        return 0;
    }
    /* "pid (comm) state ppid pgrp session ...": comm may hold anything but ends at the last ')' */
    if (!(p = strrchr(buf, ')'))
        || sscanf(p + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &session) != 4
        || state == 'Z' || state == 'X' || (pid_t)session != sid || (pid_t)pgrp == getpgrp()) {
        return 0;
    }
    if ((n = read_proc(pid, "cmdline", buf, sizeof buf)) <= 0) {
        return 0;
    }
    for (p = buf; p < buf + n && argc < (int)(sizeof argv / sizeof argv[0]); p += strlen(p) + 1) {
        argv[argc++] = p;
    }
    for (i = 0; i + 5 < argc; i++) {
        if (!strcmp(argv[i], "--task") && !strcmp(argv[i + 2], "--lease")
            && !strcmp(argv[i + 4], "--config")
            && strlen(argv[i + 1]) < sizeof st->task_id && strlen(argv[i + 3]) < sizeof st->lease
            && (!st->task_id[0] || !strcmp(st->task_id, argv[i + 1]))) {
            apr_cpystrn(st->task_id, argv[i + 1], sizeof st->task_id);
            apr_cpystrn(st->lease, argv[i + 3], sizeof st->lease);
            st->pid = pid;
            return 1;
        }
    }
    return 0;
}

int gs_strays_find(pid_t d_parent, gs_stray_t *strays, int max)
{
    pid_t sid = getsid(0);
    struct dirent *e;
    DIR *dir;
    int n = 0;

    /* httpd's parent, even once it is gone (the daemon stops because it died) */
    if (sid != d_parent || !(dir = opendir("/proc"))) {
        return 0;
    }
    while (n < max && (e = readdir(dir))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);

        memset(&strays[n], 0, sizeof strays[n]);
        if (pid > 0 && !*end && stray_match((pid_t)pid, sid, &strays[n])) {
            n++;
        }
    }
    closedir(dir);
    return n;
}

/* A stuck task whose worker an earlier daemon of this httpd left running (a graceful restart
 * or a rollback left it to finish, and it froze): nobody else will kill it. Matched by the task
 * and the lease on its command line, checked right before the kill. */
void gs_strays_kill_frozen(daemon_t *d, const char *task_id, const char *user_id,
                              const char *lease, apr_int64_t age)
{
    gs_stray_t strays[GS_MAX_WORKER_SLOTS];
    int n = gs_strays_find(d->ctx->parent, strays, GS_MAX_WORKER_SLOTS), i;

    for (i = 0; i < n; i++) {
        gs_stray_t *st = &strays[i];

        if (strcmp(st->task_id, task_id) || !lease || strcmp(st->lease, lease)
            || !gs_stray_alive(st)) {
            continue;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->ctx->s,
                     "event=worker.killed task=%s user=%s pid=%d reason=stuck "
                     "heartbeat_age_s=%" APR_INT64_T_FMT " detail=\"left by an earlier daemon\"",
                     task_id, gs_log_value(d->tick, user_id), (int)st->pid, age);
        kill(st->pid, SIGKILL);
    }
}

int gs_stray_alive(gs_stray_t *st)
{
    return stray_match(st->pid, getsid(0), st);
}
