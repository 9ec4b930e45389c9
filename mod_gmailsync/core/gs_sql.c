/* gs_sql.c -- the statement catalogue; see gs_sql.h */
#include <string.h>

#include "gs_sql.h"

#define RFC3339 GS_SQL_RFC3339

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
    { GS_SQL_ACTIVE_TASK,
      "SELECT task_id, state FROM gmailsync.sync_tasks"
      " WHERE user_id = %s AND " GS_SQL_ACTIVE_PREDICATE },
    { GS_SQL_ACTIVE_TASK_LOCK,
      "SELECT task_id, state FROM gmailsync.sync_tasks"
      " WHERE user_id = %s AND " GS_SQL_ACTIVE_PREDICATE " FOR UPDATE" },
    { GS_SQL_INSERT_TASK,
      "INSERT INTO gmailsync.sync_tasks (user_id, force_full, trigger)"
      " VALUES (%s, %s::boolean, %s)"
      " ON CONFLICT (user_id) WHERE " GS_SQL_ACTIVE_PREDICATE " DO NOTHING"
      " RETURNING task_id, state" },

    /* ---------------------------------------------------------------- dev login (issue 21) */
    { GS_SQL_DEV_LOGIN_TAKE,
      /* the nonce is used up whatever follows (expired, or its session gone); a live one
       * becomes a new session of the same user and expiry */
      "WITH n AS (DELETE FROM gmailsync.dev_login_nonces WHERE nonce_sha256 = decode(%s, 'hex')"
      "   RETURNING session_sha256, expires_at),"
      " s AS (SELECT s.user_id, s.expires_at FROM n"
      "   JOIN gmailsync.sessions s ON s.token_sha256 = n.session_sha256"
      "   WHERE n.expires_at > now() AND s.expires_at > now())"
      " INSERT INTO gmailsync.sessions (token_sha256, user_id, expires_at)"
      " SELECT decode(%s, 'hex'), s.user_id, s.expires_at FROM s"
      " RETURNING user_id, (extract(epoch FROM expires_at) * 1000000)::bigint::text" },

    /* ---------------------------------------------------------------- auto sync (issue 16) */
    /* Every linked account (a refresh token) with why it is or is not due and when: the newest
     * task decides (one is active at a time, so the newest created is the active or the newest
     * finished one; through the index on (user_id, created_at DESC)):
     *   new       never synced: due now
     *   active    CREATED, RUNNING or STUCK: not due
     *   revoked   the last sync failed auth_revoked or token_undecryptable and the account row
     *             has not changed since (linking again rewrites it): not due
     *   relinked  such a failure, then the account was linked again: due now
     *   backoff   another failure: finished + min(cap, interval * 2^consecutive failures)
     *   interval  SUCCEEDED or CANCELLED: finished + interval
     * plus a jitter of 0-10 % of the interval, fixed per (account, last task) so that every host
     * computes the same time. The first two arguments are the interval and the cap in seconds. */
#define SCHED_CTE(where) \
    "WITH cfg AS (SELECT make_interval(secs => %s::double precision) AS iv," \
    "                    make_interval(secs => %s::double precision) AS cap)," \
    " s AS (SELECT a.user_id, k.why, l.finished_at AS last_at, ls.finished_at AS success_at," \
    "   a.created_at AS linked_at, CASE k.why" \
    "     WHEN 'new' THEN a.created_at WHEN 'relinked' THEN a.updated_at" \
    "     WHEN 'backoff' THEN l.finished_at + LEAST(cfg.cap, cfg.iv * power(2, f.n))" \
    "     WHEN 'interval' THEN l.finished_at + cfg.iv END" \
    "   + cfg.iv * ((abs(hashtext(a.user_id || COALESCE(l.task_id::text, ''))) % 1000) / 10000.0)" \
    "   AS due_at" \
    "   FROM cfg, gmailsync.accounts a" \
    "   LEFT JOIN LATERAL (SELECT st.task_id, st.state, st.error_code, st.finished_at" \
    "     FROM gmailsync.sync_tasks st WHERE st.user_id = a.user_id" \
    "     ORDER BY st.created_at DESC LIMIT 1) l ON true" \
    "   LEFT JOIN LATERAL (SELECT st.finished_at FROM gmailsync.sync_tasks st" \
    "     WHERE st.user_id = a.user_id AND st.state = 'SUCCEEDED'" \
    "     ORDER BY st.created_at DESC LIMIT 1) ls ON true" \
    "   LEFT JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM gmailsync.sync_tasks sf" \
    "     WHERE sf.user_id = a.user_id AND sf.state = 'FAILED' AND sf.created_at >" \
    "       COALESCE((SELECT max(so.created_at) FROM gmailsync.sync_tasks so" \
    "                 WHERE so.user_id = a.user_id AND so.state <> 'FAILED'), '-infinity')" \
    "     ORDER BY sf.created_at DESC LIMIT 16) x) f ON true" \
    "   CROSS JOIN LATERAL (SELECT CASE" \
    "     WHEN l.state IS NULL THEN 'new'" \
    "     WHEN l.state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN 'active'" \
    "     WHEN l.state = 'FAILED' AND l.error_code IN ('auth_revoked', 'token_undecryptable')" \
    "       THEN CASE WHEN a.updated_at > l.finished_at THEN 'relinked' ELSE 'revoked' END" \
    "     WHEN l.state = 'FAILED' THEN 'backoff' ELSE 'interval' END AS why) k" \
    "   WHERE a.refresh_token IS NOT NULL" where ")"
    { GS_SQL_D_SCHEDULE_PICK,
      /* the accounts due now, most overdue first, at most the free room (the argument minus
       * the tasks already queued on every host) and one more, which is not started but tells
       * that more are due than the round can start; an account another host's round holds is
       * skipped, not waited for. The third column is that room. */
      SCHED_CTE("")
      ", q AS (SELECT GREATEST(0, %s::integer - count(*)) AS room FROM gmailsync.sync_tasks"
      "        WHERE state = 'CREATED')"
      " SELECT a.user_id, s.why, q.room::text FROM q, gmailsync.accounts a"
      " JOIN s ON s.user_id = a.user_id"
      " WHERE s.due_at <= now() ORDER BY s.due_at, a.user_id LIMIT (SELECT room + 1 FROM q)"
      " FOR NO KEY UPDATE OF a SKIP LOCKED" },
    { GS_SQL_D_SCHEDULE_DUE,
      /* the same question for one account, asked again under its start lock */
      SCHED_CTE(" AND a.user_id = %s")
      " SELECT why FROM s WHERE due_at <= now()" },
    { GS_SQL_START_TRY_LOCK,
      "SELECT pg_try_advisory_xact_lock(" GS_SQL_LOCK_NAMESPACE ", hashtext(%s))::text" },
    { GS_SQL_SCHEDULE_NEXT,
      SCHED_CTE(" AND a.user_id = %s")
      " SELECT why, " RFC3339("CASE WHEN due_at IS NOT NULL THEN GREATEST(due_at, now()) END") ","
      " floor(extract(epoch FROM now() - success_at))::bigint::text FROM s" },
    { GS_SQL_SCHEDULE_STATS,
      SCHED_CTE("")
      " SELECT count(*) FILTER (WHERE due_at <= now())::text,"
      " count(*) FILTER (WHERE why = 'active')::text,"
      " count(*) FILTER (WHERE why = 'backoff' AND due_at > now())::text,"
      " count(*) FILTER (WHERE why = 'revoked')::text,"
      " COALESCE(max(extract(epoch FROM now() - COALESCE(success_at, linked_at))), 0)::text,"
      " count(*)::text,"
      " COALESCE(max(extract(epoch FROM now() - due_at)) FILTER (WHERE due_at <= now()), 0)::text"
      " FROM s" },
