/* mod_gmailsync_config.c -- the directives: parsing, validation, inheritance and defaults.
 *
 * Every value is checked when the configuration is read, so a mistake is a startup error that
 * names the directive (httpd adds the file and line), never a crash or a surprise at run time.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_file_info.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <unixd.h>

#include <openssl/crypto.h>

#include "gs_sha256.h"
#include "gs_search.h"
#include "gs_secretfile.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* Bounds for a numeric or duration directive, stored as the command's `info`. */
typedef struct {
    size_t offset;
    apr_int64_t min;
    apr_int64_t max;
} gs_bounds_t;

#define BOUNDS(field, lo, hi) { APR_OFFSETOF(gs_srv_conf_t, field), (lo), (hi) }

static gs_bounds_t max_workers_bounds  = BOUNDS(max_workers, 0, 256);
static gs_bounds_t batch_size_bounds   = BOUNDS(batch_size, 1, GS_MAX_BATCH_SIZE);
static gs_bounds_t quota_units_bounds  = BOUNDS(quota_units, 1, 1000000);
static gs_bounds_t retry_budget_bounds = BOUNDS(retry_budget, apr_time_from_sec(1), apr_time_from_sec(86400));
static gs_bounds_t stuck_tasks_bounds  = BOUNDS(alert_stuck_tasks, 0, 1000000);
static gs_bounds_t heartbeat_bounds    = BOUNDS(heartbeat, 100 * 1000, apr_time_from_sec(3600));
static gs_bounds_t stuck_after_bounds  = BOUNDS(stuck_after, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t progress_bounds     = BOUNDS(progress_interval, 50 * 1000, apr_time_from_sec(600));
static gs_bounds_t window_bounds       = BOUNDS(metrics_window, apr_time_from_sec(60), GS_MAX_DURATION);
static gs_bounds_t mean_dur_bounds     = BOUNDS(alert_mean_duration, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t registry_bounds     = BOUNDS(registry_size, 16, 1000000);
static gs_bounds_t session_ttl_bounds  = BOUNDS(session_cache_ttl, 0, apr_time_from_sec(300));
static gs_bounds_t streams_bounds      = BOUNDS(max_streams, 0, 100000);
static gs_bounds_t user_streams_bounds = BOUNDS(max_streams_per_user, 1, 1000);
static gs_bounds_t success_rate_offset = BOUNDS(alert_success_rate, 0, 100);
static gs_bounds_t error_rate_offset   = BOUNDS(alert_error_rate, 0, 100);
static gs_bounds_t queued_alert_bounds = BOUNDS(queued_alert_after, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t autosync_bounds     = BOUNDS(autosync, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t autosync_starts     = BOUNDS(autosync_max_starts, 1, 10000);
static gs_bounds_t autosync_backoff    = BOUNDS(autosync_backoff_max, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t stale_alert_bounds  = BOUNDS(stale_alert_after, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t late_alert_bounds   = BOUNDS(autosync_late_alert_after, apr_time_from_sec(1), GS_MAX_DURATION);
static gs_bounds_t retention_bounds    = BOUNDS(change_retention, apr_time_from_sec(60), GS_MAX_DURATION);

void *gs_httpd_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    gs_srv_conf_t *conf = apr_pcalloc(p, sizeof *conf);

    (void)s;
    conf->enabled = GS_UNSET;
    conf->mode = GS_UNSET;
    conf->max_workers = GS_UNSET;
    conf->heartbeat = GS_UNSET;
    conf->stuck_after = GS_UNSET;
    conf->progress_interval = GS_UNSET;
    conf->metrics_window = GS_UNSET;
    conf->user_from = GS_UNSET;
    conf->batch_size = GS_UNSET;
    conf->quota_units = GS_UNSET;
    conf->retry_budget = GS_UNSET;
    conf->alert_success_rate = GS_UNSET;
    conf->alert_mean_duration = GS_UNSET;
    conf->alert_stuck_tasks = GS_UNSET;
    conf->alert_error_rate = GS_UNSET;
    conf->registry_size = GS_UNSET;
    conf->session_cache_ttl = GS_UNSET;
    conf->max_streams = GS_UNSET;
    conf->max_streams_per_user = GS_UNSET;
    conf->dev_login = GS_UNSET;
    conf->queued_alert_after = GS_UNSET;
    conf->autosync = GS_UNSET;
    conf->autosync_max_starts = GS_UNSET;
    conf->autosync_backoff_max = GS_UNSET;
    conf->stale_alert_after = GS_UNSET;
    conf->autosync_late_alert_after = GS_UNSET;
    conf->content = GS_UNSET;
    conf->attachments = GS_UNSET;
    conf->deletions = GS_UNSET;
    conf->change_retention = GS_UNSET;
    conf->attachment_max_size = GS_UNSET;
    conf->store_raw = GS_UNSET;
    return conf;
}

#define PICK(field) conf->field = (add->field != GS_UNSET) ? add->field : base->field
#define PICK_PTR(field) conf->field = add->field ? add->field : base->field

void *gs_httpd_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    const gs_srv_conf_t *base = basev, *add = addv;
    gs_srv_conf_t *conf = apr_pcalloc(p, sizeof *conf);

    PICK(enabled);
    PICK_PTR(prefix);
    PICK(mode);
    PICK_PTR(worker_path);
    PICK(max_workers);
    PICK(heartbeat);
    PICK(stuck_after);
    PICK(progress_interval);
    PICK(metrics_window);
    PICK_PTR(api_base);
    PICK_PTR(token_url);
    PICK_PTR(client_id);
    PICK_PTR(client_secret_file);
    PICK_PTR(auth_url);
    PICK_PTR(redirect_uri);
    PICK_PTR(revoke_url);
    PICK_PTR(token_key_file);
    PICK_PTR(token_keys);
    PICK(user_from);
    PICK_PTR(session_cookie);
    PICK_PTR(allow_origins);
    PICK(batch_size);
    PICK(quota_units);
    PICK(retry_budget);
    PICK(alert_success_rate);
    PICK(alert_mean_duration);
    PICK(alert_stuck_tasks);
    PICK(alert_error_rate);
    PICK(registry_size);
    PICK(session_cache_ttl);
    PICK(max_streams);
    PICK(max_streams_per_user);
    PICK(dev_login);
    PICK(queued_alert_after);
    PICK(autosync);
    PICK(autosync_max_starts);
    PICK(autosync_backoff_max);
    PICK(stale_alert_after);
    PICK(autosync_late_alert_after);
    PICK(content);
    PICK(attachments);
    PICK(deletions);
    PICK(change_retention);
    PICK(attachment_max_size);
    PICK(store_raw);
    PICK_PTR(search_config);
    PICK_PTR(worker_where);
    PICK_PTR(health_token_file);
    PICK_PTR(health_token_sha256);
    return conf;
}

#define DEFAULT(field, value) do { if (conf->field == GS_UNSET) conf->field = (value); } while (0)
#define DEFAULT_PTR(field, value) do { if (!conf->field) conf->field = (value); } while (0)

void gs_httpd_conf_finalize(server_rec *s)
{
    for (; s; s = s->next) {
        gs_srv_conf_t *conf = gs_httpd_srv_conf(s);

        DEFAULT(enabled, 1);
        DEFAULT_PTR(prefix, GS_DEFAULT_PREFIX);
        DEFAULT(mode, GS_SYNC_SMART);
        DEFAULT_PTR(worker_path, GS_WORKER_DEFAULT);
        DEFAULT(max_workers, GS_DEFAULT_MAX_WORKERS);
        DEFAULT(heartbeat, GS_DEFAULT_HEARTBEAT);
        DEFAULT(stuck_after, GS_DEFAULT_STUCK_AFTER);
        DEFAULT(progress_interval, GS_DEFAULT_PROGRESS_INTERVAL);
        DEFAULT(metrics_window, GS_DEFAULT_METRICS_WINDOW);
        DEFAULT_PTR(api_base, GS_DEFAULT_API_BASE);
        DEFAULT_PTR(token_url, GS_DEFAULT_TOKEN_URL);
        DEFAULT_PTR(auth_url, GS_DEFAULT_AUTH_URL);
        DEFAULT_PTR(revoke_url, GS_DEFAULT_REVOKE_URL);
        DEFAULT(user_from, GS_USER_FROM_SESSION);
        DEFAULT_PTR(session_cookie, GS_DEFAULT_SESSION_COOKIE);
        DEFAULT(batch_size, GS_DEFAULT_BATCH_SIZE);
        DEFAULT(quota_units, GS_DEFAULT_QUOTA_UNITS);
        DEFAULT(retry_budget, GS_DEFAULT_RETRY_BUDGET);
        DEFAULT(alert_success_rate, GS_DEFAULT_ALERT_SUCCESS_RATE);
        DEFAULT(alert_mean_duration, GS_DEFAULT_ALERT_MEAN_DURATION);
        DEFAULT(alert_stuck_tasks, GS_DEFAULT_ALERT_STUCK_TASKS);
        DEFAULT(alert_error_rate, GS_DEFAULT_ALERT_ERROR_RATE);
        DEFAULT(registry_size, GS_DEFAULT_REGISTRY_SIZE);
        DEFAULT(session_cache_ttl, GS_DEFAULT_SESSION_CACHE_TTL);
        DEFAULT(max_streams, 0);
        DEFAULT(max_streams_per_user, GS_DEFAULT_MAX_STREAMS_PER_USER);
        DEFAULT(dev_login, 0);
        DEFAULT(queued_alert_after, GS_DEFAULT_QUEUED_ALERT_AFTER);
        DEFAULT(autosync, 0);
        DEFAULT(autosync_max_starts, GS_DEFAULT_AUTOSYNC_MAX_STARTS);
        DEFAULT(autosync_backoff_max, GS_DEFAULT_AUTOSYNC_BACKOFF_MAX);
        DEFAULT(stale_alert_after, 0);
        DEFAULT(autosync_late_alert_after, GS_DEFAULT_AUTOSYNC_LATE_ALERT_AFTER);
        DEFAULT(content, GS_CONTENT_FULL);
        DEFAULT(attachments, GS_ATTACH_STORE);
        DEFAULT(deletions, GS_DELETIONS_DELETE);
        DEFAULT(change_retention, GS_DEFAULT_CHANGE_RETENTION);
        DEFAULT(attachment_max_size, GS_DEFAULT_ATTACHMENT_MAX_SIZE);
        DEFAULT(store_raw, 1);
        DEFAULT_PTR(search_config, GS_SEARCH_DEFAULT_CONFIG);
    }
}

static const char *bad_value(cmd_parms *cmd, const char *arg, const char *why)
{
    return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s", cmd->cmd->name, arg, why);
}

static const char *set_flag(cmd_parms *cmd, void *dconf, int flag)
{
    (void)dconf;
    gs_httpd_srv_conf(cmd->server)->enabled = flag ? 1 : 0;
    return NULL;
}

static const char *set_dev_login(cmd_parms *cmd, void *dconf, int flag)
{
    (void)dconf;
    gs_httpd_srv_conf(cmd->server)->dev_login = flag ? 1 : 0;
    return NULL;
}

static const char *set_prefix(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *why;

    (void)dconf;
    if (gs_parse_uri_prefix(arg, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    gs_httpd_srv_conf(cmd->server)->prefix = arg;
    return NULL;
}

static const char *set_mode(cmd_parms *cmd, void *dconf, const char *arg)
{
    gs_srv_conf_t *conf = gs_httpd_srv_conf(cmd->server);

    (void)dconf;
    if (!strcasecmp(arg, "smart")) {
        conf->mode = GS_SYNC_SMART;
    }
    else if (!strcasecmp(arg, "full")) {
        conf->mode = GS_SYNC_FULL;
    }
    else {
        return bad_value(cmd, arg, "expected smart or full");
    }
    return NULL;
}

/* A directive that takes one of a few words, stored as the word's index (an int field). */
typedef struct {
    size_t offset;
    const char *const *names;
} gs_choice_t;

static const gs_choice_t content_choice = { APR_OFFSETOF(gs_srv_conf_t, content),
                                            gs_content_mode_names };
static const gs_choice_t attachments_choice = { APR_OFFSETOF(gs_srv_conf_t, attachments),
                                                gs_attach_mode_names };
static const gs_choice_t deletions_choice = { APR_OFFSETOF(gs_srv_conf_t, deletions),
                                              gs_deletions_names };

static const char *set_choice(cmd_parms *cmd, void *dconf, const char *arg)
{
    const gs_choice_t *c = cmd->info;
    const char *why;
    int index;

    (void)dconf;
    if (gs_parse_choice(cmd->pool, arg, c->names, &index, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    *(int *)((char *)gs_httpd_srv_conf(cmd->server) + c->offset) = index;
    return NULL;
}

static const char *set_attachment_max_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_int64_t size;
    const char *why;

    (void)dconf;
    if (gs_parse_size(arg, GS_MAX_ATTACHMENT_MAX_SIZE, &size, &why) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s (bytes, or with K or M: "
                            "0 to 1024M)", cmd->cmd->name, arg, why);
    }
    gs_httpd_srv_conf(cmd->server)->attachment_max_size = size;
    return NULL;
}

static const char *set_store_raw(cmd_parms *cmd, void *dconf, int flag)
{
    (void)dconf;
    gs_httpd_srv_conf(cmd->server)->store_raw = flag ? 1 : 0;
    return NULL;
}

static const char *set_search_config(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    if (!gs_search_config_valid(arg)) {
        return bad_value(cmd, arg, "a text-search configuration name (simple, english, "
                         "myschema.myconfig): an identifier, optionally schema-qualified");
    }
    gs_httpd_srv_conf(cmd->server)->search_config = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_user_from(cmd_parms *cmd, void *dconf, const char *arg)
{
    gs_srv_conf_t *conf = gs_httpd_srv_conf(cmd->server);

    (void)dconf;
    if (!strcasecmp(arg, "session")) {
        conf->user_from = GS_USER_FROM_SESSION;
    }
    else if (!strcasecmp(arg, "remote-user")) {
        conf->user_from = GS_USER_FROM_REMOTE_USER;
    }
    else {
        return bad_value(cmd, arg, "expected session or remote-user");
    }
    return NULL;
}

static const char *set_number(cmd_parms *cmd, void *dconf, const char *arg)
{
    const gs_bounds_t *b = cmd->info;
    const char *why;
    long value;

    (void)dconf;
    if (gs_parse_int(arg, (long)b->min, (long)b->max, &value, &why) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s (expected %ld to %ld)",
                            cmd->cmd->name, arg, why, (long)b->min, (long)b->max);
    }
    *(long *)((char *)gs_httpd_srv_conf(cmd->server) + b->offset) = value;
    return NULL;
}

static const char *set_duration(cmd_parms *cmd, void *dconf, const char *arg)
{
    const gs_bounds_t *b = cmd->info;
    const char *why;
    apr_interval_time_t value;

    (void)dconf;
    if (gs_parse_duration(arg, &value, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    if (value < b->min || value > b->max) {
        return apr_psprintf(cmd->pool, "%s: invalid value '%s': must be between %s and %s",
                            cmd->cmd->name, arg, gs_format_duration(cmd->pool, b->min),
                            gs_format_duration(cmd->pool, b->max));
    }
    *(apr_interval_time_t *)((char *)gs_httpd_srv_conf(cmd->server) + b->offset) = value;
    return NULL;
}

/* A duration directive that also takes Off (stored as 0). */
static const char *set_duration_or_off(cmd_parms *cmd, void *dconf, const char *arg)
{
    const gs_bounds_t *b = cmd->info;

    if (!strcasecmp(arg, "Off")) {
        *(apr_interval_time_t *)((char *)gs_httpd_srv_conf(cmd->server) + b->offset) = 0;
        return NULL;
    }
    return set_duration(cmd, dconf, arg);
}

static const char *set_percent(cmd_parms *cmd, void *dconf, const char *arg)
{
    const gs_bounds_t *b = cmd->info;
    const char *why;
    double value;

    (void)dconf;
    if (gs_parse_percent(arg, &value, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    *(double *)((char *)gs_httpd_srv_conf(cmd->server) + b->offset) = value;
    return NULL;
}

static const char *set_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *why, *url;

    (void)dconf;
    if (gs_parse_http_url(cmd->pool, arg, &url, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    *(const char **)((char *)gs_httpd_srv_conf(cmd->server) + (size_t)cmd->info) = url;
    return NULL;
}

static const char *set_token(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *c;

    (void)dconf;
    if (!*arg || strlen(arg) > 512) {
        return bad_value(cmd, arg, "must be 1 to 512 characters");
    }
    for (c = arg; *c; c++) {
        if (!apr_isgraph(*c) || *c == ';' || *c == ',' || *c == '=') {
            return bad_value(cmd, arg, "only visible ASCII characters except ; , and = are allowed");
        }
    }
    *(const char **)((char *)gs_httpd_srv_conf(cmd->server) + (size_t)cmd->info) = arg;
    return NULL;
}

static const char *set_worker(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_finfo_t finfo;
    apr_status_t rv;

    (void)dconf;
    if (!ap_os_is_path_absolute(cmd->pool, arg)) {
        return bad_value(cmd, arg, "the worker must be given as an absolute path");
    }
    if ((rv = apr_stat(&finfo, arg, APR_FINFO_TYPE | APR_FINFO_PROT, cmd->pool)) != APR_SUCCESS) {
        return bad_value(cmd, arg, "no such file");
    }
    /* executable by nobody: said here, at the directive's line. Whether httpd's User may run it
     * is checked once the whole configuration is read (User may come later):
     * gs_httpd_worker_check */
    if (finfo.filetype != APR_REG
        || !(finfo.protection & (APR_UEXECUTE | APR_GEXECUTE | APR_WEXECUTE))) {
        return bad_value(cmd, arg, "not an executable file");
    }
    gs_httpd_srv_conf(cmd->server)->worker_path = arg;
    gs_httpd_srv_conf(cmd->server)->worker_where =
        cmd->directive ? apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                                      cmd->directive->line_num)
                       : "(unknown)";
    return NULL;
}

/* GmailSyncClientSecretFile: checked now (configtest names what is wrong with it) under the
 * rules of the token key file (gs_secretfile.h); read at every start (gs_httpd_read_secret). */
static const char *set_secret_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg), *why = NULL;
    apr_size_t len;
    char *secret;

    (void)dconf;
    if (!path) {
        return bad_value(cmd, arg, "invalid path");
    }
    if (gs_secret_file_read(cmd->temp_pool, path, GS_CLIENT_SECRET_MAX, &secret, &len, &why)
        != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    gs_httpd_srv_conf(cmd->server)->client_secret_file = path;
    return NULL;
}

/* GmailSyncTokenKeyFile: read now, while httpd is still root, so that a key file readable by
 * its owner alone works and configtest names what is wrong with it. */
static const char *set_token_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg), *why = NULL;
    gs_srv_conf_t *conf = gs_httpd_srv_conf(cmd->server);
    gs_keyring_t *kr;

    (void)dconf;
    if (!path) {
        return bad_value(cmd, arg, "invalid path");
    }
    if (gs_keyring_load(&kr, cmd->pool, path, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    conf->token_key_file = path;
    conf->token_keys = kr;
    return NULL;
}

/* The bearer token of GmailSyncHealthTokenFile: one line of visible ASCII (RFC 6750's token68
 * and more), long enough not to be guessed, short enough to fit in a header. */
#define GS_HEALTH_TOKEN_MIN 16
#define GS_HEALTH_TOKEN_MAX 1024
#define GS_HEALTH_TOKEN_FILE_MAX 4096

/* GmailSyncHealthTokenFile: read now, while httpd is still root, like GmailSyncTokenKeyFile:
 * a regular file (a FIFO would hang the configuration test) that is not open to every user,
 * holding the token; only its SHA-256 is kept. Nothing of the content is ever logged. */
static const char *set_health_token_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg), *why = NULL;
    gs_srv_conf_t *conf = gs_httpd_srv_conf(cmd->server);
    unsigned char *digest;
    apr_finfo_t fi;
    apr_file_t *f;
    apr_size_t n = 0, len, i;
    apr_status_t rv;
    char *buf = NULL;

    (void)dconf;
    if (!path) {
        return bad_value(cmd, arg, "invalid path");
    }
    /* the type before opening: open(2) of a FIFO waits for a writer */
    if (apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_PROT | APR_FINFO_SIZE, cmd->temp_pool)
        != APR_SUCCESS) {
        return bad_value(cmd, arg, "no such file");
    }
    if (fi.filetype != APR_REG) {
        return bad_value(cmd, arg, "not a regular file");
    }
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY | APR_FOPEN_NONBLOCK,
                            0, cmd->temp_pool)) != APR_SUCCESS) {
        return bad_value(cmd, arg, "cannot be opened (httpd reads it at startup, as root)");
    }
    /* what was opened, not what was named a moment ago */
    if ((rv = apr_file_info_get(&fi, APR_FINFO_TYPE | APR_FINFO_PROT | APR_FINFO_SIZE, f))
        != APR_SUCCESS) {
        why = "cannot be examined";
    }
    else if (fi.filetype != APR_REG) {
        why = "not a regular file";
    }
    else if (fi.protection & (APR_FPROT_WREAD | APR_FPROT_WWRITE | APR_FPROT_WEXECUTE)) {
        why = "open to every user (chmod o-rwx: 0600, or 0640 for a monitoring group)";
    }
    else if (fi.size <= 0 || fi.size > GS_HEALTH_TOKEN_FILE_MAX) {
        why = fi.size <= 0 ? "empty" : "too large for a token file";
    }
    else {
        n = (apr_size_t)fi.size;
        buf = apr_palloc(cmd->temp_pool, n + 1);
        rv = apr_file_read_full(f, buf, n, &n);
        if (rv != APR_SUCCESS && rv != APR_EOF) {
            why = "cannot be read";
        }
    }
    if (apr_file_close(f) != APR_SUCCESS && !why) {
        why = "cannot be read";
    }
    if (!why) {
        len = n;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '
                           || buf[len - 1] == '\t')) {
            len--;
        }
        for (i = 0; i < len && !why; i++) {
            if (buf[i] < 0x21 || buf[i] > 0x7e) {
                why = "the token must be one line of visible ASCII characters, without spaces";
            }
        }
        if (!why && (len < GS_HEALTH_TOKEN_MIN || len > GS_HEALTH_TOKEN_MAX)) {
            why = "the token must be 16 to 1024 characters (e.g. openssl rand -hex 32)";
        }
        if (!why) {
            digest = apr_palloc(cmd->pool, GS_SHA256_DIGEST_LEN);
            gs_sha256(buf, len, digest);
            conf->health_token_sha256 = digest;
            conf->health_token_file = path;
        }
    }
    if (buf) {
        OPENSSL_cleanse(buf, n);
    }
    return why ? bad_value(cmd, arg, why) : NULL;
}

static const char *set_redirect_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *why, *path;

    (void)dconf;
    if (gs_parse_redirect_uri(cmd->pool, arg, &path, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    gs_httpd_srv_conf(cmd->server)->redirect_uri = arg;
    return NULL;
}

static const char *add_origin(cmd_parms *cmd, void *dconf, const char *arg)
{
    gs_srv_conf_t *conf = gs_httpd_srv_conf(cmd->server);
    const char *why, *origin;

    (void)dconf;
    if (gs_parse_origin(cmd->pool, arg, &origin, &why) != APR_SUCCESS) {
        return bad_value(cmd, arg, why);
    }
    if (!conf->allow_origins) {
        conf->allow_origins = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(conf->allow_origins, const char *) = origin;
    return NULL;
}

#define URL_FIELD(field) ((void *)APR_OFFSETOF(gs_srv_conf_t, field))

const command_rec gs_httpd_cmds[] = {
    AP_INIT_FLAG(GS_DIR_ENABLE, set_flag, NULL, RSRC_CONF,
                 "On|Off: Off answers 503 and starts no new sync (running tasks finish)"),
    AP_INIT_TAKE1(GS_DIR_PREFIX, set_prefix, NULL, RSRC_CONF,
                  "URI prefix of the API (default " GS_DEFAULT_PREFIX ")"),
    AP_INIT_TAKE1(GS_DIR_MODE, set_mode, NULL, RSRC_CONF,
                  "smart|full: full forces full syncs"),
    AP_INIT_TAKE1(GS_DIR_WORKER, set_worker, NULL, RSRC_CONF,
                  "absolute path of the gmailsync-worker binary"),
    AP_INIT_TAKE1(GS_DIR_MAX_WORKERS, set_number, &max_workers_bounds, RSRC_CONF,
                  "concurrent sync workers on this host (0 pauses)"),
    AP_INIT_TAKE1(GS_DIR_HEARTBEAT, set_duration, &heartbeat_bounds, RSRC_CONF,
                  "worker heartbeat interval, e.g. 5s"),
    AP_INIT_TAKE1(GS_DIR_STUCK_AFTER, set_duration, &stuck_after_bounds, RSRC_CONF,
                  "heartbeat age at which a running task is STUCK, e.g. 5m"),
    AP_INIT_TAKE1(GS_DIR_PROGRESS_INTERVAL, set_duration, &progress_bounds, RSRC_CONF,
                  "minimum interval between progress writes to the database, e.g. 1s"),
    AP_INIT_TAKE1(GS_DIR_METRICS_WINDOW, set_duration, &window_bounds, RSRC_CONF,
                  "window over which health computes the monitoring metrics, e.g. 1h"),
    AP_INIT_TAKE1(GS_DIR_API_BASE, set_url, URL_FIELD(api_base), RSRC_CONF,
                  "base URL of the Gmail API"),
    AP_INIT_TAKE1(GS_DIR_TOKEN_URL, set_url, URL_FIELD(token_url), RSRC_CONF,
                  "URL of the OAuth2 token endpoint"),
    AP_INIT_TAKE1(GS_DIR_AUTH_URL, set_url, URL_FIELD(auth_url), RSRC_CONF,
                  "URL of the OAuth2 authorization endpoint (default " GS_DEFAULT_AUTH_URL ")"),
    AP_INIT_TAKE1(GS_DIR_REDIRECT_URI, set_redirect_uri, NULL, RSRC_CONF,
                  "the OAuth2 redirect URI registered for the client: this server's "
                  "{prefix}/oauth/callback (https, or http on loopback); enables the connect flow"),
    AP_INIT_TAKE1(GS_DIR_REVOKE_URL, set_url, URL_FIELD(revoke_url), RSRC_CONF,
                  "URL of the OAuth2 revocation endpoint (default " GS_DEFAULT_REVOKE_URL ")"),
    AP_INIT_TAKE1(GS_DIR_CLIENT_ID, set_token, URL_FIELD(client_id), RSRC_CONF,
                  "OAuth2 client id"),
    AP_INIT_TAKE1(GS_DIR_CLIENT_SECRET_FILE, set_secret_file, NULL, RSRC_CONF,
                  "file holding the OAuth2 client secret"),
    AP_INIT_TAKE1(GS_DIR_TOKEN_KEY_FILE, set_token_key_file, NULL, RSRC_CONF,
                  "file of the keys that encrypt stored OAuth tokens (first line: current key)"),
    AP_INIT_TAKE1(GS_DIR_USER_FROM, set_user_from, NULL, RSRC_CONF,
                  "session|remote-user: where the user identity comes from"),
    AP_INIT_TAKE1(GS_DIR_SESSION_COOKIE, set_token, URL_FIELD(session_cookie), RSRC_CONF,
                  "name of the session cookie (default " GS_DEFAULT_SESSION_COOKIE ")"),
    AP_INIT_ITERATE(GS_DIR_ALLOW_ORIGIN, add_origin, NULL, RSRC_CONF,
                    "origins (scheme://host[:port]) allowed to POST besides this site"),
    AP_INIT_TAKE1(GS_DIR_BATCH_SIZE, set_number, &batch_size_bounds, RSRC_CONF,
                  "messages per Gmail batch request (default 50)"),
    AP_INIT_TAKE1(GS_DIR_QUOTA_UNITS, set_number, &quota_units_bounds, RSRC_CONF,
                  "Gmail quota units per second per user the worker allows itself (default 250)"),
    AP_INIT_TAKE1(GS_DIR_RETRY_BUDGET, set_duration, &retry_budget_bounds, RSRC_CONF,
                  "how long a worker keeps retrying Gmail without a successful answer before "
                  "the task fails, e.g. 5m (1s-1d; default 5m)"),
    AP_INIT_TAKE1(GS_DIR_CONTENT, set_choice, (void *)&content_choice, RSRC_CONF,
                  "full|metadata: full stores each whole message (raw, bodies, addresses, "
                  "attachments), metadata only its envelope (default full)"),
    AP_INIT_TAKE1(GS_DIR_ATTACHMENTS, set_choice, (void *)&attachments_choice, RSRC_CONF,
                  "store|metadata: store keeps attachment bytes, metadata only their name, "
                  "type, size and SHA-256 (default store)"),
    AP_INIT_TAKE1(GS_DIR_DELETIONS, set_choice, (void *)&deletions_choice, RSRC_CONF,
                  "delete|keep: delete removes a message deleted in Gmail, keep (archive mode) "
                  "keeps it with deleted_at set (default delete)"),
    AP_INIT_TAKE1(GS_DIR_CHANGE_RETENTION, set_duration, &retention_bounds, RSRC_CONF,
                  "how long the change feed keeps a change (1m-30d; default 7d; read by the "
                  "daemon from the main server)"),
    AP_INIT_TAKE1(GS_DIR_ATTACHMENT_MAX_SIZE, set_attachment_max_size, NULL, RSRC_CONF,
                  "larger attachments keep metadata and SHA-256 only: bytes, or with K or M "
                  "(default 25M)"),
    AP_INIT_FLAG(GS_DIR_STORE_RAW, set_store_raw, NULL, RSRC_CONF,
                 "On|Off: keep each message's raw RFC 822 bytes (the .eml export; default On)"),
    AP_INIT_TAKE1(GS_DIR_SEARCH_CONFIG, set_search_config, NULL, RSRC_CONF,
                  "the text-search configuration of the search index and of queries "
                  "(simple, english, schema.name; default simple)"),
    AP_INIT_TAKE1(GS_DIR_ALERT_SUCCESS_RATE, set_percent, &success_rate_offset, RSRC_CONF,
                  "alert when the success rate falls below this percentage (default 95)"),
    AP_INIT_TAKE1(GS_DIR_ALERT_MEAN_DURATION, set_duration, &mean_dur_bounds, RSRC_CONF,
                  "alert when the mean task duration exceeds this (default 5m)"),
    AP_INIT_TAKE1(GS_DIR_ALERT_STUCK_TASKS, set_number, &stuck_tasks_bounds, RSRC_CONF,
                  "alert when more tasks than this are stuck (default 0)"),
    AP_INIT_TAKE1(GS_DIR_ALERT_ERROR_RATE, set_percent, &error_rate_offset, RSRC_CONF,
                  "alert when the error rate exceeds this percentage (default 5)"),
    AP_INIT_TAKE1(GS_DIR_QUEUED_ALERT_AFTER, set_duration, &queued_alert_bounds, RSRC_CONF,
                  "alert when the oldest queued task, or the daemon's last successful claim or "
                  "rescue, is older than this (default 60s)"),
    AP_INIT_TAKE1(GS_DIR_AUTOSYNC, set_duration_or_off, &autosync_bounds, RSRC_CONF,
                  "DURATION|Off: the daemon starts an incremental sync of every linked account "
                  "whose last sync is older than this (main server; default Off)"),
    AP_INIT_TAKE1(GS_DIR_AUTOSYNC_MAX_STARTS, set_number, &autosync_starts, RSRC_CONF,
                  "scheduled starts per host per second at most (main server; default 20)"),
    AP_INIT_TAKE1(GS_DIR_AUTOSYNC_BACKOFF_MAX, set_duration, &autosync_backoff, RSRC_CONF,
                  "the longest wait before a failing account is scheduled again (the wait "
                  "doubles per failure from twice GmailSyncAutoSync; main server; default 1h)"),
    AP_INIT_TAKE1(GS_DIR_STALE_ALERT_AFTER, set_duration_or_off, &stale_alert_bounds, RSRC_CONF,
                  "DURATION|Off: alert when a linked account's last successful sync is older "
                  "than this (default Off)"),
    AP_INIT_TAKE1(GS_DIR_AUTOSYNC_LATE_ALERT_AFTER, set_duration_or_off, &late_alert_bounds,
                  RSRC_CONF, "DURATION|Off: alert when a linked account that is due for its "
                  "scheduled sync has waited longer than this past its due time (default 60s)"),
    AP_INIT_TAKE1(GS_DIR_REGISTRY_SIZE, set_number, &registry_bounds, RSRC_CONF,
                  "slots of the per-host shared-memory registry (main server; default 1024)"),
    AP_INIT_TAKE1(GS_DIR_SESSION_CACHE_TTL, set_duration, &session_ttl_bounds, RSRC_CONF,
                  "how long a session lookup may be answered from shared memory (default 5s, 0 off)"),
    AP_INIT_TAKE1(GS_DIR_MAX_STREAMS, set_number, &streams_bounds, RSRC_CONF,
                  "open progress streams (SSE) per host, each holding a thread (main server; "
                  "default 0: half of MaxRequestWorkers)"),
    AP_INIT_TAKE1(GS_DIR_MAX_STREAMS_PER_USER, set_number, &user_streams_bounds, RSRC_CONF,
                  "open progress streams per user on this host (default 4)"),
    AP_INIT_FLAG(GS_DIR_DEV_LOGIN, set_dev_login, NULL, RSRC_CONF,
                 "On|Off: GET {prefix}/dev-login?token=SESSION sets the session cookie for "
                 "loopback clients (local development only; default Off)"),
    AP_INIT_TAKE1(GS_DIR_HEALTH_TOKEN_FILE, set_health_token_file, NULL, RSRC_CONF,
                  "file holding the bearer token that /health and /metrics then require "
                  "(Authorization: Bearer ...); a regular file not open to every user"),
    { NULL, { NULL }, NULL, 0, RAW_ARGS, NULL }
};
