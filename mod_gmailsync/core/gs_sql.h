/* gs_sql.h -- every SQL statement the C code runs, each under a label, in one place.
 *
 * Statements use apr_dbd placeholders (%s, %d, %lld; a literal % is %%). gs_db prepares each one
 * on first use on every connection (mod_dbd's pooled ones in httpd, the daemon's and the
 * workers' own), and again after a reset. No SQL is ever assembled from input.
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
/* RFC 3339 in UTC with milliseconds, from a timestamptz expression. */
#define GS_SQL_RFC3339(expr) \
    "to_char((" expr ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define GS_SQL_ACTIVE_PREDICATE "state IN ('CREATED', 'RUNNING')"

/* First key of the transaction-level advisory lock that serialises starts per user ('GMSY'). */
#define GS_SQL_LOCK_NAMESPACE "1196249945"

/* Identity and start (see gs_start.h). */
#define GS_SQL_SESSION_USER      "gs_session_user"       /* (sha256 hex) -> user_id, expiry us */
#define GS_SQL_START_TIMEOUTS    "gs_start_timeouts"     /* (lock ms, statement ms) */
#define GS_SQL_START_LOCK        "gs_start_lock"         /* (user_id) */
#define GS_SQL_ACCOUNT_EXISTS    "gs_account_exists"     /* (user_id) -> 1 row if linked */
#define GS_SQL_ACTIVE_TASK       "gs_active_task"        /* (user_id) -> task_id, state; no lock */
#define GS_SQL_ACTIVE_TASK_LOCK  "gs_active_task_lock"   /* (user_id) -> task_id, state */
#define GS_SQL_INSERT_TASK       "gs_insert_task"        /* (user_id, force_full, trigger user or
                                                           schedule) -> task_id, state */
#define GS_SQL_START_TRY_LOCK    "gs_start_try_lock"     /* (user_id) -> 'true' when taken */

/* The development login (mod_gmailsync_devlogin.c, sql/009). */
#define GS_SQL_DEV_LOGIN_TAKE    "gs_dev_login_take"    /* (nonce sha256, new session sha256)
                                                           -> user_id, expiry us; no row: unknown,
                                                           used or expired nonce, or its session
                                                           gone. Deletes the nonce either way */

/* Auto sync (issue 16; gs_start.h). The first two arguments of each are GmailSyncAutoSync and
 * GmailSyncAutoSyncBackoffMax in seconds. */
#define GS_SQL_D_SCHEDULE_PICK   "gs_d_schedule_pick"    /* (iv, cap, room) -> user_id, why, room
                                                           of the accounts due now, row-locked:
                                                           room + 1 rows at most */
#define GS_SQL_D_SCHEDULE_DUE    "gs_d_schedule_due"     /* (iv, cap, user_id) -> why, when due */
#define GS_SQL_SCHEDULE_NEXT     "gs_schedule_next"      /* (iv, cap, user_id) -> why, next start
                                                           (RFC 3339, NULL: not scheduled), age s
                                                           of the last success (NULL: none); no
                                                           row for an unlinked account */
#define GS_SQL_SCHEDULE_STATS    "gs_schedule_stats"     /* (iv, cap) -> due, active, backing off,
                                                           revoked, oldest sync age s, linked,
                                                           oldest due account's lateness s */

/* NOTIFY channels (sql/007): task state changes and finished syncs as JSON; new task ids for
 * the daemons. LISTEN is not a statement that can be prepared: GS_SQL_LISTEN_QUEUE is one of
 * gs_db's fixed literals. */
#define GS_SQL_EVENTS_CHANNEL    "gmailsync_events"
#define GS_SQL_QUEUE_CHANNEL     "gmailsync_queue"
#define GS_SQL_LISTEN_QUEUE      "LISTEN " GS_SQL_QUEUE_CHANNEL

/* Connecting a Gmail account (issue 13; mod_gmailsync_oauth.c). Tokens and verifiers are
 * stored sealed (gs_tokenbox.h); states and sessions as SHA-256 hex. */
#define GS_SQL_OAUTH_STATE_PUT   "gs_oauth_state_put"   /* (user_id, how many of the user's
                                                           pending states to keep, state sha256,
                                                           user_id, session sha256 or NULL,
                                                           sealed verifier, ttl s); also drops
                                                           expired states and the user's older
                                                           ones beyond those kept */
