/* gs_registry.h -- the per-host registry in shared memory: a short-lived session cache, the
 * board of tasks this host's daemon runs, and the count of open progress streams per user.
 *
 * The registry is a cache in front of PostgreSQL, never the truth:
 *  - a session entry maps a token digest to a user for at most the configured TTL, so a repeat
 *    request need not query the database (a revoked session keeps working for at most the TTL);
 *  - a task entry is written only by this host's daemon, for a task whose worker it runs; it
 *    shows live progress to watchers without a query. It never answers a start: a task can
 *    leave RUNNING anywhere (a cancel on another host, a rescue, the cleanup script), so a start
 *    always asks PostgreSQL. Once a task leaves the board it is a tombstone until swept, and
 *    cannot come back.
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
/* A user's streams take one place per httpd child that holds some: the places of one user are
 * looked for among this many slots from the user's hash, so one user's streams may be spread
 * over at most this many children (the default cap, GmailSyncMaxStreamsPerUser 4, needs 4). */
#define GS_REGISTRY_STREAM_PROBE 64

typedef struct gs_registry_t gs_registry_t;

/* Per-host counters (Prometheus counters: they restart at 0 with each httpd generation). */
typedef enum {
    GS_CTR_START_CREATED = 0,
    GS_CTR_START_REUSED,
    GS_CTR_START_REJECTED,
    GS_CTR_START_SECONDS_US,          /* sum of start latencies, microseconds */
    GS_CTR_START_COUNT,
    GS_CTR_START_BUCKET0,             /* then one per GS_START_BUCKETS bound, cumulative */
    GS_CTR_GMAIL0 = GS_CTR_START_BUCKET0 + 8,   /* Gmail answers by gs_board_call_class() */
    GS_CTR_STREAMS_REFUSED_USER = GS_CTR_GMAIL0 + 5,  /* progress streams over the user cap */
    GS_CTR_STREAMS_REFUSED_HOST,                      /* ... over the host cap */
    GS_CTR_AUTOSYNC_STARTED,          /* tasks this host's scheduler created */
    GS_CTR_AUTOSYNC_SKIPPED,          /* due accounts it found started under the lock */
    GS_CTR_AUTOSYNC_ROUNDS,           /* its rounds that asked the database */
    GS_CTR_PUSH_RECEIVED,             /* POST {prefix}/push requests (issue 26) */
    GS_CTR_PUSH_ACCEPTED,             /* ... that started a sync, found one queued or set a follow-up */
    GS_CTR_PUSH_IGNORED,              /* ... replays, known history ids, unknown addresses */
    GS_CTR_PUSH_UNKNOWN,              /* ... of those, unknown addresses */
    GS_CTR_PUSH_REFUSED,              /* ... refused: bad token (401) or body (400) */
    GS_CTR_PUSH_FOLLOW_UPS,           /* follow-up syncs this host's daemon started */
    GS_CTR_PUSH_WATCHES,              /* users.watch calls of this host that Gmail granted */
    GS_CTR_PUSH_WATCH_FAILURES,       /* ... that failed (refused, unreachable, no token) */
    GS_CTR_PUSH_STOPS,                /* users.stop calls of this host's disconnects */
    GS_CTR_MAX
} gs_counter_t;

/* Per-host gauges: times (apr_time_t, microseconds; 0 never) the daemon publishes for /health
 * and /metrics, which run in other processes. */
typedef enum {
    GS_GAUGE_GENERATION_AT = 0,       /* the registry was formatted (this httpd generation) */
    GS_GAUGE_DAEMON_READY_AT,         /* the daemon of this generation began its loop */
    GS_GAUGE_DAEMON_PID,
    GS_GAUGE_CLAIM_OK_AT,             /* the last claim round that did not fail */
    GS_GAUGE_CLAIM_FAILURES,          /* consecutive failed claim rounds (0 after a success) */
    GS_GAUGE_RESCUE_OK_AT,            /* the last rescue round that did not fail */
    GS_GAUGE_RESCUE_FAILURES,         /* consecutive failed rescue rounds */
    GS_GAUGE_MAX
} gs_gauge_t;

/* Upper bounds (seconds) of the start latency histogram buckets; +Inf is START_COUNT. */
#define GS_START_BUCKETS { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0 }

