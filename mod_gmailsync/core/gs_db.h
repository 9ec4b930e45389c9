/* gs_db.h -- the core's view of a PostgreSQL connection through apr_dbd.
 *
 * In httpd a connection comes from mod_dbd's pool (wrap its ap_dbd_t with gs_db_wrap); the daemon
 * and the workers open their own (gs_db_open), since mod_dbd's pool does not exist after fork.
 * Only catalogue statements (gs_sql.h) are run with input; the few fixed transaction-control
 * commands are literals. Results are copied into the caller's pool: rows stay valid after the
 * next query.
 */
#ifndef GS_DB_H
#define GS_DB_H

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_pools.h>

typedef struct gs_db_t {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;      /* label -> apr_dbd_prepared_t * */
    apr_pool_t *pool;          /* lives as long as the connection */
    const char *params;        /* for reconnecting; NULL for wrapped connections */
    int in_transaction;
    apr_pool_t *tx_pool;       /* holds the rollback cleanup of the open transaction */
    const char *last_error;    /* the driver's message for the last failure, or NULL */
} gs_db_t;

typedef struct {
    int ncols;
    int nrows;
    const char **cells;        /* nrows * ncols; NULL is SQL NULL */
} gs_db_rows_t;

/* Loads the pgsql driver, connects with `params` (a libpq conninfo string or URI) and prepares
 * every catalogue statement. Everything lives in a subpool of p; gs_db_close or destroying p
 * releases it. On failure *err says why (never containing the password). */
apr_status_t gs_db_open(gs_db_t **pdb, apr_pool_t *p, const char *params, const char **err);

/* Drops the connection and opens it again with the same parameters (statements re-prepared). */
apr_status_t gs_db_reconnect(gs_db_t *db, const char **err);

/* Wraps a connection someone else owns (mod_dbd). The wrapper is allocated from p. */
gs_db_t *gs_db_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                    apr_hash_t *prepared);

void gs_db_close(gs_db_t *db);

/* Runs a catalogue statement that returns no rows; *affected (may be NULL) gets the row count. */
apr_status_t gs_db_exec(gs_db_t *db, apr_pool_t *p, const char *label, int *affected,
                        int nargs, const char *const *args);

/* Runs a catalogue statement and copies every row into p. */
apr_status_t gs_db_select(gs_db_t *db, apr_pool_t *p, const char *label, gs_db_rows_t **rows,
                          int nargs, const char *const *args);

/* The cell at (row, col), or NULL when out of range or SQL NULL. */
const char *gs_db_cell(const gs_db_rows_t *rows, int row, int col);

/* BEGIN ISOLATION LEVEL READ COMMITTED. Registers a cleanup on p that rolls back if the
 * transaction is still open when p dies, so no error path can return a connection to a pool
 * with a transaction open. */
apr_status_t gs_db_begin(gs_db_t *db, apr_pool_t *p);
apr_status_t gs_db_commit(gs_db_t *db);
/* Safe to call when no transaction is open. */
apr_status_t gs_db_rollback(gs_db_t *db);

/* Is the connection alive? */
int gs_db_ping(gs_db_t *db, apr_pool_t *p);

#endif /* GS_DB_H */
