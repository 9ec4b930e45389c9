/* gs_push_token.c -- see gs_push_token.h. The key sets and the verify; the cache is in
 * gs_push_cache.c. */
#include <string.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <cjose/cjose.h>

#include "gs_json.h"
#include "gs_push_token.h"

struct gs_push_keys {
    apr_hash_t *by_kid;   /* kid -> cjose_jwk_t * */
};

static const char *const verdict_names[] = {
    "ok", "malformed", "too_large", "alg", "unknown_kid", "signature", "issuer", "audience",
    "email", "expired", "time", "no_keys",
};

const char *gs_push_verdict_name(gs_push_verdict_t v)
{
    if ((unsigned)v >= sizeof verdict_names / sizeof verdict_names[0]) {
        return "unknown";
    }
    return verdict_names[v];
}

static apr_status_t release_jwk(void *data)
{
    cjose_jwk_release(data);
    return APR_SUCCESS;
}

static apr_status_t release_jws(void *data)
{
    cjose_jws_release(data);
    return APR_SUCCESS;
}

static apr_status_t release_bytes(void *data)
{
    cjose_get_dealloc()(data);
    return APR_SUCCESS;
}

/* A member's string value, or NULL when absent or not a string. */
static const char *member_string(json_object *obj, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

static int kid_acceptable(const char *kid)
{
    const char *c;

    if (!kid || !*kid || strlen(kid) > GS_PUSH_KID_MAX) {
        return 0;
    }
    for (c = kid; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Is s what cjose's base64url decoder may be given: non-empty, only the base64url alphabet
 * (no '=' padding), and not 4n + 1 characters long? Its decoder asserts on some other input
 * instead of failing (found by fuzz_push, in a token and in a JWK's "n"). */
static int b64url_char(char c)
{
    return apr_isalnum(c) || c == '-' || c == '_';
}

static int b64url_plausible(const char *s)
{
    const char *c;

    if (!s || !*s || strlen(s) % 4 == 1) {
        return 0;
    }
    for (c = s; *c; c++) {
        if (!b64url_char(*c)) {
            return 0;
        }
    }
    return 1;
}

/* Imports one JWKS entry; NULL when it is not an RS256 signing key with a kid: a public RSA
 * key, its "n" and "e" plausible base64url, no private member (which cjose would decode too). */
static cjose_jwk_t *import_key(apr_pool_t *p, json_object *entry, const char **kid)
{
    const char *kty, *use, *alg, *text;
    cjose_jwk_t *jwk;
    cjose_err cerr;

    if (!json_object_is_type(entry, json_type_object)) {
        return NULL;
    }
    kty = member_string(entry, "kty");
    use = member_string(entry, "use");
    alg = member_string(entry, "alg");
    *kid = member_string(entry, "kid");
    if (!kty || strcmp(kty, "RSA") != 0 || (use && strcmp(use, "sig") != 0)
        || (alg && strcmp(alg, "RS256") != 0) || !kid_acceptable(*kid)
        || !b64url_plausible(member_string(entry, "n"))
        || !b64url_plausible(member_string(entry, "e"))) {
        return NULL;
    }
    {
        static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };
        size_t m;

        for (m = 0; m < sizeof private_members / sizeof private_members[0]; m++) {
            if (json_object_object_get_ex(entry, private_members[m], NULL)) {
                return NULL;
            }
        }
    }
    text = gs_json_to_string(p, entry);
    if (!text || !(jwk = cjose_jwk_import(text, strlen(text), &cerr))) {
        return NULL;
    }
    apr_pool_cleanup_register(p, jwk, release_jwk, apr_pool_cleanup_null);
    if (cjose_jwk_get_kty(jwk, &cerr) != CJOSE_JWK_KTY_RSA) {
        return NULL;
    }
    *kid = apr_pstrdup(p, *kid);
    return jwk;
}

apr_status_t gs_push_keys_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                gs_push_keys_t **out, int *skipped, const char **err)
{
    json_object *doc, *arr;
    gs_push_keys_t *keys;
    size_t i, n;
    int skip = 0;

    *out = NULL;
    if (skipped) {
        *skipped = 0;
    }
    if (!json || len > GS_PUSH_JWKS_MAX) {
        *err = "the JWKS is missing or larger than " APR_STRINGIFY(GS_PUSH_JWKS_MAX) " bytes";
        return APR_EINVAL;
    }
    if (!(doc = gs_json_parse(p, json, len, err))) {
        return APR_EINVAL;
    }
    if (!json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, "keys", &arr)
        || !json_object_is_type(arr, json_type_array)) {
        *err = "the JWKS is not an object with a \"keys\" array";
        return APR_EINVAL;
    }
    keys = apr_pcalloc(p, sizeof *keys);
    keys->by_kid = apr_hash_make(p);
    n = json_object_array_length(arr);
    for (i = 0; i < n; i++) {
        const char *kid = NULL;
        cjose_jwk_t *jwk;

        if (apr_hash_count(keys->by_kid) >= GS_PUSH_JWKS_MAX_KEYS
            || !(jwk = import_key(p, json_object_array_get_idx(arr, i), &kid))
            || apr_hash_get(keys->by_kid, kid, APR_HASH_KEY_STRING)) {
            skip++;
            continue;
        }
        apr_hash_set(keys->by_kid, kid, APR_HASH_KEY_STRING, jwk);
    }
    if (skipped) {
        *skipped = skip;
    }
    *out = keys;
    return APR_SUCCESS;
}

int gs_push_keys_count(const gs_push_keys_t *keys)
{
    return keys ? (int)apr_hash_count(keys->by_kid) : 0;
}

int gs_push_keys_has(const gs_push_keys_t *keys, const char *kid)
{
    return keys && kid && apr_hash_get(keys->by_kid, kid, APR_HASH_KEY_STRING) != NULL;
}

/* The shape of a compact JWS: three base64url segments, the first two non-empty, the third
 * non-empty (a signature). Returns the header's length, or 0 when it is not that shape. */
static apr_size_t compact_shape(const char *token, apr_size_t len)
{
    apr_size_t i, dots = 0, first = 0, second = 0;

    for (i = 0; i < len; i++) {
        char c = token[i];

        if (c == '.') {
            if (++dots == 1) {
                first = i;
            }
            else if (dots == 2) {
                second = i;
            }
            else {
                return 0;
            }
        }
        else if (!b64url_char(c)) {
            return 0;
        }
    }
    if (dots != 2 || first == 0 || second == first + 1 || second + 1 == len) {
        return 0;
    }
    return first;
}

/* The JOSE header of token as JSON (NULL when not decodable), *verdict says why not. */
static json_object *token_header(apr_pool_t *p, const char *token, apr_size_t len,
                                 gs_push_verdict_t *verdict)
{
    apr_size_t hlen;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    cjose_err cerr;
    json_object *hdr;
    const char *why;

    *verdict = GS_PUSH_MALFORMED;
    if (!token || !len) {
        return NULL;
    }
    if (len > GS_PUSH_TOKEN_MAX) {
        *verdict = GS_PUSH_TOO_LARGE;
        return NULL;
    }
    if (!(hlen = compact_shape(token, len))) {
        return NULL;
    }
    if (hlen > GS_PUSH_HEADER_MAX) {
        *verdict = GS_PUSH_TOO_LARGE;
        return NULL;
    }
    /* no base64url text has a length of 4n + 1 (cjose's decoder is not to see one: some invalid
     * input makes it assert rather than fail) */
    if (hlen % 4 == 1) {
        return NULL;
    }
    if (!cjose_base64url_decode(token, hlen, &raw, &rawlen, &cerr)) {
        return NULL;
    }
    apr_pool_cleanup_register(p, raw, release_bytes, apr_pool_cleanup_null);
    hdr = gs_json_parse(p, (const char *)raw, rawlen, &why);
    if (!hdr || !json_object_is_type(hdr, json_type_object)) {
        return NULL;
    }
    *verdict = GS_PUSH_OK;
    return hdr;
}

const char *gs_push_token_kid(apr_pool_t *p, const char *token, apr_size_t len)
{
    gs_push_verdict_t v;
    json_object *hdr = token_header(p, token, len, &v);
    const char *kid = hdr ? member_string(hdr, "kid") : NULL;

    return kid_acceptable(kid) ? apr_pstrdup(p, kid) : NULL;
}

/* An integer claim (seconds) as APR time; 0 when absent, not an integer or out of range. */
static apr_time_t time_claim(json_object *claims, const char *key)
{
    json_object *v;
    int64_t s;

    if (!json_object_object_get_ex(claims, key, &v) || !json_object_is_type(v, json_type_int)) {
        return 0;
    }
    s = json_object_get_int64(v);
    if (s <= 0 || s > INT64_C(1) << 40) {
        return 0;
    }
    return apr_time_from_sec(s);
}

static int audience_matches(json_object *claims, const char *audience)
{
    json_object *v;
    size_t i, n;

    if (!audience || !json_object_object_get_ex(claims, "aud", &v)) {
        return 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        return strcmp(json_object_get_string(v), audience) == 0;
    }
    if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) > 8) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(v, i);
        if (json_object_is_type(a, json_type_string) && strcmp(json_object_get_string(a), audience) == 0) {
            return 1;
        }
    }
    return 0;
}

