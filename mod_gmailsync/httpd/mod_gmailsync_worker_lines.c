/* mod_gmailsync_worker_lines.c -- what the daemon's workers write: their gs1 progress lines
 * (parsed by the core's gs_board_parse) onto the shared-memory board and into the counters,
 * their log lines into httpd's error log at the worker's own level.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include "gs_board.h"
#include "gs_queue.h"
#include "mod_gmailsync.h"
#include "mod_gmailsync_daemon.h"

APLOG_USE_MODULE(gmailsync);

/* The live board: an entry appears when the task is claimed, follows the worker's progress
 * lines and goes when the task ends (or is cancelled: then a late line must not bring it back). */
void gs_workers_board_put(worker_t *w, const gs_claim_t *claim, const gs_board_line_t *line,
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
    gs_workers_board_put(w, NULL, &done, "SUCCEEDED");
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
        gs_workers_board_put(w, NULL, &parsed, "RUNNING");
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
        gs_workers_board_put(w, NULL, w->have_last ? &w->last : NULL, "RUNNING");
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
