/* mod_gmailsync_handler.c -- routes requests under GmailSyncPrefix and answers them.
 *
 * Every answer is JSON; every error is application/problem+json (RFC 9457), never an HTML error
 * page, and no input produces a 5xx other than the documented 503.
 */
#include <apr_optional.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "gs_db.h"
#include "gs_json.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

typedef int gs_route_fn(request_rec *r, const gs_srv_conf_t *conf, const char *arg);

typedef struct {
    const char *path;        /* below the prefix; a trailing '/' matches one path segment */
    const char *suffix;      /* with a trailing '/': what must follow that segment ("/raw"),
                              * or NULL for nothing; a suffix ending in '/' is followed by one
                              * more segment, and the argument is then everything after path */
    const char *allow;       /* the Allow header for 405 */
    apr_int64_t methods;     /* AP_METHOD_BIT masks */
    int needs_enabled;       /* answered with 503 under `GmailSync Off` */
    int reads_body;          /* the route reads the request body itself */
    gs_route_fn *fn;
} gs_route_t;

int gs_httpd_send_json(request_rec *r, int status, json_object *body)
{
    const char *text = gs_json_to_string(r->pool, body);

    r->status = status;
    ap_set_content_type(r, status >= 400 ? "application/problem+json" : "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_length(r, (apr_off_t)strlen(text));
    if (!r->header_only) {
        ap_rputs(text, r);
    }
    return OK;
}

json_object *gs_httpd_problem(request_rec *r, int status, const char *slug, const char *detail)
{
    json_object *body = gs_json_object(r->pool);
    const char *title = ap_get_status_line(status);

    gs_json_set_string(body, "type", apr_pstrcat(r->pool, "urn:gmailsync:problem:", slug, NULL));
    gs_json_set_string(body, "title", title ? title + 4 : "Error");
    gs_json_set_int(body, "status", status);
    if (detail) {
        gs_json_set_string(body, "detail", detail);
    }
    return body;
}

int gs_httpd_send_problem(request_rec *r, int status, const char *slug, const char *detail)
{
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        apr_table_setn(r->headers_out, "Retry-After", GS_RETRY_AFTER_SECONDS);
    }
    return gs_httpd_send_json(r, status, gs_httpd_problem(r, status, slug, detail));
}

/* mod_dbd's functions are optional functions, so that a missing mod_dbd is a clear startup
 * error of ours instead of an unresolved symbol at LoadModule. ap_dbd_open/ap_dbd_close rather
 * than ap_dbd_acquire: a connection acquired for a request is held until the request ends,
 * which a Server-Sent Events stream must not do. */
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close;

int gs_httpd_dbd_bind(void)
{
    dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    return dbd_open && dbd_close;
}

/* The request's connection, kept in its request_config. */
typedef struct {
    request_rec *r;
    ap_dbd_t *dbd;
    gs_db_t *db;             /* &wrapper while a connection is held */
    gs_db_t wrapper;         /* reused: a stream takes and gives back connections many times */
} request_db_t;

static apr_status_t request_db_release(void *data)
{
    request_db_t *h = data;

    if (h->dbd) {
        dbd_close(h->r->server, h->dbd);
        h->dbd = NULL;
        h->db = NULL;
    }
    return APR_SUCCESS;
}

gs_db_t *gs_httpd_request_db(request_rec *r)
{
    request_db_t *h = ap_get_module_config(r->request_config, &gmailsync_module);

    if (h && h->db) {
        return h->db;
    }
    if (!h) {
        h = apr_pcalloc(r->pool, sizeof *h);
        h->r = r;
        ap_set_module_config(r->request_config, &gmailsync_module, h);
    }
    if (!dbd_open || !(h->dbd = dbd_open(r->pool, r->server))) {
        return NULL;
    }
    if (gs_db_wrap(&h->wrapper, r->pool, h->dbd->driver, h->dbd->handle, h->dbd->pool)
        != APR_SUCCESS) {
        request_db_release(h);
        return NULL;
    }
    h->db = &h->wrapper;
    {
        /* a request must never wait long on a lock a worker holds (a worker frozen inside its
         * transaction), nor run a statement without bound: its thread and its pooled connection
         * would go with it. The start path sets tighter limits for its own transaction */
        static const gs_db_session_t session = { "mod_gmailsync", GS_HTTPD_LOCK_TIMEOUT,
                                                 GS_HTTPD_STATEMENT_TIMEOUT, 0 };
        gs_db_set_session(h->db, &session);
    }
    /* registered after the connection is taken: a transaction's rollback cleanup, registered
     * later still, runs before the connection goes back */
    apr_pool_cleanup_register(r->pool, h, request_db_release, apr_pool_cleanup_null);
    return h->db;
}

void gs_httpd_release_db(request_rec *r)
{
    request_db_t *h = ap_get_module_config(r->request_config, &gmailsync_module);

    if (h && h->db) {
        gs_db_rollback(h->db);
        apr_pool_cleanup_run(r->pool, h, request_db_release);
    }
}

