/* mod_gmailsync_devlogin.c -- GET {prefix}/dev-login?nonce=NONCE, for the local stack only.
 *
 * With `GmailSyncDevLogin On` (default Off) this signs a browser in and redirects it to the sync
 * page, so that scripts/demo can print one URL that opens the page as the demo user. The URL
 * never carries a session: `scripts/gmailsync-dev login-url` stores the SHA-256 of a random
 * nonce bound to an existing session (gmailsync.dev_login_nonces, sql/009), valid two minutes;
 * this handler consumes it atomically (DELETE ... RETURNING: a link works once) and sets the
 * cookie of a new session of the same user and expiry. On top of that:
 *   - the directive is refused at startup unless every address httpd listens on is a loopback
 *     address (127.0.0.0/8 or ::1), so a server reachable from the network cannot enable it;
 *   - each request must come from a loopback client (the connection and, behind mod_remoteip,
 *     the user agent), name a loopback host (Host: 127.x, [::1] or localhost: a TCP proxy that
 *     relays another host's visitors passes their Host on; DNS rebinding too), and carry no
 *     proxy header at all (Forwarded, Via, X-Forwarded-*, X-Real-IP, ...): a proxy on the same
 *     host must not turn every visitor into a loopback client;
 *   - a browser's cross-site navigation is refused (Sec-Fetch-Site other than none or
 *     same-origin): a page on another site cannot sign the browser in as someone else (login
 *     CSRF), even with a link it obtained;
 *   - HEAD is refused without using the nonce up (a prefetch must not spend it);
 *   - the query is taken out of the request line before anything is answered, so the nonce
 *     reaches no access log (the dev stack's format logs no query at all either).
 * Refusals are 404 (Off), 403 (not a direct loopback client, or cross-site), 400 (no or a
 * malformed nonce), 401 (unknown, used or expired nonce). conf/gmailsync.conf sets it Off; only
 * scripts/gmailsync-dev's generated configuration turns it on.
 */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

#include <ap_listen.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include <arpa/inet.h>

#include "gs_connect.h"
#include "gs_log.h"
#include "gs_sha256.h"
#include "gs_sql.h"
#include "gs_start.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

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

/* Headers a forwarding proxy adds; any one of them refuses the request. */
static const char *const proxy_headers[] = {
    "Forwarded", "Via", "X-Real-IP", "X-Client-IP", "Client-IP", "True-Client-IP",
    "X-Cluster-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-ProxyUser-Ip",
    "X-Originating-IP", "X-Original-Forwarded-For", "X-Forwarded", NULL
};

/* The name of the first proxy header of r (X-Forwarded-* included), or NULL. */
static const char *proxy_header(request_rec *r)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i, j;

    for (i = 0; i < arr->nelts; i++) {
        if (!e[i].key) {
            continue;
        }
        if (!strncasecmp(e[i].key, "X-Forwarded-", 12)) {
            return e[i].key;
        }
        for (j = 0; proxy_headers[j]; j++) {
            if (!strcasecmp(e[i].key, proxy_headers[j])) {
                return e[i].key;
            }
        }
    }
    return NULL;
}

/* Is the request's host (Host header, or the absolute URI's) a loopback literal or localhost?
 * Strictly: "127.attacker.example" is a name, not 127.0.0.0/8. */
static int host_is_loopback(request_rec *r)
{
    unsigned char addr[16];
    char *host;
    size_t len;

    if (!r->hostname || !*r->hostname) {
        return 0;
    }
    host = apr_pstrdup(r->pool, r->hostname);
    len = strlen(host);
    if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
        host[len - 1] = '\0';
        host++;
    }
    len = strlen(host);
    if (len && host[len - 1] == '.') {
        host[len - 1] = '\0';   /* "localhost." */
    }
    if (!strcasecmp(host, "localhost")) {
        return 1;
    }
    if (inet_pton(AF_INET, host, addr) == 1) {
        return addr[0] == 127;
    }
    if (inet_pton(AF_INET6, host, addr) == 1) {
        static const unsigned char one[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return !memcmp(addr, one, 16) || (!memcmp(addr, mapped, 12) && addr[12] == 127);
    }
    return 0;
}

/* Takes the query out of what the access log and later hooks see: the request line (%r), the
 * arguments (%q) and the unparsed URI. Returns the query (NULL: none). */
static const char *take_query(request_rec *r)
{
    const char *query = r->args;

    if (query) {
        r->args = NULL;
        r->parsed_uri.query = NULL;
        r->unparsed_uri = apr_pstrcat(r->pool, r->uri, "?(redacted)", NULL);
        r->the_request = apr_pstrcat(r->pool, r->method, " ", r->unparsed_uri,
                                     r->protocol ? " " : "", r->protocol ? r->protocol : "",
                                     NULL);
    }
    return query;
}