#undef SCHED_CTE

    /* ---------------------------------------------------------------- connect (issue 13) */
    { GS_SQL_OAUTH_STATE_PUT,
      /* the user's pending states beyond the newest ones go with it: one user cannot fill the
       * table by starting over and over */
      "WITH expired AS (DELETE FROM gmailsync.oauth_states WHERE expires_at < now()),"
      " surplus AS (DELETE FROM gmailsync.oauth_states WHERE state_sha256 IN"
      "   (SELECT state_sha256 FROM gmailsync.oauth_states WHERE user_id = %s"
      "    ORDER BY created_at DESC, state_sha256 OFFSET %s::integer))"
      " INSERT INTO gmailsync.oauth_states"
      " (state_sha256, user_id, session_sha256, code_verifier, expires_at)"
      " VALUES (decode(%s, 'hex'), %s, decode(%s, 'hex'), %s,"
      "         now() + make_interval(secs => %s::double precision))" },
    { GS_SQL_OAUTH_STATE_TAKE,
      "DELETE FROM gmailsync.oauth_states WHERE state_sha256 = decode(%s, 'hex')"
      " RETURNING user_id, encode(session_sha256, 'hex'), code_verifier,"
      " (expires_at > now())::text" },
    { GS_SQL_OAUTH_LINK,
      /* the cursor and a pending full sync belong to the mailbox: another address starts over */
      "WITH old AS (SELECT email FROM gmailsync.accounts WHERE user_id = %s FOR UPDATE),"
      " up AS (INSERT INTO gmailsync.accounts AS a"
      "   (user_id, email, refresh_token, access_token, access_token_expires_at)"
      "   VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s::double precision))"
      "   ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email,"
      "   refresh_token = EXCLUDED.refresh_token, access_token = EXCLUDED.access_token,"
      "   access_token_expires_at = EXCLUDED.access_token_expires_at,"
      "   history_id = CASE WHEN lower(a.email) = lower(EXCLUDED.email) THEN a.history_id END,"
      "   last_full_sync_at = CASE WHEN lower(a.email) = lower(EXCLUDED.email)"
      "                       THEN a.last_full_sync_at END,"
      "   full_sync_task = CASE WHEN lower(a.email) = lower(EXCLUDED.email)"
      "                    THEN a.full_sync_task END,"
      "   full_sync_history_id = CASE WHEN lower(a.email) = lower(EXCLUDED.email)"
      "                          THEN a.full_sync_history_id END,"
      "   full_sync_started_at = CASE WHEN lower(a.email) = lower(EXCLUDED.email)"
      "                          THEN a.full_sync_started_at END,"
      "   updated_at = now()"
      "   RETURNING a.email)"
      " SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM old) THEN 'new'"
      "             WHEN (SELECT lower(email) FROM old) = (SELECT lower(email) FROM up) THEN 'same'"
      "             ELSE 'other' END" },
    { GS_SQL_CANCEL_ACTIVE,
      "UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now(), updated_at = now()"
      " WHERE user_id = %s AND " GS_SQL_ACTIVE_PREDICATE " RETURNING task_id::text" },
    { GS_SQL_OAUTH_UNLINK,
      "DELETE FROM gmailsync.accounts WHERE user_id = %s RETURNING refresh_token, access_token" },
    { GS_SQL_MESSAGES_FORGET,
      "DELETE FROM gmailsync.messages WHERE user_id = %s" },

    /* ---------------------------------------------------------------- progress, status, health */
