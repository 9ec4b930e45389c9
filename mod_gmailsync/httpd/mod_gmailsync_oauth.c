/* mod_gmailsync_oauth.c -- linking a Gmail account from the page (issue 13):
 *   GET  {prefix}/oauth/start       302 to Google's consent (GmailSyncAuthURL) with a state and
 *                                   a PKCE S256 challenge; the state is stored hashed, the
 *                                   verifier sealed (gmailsync.oauth_states)
 *   GET  {prefix}/oauth/callback    consumes the state (same session, unused, unexpired),
 *                                   exchanges the code with the verifier, reads the address
 *                                   from Gmail's profile, stores the account with sealed
 *                                   tokens, 303 to the page with ?oauth=<result>
 *   POST {prefix}/oauth/disconnect  cancels the running sync, deletes the tokens and the
 *                                   cursor (the messages too with {"delete_messages": true}),
 *                                   revokes the token at GmailSyncRevokeURL
 *
 * A callback that fails its state check is a 400 problem (an HTML-accepting browser gets the
 * page with ?oauth=invalid_state instead), and nothing is stored. No code, verifier, state or
 * token is ever logged or put in a response body: the Location of oauth/start is the only
 * place a state appears, and the callback path's query is taken out of what the access log
 * writes as soon as the request is read, whatever answers it (see "the callback's query").
 * What the token endpoint and Gmail's profile answer is checked before it is used: a bearer
 * token (RFC 6750) of sane length, a strict address. A user has at most 10 pending states.
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "gs_accept.h"
#include "gs_connect.h"
#include "gs_db.h"
#include "gs_error.h"
#include "gs_json.h"
#include "gs_log.h"
#include "gs_oauth.h"
#include "gs_sql.h"
#include "gs_tokenbox.h"
#include "gs_watch.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* How long a started authorization may take (Google's consent screen included). */
#define GS_OAUTH_STATE_TTL_S "600"
/* A user's pending authorizations: a start keeps this many of the older ones (the newest), so
 * at most GS_OAUTH_STATES_KEPT + 1 are pending; an older one's callback is an invalid state. */
#define GS_OAUTH_STATES_KEPT  "9"
#define GS_OAUTH_LOCK_MS      "5000"
#define GS_OAUTH_STATEMENT_MS "10000"

/* The callback's outcomes, as the page's ?oauth= value. */
#define RESULT_CONNECTED     "connected"
#define RESULT_DENIED        "access_denied"
#define RESULT_AUTH_FAILED   "authorization_failed"
#define RESULT_BAD_STATE     "invalid_state"
#define RESULT_EXCHANGE      "exchange_failed"

static int connect_configured(const gs_srv_conf_t *conf)
{
    return conf->redirect_uri && conf->client_id && conf->client_secret && *conf->client_secret
           && conf->token_keys;
}

static int not_configured(request_rec *r, const char *user_id)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.connect.failed user=%s "
                  "reason=not_configured", gs_log_value(r->pool, user_id));
    return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "connect-not-configured",
                                 "connecting a Gmail account is not configured on this server ("
                                 GS_DIR_REDIRECT_URI ", " GS_DIR_CLIENT_ID ", "
                                 GS_DIR_CLIENT_SECRET_FILE ", " GS_DIR_TOKEN_KEY_FILE ")");
}

/* A redirect without a body (httpd's own "moved" page would repeat the Location). */
static int send_redirect(request_rec *r, int status, const char *location)
{
    r->status = status;
    apr_table_setn(r->headers_out, "Location", location);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_length(r, 0);
    return OK;
}

static int to_page(request_rec *r, const char *result)
{
    return send_redirect(r, HTTP_SEE_OTHER,
                         apr_pstrcat(r->pool, GS_PAGE_PATH "?oauth=", result, NULL));
}

/* A browser navigation (Accept names text/html above application/json) is sent back to the
 * page with the result; API clients and tests get the problem. */
static int wants_page(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");
    int html = gs_accept_weight(accept, "text", "html", 1);

    return html > 0 && html >= gs_accept_weight(accept, "application", "json", 0);
}

static int connect_failed(request_rec *r, const char *user_id, const char *reason, int status,
                          const char *slug, const char *result, const char *detail)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.connect.failed user=%s reason=%s",
                  gs_log_value(r->pool, user_id), reason);
    if (wants_page(r)) {
        return to_page(r, result);
    }
    return gs_httpd_send_problem(r, status, slug, detail);
}

