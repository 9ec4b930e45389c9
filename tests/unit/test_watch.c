/* test_watch.c -- users.watch / users.stop requests, the watch's answer and the backoff
 * (gs_watch.c, issue 26). */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_watch.h"
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

static gs_http_request_t *answer(int status, const char *body)
{
    gs_http_request_t *req = gs_http_request(pool, "POST", "http://x/gmail/v1/users/me/watch");

    req->status = status;
    req->resp_body = body;
    req->resp_len = strlen(body);
    return req;
}

START_TEST(builds_watch_and_stop)
{
    gs_http_request_t *req = gs_watch_request(pool, "http://127.0.0.1:9", "tok",
                                              "projects/p/topics/t");

    ck_assert_str_eq(req->method, "POST");
    ck_assert_str_eq(req->url, "http://127.0.0.1:9/gmail/v1/users/me/watch");
    ck_assert_str_eq(req->body, "{\"topicName\":\"projects/p/topics/t\"}");
    ck_assert_uint_eq(req->body_len, strlen(req->body));
    ck_assert_str_eq(APR_ARRAY_IDX(req->headers, 0, const char *), "Authorization: Bearer tok");
    req = gs_watch_stop_request(pool, "http://h", "tok");
    ck_assert_str_eq(req->url, "http://h/gmail/v1/users/me/stop");
    ck_assert_uint_eq(req->body_len, 0);
}
END_TEST

START_TEST(parses_the_answer)
{
    const char *hid, *exp, *why = NULL;

    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "{\"historyId\": \"1234\", \"expiration\": "
                                                 "\"1796667293887\"}"), &hid, &exp, &why),
                     APR_SUCCESS);
    ck_assert_str_eq(hid, "1234");
    ck_assert_str_eq(exp, "1796667293887");
    /* numbers are taken too */
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "{\"historyId\": 5, \"expiration\": 6}"),
                                    &hid, &exp, &why), APR_SUCCESS);
    ck_assert_str_eq(hid, "5");
    /* refusals, garbage, missing or bad fields */
    ck_assert_int_eq(gs_watch_parse(pool, answer(403, "{}"), &hid, &exp, &why), APR_EINVAL);
    ck_assert_str_eq(why, "watch answered 403");
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "not json"), &hid, &exp, &why), APR_EINVAL);
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "[1]"), &hid, &exp, &why), APR_EINVAL);
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "{\"historyId\": \"1\"}"), &hid, &exp, &why),
                     APR_EINVAL);
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "{\"historyId\": \"-1\", \"expiration\": "
                                                 "\"2\"}"), &hid, &exp, &why), APR_EINVAL);
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "{\"historyId\": \"1\", \"expiration\": "
                                                 "\"12345678901234567890\"}"), &hid, &exp, &why),
                     APR_EINVAL);
    ck_assert_int_eq(gs_watch_parse(pool, answer(200, "{\"historyId\": \"1\", \"expiration\": "
                                                 "true}"), &hid, &exp, &why), APR_EINVAL);
    ck_assert_ptr_null(hid);
}
END_TEST

START_TEST(backs_off)
{
    ck_assert_int_eq(gs_watch_backoff(1, 0, NULL), apr_time_from_sec(2));
    ck_assert_int_eq(gs_watch_backoff(2, 0, NULL), apr_time_from_sec(4));
    ck_assert_int_eq(gs_watch_backoff(3, 0, NULL), apr_time_from_sec(8));
    ck_assert_int_eq(gs_watch_backoff(40, 0, NULL), GS_WATCH_BACKOFF_MAX);
    ck_assert_int_eq(gs_watch_backoff(10, apr_time_from_sec(30), NULL), apr_time_from_sec(30));
    /* Retry-After when longer; nonsense ignored */
    ck_assert_int_eq(gs_watch_backoff(1, 0, "17"), apr_time_from_sec(17));
    ck_assert_int_eq(gs_watch_backoff(3, 0, "1"), apr_time_from_sec(8));
    ck_assert_int_eq(gs_watch_backoff(1, 0, "17x"), apr_time_from_sec(2));
    ck_assert_int_eq(gs_watch_backoff(1, 0, "Wed, 21 Oct 2015"), apr_time_from_sec(2));
}
END_TEST

Suite *gs_watch_suite(void)
{
    Suite *s = suite_create("gs_watch");
    TCase *tc = tcase_create("watch");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, builds_watch_and_stop);
    tcase_add_test(tc, parses_the_answer);
    tcase_add_test(tc, backs_off);
    suite_add_tcase(s, tc);
    return s;
}
