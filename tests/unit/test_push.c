/* test_push.c -- the push's OIDC token (gs_push_token.c), its key cache (gs_push_cache.c) and
 * its body (gs_push_msg.c). Tokens are signed here with cjose (RSA keys made once per run). */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>
#include <cjose/cjose.h>

#include "gs_push_msg.h"
#include "gs_push_token.h"
#include "unit.h"

#define AUD   "https://push.example/gmailsync/push"
#define EMAIL "push@project.iam.gserviceaccount.com"
#define NOW   apr_time_from_sec(1800000000)

static apr_pool_t *pool;
static cjose_jwk_t *key_a, *key_b, *key_c;   /* kids "a", "b", "c" */

static cjose_jwk_t *make_key(const char *kid)
{
    static const uint8_t e[] = { 0x01, 0x00, 0x01 };
    cjose_err err;
    cjose_jwk_t *k = cjose_jwk_create_RSA_random(2048, e, sizeof e, &err);

    ck_assert_ptr_nonnull(k);
    ck_assert(cjose_jwk_set_kid(k, kid, strlen(kid), &err));
    return k;
}

static void make_keys(void)
{
    key_a = make_key("a");
    key_b = make_key("b");
    key_c = make_key("c");
}

static void drop_keys(void)
{
    cjose_jwk_release(key_a);
    cjose_jwk_release(key_b);
    cjose_jwk_release(key_c);
}

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* {"keys":[...]} of the public halves of k1, k2 (k2 may be NULL). */
static const char *jwks(cjose_jwk_t *k1, cjose_jwk_t *k2)
{
    cjose_err err;
    char *j1 = cjose_jwk_to_json(k1, false, &err), *j2 = k2 ? cjose_jwk_to_json(k2, false, &err) : NULL;
    const char *doc;

    ck_assert_ptr_nonnull(j1);
    doc = apr_psprintf(pool, "{\"keys\":[%s%s%s]}", j1, j2 ? "," : "", j2 ? j2 : "");
    cjose_get_dealloc()(j1);
    if (j2) {
        cjose_get_dealloc()(j2);
    }
    return doc;
}

static gs_push_keys_t *keyset(cjose_jwk_t *k1, cjose_jwk_t *k2)
{
    gs_push_keys_t *keys;
    const char *err = NULL, *doc = jwks(k1, k2);

    ck_assert_int_eq(gs_push_keys_parse(pool, doc, strlen(doc), &keys, NULL, &err), APR_SUCCESS);
    return keys;
}

/* The claims of a good token, with one member replaced when `key` is given. */
static const char *claims(const char *key, const char *value)
{
    const char *names[] = { "iss", "aud", "email", "email_verified", "iat", "exp", "sub" };
    const char *values[] = { "\"https://accounts.google.com\"", "\"" AUD "\"", "\"" EMAIL "\"", "true",
                             apr_psprintf(pool, "%" APR_TIME_T_FMT, apr_time_sec(NOW) - 10),
                             apr_psprintf(pool, "%" APR_TIME_T_FMT, apr_time_sec(NOW) + 3590),
                             "\"1234567890\"" };
    const char *out = "{";
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = key && strcmp(key, names[i]) == 0 ? value : values[i];
        if (v) {
            out = apr_psprintf(pool, "%s%s\"%s\":%s", out, strlen(out) > 1 ? "," : "", names[i], v);
        }
    }
    return apr_pstrcat(pool, out, "}", NULL);
}

static const char *sign_as(cjose_jwk_t *k, const char *alg, const char *kid, const char *payload)
{
    cjose_err err;
    cjose_header_t *hdr = cjose_header_new(&err);
    cjose_jws_t *jws;
    const char *compact = NULL, *out;

    ck_assert_ptr_nonnull(hdr);
    ck_assert(cjose_header_set(hdr, CJOSE_HDR_ALG, alg, &err));
    if (kid) {
        ck_assert(cjose_header_set(hdr, CJOSE_HDR_KID, kid, &err));
    }
    jws = cjose_jws_sign(k, hdr, (const uint8_t *)payload, strlen(payload), &err);
    ck_assert_msg(jws != NULL, "sign: %s", err.message);
    ck_assert(cjose_jws_export(jws, &compact, &err));
    out = apr_pstrdup(pool, compact);
    cjose_jws_release(jws);
    cjose_header_release(hdr);
    return out;
}

