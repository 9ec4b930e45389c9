/* gs_taskview.h -- the task JSON of the HTTP contract (DESIGN.md "Task JSON"), built from a
 * database row or from this host's live board:
 *   task_id, state, mode (null until decided), progress_percentage (0-100, 100 only at
 *   SUCCEEDED), processed, total (null while unknown), error (null or {"code","message"}),
 *   created_at, started_at, heartbeat_at, finished_at (RFC 3339 UTC or null), retrying (null, or
 *   {"reason","until","attempt"} while a RUNNING task's worker waits to ask Gmail again)
 */
#ifndef GS_TASKVIEW_H
#define GS_TASKVIEW_H

#include <apr_pools.h>
#include <json-c/json.h>

#include "gs_db.h"
#include "gs_registry.h"

#define GS_TASK_COLUMNS 15   /* columns of the TASK_COLUMNS list in gs_sql.c */

/* The task JSON of row `row`, whose task columns start at `col` (the caller owns the reference;
 * attach it to an object or own it with gs_json_own). NULL if the row has no task. */
json_object *gs_taskview_from_row(const gs_db_rows_t *rows, int row, int col);

/* The task JSON of a live board entry. created_at / started_at come from the entry, heartbeat_at
 * is the time of the worker's last line. */
json_object *gs_taskview_from_board(apr_pool_t *p, const gs_registry_task_t *t);

/* Raises the progress of `task` (percentage, processed, total) to what this host's board last
 * showed of it, when that was more: the database of a server promoted after a failover may hold
 * less than the watchers saw, and the progress a user sees never decreases. */
void gs_taskview_floor(json_object *task, const gs_registry_task_t *seen);

/* Is `s` a canonical UUID text (8-4-4-4-12 hex)? Checked before any task id reaches SQL. */
int gs_is_uuid(const char *s);

/* Is this state terminal (SUCCEEDED, FAILED, CANCELLED)? */
int gs_state_is_terminal(const char *state);

#endif /* GS_TASKVIEW_H */
