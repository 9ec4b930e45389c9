/* test_config.c -- the directive value parsers reject what httpd must refuse at startup. */
#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_config.h"
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

START_TEST(duration_accepts_units)
{
    static const struct { const char *text; apr_interval_time_t usec; } ok[] = {
        { "0", 0 }, { "5", 5 * APR_USEC_PER_SEC }, { "5s", 5 * APR_USEC_PER_SEC },
        { "250ms", 250000 }, { "5m", 300 * APR_USEC_PER_SEC }, { "1h", 3600 * APR_USEC_PER_SEC },
        { "2d", 2 * 86400 * APR_USEC_PER_SEC }, { "30d", 30LL * 86400 * APR_USEC_PER_SEC },
    };
    size_t i;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        apr_interval_time_t d = -1;
        ck_assert_msg(gs_parse_duration(ok[i].text, &d, NULL) == APR_SUCCESS, "%s", ok[i].text);
        ck_assert_msg(d == ok[i].usec, "%s parsed as %lld", ok[i].text, (long long)d);
    }
}
END_TEST

START_TEST(duration_rejects_garbage)
{
    static const char *const bad[] = {
        "", "s", "-5s", "+5s", "5 s", " 5s", "5x", "5sec", "1.5s", "5S", "0x10",
        "31d", "99999999999999999999999s", "9223372036854775807ms", "5s ", "5ss",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        apr_interval_time_t d = 42;
        const char *why = NULL;
        ck_assert_msg(gs_parse_duration(bad[i], &d, &why) == APR_EINVAL, "accepted '%s'", bad[i]);
        ck_assert_msg(why != NULL, "no reason for '%s'", bad[i]);
        ck_assert_msg(d == 42, "'%s' changed the output", bad[i]);
    }
    ck_assert(gs_parse_duration(NULL, &(apr_interval_time_t){0}, NULL) == APR_EINVAL);
}
END_TEST

START_TEST(duration_round_trips)
{
    static const char *const texts[] = { "250ms", "5s", "5m", "1h", "2d", "90s" };
    size_t i;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        apr_interval_time_t d, again;
        ck_assert(gs_parse_duration(texts[i], &d, NULL) == APR_SUCCESS);
        ck_assert(gs_parse_duration(gs_format_duration(pool, d), &again, NULL) == APR_SUCCESS);
        ck_assert_msg(d == again, "%s -> %s", texts[i], gs_format_duration(pool, d));
    }
    ck_assert_str_eq(gs_format_duration(pool, apr_time_from_sec(300)), "5m");
    ck_assert_str_eq(gs_format_duration(pool, apr_time_from_sec(90)), "90s");
}
END_TEST

