/* gs_push_cache.c -- the JWKS cache of the push verify (see gs_push_token.h).
 *
 * A generation is one fetched key set in its own unmanaged pool, reference-counted: verifies
 * hold a reference without the lock, a fetch installs a new generation under the lock, and the
 * old one is destroyed by whoever drops its last reference. Only one caller fetches at a time;
 * the others verify with the generation they find (a stale one rather than none).
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "gs_push_token.h"

typedef struct {
    apr_pool_t *pool;
    gs_push_keys_t *keys;
    apr_time_t expires;
    int refs;
} gen_t;

struct gs_push_cache {
    apr_thread_mutex_t *mu;
    gs_push_fetch_fn *fetch;
    void *baton;
    apr_interval_time_t refetch_every;
    gen_t *cur;
    apr_time_t last_fetch;     /* when the last attempt started (0: never) */
    int fetching;
    gs_push_cache_stats_t stats;
};

/* Does the directive at d (of length n) name `name`? */
static int directive_is(const char *d, apr_size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(d, name, n) == 0;
}

apr_interval_time_t gs_push_cache_lifetime(const char *cc)
{
    apr_interval_time_t age = GS_PUSH_JWKS_DEFAULT_AGE;
    const char *d = cc;

    while (d && *d) {
        const char *end = d + strcspn(d, ","), *eq;
        apr_size_t n;

        while (d < end && apr_isspace(*d)) {
            d++;
        }
        eq = memchr(d, '=', (apr_size_t)(end - d));
        n = (apr_size_t)((eq ? eq : end) - d);
        while (n && apr_isspace(d[n - 1])) {
            n--;
        }
        if (directive_is(d, n, "no-store") || directive_is(d, n, "no-cache")) {
            return GS_PUSH_JWKS_MIN_AGE;
        }
        if (directive_is(d, n, "max-age") && eq) {
            const char *v = eq + 1;
            apr_int64_t s = 0;
            int digits = 0;

            while (v < end && apr_isdigit(*v) && digits < 12) {
                s = s * 10 + (*v++ - '0');
                digits++;
            }
            while (v < end && apr_isspace(*v)) {
                v++;
            }
            if (digits && v == end) {
                age = apr_time_from_sec(s);
                age = age < GS_PUSH_JWKS_MIN_AGE ? GS_PUSH_JWKS_MIN_AGE
                    : age > GS_PUSH_JWKS_MAX_AGE ? GS_PUSH_JWKS_MAX_AGE : age;
            }
        }
        d = *end ? end + 1 : end;
    }
    return age;
}

