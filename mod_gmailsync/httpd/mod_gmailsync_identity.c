/* mod_gmailsync_identity.c -- who is calling, and from where.
 *
 * The session cookie is hashed (SHA-256) before it is looked up, so neither the database nor any
 * log ever holds a usable token. A malformed, unknown or expired session is simply unauthenticated.
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_cookies.h>

#include "gs_connect.h"
#include "gs_db.h"
#include "gs_gmail_parse.h"
#include "gs_origin.h"
#include "gs_sha256.h"
#include "gs_start.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* The longest user id (sessions.user_id and the other tables' CHECKs). */
#define GS_REMOTE_USER_MAX 256

/* REMOTE_USER as a user id: 1..256 bytes of valid UTF-8 without control characters (the
 * database refuses invalid UTF-8: such a name is no user, a 401, not a database failure).
 * Spaces are allowed; log lines quote them (gs_log_value). */
static int remote_user_usable(apr_pool_t *p, const char *user)
{
    const unsigned char *c;
    apr_size_t len;

    if (!user || !*user || (len = strlen(user)) > GS_REMOTE_USER_MAX) {
        return 0;
    }
    for (c = (const unsigned char *)user; *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            return 0;
        }
    }
    return gs_utf8_clean(p, user, len) == user;
}

gs_id_result_t gs_httpd_identify(request_rec *r, const gs_srv_conf_t *conf, gs_db_t **db,
                                 const char **user_id)
{
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    char hex[65], cached[GS_REGISTRY_USER_MAX + 1];
    const char *token = NULL;
    apr_time_t expires = 0;
    apr_status_t rv;

    *db = NULL;
    if (conf->user_from == GS_USER_FROM_REMOTE_USER) {
        if (!remote_user_usable(r->pool, r->user)) {
            return GS_ID_UNAUTHENTICATED;
        }
        *user_id = r->user;
        return GS_ID_OK;
    }
    if (ap_cookie_read(r, conf->session_cookie, &token, 0) != APR_SUCCESS || !token
        || !gs_session_token_plausible(token)) {
        return GS_ID_UNAUTHENTICATED;
    }
    gs_sha256(token, strlen(token), digest);
    if (conf->session_cache_ttl > 0 && gs_httpd_session_cache_get(digest, cached)) {
        *user_id = apr_pstrdup(r->pool, cached);
        return GS_ID_OK;
    }
    gs_sha256_hex(digest, hex);
    if (!(*db = gs_httpd_request_db(r))) {
        return GS_ID_DB_UNAVAILABLE;
    }
    rv = gs_session_user(*db, r->pool, hex, user_id, &expires);
    if (rv == APR_NOTFOUND) {
        return GS_ID_UNAUTHENTICATED;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=session.lookup_failed reason=\"%s\"",
                      (*db)->last_error);
        return GS_ID_DB_UNAVAILABLE;
    }
    if (conf->session_cache_ttl > 0) {
        /* never beyond the session's own end */
        gs_httpd_session_cache_put(digest, *user_id,
                                   apr_time_now() + conf->session_cache_ttl < expires
                                       ? apr_time_now() + conf->session_cache_ttl : expires);
    }
    return GS_ID_OK;
}

const char *gs_httpd_session_sha256(request_rec *r, const gs_srv_conf_t *conf)
{
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    const char *token = NULL;
    char *hex;

    if (conf->user_from == GS_USER_FROM_REMOTE_USER
        || ap_cookie_read(r, conf->session_cookie, &token, 0) != APR_SUCCESS || !token
        || !gs_session_token_plausible(token)) {
        return NULL;
    }
    gs_sha256(token, strlen(token), digest);
    hex = apr_palloc(r->pool, 65);
    gs_sha256_hex(digest, hex);
    return hex;
}

int gs_httpd_identify_failed(request_rec *r, gs_id_result_t why)
{
    if (why == GS_ID_DB_UNAVAILABLE) {
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database-unavailable",
                                     "the database cannot be reached");
    }
    apr_table_setn(r->headers_out, "WWW-Authenticate", "Cookie realm=\"gmailsync\"");
    return gs_httpd_send_problem(r, HTTP_UNAUTHORIZED, "unauthenticated",
                                 "a valid session is required");
}

/* One of this server's own names: ServerName, a ServerAlias, or a ServerAlias wildcard. */
static int is_server_name(const server_rec *s, const char *host)
{
    int i;

    if (s->server_hostname && gs_host_equals(s->server_hostname, host)) {
        return 1;
    }
    for (i = 0; s->names && i < s->names->nelts; i++) {
        if (gs_host_equals(APR_ARRAY_IDX(s->names, i, const char *), host)) {
            return 1;
        }
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; i++) {
        if (gs_host_matches_pattern(APR_ARRAY_IDX(s->wild_names, i, const char *), host)) {
            return 1;
        }
    }
    return 0;
}

/* "Self" comes from the configuration, never from the Host header, which the client chooses:
 * with `Host: evil.example` and `Origin: http://evil.example` a Host-derived "self" would call
 * a foreign page same-origin. The port is ServerName's, else the port the request came in on. */
int gs_httpd_origin_allowed(request_rec *r, const gs_srv_conf_t *conf)
{
    const char *header = apr_table_get(r->headers_in, "Origin"), *normalized;
    apr_port_t port;
    gs_origin_t origin;
    int i;

    if (!header) {
        return 1; /* not a browser cross-site request (curl, server-to-server) */
    }
    if (gs_origin_parse(r->pool, header, &origin, NULL) != APR_SUCCESS) {
        return 0; /* "null" (sandboxed frames, some redirects), lists, garbage */
    }
    if (conf->allow_origins) {
        normalized = gs_origin_format(r->pool, &origin);
        for (i = 0; i < conf->allow_origins->nelts; i++) {
            if (!strcmp(normalized, APR_ARRAY_IDX(conf->allow_origins, i, const char *))) {
                return 1;
            }
        }
    }
    port = r->server->port ? r->server->port : r->connection->local_addr->port;
    return !strcmp(origin.scheme, ap_http_scheme(r)) && origin.port == port
           && is_server_name(r->server, origin.host);
}
