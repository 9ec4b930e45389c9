/* mod_gmailsync.h -- declarations shared by the httpd glue files.
 *
 * Directive names live here as macros so that the command table, error messages and
 * documentation cannot drift apart through a typo.
 */
#ifndef MOD_GMAILSYNC_H
#define MOD_GMAILSYNC_H

#include <httpd.h>
#include <http_config.h>

#include "gs_config.h"

#define GS_HANDLER_NAME                "gmailsync"

#define GS_DIR_ENABLE                  "GmailSync"
#define GS_DIR_PREFIX                  "GmailSyncPrefix"
#define GS_DIR_MODE                    "GmailSyncMode"
#define GS_DIR_WORKER                  "GmailSyncWorker"
#define GS_DIR_MAX_WORKERS             "GmailSyncMaxWorkers"
#define GS_DIR_HEARTBEAT               "GmailSyncHeartbeat"
#define GS_DIR_STUCK_AFTER             "GmailSyncStuckAfter"
#define GS_DIR_PROGRESS_INTERVAL       "GmailSyncProgressInterval"
#define GS_DIR_METRICS_WINDOW          "GmailSyncMetricsWindow"
#define GS_DIR_API_BASE                "GmailSyncApiBase"
#define GS_DIR_TOKEN_URL               "GmailSyncTokenURL"
#define GS_DIR_CLIENT_ID               "GmailSyncClientId"
#define GS_DIR_CLIENT_SECRET_FILE      "GmailSyncClientSecretFile"
#define GS_DIR_USER_FROM               "GmailSyncUserFrom"
#define GS_DIR_SESSION_COOKIE          "GmailSyncSessionCookie"
#define GS_DIR_ALLOW_ORIGIN            "GmailSyncAllowOrigin"
#define GS_DIR_BATCH_SIZE              "GmailSyncBatchSize"
#define GS_DIR_QUOTA_UNITS             "GmailSyncQuotaUnits"
#define GS_DIR_ALERT_SUCCESS_RATE      "GmailSyncAlertSuccessRate"
#define GS_DIR_ALERT_MEAN_DURATION     "GmailSyncAlertMeanDuration"
#define GS_DIR_ALERT_STUCK_TASKS       "GmailSyncAlertStuckTasks"
#define GS_DIR_ALERT_ERROR_RATE        "GmailSyncAlertErrorRate"

#define GS_UNSET (-1)

/* Per-server settings. Fields start unset (GS_UNSET / NULL) so that virtual hosts inherit what
 * they do not set; gs_httpd_conf_finalize() fills in defaults after the configuration is read. */
typedef struct {
    int enabled;
    const char *prefix;
    int mode;                              /* gs_sync_mode_t */
    const char *worker_path;
    long max_workers;
    apr_interval_time_t heartbeat;
    apr_interval_time_t stuck_after;
    apr_interval_time_t progress_interval;
    apr_interval_time_t metrics_window;
    const char *api_base;
    const char *token_url;
    const char *client_id;
    const char *client_secret_file;
    int user_from;                         /* gs_user_from_t */
    const char *session_cookie;
    apr_array_header_t *allow_origins;     /* const char * normalized origins */
    long batch_size;
    long quota_units;
    double alert_success_rate;
    apr_interval_time_t alert_mean_duration;
    long alert_stuck_tasks;
    double alert_error_rate;
} gs_srv_conf_t;

extern module AP_MODULE_DECLARE_DATA gmailsync_module;

extern const command_rec gs_httpd_cmds[];
void *gs_httpd_create_srv_conf(apr_pool_t *p, server_rec *s);
void *gs_httpd_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);
/* Applies defaults to every unset field of every server; call once per (re)configuration. */
void gs_httpd_conf_finalize(server_rec *s);

static inline gs_srv_conf_t *gs_httpd_srv_conf(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &gmailsync_module);
}

/* The request handler (mod_gmailsync_handler.c). */
int gs_httpd_handler(request_rec *r);

#endif /* MOD_GMAILSYNC_H */