static int bad_state(request_rec *r, const char *user_id, const char *reason)
{
    return connect_failed(r, user_id, reason, HTTP_BAD_REQUEST, "invalid-state",
                          RESULT_BAD_STATE, "this sign-in link is invalid, already used, "
                          "expired or from another session: connect again");
}

/* ------------------------------------------------------------------ start */

int gs_httpd_handle_oauth_start(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *state, *verifier, *sealed, *args[7];
    gs_connect_auth_t auth;
    gs_id_result_t who;
    gs_db_t *db = NULL;

    (void)arg;
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (!connect_configured(conf)) {
        return not_configured(r, user_id);
    }
    if (gs_connect_random(r->pool, &state) != APR_SUCCESS
        || gs_connect_random(r->pool, &verifier) != APR_SUCCESS
        || gs_tokenbox_seal(conf->token_keys, r->pool,
                            gs_tokenbox_context(r->pool, "code_verifier", user_id), verifier,
                            &sealed) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=oauth.connect.failed user=%s "
                      "reason=no_randomness", gs_log_value(r->pool, user_id));
        return gs_httpd_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "connect-unavailable",
                                     "the connection cannot be started now; retry shortly");
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    args[0] = user_id;
    args[1] = GS_OAUTH_STATES_KEPT;
    args[2] = gs_connect_sha256_hex(r->pool, state);
    args[3] = user_id;
    args[4] = gs_httpd_session_sha256(r, conf);
    args[5] = sealed;
    args[6] = GS_OAUTH_STATE_TTL_S;
    if (gs_db_exec(db, r->pool, GS_SQL_OAUTH_STATE_PUT, NULL, 7, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=oauth.db_error user=%s reason=\"%s\"",
                      gs_log_value(r->pool, user_id), db->last_error ? db->last_error : "unknown");
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    auth.auth_url = conf->auth_url;
    auth.client_id = conf->client_id;
    auth.redirect_uri = conf->redirect_uri;
    auth.state = state;
    auth.challenge = gs_connect_challenge(r->pool, verifier);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.connect.started user=%s",
    gs_log_value(r->pool, user_id));
    return send_redirect(r, HTTP_MOVED_TEMPORARILY, gs_connect_auth_location(r->pool, &auth));
}

/* ------------------------------------------------------------------ callback */

typedef struct {
    const char *state, *code, *error;
} callback_params_t;

/* Reads state, code and error from the query. Each at most once, printable ASCII only; other
 * parameters (scope, authuser, prompt, iss...) are ignored. Returns 0 for a malformed query. */
static int callback_params(request_rec *r, const char *query, callback_params_t *cp)
{
    static const char *const names[] = { "state", "code", "error" };
    const char **slots[3];
    char *args, *pair, *last;

    memset(cp, 0, sizeof *cp);
    slots[0] = &cp->state;
    slots[1] = &cp->code;
    slots[2] = &cp->error;
    if (!query) {
        return 1;
    }
    args = apr_pstrdup(r->pool, query);
    for (pair = apr_strtok(args, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '='), *value = eq ? eq + 1 : (char *)"";
        const char *c;
        size_t i;

        if (eq) {
            *eq = '\0';
        }
        for (i = 0; i < 3 && strcmp(pair, names[i]); i++) {
        }
        if (i == 3) {
            continue;
        }
        if (*slots[i] || ap_unescape_urlencoded(value) != OK
            || strlen(value) > GS_CONNECT_CODE_MAX) {
            return 0;
        }
        for (c = value; *c; c++) {
            if (!apr_isgraph(*c)) {
                return 0;
            }
        }
        *slots[i] = value;
    }
    return 1;
}

/* ------------------------------------------------------------------ the callback's query
 *
 * The callback's query holds an authorization code and a state. It is taken out of everything
 * the access log can write -- the request line (%r), the arguments (%q), the unparsed URI -- as
 * soon as the request is read (post_read_request, before any answer: also when the handler is
 * never reached, under `GmailSync Off`, for a 404 or a 405), and once more just before the
 * access log writes (a request refused while it was being read never reaches post_read_request).
 * The handler finds the query in the request pool's userdata. */

#define CALLBACK_QUERY_KEY "gmailsync:callback-query"
#define CALLBACK_PATH      "/oauth/callback"