static const char *sign(cjose_jwk_t *k, const char *kid, const char *payload)
{
    return sign_as(k, "RS256", kid, payload);
}

static const char *b64url(const char *s)
{
    cjose_err err;
    char *o = NULL;
    size_t olen = 0;
    const char *out;

    ck_assert(cjose_base64url_encode((const uint8_t *)s, strlen(s), &o, &olen, &err));
    out = apr_pstrmemdup(pool, o, olen);
    cjose_get_dealloc()(o);
    return out;
}

static gs_push_verdict_t verify_at(const char *token, const gs_push_keys_t *keys, apr_time_t now)
{
    gs_push_expect_t x = { AUD, EMAIL, now };
    gs_push_claims_t c;

    return gs_push_token_verify(pool, token, strlen(token), keys, &x, &c);
}

static gs_push_verdict_t verify(const char *token, const gs_push_keys_t *keys)
{
    return verify_at(token, keys, NOW);
}

START_TEST(accepts_a_good_token)
{
    gs_push_keys_t *keys = keyset(key_a, key_b);
    gs_push_expect_t x = { AUD, EMAIL, NOW };
    gs_push_claims_t c;
    const char *t = sign(key_b, "b", claims(NULL, NULL));

    ck_assert_int_eq(gs_push_keys_count(keys), 2);
    ck_assert_int_eq(gs_push_token_verify(pool, t, strlen(t), keys, &x, &c), GS_PUSH_OK);
    ck_assert_str_eq(c.email, EMAIL);
    ck_assert_str_eq(c.kid, "b");
    ck_assert_str_eq(c.sub, "1234567890");
    ck_assert(c.exp == NOW + apr_time_from_sec(3590));
    ck_assert_str_eq(gs_push_token_kid(pool, t, strlen(t)), "b");
    /* the short issuer, an audience list, email_verified as Google once wrote it */
    ck_assert_int_eq(verify(sign(key_a, "a", claims("iss", "\"accounts.google.com\"")), keys), GS_PUSH_OK);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("aud", "[\"x\",\"" AUD "\"]")), keys), GS_PUSH_OK);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("email_verified", "\"true\"")), keys), GS_PUSH_OK);
}
END_TEST

START_TEST(refuses_wrong_keys_and_signatures)
{
    gs_push_keys_t *keys = keyset(key_a, key_b);
    const char *good = sign(key_a, "a", claims(NULL, NULL));
    char *bad = apr_pstrdup(pool, good);
    char *sig = strrchr(bad, '.') + 5;
    const char *other_payload = sign(key_a, "a", claims("email", "\"evil@example.com\""));
    const char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    const char *p1 = strchr(other_payload, '.'), *p2 = strrchr(other_payload, '.');

    /* a signature byte changed */
    *sig = *sig == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(bad, keys), GS_PUSH_SIGNATURE);
    /* signed by key c, claiming key a's kid */
    ck_assert_int_eq(verify(sign(key_c, "a", claims(NULL, NULL)), keys), GS_PUSH_SIGNATURE);
    /* signed by key b, claiming a */
    ck_assert_int_eq(verify(sign(key_b, "a", claims(NULL, NULL)), keys), GS_PUSH_SIGNATURE);
    /* a's signature on another payload */
    bad = apr_pstrcat(pool, apr_pstrmemdup(pool, good, (apr_size_t)(dot1 - good)),
                      apr_pstrmemdup(pool, p1, (apr_size_t)(p2 - p1)), dot2, NULL);
    ck_assert_int_eq(verify(bad, keys), GS_PUSH_SIGNATURE);
    /* an unknown kid, no kid */
    ck_assert_int_eq(verify(sign(key_c, "c", claims(NULL, NULL)), keys), GS_PUSH_UNKNOWN_KID);
    ck_assert_int_eq(verify(sign(key_a, NULL, claims(NULL, NULL)), keys), GS_PUSH_UNKNOWN_KID);
    ck_assert_int_eq(verify(good, NULL), GS_PUSH_UNKNOWN_KID);
}
END_TEST