static int email_verified(json_object *claims)
{
    json_object *v;

    if (!json_object_object_get_ex(claims, "email_verified", &v)) {
        return 0;
    }
    if (json_object_is_type(v, json_type_boolean)) {
        return json_object_get_boolean(v);
    }
    return json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "true") == 0;
}

static gs_push_verdict_t check_claims(json_object *c, const gs_push_expect_t *x,
                                      gs_push_claims_t *out)
{
    const char *iss = member_string(c, "iss");

    out->email = member_string(c, "email");
    out->sub = member_string(c, "sub");
    out->iat = time_claim(c, "iat");
    out->exp = time_claim(c, "exp");
    if (!iss || (strcmp(iss, "https://accounts.google.com") != 0 && strcmp(iss, "accounts.google.com") != 0)) {
        return GS_PUSH_ISSUER;
    }
    if (!audience_matches(c, x->audience)) {
        return GS_PUSH_AUDIENCE;
    }
    if (!out->email || !x->email || strcmp(out->email, x->email) != 0 || !email_verified(c)) {
        return GS_PUSH_EMAIL;
    }
    if (!out->iat || !out->exp || out->exp <= out->iat || out->exp - out->iat > GS_PUSH_MAX_LIFETIME
        || out->iat > x->now + GS_PUSH_SKEW) {
        return GS_PUSH_TIME;
    }
    if (out->exp + GS_PUSH_SKEW <= x->now) {
        return GS_PUSH_EXPIRED;
    }
    return GS_PUSH_OK;
}