#define TASK_COLUMNS "t.task_id::text, t.state, t.mode, t.progress_percentage::text," \
    " t.processed::text, t.total::text, t.error_code, t.error_message, " RFC3339("t.created_at") \
    ", " RFC3339("t.started_at") ", " RFC3339("t.heartbeat_at") ", " RFC3339("t.finished_at") \
    ", t.retry_reason, " RFC3339("t.retry_until") ", t.retry_attempt::text"
    { GS_SQL_TASK_GET,
      "SELECT " TASK_COLUMNS " FROM gmailsync.sync_tasks t"
      " WHERE t.task_id = %s::uuid AND t.user_id = %s" },
    { GS_SQL_TASK_CANCEL,
      "UPDATE gmailsync.sync_tasks t SET state = 'CANCELLED', finished_at = now(), updated_at = now()"
      " WHERE t.task_id = %s::uuid AND t.user_id = %s AND t." GS_SQL_ACTIVE_PREDICATE
      " RETURNING " TASK_COLUMNS },
    { GS_SQL_CHANGES_PURGE,
      /* the daemon: changes older than the retention, oldest first, a bounded batch; a user
       * whose counter a sync holds is skipped (no wait on a worker's lock) and purged later.
       * Per user, seq order is time order (numbers and times are taken under the counter's
       * lock), so what goes is a prefix: purged_through says up to where */
      "WITH o AS (SELECT c.user_id, c.seq FROM gmailsync.changes c"
      "   WHERE c.created_at < now() - make_interval(secs => %s::double precision)"
      "   ORDER BY c.created_at LIMIT %s::integer),"
      " s AS (SELECT q.user_id FROM gmailsync.change_seq q"
      "   WHERE q.user_id IN (SELECT o.user_id FROM o) FOR UPDATE SKIP LOCKED),"
      " d AS (DELETE FROM gmailsync.changes c USING o"
      "   WHERE c.user_id = o.user_id AND c.seq = o.seq AND o.user_id IN (SELECT s.user_id FROM s)"
      "   RETURNING c.user_id, c.seq),"
      " m AS (SELECT d.user_id, max(d.seq) AS mx, count(*) AS n FROM d GROUP BY d.user_id),"
      " u AS (UPDATE gmailsync.change_seq q SET purged_through = GREATEST(q.purged_through, m.mx)"
      "   FROM m WHERE q.user_id = m.user_id RETURNING 1)"
      " SELECT COALESCE(sum(m.n), 0)::text, (SELECT count(*) FROM u)::text FROM m" },
    { GS_SQL_CHANGES_STATE,
      "SELECT last_seq::text, purged_through::text FROM gmailsync.change_seq WHERE user_id = %s" },
    { GS_SQL_CHANGES_PAGE,
      /* the page as one JSON array: each change's labels are arrays of any length */
      "SELECT count(*)::text, COALESCE(json_agg(json_build_object('seq', c.seq,"
      " 'message_id', c.gmail_id, 'kind', c.kind, 'labels_added', c.labels_added,"
      " 'labels_removed', c.labels_removed, 'history_id', c.history_id::text,"
      " 'at', " RFC3339("c.created_at") ") ORDER BY c.seq), '[]')::text"
      " FROM (SELECT * FROM gmailsync.changes WHERE user_id = %s AND seq > %s::bigint"
      "       ORDER BY seq LIMIT %s::integer) c" },
    { GS_SQL_USER_STATUS,
      "SELECT s.is_syncing::text, " RFC3339("s.updated_at") ", " TASK_COLUMNS
      " FROM gmailsync.user_sync_status s"
      " LEFT JOIN gmailsync.sync_tasks t ON t.task_id = s.task_id WHERE s.user_id = %s" },
    { GS_SQL_USER_ACCOUNT,
      /* always one row: the linked address (or NULL) and the newest SUCCEEDED task (through
       * the index on (user_id, created_at DESC); one task is active at a time, so the newest
       * created is the newest finished) */
      "SELECT a.email, l.task_id::text, " RFC3339("l.finished_at") ", l.processed::text,"
      " round(extract(epoch FROM l.finished_at - COALESCE(l.started_at, l.created_at))::numeric, 3)::text,"
      " (a.refresh_token IS NOT NULL)::text"
      " FROM (SELECT %s::text AS user_id) u"
      " LEFT JOIN gmailsync.accounts a ON a.user_id = u.user_id"
      " LEFT JOIN LATERAL (SELECT st.task_id, st.finished_at, st.started_at, st.created_at,"
      "   st.processed FROM gmailsync.sync_tasks st"
      "   WHERE st.user_id = u.user_id AND st.state = 'SUCCEEDED'"
      "   ORDER BY st.created_at DESC LIMIT 1) l ON true" },
    { GS_SQL_HEALTH_READ_ONLY,
      /* /health and /metrics: a read-only transaction whose statements cannot wait for ever */
      "SELECT set_config('transaction_read_only', 'on', true),"
      " set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)" },
    { GS_SQL_HEALTH_STUCK_COUNT,
      "SELECT count(*)::text FROM gmailsync.sync_tasks"
      " WHERE state = 'STUCK' OR (state = 'RUNNING'"
      "   AND heartbeat_at < now() - make_interval(secs => %s::double precision))" },
    { GS_SQL_HEALTH_STATES,
      "SELECT state, count(*)::text FROM gmailsync.sync_tasks"
      " WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') GROUP BY state" },
    { GS_SQL_HEALTH_STUCK,
      "SELECT task_id::text, user_id, state,"
      " (extract(epoch FROM now() - heartbeat_at))::bigint::text"
      " FROM gmailsync.sync_tasks"
      " WHERE state = 'STUCK' OR (state = 'RUNNING'"
      "   AND heartbeat_at < now() - make_interval(secs => %s::double precision))"
      " ORDER BY heartbeat_at LIMIT 50" },
    { GS_SQL_HEALTH_WINDOW,
      /* tasks created in the window; durations of those that finished */
      "SELECT count(*)::text,"
      " (count(*) FILTER (WHERE state = 'SUCCEEDED'))::text,"
      " (count(*) FILTER (WHERE state = 'FAILED'))::text,"
      " (count(*) FILTER (WHERE state = 'CANCELLED'))::text,"
      " (avg(extract(epoch FROM finished_at - started_at)) FILTER (WHERE state = 'SUCCEEDED'))::text,"
      " (avg(extract(epoch FROM started_at - created_at)) FILTER (WHERE started_at IS NOT NULL))::text"
      " FROM gmailsync.sync_tasks"
      " WHERE created_at > now() - make_interval(secs => %s::double precision)" },
    { GS_SQL_HEALTH_RUNNING,
      /* the partial index sync_tasks_running_heartbeat covers state = 'RUNNING' */
      "SELECT task_id::text, user_id, worker_version, worker_host, " RFC3339("started_at")
      " FROM gmailsync.sync_tasks WHERE state = 'RUNNING' ORDER BY started_at, task_id LIMIT 50" },
    { GS_SQL_RUNNING_VERSIONS,
      "SELECT COALESCE(worker_version, ''), count(*)::text FROM gmailsync.sync_tasks"
      " WHERE state = 'RUNNING' GROUP BY 1 ORDER BY 1" },
    { GS_SQL_HEALTH_QUEUED,
      /* the partial index sync_tasks_queue covers state = 'CREATED' ORDER BY created_at */
      "SELECT extract(epoch FROM now() - min(created_at))::text FROM gmailsync.sync_tasks"
      " WHERE state = 'CREATED'" },
    { GS_SQL_METRICS_TOTALS,
      "SELECT state, count(*)::text, COALESCE(sum(processed) FILTER (WHERE state = 'SUCCEEDED'), 0)::text,"
      " (count(*) FILTER (WHERE error_code IN ('stuck', 'not_started', 'worker_crashed')))::text,"
      " COALESCE(max(extract(epoch FROM now() - heartbeat_at)) FILTER (WHERE state = 'RUNNING'), 0)::text"
      " FROM gmailsync.sync_tasks GROUP BY state" },
    { GS_SQL_USER_MAILBOX,
      "SELECT COALESCE(sum(message_count), 0)::text, COALESCE(sum(unread_count), 0)::text,"
      " count(*)::text,"
      " (SELECT count(*) FROM gmailsync.labels WHERE user_id = %s)::text"
      " FROM gmailsync.threads WHERE user_id = %s" },
    { GS_SQL_METRICS_MAILBOX,
      "SELECT COALESCE(sum(message_count), 0)::text, COALESCE(sum(unread_count), 0)::text,"
      " count(*)::text, (SELECT count(*) FROM gmailsync.labels)::text"
      " FROM gmailsync.threads" },
    { GS_SQL_METRICS_DURATIONS,
      "SELECT extract(epoch FROM finished_at - started_at)::text,"
      " extract(epoch FROM started_at - created_at)::text"
      " FROM gmailsync.sync_tasks"
      " WHERE finished_at > now() - interval '1 day' AND started_at IS NOT NULL" },

    /* ---------------------------------------------------------------- daemon */
    { GS_SQL_D_CLAIM_NEXT,
      /* FIFO over every host; SKIP LOCKED lets daemons on several hosts claim side by side */
      "UPDATE gmailsync.sync_tasks SET state = 'RUNNING', lease = gen_random_uuid(),"
      " worker_host = %s, worker_pid = NULL, worker_version = NULL, started_at = now(),"
      " heartbeat_at = now(), updated_at = now()"
      " WHERE task_id = (SELECT task_id FROM gmailsync.sync_tasks WHERE state = 'CREATED'"
      "                  ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)"
      " AND state = 'CREATED'"
      " RETURNING task_id::text, lease::text, user_id,"
      " (extract(epoch FROM now() - created_at) * 1000)::bigint::text, "
      RFC3339("created_at") ", " RFC3339("started_at") },
    { GS_SQL_D_FAIL_LEASED,
      "UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = %s, error_message = %s,"
      " finished_at = now(), updated_at = now()"
      " WHERE task_id = %s::uuid AND lease = %s::uuid AND state IN ('RUNNING', 'STUCK')"
      " RETURNING user_id, (extract(epoch FROM now() - started_at) * 1000)::bigint::text" },
    { GS_SQL_D_LEASES_HELD,
      "SELECT t.task_id::text FROM unnest(%s::uuid[], %s::uuid[]) AS w(task_id, lease)"
      " JOIN gmailsync.sync_tasks t ON t.task_id = w.task_id AND t.lease = w.lease"
      " WHERE t.state = 'RUNNING'" },
    { GS_SQL_MARK_STUCK,
      /* a row locked by its worker's open transaction is skipped, never waited for: that
       * worker is alive enough to commit (and beat), or frozen, and then PostgreSQL ends its
       * session (idle_in_transaction_session_timeout) well before the next rounds */
      "UPDATE gmailsync.sync_tasks SET state = 'STUCK', updated_at = now()"
      " WHERE task_id IN (SELECT task_id FROM gmailsync.sync_tasks WHERE state = 'RUNNING'"
      "   AND heartbeat_at < now() - make_interval(secs => %s::double precision)"
      "   FOR UPDATE SKIP LOCKED)"
      " AND state = 'RUNNING'"
      " RETURNING task_id::text, user_id, COALESCE(worker_host, ''), COALESCE(worker_pid, 0)::text,"
      " lease::text, (extract(epoch FROM now() - heartbeat_at))::bigint::text" },
    { GS_SQL_D_STUCK_TASKS,
      /* STUCK tasks this host should finalise: its own, or anyone's stuck for twice as long */
      "SELECT task_id::text, user_id, COALESCE(worker_pid, 0)::text, lease::text,"
      " (extract(epoch FROM now() - heartbeat_at))::bigint::text"
      " FROM gmailsync.sync_tasks WHERE state = 'STUCK'"
      " AND (worker_host = %s OR heartbeat_at < now() - make_interval(secs => %s::double precision))"
      " ORDER BY heartbeat_at LIMIT 100" },
    { GS_SQL_D_FAIL_STUCK,
      "UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'stuck', error_message = %s,"
      " finished_at = now(), updated_at = now()"
      " WHERE task_id = %s::uuid AND state = 'STUCK'" },
    { GS_SQL_FAIL_UNCLAIMED,
      "UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'not_started',"
      " error_message = 'no worker claimed the task in time', finished_at = now(), updated_at = now()"
      " WHERE task_id IN (SELECT task_id FROM gmailsync.sync_tasks WHERE state = 'CREATED'"
      "   AND created_at < now() - make_interval(secs => %s::double precision)"
      "   FOR UPDATE SKIP LOCKED)"
      " AND state = 'CREATED'"
      " RETURNING task_id::text, user_id" },
    /* ---------------------------------------------------------------- worker (issue 4) */
