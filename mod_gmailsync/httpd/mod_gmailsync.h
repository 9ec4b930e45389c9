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
#include "gs_db.h"
#include "gs_http.h"
#include "gs_json.h"
#include "gs_registry.h"
#include "gs_tokenbox.h"

#define GS_HANDLER_NAME                "gmailsync"

/* Longest OAuth client secret file (Google's secrets are some 35 characters). */
#define GS_CLIENT_SECRET_MAX           4096
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
#define GS_DIR_AUTH_URL                "GmailSyncAuthURL"
#define GS_DIR_REDIRECT_URI            "GmailSyncRedirectURI"
#define GS_DIR_REVOKE_URL              "GmailSyncRevokeURL"
#define GS_DIR_CLIENT_ID               "GmailSyncClientId"
#define GS_DIR_CLIENT_SECRET_FILE      "GmailSyncClientSecretFile"
#define GS_DIR_TOKEN_KEY_FILE          "GmailSyncTokenKeyFile"
#define GS_DIR_USER_FROM               "GmailSyncUserFrom"
#define GS_DIR_SESSION_COOKIE          "GmailSyncSessionCookie"
#define GS_DIR_ALLOW_ORIGIN            "GmailSyncAllowOrigin"
#define GS_DIR_BATCH_SIZE              "GmailSyncBatchSize"
#define GS_DIR_QUOTA_UNITS             "GmailSyncQuotaUnits"
#define GS_DIR_RETRY_BUDGET            "GmailSyncRetryBudget"
#define GS_DIR_ALERT_SUCCESS_RATE      "GmailSyncAlertSuccessRate"
#define GS_DIR_ALERT_MEAN_DURATION     "GmailSyncAlertMeanDuration"
#define GS_DIR_ALERT_STUCK_TASKS       "GmailSyncAlertStuckTasks"
#define GS_DIR_ALERT_ERROR_RATE        "GmailSyncAlertErrorRate"
#define GS_DIR_REGISTRY_SIZE           "GmailSyncRegistrySize"
#define GS_DIR_SESSION_CACHE_TTL       "GmailSyncSessionCacheTTL"
#define GS_DIR_MAX_STREAMS             "GmailSyncMaxStreams"
#define GS_DIR_MAX_STREAMS_PER_USER    "GmailSyncMaxStreamsPerUser"
#define GS_DIR_DEV_LOGIN               "GmailSyncDevLogin"
#define GS_DIR_QUEUED_ALERT_AFTER      "GmailSyncQueuedAlertAfter"
#define GS_DIR_AUTOSYNC                "GmailSyncAutoSync"
#define GS_DIR_AUTOSYNC_MAX_STARTS     "GmailSyncAutoSyncMaxStarts"
#define GS_DIR_AUTOSYNC_BACKOFF_MAX    "GmailSyncAutoSyncBackoffMax"
#define GS_DIR_STALE_ALERT_AFTER       "GmailSyncStaleAlertAfter"
#define GS_DIR_HEALTH_TOKEN_FILE       "GmailSyncHealthTokenFile"
#define GS_DIR_AUTOSYNC_LATE_ALERT_AFTER "GmailSyncAutoSyncLateAlertAfter"
#define GS_DIR_CONTENT                 "GmailSyncContent"
#define GS_DIR_ATTACHMENTS             "GmailSyncAttachments"
#define GS_DIR_DELETIONS               "GmailSyncDeletions"
#define GS_DIR_CHANGE_RETENTION        "GmailSyncChangeRetention"
#define GS_DIR_ATTACHMENT_MAX_SIZE     "GmailSyncAttachmentMaxSize"
#define GS_DIR_STORE_RAW               "GmailSyncStoreRaw"
#define GS_DIR_PUSH_TOPIC              "GmailSyncPushTopic"
#define GS_DIR_PUSH_AUDIENCE           "GmailSyncPushAudience"
#define GS_DIR_PUSH_SERVICE_ACCOUNT    "GmailSyncPushServiceAccount"
#define GS_DIR_PUSH_JWKS               "GmailSyncPushJWKS"
#define GS_DEFAULT_PUSH_JWKS           "https://www.googleapis.com/oauth2/v3/certs"
#define GS_DIR_SEARCH_CONFIG           "GmailSyncSearchConfig"

