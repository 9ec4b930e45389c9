/* gs_registry.c -- see gs_registry.h */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "gs_registry.h"

#define REGISTRY_MAGIC   0x47535247u   /* "GSRG" */
#define REGISTRY_VERSION 7u

typedef struct {
    apr_uint32_t used;
    apr_time_t expires;
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    char user_id[GS_REGISTRY_USER_MAX + 1];
} session_slot_t;

/* A task slot is free, live, or a tombstone: the task left the board (cancelled, lost, failed)
 * and must not come back, whatever late line or claim tries to put it there again. */
enum { SLOT_FREE = 0, SLOT_LIVE = 1, SLOT_GONE = 2 };

typedef struct {
    apr_uint32_t used;
    gs_registry_task_t task;
} task_slot_t;

/* Open progress streams of one user in one httpd child (count 0: free). The child's pid lets
 * a place outlive nothing: a child that crashed with streams open never leaves, and its places
 * are reaped once its pid is gone. */
typedef struct {
    apr_uint32_t count;
    apr_int32_t pid;
    char user_id[GS_REGISTRY_USER_MAX + 1];
} stream_slot_t;

struct gs_registry_t {
    apr_uint32_t magic;
    apr_uint32_t version;
    apr_size_t slots;
    apr_size_t bytes;
    volatile apr_uint64_t counters[GS_CTR_MAX];
    volatile apr_uint64_t gauges[GS_GAUGE_MAX];
    apr_uint32_t streams;           /* open progress streams on this host */
    /* followed by `slots` session_slot_t, `slots` task_slot_t, then `slots` stream_slot_t */
};

#define ALIGNED(n) (((n) + 15) & ~(apr_size_t)15)

static session_slot_t *session_slots(gs_registry_t *reg)
{
    return (session_slot_t *)((char *)reg + ALIGNED(sizeof *reg));
}

static task_slot_t *task_slots(gs_registry_t *reg)
{
    return (task_slot_t *)((char *)session_slots(reg) + ALIGNED(reg->slots * sizeof(session_slot_t)));
}

static stream_slot_t *stream_slots(gs_registry_t *reg)
{
    return (stream_slot_t *)((char *)task_slots(reg) + ALIGNED(reg->slots * sizeof(task_slot_t)));
}

apr_status_t gs_registry_bytes(apr_size_t slots, apr_size_t *bytes)
{
    const apr_size_t max = (apr_size_t)1 << 30;
    apr_size_t per_slot = sizeof(session_slot_t) + sizeof(task_slot_t) + sizeof(stream_slot_t);

    if (slots == 0 || slots > max / per_slot) {
        return APR_EINVAL;
    }
    *bytes = ALIGNED(sizeof(gs_registry_t)) + ALIGNED(slots * sizeof(session_slot_t))
             + ALIGNED(slots * sizeof(task_slot_t)) + ALIGNED(slots * sizeof(stream_slot_t));
    return APR_SUCCESS;
}

gs_registry_t *gs_registry_format(void *base, apr_size_t bytes, apr_size_t slots)
{
    gs_registry_t *reg = base;
    apr_size_t need;

    if (gs_registry_bytes(slots, &need) != APR_SUCCESS || bytes < need) {
        return NULL;
    }
    memset(base, 0, need);
    reg->magic = REGISTRY_MAGIC;
    reg->version = REGISTRY_VERSION;
    reg->slots = slots;
    reg->bytes = need;
    return reg;
}

gs_registry_t *gs_registry_attach(void *base, apr_size_t bytes)
{
    gs_registry_t *reg = base;
    apr_size_t need;

    if (!base || bytes < sizeof *reg || reg->magic != REGISTRY_MAGIC
        || reg->version != REGISTRY_VERSION
        || gs_registry_bytes(reg->slots, &need) != APR_SUCCESS || need > bytes) {
        return NULL;
    }
    return reg;
}

/* FNV-1a: user ids are not attacker-chosen keys into anything that matters (a bad spread only
 * costs a fall-through to the database). */
static apr_size_t hash_string(const char *s)
{
    apr_uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return (apr_size_t)h;
}

static apr_size_t hash_digest(const unsigned char *d)
{
    apr_size_t h;

    memcpy(&h, d, sizeof h); /* a SHA-256 digest is already uniform */
    return h;
}