START_TEST(refuses_other_algorithms)
{
    gs_push_keys_t *keys = keyset(key_a, NULL);
    cjose_err err;
    char *pub = cjose_jwk_to_json(key_a, false, &err);
    cjose_jwk_t *hmac = cjose_jwk_create_oct_spec((const uint8_t *)pub, strlen(pub), &err);
    const char *body = b64url(claims(NULL, NULL));

    ck_assert_ptr_nonnull(hmac);
    /* HS256 keyed with the public key's text, under the RSA key's kid */
    ck_assert_int_eq(verify(sign_as(hmac, "HS256", "a", claims(NULL, NULL)), keys), GS_PUSH_ALG);
    cjose_jwk_release(hmac);
    cjose_get_dealloc()(pub);
    /* alg none, with and without a signature segment */
    ck_assert_int_eq(verify(apr_pstrcat(pool, b64url("{\"alg\":\"none\",\"kid\":\"a\"}"), ".", body, ".", NULL), keys),
                     GS_PUSH_MALFORMED);
    ck_assert_int_eq(verify(apr_pstrcat(pool, b64url("{\"alg\":\"none\",\"kid\":\"a\"}"), ".", body, ".AAAA", NULL), keys),
                     GS_PUSH_ALG);
    ck_assert_int_eq(verify(apr_pstrcat(pool, b64url("{\"kid\":\"a\"}"), ".", body, ".AAAA", NULL), keys), GS_PUSH_ALG);
    ck_assert_int_eq(verify(apr_pstrcat(pool, b64url("{\"alg\":\"rs256\",\"kid\":\"a\"}"), ".", body, ".AAAA", NULL), keys),
                     GS_PUSH_ALG);
    ck_assert_int_eq(verify(sign_as(key_a, "RS512", "a", claims(NULL, NULL)), keys), GS_PUSH_ALG);
    ck_assert_int_eq(verify(sign_as(key_a, "PS256", "a", claims(NULL, NULL)), keys), GS_PUSH_ALG);
}
END_TEST

START_TEST(refuses_wrong_claims)
{
    gs_push_keys_t *keys = keyset(key_a, NULL);
    apr_time_t s = apr_time_sec(NOW);
    const char *t;

    ck_assert_int_eq(verify(sign(key_a, "a", claims("iss", "\"https://evil.example\"")), keys), GS_PUSH_ISSUER);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("iss", NULL)), keys), GS_PUSH_ISSUER);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("aud", "\"https://other/push\"")), keys), GS_PUSH_AUDIENCE);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("aud", NULL)), keys), GS_PUSH_AUDIENCE);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("email", "\"other@project.iam.gserviceaccount.com\"")), keys),
                     GS_PUSH_EMAIL);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("email_verified", "false")), keys), GS_PUSH_EMAIL);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("email_verified", NULL)), keys), GS_PUSH_EMAIL);
    /* times: expired (past the skew), within the skew, issued in the future, too long-lived */
    t = sign(key_a, "a", claims(NULL, NULL));
    ck_assert_int_eq(verify_at(t, keys, NOW + apr_time_from_sec(3590) + GS_PUSH_SKEW), GS_PUSH_EXPIRED);
    ck_assert_int_eq(verify_at(t, keys, NOW + apr_time_from_sec(3590) + GS_PUSH_SKEW - 1), GS_PUSH_OK);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("iat", apr_psprintf(pool, "%" APR_TIME_T_FMT, s + 120))), keys),
                     GS_PUSH_TIME);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("exp", apr_psprintf(pool, "%" APR_TIME_T_FMT, s + 3 * 3600))), keys),
                     GS_PUSH_TIME);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("exp", "\"soon\"")), keys), GS_PUSH_TIME);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("iat", NULL)), keys), GS_PUSH_TIME);
    ck_assert_int_eq(verify(sign(key_a, "a", claims("exp", apr_psprintf(pool, "%" APR_TIME_T_FMT, s - 11))), keys),
                     GS_PUSH_TIME);
}
END_TEST

