/* mod_gmailsync_shm.c -- the per-host registry (gs_registry.h) in shared memory.
 *
 * Created in post_config from pconf (not in the configuration dry run), inherited by every child
 * and by the daemon through fork, guarded by a global mutex (`Mutex gmailsync-shm ...` configures
 * it), and destroyed in a *pre*-cleanup of pconf: every restart, graceful or not, starts with an
 * empty registry that is rebuilt from PostgreSQL, and the parent never touches a segment its
 * children may still map while pconf's later cleanups run (mod_auth_openidc #458, #1208).
 */
#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <util_mutex.h>

#include <unistd.h>

#include "gs_registry.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_MUTEX_TYPE "gmailsync-shm"

/* Process-wide: one segment per httpd generation, shared by all virtual hosts. */
static struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
    gs_registry_t *reg;
    long max_streams;          /* this host's limit of open progress streams */
} registry_state;

static apr_status_t destroy_registry(void *data)
{
    (void)data;
    registry_state.reg = NULL;
    if (registry_state.shm) {
        apr_shm_destroy(registry_state.shm);
        registry_state.shm = NULL;
    }
    registry_state.mutex = NULL; /* destroyed by its own pconf cleanup */
    return APR_SUCCESS;
}

int gs_httpd_shm_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, GS_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
               ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

int gs_httpd_shm_post_config(apr_pool_t *pconf, server_rec *s)
{
    const gs_srv_conf_t *conf = gs_httpd_srv_conf(s);
    apr_size_t bytes;
    apr_status_t rv;

    if (gs_registry_bytes((apr_size_t)conf->registry_size, &bytes) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "%s %ld is too large", GS_DIR_REGISTRY_SIZE,
                     conf->registry_size);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((rv = apr_shm_create(&registry_state.shm, bytes, NULL, pconf)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "cannot create the shared registry (%"
                     APR_SIZE_T_FMT " bytes)", bytes);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_pre_cleanup_register(pconf, NULL, destroy_registry);
    registry_state.reg = gs_registry_format(apr_shm_baseaddr_get(registry_state.shm),
                                            apr_shm_size_get(registry_state.shm),
                                            (apr_size_t)conf->registry_size);
    if (!registry_state.reg) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "cannot format the shared registry");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    gs_registry_gauge_set(registry_state.reg, GS_GAUGE_GENERATION_AT,
                          (apr_uint64_t)apr_time_now());
    rv = ap_global_mutex_create(&registry_state.mutex, NULL, GS_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR; /* ap_global_mutex_create logged why */
    }
    registry_state.max_streams = conf->max_streams;
    if (registry_state.max_streams == 0) {
        /* each stream holds a thread (the event MPM cannot park a handler that waits): leave
         * at least half of them to ordinary requests */
        int daemons = 0, threads = 0;
        if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS || daemons < 1) {
            daemons = 1;
        }
        if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
            threads = 1;
        }
        registry_state.max_streams = (long)daemons * threads / 2;
        if (registry_state.max_streams < 1) {
            registry_state.max_streams = 1;
        }
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "event=registry.created slots=%ld bytes=%"
                 APR_SIZE_T_FMT " max_streams=%ld", conf->registry_size, bytes,
                 registry_state.max_streams);
    return OK;
}

void gs_httpd_shm_child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (!registry_state.mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&registry_state.mutex,
                                     apr_global_mutex_lockfile(registry_state.mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "cannot reopen the registry mutex: the per-host cache is disabled");
        registry_state.reg = NULL;
    }
}

static int lock_registry(void)
{
    return registry_state.reg && apr_global_mutex_lock(registry_state.mutex) == APR_SUCCESS;
}

static void unlock_registry(void)
{
    apr_global_mutex_unlock(registry_state.mutex);
}

int gs_httpd_session_cache_get(const unsigned char *digest, char *user_out)
{
    int found;

    if (!lock_registry()) {
        return 0;
    }
    found = gs_registry_session_get(registry_state.reg, digest, apr_time_now(), user_out);
    unlock_registry();
    return found;
}

