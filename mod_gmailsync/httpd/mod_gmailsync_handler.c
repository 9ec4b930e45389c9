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

#include "gs_json.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define RETRY_AFTER_SECONDS "5"

typedef int gs_route_fn(request_rec *r, const gs_srv_conf_t *conf, const char *arg);

typedef struct {
    const char *path;        /* below the prefix; a trailing '/' matches one path segment */
    const char *allow;       /* the Allow header for 405 */
    apr_int64_t methods;     /* AP_METHOD_BIT masks */
    int needs_enabled;       /* answered with 503 under `GmailSync Off` */
    gs_route_fn *fn;
} gs_route_t;

static int send_json(request_rec *r, int status, json_object *body)
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

/* Answers an error as problem+json. `slug` names the problem type; `detail` may be NULL. */
static int send_problem(request_rec *r, int status, const char *slug, const char *detail)
{
    json_object *body = gs_json_object(r->pool);
    const char *title = ap_get_status_line(status);

    gs_json_set_string(body, "type", apr_pstrcat(r->pool, "urn:gmailsync:problem:", slug, NULL));
    gs_json_set_string(body, "title", title ? title + 4 : "Error");
    gs_json_set_int(body, "status", status);
    if (detail) {
        gs_json_set_string(body, "detail", detail);
    }
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        apr_table_setn(r->headers_out, "Retry-After", RETRY_AFTER_SECONDS);
    }
    return send_json(r, status, body);
}

/* GET /health: liveness of the module and its database. Operators restrict it with Require. */
static int handle_health(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    ap_dbd_t *dbd;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_dbd_prepared_t *stmt;
    const char *schema, *db_now;
    json_object *body, *db;
    long schema_version;
    int rc;

    (void)arg;
    if (!(dbd = ap_dbd_acquire(r))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=health.db_unavailable");
        return send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                            "the database cannot be reached");
    }
    stmt = apr_hash_get(dbd->prepared, GS_SQL_SCHEMA_VERSION, APR_HASH_KEY_STRING);
    if (!stmt) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "event=health.db_error reason=\"statement %s not prepared (schema missing?)\"",
                      GS_SQL_SCHEMA_VERSION);
        return send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                            "the gmailsync schema is missing: run gmailsync-migrate up");
    }
    rc = apr_dbd_pselect(dbd->driver, r->pool, dbd->handle, &res, stmt, 0, 0, NULL);
    if (rc != 0 || apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=health.db_error reason=\"%s\"",
                      apr_dbd_error(dbd->driver, dbd->handle, rc));
        return send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                            "the database did not answer the health query");
    }
    /* copy: draining the result below frees the row */
    schema = apr_pstrdup(r->pool, apr_dbd_get_entry(dbd->driver, row, 0));
    db_now = apr_pstrdup(r->pool, apr_dbd_get_entry(dbd->driver, row, 1));
    /* drain the single-row result so the connection is clean for the next user */
    while (apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0) {
    }
    schema_version = schema ? strtol(schema, NULL, 10) : 0;

    body = gs_json_object(r->pool);
    db = json_object_new_object();
    gs_json_set_string(body, "status", schema_version >= GS_SQL_MIN_SCHEMA ? "ok" : "degraded");
    gs_json_set_string(body, "version", GS_VERSION);
    gs_json_set_bool(body, "enabled", conf->enabled);
    gs_json_set_string(body, "mode", gs_sync_mode_name((gs_sync_mode_t)conf->mode));
    gs_json_set_bool(db, "ok", 1);
    gs_json_set_int(db, "schema_version", schema_version);
    gs_json_set_string(db, "now", db_now);
    gs_json_set_object(body, "database", db);
    return send_json(r, HTTP_OK, body);
}

static const gs_route_t routes[] = {
    { "/health", "GET, HEAD", AP_METHOD_BIT << M_GET, 0, handle_health },
    { NULL, NULL, 0, 0, NULL }
};

int gs_httpd_handler(request_rec *r)
{
    const gs_srv_conf_t *conf = gs_httpd_srv_conf(r->server);
    size_t plen = strlen(conf->prefix);
    const char *sub;
    const gs_route_t *route;

    if (strncmp(r->uri, conf->prefix, plen) || (r->uri[plen] && r->uri[plen] != '/')) {
        return send_problem(r, HTTP_NOT_FOUND, "not-found",
                            apr_pstrcat(r->pool, "this handler serves ", conf->prefix, "/...",
                                        NULL));
    }
    sub = r->uri + plen;
    for (route = routes; route->path; route++) {
        size_t len = strlen(route->path);
        const char *arg = NULL;

        if (route->path[len - 1] == '/') {
            if (strncmp(sub, route->path, len) || !sub[len] || ap_strchr_c(sub + len, '/')) {
                continue;
            }
            arg = sub + len;
        }
        else if (strcmp(sub, route->path)) {
            continue;
        }
        if (!(route->methods & (AP_METHOD_BIT << r->method_number))) {
            apr_table_setn(r->headers_out, "Allow", route->allow);
            return send_problem(r, HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                                apr_pstrcat(r->pool, "allowed: ", route->allow, NULL));
        }
        if (route->needs_enabled && !conf->enabled) {
            return send_problem(r, HTTP_SERVICE_UNAVAILABLE, "disabled",
                                "Gmail sync is switched off on this server (GmailSync Off)");
        }
        return route->fn(r, conf, arg);
    }
    return send_problem(r, HTTP_NOT_FOUND, "not-found", "no such endpoint");
}