START_TEST(refuses_malformed_and_oversized)
{
    gs_push_keys_t *keys = keyset(key_a, NULL);
    static const char *const bad[] = {
        "", "a", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", "a b.c.d", "a.b.c=", "eyJ.eyJ.AAA",
        "e30.e30.AAAA",                        /* {} header */
        "bnVsbA.e30.AAAA",                     /* null header */
    };
    char *big = apr_palloc(pool, GS_PUSH_TOKEN_MAX + 2);
    char *bighdr = apr_palloc(pool, GS_PUSH_HEADER_MAX + 10);
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_push_verdict_t v = verify(bad[i], keys);
        ck_assert_msg(v == GS_PUSH_MALFORMED || (i == 10 && v == GS_PUSH_ALG), "%s: %s", bad[i],
                      gs_push_verdict_name(v));
    }
    /* a header without the payload being JSON */
    ck_assert_int_eq(verify(apr_pstrcat(pool, b64url("{\"alg\":\"RS256\",\"kid\":\"a\"}"), ".",
                                        b64url("not json"), ".AAAA", NULL), keys), GS_PUSH_SIGNATURE);
    memset(big, 'A', GS_PUSH_TOKEN_MAX + 1);
    big[10] = '.';
    big[20] = '.';
    big[GS_PUSH_TOKEN_MAX + 1] = '\0';
    ck_assert_int_eq(verify(big, keys), GS_PUSH_TOO_LARGE);
    memset(bighdr, 'A', GS_PUSH_HEADER_MAX + 9);
    bighdr[GS_PUSH_HEADER_MAX + 2] = '.';
    bighdr[GS_PUSH_HEADER_MAX + 5] = '.';
    bighdr[GS_PUSH_HEADER_MAX + 9] = '\0';
    ck_assert_int_eq(verify(bighdr, keys), GS_PUSH_TOO_LARGE);
    ck_assert_str_eq(gs_push_verdict_name(GS_PUSH_UNKNOWN_KID), "unknown_kid");
    ck_assert_str_eq(gs_push_verdict_name((gs_push_verdict_t)99), "unknown");
}
END_TEST

START_TEST(parses_key_sets)
{
    gs_push_keys_t *keys;
    const char *err = NULL, *doc;
    int skipped = 0;
    static const char *const not_jwks[] = { "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]", "null" };
    size_t i;
    cjose_err cerr;
    char *pa = cjose_jwk_to_json(key_a, false, &cerr);
    char *pb = cjose_jwk_to_json(key_b, false, &cerr);

    /* an EC key, an encryption key, one without a kid, an HS256 one, a duplicate kid: skipped */
    doc = apr_psprintf(pool, "{\"keys\":[%s,{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\"},"
                       "{\"kty\":\"RSA\",\"kid\":\"x\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
                       "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
                       "{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\",\"alg\":\"HS256\"},"
                       "%s,%s, 17]}", pa, pa, pb);
    cjose_get_dealloc()(pa);
    cjose_get_dealloc()(pb);
    ck_assert_int_eq(gs_push_keys_parse(pool, doc, strlen(doc), &keys, &skipped, &err), APR_SUCCESS);
    ck_assert_int_eq(gs_push_keys_count(keys), 2);
    ck_assert_int_eq(skipped, 6);
    ck_assert(gs_push_keys_has(keys, "a") && gs_push_keys_has(keys, "b"));
    ck_assert(!gs_push_keys_has(keys, "e") && !gs_push_keys_has(keys, "h") && !gs_push_keys_has(keys, "x"));
    for (i = 0; i < sizeof not_jwks / sizeof not_jwks[0]; i++) {
        err = NULL;
        ck_assert_int_eq(gs_push_keys_parse(pool, not_jwks[i], strlen(not_jwks[i]), &keys, NULL, &err), APR_EINVAL);
        ck_assert_ptr_nonnull(err);
    }
    ck_assert_int_eq(gs_push_keys_parse(pool, "{\"keys\":[]}", GS_PUSH_JWKS_MAX + 1, &keys, NULL, &err), APR_EINVAL);
}
END_TEST

