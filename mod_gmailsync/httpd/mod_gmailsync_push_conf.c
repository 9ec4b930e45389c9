/* mod_gmailsync_push_conf.c -- the push notification directives (issue 26), their configtest
 * relations, and each httpd child's JWKS cache with its fetch (libcurl, from the child).
 *
 * Where the keys are fetched: in the httpd child, by gs_push_cache (gs_push_token.h): once per
 * HTTP cache lifetime of the JWKS (Google's: hours) and at most once per GS_PUSH_REFETCH_EVERY
 * on an unknown kid, by one thread at a time while the others verify with the keys they have;
 * never per request. A child's first push waits for the first fetch (at most
 * GS_PUSH_FETCH_TIMEOUT).
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "gs_config.h"
#include "gs_http.h"
#include "gs_push_token.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_PUSH_FETCH_TIMEOUT  apr_time_from_sec(5)
#define GS_PUSH_REFETCH_EVERY  apr_time_from_sec(10)

static const char *bad(cmd_parms *cmd, const char *arg, const char *why)
{
    return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s", cmd->cmd->name, arg, why);
}

/* [a-z][a-z0-9-]{4,28}[a-z0-9]: a Google Cloud project id. */
static int project_id_ok(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n < 6 || n > 30 || !apr_islower(s[0]) || s[n - 1] == '-') {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!apr_islower(s[i]) && !apr_isdigit(s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* A Pub/Sub topic id: 3-255 of letters, digits and - _ . ~ + %, starting with a letter, not
 * with "goog". */
static int topic_id_ok(const char *s)
{
    apr_size_t n = strlen(s), i;

    if (n < 3 || n > 255 || !apr_isalpha(s[0]) || !strncasecmp(s, "goog", 4)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!apr_isalnum(s[i]) && !strchr("-_.~+%", s[i])) {
            return 0;
        }
    }
    return 1;
}

const char *gs_httpd_set_push_topic(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *p = arg, *slash;

    (void)dconf;
    if (strncmp(p, "projects/", 9) || !(slash = strchr(p + 9, '/'))
        || !project_id_ok(p + 9, (apr_size_t)(slash - p - 9)) || strncmp(slash, "/topics/", 8)
        || !topic_id_ok(slash + 8)) {
        return bad(cmd, arg, "expected projects/PROJECT/topics/TOPIC (a Google Cloud project id "
                   "and a Pub/Sub topic id)");
    }
    gs_httpd_srv_conf(cmd->server)->push_topic = arg;
    return NULL;
}

/* Visible ASCII, 1 to max characters. */
static int visible(const char *s, apr_size_t max)
{
    const char *c;

    if (!*s || strlen(s) > max) {
        return 0;
    }
    for (c = s; *c; c++) {
        if (!apr_isgraph(*c)) {
            return 0;
        }
    }
    return 1;
}

const char *gs_httpd_set_push_audience(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    if (!visible(arg, 512)) {
        return bad(cmd, arg, "must be 1 to 512 visible ASCII characters (usually the push URL)");
    }
    gs_httpd_srv_conf(cmd->server)->push_audience = arg;
    return NULL;
}

const char *gs_httpd_set_push_service_account(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *at = strchr(arg, '@');

    (void)dconf;
    if (!visible(arg, 254) || !at || at == arg || !at[1] || strchr(at + 1, '@')
        || !strchr(at + 1, '.')) {
        return bad(cmd, arg, "expected the service account's e-mail address "
                   "(NAME@PROJECT.iam.gserviceaccount.com)");
    }
    gs_httpd_srv_conf(cmd->server)->push_service_account = arg;
    return NULL;
}

const char *gs_httpd_set_push_jwks(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *why, *url;

    (void)dconf;
    if (gs_parse_http_url(cmd->pool, arg, &url, &why) != APR_SUCCESS) {
        return bad(cmd, arg, why);
    }
    gs_httpd_srv_conf(cmd->server)->push_jwks = url;
    return NULL;
}

int gs_httpd_conf_check_push(server_rec *s, apr_pool_t *ptemp)
{
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        const gs_srv_conf_t *conf = gs_httpd_srv_conf(vs);
        const char *where = gs_httpd_server_where(ptemp, vs);

        if (conf->push_topic && !conf->push_service_account) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s needs %s (the e-mail its push tokens carry) in %s",
                         GS_DIR_PUSH_TOPIC, GS_DIR_PUSH_SERVICE_ACCOUNT, where);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (!conf->push_topic && (conf->push_service_account || conf->push_audience)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s and %s have no effect without %s in %s",
                         GS_DIR_PUSH_SERVICE_ACCOUNT, GS_DIR_PUSH_AUDIENCE, GS_DIR_PUSH_TOPIC,
                         where);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

typedef struct {
    const char *url;
    server_rec *s;
} jwks_source_t;

static apr_status_t fetch_jwks(void *baton, apr_pool_t *p, const char **body, apr_size_t *len,
                               const char **cache_control, const char **err)
{
    const jwks_source_t *src = baton;
    gs_http_settings_t hs;
    gs_http_request_t *req;
    gs_http_t *http;
    apr_status_t rv;

    memset(&hs, 0, sizeof hs);
    hs.timeout = GS_PUSH_FETCH_TIMEOUT;
    hs.connect_timeout = GS_PUSH_FETCH_TIMEOUT;
    hs.low_speed_time = GS_PUSH_FETCH_TIMEOUT;
    hs.max_parallel = 1;
    hs.user_agent = "mod_gmailsync/" GS_VERSION;
    if ((rv = gs_curl_create(&http, p, &hs, err)) != APR_SUCCESS) {
        return rv;
    }
    req = gs_http_request(p, "GET", src->url);
    gs_http_add_header(req, p, "Accept", "application/json");
    if ((rv = gs_http_perform(http, p, &req, 1)) != APR_SUCCESS) {
        *err = "the JWKS request was interrupted";
        return rv;
    }
    if (req->status != 200) {
        *err = req->status ? apr_psprintf(p, "the JWKS answered HTTP %d", req->status)
                           : apr_pstrcat(p, "the JWKS could not be fetched: ",
                                         req->transport_error ? req->transport_error : "?", NULL);
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, src->s, "event=push.jwks_failed url=%s "
                     "reason=\"%s\"", src->url, *err);
        return APR_EGENERAL;
    }
    *body = req->resp_body;
    *len = req->resp_len;
    *cache_control = req->cache_control;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, src->s, "event=push.jwks_fetched url=%s bytes=%"
                 APR_SIZE_T_FMT " cache_control=\"%s\"", src->url, req->resp_len,
                 req->cache_control ? req->cache_control : "");
    return APR_SUCCESS;
}

void gs_httpd_push_child_init(apr_pool_t *p, server_rec *s)
{
    server_rec *vs;

    gs_httpd_push_log_init(p);
    for (vs = s; vs; vs = vs->next) {
        gs_srv_conf_t *conf = gs_httpd_srv_conf(vs);
        jwks_source_t *src;
        apr_status_t rv;

        if (!conf->push_topic || conf->push_cache) {
            continue;   /* off, or a virtual host sharing the main server's conf */
        }
        src = apr_pcalloc(p, sizeof *src);
        src->url = conf->push_jwks;
        src->s = vs;
        if ((rv = gs_push_cache_make(p, fetch_jwks, src, GS_PUSH_REFETCH_EVERY,
                                     &conf->push_cache)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, vs, "event=push.cache_failed: pushes "
                         "will be answered 503");
            conf->push_cache = NULL;
        }
    }
}