#define W_GUARD "task_id = %s::uuid AND lease = %s::uuid AND state = 'RUNNING'"
#define W_DURATION_MS "(extract(epoch FROM now() - started_at) * 1000)::bigint::text"
    { GS_SQL_W_DB_IDENTITY,
      /* which server holds the data: a promoted standby keeps the system identifier and starts
       * a new WAL timeline (the first 8 hex digits of the current WAL file's name) */
      "SELECT s.system_identifier::text || ':' || CASE WHEN pg_is_in_recovery() THEN 'standby'"
      " ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END FROM pg_control_system() s" },
    { GS_SQL_W_TASK_CLAIM,
      "UPDATE gmailsync.sync_tasks SET state = 'RUNNING', lease = gen_random_uuid(),"
      " worker_host = %s, worker_pid = %s::integer, worker_version = %s, started_at = now(),"
      " heartbeat_at = now(), updated_at = now()"
      " WHERE task_id = %s::uuid AND state = 'CREATED'"
      " RETURNING lease::text, user_id, force_full::integer::text" },
    { GS_SQL_W_TASK_ADOPT,
      "UPDATE gmailsync.sync_tasks SET worker_host = %s, worker_pid = %s::integer,"
      " worker_version = %s, started_at = COALESCE(started_at, now()), heartbeat_at = now(), updated_at = now()"
      " WHERE " W_GUARD
      " RETURNING lease::text, user_id, force_full::integer::text,"
      " (progress_percentage * 100)::integer::text" },
    { GS_SQL_W_TASK_HEARTBEAT,
      /* clock_timestamp(), not now(): inside a long transaction now() is when it began, and a
       * beat at its end would be as old as the transaction once it commits */
      "UPDATE gmailsync.sync_tasks SET heartbeat_at = clock_timestamp(), updated_at = clock_timestamp()"
      " WHERE " W_GUARD },
    { GS_SQL_W_TASK_RETRYING,
      /* a wait on Gmail is a heartbeat too */
      "UPDATE gmailsync.sync_tasks SET retry_reason = %s,"
      " retry_until = now() + make_interval(secs => %s::double precision),"
      " retry_attempt = %s::integer, heartbeat_at = now(), updated_at = now()"
      " WHERE " W_GUARD },
    { GS_SQL_W_TASK_RECOVERED,
      "UPDATE gmailsync.sync_tasks SET retry_reason = NULL, retry_until = NULL, retry_attempt = NULL,"
      " heartbeat_at = now(), updated_at = now()"
      " WHERE " W_GUARD },
    { GS_SQL_W_TASK_PROGRESS,
      /* never backwards, and below 100 until SUCCEEDED (the schema's CHECK agrees) */
      "UPDATE gmailsync.sync_tasks SET mode = COALESCE(%s, mode),"
      " processed = GREATEST(processed, %s::bigint), total = GREATEST(%s::bigint, processed),"
      " progress_percentage = GREATEST(progress_percentage, LEAST(99, %s::numeric)),"
      " heartbeat_at = now(), updated_at = now()"
      " WHERE " W_GUARD },
    { GS_SQL_W_TASK_SUCCEED,
      "UPDATE gmailsync.sync_tasks SET state = 'SUCCEEDED', progress_percentage = 100,"
      " retry_reason = NULL, retry_until = NULL, retry_attempt = NULL,"
      " mode = COALESCE(%s, mode), processed = GREATEST(processed, %s::bigint),"
      " total = GREATEST(processed, %s::bigint),"
      " heartbeat_at = now(), finished_at = now(), updated_at = now()"
      " WHERE " W_GUARD " RETURNING " W_DURATION_MS },
    { GS_SQL_W_SYNC_NOTIFY,
      /* in the transaction that marks the task SUCCEEDED: a listener hears of the changes
       * exactly when they are committed */
      "SELECT pg_notify('" GS_SQL_EVENTS_CHANNEL "', json_build_object('event', 'sync',"
      " 'task_id', t.task_id, 'user_id', t.user_id, 'trigger', t.trigger, 'mode', %s::text,"
      " 'added', %s::bigint, 'deleted', %s::bigint, 'relabeled', %s::bigint)::text)"
      " FROM gmailsync.sync_tasks t WHERE t.task_id = %s::uuid" },
    { GS_SQL_W_TASK_FAIL,
      "UPDATE gmailsync.sync_tasks SET state = 'FAILED', mode = COALESCE(%s, mode),"
      " retry_reason = NULL, retry_until = NULL, retry_attempt = NULL,"
      " error_code = %s, error_message = %s,"
      " heartbeat_at = now(), finished_at = now(), updated_at = now()"
      " WHERE " W_GUARD " RETURNING " W_DURATION_MS },
    { GS_SQL_W_ACCOUNT_LOAD,
      /* a pending full sync older than Gmail's history retention (a week at least) is not
       * resumed */
      "SELECT refresh_token, access_token,"
      " GREATEST(0, floor(extract(epoch FROM access_token_expires_at - now())))::bigint::text,"
      " history_id::text, full_sync_task::text, full_sync_history_id::text,"
      " (full_sync_started_at > now() - interval '7 days')::integer::text,"
      " gmail_parts_in_flight::text"
      " FROM gmailsync.accounts WHERE user_id = %s" },
    { GS_SQL_W_ACCOUNT_FLIGHT,
      /* the level of Gmail's concurrency limit that worked: a hint for the next sync (007) */
      "UPDATE gmailsync.accounts SET gmail_parts_in_flight = %s::integer WHERE user_id = %s" },
    { GS_SQL_W_ACCOUNT_TOKEN,
      "UPDATE gmailsync.accounts SET access_token = %s,"
      " access_token_expires_at = now() + make_interval(secs => %s::integer),"
      " refresh_token = COALESCE(%s, refresh_token), updated_at = now()"
      " WHERE user_id = %s" },
    { GS_SQL_W_FULL_BEGIN,
      "UPDATE gmailsync.accounts SET full_sync_task = %s::uuid, full_sync_history_id = %s::numeric,"
      " full_sync_started_at = now(), updated_at = now()"
      " WHERE user_id = %s AND EXISTS (SELECT 1 FROM gmailsync.sync_tasks WHERE " W_GUARD ")" },
    { GS_SQL_W_MESSAGES_SEEN,
      /* which listed ids this full sync already stored; marks them as listed by this task
       * (only while the lease holds: a stale stamp could make the end delete a live row) */
      "UPDATE gmailsync.messages SET seen_by = %s::uuid"
      " WHERE user_id = %s AND gmail_id = ANY (%s::text[]) AND fetched_in = %s::uuid"
      " AND EXISTS (SELECT 1 FROM gmailsync.sync_tasks WHERE " W_GUARD ")"
      " RETURNING gmail_id" },
    { GS_SQL_W_MESSAGES_UPSERT,
      /* one round trip per store (the rows of one or more batches; an id twice is written once);
       * writes nothing once the lease is gone (FOR SHARE holds off a
       * concurrent cancel until this commits) */
      "WITH lease AS (SELECT 1 FROM gmailsync.sync_tasks WHERE " W_GUARD " FOR SHARE)"
      " INSERT INTO gmailsync.messages AS m (user_id, gmail_id, thread_id, history_id,"
      "   internal_date, label_ids, subject, from_addr, to_addr, snippet, size_estimate,"
      "   fetched_in, seen_by, synced_at, content_state)"
      " SELECT DISTINCT ON (r.id) %s, r.id, r.thread_id, r.history_id::numeric,"
      "   timestamptz 'epoch' + r.internal_date * interval '1 millisecond',"
      "   COALESCE(r.labels, '{}'::text[]), r.subject, r.\"from\", r.\"to\", r.snippet, r.size,"
      "   %s::uuid, %s::uuid, now(), 'metadata_only'"
      " FROM json_to_recordset(%s::json) AS r(id text, thread_id text, history_id text,"
      "   internal_date bigint, labels text[], subject text, \"from\" text, \"to\" text,"
      "   snippet text, size bigint)"
      " WHERE EXISTS (SELECT 1 FROM lease)"
      " ON CONFLICT (user_id, gmail_id) DO UPDATE SET thread_id = EXCLUDED.thread_id,"
      "   history_id = EXCLUDED.history_id, internal_date = EXCLUDED.internal_date,"
      "   label_ids = EXCLUDED.label_ids, subject = EXCLUDED.subject,"
      "   from_addr = EXCLUDED.from_addr, to_addr = EXCLUDED.to_addr, snippet = EXCLUDED.snippet,"
      "   size_estimate = EXCLUDED.size_estimate, fetched_in = EXCLUDED.fetched_in,"
      "   seen_by = EXCLUDED.seen_by, synced_at = now(), deleted_at = NULL,"
      /* content stored before (GmailSyncContent full) stays: its state too (issue 22) */
      "   content_state = COALESCE(m.content_state, EXCLUDED.content_state)" },
    { GS_SQL_W_MESSAGES_DELETE,
      "DELETE FROM gmailsync.messages WHERE user_id = %s AND gmail_id = ANY (%s::text[])" },
    { GS_SQL_W_MESSAGES_MARK,
      "UPDATE gmailsync.messages SET deleted_at = now()"
      " WHERE user_id = %s AND gmail_id = ANY (%s::text[]) AND deleted_at IS NULL" },
    { GS_SQL_W_MESSAGES_LABELS,
      /* in Gmail's order: the old labels minus the removed ones, then the added ones that are
       * not kept (a label removed and added again moves to the end, as in Gmail) */
      "UPDATE gmailsync.messages AS m SET label_ids ="
      "   ARRAY(SELECT l FROM unnest(m.label_ids) WITH ORDINALITY AS x(l, i)"
      "         WHERE l <> ALL (COALESCE(o.remove, '{}')) ORDER BY i)"
      "   || ARRAY(SELECT a FROM unnest(COALESCE(o.add, '{}')) WITH ORDINALITY AS y(a, j)"
      "            WHERE a <> ALL (m.label_ids) OR a = ANY (COALESCE(o.remove, '{}')) ORDER BY j),"
      "   history_id = GREATEST(m.history_id, o.history_id::numeric), synced_at = now()"
      " FROM json_to_recordset(%s::json) AS o(id text, history_id text, add text[], remove text[])"
      " WHERE m.user_id = %s AND m.gmail_id = o.id" },
    { GS_SQL_W_MESSAGES_UNSEEN,
      "DELETE FROM gmailsync.messages WHERE user_id = %s AND seen_by IS DISTINCT FROM %s::uuid" },
    { GS_SQL_W_UNSEEN_MARK,
      "UPDATE gmailsync.messages SET deleted_at = now()"
      " WHERE user_id = %s AND seen_by IS DISTINCT FROM %s::uuid AND deleted_at IS NULL" },
    { GS_SQL_W_REPAIR_STORED,
      /* the repair (history expired) compares what is stored with Gmail's listings in the
       * worker: one read of the user's rows, nothing written for the ones that agree */
      "SELECT gmail_id, array_to_string(ARRAY(SELECT DISTINCT l COLLATE \"C\""
      "   FROM unnest(label_ids) AS x(l) ORDER BY 1), ',')"
      " FROM gmailsync.messages WHERE user_id = %s AND gmail_id > %s AND deleted_at IS NULL"
      " ORDER BY gmail_id LIMIT %s::integer" },
    { GS_SQL_W_REPAIR_LABELS,
      /* each message's whole label set, from Gmail's per-label listings; only rows whose set
       * differs are written (the change feed's `labels` change is exactly those). Gmail's order
       * as far as known: the kept labels in their place, then the new ones */
      "UPDATE gmailsync.messages AS m SET label_ids ="
      "   ARRAY(SELECT l FROM unnest(COALESCE(m.label_ids, '{}')) WITH ORDINALITY AS x(l, i)"
      "         WHERE l = ANY (o.labels) ORDER BY i)"
      "   || ARRAY(SELECT a FROM unnest(o.labels) WITH ORDINALITY AS y(a, j)"
      "            WHERE a <> ALL (COALESCE(m.label_ids, '{}')) ORDER BY j),"
      "   synced_at = now()"
      " FROM (SELECT r.id, COALESCE(r.labels, '{}'::text[]) AS labels"
      "       FROM json_to_recordset(%s::json) AS r(id text, labels text[])) AS o"
      " WHERE m.user_id = %s AND m.gmail_id = ANY (%s::text[]) AND m.gmail_id = o.id"
      " AND m.deleted_at IS NULL AND NOT (COALESCE(m.label_ids, '{}') @> o.labels AND o.labels @> COALESCE(m.label_ids, '{}'))" },
    { GS_SQL_W_LABELS_PUT,
      /* Gmail's list replaces the user's: new and changed labels written, the others gone.
       * Unchanged rows are not touched (no dead tuples on every sync) */
      "WITH l AS (SELECT DISTINCT ON (x.id) x.* FROM json_to_recordset(%s::json) AS x(id text,"
      "   name text, type text, text_color text, background_color text,"
      "   message_list_visibility text, label_list_visibility text)),"
      " up AS (INSERT INTO gmailsync.labels AS g (user_id, label_id, name, type, text_color,"
      "   background_color, message_list_visibility, label_list_visibility, synced_at)"
      "  SELECT %s, l.id, l.name, l.type, l.text_color, l.background_color,"
      "   l.message_list_visibility, l.label_list_visibility, now() FROM l"
      "  ON CONFLICT (user_id, label_id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,"
      "   text_color = EXCLUDED.text_color, background_color = EXCLUDED.background_color,"
      "   message_list_visibility = EXCLUDED.message_list_visibility,"
      "   label_list_visibility = EXCLUDED.label_list_visibility, synced_at = now()"
      "  WHERE (g.name, g.type, g.text_color, g.background_color, g.message_list_visibility,"
      "         g.label_list_visibility) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.type,"
      "         EXCLUDED.text_color, EXCLUDED.background_color,"
      "         EXCLUDED.message_list_visibility, EXCLUDED.label_list_visibility)"
      "  RETURNING 1),"
      " gone AS (DELETE FROM gmailsync.labels g WHERE g.user_id = %s"
      "   AND NOT EXISTS (SELECT 1 FROM l WHERE l.id = g.label_id) RETURNING 1)"
      " SELECT (SELECT count(*) FROM up)::text, (SELECT count(*) FROM gone)::text" },
    { GS_SQL_W_CURSOR_ADVANCE,
      "UPDATE gmailsync.accounts SET history_id = GREATEST(COALESCE(history_id, 0), %s::numeric),"
      " updated_at = now() WHERE user_id = %s" },
    { GS_SQL_W_FULL_FINISH,
      "UPDATE gmailsync.accounts SET history_id = %s::numeric, last_full_sync_at = now(),"
      " full_sync_task = NULL, full_sync_history_id = NULL, full_sync_started_at = NULL,"
      " updated_at = now() WHERE user_id = %s" },
    /* ------------------------------------------------------------ message content (issue 22)
     * Inside one transaction that first holds the task (gs_task_hold): the message's row with
     * its content columns, then its parts, blobs and raw bytes. */
    { GS_SQL_W_CONTENT_KNOWN,
      "SELECT gmail_id FROM gmailsync.messages WHERE user_id = %s AND gmail_id = ANY (%s::text[])"
      " AND content_state IN ('complete', 'parse_error')" },
    { GS_SQL_W_CONTENT_MISSING,
      "SELECT gmail_id FROM gmailsync.messages WHERE user_id = %s AND gmail_id > %s"
      " AND (content_state IS NULL OR content_state = 'metadata_only') AND deleted_at IS NULL"
      " AND (%s::uuid IS NULL OR seen_by = %s::uuid)"
      " ORDER BY gmail_id LIMIT %s::integer" },
    { GS_SQL_W_MESSAGE_PUT,
      /* the row (envelope and content columns) and, when it was there, the old content gone:
       * the parts that follow are the message's whole content */
      "WITH r AS (SELECT * FROM json_to_record(%s::json) AS x(id text, thread_id text,"
      "   history_id text, internal_date bigint, labels text[], subject text, \"from\" text,"
      "   \"to\" text, snippet text, size bigint, message_id text, in_reply_to text,"
      "   reference_ids text[], date_us bigint, cc text, bcc text, reply_to text,"
      "   has_attachments boolean, content_state text, content_reason text, headers jsonb,"
      "   raw_sha256 text, raw_size bigint)),"
      " up AS (INSERT INTO gmailsync.messages AS m (user_id, gmail_id, thread_id, history_id,"
      "   internal_date, label_ids, subject, from_addr, to_addr, snippet, size_estimate,"
      "   fetched_in, seen_by, synced_at, message_id, in_reply_to, reference_ids, date_header,"
      "   cc_addr, bcc_addr, reply_to_addr, has_attachments, content_state, content_reason,"
      "   content_synced_at, headers, raw_sha256, raw_size)"
      "  SELECT %s, r.id, r.thread_id, r.history_id::numeric,"
      "   timestamptz 'epoch' + r.internal_date * interval '1 millisecond',"
      "   COALESCE(r.labels, '{}'::text[]), r.subject, r.\"from\", r.\"to\", r.snippet, r.size,"
      "   %s::uuid, %s::uuid, now(), r.message_id, r.in_reply_to, r.reference_ids,"
      "   timestamptz 'epoch' + r.date_us * interval '1 microsecond', r.cc, r.bcc, r.reply_to,"
      "   r.has_attachments, r.content_state, r.content_reason, now(), r.headers,"
      "   decode(r.raw_sha256, 'hex'), r.raw_size FROM r"
      "  ON CONFLICT (user_id, gmail_id) DO UPDATE SET thread_id = EXCLUDED.thread_id,"
      "   history_id = EXCLUDED.history_id, internal_date = EXCLUDED.internal_date,"
      "   label_ids = EXCLUDED.label_ids, subject = EXCLUDED.subject,"
      "   from_addr = EXCLUDED.from_addr, to_addr = EXCLUDED.to_addr,"
      "   snippet = EXCLUDED.snippet, size_estimate = EXCLUDED.size_estimate,"
      /* a backfill (no stamps) keeps the full sync's stamps of the row */
      "   fetched_in = COALESCE(EXCLUDED.fetched_in, m.fetched_in),"
      "   seen_by = COALESCE(EXCLUDED.seen_by, m.seen_by), synced_at = now(), deleted_at = NULL,"
      "   message_id = EXCLUDED.message_id, in_reply_to = EXCLUDED.in_reply_to,"
      "   reference_ids = EXCLUDED.reference_ids, date_header = EXCLUDED.date_header,"
      "   cc_addr = EXCLUDED.cc_addr, bcc_addr = EXCLUDED.bcc_addr,"
      "   reply_to_addr = EXCLUDED.reply_to_addr, has_attachments = EXCLUDED.has_attachments,"
      "   content_state = EXCLUDED.content_state, content_reason = EXCLUDED.content_reason,"
      "   content_synced_at = now(), headers = EXCLUDED.headers,"
      "   raw_sha256 = EXCLUDED.raw_sha256, raw_size = EXCLUDED.raw_size"
      "  RETURNING m.user_id, m.gmail_id),"
      " a AS (DELETE FROM gmailsync.message_addresses d USING up"
      "   WHERE d.user_id = up.user_id AND d.gmail_id = up.gmail_id),"
      " b AS (DELETE FROM gmailsync.message_bodies d USING up"
      "   WHERE d.user_id = up.user_id AND d.gmail_id = up.gmail_id),"
      " c AS (DELETE FROM gmailsync.message_attachments d USING up"
      "   WHERE d.user_id = up.user_id AND d.gmail_id = up.gmail_id),"
      " e AS (DELETE FROM gmailsync.message_raw d USING up"
      "   WHERE d.user_id = up.user_id AND d.gmail_id = up.gmail_id)"
      " SELECT 1 FROM up" },
    { GS_SQL_W_MESSAGE_PARTS,
      "WITH k AS (SELECT %s::text AS user_id, %s::text AS gmail_id),"
      " a AS (INSERT INTO gmailsync.message_addresses (user_id, gmail_id, role, position, name,"
      "   address)"
      "  SELECT k.user_id, k.gmail_id, x.role, x.position, COALESCE(x.name, ''), x.address"
      "  FROM k, json_to_recordset(%s::json) AS x(role text, position integer, name text,"
      "   address text) ON CONFLICT DO NOTHING),"
      " c AS (INSERT INTO gmailsync.message_attachments (user_id, gmail_id, part_id, filename,"
      "   mime_type, size, content_id, disposition, is_inline, related, sha256, stored)"
      "  SELECT k.user_id, k.gmail_id, x.part_id, x.filename, x.mime_type, x.size, x.content_id,"
      "   x.disposition, x.is_inline, x.related, decode(x.sha256, 'hex'), x.stored"
      "  FROM k, json_to_recordset(%s::json) AS x(part_id text, filename text, mime_type text,"
      "   size bigint, content_id text, disposition text, is_inline boolean, related boolean,"
      "   sha256 text, stored boolean) ON CONFLICT DO NOTHING)"
      " INSERT INTO gmailsync.message_bodies (user_id, gmail_id, text_body, html_body, html_text,"
      "   text_charset, html_charset)"
      " SELECT k.user_id, k.gmail_id, b.t, b.h, b.ht, b.tc, b.hc"
      " FROM k, (SELECT %s::text AS t, %s::text AS h, %s::text AS ht, %s::text AS tc,"
      "   %s::text AS hc) b WHERE COALESCE(b.t, b.h, b.ht) IS NOT NULL"
      " ON CONFLICT (user_id, gmail_id) DO UPDATE SET text_body = EXCLUDED.text_body,"
      "   html_body = EXCLUDED.html_body, html_text = EXCLUDED.html_text,"
      "   text_charset = EXCLUDED.text_charset, html_charset = EXCLUDED.html_charset" },
    /* content-addressed per user: the same bytes are stored once. A blob the user has already
     * is locked FOR KEY SHARE until the commit that adds the attachment rows naming it, so
     * that gmailsync-cleanup, which removes the blobs no row names (FOR UPDATE SKIP LOCKED,
     * then a DELETE that checks again in a statement of its own), can neither remove it under
     * this transaction nor have removed it unseen: a blob the cleanup removed first is not
     * found here (the lock waits for the cleanup's commit) and is inserted again. */
    { GS_SQL_W_BLOB_PUT,
      "WITH k AS (SELECT %s::text AS user_id, decode(%s, 'hex') AS sha256, %s::bigint AS size,"
      "   %pDb::bytea AS bytes),"
      " held AS (SELECT 1 FROM gmailsync.attachment_blobs b, k"
      "   WHERE b.user_id = k.user_id AND b.sha256 = k.sha256 FOR KEY SHARE OF b)"
      " INSERT INTO gmailsync.attachment_blobs (user_id, sha256, size, bytes)"
      " SELECT k.user_id, k.sha256, k.size, k.bytes FROM k WHERE NOT EXISTS (SELECT 1 FROM held)"
      " ON CONFLICT DO NOTHING" },
    { GS_SQL_W_BLOB_KNOWN,
      "SELECT 1 FROM gmailsync.attachment_blobs WHERE user_id = %s AND sha256 = decode(%s, 'hex')"
      " FOR KEY SHARE" },
    { GS_SQL_W_RAW_PUT,
      "INSERT INTO gmailsync.message_raw (user_id, gmail_id, raw) VALUES (%s, %s, %pDb)"
      " ON CONFLICT (user_id, gmail_id) DO UPDATE SET raw = EXCLUDED.raw" },
    /* a value over GS_CONTENT_PIECE is sent a piece at a time (libpq copies each parameter
     * whole into its output buffer, which never shrinks): the first piece by the put, the
     * others appended to the row being built, which only this transaction sees. The guard on
     * the length appends to that row only: a blob stored before (the put inserted nothing)
     * already has its whole size */
    { GS_SQL_W_BLOB_APPEND,
      "UPDATE gmailsync.attachment_blobs b SET bytes = b.bytes || c.piece,"
      " size = b.size + octet_length(c.piece) FROM (SELECT %pDb::bytea AS piece) c"
      " WHERE b.user_id = %s AND b.sha256 = decode(%s, 'hex') AND b.size = %s::bigint" },
    { GS_SQL_W_RAW_APPEND,
      "UPDATE gmailsync.message_raw r SET raw = r.raw || c.piece"
      " FROM (SELECT %pDb::bytea AS piece) c"
      " WHERE r.user_id = %s AND r.gmail_id = %s AND octet_length(r.raw) = %s::bigint" },
