/* gs_db.c -- see gs_db.h */
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include <libpq-fe.h>

#include "gs_db.h"
#include "gs_log.h"
#include "gs_sql.h"

static void end_transaction(gs_db_t *db);

struct gs_db_conn_t {
    apr_pool_t *pool;          /* the statements prepared for the current session */
    apr_hash_t *prepared;      /* label -> apr_dbd_prepared_t * */
    int backend_pid;           /* the backend they were prepared on (0: none yet) */
    const char *app_name;      /* the application_name its setup gave the session */
    const char *setup;         /* the setup it ran (a change runs the new one) */
    int generated;             /* generated statements prepared for this session */
};

#define GS_DB_CONN_KEY "gmailsync:gs_db_conn"

/* The lines PQERRORS_VERBOSE adds to a message besides the SQLSTATE: not for users' eyes. */
static int verbose_only(const char *line)
{
    static const char *const names[] = { "LOCATION:  ", "SCHEMA NAME:  ", "TABLE NAME:  ",
                                         "COLUMN NAME:  ", "DATATYPE NAME:  ",
                                         "CONSTRAINT NAME:  " };
    apr_size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strncmp(line, names[i], strlen(names[i]))) {
            return 1;
        }
    }
    return 0;
}

/* Keeps the driver's message and, apart, its SQLSTATE: the connection's messages are verbose
 * (before_use), "ERROR:  53100: could not extend file ...\nHINT: ...\nLOCATION: ...", which
 * becomes "ERROR:  could not extend file ...\nHINT: ..." and "53100". libpq's own messages
 * (a lost connection) have no SQLSTATE: "". */
static void remember_error(gs_db_t *db, int rc)
{
    const char *msg = db->handle ? apr_dbd_error(db->driver, db->handle, rc) : NULL;
    const char *c, *line;
    apr_array_header_t *kept;
    int i;

    db->last_sqlstate[0] = '\0';
    if (!msg || !*msg) {
        db->last_error = "database error";
        return;
    }
    if ((c = strstr(msg, ":  ")) && c - msg < 24) {
        for (i = 0; i < 5 && ((c[3 + i] >= '0' && c[3 + i] <= '9')
                              || (c[3 + i] >= 'A' && c[3 + i] <= 'Z')); i++) {
        }
        if (i == 5 && c[8] == ':' && c[9] == ' ') {
            memcpy(db->last_sqlstate, c + 3, 5);
            db->last_sqlstate[5] = '\0';
            msg = apr_pstrcat(db->pool, apr_pstrmemdup(db->pool, msg, (apr_size_t)(c + 3 - msg)),
                              c + 10, NULL);
        }
    }
    kept = apr_array_make(db->pool, 4, sizeof(const char *));
    for (line = msg; *line; ) {
        const char *nl = strchr(line, '\n');
        apr_size_t n = nl ? (apr_size_t)(nl - line + 1) : strlen(line);
        if (!verbose_only(line)) {
            APR_ARRAY_PUSH(kept, const char *) = apr_pstrmemdup(db->pool, line, n);
        }
        line += n;
    }
    msg = apr_array_pstrcat(db->pool, kept, 0);
    db->last_error = *msg ? msg : "database error";
}

