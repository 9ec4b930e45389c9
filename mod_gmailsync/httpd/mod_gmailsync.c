/* mod_gmailsync.c -- the module record and its hooks.
 *
 * Keeps to wiring: configuration checks, logging injection into the core, statement registration
 * with mod_dbd, and the handler. The work itself lives in the core library (mod_gmailsync/core).
 */
#include <apr_hash.h>
#include <apr_optional.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "gs_http.h"
#include "gs_log.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

static void log_to_httpd(void *baton, const char *file, int line, gs_log_level_t level,
                         apr_status_t rv, const char *msg)
{
    server_rec *s = baton;

    ap_log_error(file, line, APLOG_MODULE_INDEX, (int)level, rv, s, "%s", msg);
}

static int log_is_level_httpd(void *baton, gs_log_level_t level)
{
    server_rec *s = baton;

    return APLOG_IS_LEVEL(s, (int)level);
}

/* GmailSyncTokenKeyFile: required wherever GmailSync is On (the default), in the main server,
 * since the daemon hands the main server's keys to every worker; a virtual host may repeat the
 * same file but not name another one. */
static int gs_check_token_keys(server_rec *s, apr_pool_t *ptemp)
{
    const gs_srv_conf_t *main_conf = gs_httpd_srv_conf(s);
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        const gs_srv_conf_t *conf = gs_httpd_srv_conf(vs);
        const char *where = "";

        if (vs != s) {
            where = apr_psprintf(ptemp, " (the virtual host at %s:%d has it On)",
                                 vs->defn_name ? vs->defn_name : "?", vs->defn_line_number);
        }
        if (conf->enabled && !main_conf->token_keys) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s is required in the main server while %s is On%s: "
                         "it encrypts the stored OAuth tokens. Create one with "
                         "`(umask 077; gmailsync-rotate-key --generate > /etc/apache2/"
                         "gmailsync-token-keys)` and add %s /etc/apache2/gmailsync-token-keys",
                         GS_DIR_TOKEN_KEY_FILE, GS_DIR_ENABLE, where, GS_DIR_TOKEN_KEY_FILE);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (conf->token_key_file && main_conf->token_key_file
            && strcmp(conf->token_key_file, main_conf->token_key_file)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s %s of the virtual host at %s:%d differs from the "
                         "main server's %s: the workers use the main server's keys, set it "
                         "there only", GS_DIR_TOKEN_KEY_FILE, conf->token_key_file,
                         vs->defn_name ? vs->defn_name : "?", vs->defn_line_number,
                         main_conf->token_key_file);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* Checks what single directives cannot: relations between settings. Runs before `Syntax OK` and
 * at every (re)start, after virtual hosts have inherited from the main server. */
static int gs_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    int rc;

    (void)pconf;
    (void)plog;
    gs_httpd_conf_finalize(s);
    if ((rc = gs_check_token_keys(s, ptemp)) != OK) {
        return rc;
    }
    for (vs = s; vs; vs = vs->next) {
        gs_srv_conf_t *conf = gs_httpd_srv_conf(vs);

        if (conf->stuck_after < 2 * conf->heartbeat) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s (%s) must be at least twice %s (%s) in %s:%d",
                         GS_DIR_STUCK_AFTER, gs_format_duration(ptemp, conf->stuck_after),
                         GS_DIR_HEARTBEAT, gs_format_duration(ptemp, conf->heartbeat),
                         vs->defn_name ? vs->defn_name : "(main server)", vs->defn_line_number);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (gs_httpd_worker_check(s, ptemp) != OK || gs_httpd_conf_check_connect(s, ptemp) != OK
        || gs_httpd_conf_check_push(s, ptemp) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return gs_httpd_dev_login_check(s, ptemp);
}

/* Checks that mod_dbd is there. Statements are not registered with mod_dbd (ap_dbd_prepare): the
 * core prepares them itself on each pooled connection, on first use, and again after the
 * connection was reset by a database restart, which mod_dbd's own set would not survive. */
static int gs_require_dbd(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    (void)s;
    if (!gs_httpd_dbd_bind()) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                     "mod_gmailsync needs mod_dbd: add LoadModule dbd_module before it, "
                     "with DBDriver pgsql and DBDParams");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static int gs_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return gs_httpd_shm_pre_config(pconf);
}

static int curl_ready;

static int gs_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    int rc;

    (void)plog;
    (void)ptemp;
    gs_log_set(log_to_httpd, log_is_level_httpd, s);
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK; /* the configuration dry run: start nothing */
    }
    /* httpd's children need the client secret for the code exchange, the daemon for its
     * workers: read it now, while still root, into pconf (every child inherits it) */
    gs_httpd_conf_read_secrets(pconf, s);
    if (!curl_ready) {
        /* before any thread exists: the children inherit it */
        if (gs_curl_global_init() != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "event=curl.init_failed");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        curl_ready = 1;
    }
    if ((rc = gs_httpd_shm_post_config(pconf, s)) != OK
        || (rc = gs_httpd_daemon_post_config(pconf, s)) != OK) {
        return rc;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "event=module.configured version=%s mode=%s", GS_VERSION,
                 gs_sync_mode_name((gs_sync_mode_t)gs_httpd_srv_conf(s)->mode));
    return OK;
}

static void gs_child_init(apr_pool_t *p, server_rec *s)
{
    gs_httpd_shm_child_init(p, s);
    gs_httpd_push_child_init(p, s);
}

static int gs_handler_hook(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, GS_HANDLER_NAME)) {
        return DECLINED;
    }
    return gs_httpd_handler(r);
}

static void gs_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(gs_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(gs_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(gs_require_dbd, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(gs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(gs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(gs_handler_hook, NULL, NULL, APR_HOOK_MIDDLE);
    gs_httpd_errors_register_hooks();
    gs_httpd_oauth_register_hooks();
}

AP_DECLARE_MODULE(gmailsync) = {
    STANDARD20_MODULE_STUFF,
    NULL,                        /* per-directory config: all settings are per server */
    NULL,
    gs_httpd_create_srv_conf,
    gs_httpd_merge_srv_conf,
    gs_httpd_cmds,
    gs_register_hooks,
    AP_MODULE_FLAG_NONE
};
