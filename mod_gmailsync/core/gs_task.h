/* gs_task.h -- a worker's hold on one sync_tasks row: claim or adopt, heartbeat, progress,
 * and the final SUCCEEDED/FAILED, each a compare-and-set guarded by (task_id, lease, RUNNING).
 *
 * A guarded write that changes 0 rows means the task was taken away (cancelled, rescued as
 * STUCK): the functions then return GS_ELOST and the worker must stop without writing anything.
 * Times are the database's now(); the local clock only paces the writes:
 *   - heartbeat: at least every `heartbeat` (gs_task_tick, called from every wait);
 *   - progress: at most once per `progress_interval`, plus the final write. A progress write
 *     also beats the heart. processed never decreases; the percentage never decreases and stays
 *     at most 99.00 until SUCCEEDED, which writes exactly 100.
 * Progress is also announced on the board (gs_board.h) through a callback.
 */
#ifndef GS_TASK_H
#define GS_TASK_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gs_board.h"
#include "gs_db.h"
#include "gs_error.h"

typedef void gs_task_announce_cb(void *baton, const char *line, int len);

typedef struct {
    apr_pool_t *pool;
    gs_db_t *db;
    gs_failure_t *failure;
    const char *task_id;
    const char *lease;
    const char *user_id;
    int force_full;
    apr_interval_time_t heartbeat, progress_interval;
    apr_time_t last_beat;       /* local clock: last write that beat the heart */
    apr_time_t last_progress;   /* last progress write (0: none yet) */
    apr_time_t last_announce;
    apr_time_t last_advance;    /* last forward step: progress, or an answer from Gmail */
    apr_interval_time_t stall_limit;  /* no heartbeat after this long without a step (0: off) */
    apr_interval_time_t db_wait;      /* how long a statement waits for a lost database */
    int stalled;
    const char *retry_reason;   /* while waiting to ask Gmail again (NULL: not waiting) */
    apr_time_t retry_until;     /* local clock: end of that wait */
    const char *mode;           /* "full", "incremental", or NULL before the decision */
    apr_int64_t processed, total;
    int pct;                    /* hundredths; the highest so far */
    int dirty;                  /* progress changed since the last write */
    gs_task_announce_cb *announce;
    void *announce_baton;
    apr_int64_t progress_writes, heartbeats;
    const char *db_identity;    /* the server that holds this task's writes: system identifier
                                 * and WAL timeline (a promoted standby has a new timeline) */
    unsigned long db_sessions;  /* db->sessions when db_identity was last checked */
} gs_task_t;

/* How long a statement outside a transaction waits for a database that went away (restart,
 * failover) before the sync fails with db_unavailable. */
#define GS_TASK_DB_WAIT apr_time_from_sec(60)

/* Claims a CREATED task (lease NULL: a fresh random lease is drawn by the database) or adopts a
 * RUNNING one whose lease the daemon gave us; records host, pid and the worker's version
 * (sync_tasks.worker_version) either way. GS_ELOST when the task is not (or no longer) ours to
 * run; GS_EFAILED with the failure set on database errors. */
apr_status_t gs_task_acquire(gs_task_t **pt, apr_pool_t *p, gs_db_t *db, gs_failure_t *failure,
                             const char *task_id, const char *lease, const char *host, int pid,
                             const char *version);

void gs_task_set_announce(gs_task_t *t, gs_task_announce_cb *cb, void *baton);

/* After the connection got a new session (a restart, a failover): is it still the server that
 * holds what this task wrote? A restarted primary lost nothing that was committed; a promoted
 * standby that lagged may have lost the last commits, and then GS_EMOVED is returned (logged as
 * event=db.moved): the sync must start again from what this server really stores (gs_sync_run
 * does). Checked by gs_task_exec/gs_task_select after each statement; one query per new
 * session, none otherwise. */
apr_status_t gs_task_check_server(gs_task_t *t, apr_pool_t *p);

/* The sync starts again from what the database stores (after GS_EMOVED): the counts start from
 * 0, the percentage shown never goes back, the progress is written at the next tick. */
void gs_task_restart(gs_task_t *t);

/* Announces the calls line (Gmail's answers by class) on the board. */
void gs_task_announce_calls(gs_task_t *t, const apr_int64_t calls[GS_BOARD_CALL_CLASSES]);
/* Announces a state line on the board (after the state is committed). */
void gs_task_announce_state(gs_task_t *t, const char *state, const char *extra);

/* Records a forward step that is not progress (an answer from Gmail). The heartbeat stops when
 * no step was made for stall_limit: a worker that is alive but goes nowhere must not look
 * healthy forever. */
void gs_task_note_advance(gs_task_t *t);

/* The worker waits `wait` before asking Gmail again (reason "rate_limited" or "unavailable",
 * attempt: retries since the last successful answer): recorded at once in sync_tasks (retry_*,
 * which also beats the heart) and announced on the board, so that watchers see why nothing
 * moves. The wait counts as a forward step for the stall watchdog: it is bounded by the retry
 * budget, and a worker waiting under a rate limit must keep its heartbeat. */
apr_status_t gs_task_retrying(gs_task_t *t, const char *reason, apr_interval_time_t wait,
                              int attempt);

/* A call succeeded again: clears what gs_task_retrying recorded (nothing to do if nothing was). */
apr_status_t gs_task_recovered(gs_task_t *t);

/* Beats the heart if it is due (and the worker is not stalled), and writes pending progress if
 * its interval has passed. */
apr_status_t gs_task_tick(gs_task_t *t);

/* Sets the mode ("full"/"incremental") and the total, and adds `done` to processed. Writes
 * progress when the interval allows (else later, from a tick or the next call). */
apr_status_t gs_task_progress(gs_task_t *t, const char *mode, apr_int64_t total,
                              apr_int64_t done);

/* Inside the caller's transaction: proves the lease still holds (and locks the row until commit,
 * so no cancel slips in between). GS_ELOST otherwise. */
apr_status_t gs_task_hold(gs_task_t *t, apr_pool_t *p);

/* Inside the caller's transaction: SUCCEEDED with progress 100. *duration_ms from the database. */
apr_status_t gs_task_succeed(gs_task_t *t, apr_pool_t *p, apr_int64_t *duration_ms);

/* FAILED with the failure record (its own statement, outside any transaction). */
apr_status_t gs_task_fail(gs_task_t *t, apr_pool_t *p, apr_int64_t *duration_ms);

/* After a statement or a whole transaction failed: 1 when the connection was lost (reset since
 * `resets`, the connection's db->resets before the work began, or broken now) and the database is
 * back, waiting for it up to db_wait; the work can then run again on the new connection. 0 for
 * an ordinary SQL error, inside a transaction, or an outage longer than db_wait. */
int gs_task_db_back(gs_task_t *t, apr_pool_t *p, unsigned long resets);

/* Runs a guarded catalogue write; outside transactions, a lost database is waited for (up to
 * db_wait) and the statement runs again. 0 rows changed and `guarded` -> GS_ELOST. Database errors -> GS_EFAILED with
 * db_unavailable. */
apr_status_t gs_task_exec(gs_task_t *t, apr_pool_t *p, const char *label, int guarded,
                          int *affected, int nargs, const char *const *args);
apr_status_t gs_task_select(gs_task_t *t, apr_pool_t *p, const char *label, gs_db_rows_t **rows,
                            int nargs, const char *const *args);

/* Percentage in hundredths for processed/total, capped at 9900 (100 is for SUCCEEDED only). */
int gs_task_pct(apr_int64_t processed, apr_int64_t total);

#endif /* GS_TASK_H */
