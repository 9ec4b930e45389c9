/* test_tokenbox.c -- tokens sealed at rest: the key file, sealing, and what must not open. */
#include <string.h>

#include <apr_file_io.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_rekey.h"
#include "gs_tokenbox.h"
#include "unit.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static gs_keyring_t *ring(const char *text)
{
    gs_keyring_t *kr = NULL;
    const char *err = NULL;

    ck_assert_msg(gs_keyring_parse(&kr, pool, text, strlen(text), &err) == APR_SUCCESS,
                  "%s", err ? err : "");
    return kr;
}

static const char *parse_error(const char *text)
{
    gs_keyring_t *kr = NULL;
    const char *err = NULL;

    ck_assert(gs_keyring_parse(&kr, pool, text, strlen(text), &err) == APR_EINVAL);
    ck_assert_ptr_nonnull(err);
    return err;
}

START_TEST(key_file_text)
{
    gs_keyring_t *kr = ring("# current\n" KEY_A "\r\n\n  " KEY_B "  \n");

    ck_assert_int_eq(kr->keys->nelts, 2);
    /* the id is derived from the key: sha256("gmailsync token key id\n" || key), 8 hex */
    ck_assert_str_eq(gs_keyring_current_id(kr), "f095d690");
    ck_assert_ptr_nonnull(gs_keyring_find(kr, "d6ffa847"));
    ck_assert_ptr_null(gs_keyring_find(kr, "00000000"));
    ck_assert_ptr_nonnull(strstr(parse_error(""), "no key"));
    ck_assert_ptr_nonnull(strstr(parse_error("# only a comment\n"), "no key"));
    ck_assert_ptr_nonnull(strstr(parse_error(KEY_A "0\n"), "line 1"));
    ck_assert_ptr_nonnull(strstr(parse_error(KEY_A "\n" KEY_A "\n"), "twice"));
    ck_assert_ptr_nonnull(strstr(parse_error("\nzz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
                                 "line 2"));
    /* a message never repeats the key */
    ck_assert_ptr_null(strstr(parse_error(KEY_A "00\n"), "0001020304"));
}
END_TEST

START_TEST(seal_then_open)
{
    gs_keyring_t *kr = ring(KEY_A "\n");
    const char *ctx = gs_tokenbox_context(pool, "refresh_token", "alice");
    const char *sealed, *again, *plain, *err;

    ck_assert_int_eq(gs_tokenbox_seal(kr, pool, ctx, "1//refresh-token-value", &sealed),
                     APR_SUCCESS);
    ck_assert_ptr_eq(strstr(sealed, "gs1:f095d690:"), sealed);
    ck_assert_ptr_null(strstr(sealed, "refresh-token"));
    ck_assert_str_eq(gs_tokenbox_key_id(pool, sealed), "f095d690");
    ck_assert_int_eq(gs_tokenbox_open(kr, pool, ctx, sealed, &plain, &err), APR_SUCCESS);
    ck_assert_str_eq(plain, "1//refresh-token-value");
    /* a fresh nonce each time */
    ck_assert_int_eq(gs_tokenbox_seal(kr, pool, ctx, "1//refresh-token-value", &again),
                     APR_SUCCESS);
    ck_assert_str_ne(sealed, again);
    ck_assert_int_eq(gs_tokenbox_seal(kr, pool, ctx, "", &again), APR_EINVAL);
}
END_TEST

START_TEST(what_does_not_open)
{
    gs_keyring_t *a = ring(KEY_A "\n"), *b = ring(KEY_B "\n");
    const char *ctx = gs_tokenbox_context(pool, "refresh_token", "alice");
    const char *sealed, *plain = NULL, *err = NULL;
    char *bad;
    size_t n;

    ck_assert_int_eq(gs_tokenbox_seal(a, pool, ctx, "secret", &sealed), APR_SUCCESS);
    /* another user's row, another column */
    ck_assert_int_eq(gs_tokenbox_open(a, pool, gs_tokenbox_context(pool, "refresh_token", "bob"),
                                      sealed, &plain, &err), APR_EGENERAL);
    ck_assert_int_eq(gs_tokenbox_open(a, pool, gs_tokenbox_context(pool, "access_token", "alice"),
                                      sealed, &plain, &err), APR_EGENERAL);
    /* a ring without its key */
    ck_assert_int_eq(gs_tokenbox_open(b, pool, ctx, sealed, &plain, &err), APR_ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "f095d690"));
    /* one flipped bit anywhere in the payload */
    bad = apr_pstrdup(pool, sealed);
    n = strlen(bad);
    bad[n - 6] = bad[n - 6] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, bad, &plain, &err), APR_EGENERAL);
    /* a different key under a forged id */
    bad = apr_pstrcat(pool, "gs1:d6ffa847:", sealed + 13, NULL);
    ck_assert_int_eq(gs_tokenbox_open(b, pool, ctx, bad, &plain, &err), APR_EGENERAL);
    /* not sealed values at all: plaintext, truncated, junk */
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, "1//plaintext", &plain, &err), APR_EINVAL);
    ck_assert_ptr_null(gs_tokenbox_key_id(pool, "1//plaintext"));
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, "gs1:f095d690:", &plain, &err), APR_EINVAL);
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, "gs1:f095d690:AAAA", &plain, &err),
                     APR_EINVAL);
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, "gs1:F095D690:AAAA", &plain, &err),
                     APR_EINVAL);
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, "gs1:f095d690:!!!!", &plain, &err),
                     APR_EINVAL);
    ck_assert_int_eq(gs_tokenbox_open(a, pool, ctx, NULL, &plain, &err), APR_EINVAL);
}
END_TEST