/* Is path (a request's path, as sent) this server's callback, once normalized as httpd will
 * (dot segments, double slashes, %-encoded unreserved characters), with or without a final '/'? */
static int is_callback_path(request_rec *r, const char *path)
{
    const gs_srv_conf_t *conf = gs_httpd_srv_conf(r->server);
    char *norm;
    apr_size_t plen, len;

    if (!path || !conf || !conf->prefix) {
        return 0;
    }
    norm = apr_pstrdup(r->pool, path);
    if (!ap_normalize_path(norm, AP_NORMALIZE_NOT_ABOVE_ROOT | AP_NORMALIZE_DECODE_UNRESERVED
                                 | AP_NORMALIZE_MERGE_SLASHES)) {
        norm = apr_pstrdup(r->pool, path);   /* judged as sent */
    }
    len = strlen(norm);
    if (len > 1 && norm[len - 1] == '/') {
        norm[--len] = '\0';
    }
    plen = strlen(conf->prefix);
    return len == plen + sizeof CALLBACK_PATH - 1 && !strncmp(norm, conf->prefix, plen)
           && !strcmp(norm + plen, CALLBACK_PATH);
}

/* The path of the request line ("GET /path?query HTTP/1.1"), from p, or NULL. */
static const char *request_line_path(apr_pool_t *p, const char *line)
{
    const char *target = line ? ap_strchr_c(line, ' ') : NULL, *end;

    if (!target) {
        return NULL;
    }
    while (*target == ' ') {
        target++;
    }
    for (end = target; *end && *end != '?' && *end != ' '; end++) {
    }
    return apr_pstrmemdup(p, target, (apr_size_t)(end - target));
}

/* Takes the query out of r (see above); returns it, or NULL when r had none. */
static const char *redact_query(request_rec *r)
{
    const char *query = r->args, *path = r->parsed_uri.path ? r->parsed_uri.path : r->uri;
    const char *method = r->method ? r->method : "-";

    if (!query && r->the_request && ap_strchr_c(r->the_request, '?')) {
        query = "";   /* only the request line still holds it */
    }
    if (!query) {
        return NULL;
    }
    if (!path) {
        path = request_line_path(r->pool, r->the_request);
    }
    r->args = NULL;
    r->parsed_uri.query = NULL;
    r->unparsed_uri = apr_pstrcat(r->pool, path ? path : "", "?(redacted)", NULL);
    r->the_request = apr_pstrcat(r->pool, method, " ", r->unparsed_uri,
                                 r->protocol ? " " : "", r->protocol ? r->protocol : "", NULL);
    return query;
}

/* Does r carry a query anywhere the access log could write it? */
static int has_query(const request_rec *r)
{
    return r->args || (r->the_request && ap_strchr_c(r->the_request, '?'));
}

static int scrub_callback_query(request_rec *r)
{
    const char *query;

    if (has_query(r) && !r->main && !r->prev && is_callback_path(r, r->parsed_uri.path ? r->parsed_uri.path
                                                                      : r->uri)
        && (query = redact_query(r)) && *query) {
        apr_pool_userdata_setn(query, CALLBACK_QUERY_KEY, NULL, r->pool);
    }
    return DECLINED;
}

static int scrub_before_logging(request_rec *r)
{
    const char *path = r->parsed_uri.path ? r->parsed_uri.path : r->uri;

    if (!has_query(r)) {
        return DECLINED;
    }
    if (!path) {
        path = request_line_path(r->pool, r->the_request);
    }
    if (is_callback_path(r, path)) {
        redact_query(r);
    }
    return DECLINED;
}