int gs_registry_session_get(gs_registry_t *reg, const unsigned char digest[GS_SHA256_DIGEST_LEN],
                            apr_time_t now, char user_out[GS_REGISTRY_USER_MAX + 1])
{
    session_slot_t *slots = session_slots(reg);
    apr_size_t start = hash_digest(digest), i;

    for (i = 0; i < GS_REGISTRY_PROBE && i < reg->slots; i++) {
        session_slot_t *s = &slots[(start + i) % reg->slots];

        if (s->used && !memcmp(s->digest, digest, GS_SHA256_DIGEST_LEN)) {
            if (s->expires <= now) {
                s->used = 0;
                return 0;
            }
            memcpy(user_out, s->user_id, sizeof s->user_id);
            return 1;
        }
    }
    return 0;
}

int gs_registry_session_put(gs_registry_t *reg, const unsigned char digest[GS_SHA256_DIGEST_LEN],
                            const char *user_id, apr_time_t now, apr_time_t expires)
{
    session_slot_t *slots = session_slots(reg), *match = NULL, *vacant = NULL, *oldest = NULL;
    apr_size_t start = hash_digest(digest), i;

    if (strlen(user_id) > GS_REGISTRY_USER_MAX) {
        return 0;
    }
    for (i = 0; i < GS_REGISTRY_PROBE && i < reg->slots; i++) {
        session_slot_t *s = &slots[(start + i) % reg->slots];

        if (s->used && !memcmp(s->digest, digest, GS_SHA256_DIGEST_LEN)) {
            match = s;
            break;
        }
        if (!s->used || s->expires <= now) {
            vacant = vacant ? vacant : s;
        }
        else if (!oldest || s->expires < oldest->expires) {
            oldest = s;
        }
    }
    /* the same token, else a free slot, else the live entry closest to expiry */
    if (!(match = match ? match : vacant ? vacant : oldest)) {
        return 0;
    }
    memcpy(match->digest, digest, GS_SHA256_DIGEST_LEN);
    memset(match->user_id, 0, sizeof match->user_id);
    memcpy(match->user_id, user_id, strlen(user_id));
    match->expires = expires;
    match->used = 1;
    return 1;
}

/* The user's slot (live or tombstone), else with `create` a free one. */
static task_slot_t *task_slot_for(gs_registry_t *reg, const char *user_id, int create)
{
    task_slot_t *slots = task_slots(reg), *free_slot = NULL;
    apr_size_t start = hash_string(user_id), i;

    for (i = 0; i < GS_REGISTRY_PROBE && i < reg->slots; i++) {
        task_slot_t *t = &slots[(start + i) % reg->slots];

        if (t->used != SLOT_FREE && !strcmp(t->task.user_id, user_id)) {
            return t;
        }
        if (t->used == SLOT_FREE && !free_slot) {
            free_slot = t;
        }
    }
    return create ? free_slot : NULL;
}

int gs_registry_task_get(gs_registry_t *reg, const char *user_id, gs_registry_task_t *out)
{
    task_slot_t *t;

    if (strlen(user_id) > GS_REGISTRY_USER_MAX || !(t = task_slot_for(reg, user_id, 0))
        || t->used != SLOT_LIVE) {
        return 0;
    }
    *out = t->task;
    return 1;
}

int gs_registry_task_put(gs_registry_t *reg, const gs_registry_task_t *task)
{
    task_slot_t *t;
    apr_uint32_t generation;

    if (!memchr(task->user_id, '\0', sizeof task->user_id) || !task->user_id[0]
        || !(t = task_slot_for(reg, task->user_id, 1))) {
        return 0;
    }
    if (t->used == SLOT_GONE && !strcmp(t->task.task_id, task->task_id)) {
        return 0; /* this task already left the board: it must not come back */
    }
    generation = t->used != SLOT_FREE ? t->task.generation : 0;
    t->task = *task;
    t->task.generation = generation + 1;
    t->used = SLOT_LIVE;
    return 1;
}

