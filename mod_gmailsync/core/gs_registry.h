/* gs_registry.h -- the per-host registry in shared memory: a short-lived session cache and the
 * board of tasks this host's daemon runs.
 *
 * The registry is a cache in front of PostgreSQL, never the truth:
 *  - a session entry maps a token digest to a user for at most the configured TTL, so a repeat
 *    request need not query the database (a revoked session keeps working for at most the TTL);
 *  - a task entry is written only by this host's daemon, for a task whose worker it runs, and is
 *    removed before that task can end (the worker announces "finishing" before it commits a
 *    terminal state). Only such an entry may answer a repeat start without the database; any
 *    doubt (no entry, table full, wrong shape) falls through to PostgreSQL.
 *
 * The memory block holds no pointers, only fixed slots found by index (open addressing with a
 * bounded probe), so it works at any address in any process. The caller serialises access
 * (a global mutex in httpd); these functions never block.
 */
#ifndef GS_REGISTRY_H
#define GS_REGISTRY_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>

#include "gs_sha256.h"

#define GS_REGISTRY_USER_MAX  256   /* bytes of a user id, without the NUL */
#define GS_REGISTRY_PROBE     8     /* slots examined per lookup */

typedef struct gs_registry_t gs_registry_t;

/* One task as the daemon's board shows it. */
typedef struct {
    char user_id[GS_REGISTRY_USER_MAX + 1];
    char task_id[37];
    char state[12];                 /* CREATED, RUNNING */
    char mode[12];                  /* "", full, incremental */
    apr_int64_t processed;
    apr_int64_t total;              /* -1 unknown */
    double progress_percentage;
    apr_time_t updated;             /* local clock of the last change */
    apr_uint32_t generation;        /* bumped on every change (watchers compare it) */
} gs_registry_task_t;

/* Bytes needed for `slots` entries of each table; APR_EINVAL on overflow or slots == 0. */
apr_status_t gs_registry_bytes(apr_size_t slots, apr_size_t *bytes);

/* Formats `base` (at least gs_registry_bytes(slots) bytes) as an empty registry. */
gs_registry_t *gs_registry_format(void *base, apr_size_t bytes, apr_size_t slots);

/* Returns the registry at `base` if it carries a valid header, else NULL. */
gs_registry_t *gs_registry_attach(void *base, apr_size_t bytes);

/* Session cache. get returns 1 and copies the user when a live entry exists. */
int gs_registry_session_get(gs_registry_t *reg, const unsigned char digest[GS_SHA256_DIGEST_LEN],
                            apr_time_t now, char user_out[GS_REGISTRY_USER_MAX + 1]);
/* Stores (or refreshes) an entry valid until `expires`; returns 0 if it could not be cached. */
int gs_registry_session_put(gs_registry_t *reg, const unsigned char digest[GS_SHA256_DIGEST_LEN],
                            const char *user_id, apr_time_t now, apr_time_t expires);

/* Task board, keyed by user (one active task per user). */
int gs_registry_task_get(gs_registry_t *reg, const char *user_id, gs_registry_task_t *out);
/* Inserts or replaces the user's entry; returns 0 if the table had no room (the caller then
 * simply has no fast path for this task). */
int gs_registry_task_put(gs_registry_t *reg, const gs_registry_task_t *task);
/* Removes the user's entry if it is for `task_id`; returns 1 if removed. */
int gs_registry_task_remove(gs_registry_t *reg, const char *user_id, const char *task_id);
/* Empties the task board (a new daemon does not know its predecessor's workers). */
void gs_registry_tasks_clear(gs_registry_t *reg);
/* Finds an entry by task id (for progress readers); linear in the table size. */
int gs_registry_task_find(gs_registry_t *reg, const char *task_id, gs_registry_task_t *out);

#endif /* GS_REGISTRY_H */