gs_push_verdict_t gs_push_token_verify(apr_pool_t *p, const char *token, apr_size_t len,
                                       const gs_push_keys_t *keys, const gs_push_expect_t *x,
                                       gs_push_claims_t *claims)
{
    gs_push_claims_t local;
    gs_push_verdict_t v;
    json_object *hdr, *doc;
    cjose_jwk_t *jwk;
    cjose_jws_t *jws;
    cjose_err cerr;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    const char *why;

    if (!claims) {
        claims = &local;
    }
    memset(claims, 0, sizeof *claims);
    if (!(hdr = token_header(p, token, len, &v))) {
        return v;
    }
    claims->alg = member_string(hdr, "alg");
    claims->kid = member_string(hdr, "kid");
    /* before any key is touched: the algorithm is ours to choose, never the token's */
    if (!claims->alg || strcmp(claims->alg, "RS256") != 0) {
        return GS_PUSH_ALG;
    }
    if (!kid_acceptable(claims->kid) || !keys
        || !(jwk = apr_hash_get(keys->by_kid, claims->kid, APR_HASH_KEY_STRING))) {
        return GS_PUSH_UNKNOWN_KID;
    }
    if (!(jws = cjose_jws_import(token, len, &cerr))) {
        return GS_PUSH_MALFORMED;
    }
    apr_pool_cleanup_register(p, jws, release_jws, apr_pool_cleanup_null);
    if (!cjose_jws_verify(jws, jwk, &cerr)) {
        return GS_PUSH_SIGNATURE;
    }
    if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) || !plain) {
        return GS_PUSH_MALFORMED;
    }
    doc = gs_json_parse(p, (const char *)plain, plain_len, &why);
    if (!doc || !json_object_is_type(doc, json_type_object)) {
        return GS_PUSH_MALFORMED;
    }
    return check_claims(doc, x, claims);
}