#define GS_SQL_OAUTH_STATE_TAKE  "gs_oauth_state_take"  /* (state sha256) -> user_id, session
                                                           sha256 or NULL, sealed verifier,
                                                           unexpired true/false; deletes it */
#define GS_SQL_OAUTH_LINK        "gs_oauth_link"        /* (user_id, user_id, email, sealed refresh,
                                                           sealed access, expires_in s) -> 'new', 'same'
                                                           or 'other' (another address: cursor
                                                           and full-sync state reset) */
#define GS_SQL_CANCEL_ACTIVE     "gs_cancel_active"     /* (user_id) -> task_id of the active
                                                           task, now CANCELLED */
#define GS_SQL_OAUTH_UNLINK      "gs_oauth_unlink"      /* (user_id) -> sealed refresh, sealed
                                                           access of the deleted account row */
#define GS_SQL_MESSAGES_FORGET   "gs_messages_forget"   /* (user_id): every stored message */

/* ------------------------------------------------------------------ worker (issue 4)
 * The sync worker's statements (gs_task.c, gs_store.c). Every write on behalf of a task is
 * guarded by (task_id, lease, state='RUNNING'): a worker that lost its task changes nothing.
 * Times come from now(). They use the columns of migrations 002 and 003 (worker_version).
 * Arguments -> results: */
#define GS_SQL_W_DB_IDENTITY     "gs_w_db_identity"     /* () */
#define GS_SQL_W_TASK_CLAIM      "gs_w_task_claim"      /* (host, pid, version, task)
                                                           -> lease, user_id, force_full 0/1 */
#define GS_SQL_W_TASK_ADOPT      "gs_w_task_adopt"      /* (host, pid, version, task, lease)
                                                           -> same */
#define GS_SQL_W_TASK_HEARTBEAT  "gs_w_task_heartbeat"  /* (task, lease) */
#define GS_SQL_W_TASK_RETRYING   "gs_w_task_retrying"   /* (reason, wait s, attempt, task, lease) */
#define GS_SQL_W_TASK_RECOVERED  "gs_w_task_recovered"  /* (task, lease) */
#define GS_SQL_W_TASK_PROGRESS   "gs_w_task_progress"   /* (mode, processed, total, pct, task,
                                                           lease) */
#define GS_SQL_W_TASK_SUCCEED    "gs_w_task_succeed"    /* (mode, processed, processed, task,
                                                           lease) -> duration ms */
#define GS_SQL_W_SYNC_NOTIFY     "gs_w_sync_notify"     /* (mode, added, deleted, relabeled,
                                                           task): the finished-sync event */
#define GS_SQL_W_TASK_FAIL       "gs_w_task_fail"       /* (mode, code, message, task, lease)
                                                           -> duration ms */
#define GS_SQL_W_ACCOUNT_LOAD    "gs_w_account_load"    /* (user_id) -> refresh, access, ttl s,
                                                           history_id, pending task, pending
                                                           history_id, pending fresh 0/1,
                                                           parts in flight or NULL */
#define GS_SQL_W_ACCOUNT_TOKEN   "gs_w_account_token"   /* (access, expires_in s, new refresh
                                                           or NULL, user_id) */
#define GS_SQL_W_ACCOUNT_FLIGHT  "gs_w_account_flight"  /* (parts in flight, user_id) */
#define GS_SQL_W_FULL_BEGIN      "gs_w_full_begin"      /* (task, history_id, user_id, task,
                                                           lease) */
#define GS_SQL_W_MESSAGES_SEEN   "gs_w_messages_seen"   /* (task, user_id, ids text[],
                                                           generation, task, lease)
                                                           -> gmail_id */
#define GS_SQL_W_MESSAGES_UPSERT "gs_w_messages_upsert" /* (task, lease, user_id, generation,
                                                           seen_by, rows json) */
#define GS_SQL_W_MESSAGES_DELETE "gs_w_messages_delete" /* (user_id, ids text[]) */
#define GS_SQL_W_MESSAGES_MARK   "gs_w_messages_mark"   /* (user_id, ids text[]): deleted_at
                                                           set (GmailSyncDeletions keep, 011) */