/* One task as the daemon's board shows it. */
typedef struct {
    char user_id[GS_REGISTRY_USER_MAX + 1];
    char task_id[37];
    char state[12];                 /* CREATED, RUNNING */
    char mode[12];                  /* "", full, incremental */
    apr_int64_t processed;
    apr_int64_t total;              /* -1 unknown */
    double progress_percentage;
    char created_at[32];            /* RFC 3339, from the database at claim time */
    char started_at[32];
    apr_time_t updated;             /* local clock of the last change */
    apr_time_t finished;            /* SUCCEEDED entries: when (they linger for watchers) */
    char retry_reason[16];          /* "" or why the worker waits to ask Gmail again */
    apr_time_t retry_until;         /* local clock: when it asks again */
    apr_int64_t retry_attempt;      /* retries since the last successful answer */
    apr_uint32_t generation;        /* bumped on every change (watchers compare it) */
} gs_registry_task_t;

/* Bytes needed for `slots` entries of each table; APR_EINVAL on overflow or slots == 0. */
apr_status_t gs_registry_bytes(apr_size_t slots, apr_size_t *bytes);

/* Formats `base` (at least gs_registry_bytes(slots) bytes) as an empty registry. */
gs_registry_t *gs_registry_format(void *base, apr_size_t bytes, apr_size_t slots);

/* Returns the registry at `base` if it carries a valid header, else NULL. */
gs_registry_t *gs_registry_attach(void *base, apr_size_t bytes);

/* Adds to a counter (atomic: no lock needed) and reads one. */
void gs_registry_count(gs_registry_t *reg, gs_counter_t c, apr_uint64_t delta);
apr_uint64_t gs_registry_counter(gs_registry_t *reg, gs_counter_t c);
/* Sets and reads a gauge (atomic: no lock needed). */
void gs_registry_gauge_set(gs_registry_t *reg, gs_gauge_t g, apr_uint64_t value);
apr_uint64_t gs_registry_gauge(gs_registry_t *reg, gs_gauge_t g);
/* Records one start's latency in the histogram. */
void gs_registry_observe_start(gs_registry_t *reg, apr_interval_time_t latency);

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
/* Replaces the user's entry only if it exists and is for the same task (a late progress line
 * must not bring back an entry that a cancel removed); returns 1 if updated. The progress
 * (percentage, processed, total) never decreases: a lower one keeps the entry's. */
int gs_registry_task_update(gs_registry_t *reg, const gs_registry_task_t *task);
/* Takes `task_id` off the board for good: its entry (or, if it has none yet, a free slot of the
 * user) becomes a tombstone that refuses a later put of the same task, so that a claim or a late
 * line racing with a cancel cannot bring it back. An entry of another task of the user is left
 * alone. Returns 1 if the task is now marked gone. */
int gs_registry_task_remove(gs_registry_t *reg, const char *user_id, const char *task_id,
                            apr_time_t now);
/* Drops terminal entries and tombstones older than `before` (the daemon sweeps them). */
void gs_registry_tasks_sweep(gs_registry_t *reg, apr_time_t before);
/* Empties the task board (a new daemon does not know its predecessor's workers). */
void gs_registry_tasks_clear(gs_registry_t *reg);
/* Finds an entry by task id (for progress readers); linear in the table size. */
int gs_registry_task_find(gs_registry_t *reg, const char *task_id, gs_registry_task_t *out);
/* Like find, but also a task that left the board (ended, cancelled) and has not been swept yet:
 * what its watchers last saw, the floor of a later answer read from the database. */
int gs_registry_task_seen(gs_registry_t *reg, const char *task_id, gs_registry_task_t *out);

/* Progress streams (SSE) each hold an httpd thread for their whole life: they are counted per
 * user and per host, and refused beyond the limits. Every admitted stream must leave. */
typedef enum {
    GS_STREAM_ADMITTED = 0,
    GS_STREAM_USER_FULL,            /* this user has per_user streams open */
    GS_STREAM_HOST_FULL             /* this host has per_host streams open (or no room) */
} gs_stream_admission_t;

/* Whether the process with this pid still lives; tests pass their own. */
typedef int gs_registry_alive_fn(apr_int32_t pid);
int gs_registry_pid_alive(apr_int32_t pid);

/* Counts a stream of user_id in the httpd child pid. When a limit is reached, the places of
 * children that died with streams open (a crash never leaves) are reaped first. */
gs_stream_admission_t gs_registry_stream_enter(gs_registry_t *reg, const char *user_id,
                                               apr_int32_t pid, apr_uint32_t per_user,
                                               apr_uint32_t per_host, gs_registry_alive_fn *alive);
void gs_registry_stream_leave(gs_registry_t *reg, const char *user_id, apr_int32_t pid);
/* Frees the places of dead children; returns the number of streams freed. */
apr_uint32_t gs_registry_streams_reap(gs_registry_t *reg, gs_registry_alive_fn *alive);
apr_uint32_t gs_registry_streams(gs_registry_t *reg);

#endif /* GS_REGISTRY_H */
