/* gs_db.c -- see gs_db.h */
#include <apr_strings.h>
#include <apr_tables.h>

#include "gs_db.h"
#include "gs_log.h"
#include "gs_sql.h"

static void end_transaction(gs_db_t *db);

static void remember_error(gs_db_t *db, int rc)
{
    const char *msg = db->handle ? apr_dbd_error(db->driver, db->handle, rc) : NULL;

    db->last_error = apr_pstrdup(db->pool, msg && *msg ? msg : "database error");
}

static apr_status_t prepare_catalogue(gs_db_t *db, const char **err)
{
    const gs_sql_stmt_t *s;

    db->prepared = apr_hash_make(db->pool);
    for (s = gs_sql_statements; s->label; s++) {
        apr_dbd_prepared_t *stmt = NULL;
        int rc = apr_dbd_prepare(db->driver, db->pool, db->handle, s->sql, s->label, &stmt);

        if (rc != 0) {
            remember_error(db, rc);
            *err = apr_psprintf(db->pool, "cannot prepare %s: %s", s->label, db->last_error);
            return APR_EGENERAL;
        }
        apr_hash_set(db->prepared, s->label, APR_HASH_KEY_STRING, stmt);
    }
    return APR_SUCCESS;
}

static apr_status_t connect_and_prepare(gs_db_t *db, const char **err)
{
    const char *dbd_err = NULL;
    apr_status_t rv;

    rv = apr_dbd_open_ex(db->driver, db->pool, db->params, &db->handle, &dbd_err);
    if (rv != APR_SUCCESS) {
        db->handle = NULL;
        /* libpq's messages name host and port, never the password */
        *err = apr_psprintf(db->pool, "cannot connect to the database: %s",
                            dbd_err ? dbd_err : "unknown error");
        return rv;
    }
    return prepare_catalogue(db, err);
}

apr_status_t gs_db_open(gs_db_t **pdb, apr_pool_t *p, const char *params, const char **err)
{
    apr_pool_t *pool;
    gs_db_t *db;
    apr_status_t rv;

    if ((rv = apr_pool_create(&pool, p)) != APR_SUCCESS) {
        *err = "out of memory";
        return rv;
    }
    apr_pool_tag(pool, "gs_db");
    db = apr_pcalloc(pool, sizeof *db);
    db->pool = pool;
    db->params = apr_pstrdup(pool, params);
    if ((rv = apr_dbd_get_driver(pool, "pgsql", &db->driver)) != APR_SUCCESS) {
        *err = "cannot load the apr_dbd pgsql driver (Debian package libaprutil1-dbd-pgsql)";
        apr_pool_destroy(pool);
        return rv;
    }
    if ((rv = connect_and_prepare(db, err)) != APR_SUCCESS) {
        *err = apr_pstrdup(p, *err);
        gs_db_close(db);
        return rv;
    }
    *pdb = db;
    return APR_SUCCESS;
}

apr_status_t gs_db_reconnect(gs_db_t *db, const char **err)
{
    if (!db->params) {
        *err = "this connection is owned by mod_dbd";
        return APR_ENOTIMPL;
    }
    if (db->handle) {
        apr_dbd_close(db->driver, db->handle);
        db->handle = NULL;
    }
    end_transaction(db);
    return connect_and_prepare(db, err);
}

gs_db_t *gs_db_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                    apr_hash_t *prepared)
{
    gs_db_t *db = apr_pcalloc(p, sizeof *db);

    db->driver = driver;
    db->handle = handle;
    db->prepared = prepared;
    db->pool = p;
    return db;
}

void gs_db_close(gs_db_t *db)
{
    if (!db || !db->params) {
        return;
    }
    if (db->handle) {
        apr_dbd_close(db->driver, db->handle);
        db->handle = NULL;
    }
    apr_pool_destroy(db->pool);
}

static apr_dbd_prepared_t *statement(gs_db_t *db, const char *label)
{
    apr_dbd_prepared_t *stmt = apr_hash_get(db->prepared, label, APR_HASH_KEY_STRING);

    if (!stmt) {
        db->last_error = apr_psprintf(db->pool, "statement %s is not prepared", label);
    }
    return stmt;
}

apr_status_t gs_db_exec(gs_db_t *db, apr_pool_t *p, const char *label, int *affected,
                        int nargs, const char *const *args)
{
    apr_dbd_prepared_t *stmt;
    int nrows = 0, rc;

    if (!db->handle || !(stmt = statement(db, label))) {
        return APR_EGENERAL;
    }
    rc = apr_dbd_pquery(db->driver, p, db->handle, &nrows, stmt, nargs, (const char **)args);
    if (rc != 0) {
        remember_error(db, rc);
        gs_log_perror(GS_LOG_MARK, GS_LOG_DEBUG, APR_EGENERAL, p, "event=db.error statement=%s "
                      "reason=\"%s\"", label, db->last_error);
        return APR_EGENERAL;
    }
    if (affected) {
        *affected = nrows;
    }
    return APR_SUCCESS;
}