int gs_registry_task_update(gs_registry_t *reg, const gs_registry_task_t *task)
{
    gs_registry_task_t floor;
    task_slot_t *t;
    apr_uint32_t generation;

    if (!memchr(task->user_id, '\0', sizeof task->user_id)
        || !(t = task_slot_for(reg, task->user_id, 0)) || t->used != SLOT_LIVE
        || strcmp(t->task.task_id, task->task_id)) {
        return 0;
    }
    generation = t->task.generation;
    floor = t->task;
    t->task = *task;
    t->task.generation = generation + 1;
    if (floor.progress_percentage > task->progress_percentage) {
        /* the progress a user saw never goes back: a worker run again after a lost end (a
         * failover) starts from what the database stores, which may be less */
        t->task.progress_percentage = floor.progress_percentage;
        t->task.processed = floor.processed;
        t->task.total = floor.total;
    }
    return 1;
}

int gs_registry_task_remove(gs_registry_t *reg, const char *user_id, const char *task_id,
                            apr_time_t now)
{
    task_slot_t *t;

    if (strlen(user_id) > GS_REGISTRY_USER_MAX || strlen(task_id) >= sizeof t->task.task_id) {
        return 0;
    }
    if (!(t = task_slot_for(reg, user_id, 1))) {
        return 0; /* no slot for a tombstone: nothing of this user is on the board either */
    }
    if (t->used == SLOT_LIVE && strcmp(t->task.task_id, task_id)) {
        return 0; /* the user's entry is another (newer) task */
    }
    if (t->used == SLOT_FREE) {
        /* a tombstone ahead of the entry: a claim about to put it must find it gone */
        memset(&t->task, 0, sizeof t->task);
        apr_cpystrn(t->task.user_id, user_id, sizeof t->task.user_id);
        apr_cpystrn(t->task.task_id, task_id, sizeof t->task.task_id);
    }
    t->used = SLOT_GONE;
    t->task.finished = now;
    return 1;
}

int gs_registry_task_find(gs_registry_t *reg, const char *task_id, gs_registry_task_t *out)
{
    task_slot_t *slots = task_slots(reg);
    apr_size_t i;

    for (i = 0; i < reg->slots; i++) {
        if (slots[i].used == SLOT_LIVE && !strcmp(slots[i].task.task_id, task_id)) {
            *out = slots[i].task;
            return 1;
        }
    }
    return 0;
}

int gs_registry_task_seen(gs_registry_t *reg, const char *task_id, gs_registry_task_t *out)
{
    task_slot_t *slots = task_slots(reg);
    apr_size_t i;

    for (i = 0; i < reg->slots; i++) {
        if (slots[i].used != SLOT_FREE && !strcmp(slots[i].task.task_id, task_id)) {
            *out = slots[i].task;
            return 1;
        }
    }
    return 0;
}

void gs_registry_tasks_clear(gs_registry_t *reg)
{
    memset(task_slots(reg), 0, reg->slots * sizeof(task_slot_t));
}

void gs_registry_tasks_sweep(gs_registry_t *reg, apr_time_t before)
{
    task_slot_t *slots = task_slots(reg);
    apr_size_t i;

    for (i = 0; i < reg->slots; i++) {
        if (slots[i].used && slots[i].task.finished && slots[i].task.finished < before) {
            slots[i].used = 0;
        }
    }
}

void gs_registry_count(gs_registry_t *reg, gs_counter_t c, apr_uint64_t delta)
{
    if ((unsigned)c < GS_CTR_MAX) {
        apr_atomic_add64(&reg->counters[c], delta);
    }
}

apr_uint64_t gs_registry_counter(gs_registry_t *reg, gs_counter_t c)
{
    return (unsigned)c < GS_CTR_MAX ? apr_atomic_read64(&reg->counters[c]) : 0;
}

void gs_registry_gauge_set(gs_registry_t *reg, gs_gauge_t g, apr_uint64_t value)
{
    if ((unsigned)g < GS_GAUGE_MAX) {
        apr_atomic_set64(&reg->gauges[g], value);
    }
}

apr_uint64_t gs_registry_gauge(gs_registry_t *reg, gs_gauge_t g)
{
    return (unsigned)g < GS_GAUGE_MAX ? apr_atomic_read64(&reg->gauges[g]) : 0;
}

