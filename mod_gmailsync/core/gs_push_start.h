/* gs_push_start.h -- what a verified push does to the database (issue 26, sql/013).
 *
 * A push names a mailbox and a history id. For each account linked to that address whose
 * history id is older: the same idempotent start as a click (gs_start_sync_as, trigger 'push');
 * when that account's sync is already RUNNING (it may have read Gmail's history before the
 * change), accounts.push_pending_since is set and the daemon starts exactly one more sync once
 * none is active (gs_push_followups). A CREATED task reads the history after the push: nothing
 * more is needed. The Pub/Sub message id is recorded after the work, for the token's lifetime:
 * a replay is then ignored, and a push whose work failed (answered 503) is taken again when
 * Pub/Sub redelivers it.
 */
#ifndef GS_PUSH_START_H
#define GS_PUSH_START_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "gs_db.h"
#include "gs_start.h"

#define GS_SQL_PUSH_SEEN         "gs_push_seen"          /* (message_id) -> 1 row: a replay */
#define GS_SQL_PUSH_RECORD       "gs_push_record"        /* (message_id, until epoch seconds) */
#define GS_SQL_PUSH_ACCOUNTS     "gs_push_accounts"      /* (history id, address) -> user_id,
                                                           'true' when the account already has
                                                           that history id */
#define GS_SQL_PUSH_FOLLOW_UP    "gs_push_follow_up"     /* (user_id) */
#define GS_SQL_D_PUSH_PICK       "gs_d_push_pick"        /* (room) -> user_id */
#define GS_SQL_D_PUSH_CLEAR      "gs_d_push_clear"       /* (user_id) */

typedef enum {
    GS_PUSH_REPLAY = 0,      /* this message id was taken within its token's lifetime */
    GS_PUSH_UNKNOWN,         /* no account has the address */
    GS_PUSH_CURRENT,         /* every account already has the history id */
    GS_PUSH_STARTED,         /* a sync was created */
    GS_PUSH_QUEUED,          /* a sync was CREATED already (it will see the change) */
    GS_PUSH_FOLLOW_UP        /* a sync was RUNNING: one more will follow it */
} gs_push_outcome_t;

const char *gs_push_outcome_name(gs_push_outcome_t o);

typedef struct {
    const char *user_id;
    const char *task_id;
} gs_push_started_t;

typedef struct {
    gs_push_outcome_t outcome;     /* the strongest of the accounts' (STARTED first) */
    int accounts;                  /* accounts with the address */
    apr_array_header_t *started;   /* gs_push_started_t: tasks created (hand them to the daemon) */
    int recorded;                  /* the message id was recorded */
} gs_push_result_t;

/* Applies one push. APR_SUCCESS with *out, or an error (db->last_error) with nothing recorded
 * (a start that succeeded before the error stays: it is idempotent). */
apr_status_t gs_push_apply(gs_db_t *db, apr_pool_t *p, const char *address, apr_uint64_t history_id,
                           const char *message_id, apr_time_t keep_until,
                           const gs_start_opts_t *opts, gs_push_result_t *out);

/* The daemon's follow-up round: in one transaction, at most `room` accounts with a pending push
 * and no active task, each started under the start's lock (not waited for) with trigger 'push'
 * and its flag cleared. *started gets the task ids created. */
apr_status_t gs_push_followups(gs_db_t *db, apr_pool_t *p, const gs_start_opts_t *opts, long room,
                               apr_array_header_t **started);

#endif /* GS_PUSH_START_H */