START_TEST(rotation_ring)
{
    /* old values open under a ring that lists their key second; new ones seal under the first */
    gs_keyring_t *old = ring(KEY_A "\n"), *both = ring(KEY_B "\n" KEY_A "\n");
    const char *ctx = gs_tokenbox_context(pool, "access_token", "alice");
    const char *sealed, *plain, *err, *resealed;

    ck_assert_int_eq(gs_tokenbox_seal(old, pool, ctx, "ya29.access", &sealed), APR_SUCCESS);
    ck_assert_int_eq(gs_tokenbox_open(both, pool, ctx, sealed, &plain, &err), APR_SUCCESS);
    ck_assert_str_eq(plain, "ya29.access");
    ck_assert_int_eq(gs_tokenbox_seal(both, pool, ctx, plain, &resealed), APR_SUCCESS);
    ck_assert_str_eq(gs_tokenbox_key_id(pool, resealed), "d6ffa847");
}
END_TEST

START_TEST(key_file_permissions)
{
    char path[] = "/tmp/gs-unit-key-XXXXXX";
    apr_file_t *f;
    gs_keyring_t *kr = NULL;
    const char *err = NULL, *line;
    apr_size_t n;

    ck_assert_int_eq(gs_tokenbox_generate_key(pool, &line), APR_SUCCESS);
    ck_assert_uint_eq(strlen(line), 64);
    ck_assert_int_eq(apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_READ
                                     | APR_FOPEN_WRITE | APR_FOPEN_EXCL, pool), APR_SUCCESS);
    n = strlen(line);
    ck_assert_int_eq(apr_file_write_full(f, line, n, &n), APR_SUCCESS);
    apr_file_close(f);
    ck_assert_int_eq(apr_file_perms_set(path, APR_FPROT_UREAD | APR_FPROT_UWRITE), APR_SUCCESS);
    ck_assert_int_eq(gs_keyring_load(&kr, pool, path, &err), APR_SUCCESS);
    ck_assert_int_eq(apr_file_perms_set(path, APR_FPROT_UREAD | APR_FPROT_GREAD), APR_SUCCESS);
    ck_assert_int_eq(gs_keyring_load(&kr, pool, path, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "other users"));
    ck_assert_int_eq(apr_file_remove(path, pool), APR_SUCCESS);
    ck_assert_int_ne(gs_keyring_load(&kr, pool, path, &err), APR_SUCCESS);
    ck_assert_int_ne(gs_keyring_load(&kr, pool, "/tmp", &err), APR_SUCCESS);
}
END_TEST