/* The `nonce` argument of query, decoded; NULL if absent, repeated or not a value
 * scripts/gmailsync-dev could have made (43 base64url characters). */
static const char *nonce_arg(request_rec *r, const char *query)
{
    char *args, *pair, *state = NULL;
    const char *nonce = NULL;

    if (!query) {
        return NULL;
    }
    args = apr_pstrdup(r->pool, query);
    for (pair = apr_strtok(args, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        char *value;

        if (strncmp(pair, "nonce=", 6)) {
            continue;
        }
        if (nonce) {
            return NULL;
        }
        value = pair + 6;
        if (ap_unescape_urlencoded(value) != OK || !gs_connect_token_shape(value)) {
            return NULL;
        }
        nonce = value;
    }
    return nonce;
}

static int refuse(request_rec *r, const char *slug, const char *reason, const char *detail)
{
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=dev_login.refused client=%s "
                  "reason=\"%s\"", r->useragent_ip, reason);
    return gs_httpd_send_problem(r, HTTP_FORBIDDEN, slug, detail);
}

int gs_httpd_handle_dev_login(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *query, *nonce, *site, *header, *session, *user_id, *expires_text;
    const char *args[2];
    gs_db_rows_t *rows;
    apr_time_t expires, now;
    json_object *body;
    gs_db_t *db;

    (void)arg;
    query = take_query(r);   /* first: whatever the answer, the access log never sees it */
    if (conf->dev_login != 1) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such endpoint");
    }
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    if (!ip_is_loopback(r->useragent_ip) || !ip_is_loopback(r->connection->client_ip)) {
        return refuse(r, "dev-login-loopback-only", "not a loopback client",
                      "the development login answers loopback clients only");
    }
    if ((header = proxy_header(r))) {
        return refuse(r, "dev-login-loopback-only",
                      apr_psprintf(r->pool, "proxy header %.64s", header),
                      "the development login answers direct loopback clients only, never "
                      "through a proxy");
    }
    if (!host_is_loopback(r)) {
        return refuse(r, "dev-login-loopback-only", "not a loopback host name",
                      "the development login answers requests for a loopback host only "
                      "(127.0.0.1, [::1] or localhost)");
    }
    site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    if (site && strcasecmp(site, "none") && strcasecmp(site, "same-origin")) {
        return refuse(r, "dev-login-cross-site", "cross-site navigation",
                      "the development login link must be opened directly, not from another "
                      "site");
    }
    if (conf->user_from != GS_USER_FROM_SESSION) {
        return gs_httpd_send_problem(r, HTTP_CONFLICT, "dev-login-no-session",
                                     "the development login needs GmailSyncUserFrom session");
    }
    if (r->header_only) {
        apr_table_setn(r->headers_out, "Allow", "GET");
        return gs_httpd_send_problem(r, HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                                     "GET only: a HEAD request does not use up a login link");
    }
    if (!(nonce = nonce_arg(r, query))) {
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-request",
                                     "expected ?nonce=<a link of scripts/gmailsync-dev "
                                     "login-url>");
    }
    if (gs_connect_random(r->pool, &session) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=dev_login.failed "
                      "reason=\"no randomness for a session\"");
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                     "no session could be made");
    }
    if (!(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    args[0] = gs_connect_sha256_hex(r->pool, nonce);
    args[1] = gs_connect_sha256_hex(r->pool, session);
    if (gs_db_select(db, r->pool, GS_SQL_DEV_LOGIN_TAKE, &rows, 2, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=dev_login.failed reason=\"%s\"",
                      db->last_error ? db->last_error : "database error");
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    if (rows->nrows != 1 || !(user_id = gs_db_cell(rows, 0, 0))
        || !(expires_text = gs_db_cell(rows, 0, 1))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=dev_login.unknown_nonce");
        apr_table_setn(r->headers_out, "WWW-Authenticate", "Cookie realm=\"gmailsync\"");
        return gs_httpd_send_problem(r, HTTP_UNAUTHORIZED, "dev-login-link-invalid",
                                     "unknown, used or expired login link (each works once, "
                                     "for two minutes): scripts/gmailsync-dev login-url makes "
                                     "a new one");
    }
    expires = (apr_time_t)apr_atoi64(expires_text);
    now = apr_time_now();
    apr_table_addn(r->headers_out, "Set-Cookie",
                   apr_psprintf(r->pool, "%s=%s; Path=/; Max-Age=%" APR_TIME_T_FMT
                                "; HttpOnly; SameSite=Lax", conf->session_cookie, session,
                                expires > now ? apr_time_sec(expires - now) : 0));
    apr_table_setn(r->headers_out, "Location", GS_PAGE_PATH);
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=dev_login user=%s",
                  gs_log_value(r->pool, user_id));
    body = gs_json_object(r->pool);
    gs_json_set_string(body, "location", GS_PAGE_PATH);
    return gs_httpd_send_json(r, HTTP_SEE_OTHER, body);
}