static gs_db_conn_t *conn_make(apr_pool_t *parent)
{
    gs_db_conn_t *conn = apr_pcalloc(parent, sizeof *conn);

    if (apr_pool_create(&conn->pool, parent) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_tag(conn->pool, "gs_db_statements");
    conn->prepared = apr_hash_make(conn->pool);
    return conn;
}

/* libpq's connection, or NULL for another driver (then no reset detection: prepare once). */
static PGconn *pg_conn(const gs_db_t *db)
{
    if (!db->handle || strcmp(apr_dbd_name(db->driver), "pgsql")) {
        return NULL;
    }
    return apr_dbd_native_handle(db->driver, db->handle);
}

/* Is the connection known to be gone? libpq notices that the server closed it only when it reads
 * the EOF: after a FATAL ("terminating connection due to administrator command") the status can
 * still say OK. Between statements nothing is in flight, so a non-blocking read of what is
 * pending (nothing, usually: one recv that would block) settles it. */
static int is_broken(const gs_db_t *db)
{
    PGconn *c = pg_conn(db);

    if (!c) {
        return 0;
    }
    if (PQstatus(c) == CONNECTION_OK && !PQisBusy(c)) {
        (void)PQconsumeInput(c); /* on EOF libpq marks the connection bad */
    }
    return PQstatus(c) != CONNECTION_OK;
}

/* The session setup of db->session as one literal (names escaped by libpq), in conn->pool.
 * `name` is the application_name to give the session. */
static const char *setup_sql(gs_db_t *db, PGconn *c, const char *name)
{
    const gs_db_session_t *s = &db->session;
    char *lit = PQescapeLiteral(c, name, strlen(name));
    const char *sql;

    if (!lit) {
        return NULL;
    }
    /* our own connections hold nothing but our statements: a session we cannot tell from the
     * old one loses nothing by starting over. A mod_dbd connection may carry other modules'
     * DBDPrepareSQL statements: never deallocate those */
    sql = apr_pstrcat(db->conn->pool, db->params ? "DEALLOCATE ALL; " : "",
                      "SET application_name = ", lit, NULL);
    PQfreemem(lit);
#define GS_SETUP_TIMEOUT(guc, t) \
    if ((t) > 0) { \
        sql = apr_psprintf(db->conn->pool, "%s; SET " guc " = %" APR_INT64_T_FMT, sql, \
                           (apr_int64_t)apr_time_as_msec(t) > 0 ? \
                           (apr_int64_t)apr_time_as_msec(t) : (apr_int64_t)1); \
    }
    GS_SETUP_TIMEOUT("lock_timeout", s->lock_timeout)
    GS_SETUP_TIMEOUT("statement_timeout", s->statement_timeout)
    GS_SETUP_TIMEOUT("idle_in_transaction_session_timeout", s->idle_in_transaction_timeout)
#undef GS_SETUP_TIMEOUT
    return sql;
}

static apr_status_t run_literal(gs_db_t *db, const char *sql);

/* Outside a transaction, before a statement: is the session the one whose statements are
 * prepared, set up as db->session says? If not (a new backend, a reset one whose pid happens to
 * be the same, or a new setup), the statements are forgotten and the setup runs: it names the
 * session, which is how the next call tells (two local calls, no I/O while nothing changed). */
static void conn_sync(gs_db_t *db)
{
    PGconn *c = pg_conn(db);
    gs_db_conn_t *conn = db->conn;
    const char *reported, *want, *name, *sql, *key;
    int pid;

    if (!c || db->in_transaction || PQstatus(c) != CONNECTION_OK) {
        return;
    }
    pid = PQbackendPID(c);
    reported = PQparameterStatus(c, "application_name");
    want = db->session.name ? db->session.name : "gmailsync";
    key = db->session_key ? db->session_key : "";
    if (pid == conn->backend_pid && conn->app_name && reported && !strcmp(reported, conn->app_name)
        && conn->setup && !strcmp(conn->setup, key)) {
        return;
    }
    if (conn->backend_pid) {
        gs_log_error(GS_LOG_DEBUG, NULL, "event=db.session_changed old_pid=%d new_pid=%d",
                     conn->backend_pid, pid);
    }
    apr_pool_clear(conn->pool);
    conn->prepared = apr_hash_make(conn->pool);
    conn->generated = 0;
    conn->backend_pid = 0;
    conn->app_name = conn->setup = NULL;
    /* a conninfo that already names sessions as we do would make a reset session look like
     * ours: mark ours */
    name = reported && !strcmp(reported, want) ? apr_pstrcat(conn->pool, want, "*", NULL)
                                               : apr_pstrdup(conn->pool, want);
    if (!(sql = setup_sql(db, c, name)) || run_literal(db, sql) != APR_SUCCESS) {
        return; /* not set up: tried again before the next statement (which fails meanwhile) */
    }
    conn->backend_pid = pid;
    conn->app_name = name;
    conn->setup = apr_pstrdup(conn->pool, key);
    db->sessions++;
}

/* Resets a broken connection in place (PQreset, through apr_dbd_check_conn). Outside a
 * transaction only: inside one, the transaction died with the old backend and the caller must
 * see the error. Returns 1 when the connection is usable again. */
static int recover(gs_db_t *db, apr_pool_t *p)
{
    if (!db->handle || db->in_transaction
        || apr_dbd_check_conn(db->driver, p, db->handle) != APR_SUCCESS) {
        return 0;
    }
    db->conn->backend_pid = 0; /* whatever its pid, this session is new */
    conn_sync(db);
    db->resets++;
    gs_log_error(GS_LOG_NOTICE, p, "event=db.reconnected backend_pid=%d", db->conn->backend_pid);
    return 1;
}

/* Before a statement: a connection already known to be broken is reset now, and statements of a
 * previous backend are forgotten. */
static void before_use(gs_db_t *db, apr_pool_t *p)
{
    PGconn *c;

    if (is_broken(db)) {
        recover(db, p);
    }
    conn_sync(db);
    if (db->params && (c = pg_conn(db))) {
        /* on our own connections (not mod_dbd's, which other modules share) messages carry
         * their SQLSTATE (remember_error): a full disk is not a bug */
        (void)PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
    }
}

/* A generated statement (gs_db_select_generated): prepared under its label for the session
 * while the session has fewer than GS_DB_MAX_GENERATED of them; beyond, sent unprepared each
 * time (apr_dbd's NULL label: PQexecParams, its values still parameters), in p. */
static apr_dbd_prepared_t *generated(gs_db_t *db, apr_pool_t *p, const char *label,
                                     const char *sql)
{
    apr_dbd_prepared_t *stmt = apr_hash_get(db->conn->prepared, label, APR_HASH_KEY_STRING);
    int named = db->conn->generated < GS_DB_MAX_GENERATED, rc;

    if (stmt) {
        return stmt;
    }
    rc = apr_dbd_prepare(db->driver, named ? db->conn->pool : p, db->handle, sql,
                         named ? label : NULL, &stmt);
    if (rc != 0) {
        remember_error(db, rc);
        return NULL;
    }
    if (named) {
        apr_hash_set(db->conn->prepared, apr_pstrdup(db->conn->pool, label),
                     APR_HASH_KEY_STRING, stmt);
        db->conn->generated++;
    }
    return stmt;
}

static apr_dbd_prepared_t *statement(gs_db_t *db, apr_pool_t *p, const char *label,
                                     const char *sql)
{
    apr_dbd_prepared_t *stmt;
    const gs_sql_stmt_t *def;
    int rc;

    if (sql) {
        return generated(db, p, label, sql);
    }
    if ((stmt = apr_hash_get(db->conn->prepared, label, APR_HASH_KEY_STRING))) {
        return stmt;
    }
    if (!(def = gs_sql_find(label))) {
        db->last_error = apr_psprintf(db->pool, "statement %s is not in the catalogue", label);
        return NULL;
    }
    rc = apr_dbd_prepare(db->driver, db->conn->pool, db->handle, def->sql, def->label, &stmt);
    if (rc != 0) {
        remember_error(db, rc);
        return NULL;
    }
    apr_hash_set(db->conn->prepared, def->label, APR_HASH_KEY_STRING, stmt);
    return stmt;
}

static apr_status_t close_cleanup(void *data)
{
    gs_db_t *db = data;

    if (db->handle) {
        apr_dbd_close(db->driver, db->handle);
        db->handle = NULL;
    }
    return APR_SUCCESS;
}

static apr_status_t db_connect(gs_db_t *db, const char **err)
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
    conn_sync(db);
    return APR_SUCCESS;
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
    if (!(db->conn = conn_make(pool))) {
        *err = "out of memory";
        apr_pool_destroy(pool);
        return APR_ENOMEM;
    }
    if ((rv = apr_dbd_get_driver(pool, "pgsql", &db->driver)) != APR_SUCCESS) {
        *err = "cannot load the apr_dbd pgsql driver (Debian package libaprutil1-dbd-pgsql)";
        apr_pool_destroy(pool);
        return rv;
    }
    /* whoever destroys the pool (gs_db_close, or the process's last apr_terminate) closes the
     * connection: libpq's buffers never outlive it */
    apr_pool_cleanup_register(pool, db, close_cleanup, apr_pool_cleanup_null);
    if ((rv = db_connect(db, err)) != APR_SUCCESS) {
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
    close_cleanup(db);
    end_transaction(db);
    db->resets++;
    return db_connect(db, err);
}

apr_status_t gs_db_wrap(gs_db_t *db, apr_pool_t *p, const apr_dbd_driver_t *driver,
                        apr_dbd_t *handle, apr_pool_t *conn_pool)
{
    void *data = NULL;

    memset(db, 0, sizeof *db);
    db->driver = driver;
    db->handle = handle;
    db->pool = p;
    /* one set of statements per physical connection, kept with it: mod_dbd hands a connection to
     * one request at a time, so no lock is needed */
    if (apr_pool_userdata_get(&data, GS_DB_CONN_KEY, conn_pool) != APR_SUCCESS || !data) {
        if (!(data = conn_make(conn_pool))
            || apr_pool_userdata_setn(data, GS_DB_CONN_KEY, NULL, conn_pool) != APR_SUCCESS) {
            return APR_ENOMEM;
        }
    }
    db->conn = data;
    return APR_SUCCESS;
}

void gs_db_set_session(gs_db_t *db, const gs_db_session_t *session)
{
    db->session = *session;
    db->session.name = session->name ? apr_pstrndup(db->pool, session->name, 60) : NULL;
    db->session_key = apr_psprintf(db->pool, "%s|%" APR_INT64_T_FMT "|%" APR_INT64_T_FMT "|%"
                                   APR_INT64_T_FMT, db->session.name ? db->session.name : "",
                                   (apr_int64_t)session->lock_timeout,
                                   (apr_int64_t)session->statement_timeout,
                                   (apr_int64_t)session->idle_in_transaction_timeout);
}

void gs_db_close(gs_db_t *db)
{
    if (!db || !db->params) {
        return;
    }
    apr_pool_destroy(db->pool); /* close_cleanup closes the connection */
}

typedef struct {
    int nrows;                  /* exec: rows affected */
    apr_dbd_results_t *res;     /* select */
} run_out_t;

/* Runs a catalogue statement, once more on a reset connection if the first attempt found the
 * connection broken (outside transactions; see gs_db.h). */
static apr_status_t run(gs_db_t *db, apr_pool_t *p, const char *label, const char *sql,
                        int is_select, int nargs, const char *const *args, run_out_t *out)
{
    int attempt, rc = -1;

    for (attempt = 0; attempt < 2; attempt++) {
        apr_dbd_prepared_t *stmt;

        if (!db->handle) {
            db->last_error = "no database connection";
            db->last_sqlstate[0] = '\0';
            return APR_EGENERAL;
        }
        before_use(db, p);
        if ((stmt = statement(db, p, label, sql))) {
            out->res = NULL;
            /* random access (seek=1) for selects: the whole result arrives at once and its
             * column count is known; sequential mode reports 0 columns before the first row */
            rc = is_select ? apr_dbd_pselect(db->driver, p, db->handle, &out->res, stmt, 1, nargs,
                                             (const char **)args)
                           : apr_dbd_pquery(db->driver, p, db->handle, &out->nrows, stmt, nargs,
                                            (const char **)args);
            if (rc == 0) {
                return APR_SUCCESS;
            }
            remember_error(db, rc);
        }
        if (!is_broken(db) || !recover(db, p)) {
            break;
        }
    }
    gs_log_perror(GS_LOG_MARK, GS_LOG_DEBUG, APR_EGENERAL, p, "event=db.error statement=%s "
                  "reason=\"%s\"", label, db->last_error);
    return APR_EGENERAL;
}

apr_status_t gs_db_exec(gs_db_t *db, apr_pool_t *p, const char *label, int *affected,
                        int nargs, const char *const *args)
{
    run_out_t out = { 0, NULL };
    apr_status_t rv = run(db, p, label, NULL, 0, nargs, args, &out);

    if (rv == APR_SUCCESS && affected) {
        *affected = out.nrows;
    }
    return rv;
}

static apr_status_t select_rows(gs_db_t *db, apr_pool_t *p, const char *label, const char *sql,
                                gs_db_rows_t **prows, int nargs, const char *const *args);

apr_status_t gs_db_select(gs_db_t *db, apr_pool_t *p, const char *label, gs_db_rows_t **prows,
                          int nargs, const char *const *args)
{
    return select_rows(db, p, label, NULL, prows, nargs, args);
}

apr_status_t gs_db_select_generated(gs_db_t *db, apr_pool_t *p, const char *label,
                                    const char *sql, gs_db_rows_t **prows, int nargs,
                                    const char *const *args)
{
    return select_rows(db, p, label, sql, prows, nargs, args);
}

static apr_status_t select_rows(gs_db_t *db, apr_pool_t *p, const char *label, const char *sql,
                                gs_db_rows_t **prows, int nargs, const char *const *args)
{
    run_out_t out = { 0, NULL };
    apr_dbd_row_t *row = NULL;
    apr_array_header_t *cells;
    gs_db_rows_t *rows;
    apr_status_t rv;
    int col;

    if ((rv = run(db, p, label, sql, 1, nargs, args, &out)) != APR_SUCCESS) {
        return rv;
    }
    rows = apr_pcalloc(p, sizeof *rows);
    rows->ncols = apr_dbd_num_cols(db->driver, out.res);
    cells = apr_array_make(p, 8, sizeof(const char *));
    /* read to the end: the final get_row frees the driver's result */
    while (apr_dbd_get_row(db->driver, p, out.res, &row, -1) == 0) {
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
    /* READ COMMITTED explicitly: under REPEATABLE READ the snapshot would predate a lock wait */
    static const char begin[] = "BEGIN ISOLATION LEVEL READ COMMITTED";
    apr_status_t rv;

    before_use(db, p);
    /* a connection whose server restarted since its last use fails its first command: nothing
     * has happened in this transaction yet, so reset it and begin again */
    if ((rv = run_literal(db, begin)) != APR_SUCCESS
        && (!is_broken(db) || !recover(db, p) || (rv = run_literal(db, begin)) != APR_SUCCESS)) {
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

apr_status_t gs_db_listen(gs_db_t *db, apr_pool_t *p)
{
    before_use(db, p);
    return run_literal(db, GS_SQL_LISTEN_QUEUE);
}

int gs_db_socket(const gs_db_t *db)
{
    PGconn *c = pg_conn(db);

    return c && PQstatus(c) == CONNECTION_OK ? PQsocket(c) : -1;
}

int gs_db_notifications(gs_db_t *db)
{
    PGconn *c = pg_conn(db);
    PGnotify *n;
    int count = 0;

    if (!c || db->in_transaction) {
        return c ? 0 : -1;
    }
    /* reads what the socket has (never blocks); libpq also queues notifications that arrive
     * while other statements run, so the queue is drained whether or not the socket is ready */
    if (!PQisBusy(c) && !PQconsumeInput(c)) {
        return -1;
    }
    while ((n = PQnotifies(c))) {
        count++;
        PQfreemem(n);
    }
    return PQstatus(c) == CONNECTION_OK ? count : -1;
}

int gs_db_ping(gs_db_t *db, apr_pool_t *p)
{
    if (!db->handle) {
        return 0;
    }
    if (is_broken(db)) {
        return recover(db, p);
    }
    return apr_dbd_check_conn(db->driver, p, db->handle) == APR_SUCCESS;
}
