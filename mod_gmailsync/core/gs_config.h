/* gs_config.h -- settings shared by the module, the daemon and the worker, and the parsers that
 * validate them. Pure: no httpd headers, so `apachectl -t` and the unit tests run the same checks.
 */
#ifndef GS_CONFIG_H
#define GS_CONFIG_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_tables.h>

#define GS_DEFAULT_PREFIX             "/api/gmail/sync"
#define GS_DEFAULT_API_BASE           "https://gmail.googleapis.com"
#define GS_DEFAULT_TOKEN_URL          "https://oauth2.googleapis.com/token"
#define GS_DEFAULT_AUTH_URL           "https://accounts.google.com/o/oauth2/v2/auth"
#define GS_DEFAULT_REVOKE_URL         "https://oauth2.googleapis.com/revoke"
#define GS_DEFAULT_SESSION_COOKIE     "session"
#define GS_DEFAULT_MAX_WORKERS        4
#define GS_DEFAULT_HEARTBEAT          apr_time_from_sec(5)
#define GS_DEFAULT_STUCK_AFTER        apr_time_from_sec(300)
#define GS_DEFAULT_PROGRESS_INTERVAL  apr_time_from_sec(1)
#define GS_DEFAULT_METRICS_WINDOW     apr_time_from_sec(3600)
#define GS_DEFAULT_BATCH_SIZE         50
#define GS_MAX_BATCH_SIZE             100
#define GS_DEFAULT_QUOTA_UNITS        250
/* how long a worker keeps retrying Gmail without any successful answer (GmailSyncRetryBudget) */
#define GS_DEFAULT_RETRY_BUDGET       apr_time_from_sec(300)
#define GS_DEFAULT_ALERT_SUCCESS_RATE 95.0   /* percent: alert below */
#define GS_DEFAULT_ALERT_MEAN_DURATION apr_time_from_sec(300) /* alert above */
#define GS_DEFAULT_ALERT_STUCK_TASKS  0      /* alert above */
#define GS_DEFAULT_QUEUED_ALERT_AFTER apr_time_from_sec(60) /* oldest CREATED, last claim/rescue */
#define GS_DEFAULT_ALERT_ERROR_RATE   5.0    /* percent: alert above */
#define GS_DEFAULT_REGISTRY_SIZE      1024
#define GS_DEFAULT_MAX_STREAMS_PER_USER 4
#define GS_CLAIM_TIMEOUT              apr_time_from_sec(3600) /* CREATED longer -> FAILED */
#define GS_DEFAULT_SESSION_CACHE_TTL  apr_time_from_sec(5)

/* Upper bound for every duration directive: long enough for any sane setting, small enough that
 * adding two of them never overflows apr_interval_time_t. */
#define GS_DEFAULT_AUTOSYNC_MAX_STARTS 20                    /* scheduled starts per second */
/* the most overdue due account's lateness (now - its due time): alert above */
#define GS_DEFAULT_AUTOSYNC_LATE_ALERT_AFTER apr_time_from_sec(60)
#define GS_DEFAULT_AUTOSYNC_BACKOFF_MAX apr_time_from_sec(3600)  /* failed accounts: retry cap */
#define GS_MAX_DURATION               apr_time_from_sec(30 * 86400)

typedef enum { GS_SYNC_SMART = 0, GS_SYNC_FULL = 1 } gs_sync_mode_t;

/* What a sync stores of each message (issue 22). GmailSyncContent: full fetches format=raw and
 * stores the parsed message (bodies, addresses, attachments, raw), metadata today's envelope
 * only. GmailSyncAttachments: store keeps attachment bytes (content-addressed), metadata only
 * their metadata and SHA-256. */
typedef enum { GS_CONTENT_FULL = 0, GS_CONTENT_METADATA = 1 } gs_content_mode_t;
typedef enum { GS_ATTACH_STORE = 0, GS_ATTACH_METADATA = 1 } gs_attach_mode_t;
/* GmailSyncDeletions (issue 23): delete removes a message Gmail deleted, keep (archive mode)
 * keeps its rows with deleted_at set. */