START_TEST(reads_cache_lifetimes)
{
    ck_assert(gs_push_cache_lifetime(NULL) == GS_PUSH_JWKS_DEFAULT_AGE);
    ck_assert(gs_push_cache_lifetime("public, max-age=19800, must-revalidate, no-transform")
              == apr_time_from_sec(19800));
    ck_assert(gs_push_cache_lifetime("MAX-AGE=600") == apr_time_from_sec(600));
    ck_assert(gs_push_cache_lifetime("max-age=5") == GS_PUSH_JWKS_MIN_AGE);
    ck_assert(gs_push_cache_lifetime("max-age=999999999999") == GS_PUSH_JWKS_MAX_AGE);
    ck_assert(gs_push_cache_lifetime("public, no-cache") == GS_PUSH_JWKS_MIN_AGE);
    ck_assert(gs_push_cache_lifetime("no-store, max-age=600") == GS_PUSH_JWKS_MIN_AGE);
    ck_assert(gs_push_cache_lifetime("max-age=12x") == GS_PUSH_JWKS_DEFAULT_AGE);
    ck_assert(gs_push_cache_lifetime("max-age=") == GS_PUSH_JWKS_DEFAULT_AGE);
    ck_assert(gs_push_cache_lifetime("s-maxage=600") == GS_PUSH_JWKS_DEFAULT_AGE);
    ck_assert(gs_push_cache_lifetime("") == GS_PUSH_JWKS_DEFAULT_AGE);
}
END_TEST

/* A JWKS server in memory: which document, which Cache-Control, and how often asked. */
typedef struct {
    const char *doc;
    const char *cache_control;
    int fail;
    int calls;
} fake_jwks_t;

static apr_status_t fake_fetch(void *baton, apr_pool_t *p, const char **body, apr_size_t *len,
                               const char **cc, const char **err)
{
    fake_jwks_t *f = baton;

    f->calls++;
    if (f->fail) {
        *err = apr_pstrdup(p, "connection refused");
        return APR_EGENERAL;
    }
    *body = apr_pstrdup(p, f->doc);
    *len = strlen(f->doc);
    *cc = f->cache_control ? apr_pstrdup(p, f->cache_control) : NULL;
    return APR_SUCCESS;
}

static gs_push_verdict_t cverify(gs_push_cache_t *c, const char *token, apr_time_t now)
{
    gs_push_expect_t x = { AUD, EMAIL, now };
    gs_push_claims_t cl;
    const char *ferr = NULL;

    return gs_push_cache_verify(c, pool, token, strlen(token), &x, &cl, &ferr);
}

START_TEST(caches_keys_for_their_lifetime)
{
    fake_jwks_t f = { jwks(key_a, NULL), "public, max-age=600", 0, 0 };
    gs_push_cache_t *c;
    gs_push_cache_stats_t st;
    const char *ta = sign(key_a, "a", claims(NULL, NULL)), *tb = sign(key_b, "b", claims(NULL, NULL));
    int i;

    ck_assert_int_eq(gs_push_cache_make(pool, fake_fetch, &f, apr_time_from_sec(30), &c), APR_SUCCESS);
    for (i = 0; i < 20; i++) {
        ck_assert_int_eq(cverify(c, ta, NOW + apr_time_from_sec(i)), GS_PUSH_OK);
    }
    ck_assert_int_eq(f.calls, 1);                       /* never per request */
    /* rotation: b appears at the JWKS; a token of b makes one refetch */
    f.doc = jwks(key_b, NULL);
    ck_assert_int_eq(cverify(c, tb, NOW + apr_time_from_sec(40)), GS_PUSH_OK);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_int_eq(cverify(c, ta, NOW + apr_time_from_sec(41)), GS_PUSH_UNKNOWN_KID);  /* a is gone */
    ck_assert_int_eq(f.calls, 2);                       /* within refetch_every: no second fetch */
    /* unknown kids: at most one refetch per refetch_every, whatever the number of tokens */
    for (i = 0; i < 50; i++) {
        ck_assert_int_eq(cverify(c, sign(key_c, "c", claims(NULL, NULL)), NOW + apr_time_from_sec(42)),
                         GS_PUSH_UNKNOWN_KID);
    }
    ck_assert_int_eq(f.calls, 2);
    ck_assert_int_eq(cverify(c, sign(key_c, "c", claims(NULL, NULL)), NOW + apr_time_from_sec(71)),
                     GS_PUSH_UNKNOWN_KID);
    ck_assert_int_eq(f.calls, 3);
    /* the lifetime (600 s from the last fetch at +71 s) ends: one fetch, then cached again */
    ck_assert_int_eq(cverify(c, tb, NOW + apr_time_from_sec(670)), GS_PUSH_OK);
    ck_assert_int_eq(f.calls, 3);
    ck_assert_int_eq(cverify(c, tb, NOW + apr_time_from_sec(672)), GS_PUSH_OK);
    ck_assert_int_eq(cverify(c, tb, NOW + apr_time_from_sec(673)), GS_PUSH_OK);
    ck_assert_int_eq(f.calls, 4);
    gs_push_cache_stats(c, &st);
    ck_assert_uint_eq(st.fetches, 4);
    ck_assert_uint_eq(st.refetch_unknown_kid, 2);
    ck_assert_int_eq(st.keys, 1);
}
END_TEST

