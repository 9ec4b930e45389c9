/* gs_sql.c -- the statement catalogue; see gs_sql.h */
#include <string.h>

#include "gs_sql.h"

/* RFC 3339 in UTC with milliseconds, from a timestamptz expression. */
#define RFC3339(expr) "to_char((" expr ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

const gs_sql_stmt_t gs_sql_statements[] = {
    { GS_SQL_SCHEMA_VERSION,
      "SELECT COALESCE(max(version), 0)::text, " RFC3339("now()")
      " FROM gmailsync.schema_migrations" },

    /* ---------------------------------------------------------------- identity and start */
    { GS_SQL_SESSION_USER,
      "SELECT user_id, (extract(epoch FROM expires_at) * 1000000)::bigint::text"
      " FROM gmailsync.sessions"
      " WHERE token_sha256 = decode(%s, 'hex') AND expires_at > now()" },
    { GS_SQL_START_TIMEOUTS,
      "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)" },
    { GS_SQL_START_LOCK,
      "SELECT pg_advisory_xact_lock(" GS_SQL_LOCK_NAMESPACE ", hashtext(%s))" },
    { GS_SQL_ACCOUNT_EXISTS,
      "SELECT 1 FROM gmailsync.accounts WHERE user_id = %s" },
    { GS_SQL_ACTIVE_TASK_LOCK,
      "SELECT task_id, state FROM gmailsync.sync_tasks"
      " WHERE user_id = %s AND " GS_SQL_ACTIVE_PREDICATE " FOR UPDATE" },
    { GS_SQL_INSERT_TASK,
      "INSERT INTO gmailsync.sync_tasks (user_id, force_full) VALUES (%s, %s::boolean)"
      " ON CONFLICT (user_id) WHERE " GS_SQL_ACTIVE_PREDICATE " DO NOTHING"
      " RETURNING task_id, state" },

    { NULL, NULL }
};

int gs_sql_for_httpd(const gs_sql_stmt_t *stmt)
{
    return strncmp(stmt->label, GS_SQL_WORKER_PREFIX, strlen(GS_SQL_WORKER_PREFIX))
           && strncmp(stmt->label, GS_SQL_DAEMON_PREFIX, strlen(GS_SQL_DAEMON_PREFIX));
}

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
