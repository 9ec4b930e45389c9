/* gs_worker_conf.h -- the configuration of one gmailsync-worker run.
 *
 * The daemon hands the worker its settings as "key = value" lines on stdin (`--config -`), so
 * that secrets never appear in argv or the environment; operators may use a file instead, or,
 * without --config, the environment (GS_PG_DSN, GS_API_BASE, GS_TOKEN_URL, GS_CLIENT_ID,
 * GS_CLIENT_SECRET_FILE). The format:
 *
 *     # comment (whole lines only; '#' inside a value is part of the value)
 *     key = value            surrounding blanks are trimmed; values are not quoted
 *
 * Unknown keys, repeated keys and bad values are errors that name the line and the key, never
 * the value (values may be secrets). See mod_gmailsync/worker/README.md for every key.
 */
#ifndef GS_WORKER_CONF_H
#define GS_WORKER_CONF_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gs_config.h"
#include "gs_tokenbox.h"

#define GS_WORKER_DEFAULT_PARALLEL        2
#define GS_WORKER_MAX_PARALLEL            16
#define GS_WORKER_DEFAULT_RETRIES         0   /* no count cap: the time budget decides */
#define GS_WORKER_DEFAULT_BACKOFF_BASE    apr_time_from_msec(500)
#define GS_WORKER_DEFAULT_BACKOFF_MAX     apr_time_from_sec(32)
#define GS_WORKER_DEFAULT_TIMEOUT         apr_time_from_sec(60)
#define GS_WORKER_DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(10)
#define GS_WORKER_DEFAULT_LOW_SPEED_TIME  apr_time_from_sec(20)
#define GS_WORKER_DEFAULT_STALL_LIMIT     apr_time_from_sec(150)  /* half the default GmailSyncStuckAfter */
#define GS_WORKER_DEFAULT_DB_WAIT         apr_time_from_sec(60)

typedef struct {
    const char *db;                  /* libpq conninfo or URI (may hold a password) */
    const char *api_base;            /* normalized, no trailing '/' */
    const char *token_url;
    const char *client_id;
    const char *client_secret;       /* the value; from client_secret or client_secret_file */
    const char *client_secret_file;  /* as given, for messages */
    const gs_keyring_t *token_keys;  /* opens and seals the stored OAuth tokens; from the
                                        token_key lines (in order, the first is the current
                                        key) or token_key_file */
    const char *token_key_file;      /* as given, for messages */
    gs_sync_mode_t mode;
    int batch_size;                  /* messages per Gmail batch request, 1..GS_MAX_BATCH_SIZE */
    int quota_units;                 /* Gmail quota units/s this worker allows itself; 0: no limit */
    int parallel;                    /* Gmail requests in flight at once */
    int retries;                     /* optional cap on consecutive failures of one request (or
                                        batch part); 0: only retry_budget counts */
    apr_interval_time_t retry_budget;     /* retrying stops (the task fails) after this long
                                             without a successful Gmail answer */
    apr_interval_time_t heartbeat;
    apr_interval_time_t progress_interval;
    apr_interval_time_t stall_limit;      /* heartbeat stops after this long without a forward
                                             step (progress or a Gmail answer); 0: never */
    apr_interval_time_t db_wait;          /* a lost database is waited for this long */
    apr_interval_time_t backoff_base;
    apr_interval_time_t backoff_max;
    apr_interval_time_t timeout;          /* whole HTTP request */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t low_speed_time;   /* abort a transfer slower than 1 byte/s for this long */
    gs_content_mode_t content;       /* full: format=raw, the whole message (GmailSyncContent) */
    gs_attach_mode_t attachments;    /* store: attachment bytes kept (GmailSyncAttachments) */
    gs_deletions_t deletions;        /* keep: Gmail's deletions set deleted_at (archive mode) */
    apr_int64_t attachment_max_size; /* larger attachments keep metadata and hash only
                                        (GmailSyncAttachmentMaxSize) */
    int store_raw;                   /* keep the raw message (GmailSyncStoreRaw) */
    const char *search_config;       /* text-search configuration of the search index
                                        (GmailSyncSearchConfig; default simple) */
    const char *host;                /* recorded as sync_tasks.worker_host */
    int debug;                       /* log_level = debug */
} gs_worker_conf_t;

/* A configuration with every default set and no database, client id or secret. */
gs_worker_conf_t *gs_worker_conf_make(apr_pool_t *p);

/* Applies the "key = value" lines of text (len bytes) to conf. On failure returns APR_EINVAL
 * and *err (from p) names the line and the key. Reading client_secret_file and token_key_file
 * happens here; token_key may be given several times (one key each, the current one first). */
apr_status_t gs_worker_conf_parse(gs_worker_conf_t *conf, apr_pool_t *p, const char *text,
                                  apr_size_t len, const char **err);

/* Applies the GS_* environment variables that are set. */
apr_status_t gs_worker_conf_from_env(gs_worker_conf_t *conf, apr_pool_t *p, const char **err);

/* Reads a whole configuration file, or stdin when path is "-", and parses it. */
apr_status_t gs_worker_conf_load(gs_worker_conf_t *conf, apr_pool_t *p, const char *path,
                                 const char **err);

/* Checks that what a run needs is there (db, client id and secret, token keys); fills the host
 * default. */
apr_status_t gs_worker_conf_check(gs_worker_conf_t *conf, apr_pool_t *p, const char **err);

#endif /* GS_WORKER_CONF_H */