void gs_httpd_oauth_register_hooks(void)
{
    ap_hook_post_read_request(scrub_callback_query, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(scrub_before_logging, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

/* The callback's query: taken by the hook, or (a request the hook did not judge) from r now. */
static const char *callback_query(request_rec *r)
{
    void *stashed = NULL;
    const char *query;

    if (apr_pool_userdata_get(&stashed, CALLBACK_QUERY_KEY, r->pool) == APR_SUCCESS && stashed) {
        redact_query(r);
        return stashed;
    }
    query = redact_query(r);
    return query && *query ? query : NULL;
}

/* The plaintext of a stored token: sealed values are opened, a value from before encryption
 * (no "gs1:" prefix) is taken as it is. NULL (with *why) when it cannot be opened. */
static const char *stored_token(request_rec *r, const gs_srv_conf_t *conf, const char *column,
                                const char *user_id, const char *value, const char **why)
{
    const char *plain = NULL;

    *why = NULL;
    if (!value || !*value) {
        return NULL;
    }
    if (strncmp(value, GS_TOKENBOX_PREFIX, strlen(GS_TOKENBOX_PREFIX))) {
        return value;
    }
    if (!conf->token_keys) {
        *why = "no " GS_DIR_TOKEN_KEY_FILE;
        return NULL;
    }
    if (gs_tokenbox_open(conf->token_keys, r->pool, gs_tokenbox_context(r->pool, column, user_id),
                         value, &plain, why) != APR_SUCCESS) {
        return NULL;
    }
    return plain;
}

/* Sends one request; the connection to the database is given back while it waits. */
apr_status_t gs_httpd_perform_one(request_rec *r, gs_http_request_t *req, const char **err)
{
    gs_http_t *http;
    apr_status_t rv;

    gs_httpd_release_db(r);
    if ((rv = gs_connect_http(&http, r->pool, err)) != APR_SUCCESS) {
        return rv;
    }
    *err = NULL;
    return gs_http_perform(http, r->pool, &req, 1);
}

/* Revokes token at GmailSyncRevokeURL; 1 when the endpoint confirmed it. */
static int revoke_token(request_rec *r, const gs_srv_conf_t *conf, const char *user_id,
                        const char *token)
{
    gs_http_request_t *req = gs_connect_revoke_request(r->pool, conf->revoke_url, token);
    const char *err = NULL;

    if (gs_httpd_perform_one(r, req, &err) != APR_SUCCESS || req->status != 200) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=oauth.revoke_failed user=%s "
                      "status=%d reason=\"%s\"", gs_log_value(r->pool, user_id), req->status,
                      err ? err : req->transport_error ? req->transport_error
                                                        : "the endpoint refused");
        return 0;
    }
    return 1;
}

/* The state row of cp->state, consumed. OK with the sealed verifier, or an answer sent. */
static int take_state(request_rec *r, const gs_srv_conf_t *conf, gs_db_t *db,
                      const char *user_id, const callback_params_t *cp, const char **sealed,
                      int *answered)
{
    const char *args[1], *owner, *session, *mine;
    gs_db_rows_t *rows;

    *answered = 1;
    if (!cp->state) {
        return bad_state(r, user_id, "no_state");
    }
    if (!gs_connect_token_shape(cp->state)) {
        return bad_state(r, user_id, "malformed_state");
    }
    args[0] = gs_connect_sha256_hex(r->pool, cp->state);
    if (gs_db_select(db, r->pool, GS_SQL_OAUTH_STATE_TAKE, &rows, 1, args) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=oauth.db_error user=%s reason=\"%s\"",
                      gs_log_value(r->pool, user_id), db->last_error ? db->last_error : "unknown");
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    if (rows->nrows != 1) {
        return bad_state(r, user_id, "unknown_state"); /* never issued, or already used */
    }
    owner = gs_db_cell(rows, 0, 0);
    session = gs_db_cell(rows, 0, 1);
    mine = gs_httpd_session_sha256(r, conf);
    if (!owner || strcmp(owner, user_id)) {
        return bad_state(r, user_id, "other_user");
    }
    if ((session || mine) && (!session || !mine || strcmp(session, mine))) {
        return bad_state(r, user_id, "other_session");
    }
    if (!gs_db_cell(rows, 0, 3) || strcmp(gs_db_cell(rows, 0, 3), "true")) {
        return bad_state(r, user_id, "expired");
    }
    *sealed = gs_db_cell(rows, 0, 2);
    *answered = 0;
    return OK;
}

/* Stores the account: the sealed tokens, the address; another address than before resets
 * the cursor and cancels a sync of the old mailbox. *how is new, same or other. */
static apr_status_t link_account(request_rec *r, const gs_srv_conf_t *conf, const char *user_id,
                                 const char *email, gs_oauth_t *o, const char *refresh,
                                 long expires_in, const char **how)
{
    const char *timeouts[2] = { GS_OAUTH_LOCK_MS, GS_OAUTH_STATEMENT_MS };
    const char *args[6], *user[1] = { user_id };
    gs_db_rows_t *rows;
    gs_db_t *db;
    apr_status_t rv;

    if (!(db = gs_httpd_request_db(r))) {
        return APR_EGENERAL;
    }
    args[0] = user_id;
    args[1] = user_id;
    args[2] = email;
    args[5] = apr_ltoa(r->pool, expires_in);
    if ((rv = gs_tokenbox_seal(conf->token_keys, r->pool,
                               gs_tokenbox_context(r->pool, "refresh_token", user_id), refresh,
                               &args[3])) != APR_SUCCESS
        || (rv = gs_tokenbox_seal(conf->token_keys, r->pool,
                                  gs_tokenbox_context(r->pool, "access_token", user_id),
                                  o->access_token, &args[4])) != APR_SUCCESS) {
        return rv;
    }
    if (APR_SUCCESS != (rv = gs_db_begin(db, r->pool))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_START_TIMEOUTS, &rows, 2,
                                             timeouts))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_START_LOCK, &rows, 1, user))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_OAUTH_LINK, &rows, 6, args))) {
        gs_db_rollback(db);
        return rv;
    }
    *how = rows->nrows == 1 && gs_db_cell(rows, 0, 0) ? gs_db_cell(rows, 0, 0) : "new";
    if (!strcmp(*how, "other")
        && (rv = gs_db_select(db, r->pool, GS_SQL_CANCEL_ACTIVE, &rows, 1, user))
           != APR_SUCCESS) {
        gs_db_rollback(db);
        return rv;
    }
    if ((rv = gs_db_commit(db)) != APR_SUCCESS) {
        return rv;
    }
    if (!strcmp(*how, "other") && rows->nrows == 1) {
        gs_httpd_registry_task_remove(user_id, gs_db_cell(rows, 0, 0));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=task.cancelled user=%s task=%s "
                      "reason=other_account", gs_log_value(r->pool, user_id),
                      gs_db_cell(rows, 0, 0));
    }
    return APR_SUCCESS;
}