#undef W_GUARD
#undef W_DURATION_MS

    /* ---------------------------------------------------------------- gmailsync-tokens */
    { GS_SQL_K_ACCOUNTS_PAGE,
      "SELECT user_id, refresh_token, access_token FROM gmailsync.accounts"
      " WHERE user_id > %s AND (refresh_token IS NOT NULL OR access_token IS NOT NULL)"
      " ORDER BY user_id LIMIT %s::integer" },
    { GS_SQL_K_ACCOUNT_ONE,
      "SELECT user_id, refresh_token, access_token FROM gmailsync.accounts WHERE user_id = %s" },
    { GS_SQL_K_ACCOUNT_RESEAL,
      "UPDATE gmailsync.accounts SET refresh_token = %s, access_token = %s"
      " WHERE user_id = %s AND COALESCE(refresh_token, '') = COALESCE(%s, '')"
      " AND COALESCE(access_token, '') = COALESCE(%s, '')" },
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
    for (s = gs_sql_mailbox_statements; s->label; s++) {
        if (!strcmp(s->label, label)) {
            return s;
        }
    }
    for (s = gs_sql_push_statements; s->label; s++) {
        if (!strcmp(s->label, label)) {
            return s;
        }
    }
    for (s = gs_sql_watch_statements; s->label; s++) {
        if (!strcmp(s->label, label)) {
            return s;
        }
    }
    return NULL;
}
