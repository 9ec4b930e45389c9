/* mod_gmailsync_devlogin.c -- GET {prefix}/dev-login?token=SESSION, for the local stack only.
 *
 * With `GmailSyncDevLogin On` (default Off) this sets the session cookie of an existing, unexpired
 * session and redirects to the sync page, so that scripts/demo can print one URL that opens the
 * page signed in as the demo user. It signs nobody in who has no session already (the token *is*
 * the session), but a URL that carries a session is still a secret handed around in the clear:
 *   - the directive is refused at startup unless every address httpd listens on is a loopback
 *     address (127.0.0.0/8 or ::1), so a server reachable from the network cannot enable it;
 *   - each request must come from a loopback client (the connection and, behind mod_remoteip,
 *     the user agent) and carry no proxy header (Forwarded, X-Forwarded-For, Via): a reverse
 *     proxy on the same host must not turn every visitor into a loopback client;
 *   - anything else is the same 404 as an unknown endpoint (Off) or a 403 (not loopback).
 * conf/gmailsync.conf sets it Off; only scripts/gmailsync-dev's generated configuration turns it
 * on.
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <ap_listen.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_log.h"
#include "gs_sha256.h"
#include "gs_start.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_DEV_TOKEN_MAX 512

/* 127.0.0.0/8, ::1 and IPv4-mapped 127.x; a NULL or wildcard address is not loopback. */
static int ip_is_loopback(const char *ip)
{
    return ip && strcasecmp(ip, "localhost") && gs_is_loopback_host(ip);
}

int gs_httpd_dev_login_check(server_rec *s, apr_pool_t *ptemp)
{
    const server_rec *vs, *on = NULL;
    const ap_listen_rec *lr;

    (void)ptemp;
    for (vs = s; vs && !on; vs = vs->next) {
        if (gs_httpd_srv_conf(vs)->dev_login == 1) {
            on = vs;
        }
    }
    if (!on) {
        return OK;
    }
    for (lr = ap_listeners; lr; lr = lr->next) {
        char *ip = NULL;

        if (!lr->bind_addr || apr_sockaddr_ip_get(&ip, lr->bind_addr) != APR_SUCCESS
            || !ip_is_loopback(ip)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s On is for a local development server only: httpd "
                         "listens on %s:%u, which is not a loopback address (Listen 127.0.0.1:PORT "
                         "only), in %s:%d", GS_DIR_DEV_LOGIN, ip ? ip : "(unknown)",
                         lr->bind_addr ? (unsigned)lr->bind_addr->port : 0U,
                         on->defn_name ? on->defn_name : "(main server)", on->defn_line_number);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* The `token` query argument, decoded; NULL if absent, repeated or malformed. */
static const char *token_arg(request_rec *r)
{
    char *args, *pair, *state = NULL;
    const char *token = NULL;

    if (!r->args) {
        return NULL;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        char *value;
        const char *c;

        if (strncmp(pair, "token=", 6)) {
            continue;
        }
        if (token) {
            return NULL;
        }
        value = pair + 6;
        if (ap_unescape_urlencoded(value) != OK) {
            return NULL;
        }
        if (!*value || strlen(value) > GS_DEV_TOKEN_MAX) {
            return NULL;
        }
        for (c = value; *c; c++) {
            if (!apr_isgraph(*c) || *c == ';' || *c == ',' || *c == '"' || *c == '\\') {
                return NULL;
            }
        }
        token = value;
    }
    return token;
}

int gs_httpd_handle_dev_login(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    char hex[65];
    const char *token, *user_id = NULL;
    apr_time_t expires = 0, now;
    json_object *body;
    gs_db_t *db;
    apr_status_t rv;

    (void)arg;
    if (conf->dev_login != 1) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such endpoint");
    }
    if (!ip_is_loopback(r->useragent_ip) || !ip_is_loopback(r->connection->client_ip)
        || apr_table_get(r->headers_in, "Forwarded")
        || apr_table_get(r->headers_in, "X-Forwarded-For")
        || apr_table_get(r->headers_in, "Via")) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=dev_login.refused client=%s "
                      "reason=\"not a direct loopback client\"", r->useragent_ip);
        return gs_httpd_send_problem(r, HTTP_FORBIDDEN, "dev-login-loopback-only",
                                     "the development login answers loopback clients only");
    }
    if (conf->user_from != GS_USER_FROM_SESSION) {
        return gs_httpd_send_problem(r, HTTP_CONFLICT, "dev-login-no-session",
                                     "the development login needs GmailSyncUserFrom session");
    }
    if (!(token = token_arg(r))) {
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-request",
                                     "expected ?token=<an existing session token>");
    }
    gs_sha256(token, strlen(token), digest);
    gs_sha256_hex(digest, hex);
    if (!(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    rv = gs_session_user(db, r->pool, hex, &user_id, &expires);
    if (rv == APR_NOTFOUND) {
        return gs_httpd_identify_failed(r, GS_ID_UNAUTHENTICATED);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=session.lookup_failed reason=\"%s\"",
                      db->last_error);
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    now = apr_time_now();
    apr_table_addn(r->headers_out, "Set-Cookie",
                   apr_psprintf(r->pool, "%s=%s; Path=/; Max-Age=%" APR_TIME_T_FMT
                                "; HttpOnly; SameSite=Lax", conf->session_cookie, token,
                                expires > now ? apr_time_sec(expires - now) : 0));
    apr_table_setn(r->headers_out, "Location", GS_PAGE_PATH);
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=dev_login user=%s",
    gs_log_value(r->pool, user_id));
    body = gs_json_object(r->pool);
    gs_json_set_string(body, "location", GS_PAGE_PATH);
    return gs_httpd_send_json(r, HTTP_SEE_OTHER, body);
}