int gs_httpd_handle_oauth_callback(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *sealed = NULL, *verifier, *why = NULL, *err = NULL;
    const char *new_refresh = NULL, *email, *how = "new", *query = callback_query(r);
    callback_params_t cp;
    gs_http_request_t *req;
    gs_id_result_t who;
    gs_oauth_t *o;
    gs_db_t *db = NULL;
    long expires_in = 0;
    int answered, status;

    (void)arg;
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (!connect_configured(conf)) {
        return not_configured(r, user_id);
    }
    if (!callback_params(r, query, &cp)) {
        return bad_state(r, user_id, "malformed_query");
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    status = take_state(r, conf, db, user_id, &cp, &sealed, &answered);
    if (answered) {
        return status;
    }
    if (cp.error) {
        int denied = !strcmp(cp.error, "access_denied");

        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.connect.failed user=%s "
                      "reason=%s", gs_log_value(r->pool, user_id),
                      denied ? "access_denied" : gs_error_clean(r->pool, cp.error, 64));
        return to_page(r, denied ? RESULT_DENIED : RESULT_AUTH_FAILED);
    }
    if (!cp.code || !*cp.code) {
        return connect_failed(r, user_id, "no_code", HTTP_BAD_REQUEST, "bad-request",
                              RESULT_EXCHANGE, "the callback carries neither a code nor an error");
    }
    if (!(verifier = stored_token(r, conf, "code_verifier", user_id, sealed, &why))) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=oauth.verifier_unreadable user=%s "
                      "reason=\"%s\"", gs_log_value(r->pool, user_id), why ? why : "empty");
        return connect_failed(r, user_id, "verifier_unreadable", HTTP_BAD_REQUEST,
                              "exchange-failed", RESULT_EXCHANGE,
                              "the sign-in could not be completed: connect again");
    }

    /* the code exchange (RFC 6749 4.1.3 with RFC 7636 4.5) */
    req = gs_connect_exchange_request(r->pool, conf->token_url, conf->client_id,
                                      conf->client_secret, conf->redirect_uri, cp.code, verifier);
    if (gs_httpd_perform_one(r, req, &err) != APR_SUCCESS) {
        return connect_failed(r, user_id, "http_client", HTTP_SERVICE_UNAVAILABLE,
                              "token-endpoint-unavailable", RESULT_EXCHANGE,
                              "the token endpoint cannot be reached now: connect again shortly");
    }
    o = gs_oauth_make(r->pool, conf->token_url, conf->client_id, conf->client_secret, NULL);
    switch (gs_oauth_parse(o, r->pool, req, apr_time_now(), &expires_in, &new_refresh, &why)) {
    case GS_OAUTH_OK:
        break;
    case GS_OAUTH_REVOKED:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.exchange_refused user=%s "
                      "reason=\"%s\"", gs_log_value(r->pool, user_id), why);
        return connect_failed(r, user_id, "invalid_grant", HTTP_BAD_REQUEST, "exchange-failed",
                              RESULT_EXCHANGE, "Google refused the authorization code (expired, "
                              "already used, or a wrong PKCE verifier): connect again");
    case GS_OAUTH_CLIENT:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=oauth.exchange_refused user=%s "
                      "reason=\"%s\" (check " GS_DIR_CLIENT_ID ", " GS_DIR_CLIENT_SECRET_FILE
                      " and " GS_DIR_REDIRECT_URI ")", gs_log_value(r->pool, user_id), why);
        return connect_failed(r, user_id, "client_rejected", HTTP_SERVICE_UNAVAILABLE,
                              "token-endpoint-unavailable", RESULT_EXCHANGE,
                              "the token endpoint refused this server's OAuth client");
    case GS_OAUTH_INVALID:
        /* nothing of the answer is used: the refresh token it may carry is not trusted either */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=oauth.exchange_refused user=%s "
                      "reason=\"%s\" (check " GS_DIR_TOKEN_URL ")", gs_log_value(r->pool, user_id),
                      why);
        return connect_failed(r, user_id, "invalid_token", HTTP_BAD_REQUEST, "exchange-failed",
                              RESULT_EXCHANGE, "the token endpoint answered with an access token "
                              "that is not a valid bearer token: nothing was stored; connect "
                              "again");
    default:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.exchange_unavailable user=%s "
                      "reason=\"%s\"", gs_log_value(r->pool, user_id), why);
        return connect_failed(r, user_id, "token_endpoint", HTTP_SERVICE_UNAVAILABLE,
                              "token-endpoint-unavailable", RESULT_EXCHANGE,
                              "the token endpoint cannot be reached now: connect again shortly");
    }
    if (!new_refresh) {
        revoke_token(r, conf, user_id, o->access_token);
        return connect_failed(r, user_id, "no_refresh_token", HTTP_BAD_REQUEST,
                              "exchange-failed", RESULT_EXCHANGE,
                              "Google granted no offline access (no refresh token): connect "
                              "again");
    }

    /* whose mailbox it is */
    req = gs_connect_profile_request(r->pool, conf->api_base, o->access_token);
    if (gs_httpd_perform_one(r, req, &err) != APR_SUCCESS
        || !(email = gs_connect_profile_email(r->pool, req, &why))) {
        if (!err && req->status == 200) {
            /* Gmail answered, with nothing this server may store (an address with a control
             * or bidi character, say): not a reason to retry */
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=oauth.profile_refused "
                          "user=%s reason=\"%s\"", gs_log_value(r->pool, user_id), why);
            revoke_token(r, conf, user_id, new_refresh);
            return connect_failed(r, user_id, "profile_refused", HTTP_BAD_REQUEST,
                                  "gmail-address-refused", RESULT_EXCHANGE,
                                  apr_pstrcat(r->pool, "the Gmail account's address was refused (",
                                              why, "): nothing was stored", NULL));
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.profile_failed user=%s "
                      "reason=\"%s\"", gs_log_value(r->pool, user_id), err ? err : why);
        revoke_token(r, conf, user_id, new_refresh);
        return connect_failed(r, user_id, "profile", HTTP_SERVICE_UNAVAILABLE,
                              "gmail-unavailable", RESULT_EXCHANGE,
                              "the Gmail address could not be read: connect again shortly");
    }
    if (link_account(r, conf, user_id, email, o, new_refresh, expires_in, &how) != APR_SUCCESS) {
        gs_db_t *failed = gs_httpd_request_db(r);

        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=oauth.db_error user=%s reason=\"%s\"",
                      gs_log_value(r->pool, user_id),
                      failed && failed->last_error ? failed->last_error : "unknown");
        revoke_token(r, conf, user_id, new_refresh);
        return connect_failed(r, user_id, "database", HTTP_SERVICE_UNAVAILABLE,
                              "database-unavailable", RESULT_EXCHANGE,
                              "the account could not be stored now: connect again shortly");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.connected user=%s account=%s",
                  gs_log_value(r->pool, user_id), how);
    return to_page(r, RESULT_CONNECTED);
}