/* Where conf/gmailsync.conf serves the sync page (mod_gmailsync/www). */
#define GS_PAGE_PATH                   "/gmailsync/"

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
    const char *client_secret;             /* its content, read at post_config (as root) */
    const char *auth_url;                  /* GmailSyncAuthURL */
    const char *redirect_uri;              /* GmailSyncRedirectURI, or NULL: no connect flow */
    const char *revoke_url;                /* GmailSyncRevokeURL */
    const char *token_key_file;            /* GmailSyncTokenKeyFile, as resolved */
    const gs_keyring_t *token_keys;        /* its keys, read at configuration (as root) */
    int user_from;                         /* gs_user_from_t */
    const char *session_cookie;
    apr_array_header_t *allow_origins;     /* const char * normalized origins */
    long batch_size;
    long quota_units;
    apr_interval_time_t retry_budget;      /* worker: retrying without a successful answer */
    double alert_success_rate;
    apr_interval_time_t alert_mean_duration;
    long alert_stuck_tasks;
    double alert_error_rate;
    long registry_size;                    /* main server only */
    apr_interval_time_t session_cache_ttl;
    long max_streams;                      /* main server only; 0: half the MPM's threads */
    long max_streams_per_user;
    int dev_login;                         /* GmailSyncDevLogin: local stacks only */
    apr_interval_time_t queued_alert_after; /* oldest CREATED task, last claim / rescue */
    /* auto sync (issue 16): the daemon schedules with the main server's values (it is one per
     * httpd and accounts belong to no virtual host); /status reports those too */
    apr_interval_time_t autosync;          /* GmailSyncAutoSync; 0: Off */
    long autosync_max_starts;              /* scheduled starts per second per host */
    apr_interval_time_t autosync_backoff_max; /* failed accounts: the longest wait */
    apr_interval_time_t stale_alert_after; /* oldest last sync of a linked account; 0: no alert */
    apr_interval_time_t autosync_late_alert_after; /* the most overdue due account's lateness;
                                                      0: no alert */
    /* what the worker stores of each message (issue 22; handed to it with its configuration) */
    int content;                           /* gs_content_mode_t: GmailSyncContent */
    int attachments;                       /* gs_attach_mode_t: GmailSyncAttachments */
    int deletions;                         /* gs_deletions_t: GmailSyncDeletions */
    apr_interval_time_t change_retention;  /* GmailSyncChangeRetention (main server) */
    apr_int64_t attachment_max_size;       /* GmailSyncAttachmentMaxSize, bytes */
    int store_raw;                         /* GmailSyncStoreRaw */
    const char *search_config;             /* GmailSyncSearchConfig (validated) */
    const char *worker_where;              /* "file:line" of GmailSyncWorker, NULL: default */
    /* GmailSyncHealthTokenFile: /health and /metrics answer only Authorization: Bearer <the
     * file's token>. Only the token's SHA-256 is kept (read at configuration, as root). */
    const char *health_token_file;
    const unsigned char *health_token_sha256;  /* GS_SHA256_DIGEST_LEN bytes; NULL: no token */
    /* push notifications (issue 26): GmailSyncPushTopic enables POST {prefix}/push */
    const char *push_topic;                /* projects/P/topics/T, or NULL: push off */
    const char *push_audience;             /* NULL: this server's push URL */
    const char *push_service_account;      /* the e-mail the push token must carry */
    const char *push_jwks;                 /* the JWKS URL (default Google's certificates) */
    struct gs_push_cache *push_cache;      /* per httpd child, made at child_init */
} gs_srv_conf_t;

extern module AP_MODULE_DECLARE_DATA gmailsync_module;

extern const command_rec gs_httpd_cmds[];
void *gs_httpd_create_srv_conf(apr_pool_t *p, server_rec *s);
void *gs_httpd_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);
/* Applies defaults to every unset field of every server; call once per (re)configuration. */
void gs_httpd_conf_finalize(server_rec *s);
/* Fails (logging the directive, its file and line) when httpd's User cannot execute the worker
 * binary of some server; run once the whole configuration, User and Group included, is read. */
int gs_httpd_worker_check(server_rec *s, apr_pool_t *ptemp);

static inline gs_srv_conf_t *gs_httpd_srv_conf(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &gmailsync_module);
}

/* The content of GmailSyncClientSecretFile (trailing whitespace removed), from p; NULL when
 * path is NULL or the file cannot be read (logged). Call while still root. */
