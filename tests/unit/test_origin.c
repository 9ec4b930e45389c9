/* test_origin.c -- Origin values and server names for the cross-site check. */
#include <apr_pools.h>
#include <check.h>

#include "gs_origin.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static const char *norm(const char *text)
{
    gs_origin_t o;
    const char *why = NULL;

    if (gs_origin_parse(pool, text, &o, &why) != APR_SUCCESS) {
        ck_assert_ptr_nonnull(why);
        return NULL;
    }
    return gs_origin_format(pool, &o);
}

START_TEST(parses_and_normalises)
{
    static const char *const cases[][2] = {
        { "http://127.0.0.1:19080", "http://127.0.0.1:19080" },
        { "HTTPS://App.Example.COM", "https://app.example.com" },
        { "https://app.example.com:443", "https://app.example.com" },
        { "http://app.example.com:80", "http://app.example.com" },
        { "http://app.example.com:443", "http://app.example.com:443" },
        { "https://app.example.com:80", "https://app.example.com:80" },
        { "http://[::1]:8080", "http://[::1]:8080" },
        { "http://[FE80::1]", "http://[fe80::1]" },
        { "http://my_host-1.example", "http://my_host-1.example" },
        { "http://localhost:65535", "http://localhost:65535" },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = norm(cases[i][0]);
        ck_assert_msg(got != NULL, "refused %s", cases[i][0]);
        ck_assert_str_eq(got, cases[i][1]);
    }
}
END_TEST

START_TEST(refuses_what_is_not_an_origin)
{
    static const char *const bad[] = {
        "", "null", "NULL", "*", "127.0.0.1", "//127.0.0.1", "ftp://x", "file://", "http://",
        "http:/x", "http:x", "https//x", "http://x/", "http://x/path", "http://x?q", "http://x#f",
        "http://user@x", "http://user:pw@x", "http://x:", "http://x:0", "http://x:65536",
        "http://x:99999999999999999999", "http://x:+80", "http://x:8a", "http://x :80",
        " http://x", "http://x ", "http://x, http://y", "http://x http://y", "http://.x",
        "http://x..y", "http://x.", "http://[::1", "http://[]", "http://[::1]x",
        "http://[g::1]", "http://x%2ey", "http://ex\xc3\xa4mple.com", "http://x\ty",
        "http://evil.example\r\n",
    };
    size_t i;

    ck_assert(gs_origin_parse(pool, NULL, &(gs_origin_t){ 0 }, NULL) == APR_EINVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(norm(bad[i]) == NULL, "accepted \"%s\"", bad[i]);
    }
}
END_TEST

START_TEST(host_names)
{
    ck_assert(gs_host_equals("App.Example.com", "app.example.com"));
    ck_assert(gs_host_equals("::1", "[::1]"));
    ck_assert(gs_host_equals("[::1]", "[::1]"));
    ck_assert(!gs_host_equals("app.example.com", "app.example.com.evil"));
    ck_assert(!gs_host_equals("", ""));
}
END_TEST

START_TEST(wildcards_match_single_labels)
{
    static const struct { const char *pattern, *host; int match; } cases[] = {
        { "*.example.com", "a.example.com", 1 },
        { "*.example.com", "A.Example.COM", 1 },
        { "*.EXAMPLE.com", "www.example.com", 1 },
        { "*.example.com", "a.b.example.com", 0 },
        { "*.example.com", "example.com", 0 },
        { "*.example.com", ".example.com", 0 },
        { "*.example.com", "a.example.com.evil.example", 0 },
        { "*.example.com", "a.example.community", 0 },
        { "*.example.com", "evilexample.com", 0 },
        { "app-?.example.com", "app-1.example.com", 1 },
        { "app-?.example.com", "app-12.example.com", 0 },
        { "app-?.example.com", "app-.example.com", 0 },
        { "app-*.example.com", "app-.example.com", 1 },
        { "app-*.example.com", "app-x.y.example.com", 0 },
        { "*app*.example.com", "myapp2.example.com", 1 },
        { "a*b*c.example.com", "aXbYbZc.example.com", 1 },
        { "a*b*c.example.com", "aXbYbZ.example.com", 0 },
        { "www.*.com", "www.example.com", 1 },
        { "www.*.com", "www.a.b.com", 0 },
        { "*.*", "a.b", 1 },
        { "*.*", "a.b.c", 0 },
        { "*", "localhost", 1 },
        { "*", "a.b", 0 },
        { "127.0.0.*", "127.0.0.1", 1 },
        { "127.0.0.*", "127.0.0.1.evil", 0 },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(gs_host_matches_pattern(cases[i].pattern, cases[i].host) == cases[i].match,
                      "%s vs %s", cases[i].pattern, cases[i].host);
    }
}
END_TEST

Suite *gs_origin_suite(void)
{
    Suite *s = suite_create("gs_origin");
    TCase *tc = tcase_create("origins");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, parses_and_normalises);
    tcase_add_test(tc, refuses_what_is_not_an_origin);
    tcase_add_test(tc, host_names);
    tcase_add_test(tc, wildcards_match_single_labels);
    suite_add_tcase(s, tc);
    return s;
}
