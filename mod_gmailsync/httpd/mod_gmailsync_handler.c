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
    const char *allow;       /* the Allow header for 405 */
    apr_int64_t methods;     /* AP_METHOD_BIT masks */
    int needs_enabled;       /* answered with 503 under `GmailSync Off` */
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

int gs_httpd_send_problem(request_rec *r, int status, const char *slug, const char *detail)
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
        apr_table_setn(r->headers_out, "Retry-After", GS_RETRY_AFTER_SECONDS);
    }
    return gs_httpd_send_json(r, status, body);
}

/* mod_dbd's functions are optional functions, so that a missing mod_dbd is a clear startup
 * error of ours instead of an unresolved symbol at LoadModule. */
static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire;

int gs_httpd_dbd_bind(void)
{
    dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    return dbd_acquire != NULL;
}

gs_db_t *gs_httpd_request_db(request_rec *r)
{
    ap_dbd_t *dbd = dbd_acquire ? dbd_acquire(r) : NULL;

    return dbd ? gs_db_wrap(r->pool, dbd->driver, dbd->handle, dbd->prepared) : NULL;
}

/* GET /health: liveness of the module and its database. Operators restrict it with Require. */
static int handle_health(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_db_t *db;
    gs_db_rows_t *rows;
    json_object *body, *dbj;
    long schema_version;

    (void)arg;
    if (!(db = gs_httpd_request_db(r))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=health.db_unavailable");
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                            "the database cannot be reached");
    }
    if (gs_db_select(db, r->pool, GS_SQL_SCHEMA_VERSION, &rows, 0, NULL) != APR_SUCCESS
        || rows->nrows != 1 || !gs_db_cell(rows, 0, 0)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=health.db_error reason=\"%s\"",
                      db->last_error ? db->last_error : "no row");
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                            "the database did not answer the health query "
                            "(is the schema installed? gmailsync-migrate up)");
    }
    schema_version = strtol(gs_db_cell(rows, 0, 0), NULL, 10);

    body = gs_json_object(r->pool);
    dbj = json_object_new_object();
    gs_json_set_string(body, "status", schema_version >= GS_SQL_MIN_SCHEMA ? "ok" : "degraded");
    gs_json_set_string(body, "version", GS_VERSION);
    gs_json_set_bool(body, "enabled", conf->enabled);
    gs_json_set_string(body, "mode", gs_sync_mode_name((gs_sync_mode_t)conf->mode));
    gs_json_set_bool(dbj, "ok", 1);
    gs_json_set_int(dbj, "schema_version", schema_version);
    gs_json_set_string(dbj, "now", gs_db_cell(rows, 0, 1));
    gs_json_set_object(body, "database", dbj);
    return gs_httpd_send_json(r, HTTP_OK, body);
}

static const gs_route_t routes[] = {
    { "/smart", "POST", AP_METHOD_BIT << M_POST, 1, gs_httpd_handle_start },
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
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found",
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
            return gs_httpd_send_problem(r, HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                                apr_pstrcat(r->pool, "allowed: ", route->allow, NULL));
        }
        if (route->needs_enabled && !conf->enabled) {
            return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "disabled",
                                "Gmail sync is switched off on this server (GmailSync Off)");
        }
        return route->fn(r, conf, arg);
    }
    return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such endpoint");
}
