/* mod_gmailsync_stream.c -- GET {prefix}/progress/{task_id} with Accept: text/event-stream.
 *
 * Server-Sent Events: a `retry:` hint, then one `progress` event (the task JSON) per change, at
 * most 4 per second, a comment line as keep-alive, and the end of the stream once the task is no
 * longer CREATED or RUNNING (SUCCEEDED, FAILED, CANCELLED, and STUCK: nothing more will come
 * from a worker), or after GS_SSE_MAX_LIFETIME (EventSource reconnects by itself).
 *
 * What a stream costs, and its limits:
 *  - a thread, for its whole life. The event MPM parks idle keep-alive connections and finishes
 *    writes asynchronously, but it cannot park a handler that waits between events; prefork
 *    gives a whole process. So streams are counted in shared memory and capped per user
 *    (GmailSyncMaxStreamsPerUser: 429) and per host (GmailSyncMaxStreams, by default half of
 *    MaxRequestWorkers: 503), both with Retry-After; the page then polls.
 *  - no database connection while it waits: mod_dbd's pool is small and a request blocks when it
 *    is empty. The connection used to identify the caller goes back before the first event; a
 *    task this host's daemon runs is read from the shared-memory board, any other from
 *    PostgreSQL at most once per GS_SSE_DB_INTERVAL with a connection taken and given back at
 *    once.
 *  - memory: each tick allocates from a pool cleared at the next one.
 * A watcher that goes away is noticed within one tick (its socket reads EOF), and its thread and
 * its place under the caps are freed.
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
#include "gs_log.h"
#include "gs_sql.h"
#include "gs_taskview.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_SSE_TICK         apr_time_from_msec(250)   /* at most 4 events per second */
#define GS_SSE_DB_INTERVAL  apr_time_from_sec(1)
#define GS_SSE_KEEPALIVE    apr_time_from_sec(15)
#define GS_SSE_MAX_LIFETIME apr_time_from_sec(30 * 60)
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

/* Is the task past the point where a stream has anything to wait for? */
static int is_final(json_object *task)
{
    const char *state = json_object_get_string(json_object_object_get(task, "state"));

    return !state || (strcmp(state, "CREATED") && strcmp(state, "RUNNING"));
}

static apr_status_t stream_leave(void *user_id)
{
    gs_httpd_stream_leave(user_id);
    return APR_SUCCESS;
}

/* Counts the stream in (returns 1), or answers the refusal (returns 0). */
static int admitted(request_rec *r, const gs_srv_conf_t *conf, const char *user_id)
{
    gs_stream_admission_t a = gs_httpd_stream_enter(user_id, conf->max_streams_per_user);

    if (a == GS_STREAM_ADMITTED) {
        apr_pool_cleanup_register(r->pool, apr_pstrdup(r->pool, user_id), stream_leave,
                                  apr_pool_cleanup_null);
        return 1;
    }
    gs_httpd_count(a == GS_STREAM_USER_FULL ? GS_CTR_STREAMS_REFUSED_USER
                                            : GS_CTR_STREAMS_REFUSED_HOST, 1);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=progress.stream_refused user=%s "
                  "reason=%s open=%u limit=%ld", gs_log_value(r->pool, user_id),
                  a == GS_STREAM_USER_FULL ? "user_limit" : "host_limit",
                  (unsigned)gs_httpd_streams_open(),
                  a == GS_STREAM_USER_FULL ? conf->max_streams_per_user
                                           : gs_httpd_streams_limit());
    if (a == GS_STREAM_USER_FULL) {
        apr_table_setn(r->headers_out, "Retry-After", GS_RETRY_AFTER_SECONDS);
        gs_httpd_send_problem(r, HTTP_TOO_MANY_REQUESTS, "too-many-streams",
                              apr_psprintf(r->pool, "at most %ld progress streams per user; "
                                           "poll this URL without Accept: text/event-stream",
                                           conf->max_streams_per_user));
    }
    else {
        gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "streams-busy",
                              "this server has no room for another progress stream; poll this "
                              "URL without Accept: text/event-stream");
    }
    return 0;
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

    /* the first read decides 404 before any byte of the stream is sent */
    status = gs_httpd_load_task(r, r->pool, &db, user_id, task_id, &task);
    gs_httpd_release_db(r);
    db = NULL;
    if (status != OK) {
        return status == HTTP_NOT_FOUND
                   ? gs_httpd_send_problem(r, HTTP_NOT_FOUND, "no-such-task", "no such task")
                   : gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                           "the database cannot be reached");
    }
    if (!r->header_only && !is_final(task) && !admitted(r, conf, user_id)) {
        return OK; /* refused, and answered */
    }
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
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
            if (is_final(task)) {
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
            /* not (or no longer) on this host's board: the database has it. The connection is
             * held for this one read only */
            next_db = now + GS_SSE_DB_INTERVAL;
            if (gs_httpd_load_task(r, tick, &db, user_id, task_id, &task) != OK) {
                task = NULL;
            }
            gs_httpd_release_db(r);
            db = NULL;
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
