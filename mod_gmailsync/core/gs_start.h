/* gs_start.h -- the idempotent start of a sync: one transaction that returns the user's active
 * task or creates exactly one.
 *
 * Guarantee: the partial unique index sync_tasks_one_active_per_user. The transaction-level
 * advisory lock only serialises concurrent starts of one user so that bursts queue instead of
 * conflicting; READ COMMITTED is forced so that the check after the lock sees the row the
 * previous lock holder committed. Works the same across any number of httpd hosts.
 */
#ifndef GS_START_H
#define GS_START_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "gs_db.h"

typedef struct {
    apr_interval_time_t lock_timeout;       /* wait for the per-user lock at most this long */
    apr_interval_time_t statement_timeout;  /* any statement of the start at most this long */
} gs_start_opts_t;

typedef struct {
    const char *task_id;   /* UUID text */
    const char *state;     /* CREATED or RUNNING */
    int reused;            /* 1 when the user already had an active task */
    /* where the time went, for the log line and scripts/bench start: the read without the lock,
     * begin + timeouts + the per-user lock, the checks and the insert, the commit */
    apr_interval_time_t t_check, t_lock, t_insert, t_commit;
} gs_start_result_t;

/* Starts (or finds) the user's sync. Returns APR_SUCCESS with *out filled; APR_NOTFOUND when the
 * user has no linked Gmail account (nothing is written); APR_EGENERAL on a database error or
 * timeout (nothing is written; db->last_error says why). Strings are allocated from p; the
 * transaction never outlives the call. */
apr_status_t gs_start_sync(gs_db_t *db, apr_pool_t *p, const char *user_id, int force_full,
                           const gs_start_opts_t *opts, gs_start_result_t *out);

/* Who started a task (sync_tasks.trigger, sql/007; 'push' sql/013). */
#define GS_TRIGGER_USER     "user"
#define GS_TRIGGER_SCHEDULE "schedule"
#define GS_TRIGGER_PUSH     "push"

/* gs_start_sync with the task's trigger (GS_TRIGGER_*): a push starts through the same
 * transaction as a click (gs_start_sync is this with GS_TRIGGER_USER). */
apr_status_t gs_start_sync_as(gs_db_t *db, apr_pool_t *p, const char *user_id, int force_full,
                              const char *trigger, const gs_start_opts_t *opts,
                              gs_start_result_t *out);

typedef struct {
    gs_start_opts_t start;      /* the timeouts of the round's transaction */
    const char *interval_s;     /* GmailSyncAutoSync, seconds (text) */
    const char *backoff_max_s;  /* GmailSyncAutoSyncBackoffMax, seconds (text) */
} gs_schedule_opts_t;

typedef struct {
    int picked;                 /* accounts found due */
    int skipped_active;         /* of those, found started (or being started) under the lock */
    apr_array_header_t *started; /* const char * task ids created (committed) */
    int more;                   /* more accounts were due than the round had room for */
} gs_schedule_result_t;

/* One scheduling round (the daemon's auto sync): in one transaction, picks at most `room` (less
 * the tasks already queued on every host) linked accounts that are due (GS_SQL_D_SCHEDULE_PICK,
 * FOR NO KEY UPDATE SKIP LOCKED: rounds of several hosts share the accounts out, never wait on
 * each other) and starts each through the start's lock and insert with trigger 'schedule'.
 * out->more tells that more were due than that room (the daemon then runs the next round as soon
 * as a worker's slot frees, not a second later).
 * The per-user advisory lock, a due check under it and the partial unique index make a click
 * and the scheduler (on any host) never create two tasks. APR_SUCCESS with *out filled, or an
 * error with nothing written (db->last_error). */
apr_status_t gs_start_scheduled(gs_db_t *db, apr_pool_t *p, const gs_schedule_opts_t *opts,
                                long room, gs_schedule_result_t *out);

/* Looks up the user of a session token digest (64 hex chars). APR_SUCCESS with *user_id and
 * *expires (the session's end, APR time), or APR_NOTFOUND for an unknown or expired session, or
 * APR_EGENERAL on a database error. */
apr_status_t gs_session_user(gs_db_t *db, apr_pool_t *p, const char *token_sha256_hex,
                             const char **user_id, apr_time_t *expires);

#endif /* GS_START_H */
