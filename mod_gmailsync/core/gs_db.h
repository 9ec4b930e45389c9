/* gs_db.h -- the core's view of a PostgreSQL connection through apr_dbd.
 *
 * In httpd a connection comes from mod_dbd's pool (wrap its ap_dbd_t with gs_db_wrap); the daemon
 * and the workers open their own (gs_db_open), since mod_dbd's pool does not exist after fork.
 * Only catalogue statements (gs_sql.h) are run with input; the few fixed transaction-control
 * commands are literals. Results are copied into the caller's pool: rows stay valid after the
 * next query.
 *
 * Surviving a PostgreSQL restart or failover: a broken connection is reset in place (PQreset, as
 * apr_dbd_check_conn does), and a reset connection has lost every server-side prepared statement.
 * So statements are prepared lazily, per physical connection, and the set is tied to the
 * backend session: when the session changes, the set is dropped and each statement is prepared
 * again on first use. A backend's process id alone does not tell sessions apart (a new server
 * after a failover starts its own pids from low numbers, and mod_dbd resets connections inside
 * ap_dbd_acquire without telling anyone), so each new session is given a setup (gs_db_session_t:
 * its application_name and its timeouts) and a session is the same one only while the server
 * still reports that application_name and pid: a reset session reports its conninfo's name.
 * A statement that fails outside a transaction because the connection broke is run once more
 * on the reset connection; inside a transaction the error is returned (the transaction is gone)
 * and the next use of the connection recovers.
 */
#ifndef GS_DB_H
#define GS_DB_H

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_pools.h>

/* The statements prepared on one physical connection (private to gs_db.c). */
typedef struct gs_db_conn_t gs_db_conn_t;

/* What every new backend session runs before its first statement (and again after any reset):
 * session-level settings, so that no statement of this connection can wait on a lock, run, or
 * sit idle inside a transaction without bound. 0 keeps the server's default. */
typedef struct {
    const char *name;                          /* application_name (pg_stat_activity), <= 60
                                                * bytes; also what tells a new session from the
                                                * old one (see above) */
    apr_interval_time_t lock_timeout;
    apr_interval_time_t statement_timeout;
    apr_interval_time_t idle_in_transaction_timeout;
} gs_db_session_t;

typedef struct gs_db_t {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    gs_db_conn_t *conn;        /* lives as long as the physical connection */
    apr_pool_t *pool;          /* the wrapper's pool (owned: lives as long as the connection) */
    const char *params;        /* for reconnecting; NULL for wrapped connections */
    int in_transaction;
    apr_pool_t *tx_pool;       /* holds the rollback cleanup of the open transaction */
    const char *last_error;    /* the driver's message for the last failure, or NULL */
    char last_sqlstate[6];     /* its SQLSTATE ("53100") on connections gs_db_open made; ""
                                * when it has none (connection lost) or for wrapped ones */
    unsigned long resets;      /* times this wrapper reset or reopened its connection */
    gs_db_session_t session;   /* the setup of every new session (gs_db_set_session) */
    const char *session_key;   /* the same as a string, to compare with the session's */
    unsigned long sessions;    /* backend sessions this wrapper has set up so far */
} gs_db_t;

typedef struct {
    int ncols;
    int nrows;
    const char **cells;        /* nrows * ncols; NULL is SQL NULL */
} gs_db_rows_t;

/* Loads the pgsql driver and connects with `params` (a libpq conninfo string or URI).
 * Everything lives in a subpool of p; gs_db_close or destroying p closes the connection. On
 * failure *err says why (never containing the password). */
apr_status_t gs_db_open(gs_db_t **pdb, apr_pool_t *p, const char *params, const char **err);

/* Drops the connection and opens it again with the same parameters (statements are prepared
 * again on first use). */
apr_status_t gs_db_reconnect(gs_db_t *db, const char **err);

/* Makes *db a wrapper of a connection someone else owns (mod_dbd); error messages are kept in p.
 * The set of statements prepared on the connection lives in conn_pool, the pool that lives
 * exactly as long as the physical connection (mod_dbd's ap_dbd_t.pool). */
apr_status_t gs_db_wrap(gs_db_t *db, apr_pool_t *p, const apr_dbd_driver_t *driver,
                        apr_dbd_t *handle, apr_pool_t *conn_pool);

void gs_db_close(gs_db_t *db);

/* Sets what each new backend session of db runs first (copied). Takes effect before the next
 * statement outside a transaction: a changed name or timeout is applied to the current session
 * then, which also drops its prepared statements (they are prepared again). */
void gs_db_set_session(gs_db_t *db, const gs_db_session_t *session);

/* Runs a catalogue statement that returns no rows; *affected (may be NULL) gets the row count. */
apr_status_t gs_db_exec(gs_db_t *db, apr_pool_t *p, const char *label, int *affected,
                        int nargs, const char *const *args);

/* Runs a catalogue statement and copies every row into p. */
apr_status_t gs_db_select(gs_db_t *db, apr_pool_t *p, const char *label, gs_db_rows_t **rows,
                          int nargs, const char *const *args);

/* Generated statements (the search's, gs_search.h): SQL built by the code from fixed pieces
 * only, never from input, whose values are all parameters. `label` names the statement (the
 * caller derives it from the SQL: the same SQL, the same label; it must start with "gs_g_").
 * It is prepared per backend session like a catalogue statement, and again after a reset; a
 * session prepares at most this many of them, and runs further ones unprepared (their values
 * still sent as parameters). */
#define GS_DB_MAX_GENERATED 64
apr_status_t gs_db_select_generated(gs_db_t *db, apr_pool_t *p, const char *label,
                                    const char *sql, gs_db_rows_t **rows, int nargs,
                                    const char *const *args);

/* The cell at (row, col), or NULL when out of range or SQL NULL. */
const char *gs_db_cell(const gs_db_rows_t *rows, int row, int col);

/* BEGIN ISOLATION LEVEL READ COMMITTED. Registers a cleanup on p that rolls back if the
 * transaction is still open when p dies, so no error path can return a connection to a pool
 * with a transaction open. */
apr_status_t gs_db_begin(gs_db_t *db, apr_pool_t *p);
apr_status_t gs_db_commit(gs_db_t *db);
/* Safe to call when no transaction is open. */
apr_status_t gs_db_rollback(gs_db_t *db);

/* LISTEN on the queue channel (GS_SQL_QUEUE_CHANNEL, a fixed literal: LISTEN cannot be
 * prepared). A reset or reconnected connection has forgotten it: LISTEN again (db->resets
 * tells). */
apr_status_t gs_db_listen(gs_db_t *db, apr_pool_t *p);
/* The connection's socket (PQsocket) for poll(2), or -1 when there is none. */
int gs_db_socket(const gs_db_t *db);
/* Reads what arrived without blocking and discards the queued notifications; returns how many
 * there were, or -1 when the connection is gone (reconnect, LISTEN again, poll once). */
int gs_db_notifications(gs_db_t *db);

/* Is the connection usable? A connection known to be broken is reset first. */
int gs_db_ping(gs_db_t *db, apr_pool_t *p);

#endif /* GS_DB_H */