START_TEST(survives_a_failing_jwks)
{
    fake_jwks_t f = { jwks(key_a, NULL), NULL, 1, 0 };
    gs_push_cache_t *c;
    gs_push_cache_stats_t st;
    const char *ta = sign(key_a, "a", claims(NULL, NULL));

    ck_assert_int_eq(gs_push_cache_make(pool, fake_fetch, &f, apr_time_from_sec(30), &c), APR_SUCCESS);
    ck_assert_int_eq(cverify(c, ta, NOW), GS_PUSH_NO_KEYS);
    ck_assert_int_eq(cverify(c, ta, NOW + apr_time_from_sec(1)), GS_PUSH_NO_KEYS);
    ck_assert_int_eq(f.calls, 1);
    /* a token refused for itself is refused so, keys or not */
    ck_assert_int_eq(cverify(c, "a.b", NOW + apr_time_from_sec(2)), GS_PUSH_MALFORMED);
    f.fail = 0;
    ck_assert_int_eq(cverify(c, ta, NOW + apr_time_from_sec(31)), GS_PUSH_OK);
    ck_assert_int_eq(f.calls, 2);
    /* expired and the JWKS down: the stale keys go on serving */
    f.fail = 1;
    ck_assert_int_eq(cverify(c, ta, NOW + apr_time_from_sec(31) + GS_PUSH_JWKS_DEFAULT_AGE), GS_PUSH_OK);
    ck_assert_int_eq(f.calls, 3);
    /* a JWKS that is not one: refused as a failure */
    f.fail = 0;
    f.doc = "{\"nokeys\":1}";
    ck_assert_int_eq(cverify(c, ta, NOW + apr_time_from_sec(62) + GS_PUSH_JWKS_DEFAULT_AGE), GS_PUSH_OK);
    gs_push_cache_stats(c, &st);
    ck_assert_uint_eq(st.fetches, 4);
    ck_assert_uint_eq(st.fetch_failures, 3);
}
END_TEST

static const char *b64(const char *s)
{
    cjose_err err;
    char *o = NULL;
    size_t olen = 0;
    const char *out;

    if (!*s) {
        return "";
    }
    ck_assert(cjose_base64_encode((const uint8_t *)s, strlen(s), &o, &olen, &err));
    out = apr_pstrmemdup(pool, o, olen);
    cjose_get_dealloc()(o);
    return out;
}

static const char *push_body(const char *data_json, const char *message_id)
{
    return apr_psprintf(pool, "{\"message\":{\"data\":\"%s\",\"messageId\":\"%s\",\"publishTime\":"
                        "\"2026-12-07T17:00:00.000Z\"},\"subscription\":\"projects/p/subscriptions/s\"}",
                        b64(data_json), message_id);
}

