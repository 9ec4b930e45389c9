/* gs_queue.h -- the daemon's side of the task table: claiming queued tasks and rescuing tasks
 * whose worker stopped beating.
 *
 * PostgreSQL is the queue: CREATED tasks are claimed oldest first with FOR UPDATE SKIP LOCKED,
 * so daemons on several hosts share one queue and a task whose host died is run by another.
 * Every state change is a compare-and-set; times are the database's.
 */
#ifndef GS_QUEUE_H
#define GS_QUEUE_H

#include <apr_pools.h>
#include <apr_time.h>

#include <apr_hash.h>

#include "gs_db.h"

typedef struct {
    const char *task_id;
    const char *lease;
    const char *user_id;
    apr_int64_t queued_ms;     /* CREATED -> RUNNING latency of this claim */
    const char *created_at;    /* RFC 3339 */
    const char *started_at;
} gs_claim_t;

/* Claims the oldest CREATED task for `host`. APR_SUCCESS with *claim, APR_NOTFOUND when the
 * queue is empty, APR_EGENERAL on a database error. */
apr_status_t gs_queue_claim(gs_db_t *db, apr_pool_t *p, const char *host, gs_claim_t *claim);

/* Which of the tasks this daemon runs (task_ids[i] under leases[i], UUIDs) are still RUNNING
 * under their lease? *held maps each such task id to itself; a task missing from it was
 * cancelled, rescued or finished elsewhere. */
apr_status_t gs_queue_leases_held(gs_db_t *db, apr_pool_t *p, const char *const *task_ids,
                                  const char *const *leases, int n, apr_hash_t **held);

/* Moves a task this daemon leased to FAILED (worker crashed, could not start, ...). Returns
 * APR_SUCCESS if it did, APR_NOTFOUND if the task had already ended or moved on. */
apr_status_t gs_queue_fail(gs_db_t *db, apr_pool_t *p, const char *task_id, const char *lease,
                           const char *code, const char *message, apr_int64_t *duration_ms);

/* Called for each STUCK task this host should finalise, before it is moved to FAILED: kill a
 * frozen local worker here. `pid` is the recorded worker pid (0 if unknown). */
typedef void gs_queue_stuck_cb(void *baton, const char *task_id, const char *user_id, long pid,
                               const char *lease, apr_int64_t heartbeat_age_s);

typedef struct {
    int marked_stuck;          /* RUNNING -> STUCK */
    int failed_stuck;          /* STUCK -> FAILED (stuck) */
    int failed_unclaimed;      /* CREATED too long -> FAILED (not_started) */
} gs_rescue_counts_t;

/* One rescue pass: RUNNING tasks whose heartbeat is older than stuck_after become STUCK (which
 * frees their users); STUCK tasks of `host` (or of any host after 2 x stuck_after) are finalised
 * FAILED after `on_stuck` ran; CREATED tasks older than claim_timeout become FAILED. */
apr_status_t gs_queue_rescue(gs_db_t *db, apr_pool_t *p, const char *host,
                             apr_interval_time_t stuck_after, apr_interval_time_t claim_timeout,
                             gs_queue_stuck_cb *on_stuck, void *baton, gs_rescue_counts_t *counts);

#endif /* GS_QUEUE_H */
