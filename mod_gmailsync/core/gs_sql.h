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

/* The statement catalogue, terminated by an entry whose label is NULL. */
extern const gs_sql_stmt_t gs_sql_statements[];

/* Looks a statement up by label; NULL when unknown. */
const gs_sql_stmt_t *gs_sql_find(const char *label);

/* Oldest schema migration this build works with. */
#define GS_SQL_MIN_SCHEMA 1

#endif /* GS_SQL_H */