void gs_registry_observe_start(gs_registry_t *reg, apr_interval_time_t latency)
{
    static const double bounds[] = GS_START_BUCKETS;
    double seconds = (double)latency / APR_USEC_PER_SEC;
    unsigned i;

    apr_atomic_add64(&reg->counters[GS_CTR_START_SECONDS_US], (apr_uint64_t)(latency > 0 ? latency : 0));
    apr_atomic_inc64(&reg->counters[GS_CTR_START_COUNT]);
    for (i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        if (seconds <= bounds[i]) {
            apr_atomic_inc64(&reg->counters[GS_CTR_START_BUCKET0 + i]);
        }
    }
}

int gs_registry_pid_alive(apr_int32_t pid)
{
    /* EPERM: a process of another user has the pid now; count it alive, the safe side */
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

/* The user's place in this child, or (create) a free one in the user's probe window; *open is
 * the user's streams in every child. */
static stream_slot_t *stream_slot_for(gs_registry_t *reg, const char *user_id, apr_int32_t pid,
                                      int create, apr_uint32_t *open)
{
    stream_slot_t *slots = stream_slots(reg), *mine = NULL, *free_slot = NULL;
    apr_size_t start = hash_string(user_id), i;

    *open = 0;
    for (i = 0; i < GS_REGISTRY_STREAM_PROBE && i < reg->slots; i++) {
        stream_slot_t *st = &slots[(start + i) % reg->slots];

        if (st->count && !strcmp(st->user_id, user_id)) {
            *open += st->count;
            if (st->pid == pid) {
                mine = st;
            }
        }
        else if (!st->count && !free_slot) {
            free_slot = st;
        }
    }
    return mine ? mine : create ? free_slot : NULL;
}

/* Reaps `n` slots from `start` (wrapping); returns the streams freed. */
static apr_uint32_t reap_slots(gs_registry_t *reg, apr_size_t start, apr_size_t n,
                               gs_registry_alive_fn *alive)
{
    stream_slot_t *slots = stream_slots(reg);
    apr_uint32_t freed = 0;
    apr_size_t i;

    for (i = 0; i < n && i < reg->slots; i++) {
        stream_slot_t *st = &slots[(start + i) % reg->slots];

        if (st->count && !alive(st->pid)) {
            freed += st->count;
            reg->streams = reg->streams > st->count ? reg->streams - st->count : 0;
            st->count = 0;
        }
    }
    return freed;
}

apr_uint32_t gs_registry_streams_reap(gs_registry_t *reg, gs_registry_alive_fn *alive)
{
    return reap_slots(reg, 0, reg->slots, alive);
}

gs_stream_admission_t gs_registry_stream_enter(gs_registry_t *reg, const char *user_id,
                                               apr_int32_t pid, apr_uint32_t per_user,
                                               apr_uint32_t per_host, gs_registry_alive_fn *alive)
{
    stream_slot_t *st = NULL;
    apr_uint32_t open = 0;
    int reaped = 0;

    if (strlen(user_id) > GS_REGISTRY_USER_MAX) {
        return GS_STREAM_HOST_FULL; /* no room to count it: as good as full */
    }
    for (;;) {
        int host_full;

        st = stream_slot_for(reg, user_id, pid, 1, &open);
        host_full = reg->streams >= per_host || !st;
        if (!host_full && open < per_user) {
            break;
        }
        /* full: places held by crashed children may be what fills it (for the user's limit,
         * only the user's own places matter) */
        if (reaped || !(host_full ? gs_registry_streams_reap(reg, alive)
                                  : reap_slots(reg, hash_string(user_id), GS_REGISTRY_STREAM_PROBE,
                                               alive))) {
            return host_full ? GS_STREAM_HOST_FULL : GS_STREAM_USER_FULL;
        }
        reaped = 1;
    }
    if (!st->count) {
        memset(st->user_id, 0, sizeof st->user_id);
        memcpy(st->user_id, user_id, strlen(user_id));
        st->pid = pid;
    }
    st->count++;
    reg->streams++;
    return GS_STREAM_ADMITTED;
}

void gs_registry_stream_leave(gs_registry_t *reg, const char *user_id, apr_int32_t pid)
{
    apr_uint32_t open;
    stream_slot_t *st;

    if (strlen(user_id) > GS_REGISTRY_USER_MAX
        || !(st = stream_slot_for(reg, user_id, pid, 0, &open))) {
        return;
    }
    st->count--;
    if (reg->streams > 0) {
        reg->streams--;
    }
}

apr_uint32_t gs_registry_streams(gs_registry_t *reg)
{
    return reg->streams;
}
