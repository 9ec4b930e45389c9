/* test_batch.c -- Google's multipart batch: what we send, and every shape of answer we take. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_batch.h"
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

static const gs_batch_part_t *part_for(apr_array_header_t *parts, int index)
{
    int i;

    for (i = 0; i < parts->nelts; i++) {
        if (APR_ARRAY_IDX(parts, i, gs_batch_part_t).index == index) {
            return &APR_ARRAY_IDX(parts, i, gs_batch_part_t);
        }
    }
    return NULL;
}

START_TEST(builds_one_part_per_request)
{
    const char *paths[2] = { "/gmail/v1/users/me/messages/a1?format=metadata",
                             "/gmail/v1/users/me/messages/b2?format=metadata" };
    const char *ctype, *body, *boundary;
    apr_size_t len;

    body = gs_batch_build(pool, paths, 2, &ctype, &len);
    ck_assert_uint_eq(len, strlen(body));
    ck_assert(!strncmp(ctype, "multipart/mixed; boundary=", 26));
    boundary = apr_pstrcat(pool, "--", ctype + 26, NULL);
    ck_assert(!strncmp(body, boundary, strlen(boundary)));
    ck_assert_ptr_nonnull(strstr(body, "Content-ID: <gs-0>\r\n\r\nGET /gmail/v1/users/me/messages/a1"
                                       "?format=metadata HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strstr(body, "Content-ID: <gs-1>"));
    ck_assert_ptr_nonnull(strstr(body, apr_pstrcat(pool, boundary, "--\r\n", NULL)));
}
END_TEST

START_TEST(parses_parts_out_of_order_with_their_statuses)
{
    const char *answer =
        "--batch_XyZ\r\n"
        "Content-Type: application/http\r\n"
        "Content-ID: <response-gs-1>\r\n"
        "\r\n"
        "HTTP/1.1 404 Not Found\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        "\r\n"
        "{\"error\": {\"code\": 404}}\r\n"
        "--batch_XyZ\r\n"
        "Content-Type: application/http\r\n"
        "Content-ID: <response-gs-0>\r\n"
        "\r\n"
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        "Vary: Origin\r\n"
        "\r\n"
        "{\"id\": \"a1\"}\n"
        "\r\n"
        "--batch_XyZ\r\n"
        "Content-Type: application/http\r\n"
        "Content-ID: <response-gs-2>\r\n"
        "\r\n"
        "HTTP/1.1 429 Too Many Requests\r\n"
        "Retry-After: 1\r\n"
        "\r\n"
        "{}\r\n"
        "--batch_XyZ--\r\n";
    apr_array_header_t *parts;
    const gs_batch_part_t *p0, *p1, *p2;
    const char *err = NULL;

    ck_assert_int_eq(gs_batch_parse(pool, "multipart/mixed; boundary=batch_XyZ", answer,
                                    strlen(answer), 3, &parts, &err), APR_SUCCESS);
    ck_assert_int_eq(parts->nelts, 3);
    p0 = part_for(parts, 0);
    p1 = part_for(parts, 1);
    p2 = part_for(parts, 2);
    ck_assert(p0 && p1 && p2);
    ck_assert_int_eq(p0->status, 200);
    ck_assert_str_eq(p0->body, "{\"id\": \"a1\"}\n");
    ck_assert_int_eq(p1->status, 404);
    ck_assert_int_eq(p2->status, 429);
    ck_assert_str_eq(p2->retry_after, "1");
}
END_TEST

START_TEST(takes_bare_lf_quoted_boundaries_and_drops_strangers)
{
    const char *answer =
        "preamble\n"
        "--b\n"
        "Content-ID: <response-gs-0>\n"
        "\n"
        "HTTP/1.1 200 OK\n"
        "\n"
        "{\"id\":\"x\"}\n"
        "--b\n"
        "Content-ID: <response-other-7>\n"
        "\n"
        "HTTP/1.1 200 OK\n"
        "\n"
        "{}\n"
        "--b\n"
        "Content-ID: <response-gs-0>\n"          /* a repeat: the first answer stands */
        "\n"
        "HTTP/1.1 500 Internal\n"
        "\n"
        "{}\n"
        "--b\n"
        "Content-ID: <response-gs-9>\n"          /* not one we sent (n = 2) */
        "\n"
        "HTTP/1.1 200 OK\n"
        "\n"
        "{}\n"
        "--b--\n";
    apr_array_header_t *parts;
    const char *err = NULL;

    ck_assert_int_eq(gs_batch_parse(pool, "multipart/mixed; boundary=\"b\"", answer,
                                    strlen(answer), 2, &parts, &err), APR_SUCCESS);
    ck_assert_int_eq(parts->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).status, 200);
    ck_assert_str_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).body, "{\"id\":\"x\"}");
}
END_TEST

START_TEST(truncated_answers_lose_only_the_cut_part)
{
    const char *answer =
        "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"a\"}\r\n"
        "--b\r\nContent-ID: <response-gs-1>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":";
    apr_array_header_t *parts;
    const char *err = NULL;

    ck_assert_int_eq(gs_batch_parse(pool, "multipart/mixed; boundary=b", answer, strlen(answer), 2,
                                    &parts, &err), APR_SUCCESS);
    ck_assert_int_eq(parts->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).index, 0);
}
END_TEST

START_TEST(rejects_what_is_not_multipart)
{
    apr_array_header_t *parts;
    const char *err = NULL;

    ck_assert_int_ne(gs_batch_parse(pool, "application/json", "{}", 2, 1, &parts, &err), APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_ne(gs_batch_parse(pool, "multipart/mixed", "x", 1, 1, &parts, &err), APR_SUCCESS);
    ck_assert_int_ne(gs_batch_parse(pool, NULL, "x", 1, 1, &parts, &err), APR_SUCCESS);
    ck_assert_int_ne(gs_batch_parse(pool, "multipart/mixed; boundary=q", "<html>", 6, 1, &parts,
                                    &err), APR_SUCCESS);
}
END_TEST

Suite *gs_batch_suite(void)
{
    Suite *s = suite_create("gs_batch");
    TCase *tc = tcase_create("multipart");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, builds_one_part_per_request);
    tcase_add_test(tc, parses_parts_out_of_order_with_their_statuses);
    tcase_add_test(tc, takes_bare_lf_quoted_boundaries_and_drops_strangers);
    tcase_add_test(tc, truncated_answers_lose_only_the_cut_part);
    tcase_add_test(tc, rejects_what_is_not_multipart);
    suite_add_tcase(s, tc);
    return s;
}