apr_status_t gs_db_select(gs_db_t *db, apr_pool_t *p, const char *label, gs_db_rows_t **prows,
                          int nargs, const char *const *args)
{
    apr_dbd_prepared_t *stmt;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_array_header_t *cells;
    gs_db_rows_t *rows;
    int rc, col;

    if (!db->handle || !(stmt = statement(db, label))) {
        return APR_EGENERAL;
    }
    /* random access (seek=1): the whole result arrives at once and its column count is known;
     * the sequential mode streams rows but reports 0 columns until the first row is fetched */
    rc = apr_dbd_pselect(db->driver, p, db->handle, &res, stmt, 1, nargs, (const char **)args);
    if (rc != 0) {
        remember_error(db, rc);
        gs_log_perror(GS_LOG_MARK, GS_LOG_DEBUG, APR_EGENERAL, p, "event=db.error statement=%s "
                      "reason=\"%s\"", label, db->last_error);
        return APR_EGENERAL;
    }
    rows = apr_pcalloc(p, sizeof *rows);
    rows->ncols = apr_dbd_num_cols(db->driver, res);
    cells = apr_array_make(p, 8, sizeof(const char *));
    /* read to the end: the final get_row frees the driver's result */
    while (apr_dbd_get_row(db->driver, p, res, &row, -1) == 0) {
        for (col = 0; col < rows->ncols; col++) {
            /* get_entry would hand SQL NULL out as "": datum_get tells the two apart */
            char *v = NULL;
            apr_status_t drv = apr_dbd_datum_get(db->driver, row, col, APR_DBD_TYPE_STRING, &v);

            if (drv == APR_ENOENT) {
                v = NULL;
            }
            else if (drv != APR_SUCCESS) {
                v = (char *)apr_dbd_get_entry(db->driver, row, col);
            }
            APR_ARRAY_PUSH(cells, const char *) = v ? apr_pstrdup(p, v) : NULL;
        }
        rows->nrows++;
    }
    rows->cells = (const char **)cells->elts;
    *prows = rows;
    return APR_SUCCESS;
}

const char *gs_db_cell(const gs_db_rows_t *rows, int row, int col)
{
    if (!rows || row < 0 || row >= rows->nrows || col < 0 || col >= rows->ncols) {
        return NULL;
    }
    return rows->cells[row * rows->ncols + col];
}

static apr_status_t rollback_cleanup(void *data)
{
    gs_db_t *db = data;

    db->tx_pool = NULL; /* the pool is going away: do not kill this cleanup later */
    if (db->in_transaction) {
        gs_db_rollback(db);
    }
    return APR_SUCCESS;
}

static void end_transaction(gs_db_t *db)
{
    db->in_transaction = 0;
    if (db->tx_pool) {
        apr_pool_cleanup_kill(db->tx_pool, db, rollback_cleanup);
        db->tx_pool = NULL;
    }
}

static apr_status_t run_literal(gs_db_t *db, const char *sql)
{
    int nrows = 0, rc;

    if (!db->handle) {
        return APR_EGENERAL;
    }
    if ((rc = apr_dbd_query(db->driver, db->handle, &nrows, sql)) != 0) {
        remember_error(db, rc);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t gs_db_begin(gs_db_t *db, apr_pool_t *p)
{
    apr_status_t rv;

    /* READ COMMITTED explicitly: under REPEATABLE READ the snapshot would predate a lock wait */
    if ((rv = run_literal(db, "BEGIN ISOLATION LEVEL READ COMMITTED")) != APR_SUCCESS) {
        return rv;
    }
    db->in_transaction = 1;
    db->tx_pool = p;
    apr_pool_cleanup_register(p, db, rollback_cleanup, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

apr_status_t gs_db_commit(gs_db_t *db)
{
    apr_status_t rv = run_literal(db, "COMMIT");

    if (rv != APR_SUCCESS) {
        /* a failed COMMIT leaves an aborted transaction behind on some paths: end it */
        run_literal(db, "ROLLBACK");
    }
    end_transaction(db);
    return rv;
}

apr_status_t gs_db_rollback(gs_db_t *db)
{
    apr_status_t rv = APR_SUCCESS;

    if (db->in_transaction) {
        rv = run_literal(db, "ROLLBACK");
        end_transaction(db);
    }
    return rv;
}

int gs_db_ping(gs_db_t *db, apr_pool_t *p)
{
    return db->handle && apr_dbd_check_conn(db->driver, p, db->handle) == APR_SUCCESS;
}