START_TEST(decodes_push_bodies)
{
    gs_push_msg_t m;
    const char *err = NULL, *b = push_body("{\"emailAddress\":\"User@Example.com\",\"historyId\":9876543210}", "m-1");
    static const char *const bad_data[] = {
        "{\"historyId\":1}", "{\"emailAddress\":\"a@b\"}", "{\"emailAddress\":\"a@b\",\"historyId\":0}",
        "{\"emailAddress\":\"a@b\",\"historyId\":-4}", "{\"emailAddress\":\"a@b\",\"historyId\":1.5}",
        "{\"emailAddress\":\"a@b\",\"historyId\":\"18446744073709551616\"}",
        "{\"emailAddress\":\"a@b\",\"historyId\":\"12a\"}", "{\"emailAddress\":\"nobody\",\"historyId\":1}",
        "{\"emailAddress\":\"a b@c\",\"historyId\":1}", "{\"emailAddress\":\"@c\",\"historyId\":1}",
        "[1]", "not json", "",
    };
    static const char *const bad_bodies[] = {
        "", "[]", "{}", "{\"message\":1}", "{\"message\":{\"messageId\":\"m\"}}",
        "{\"message\":{\"data\":\"!!!!\",\"messageId\":\"m\"}}",
        "{\"message\":{\"data\":\"e30=\"}}",
        /* padding inside (cjose's decoder asserts on it: found by fuzz_push), a bad length */
        "{\"message\":{\"data\":\"e30=e30=\",\"messageId\":\"m\"}}",
        "{\"message\":{\"data\":\"eyJ=bWFpbEFkZHJlc3Mi\",\"messageId\":\"m\"}}",
        "{\"message\":{\"data\":\"e30\",\"messageId\":\"m\"}}",
        "{\"message\":{\"data\":\"e30=\",\"messageId\":\"m\"},\"subscription\":7}",
    };
    size_t i;

    ck_assert_int_eq(gs_push_msg_parse(pool, b, strlen(b), &m, &err), APR_SUCCESS);
    ck_assert_str_eq(m.email, "user@example.com");
    ck_assert(m.history_id == APR_UINT64_C(9876543210));
    ck_assert_str_eq(m.message_id, "m-1");
    ck_assert_str_eq(m.subscription, "projects/p/subscriptions/s");
    b = push_body("{\"emailAddress\":\"a@b\",\"historyId\":\"18446744073709551615\"}", "m-2");
    ck_assert_int_eq(gs_push_msg_parse(pool, b, strlen(b), &m, &err), APR_SUCCESS);
    ck_assert(m.history_id == APR_UINT64_MAX);
    for (i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
        b = push_body(bad_data[i], "m");
        err = NULL;
        ck_assert_msg(gs_push_msg_parse(pool, b, strlen(b), &m, &err) == APR_EINVAL, "%s", bad_data[i]);
        ck_assert_ptr_nonnull(err);
    }
    for (i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        err = NULL;
        ck_assert_msg(gs_push_msg_parse(pool, bad_bodies[i], strlen(bad_bodies[i]), &m, &err) == APR_EINVAL,
                      "%s", bad_bodies[i]);
        ck_assert_ptr_nonnull(err);
    }
    /* bounds: a message id, data and a body over their limits */
    b = push_body("{\"emailAddress\":\"a@b\",\"historyId\":1}", apr_psprintf(pool, "%0*d", GS_PUSH_MESSAGE_ID_MAX + 1, 0));
    ck_assert_int_eq(gs_push_msg_parse(pool, b, strlen(b), &m, &err), APR_EINVAL);
    b = push_body(apr_psprintf(pool, "{\"emailAddress\":\"a@b\",\"historyId\":1,\"pad\":\"%0*d\"}",
                               GS_PUSH_DATA_MAX, 0), "m");
    ck_assert_int_eq(gs_push_msg_parse(pool, b, strlen(b), &m, &err), APR_EINVAL);
    ck_assert_int_eq(gs_push_msg_parse(pool, b, GS_PUSH_BODY_MAX + 1, &m, &err), APR_EINVAL);
}
END_TEST

Suite *gs_push_suite(void)
{
    Suite *s = suite_create("gs_push");
    TCase *tc = tcase_create("push");

    tcase_add_unchecked_fixture(tc, make_keys, drop_keys);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, accepts_a_good_token);
    tcase_add_test(tc, refuses_wrong_keys_and_signatures);
    tcase_add_test(tc, refuses_other_algorithms);
    tcase_add_test(tc, refuses_wrong_claims);
    tcase_add_test(tc, refuses_malformed_and_oversized);
    tcase_add_test(tc, parses_key_sets);
    tcase_add_test(tc, reads_cache_lifetimes);
    tcase_add_test(tc, caches_keys_for_their_lifetime);
    tcase_add_test(tc, survives_a_failing_jwks);
    tcase_add_test(tc, decodes_push_bodies);
    suite_add_tcase(s, tc);
    return s;
}
