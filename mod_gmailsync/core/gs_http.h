/* gs_http.h -- HTTP as the sync engine sees it: a batch of requests performed together.
 *
 * As in mod_md (md_http.h / md_curl.c), the engine talks to an implementation table, so that
 * the production code uses libcurl (gs_curl.c) and unit tests can answer from memory. Requests
 * given to one gs_http_perform() call are in flight at the same time over kept-alive
 * connections; the call returns when all of them are done (or the tick callback says stop).
 *
 * While waiting -- on the network or in gs_http_sleep() -- the engine's tick callback runs at
 * least every GS_HTTP_TICK, so that a worker blocked on a slow answer or a backoff keeps its
 * heartbeat going, while a frozen process does not.
 */
#ifndef GS_HTTP_H
#define GS_HTTP_H

#include <apr_file_io.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define GS_HTTP_TICK apr_time_from_msec(100)
/* Answers kept in memory larger than this are refused (a metadata batch of 100 messages is
 * ~300 KB; OAuth, profile, list and history answers are a few KB). */
#define GS_HTTP_MAX_BODY (32 * 1024 * 1024)
/* A request with `spool` set keeps its answer in memory up to this size, as any other; past it
 * the body goes on to an unlinked temporary file (see gs_http_request_t.spool). */
#define GS_HTTP_SPOOL_AT (1024 * 1024)
/* A spooled answer larger than this is refused ("response too large", too_large set): 1 GiB
 * holds a batch of 15 of Gmail's largest messages (50 MB received, 67 MB as base64url in the
 * JSON of format=raw) or 40 of the 25 MB that Gmail lets a user send. It bounds the temporary
 * disk a worker takes (one file per batch in flight), not its memory; the batch shrinks when
 * answers are large (gs_gmail_fetch.c), so only a first round of giant messages meets it. */
#define GS_HTTP_MAX_SPOOL (APR_INT64_C(1024) * 1024 * 1024)

typedef struct gs_http_t gs_http_t;

/* Runs between waits. Anything but APR_SUCCESS aborts the waiting call with that status. */
typedef apr_status_t gs_http_tick_cb(void *baton);

typedef struct {
    /* what to send: set by the caller */
    const char *method;              /* "GET" or "POST" */
    const char *url;
    apr_array_header_t *headers;     /* of "Name: value" strings; may be NULL */
    const char *body;                /* POST body, or NULL */
    apr_size_t body_len;
    /* An answer over GS_HTTP_SPOOL_AT goes to a temporary file instead of memory: made with
     * mkstemp (mode 0600) in the worker's TMPDIR (apr_temp_dir_get: TMPDIR, TMP, TEMP, else
     * P_tmpdir, /tmp), unlinked at once, closed by a cleanup of the perform() pool. Then
     * resp_file holds the body and resp_body is "" (a small answer stays in resp_body). */
    int spool;
    /* what came back: set by gs_http_perform */
    int status;                      /* HTTP status, or 0 when the transfer itself failed */
    const char *transport_error;     /* why the transfer failed (static or pool text), else NULL */
    int timed_out;                   /* the transfer failed by a timeout */
    const char *content_type;        /* response header, or NULL */
    const char *retry_after;         /* response header, or NULL */
    const char *resp_body;           /* NUL-terminated, in the request pool; "" if none */
    apr_size_t resp_len;
    apr_file_t *resp_file;           /* the spooled body (see spool), else NULL */
    apr_off_t resp_file_len;
    int too_large;                   /* refused for its size (transport_error says so) */
    const char *cache_control;       /* response header, or NULL (the push's JWKS lifetime) */
} gs_http_request_t;

typedef struct {
    apr_interval_time_t timeout;          /* the whole request */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t low_speed_time;   /* abort below 1 byte/s for this long */
    int max_parallel;                     /* most requests one perform() may carry */
    const char *user_agent;
} gs_http_settings_t;

typedef struct {
    /* Performs reqs[0..n-1] concurrently; answers are allocated from p. Returns APR_SUCCESS when
     * every request has an outcome (which may be a transport error), or the tick's status. */
    apr_status_t (*perform)(gs_http_t *http, apr_pool_t *p, gs_http_request_t **reqs, int n);
    void (*destroy)(gs_http_t *http);
} gs_http_impl_t;

struct gs_http_t {
    const gs_http_impl_t *impl;
    void *impl_data;
    gs_http_settings_t settings;
    gs_http_tick_cb *tick;
    void *tick_baton;
};

/* An HTTP client with the given implementation; destroyed with p. */
gs_http_t *gs_http_create(apr_pool_t *p, const gs_http_impl_t *impl, void *impl_data,
                          const gs_http_settings_t *settings);

void gs_http_set_tick(gs_http_t *http, gs_http_tick_cb *tick, void *baton);

/* A request from p with no headers yet. */
gs_http_request_t *gs_http_request(apr_pool_t *p, const char *method, const char *url);
void gs_http_add_header(gs_http_request_t *req, apr_pool_t *p, const char *name,
                        const char *value);

apr_status_t gs_http_perform(gs_http_t *http, apr_pool_t *p, gs_http_request_t **reqs, int n);

/* Sleeps for d, ticking every GS_HTTP_TICK; returns the tick's status if it says stop. */
apr_status_t gs_http_sleep(gs_http_t *http, apr_interval_time_t d);

/* Runs the tick once (APR_SUCCESS when none is set). */
apr_status_t gs_http_run_tick(gs_http_t *http);

/* Percent-encodes s for a query string or a form body. */
const char *gs_http_escape(apr_pool_t *p, const char *s);

/* The libcurl implementation (gs_curl.c). gs_curl_global_init must run once per process before
 * any thread exists. On failure *err says why. */
apr_status_t gs_curl_global_init(void);
apr_status_t gs_curl_create(gs_http_t **phttp, apr_pool_t *p, const gs_http_settings_t *settings,
                            const char **err);

#endif /* GS_HTTP_H */
