/* test_sha256.c -- FIPS 180-4 / NIST test vectors, including the padding edge lengths. */
#include <string.h>

#include <check.h>

#include "gs_sha256.h"
#include "unit.h"

static const char *hex_of(const void *data, size_t len)
{
    static char hex[65];
    unsigned char d[GS_SHA256_DIGEST_LEN];

    gs_sha256(data, len, d);
    gs_sha256_hex(d, hex);
    return hex;
}

START_TEST(nist_vectors)
{
    ck_assert_str_eq(hex_of("", 0),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(hex_of("abc", 3),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_str_eq(
        hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    ck_assert_str_eq(
        hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
               "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 112),
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}
END_TEST

START_TEST(million_a)
{
    static char buf[1000000];

    memset(buf, 'a', sizeof buf);
    ck_assert_str_eq(hex_of(buf, sizeof buf),
                     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(padding_boundaries)
{
    /* 55, 56, 63, 64 bytes: one or two final blocks */
    static const struct { size_t len; const char *hex; } v[] = {
        { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
        { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
        { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
        { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
    };
    char buf[64];
    size_t i;

    memset(buf, 'a', sizeof buf);
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        ck_assert_msg(!strcmp(hex_of(buf, v[i].len), v[i].hex), "length %zu", v[i].len);
    }
}
END_TEST

Suite *gs_sha256_suite(void)
{
    Suite *s = suite_create("gs_sha256");
    TCase *tc = tcase_create("vectors");

    tcase_add_test(tc, nist_vectors);
    tcase_add_test(tc, million_a);
    tcase_add_test(tc, padding_boundaries);
    suite_add_tcase(s, tc);
    return s;
}