#define GS_SQL_W_MESSAGES_LABELS "gs_w_messages_labels" /* (ops json, user_id) */
#define GS_SQL_W_MESSAGES_UNSEEN "gs_w_messages_unseen" /* (user_id, task): rows not listed */
#define GS_SQL_W_UNSEEN_MARK     "gs_w_unseen_mark"     /* (user_id, task): rows not listed get
                                                           deleted_at (keep, 011) */
#define GS_SQL_W_REPAIR_STORED  "gs_w_repair_stored"   /* (user_id, after gmail_id, limit)
                                                           -> gmail_id, its label ids sorted
                                                           (C collation) joined by ","; rows
                                                           not deleted, in gmail_id order */
#define GS_SQL_W_REPAIR_LABELS  "gs_w_repair_labels"   /* (rows json [{id, labels}], user_id,
                                                           their ids text[]): label sets that
                                                           differ replaced (the ids: an index
                                                           scan of the user's rows) */
#define GS_SQL_W_LABELS_PUT      "gs_w_labels_put"      /* (labels json, user_id, user_id) -> labels
                                                           written (new or changed), labels
                                                           removed (011) */
#define GS_SQL_W_CURSOR_ADVANCE  "gs_w_cursor_advance"  /* (history_id, user_id) */
#define GS_SQL_W_FULL_FINISH     "gs_w_full_finish"     /* (history_id, user_id) */
/* Message content (issue 22, sql/010), inside a transaction that holds the task: */
#define GS_SQL_W_CONTENT_KNOWN   "gs_w_content_known"   /* (user_id, ids text[]) -> gmail_id of
                                                           those whose content is stored
                                                           (complete or parse_error) */
#define GS_SQL_W_CONTENT_MISSING "gs_w_content_missing" /* (user_id, after gmail_id, seen_by
                                                           task or NULL, same, limit) -> gmail_id
                                                           of rows without content, in order */
#define GS_SQL_W_MESSAGE_PUT     "gs_w_message_put"     /* (row json, user_id, generation,
                                                           seen_by) -> 1 row: upserted with its
                                                           content columns, old parts deleted */
#define GS_SQL_W_MESSAGE_PARTS   "gs_w_message_parts"   /* (user_id, gmail_id, addresses json,
                                                           attachments json, text, html,
                                                           html_text, text charset, html
                                                           charset) */
#define GS_SQL_W_BLOB_PUT        "gs_w_blob_put"        /* (user_id, sha256 hex, size, bytes
                                                           bytea: 4 values; size: of the bytes
                                                           sent, the first piece of a larger
                                                           blob); an existing blob is locked
                                                           FOR KEY SHARE instead */
#define GS_SQL_W_BLOB_KNOWN      "gs_w_blob_known"      /* (user_id, sha256 hex) -> 1 row when
                                                           stored, locked FOR KEY SHARE */
#define GS_SQL_W_RAW_PUT         "gs_w_raw_put"         /* (user_id, gmail_id, raw bytea: 4
                                                           values) */
#define GS_SQL_W_BLOB_APPEND     "gs_w_blob_append"     /* (piece bytea: 4 values, user_id,
                                                           sha256 hex, size so far): the piece
                                                           appended to the blob being put */
#define GS_SQL_W_RAW_APPEND      "gs_w_raw_append"      /* (piece bytea: 4 values, user_id,
                                                           gmail_id, length so far) */

/* Search (issue 24, sql/012): */
#define GS_SQL_W_SEARCH_REFRESH  "gs_w_search_refresh"  /* (config, users text[], ids text[]):
                                                           the messages (re)indexed in
                                                           message_search, in the content's
                                                           transaction -> rows written */
#define GS_SQL_SEARCH_TIMEBOX    "gs_search_timebox"    /* (ms): statement_timeout for the rest
                                                           of this transaction (no lock
                                                           timeout of its own), custom plans */
#define GS_SQL_LABELS_LIST       "gs_labels_list"       /* (user_id) -> one row: the labels JSON
                                                           array of GET {prefix}/labels */

/* Task JSON columns (gs_taskview.h): task_id, state, mode, progress_percentage, processed, total,
 * error_code, error_message, created_at, started_at, heartbeat_at, finished_at (RFC 3339). */