static const gs_route_t routes[] = {
    { "/smart", NULL, "POST", AP_METHOD_BIT << M_POST, 1, 1, gs_httpd_handle_start },
    { "/progress/", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_progress },
    { "/status", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_status },
    { "/cancel/", NULL, "POST", AP_METHOD_BIT << M_POST, 0, 0, gs_httpd_handle_cancel },
    { "/health", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_health },
    { "/metrics", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_metrics },
    /* HEAD is answered 405 by the handler itself: it must not use a login link up */
    { "/dev-login", NULL, "GET", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_dev_login },
    { "/oauth/start", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 1, 0, gs_httpd_handle_oauth_start },
    /* the callback exchanges a code: a HEAD must not (405 with Allow: GET) */
    { "/oauth/callback", NULL, "GET", AP_METHOD_BIT << M_GET, 1, 0,
      gs_httpd_handle_oauth_callback },
    { "/oauth/disconnect", NULL, "POST", AP_METHOD_BIT << M_POST, 0, 1,
      gs_httpd_handle_oauth_disconnect },
    { "/messages/", "/raw", "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0,
      gs_httpd_handle_message_raw },
    { "/messages/", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0,
      gs_httpd_handle_message_view },
    { "/messages/", "/attachments/", "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0,
      gs_httpd_handle_attachment },
    { "/messages", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_search },
    { "/labels", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_labels },
    { "/changes", NULL, "GET, HEAD", AP_METHOD_BIT << M_GET, 0, 0, gs_httpd_handle_changes },
    { NULL, NULL, NULL, 0, 0, 0, NULL }
};

/* The route for r->uri (with its argument), or NULL. *under_prefix tells a foreign URI (a
 * SetHandler that does not match GmailSyncPrefix) from an unknown endpoint. */
static const gs_route_t *find_route(request_rec *r, const gs_srv_conf_t *conf, const char **arg,
                                    int *under_prefix)
{
    size_t plen = strlen(conf->prefix);
    const char *sub;
    const gs_route_t *route;

    *under_prefix = !strncmp(r->uri, conf->prefix, plen) && (!r->uri[plen] || r->uri[plen] == '/');
    if (!*under_prefix) {
        return NULL;
    }
    sub = r->uri + plen;
    for (route = routes; route->path; route++) {
        size_t len = strlen(route->path);

        if (route->path[len - 1] == '/') {
            const char *slash;
            size_t slen;

            if (strncmp(sub, route->path, len) || !sub[len] || sub[len] == '/') {
                continue;
            }
            slash = ap_strchr_c(sub + len, '/');
            if (!route->suffix) {
                if (slash) {
                    continue;
                }
                *arg = sub + len;
                return route;
            }
            if (!slash) {
                continue;
            }
            slen = strlen(route->suffix);
            if (route->suffix[slen - 1] == '/') {
                /* one more segment, not empty */
                if (strncmp(slash, route->suffix, slen) || !slash[slen]
                    || ap_strchr_c(slash + slen, '/')) {
                    continue;
                }
                *arg = sub + len;
                return route;
            }
            if (strcmp(slash, route->suffix)) {
                continue;
            }
            *arg = apr_pstrmemdup(r->pool, sub + len, (apr_size_t)(slash - sub - len));
            return route;
        }
        if (!strcmp(sub, route->path)) {
            *arg = NULL;
            return route;
        }
    }
    return NULL;
}

/* httpd gives HEAD the method number of GET: a route whose Allow does not name HEAD refuses it. */
static int method_allowed(const request_rec *r, const gs_route_t *route)
{
    return (route->methods & (AP_METHOD_BIT << r->method_number))
           && (!r->header_only || ap_strstr_c(route->allow, "HEAD"));
}

/* Answers a request whose body could not be read (gs_httpd_discard_body's status). */
static int body_unreadable(request_rec *r, int rc)
{
    if (rc == AP_FILTER_ERROR) {
        return rc; /* HTTP_IN has answered already (as a problem: mod_gmailsync_errors.c) */
    }
    r->connection->keepalive = AP_CONN_CLOSE;
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return gs_httpd_send_problem(r, rc, "body-too-large", "the request body is too large");
    }
    if (rc == HTTP_REQUEST_TIME_OUT) {
        return gs_httpd_send_problem(r, rc, "request-timeout", "the request body did not arrive");
    }
    return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-body",
                                 "the request body could not be read (cut short or malformed)");
}

int gs_httpd_handler(request_rec *r)
{
    const gs_srv_conf_t *conf = gs_httpd_srv_conf(r->server);
    const gs_route_t *route;
    const char *arg = NULL;
    int under_prefix, rc;

    route = find_route(r, conf, &arg, &under_prefix);
    /* A body nobody reads is read and dropped before answering: left unread, httpd reads it
     * after our answer and, if it is malformed or cut short, appends an error page of its own
     * ("Additionally, a 404 Not Found error was encountered..."). The routes that read their
     * body (POST /smart, /oauth/disconnect) handle it themselves. */
    if (!route || !route->reads_body || !method_allowed(r, route)
        || (route->needs_enabled && !conf->enabled)) {
        if ((rc = gs_httpd_discard_body(r)) != OK) {
            return body_unreadable(r, rc);
        }
    }
    if (!under_prefix) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found",
                            apr_pstrcat(r->pool, "this handler serves ", conf->prefix, "/...",
                                        NULL));
    }
    if (!route) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such endpoint");
    }
    if (!method_allowed(r, route)) {
        apr_table_setn(r->headers_out, "Allow", route->allow);
        return gs_httpd_send_problem(r, HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                            apr_pstrcat(r->pool, "allowed: ", route->allow, NULL));
    }
    if (route->needs_enabled && !conf->enabled) {
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "disabled",
                            "Gmail sync is switched off on this server (GmailSync Off)");
    }
    return route->fn(r, conf, arg);
}