typedef enum { GS_DELETIONS_DELETE = 0, GS_DELETIONS_KEEP = 1 } gs_deletions_t;
#define GS_DEFAULT_CHANGE_RETENTION apr_time_from_sec(7 * 86400)   /* GmailSyncChangeRetention */
#define GS_DEFAULT_ATTACHMENT_MAX_SIZE ((apr_int64_t)25 * 1024 * 1024)   /* 25M */
/* PostgreSQL's bytea holds at most 1 GB */
#define GS_MAX_ATTACHMENT_MAX_SIZE     ((apr_int64_t)1024 * 1024 * 1024)
typedef enum { GS_USER_FROM_SESSION = 0, GS_USER_FROM_REMOTE_USER = 1 } gs_user_from_t;

/* Parses "250ms", "5s", "5m", "1h", "2d" or a bare number of seconds into microseconds.
 * Rejects empty input, signs, fractions, unknown units, trailing text and values above
 * GS_MAX_DURATION. On failure returns APR_EINVAL and, when `why` is given, a static reason. */
apr_status_t gs_parse_duration(const char *text, apr_interval_time_t *out, const char **why);

/* Parses a decimal integer in [min, max]. Rejects empty input, trailing text and overflow. */
apr_status_t gs_parse_int(const char *text, long min, long max, long *out, const char **why);

/* Parses a size in bytes: a decimal number, optionally followed by K or M (binary: 1K = 1024;
 * case-insensitive), in [0, max]. "25M", "512K", "1048576". */
apr_status_t gs_parse_size(const char *text, apr_int64_t max, apr_int64_t *out, const char **why);

/* One of names (NULL-terminated, case-insensitive): *out is its index. APR_EINVAL with a
 * reason naming the accepted values otherwise ("expected full or metadata"). */
apr_status_t gs_parse_choice(apr_pool_t *p, const char *text, const char *const *names, int *out,
                             const char **why);

/* The values of GmailSyncContent and GmailSyncAttachments, indexed by their enums. */
extern const char *const gs_content_mode_names[];
extern const char *const gs_attach_mode_names[];
extern const char *const gs_deletions_names[];
#define gs_content_mode_name(mode) (gs_content_mode_names[(mode) == GS_CONTENT_METADATA])
#define gs_attach_mode_name(mode) (gs_attach_mode_names[(mode) == GS_ATTACH_METADATA])
#define gs_deletions_name(mode) (gs_deletions_names[(mode) == GS_DELETIONS_KEEP])

/* Parses a percentage "95", "95%", "99.5%" in [0, 100]. */
apr_status_t gs_parse_percent(const char *text, double *out, const char **why);

/* Accepts only absolute http:// or https:// URLs with a host and no user info or fragment.
 * A trailing '/' is removed from *normalized (allocated from p). */
apr_status_t gs_parse_http_url(apr_pool_t *p, const char *text, const char **normalized,
                               const char **why);

/* localhost, 127.0.0.0/8, ::1 and IPv4-mapped 127.x (no name resolution). */
int gs_is_loopback_host(const char *host);

/* An OAuth redirect URI (GmailSyncRedirectURI): an absolute URL as gs_parse_http_url, https
 * or http on a loopback host, without a query. *path (from p) is its path. */
apr_status_t gs_parse_redirect_uri(apr_pool_t *p, const char *text, const char **path,
                                   const char **why);

/* Accepts "https://host[:port]" or "http://host[:port]" (an Origin header value, no path; see
 * gs_origin_parse) and normalises it: lower case, no default port. */
apr_status_t gs_parse_origin(apr_pool_t *p, const char *text, const char **normalized,
                             const char **why);

/* Accepts an absolute path prefix such as "/api/gmail/sync": no trailing '/', no "..", no
 * query, no whitespace. */
apr_status_t gs_parse_uri_prefix(const char *text, const char **why);

/* Formats a duration the way the parser reads it back, choosing the largest exact unit. */
const char *gs_format_duration(apr_pool_t *p, apr_interval_time_t d);

const char *gs_sync_mode_name(gs_sync_mode_t mode);

#endif /* GS_CONFIG_H */