static apr_status_t cache_cleanup(void *data)
{
    gs_push_cache_t *c = data;

    if (c->cur) {
        apr_pool_destroy(c->cur->pool);
        c->cur = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t gs_push_cache_make(apr_pool_t *p, gs_push_fetch_fn *fetch, void *baton,
                                apr_interval_time_t refetch_every, gs_push_cache_t **out)
{
    gs_push_cache_t *c = apr_pcalloc(p, sizeof *c);
    apr_status_t rv;

    if ((rv = apr_thread_mutex_create(&c->mu, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS) {
        return rv;
    }
    c->fetch = fetch;
    c->baton = baton;
    c->refetch_every = refetch_every;
    apr_pool_cleanup_register(p, c, cache_cleanup, apr_pool_cleanup_null);
    *out = c;
    return APR_SUCCESS;
}

static gen_t *acquire(gs_push_cache_t *c)
{
    gen_t *g;

    apr_thread_mutex_lock(c->mu);
    if ((g = c->cur) != NULL) {
        g->refs++;
    }
    apr_thread_mutex_unlock(c->mu);
    return g;
}

static void release(gs_push_cache_t *c, gen_t *g)
{
    int destroy;

    if (!g) {
        return;
    }
    apr_thread_mutex_lock(c->mu);
    destroy = --g->refs == 0 && g != c->cur;
    apr_thread_mutex_unlock(c->mu);
    if (destroy) {
        apr_pool_destroy(g->pool);
    }
}

/* Fetches a new generation unless another caller is fetching or the last attempt is younger
 * than refetch_every. Returns 1 when a new set was installed. */
static int refetch(gs_push_cache_t *c, apr_pool_t *p, apr_time_t now, int unknown_kid,
                   const char **fetch_err)
{
    const char *body = NULL, *cc = NULL, *err = NULL;
    apr_size_t len = 0;
    gs_push_keys_t *keys = NULL;
    apr_pool_t *gp;
    gen_t *g, *old = NULL;
    int destroy_old = 0;

    apr_thread_mutex_lock(c->mu);
    if (c->fetching || (c->last_fetch && now - c->last_fetch < c->refetch_every)) {
        apr_thread_mutex_unlock(c->mu);
        return 0;
    }
    c->fetching = 1;
    c->last_fetch = now;
    c->stats.fetches++;
    c->stats.refetch_unknown_kid += unknown_kid ? 1 : 0;
    apr_thread_mutex_unlock(c->mu);

    if (apr_pool_create_unmanaged_ex(&gp, NULL, NULL) != APR_SUCCESS) {
        err = "out of memory";
        gp = NULL;
    }
    else if (c->fetch(c->baton, gp, &body, &len, &cc, &err) != APR_SUCCESS
             || gs_push_keys_parse(gp, body, len, &keys, NULL, &err) != APR_SUCCESS) {
        keys = NULL;
    }
    if (fetch_err && err) {
        *fetch_err = apr_pstrdup(p, err);
    }
    apr_thread_mutex_lock(c->mu);
    c->fetching = 0;
    if (!keys) {
        c->stats.fetch_failures++;
    }
    else {
        g = apr_pcalloc(gp, sizeof *g);
        g->pool = gp;
        g->keys = keys;
        g->expires = now + gs_push_cache_lifetime(cc);
        old = c->cur;
        c->cur = g;
        destroy_old = old && old->refs == 0;
        c->stats.keys = gs_push_keys_count(keys);
        c->stats.expires = g->expires;
    }
    apr_thread_mutex_unlock(c->mu);
    if (destroy_old) {
        apr_pool_destroy(old->pool);
    }
    if (!keys && gp) {
        apr_pool_destroy(gp);
    }
    return keys != NULL;
}

gs_push_verdict_t gs_push_cache_verify(gs_push_cache_t *c, apr_pool_t *p, const char *token,
                                       apr_size_t len, const gs_push_expect_t *x,
                                       gs_push_claims_t *claims, const char **fetch_err)
{
    gs_push_verdict_t v;
    gen_t *g;
    int expired;

    apr_thread_mutex_lock(c->mu);
    expired = !c->cur || x->now >= c->cur->expires;
    apr_thread_mutex_unlock(c->mu);
    if (expired) {
        refetch(c, p, x->now, 0, fetch_err);
    }
    g = acquire(c);
    v = gs_push_token_verify(p, token, len, g ? g->keys : NULL, x, claims);
    release(c, g);
    if (v == GS_PUSH_UNKNOWN_KID && gs_push_token_kid(p, token, len)
        && refetch(c, p, x->now, 1, fetch_err)) {
        g = acquire(c);
        v = gs_push_token_verify(p, token, len, g ? g->keys : NULL, x, claims);
        release(c, g);
    }
    if (v == GS_PUSH_UNKNOWN_KID && !g) {
        g = acquire(c);
        v = g ? v : GS_PUSH_NO_KEYS;
        release(c, g);
    }
    return v;
}

void gs_push_cache_stats(gs_push_cache_t *c, gs_push_cache_stats_t *out)
{
    apr_thread_mutex_lock(c->mu);
    *out = c->stats;
    apr_thread_mutex_unlock(c->mu);
}