START_TEST(key_lines_for_the_worker)
{
    gs_keyring_t *kr = ring(KEY_A "\n" KEY_B "\n");

    /* what the daemon writes on a worker's stdin: the keys in the file's order, lower case */
    ck_assert_str_eq(gs_keyring_hex(kr, pool, 0), KEY_A);
    ck_assert_str_eq(gs_keyring_hex(kr, pool, 1), "ffffffffffffffffffffffffffffffff"
                                                  "ffffffffffffffffffffffffffffffff");
    ck_assert_ptr_null(gs_keyring_hex(kr, pool, 2));
    ck_assert_ptr_null(gs_keyring_hex(kr, pool, -1));
    ck_assert_str_eq(gs_keyring_current_id(ring(gs_keyring_hex(kr, pool, 1))), "d6ffa847");
}
END_TEST

/* gmailsync-rotate-key's decision for one stored value */
START_TEST(rekey_every_case)
{
    gs_keyring_t *old_ring = ring(KEY_B "\n"), *new_ring = ring(KEY_A "\n" KEY_B "\n");
    gs_keyring_t *other = ring("0101010101010101010101010101010101010101010101010101010101010101\n");
    const char *ctx = gs_tokenbox_context(pool, "refresh_token", "u1"), *under_old, *under_new;
    const char *out, *why, *plain, *err;

    ck_assert_int_eq(gs_tokenbox_seal(old_ring, pool, ctx, "1//tok", &under_old), APR_SUCCESS);
    ck_assert_int_eq(gs_tokenbox_seal(new_ring, pool, ctx, "1//tok", &under_new), APR_SUCCESS);

    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", NULL, 0, &out, &why),
                     GS_REKEY_EMPTY);
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", "", 0, &out, &why),
                     GS_REKEY_EMPTY);
    /* plaintext: sealed under the current key, opening in the right place only */
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", "1//tok", 0, &out,
                                    &why), GS_REKEY_SEAL);
    ck_assert_str_eq(gs_tokenbox_key_id(pool, out), "f095d690");
    ck_assert_int_eq(gs_tokenbox_open(new_ring, pool, ctx, out, &plain, &err), APR_SUCCESS);
    ck_assert_str_eq(plain, "1//tok");
    ck_assert_int_ne(gs_tokenbox_open(new_ring, pool, gs_tokenbox_context(pool, "access_token",
                                      "u1"), out, &plain, &err), APR_SUCCESS);
    /* under an older key of the ring: re-sealed; under the current one: left as it is */
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", under_old, 0, &out,
                                    &why), GS_REKEY_RESEAL);
    ck_assert_str_eq(gs_tokenbox_key_id(pool, out), "f095d690");
    ck_assert_int_eq(gs_tokenbox_open(new_ring, pool, ctx, out, &plain, &err), APR_SUCCESS);
    ck_assert_str_eq(plain, "1//tok");
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", under_new, 0, &out,
                                    &why), GS_REKEY_CURRENT);
    ck_assert_ptr_eq(out, under_new);
    /* what does not open: a key not in the ring, another row's value; named, never echoed */
    ck_assert_int_eq(gs_rekey_value(other, pool, "refresh_token", "u1", under_new, 0, &out, &why),
                     GS_REKEY_FAILED);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(why, "f095d690"));
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u2", under_new, 0, &out,
                                    &why), GS_REKEY_FAILED);
    ck_assert_ptr_null(strstr(why, "1//tok"));
    /* unsealing (a rollback to a release before sealed tokens) */
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", under_old, 1, &out,
                                    &why), GS_REKEY_UNSEAL);
    ck_assert_str_eq(out, "1//tok");
    ck_assert_int_eq(gs_rekey_value(new_ring, pool, "refresh_token", "u1", "1//tok", 1, &out,
                                    &why), GS_REKEY_CURRENT);
    ck_assert_str_eq(gs_rekey_action_name(GS_REKEY_RESEAL), "resealed");
    ck_assert_str_eq(gs_rekey_action_name(GS_REKEY_FAILED), "failed");
}
END_TEST

Suite *gs_tokenbox_suite(void)
{
    Suite *s = suite_create("gs_tokenbox");
    TCase *tc = tcase_create("tokenbox");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, key_file_text);
    tcase_add_test(tc, seal_then_open);
    tcase_add_test(tc, what_does_not_open);
    tcase_add_test(tc, rotation_ring);
    tcase_add_test(tc, key_file_permissions);
    tcase_add_test(tc, key_lines_for_the_worker);
    tcase_add_test(tc, rekey_every_case);
    suite_add_tcase(s, tc);
    return s;
}