#define GS_SQL_TASK_GET          "gs_task_get"          /* (task_id, user_id) -> task columns */
#define GS_SQL_TASK_CANCEL       "gs_task_cancel"       /* (task_id, user_id) -> task columns */
#define GS_SQL_USER_STATUS       "gs_user_status"       /* (user_id) -> is_syncing, updated_at, task columns */
#define GS_SQL_USER_ACCOUNT      "gs_user_account"      /* (user_id) -> one row: email or NULL, last
                                                           SUCCEEDED task_id, finished_at, processed,
                                                           duration s (NULLs when none), has a
                                                           refresh token true/false */
/* The synced mailbox in numbers (sql/011): threads hold every message not deleted, so their
 * sums are the message counts, through the (user, newest date) index rather than the messages. */
#define GS_SQL_USER_MAILBOX      "gs_user_mailbox"      /* (user_id, user_id) -> messages, unread,
                                                           threads, labels */
#define GS_SQL_METRICS_MAILBOX   "gs_metrics_mailbox"   /* () -> the same over every user */
/* GET {prefix}/messages/{id}/raw (sql/010): the owner's stored raw message, read in slices so
 * that no process holds a large message whole (the module streams each slice on). */
#define GS_SQL_MESSAGE_RAW_SIZE  "gs_message_raw_size"  /* (user_id, gmail_id) -> no row: no such
                                                           message of this user; one row: raw
                                                           size in bytes, NULL when no raw is
                                                           stored */
#define GS_SQL_MESSAGE_RAW_SLICE "gs_message_raw_slice" /* (offset from 0, length, user_id,
                                                           gmail_id) -> raw size, the slice in
                                                           hex; no row once the raw is gone */
/* GET {prefix}/messages/{id} and /messages/{id}/attachments/{n} (issue 24): the owner's
 * message as one JSON document, and an attachment's stored bytes read in slices. Attachments
 * are numbered from 0 in the order of the MIME tree (GS_SQL_ATTACHMENT_N in gs_sql.c). */
#define GS_SQL_MESSAGE_VIEW      "gs_message_view"      /* (body max characters, user_id,
                                                           gmail_id) -> no row: no such message
                                                           of this user; one row: the JSON */
#define GS_SQL_ATTACHMENT_GET    "gs_attachment_get"    /* (n, user_id, gmail_id) -> no row: no
                                                           such message; part_id NULL: no
                                                           attachment n; else part_id, filename,
                                                           mime type, stored, sha256 hex, blob
                                                           size (NULL: no bytes stored) */
#define GS_SQL_BLOB_SLICE        "gs_blob_slice"        /* (offset from 0, length, user_id,
                                                           sha256 hex) -> blob size, the slice in
                                                           hex; no row once the blob is gone */
/* GET {prefix}/changes (sql/011): the user's change feed. */
#define GS_SQL_CHANGES_PURGE     "gs_changes_purge"     /* (retention s, limit) -> changes
                                                           removed, users */
#define GS_SQL_CHANGES_STATE     "gs_changes_state"     /* (user_id) -> newest seq, purged
                                                           through; no row: no change yet */
#define GS_SQL_CHANGES_PAGE      "gs_changes_page"      /* (user_id, since, limit) -> count,
                                                           the changes as a JSON array */
#define GS_SQL_HEALTH_READ_ONLY  "gs_health_read_only"  /* (lock ms, statement ms): the open
                                                           transaction becomes read-only with
                                                           these timeouts */
#define GS_SQL_HEALTH_STUCK_COUNT "gs_health_stuck_count" /* (stuck_after s) -> STUCK tasks plus
                                                           RUNNING ones with an older heartbeat */
#define GS_SQL_HEALTH_STATES     "gs_health_states"     /* () -> state, count */
#define GS_SQL_HEALTH_STUCK      "gs_health_stuck"      /* (stuck_after s) -> task, user, state,
                                                           heartbeat age s of the oldest 50 */
#define GS_SQL_HEALTH_WINDOW     "gs_health_window"     /* (window s) -> created, succeeded, failed, cancelled,
                                                           mean duration s, queue latency s */
#define GS_SQL_HEALTH_RUNNING    "gs_health_running"    /* () -> task, user, worker version, host,
                                                           started_at of the oldest 50 RUNNING */