START_TEST(int_bounds)
{
    long v = 0;

    ck_assert(gs_parse_int("4", 0, 256, &v, NULL) == APR_SUCCESS && v == 4);
    ck_assert(gs_parse_int("0", 0, 256, &v, NULL) == APR_SUCCESS && v == 0);
    ck_assert(gs_parse_int("257", 0, 256, &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_int("-1", 0, 256, &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_int("4x", 0, 256, &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_int("", 0, 256, &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_int(" 4", 0, 256, &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_int("99999999999999999999999", 0, 256, &v, NULL) == APR_EINVAL);
    ck_assert_int_eq(v, 0);
}
END_TEST

START_TEST(sizes_and_content_modes)
{
    static const char *const bad[] = { "", "M", "-1", "1.5M", "25G", "25 M", "25MB", "1025M",
                                       "99999999999999999999", NULL };
    apr_int64_t v = -1;
    const char *why = NULL;
    int i;

    ck_assert_int_eq(gs_parse_size("0", GS_MAX_ATTACHMENT_MAX_SIZE, &v, &why), APR_SUCCESS);
    ck_assert(v == 0);
    ck_assert_int_eq(gs_parse_size("1048576", GS_MAX_ATTACHMENT_MAX_SIZE, &v, &why), APR_SUCCESS);
    ck_assert(v == 1048576);
    ck_assert_int_eq(gs_parse_size("512k", GS_MAX_ATTACHMENT_MAX_SIZE, &v, &why), APR_SUCCESS);
    ck_assert(v == 512 * 1024);
    ck_assert_int_eq(gs_parse_size("25M", GS_MAX_ATTACHMENT_MAX_SIZE, &v, &why), APR_SUCCESS);
    ck_assert(v == GS_DEFAULT_ATTACHMENT_MAX_SIZE);
    ck_assert_int_eq(gs_parse_size("1024M", GS_MAX_ATTACHMENT_MAX_SIZE, &v, &why), APR_SUCCESS);
    ck_assert(v == GS_MAX_ATTACHMENT_MAX_SIZE);
    for (i = 0; bad[i]; i++) {
        why = NULL;
        ck_assert_msg(gs_parse_size(bad[i], GS_MAX_ATTACHMENT_MAX_SIZE, &v, &why) != APR_SUCCESS,
                      "accepted '%s'", bad[i]);
        ck_assert_ptr_nonnull(why);
    }
    ck_assert_int_eq(gs_parse_choice(pool, "FULL", gs_content_mode_names, &i, &why), APR_SUCCESS);
    ck_assert_int_eq(i, GS_CONTENT_FULL);
    ck_assert_int_eq(gs_parse_choice(pool, "metadata", gs_content_mode_names, &i, &why),
                     APR_SUCCESS);
    ck_assert_int_eq(i, GS_CONTENT_METADATA);
    ck_assert_int_ne(gs_parse_choice(pool, "raw", gs_content_mode_names, &i, &why), APR_SUCCESS);
    ck_assert_str_eq(why, "expected full or metadata");
    ck_assert_int_eq(gs_parse_choice(pool, "Store", gs_attach_mode_names, &i, &why), APR_SUCCESS);
    ck_assert_int_eq(i, GS_ATTACH_STORE);
    ck_assert_int_eq(gs_parse_choice(pool, "metadata", gs_attach_mode_names, &i, &why),
                     APR_SUCCESS);
    ck_assert_int_eq(i, GS_ATTACH_METADATA);
    ck_assert_int_ne(gs_parse_choice(pool, NULL, gs_attach_mode_names, &i, &why), APR_SUCCESS);
    ck_assert_str_eq(why, "expected store or metadata");
    ck_assert_str_eq(gs_content_mode_name(GS_CONTENT_METADATA), "metadata");
    ck_assert_str_eq(gs_attach_mode_name(GS_ATTACH_STORE), "store");
}
END_TEST

START_TEST(percent_forms)
{
    double v = -1;

    ck_assert(gs_parse_percent("95", &v, NULL) == APR_SUCCESS && v == 95.0);
    ck_assert(gs_parse_percent("99.5%", &v, NULL) == APR_SUCCESS && v == 99.5);
    ck_assert(gs_parse_percent("0%", &v, NULL) == APR_SUCCESS && v == 0.0);
    ck_assert(gs_parse_percent("100", &v, NULL) == APR_SUCCESS && v == 100.0);
    ck_assert(gs_parse_percent("101", &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_percent("-1", &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_percent("5%%", &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_percent("nan", &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_percent("inf", &v, NULL) == APR_EINVAL);
    ck_assert(gs_parse_percent("", &v, NULL) == APR_EINVAL);
}
END_TEST

START_TEST(urls)
{
    const char *u = NULL;

    ck_assert(gs_parse_http_url(pool, "https://gmail.googleapis.com/", &u, NULL) == APR_SUCCESS);
    ck_assert_str_eq(u, "https://gmail.googleapis.com");
    ck_assert(gs_parse_http_url(pool, "http://127.0.0.1:8080/x", &u, NULL) == APR_SUCCESS);
    ck_assert_str_eq(u, "http://127.0.0.1:8080/x");
    ck_assert(gs_parse_http_url(pool, "ftp://example.com", &u, NULL) == APR_EINVAL);
    ck_assert(gs_parse_http_url(pool, "example.com/path", &u, NULL) == APR_EINVAL);
    ck_assert(gs_parse_http_url(pool, "https://user:pw@example.com", &u, NULL) == APR_EINVAL);
    ck_assert(gs_parse_http_url(pool, "https://example.com/#x", &u, NULL) == APR_EINVAL);
    ck_assert(gs_parse_http_url(pool, "https://exa mple.com", &u, NULL) == APR_EINVAL);
    ck_assert(gs_parse_http_url(pool, "https://example.com:99999", &u, NULL) == APR_EINVAL);
    ck_assert(gs_parse_http_url(pool, "", &u, NULL) == APR_EINVAL);
}
END_TEST

START_TEST(origins)
{
    const char *o = NULL;

    ck_assert(gs_parse_origin(pool, "HTTPS://App.Example.com:8443", &o, NULL) == APR_SUCCESS);
    ck_assert_str_eq(o, "https://app.example.com:8443");
    ck_assert(gs_parse_origin(pool, "https://app.example.com/", &o, NULL) == APR_EINVAL);
    ck_assert(gs_parse_origin(pool, "https://app.example.com/x", &o, NULL) == APR_EINVAL);
    ck_assert(gs_parse_origin(pool, "app.example.com", &o, NULL) == APR_EINVAL);
    ck_assert(gs_parse_origin(pool, "https://App.Example.com:443", &o, NULL) == APR_SUCCESS);
    ck_assert_str_eq(o, "https://app.example.com");
}
END_TEST

START_TEST(prefixes)
{
    ck_assert(gs_parse_uri_prefix("/api/gmail/sync", NULL) == APR_SUCCESS);
    ck_assert(gs_parse_uri_prefix("/x", NULL) == APR_SUCCESS);
    ck_assert(gs_parse_uri_prefix("api", NULL) == APR_EINVAL);
    ck_assert(gs_parse_uri_prefix("/", NULL) == APR_EINVAL);
    ck_assert(gs_parse_uri_prefix("/api/", NULL) == APR_EINVAL);
    ck_assert(gs_parse_uri_prefix("/api/../x", NULL) == APR_EINVAL);
    ck_assert(gs_parse_uri_prefix("/api//x", NULL) == APR_EINVAL);
    ck_assert(gs_parse_uri_prefix("/a b", NULL) == APR_EINVAL);
    ck_assert(gs_parse_uri_prefix("/a?b", NULL) == APR_EINVAL);
}
END_TEST

Suite *gs_config_suite(void)
{
    Suite *s = suite_create("gs_config");
    TCase *tc = tcase_create("parsers");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, duration_accepts_units);
    tcase_add_test(tc, duration_rejects_garbage);
    tcase_add_test(tc, duration_round_trips);
    tcase_add_test(tc, int_bounds);
    tcase_add_test(tc, percent_forms);
    tcase_add_test(tc, sizes_and_content_modes);
    tcase_add_test(tc, urls);
    tcase_add_test(tc, origins);
    tcase_add_test(tc, prefixes);
    suite_add_tcase(s, tc);
    return s;
}
