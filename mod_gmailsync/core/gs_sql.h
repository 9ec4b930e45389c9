/* gs_sql.h -- every SQL statement the C code runs, each under a label, in one place.
 *
 * Statements use apr_dbd placeholders (%s, %d, %lld; a literal % is %%). The httpd glue registers
 * them with mod_dbd (ap_dbd_prepare); the daemon and workers prepare them on their own
 * connections. No SQL is ever assembled from input.
 */
#ifndef GS_SQL_H
#define GS_SQL_H

typedef struct {
    const char *label;
    const char *sql;
} gs_sql_stmt_t;

/* Returns: the newest applied migration number and the database clock (RFC 3339 UTC). */
#define GS_SQL_SCHEMA_VERSION "gs_schema_version"

/* The predicate of the partial unique index sync_tasks_one_active_per_user. Statements that
 * rely on the index (ON CONFLICT targets) must repeat it exactly. */
#define GS_SQL_ACTIVE_PREDICATE "state IN ('CREATED', 'RUNNING')"

/* First key of the transaction-level advisory lock that serialises starts per user ('GMSY'). */
#define GS_SQL_LOCK_NAMESPACE "1196249945"

/* Identity and start (see gs_start.h). */
#define GS_SQL_SESSION_USER      "gs_session_user"       /* (sha256 hex) -> user_id, expiry us */
#define GS_SQL_START_TIMEOUTS    "gs_start_timeouts"     /* (lock ms, statement ms) */
#define GS_SQL_START_LOCK        "gs_start_lock"         /* (user_id) */
#define GS_SQL_ACCOUNT_EXISTS    "gs_account_exists"     /* (user_id) -> 1 row if linked */
#define GS_SQL_ACTIVE_TASK_LOCK  "gs_active_task_lock"   /* (user_id) -> task_id, state */
#define GS_SQL_INSERT_TASK       "gs_insert_task"        /* (user_id, force_full) -> task_id, state */

/* The statement catalogue, terminated by an entry whose label is NULL. */
extern const gs_sql_stmt_t gs_sql_statements[];

/* Labels starting with these are prepared only by the worker or the daemon, on their own
 * connections; httpd's mod_dbd pool prepares every other statement. */
#define GS_SQL_WORKER_PREFIX "gs_w_"
#define GS_SQL_DAEMON_PREFIX "gs_d_"

/* Does httpd's connection pool need this statement? */
int gs_sql_for_httpd(const gs_sql_stmt_t *stmt);

/* Looks a statement up by label; NULL when unknown. */
const gs_sql_stmt_t *gs_sql_find(const char *label);

/* Oldest schema migration this build works with. */
#define GS_SQL_MIN_SCHEMA 1

#endif /* GS_SQL_H */
