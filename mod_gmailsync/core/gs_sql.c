/* gs_sql.c -- the statement catalogue; see gs_sql.h */
#include <string.h>

#include "gs_sql.h"

/* RFC 3339 in UTC with milliseconds, from a timestamptz expression. */
#define RFC3339(expr) "to_char((" expr ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

const gs_sql_stmt_t gs_sql_statements[] = {
    { GS_SQL_SCHEMA_VERSION,
      "SELECT COALESCE(max(version), 0)::text, " RFC3339("now()")
      " FROM gmailsync.schema_migrations" },
    { NULL, NULL }
};

const gs_sql_stmt_t *gs_sql_find(const char *label)
{
    const gs_sql_stmt_t *s;

    for (s = gs_sql_statements; s->label; s++) {
        if (!strcmp(s->label, label)) {
            return s;
        }
    }
    return NULL;
}
