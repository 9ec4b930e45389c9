/* gs_sql_push.c -- the statements of push notifications (issue 26, sql/013); labels in
 * gs_push_start.h, found by gs_sql_find. */
#include "gs_push_start.h"
#include "gs_sql.h"

const gs_sql_stmt_t gs_sql_push_statements[] = {
    { GS_SQL_PUSH_SEEN,
      "SELECT 1 FROM gmailsync.push_messages WHERE message_id = %s AND expires_at > now()" },
    { GS_SQL_PUSH_RECORD,
      /* and a few expired rows go */
      "WITH gone AS (DELETE FROM gmailsync.push_messages WHERE message_id IN"
      "   (SELECT message_id FROM gmailsync.push_messages WHERE expires_at <= now()"
      "    ORDER BY expires_at LIMIT 16))"
      " INSERT INTO gmailsync.push_messages (message_id, expires_at)"
      " VALUES (%s, to_timestamp(%s::double precision))"
      " ON CONFLICT (message_id) DO UPDATE SET expires_at = GREATEST(EXCLUDED.expires_at,"
      "   gmailsync.push_messages.expires_at)" },
    { GS_SQL_PUSH_ACCOUNTS,
      "SELECT user_id, (history_id IS NOT NULL AND history_id >= %s::numeric)::text"
      " FROM gmailsync.accounts WHERE lower(email) = %s AND refresh_token IS NOT NULL"
      " ORDER BY user_id" },
    { GS_SQL_PUSH_FOLLOW_UP,
      "UPDATE gmailsync.accounts SET push_pending_since = COALESCE(push_pending_since, now())"
      " WHERE user_id = %s" },
    { GS_SQL_D_PUSH_PICK,
      "SELECT a.user_id FROM gmailsync.accounts a"
      " WHERE a.push_pending_since IS NOT NULL AND a.refresh_token IS NOT NULL AND NOT EXISTS (SELECT 1 FROM gmailsync.sync_tasks t"
      "   WHERE t.user_id = a.user_id AND t." GS_SQL_ACTIVE_PREDICATE ")"
      " ORDER BY a.push_pending_since LIMIT %s::integer"
      " FOR NO KEY UPDATE OF a SKIP LOCKED" },
    { GS_SQL_D_PUSH_CLEAR,
      "UPDATE gmailsync.accounts SET push_pending_since = NULL WHERE user_id = %s" },
    { NULL, NULL }
};
