/* gs_push_token.h -- the OIDC token of a Cloud Pub/Sub push (issue 26), verified with cjose.
 *
 * A push carries "Authorization: Bearer <JWT>" signed by Google: RS256 only, the key chosen by
 * the header's kid among the keys of a JWKS (https://www.googleapis.com/oauth2/v3/certs),
 * iss https://accounts.google.com (or accounts.google.com), aud the subscription's audience,
 * email the push service account with email_verified true, iat/exp within GS_PUSH_SKEW.
 * No JOSE or RSA code here: the JWS and the keys are cjose's (as in mod_auth_openidc's
 * oidc_jwt_verify); this file only decides which key and which claims.
 *
 * The key cache (gs_push_cache_t) keeps one JWKS for its HTTP cache lifetime (Cache-Control
 * max-age, bounded), refetches it when it has expired and at most once per `refetch_every` on
 * an unknown kid; a token is never a reason for more than that. It is thread-safe: verifies run
 * in parallel on a reference-counted generation of keys; one caller at a time fetches, the
 * others go on with the keys they have.
 */
#ifndef GS_PUSH_TOKEN_H
#define GS_PUSH_TOKEN_H

#include <apr_pools.h>
#include <apr_time.h>

#define GS_PUSH_TOKEN_MAX       4096      /* bytes of a compact JWS (Google's: ~1 KB; below httpd's
                                           * LimitRequestFieldSize, so that the module's bound is met) */
#define GS_PUSH_HEADER_MAX      1024      /* bytes of its base64url header */
#define GS_PUSH_JWKS_MAX        (64 * 1024)
#define GS_PUSH_JWKS_MAX_KEYS   16
#define GS_PUSH_KID_MAX         128
#define GS_PUSH_SKEW            apr_time_from_sec(60)
#define GS_PUSH_MAX_LIFETIME    apr_time_from_sec(2 * 3600)  /* exp - iat (Google's: 1 h) */
#define GS_PUSH_JWKS_MIN_AGE    apr_time_from_sec(60)
#define GS_PUSH_JWKS_MAX_AGE    apr_time_from_sec(24 * 3600)
#define GS_PUSH_JWKS_DEFAULT_AGE apr_time_from_sec(300)     /* no usable Cache-Control */

typedef enum {
    GS_PUSH_OK = 0,
    GS_PUSH_MALFORMED,     /* not a compact JWS, or its header or claims are not JSON */
    GS_PUSH_TOO_LARGE,     /* over GS_PUSH_TOKEN_MAX, or a header over GS_PUSH_HEADER_MAX */
    GS_PUSH_ALG,           /* alg is not RS256 (none, HS256, ...) */
    GS_PUSH_UNKNOWN_KID,   /* no key of the set has the header's kid (or no kid) */
    GS_PUSH_SIGNATURE,     /* the key's signature check failed */
    GS_PUSH_ISSUER,
    GS_PUSH_AUDIENCE,
    GS_PUSH_EMAIL,         /* not the service account, or email_verified not true */
    GS_PUSH_EXPIRED,       /* exp passed (beyond the skew) */
    GS_PUSH_TIME,          /* iat in the future, exp before iat, or a lifetime over the bound */
    GS_PUSH_NO_KEYS        /* no key set could be had (the JWKS fetch failed): not the token's fault */
} gs_push_verdict_t;

/* A short stable name for logs and metrics ("ok", "malformed", "alg", ...). */
const char *gs_push_verdict_name(gs_push_verdict_t v);

/* What the token must say. */
typedef struct {
    const char *audience;
    const char *email;
    apr_time_t now;
} gs_push_expect_t;

/* What a verified token said (strings from the pool of the verify). */
typedef struct {
    const char *kid;
    const char *alg;
    const char *email;
    const char *sub;
    apr_time_t iat, exp;
} gs_push_claims_t;

/* ---------------------------------------------------------------- key sets */
typedef struct gs_push_keys gs_push_keys_t;

/* Parses a JWKS document ({"keys":[...]}) of at most GS_PUSH_JWKS_MAX bytes: keeps the RSA keys
 * that have a kid (of at most GS_PUSH_KID_MAX printable characters), use "sig" or none and alg
 * RS256 or none, at most GS_PUSH_JWKS_MAX_KEYS; others are skipped (counted in *skipped if not
 * NULL). The cjose keys are released by a cleanup of p. APR_SUCCESS with *out (which may hold no
 * key), or APR_EINVAL with *err (from p) when the document is not a JWKS. */
apr_status_t gs_push_keys_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                gs_push_keys_t **out, int *skipped, const char **err);

int gs_push_keys_count(const gs_push_keys_t *keys);
int gs_push_keys_has(const gs_push_keys_t *keys, const char *kid);

/* The kid of a token's header, without verifying anything (NULL if it has none or the token is
 * not a compact JWS): to decide whether an unknown kid warrants a refetch. */
const char *gs_push_token_kid(apr_pool_t *p, const char *token, apr_size_t len);

/* Verifies token[0..len) against keys and x; claims (if not NULL) is filled as far as read. */
gs_push_verdict_t gs_push_token_verify(apr_pool_t *p, const char *token, apr_size_t len,
                                       const gs_push_keys_t *keys, const gs_push_expect_t *x,
                                       gs_push_claims_t *claims);

/* ---------------------------------------------------------------- the cache */

/* max-age of a Cache-Control value (seconds, bounded to [GS_PUSH_JWKS_MIN_AGE,
 * GS_PUSH_JWKS_MAX_AGE]); GS_PUSH_JWKS_MIN_AGE for no-store/no-cache;
 * GS_PUSH_JWKS_DEFAULT_AGE when NULL or without a usable max-age. */
apr_interval_time_t gs_push_cache_lifetime(const char *cache_control);

/* Fetches the JWKS: on APR_SUCCESS, *body and *len the document and *cache_control the header (or
 * NULL), from p; else *err (from p). */
typedef apr_status_t gs_push_fetch_fn(void *baton, apr_pool_t *p, const char **body,
                                      apr_size_t *len, const char **cache_control,
                                      const char **err);

typedef struct gs_push_cache gs_push_cache_t;

typedef struct {
    unsigned long fetches;        /* attempts */
    unsigned long fetch_failures;
    unsigned long refetch_unknown_kid;
    int keys;                     /* in the current set */
    apr_time_t expires;           /* of the current set (0: none) */
} gs_push_cache_stats_t;

/* A cache living as long as p (which must outlive every verify). Returns APR_SUCCESS or the
 * mutex's error. */
apr_status_t gs_push_cache_make(apr_pool_t *p, gs_push_fetch_fn *fetch, void *baton,
                                apr_interval_time_t refetch_every, gs_push_cache_t **out);

/* Verifies with the cached keys, fetching first when the set has expired (or there is none) and
 * refetching once on an unknown kid unless the last fetch was less than refetch_every ago.
 * x->now is the time of the decision. *fetch_err (if not NULL) says why a fetch failed. */
gs_push_verdict_t gs_push_cache_verify(gs_push_cache_t *c, apr_pool_t *p, const char *token,
                                       apr_size_t len, const gs_push_expect_t *x,
                                       gs_push_claims_t *claims, const char **fetch_err);

void gs_push_cache_stats(gs_push_cache_t *c, gs_push_cache_stats_t *out);

#endif /* GS_PUSH_TOKEN_H */
