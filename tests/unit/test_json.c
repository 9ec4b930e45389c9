/* test_json.c -- untrusted JSON is parsed strictly and owned by pools. */
#include <string.h>

#include <apr_pools.h>
#include <check.h>

#include "gs_json.h"
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

static json_object *parse(const char *text, const char **err)
{
    *err = NULL;
    return gs_json_parse(pool, text, strlen(text), err);
}

START_TEST(parses_objects)
{
    const char *err;
    json_object *o = parse(" {\"force_full\": true, \"x\": [1,2]}\n", &err);
    json_object *v;

    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_object_get_ex(o, "force_full", &v));
    ck_assert(json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v));
}
END_TEST

START_TEST(rejects_bad_documents)
{
    static const char *const bad[] = {
        "", "{", "{\"a\":1", "{\"a\":1}}", "{\"a\":1} x", "{'a':1}", "{\"a\":tru}", "null",
        "{\"a\":1,}",
        /* RFC 8259 strictness json-c alone does not have */
        "{\"x\":NaN}", "{\"x\":Infinity}", "{\"x\":-Infinity}", "{\"x\":\"a\x01z\"}",
        "{\"x\":\"\xff\xfe\xc0\xaf\"}", "{\"x\":\"\xc0\xaf\"}", "{\"x\":\"\xed\xa0\x80\"}",
        "{\"x\":\"\\ud800\"}", "{\"x\":\"\\udc00\"}", "{\"x\":\"\\ud800\\u0041\"}",
        "{\"force_full\":1,\"force_full\":false}", "{\"x\":01}", "{\"x\":+1}", "{}\v",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err;
        ck_assert_msg(parse(bad[i], &err) == NULL, "accepted %s", bad[i]);
        ck_assert_msg(err != NULL, "no error for %s", bad[i]);
    }
}
END_TEST

START_TEST(embedded_nul_is_not_trailing_space)
{
    const char doc[] = "{\"a\":1}\0{\"b\":2}";
    const char *err = NULL;

    ck_assert_ptr_null(gs_json_parse(pool, doc, sizeof doc - 1, &err));
    ck_assert_ptr_nonnull(err);
}
END_TEST

START_TEST(serializes_without_slash_escapes)
{
    json_object *o = gs_json_object(pool);

    gs_json_set_string(o, "url", "/api/gmail/sync/progress/1");
    gs_json_set_string(o, "error", NULL);
    gs_json_set_int(o, "n", 42);
    gs_json_set_bool(o, "ok", 1);
    ck_assert_str_eq(gs_json_to_string(pool, o),
                     "{\"url\":\"/api/gmail/sync/progress/1\",\"error\":null,\"n\":42,\"ok\":true}");
}
END_TEST

Suite *gs_json_suite(void)
{
    Suite *s = suite_create("gs_json");
    TCase *tc = tcase_create("json");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, parses_objects);
    tcase_add_test(tc, rejects_bad_documents);
    tcase_add_test(tc, embedded_nul_is_not_trailing_space);
    tcase_add_test(tc, serializes_without_slash_escapes);
    suite_add_tcase(s, tc);
    return s;
}