void gs_httpd_session_cache_put(const unsigned char *digest, const char *user_id,
                                apr_time_t expires)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_session_put(registry_state.reg, digest, user_id, apr_time_now(), expires);
    unlock_registry();
}

void gs_httpd_registry_task_put(const gs_registry_task_t *task)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_task_put(registry_state.reg, task);
    unlock_registry();
}

void gs_httpd_registry_task_update(const gs_registry_task_t *task)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_task_update(registry_state.reg, task);
    unlock_registry();
}

void gs_httpd_registry_task_remove(const char *user_id, const char *task_id)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_task_remove(registry_state.reg, user_id, task_id, apr_time_now());
    unlock_registry();
}

static int task_lookup(int (*look)(gs_registry_t *, const char *, gs_registry_task_t *),
                       const char *task_id, gs_registry_task_t *out)
{
    int found;

    if (!lock_registry()) {
        return 0;
    }
    found = look(registry_state.reg, task_id, out);
    unlock_registry();
    return found;
}

int gs_httpd_registry_task_find(const char *task_id, gs_registry_task_t *out)
{
    return task_lookup(gs_registry_task_find, task_id, out);
}

int gs_httpd_registry_task_seen(const char *task_id, gs_registry_task_t *out)
{
    return task_lookup(gs_registry_task_seen, task_id, out);
}

void gs_httpd_registry_tasks_clear(void)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_tasks_clear(registry_state.reg);
    unlock_registry();
}

void gs_httpd_registry_tasks_sweep(apr_time_t before)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_tasks_sweep(registry_state.reg, before);
    unlock_registry();
}

void gs_httpd_count(gs_counter_t c, apr_uint64_t delta)
{
    if (registry_state.reg) {
        gs_registry_count(registry_state.reg, c, delta);
    }
}

apr_uint64_t gs_httpd_counter(gs_counter_t c)
{
    return registry_state.reg ? gs_registry_counter(registry_state.reg, c) : 0;
}

void gs_httpd_gauge_set(gs_gauge_t g, apr_uint64_t value)
{
    if (registry_state.reg) {
        gs_registry_gauge_set(registry_state.reg, g, value);
    }
}

apr_uint64_t gs_httpd_gauge(gs_gauge_t g)
{
    return registry_state.reg ? gs_registry_gauge(registry_state.reg, g) : 0;
}

void gs_httpd_observe_start(apr_interval_time_t latency)
{
    if (registry_state.reg) {
        gs_registry_observe_start(registry_state.reg, latency);
    }
}

gs_stream_admission_t gs_httpd_stream_enter(const char *user_id, long per_user)
{
    gs_stream_admission_t a;

    if (!lock_registry()) {
        return GS_STREAM_HOST_FULL; /* no way to count it: do not let streams pile up */
    }
    a = gs_registry_stream_enter(registry_state.reg, user_id, (apr_int32_t)getpid(),
                                 (apr_uint32_t)per_user, (apr_uint32_t)registry_state.max_streams,
                                 gs_registry_pid_alive);
    unlock_registry();
    return a;
}

void gs_httpd_stream_leave(const char *user_id)
{
    if (!lock_registry()) {
        return;
    }
    gs_registry_stream_leave(registry_state.reg, user_id, (apr_int32_t)getpid());
    unlock_registry();
}

apr_uint32_t gs_httpd_streams_open(void)
{
    apr_uint32_t open;

    if (!registry_state.reg || !lock_registry()) {
        return registry_state.reg ? gs_registry_streams(registry_state.reg) : 0;
    }
    /* what crashed children left behind is not open */
    gs_registry_streams_reap(registry_state.reg, gs_registry_pid_alive);
    open = gs_registry_streams(registry_state.reg);
    unlock_registry();
    return open;
}

long gs_httpd_streams_limit(void)
{
    return registry_state.max_streams;
}
