/* mod_gmailsync_stream.c -- GET {prefix}/progress/{task_id} with Accept: text/event-stream.
 *
 * Server-Sent Events: a `retry:` hint, then one `progress` event (the task JSON) per change, at
 * most GS_SSE_MAX_RATE per second, a comment line as keep-alive, and the end of the stream after
 * a terminal state. A task this host's daemon runs is read from the shared-memory board, so any
 * number of watchers costs PostgreSQL nothing while it runs (a SUCCEEDED task stays on the board
 * for a while, so the last event costs nothing either); a task run elsewhere is read from
 * PostgreSQL at most once per GS_SSE_DB_INTERVAL per watcher. A watcher that goes away is noticed
 * within one tick (its socket reads EOF), and its thread is freed.
 */
#include <errno.h>
#include <sys/socket.h>

#include <apr_portable.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_json.h"
#include "gs_sql.h"
#include "gs_taskview.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_SSE_TICK         apr_time_from_msec(250)   /* at most 4 events per second */
#define GS_SSE_DB_INTERVAL  apr_time_from_sec(1)
#define GS_SSE_KEEPALIVE    apr_time_from_sec(15)
#define GS_SSE_MAX_LIFETIME apr_time_from_sec(6 * 3600)
#define GS_SSE_RETRY_MS     "2000"

/* Has the client closed its side? (EOF on a non-blocking peek; SSE clients never send more.) */
static int client_gone(request_rec *r)
{
    apr_socket_t *sock = ap_get_conn_socket(r->connection);
    apr_os_sock_t fd;
    char c;
    ssize_t n;

    if (r->connection->aborted) {
        return 1;
    }
    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS) {
        return 0;
    }
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int send_text(request_rec *r, const char *text)
{
    if (ap_rputs(text, r) < 0 || ap_rflush(r) < 0) {
        return 0;
    }
    return !r->connection->aborted;
}

static int send_event(request_rec *r, apr_pool_t *p, json_object *task)
{
    return send_text(r, apr_pstrcat(p, "event: progress\ndata: ", gs_json_to_string(p, task),
                                    "\n\n", NULL));
}

int gs_httpd_progress_stream(request_rec *r, const gs_srv_conf_t *conf, gs_db_t *db,
                             const char *user_id, const char *task_id)
{
    apr_time_t started = apr_time_now(), last_send, next_db = 0;
    const char *last = NULL;
    apr_uint32_t last_generation = 0;
    json_object *task;
    apr_pool_t *tick;
    int status, events = 0;

    (void)conf;
    /* the first read decides 404 before any byte of the stream is sent */
    if ((status = gs_httpd_load_task(r, &db, user_id, task_id, &task)) != OK) {
        return status == HTTP_NOT_FOUND
                   ? gs_httpd_send_problem(r, HTTP_NOT_FOUND, "no-such-task", "no such task")
                   : gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                           "the database cannot be reached");
    }
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->subprocess_env, "no-gzip", "1");   /* mod_deflate would buffer */
    r->connection->keepalive = AP_CONN_CLOSE;
    if (r->header_only) {
        return OK;
    }
    if (!send_text(r, "retry: " GS_SSE_RETRY_MS "\n\n")) {
        return OK;
    }
    if (apr_pool_create(&tick, r->pool) != APR_SUCCESS) {
        return OK;
    }
    last_send = apr_time_now();
    for (;;) {
        gs_registry_task_t live;
        json_object *state;
        const char *text;
        apr_time_t now;
        int changed = 0;

        if (task) {
            text = gs_json_to_string(tick, task);
            if (!last || strcmp(text, last)) {
                if (!send_event(r, tick, task)) {
                    break;
                }
                last = apr_pstrdup(r->pool, text);
                last_send = apr_time_now();
                events++;
            }
            state = json_object_object_get(task, "state");
            if (gs_state_is_terminal(json_object_get_string(state))) {
                break;
            }
        }
        apr_sleep(GS_SSE_TICK);
        apr_pool_clear(tick);
        task = NULL;
        now = apr_time_now();
        if (client_gone(r) || now - started > GS_SSE_MAX_LIFETIME) {
            break;
        }
        if (gs_httpd_registry_task_find(task_id, &live) && !strcmp(live.user_id, user_id)) {
            if (live.generation != last_generation) {
                last_generation = live.generation;
                task = gs_json_own(tick, gs_taskview_from_board(tick, &live));
                changed = 1;
            }
        }
        else if (now >= next_db) {
            /* not (or no longer) on this host's board: the database has it */
            next_db = now + GS_SSE_DB_INTERVAL;
            if (gs_httpd_load_task(r, &db, user_id, task_id, &task) != OK) {
                task = NULL;
            }
            changed = task != NULL;
        }
        if (!changed && now - last_send >= GS_SSE_KEEPALIVE) {
            if (!send_text(r, ": keep-alive\n\n")) {
                break;
            }
            last_send = now;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "event=progress.stream_end task=%s events=%d",
                  task_id, events);
    return OK;
}