const char *gs_httpd_read_secret(apr_pool_t *p, const char *path, server_rec *s);
/* Reads every server's client secret into pconf for httpd's children (post_config). */
void gs_httpd_conf_read_secrets(apr_pool_t *pconf, server_rec *s);
/* The check_config relations of the connect flow: GmailSyncRedirectURI names this server's
 * {prefix}/oauth/callback and comes with GmailSyncTokenKeyFile and GmailSyncClientId. */
int gs_httpd_conf_check_connect(server_rec *s, apr_pool_t *ptemp);
/* "file:line" of a server's definition, "(main server):0" for the main server. */
const char *gs_httpd_server_where(apr_pool_t *p, const server_rec *vs);

/* Push notifications (mod_gmailsync_push.c, mod_gmailsync_push_conf.c). */
const char *gs_httpd_set_push_topic(cmd_parms *cmd, void *dconf, const char *arg);
const char *gs_httpd_set_push_audience(cmd_parms *cmd, void *dconf, const char *arg);
const char *gs_httpd_set_push_service_account(cmd_parms *cmd, void *dconf, const char *arg);
const char *gs_httpd_set_push_jwks(cmd_parms *cmd, void *dconf, const char *arg);
/* check_config: a topic needs a service account; the others need a topic. */
int gs_httpd_conf_check_push(server_rec *s, apr_pool_t *ptemp);
/* child_init: each server with a topic gets its JWKS cache. */
void gs_httpd_push_child_init(apr_pool_t *p, server_rec *s);
void gs_httpd_push_log_init(apr_pool_t *p);
int gs_httpd_handle_push(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
/* users.stop for an account being disconnected (its refresh token, before it is revoked): a
 * fresh access token from the token endpoint, then the stop. 1 when Gmail confirmed it; a
 * failure is logged (event=push.stop_failed), the watch then lapses by itself. */
/* Sends one request of a request thread to Google (mod_gmailsync_oauth.c); the connection to
 * the database is given back while it waits. */
apr_status_t gs_httpd_perform_one(request_rec *r, gs_http_request_t *req, const char **err);
int gs_httpd_push_stop_watch(request_rec *r, const gs_srv_conf_t *conf, const char *user_id,
                             const char *refresh_token);
/* Reads the request body (at most max bytes): OK, or the problem answered (*answered). */
int gs_httpd_raw_body(request_rec *r, apr_size_t max, char **data, apr_size_t *len, int *answered);

/* The request handler and its answers (mod_gmailsync_handler.c). */
int gs_httpd_handler(request_rec *r);
/* Sends `body` as JSON (problem+json for status >= 400), no-store; returns OK. */
int gs_httpd_send_json(request_rec *r, int status, json_object *body);
/* Sends an RFC 9457 problem; `slug` names the type (urn:gmailsync:problem:<slug>); detail may be
 * NULL. A 503 carries Retry-After. Returns OK. */
int gs_httpd_send_problem(request_rec *r, int status, const char *slug, const char *detail);
/* The problem's body alone (type, title, status, detail), owned by r->pool. */
json_object *gs_httpd_problem(request_rec *r, int status, const char *slug, const char *detail);

/* httpd's own error answers under the prefix as problems, and TRACE refused there
 * (mod_gmailsync_errors.c). */
void gs_httpd_errors_register_hooks(void);
/* The request's pooled mod_dbd connection as a gs_db_t, or NULL when the database is down. It
 * goes back to mod_dbd's pool when the request ends, or earlier with gs_httpd_release_db. */
gs_db_t *gs_httpd_request_db(request_rec *r);
/* Gives the request's connection back now (a long request must not hold one while it waits);
 * an open transaction is rolled back. A later gs_httpd_request_db takes one again. */
void gs_httpd_release_db(request_rec *r);
/* Binds mod_dbd's optional functions; 0 when mod_dbd is not loaded. */
int gs_httpd_dbd_bind(void);

#define GS_RETRY_AFTER_SECONDS "5"
#define GS_MAX_BODY 4096
/* ... and it must arrive whole within this long (mod_gmailsync_body.c) */
#define GS_BODY_DEADLINE apr_time_from_sec(10)
/* every request's database session (gs_httpd_request_db): bounded lock waits and statements */
#define GS_HTTPD_LOCK_TIMEOUT      apr_time_from_sec(3)
#define GS_HTTPD_STATEMENT_TIMEOUT apr_time_from_sec(20)

/* Identity (mod_gmailsync_identity.c). */
typedef enum { GS_ID_OK, GS_ID_UNAUTHENTICATED, GS_ID_DB_UNAVAILABLE } gs_id_result_t;
/* Who is calling: the session cookie looked up in gmailsync.sessions, or r->user with
 * GmailSyncUserFrom remote-user. On GS_ID_OK, *user_id is set and *db (when non-NULL on return)
 * is the request's database connection. */
gs_id_result_t gs_httpd_identify(request_rec *r, const gs_srv_conf_t *conf,
                                 gs_db_t **db, const char **user_id);
/* Sends the problem matching a failed identification; returns OK. */
int gs_httpd_identify_failed(request_rec *r, gs_id_result_t why);
/* Cross-site request check: an Origin header must be a GmailSyncAllowOrigin, or this server's
 * scheme and port with its ServerName or one of its ServerAliases (never the Host header). */
int gs_httpd_origin_allowed(request_rec *r, const gs_srv_conf_t *conf);

/* The per-host registry in shared memory (mod_gmailsync_shm.c). Every accessor degrades to
 * "not found" when the registry is unavailable. */
int gs_httpd_shm_pre_config(apr_pool_t *pconf);
int gs_httpd_shm_post_config(apr_pool_t *pconf, server_rec *s);
void gs_httpd_shm_child_init(apr_pool_t *p, server_rec *s);
int gs_httpd_session_cache_get(const unsigned char *digest, char *user_out);
void gs_httpd_session_cache_put(const unsigned char *digest, const char *user_id,
                                apr_time_t expires);
void gs_httpd_registry_task_put(const gs_registry_task_t *task);
void gs_httpd_registry_task_update(const gs_registry_task_t *task);
void gs_httpd_registry_task_remove(const char *user_id, const char *task_id);
int gs_httpd_registry_task_find(const char *task_id, gs_registry_task_t *out);
int gs_httpd_registry_task_seen(const char *task_id, gs_registry_task_t *out);
void gs_httpd_registry_tasks_clear(void);
void gs_httpd_registry_tasks_sweep(apr_time_t before);
/* Per-host counters in shared memory (0 when the registry is unavailable). */
void gs_httpd_count(gs_counter_t c, apr_uint64_t delta);
apr_uint64_t gs_httpd_counter(gs_counter_t c);
void gs_httpd_observe_start(apr_interval_time_t latency);
/* Per-host gauges: the daemon publishes its claim and rescue times there for /health. */
void gs_httpd_gauge_set(gs_gauge_t g, apr_uint64_t value);
apr_uint64_t gs_httpd_gauge(gs_gauge_t g);
/* Admits one progress stream of user_id (GS_STREAM_ADMITTED: it must leave again). */
gs_stream_admission_t gs_httpd_stream_enter(const char *user_id, long per_user);
void gs_httpd_stream_leave(const char *user_id);
/* Open streams on this host and the host's limit. */
apr_uint32_t gs_httpd_streams_open(void);
long gs_httpd_streams_limit(void);

/* GET {prefix}/health and {prefix}/metrics (mod_gmailsync_health.c). */
int gs_httpd_handle_health(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_metrics(request_rec *r, const gs_srv_conf_t *conf, const char *arg);

/* The sync daemon (mod_gmailsync_daemon.c). */
int gs_httpd_daemon_post_config(apr_pool_t *pconf, server_rec *s);
/* Wakes this host's daemon for a new task; never fails the request (the daemon also polls). */
void gs_httpd_daemon_notify(request_rec *r, const char *task_id, const char *user_id);

/* Progress, status, cancel (mod_gmailsync_progress.c) and the SSE stream (..._stream.c). */
int gs_httpd_handle_progress(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_status(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_cancel(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
/* The owner's task JSON (from p) from the board or the database: OK, HTTP_NOT_FOUND or 503. */
/* GET {prefix}/messages/{id}/raw (mod_gmailsync_message.c), {prefix}/messages/{id}
 * (mod_gmailsync_message_view.c), {prefix}/messages/{id}/attachments/{n} (arg: "{id}/{n}";
 * mod_gmailsync_attachment.c). */
int gs_httpd_handle_message_raw(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_message_view(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_attachment(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
/* The one 404 of an unknown, malformed or other user's message id ("no such message"). */
int gs_httpd_message_not_found(request_rec *r);
/* Logs the database failure (step `what`) and answers the documented 503. */
int gs_httpd_message_db_unavailable(request_rec *r, gs_db_t *db, const char *what);
/* Stored bytes read in slices by a statement of (offset, length, user_id, key) -> (size now,
 * hex slice) and passed down the output filters one slice at a time; the status line and
 * headers (Content-Length: size) are the caller's. A failure after the first byte cuts the
 * connection (logged event=message.<event>_cut); returns OK. */
typedef struct {
    const char *statement;
    const char *user_id;
    const char *key;         /* the gmail_id, or the blob's sha256 in hex */
    const char *message;     /* for the log */
    const char *event;       /* "raw", "attachment" */
} gs_httpd_slices_t;
int gs_httpd_stream_slices(request_rec *r, const gs_httpd_slices_t *what, apr_off_t size);
/* Who asks (*user_id) and the row of statement `label` run with ([first,] user_id, id): OK with
 * *rows set; else *rows is NULL and the answer was sent (401, the 404 of a malformed id or of
 * no row, 503), its status returned. The database connection is given back. */
int gs_httpd_message_select(request_rec *r, const gs_srv_conf_t *conf, const char *id,
                            const char *label, const char *first, const char **user_id,
                            gs_db_rows_t **rows);
/* A 200 download of size_text bytes (a decimal from the database) streamed with `what`:
 * Content-Type, Content-Disposition, no-store, nosniff, no ranges; HEAD sends the headers. */
int gs_httpd_send_download(request_rec *r, const gs_httpd_slices_t *what, const char *type,
                           const char *disposition, const char *size_text);
/* GET {prefix}/messages (search) and {prefix}/labels (mod_gmailsync_search.c, issue 24) */
int gs_httpd_handle_search(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_labels(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_changes(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_load_task(request_rec *r, apr_pool_t *p, gs_db_t **db, const char *user_id,
                       const char *task_id, json_object **task);
int gs_httpd_progress_stream(request_rec *r, const gs_srv_conf_t *conf, gs_db_t *db,
                             const char *user_id, const char *task_id);

/* GET {prefix}/dev-login (mod_gmailsync_devlogin.c), and the startup check that refuses
 * GmailSyncDevLogin On unless httpd listens on loopback addresses only. */
int gs_httpd_handle_dev_login(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_dev_login_check(server_rec *s, apr_pool_t *ptemp);

/* POST {prefix}/smart (mod_gmailsync_start.c). */
int gs_httpd_handle_start(request_rec *r, const gs_srv_conf_t *conf, const char *arg);

/* Request bodies of the POST endpoints (mod_gmailsync_body.c). */
/* For refusals before the body is read: closes the connection instead of reading it after. */
void gs_httpd_leave_body_unread(request_rec *r);
/* Reads and drops a body no route reads, bounded like the bodies routes read (at most
 * GS_MAX_BODY, within GS_BODY_DEADLINE): ap_discard_request_body would read up to
 * LimitRequestBody (1 GiB by default) at whatever pace the client likes. Returns OK or the
 * status to answer (400, 408, 413, AP_FILTER_ERROR). */
int gs_httpd_discard_body(request_rec *r);

/* Reads an optional JSON object body (at most GS_MAX_BODY, application/json, RFC 8259 strictly)
 * into *doc (NULL for an empty body). Returns OK, or with *answered set, what the problem it
 * sent returned. */
int gs_httpd_json_body(request_rec *r, json_object **doc, int *answered);
/* The boolean member `name` of doc into *value (unchanged when absent); with *answered set
 * when it is not a boolean (a 400 was sent). */
int gs_httpd_json_bool(request_rec *r, json_object *doc, const char *name, int *value,
                       int *answered);

/* The connect flow (mod_gmailsync_oauth.c): GET {prefix}/oauth/start and /oauth/callback,
 * POST {prefix}/oauth/disconnect. */
/* Keeps the callback's query (code, state) out of the access log: hooks run before any answer. */
void gs_httpd_oauth_register_hooks(void);
int gs_httpd_handle_oauth_start(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_oauth_callback(request_rec *r, const gs_srv_conf_t *conf, const char *arg);
int gs_httpd_handle_oauth_disconnect(request_rec *r, const gs_srv_conf_t *conf,
                                     const char *arg);
/* The SHA-256 hex of the request's session cookie (from r->pool), or NULL when identity does
 * not come from a session (GmailSyncUserFrom remote-user) or there is none. */
const char *gs_httpd_session_sha256(request_rec *r, const gs_srv_conf_t *conf);

#endif /* MOD_GMAILSYNC_H */
