/* fuzz_push.c -- what a Pub/Sub push brings (issue 26): its body (gs_push_msg_parse), its
 * bearer token (gs_push_token_verify against a key set made at the first input, and
 * gs_push_token_kid), a JWKS answer (gs_push_keys_parse) and its Cache-Control
 * (gs_push_cache_lifetime). Input: the first byte picks which, the rest is the input. A token
 * accepted with a key made in this process would be a forgery: abort. */
#include <cjose/cjose.h>

#include "fuzz.h"
#include "gs_push_msg.h"
#include "gs_push_token.h"

/* The JWKS of a key made at the first input, kept as text (malloc'd, so that LeakSanitizer sees
 * it reachable) and parsed again for every input, in the input's pool. */
static char *fuzz_jwks;

/* The JWKS of one 2048-bit RSA key, made once, before the first input: generating it can take
 * seconds under the sanitizers on a loaded machine. */
void fuzz_setup(void)
{
    static const uint8_t e[] = { 0x01, 0x00, 0x01 };
    cjose_err err;
    cjose_jwk_t *k;
    char *pub;

    if (!fuzz_jwks) {
        if (!(k = cjose_jwk_create_RSA_random(2048, e, sizeof e, &err)) || !cjose_jwk_set_kid(k, "k1", 2, &err)
            || !(pub = cjose_jwk_to_json(k, false, &err))) {
            abort();
        }
        fuzz_jwks = malloc(strlen(pub) + 16);
        if (!fuzz_jwks) {
            abort();
        }
        strcpy(fuzz_jwks, "{\"keys\":[");
        strcat(fuzz_jwks, pub);
        strcat(fuzz_jwks, "]}");
        cjose_get_dealloc()(pub);
        cjose_jwk_release(k);
    }
}

static gs_push_keys_t *keys_for(apr_pool_t *p)
{
    const char *why = NULL;
    gs_push_keys_t *keys;

    fuzz_setup();
    if (gs_push_keys_parse(p, fuzz_jwks, strlen(fuzz_jwks), &keys, NULL, &why) != APR_SUCCESS
        || gs_push_keys_count(keys) != 1) {
        abort();
    }
    return keys;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *in, *err = NULL;
    gs_push_msg_t msg;
    gs_push_keys_t *keys;
    gs_push_expect_t x = { "https://push.example/push", "push@p.iam.gserviceaccount.com",
                           apr_time_from_sec(1800000000) };
    gs_push_claims_t claims;
    apr_interval_time_t age;
    int skipped = 0;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    in = fuzz_cstr(p, data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        if (gs_push_msg_parse(p, (const char *)data + 1, size - 1, &msg, &err) == APR_SUCCESS
            ? (!msg.email || !msg.message_id || !msg.history_id) : !err) {
            abort();
        }
        break;
    case 1:
        if (gs_push_token_verify(p, (const char *)data + 1, size - 1, keys_for(p), &x, &claims) == GS_PUSH_OK) {
            abort();
        }
        (void)gs_push_token_kid(p, (const char *)data + 1, size - 1);
        break;
    case 2:
        if (gs_push_keys_parse(p, (const char *)data + 1, size - 1, &keys, &skipped, &err) == APR_SUCCESS
            ? (!keys || gs_push_keys_count(keys) > GS_PUSH_JWKS_MAX_KEYS) : !err) {
            abort();
        }
        break;
    default:
        age = gs_push_cache_lifetime(in);
        if (age < GS_PUSH_JWKS_MIN_AGE || age > GS_PUSH_JWKS_MAX_AGE) {
            abort();
        }
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