/* ------------------------------------------------------------------ disconnect */

int gs_httpd_handle_oauth_disconnect(request_rec *r, const gs_srv_conf_t *conf,
                                     const char *arg)
{
    const char *timeouts[2] = { GS_OAUTH_LOCK_MS, GS_OAUTH_STATEMENT_MS };
    const char *user_id = NULL, *user[1], *refresh, *access, *why = NULL;
    const char *cancelled = NULL;
    gs_db_rows_t *rows, *account = NULL, *watch = NULL;
    json_object *doc, *body;
    gs_id_result_t who;
    gs_db_t *db = NULL;
    int delete_messages = 0, answered, status, removed = 0, revoked = 0;
    apr_status_t rv;

    (void)arg;
    if (!gs_httpd_origin_allowed(r, conf)) {
        gs_httpd_leave_body_unread(r);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.disconnect.rejected "
                      "reason=origin");
        return gs_httpd_send_problem(r, HTTP_FORBIDDEN, "cross-site-request",
                                     "the Origin of this request is not allowed");
    }
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        gs_httpd_leave_body_unread(r);
        return gs_httpd_identify_failed(r, who);
    }
    status = gs_httpd_json_body(r, &doc, &answered);
    if (!answered) {
        status = gs_httpd_json_bool(r, doc, "delete_messages", &delete_messages, &answered);
    }
    if (answered) {
        return status;
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    /* under the start lock: a start either ran before (its task is cancelled here) or sees
     * no account after (409) */
    user[0] = user_id;
    if (APR_SUCCESS != (rv = gs_db_begin(db, r->pool))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_START_TIMEOUTS, &rows, 2,
                                             timeouts))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_START_LOCK, &rows, 1, user))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_CANCEL_ACTIVE, &rows, 1, user))
        || (conf->push_topic
            && APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_WATCH_LIVE, &watch, 1, user)))
        || APR_SUCCESS != (rv = gs_db_select(db, r->pool, GS_SQL_OAUTH_UNLINK, &account, 1,
                                             user))
        || (delete_messages
            && APR_SUCCESS != (rv = gs_db_exec(db, r->pool, GS_SQL_MESSAGES_FORGET, &removed, 1,
                                               user)))
        || APR_SUCCESS != (rv = gs_db_commit(db))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=oauth.db_error user=%s reason=\"%s\"",
                      gs_log_value(r->pool, user_id), db->last_error ? db->last_error : "unknown");
        gs_db_rollback(db);
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    if (rows->nrows == 1) {
        cancelled = gs_db_cell(rows, 0, 0);
        /* the worker sees its lease-guarded writes fail and stops; the board forgets it now */
        gs_httpd_registry_task_remove(user_id, cancelled);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=task.cancelled user=%s task=%s "
                      "reason=disconnect", gs_log_value(r->pool, user_id), cancelled);
    }
    /* revoking the refresh token ends its access tokens too; without one, the access token */
    if (account->nrows == 1) {
        refresh = stored_token(r, conf, "refresh_token", user_id, gs_db_cell(account, 0, 0),
                               &why);
        access = refresh ? NULL : stored_token(r, conf, "access_token", user_id,
                                               gs_db_cell(account, 0, 1), &why);
        /* the watch is stopped while the refresh token still works (issue 26) */
        if (refresh && watch && watch->nrows == 1 && !strcmp(gs_db_cell(watch, 0, 0), "true")) {
            gs_httpd_push_stop_watch(r, conf, user_id, refresh);
        }
        if (refresh || access) {
            revoked = revoke_token(r, conf, user_id, refresh ? refresh : access);
        }
        else if (why) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "event=oauth.revoke_failed user=%s "
                          "reason=\"%s\"", gs_log_value(r->pool, user_id), why);
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=oauth.disconnected user=%s account=%s "
                  "task_cancelled=%s revoked=%s messages_deleted=%d",
                  gs_log_value(r->pool, user_id),
                  account->nrows ? "removed" : "none", cancelled ? cancelled : "none",
                  revoked ? "true" : "false", removed);
    body = gs_json_object(r->pool);
    gs_json_set_bool(body, "connected", 0);
    gs_json_set_bool(body, "account_removed", account->nrows == 1);
    gs_json_set_string(body, "cancelled_task_id", cancelled);
    gs_json_set_bool(body, "revoked", revoked);
    gs_json_set_int(body, "messages_deleted", removed);
    return gs_httpd_send_json(r, HTTP_OK, body);
}