#define GS_SQL_RUNNING_VERSIONS  "gs_running_versions"  /* () -> worker version ('' unknown),
                                                           RUNNING tasks */
#define GS_SQL_HEALTH_QUEUED     "gs_health_queued"     /* () -> age s of the oldest CREATED task
                                                           (NULL when none) */
#define GS_SQL_METRICS_TOTALS    "gs_metrics_totals"    /* () -> state, count, messages, rescues */
#define GS_SQL_METRICS_DURATIONS "gs_metrics_durations" /* () -> duration s, queue s of finished tasks in the last day */

/* The daemon (gs_queue.h); prepared on the daemon's own connection. */
#define GS_SQL_D_CLAIM_NEXT      "gs_d_claim_next"      /* (host) -> task, lease, user, queued ms, created, started */
#define GS_SQL_D_FAIL_LEASED     "gs_d_fail_leased"     /* (code, message, task, lease) -> user, ms */
#define GS_SQL_D_LEASES_HELD     "gs_d_leases_held"     /* (task ids uuid[], leases uuid[]) -> the tasks still RUNNING under those leases */
#define GS_SQL_MARK_STUCK        "gs_mark_stuck"        /* (stuck_after s) -> task, user, host, pid, lease, age */
#define GS_SQL_D_STUCK_TASKS     "gs_d_stuck_tasks"     /* (host, abandon_after s) -> task, user, pid, lease, age */
#define GS_SQL_D_FAIL_STUCK      "gs_d_fail_stuck"      /* (message, task) */
#define GS_SQL_FAIL_UNCLAIMED    "gs_fail_unclaimed"    /* (claim_timeout s) -> task, user */

/* gmailsync-tokens (gmailsync-rotate-key): re-encrypts the stored tokens one row at a time. The
 * write names the values it read, so a token a worker stored meanwhile is never overwritten
 * (a NULL column reads as ''). */
#define GS_SQL_K_ACCOUNTS_PAGE   "gs_k_accounts_page"   /* (after user_id, limit) -> user_id,
                                                           refresh, access; in user_id order */
#define GS_SQL_K_ACCOUNT_ONE     "gs_k_account_one"     /* (user_id) -> user_id, refresh, access */
#define GS_SQL_K_ACCOUNT_RESEAL  "gs_k_account_reseal"  /* (refresh, access, user_id, old
                                                           refresh, old access) */

/* The statement catalogue, terminated by an entry whose label is NULL. */
extern const gs_sql_stmt_t gs_sql_statements[];
/* The statements that read and index the owner's mail (gs_sql_mailbox.c), same terminator. */
extern const gs_sql_stmt_t gs_sql_mailbox_statements[];
/* Push notifications' statements (gs_sql_push.c, labels in gs_push_start.h), same terminator. */
extern const gs_sql_stmt_t gs_sql_push_statements[];
/* The watches' statements (gs_watch.c, labels in gs_watch.h, sql/014), same terminator. */
extern const gs_sql_stmt_t gs_sql_watch_statements[];

/* Labels starting with these are run only by the worker or the daemon. */
#define GS_SQL_WORKER_PREFIX "gs_w_"
#define GS_SQL_DAEMON_PREFIX "gs_d_"

/* Looks a statement up by label; NULL when unknown. */
const gs_sql_stmt_t *gs_sql_find(const char *label);

/* Oldest schema migration this build works with: every migration up to sql/008 (the retry
 * state, oauth_states, the token key columns, sync_tasks.trigger and the notify triggers, the
 * accounts' parts in flight) has columns or tables its statements use. Run gmailsync-migrate
 * before the new code; the previous release runs on the newer schema (expand-only migrations),
 * never the other way. sql/009 (dev_login_nonces) is needed by GmailSyncDevLogin alone, which
 * only the local stack turns on (and it always migrates). sql/010 (message content, issue 22)
 * has the columns and tables every message write of the worker names (content_state even with
 * GmailSyncContent metadata). sql/011 (labels, archive-mode deletions, issue 23): every sync
 * writes gmailsync.labels, and every message upsert clears deleted_at. sql/012 (search, issue 24):
 * the worker indexes every message it stores with content (gmailsync.search_refresh). */
#define GS_SQL_MIN_SCHEMA 12

#endif /* GS_SQL_H */
