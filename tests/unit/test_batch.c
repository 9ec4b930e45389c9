/* test_batch.c -- Google's multipart batch: what we send, and every shape of answer we take. */
#include <string.h>

#include <apr_file_io.h>
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

/* ------------------------------------------------------------------ a part at a time */

/* An answer in memory handed out at most max_read bytes per call (short reads, as a pipe or a
 * file may give them), failing for every read from fail_at on. */
typedef struct {
    const char *data;
    apr_size_t len, max_read;
    apr_off_t fail_at;       /* -1: never */
} mem_src_t;

static apr_status_t mem_read(void *baton, apr_off_t off, char *buf, apr_size_t *len)
{
    mem_src_t *m = baton;
    apr_size_t n;

    if (m->fail_at >= 0 && off >= m->fail_at) {
        return APR_EGENERAL;
    }
    if (off >= (apr_off_t)m->len) {
        *len = 0;
        return APR_SUCCESS;
    }
    n = m->len - (apr_size_t)off;
    if (n > *len) {
        n = *len;
    }
    if (n > m->max_read) {
        n = m->max_read;
    }
    memcpy(buf, m->data + off, n);
    *len = n;
    return APR_SUCCESS;
}

/* Every part the reader yields, as gs_batch_parse's array, each from a part pool cleared after
 * the next one is read (a copy is kept in pool). Returns the reader's final status. */
static apr_status_t read_all(const char *ctype, const char *answer, apr_size_t len, int n,
                             apr_size_t chunk, apr_size_t max_read, apr_array_header_t **parts)
{
    mem_src_t m = { answer, len, max_read, -1 };
    gs_batch_reader_t *r;
    apr_pool_t *pp;
    gs_batch_part_t part;
    const char *err = NULL;
    apr_status_t rv;

    *parts = apr_array_make(pool, 4, sizeof(gs_batch_part_t));
    rv = gs_batch_reader_make(&r, pool, ctype, n, mem_read, &m, chunk, &err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    ck_assert_int_eq(apr_pool_create(&pp, pool), APR_SUCCESS);
    while ((rv = gs_batch_reader_next(r, pp, &part, &err)) == APR_SUCCESS) {
        ck_assert_uint_eq(strlen(part.body) <= part.body_len, 1);
        ck_assert_int_eq(part.body[part.body_len], '\0');
        part.body = apr_pstrmemdup(pool, part.body, part.body_len);
        part.retry_after = part.retry_after ? apr_pstrdup(pool, part.retry_after) : NULL;
        APR_ARRAY_PUSH(*parts, gs_batch_part_t) = part;
        apr_pool_clear(pp);
    }
    if (rv == APR_EINVAL) {
        ck_assert_ptr_nonnull(err);
    }
    return rv;
}

/* The reader gives what gs_batch_parse gives, in the same order, for every chunk size and
 * every read size: delimiters, line ends and headers split across reads included. */
static void assert_reader_agrees(const char *ctype, const char *answer, int n)
{
    static const apr_size_t chunks[] = { 1, 2, 3, 5, 8, 13, 64, 0 };
    static const apr_size_t reads[] = { 1, 2, 7, (apr_size_t)-1 };
    apr_array_header_t *want = NULL, *got;
    const char *err = NULL;
    apr_status_t prv = gs_batch_parse(pool, ctype, answer, strlen(answer), n, &want, &err);
    size_t c, k;
    int i;

    for (c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        for (k = 0; k < sizeof reads / sizeof *reads; k++) {
            apr_status_t rv = read_all(ctype, answer, strlen(answer), n, chunks[c], reads[k], &got);

            if (prv != APR_SUCCESS) {
                ck_assert_int_eq(rv, prv);
                continue;
            }
            ck_assert_int_eq(rv, APR_EOF);
            ck_assert_int_eq(got->nelts, want->nelts);
            for (i = 0; i < want->nelts; i++) {
                const gs_batch_part_t *a = &APR_ARRAY_IDX(want, i, gs_batch_part_t);
                const gs_batch_part_t *b = &APR_ARRAY_IDX(got, i, gs_batch_part_t);

                ck_assert_int_eq(a->index, b->index);
                ck_assert_int_eq(a->status, b->status);
                ck_assert_uint_eq(a->body_len, b->body_len);
                ck_assert(!memcmp(a->body, b->body, a->body_len));
                ck_assert_str_eq(a->retry_after ? a->retry_after : "(none)",
                                 b->retry_after ? b->retry_after : "(none)");
            }
        }
    }
}

START_TEST(reader_takes_parts_out_of_order_crlf_and_lf_in_any_chunks)
{
    const char *crlf =
        "--batch_XyZ\r\nContent-Type: application/http\r\nContent-ID: <response-gs-2>\r\n\r\n"
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\r\n{}\r\n"
        "--batch_XyZ\r\nContent-Type: application/http\r\nContent-ID: <response-gs-0>\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        "{\"id\": \"a1\"}\n\r\n"
        "--batch_XyZ\r\nContent-ID: <response-gs-1>\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n"
        "{\"error\": {\"code\": 404}}\r\n"
        "--batch_XyZ--\r\n";
    const char *lf =
        "preamble\n--b\nContent-ID: <response-gs-1>\n\nHTTP/1.1 200 OK\n\n{\"id\":\"x\"}\n"
        "--b\nContent-ID: <response-other-7>\n\nHTTP/1.1 200 OK\n\n{}\n"
        "--b\nContent-ID: <response-gs-1>\n\nHTTP/1.1 500 Internal\n\n{}\n"
        "--b\nContent-ID: <response-gs-9>\n\nHTTP/1.1 200 OK\n\n{}\n"
        "--b\nContent-ID: <response-gs-0>\n\nHTTP/1.1 200 OK\n\n\n"
        "--b--\n";
    apr_array_header_t *parts;

    assert_reader_agrees("multipart/mixed; boundary=batch_XyZ", crlf, 3);
    assert_reader_agrees("multipart/mixed; boundary=\"b\"", lf, 2);
    ck_assert_int_eq(read_all("multipart/mixed; boundary=batch_XyZ", crlf, strlen(crlf), 3, 4, 3,
                              &parts), APR_EOF);
    ck_assert_int_eq(parts->nelts, 3);
    /* in the answer's order, each with its own status, Retry-After and body */
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).index, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).status, 429);
    ck_assert_str_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).retry_after, "7");
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 1, gs_batch_part_t).index, 0);
    ck_assert_str_eq(APR_ARRAY_IDX(parts, 1, gs_batch_part_t).body, "{\"id\": \"a1\"}\n");
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 2, gs_batch_part_t).status, 404);
    ck_assert_int_eq(read_all("multipart/mixed; boundary=\"b\"", lf, strlen(lf), 2, 1, 1, &parts),
                     APR_EOF);
    ck_assert_int_eq(parts->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).body, "{\"id\":\"x\"}");
    ck_assert_str_eq(APR_ARRAY_IDX(parts, 1, gs_batch_part_t).body, "");
}
END_TEST

START_TEST(reader_drops_the_truncated_part_only)
{
    const char *ctype = "multipart/mixed; boundary=b";
    const char *cuts[] = {
        "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"a\"}\r\n"
        "--b\r\nContent-ID: <response-gs-1>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":",
        "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"a\"}\r\n--b",
        "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"a\"}\r\n--b\r",
        "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"a\"}\r\n-",
        "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200",
        "--b", "--b-", "--b--", "x\n--b\n", "",
    };
    apr_array_header_t *parts;
    size_t i;

    for (i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        assert_reader_agrees(ctype, cuts[i], 2);
    }
    ck_assert_int_eq(read_all(ctype, cuts[0], strlen(cuts[0]), 2, 3, 2, &parts), APR_EOF);
    ck_assert_int_eq(parts->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).index, 0);
    ck_assert_int_eq(read_all(ctype, cuts[3], strlen(cuts[3]), 2, 0, 100, &parts), APR_EOF);
    ck_assert_int_eq(parts->nelts, 0);
}
END_TEST

START_TEST(reader_takes_a_part_much_larger_than_its_chunk)
{
    apr_size_t big = 300 * 1000, i;
    char *body = apr_palloc(pool, big + 1);
    const char *answer;
    apr_array_header_t *parts;

    for (i = 0; i < big; i++) {
        /* no line breaks, and runs that look like the start of a delimiter */
        body[i] = "-b-\r-x"[i % 6];
    }
    body[big] = '\0';
    answer = apr_pstrcat(pool, "--b\r\nContent-ID: <response-gs-1>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
                         body, "\r\n--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
                         "{}\r\n--b--\r\n", NULL);
    ck_assert_int_eq(read_all("multipart/mixed; boundary=b", answer, strlen(answer), 2, 4096,
                              (apr_size_t)-1, &parts), APR_EOF);
    ck_assert_int_eq(parts->nelts, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).index, 1);
    ck_assert_uint_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).body_len, big);
    ck_assert(!memcmp(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).body, body, big));
    ck_assert_str_eq(APR_ARRAY_IDX(parts, 1, gs_batch_part_t).body, "{}");
    ck_assert_int_eq(read_all("multipart/mixed; boundary=b", answer, strlen(answer), 2, 7, 5000,
                              &parts), APR_EOF);
    ck_assert_uint_eq(APR_ARRAY_IDX(parts, 0, gs_batch_part_t).body_len, big);
}
END_TEST

START_TEST(reader_refuses_what_is_not_multipart_and_reports_read_errors)
{
    const char *answer = "--b\r\nContent-ID: <response-gs-0>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{}\r\n"
                         "--b\r\nContent-ID: <response-gs-1>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{}\r\n"
                         "--b--\r\n";
    mem_src_t m = { answer, strlen(answer), 1000, 60 };
    gs_batch_reader_t *r;
    gs_batch_part_t part;
    apr_array_header_t *parts;
    const char *err = NULL;

    ck_assert_int_eq(gs_batch_reader_make(&r, pool, "application/json", 1, mem_read, &m, 0, &err),
                     APR_EINVAL);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(read_all("multipart/mixed; boundary=q", "<html>", 6, 1, 0, 100, &parts),
                     APR_EINVAL);
    /* the source fails halfway: the parts before are given, then its status */
    ck_assert_int_eq(gs_batch_reader_make(&r, pool, "multipart/mixed; boundary=b", 2, mem_read, &m,
                                          8, &err), APR_SUCCESS);
    ck_assert_int_eq(gs_batch_reader_next(r, pool, &part, &err), APR_SUCCESS);
    ck_assert_int_eq(part.index, 0);
    err = NULL;
    ck_assert_int_eq(gs_batch_reader_next(r, pool, &part, &err), APR_EGENERAL);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(gs_batch_reader_next(r, pool, &part, &err), APR_EOF);
}
END_TEST

START_TEST(reader_reads_a_spooled_file)
{
    const char *answer = "--b\nContent-ID: <response-gs-1>\n\nHTTP/1.1 200 OK\n\none\n"
                         "--b\nContent-ID: <response-gs-0>\n\nHTTP/1.1 503 Unavailable\n\ntwo\n"
                         "--b--\n";
    char path[] = "/tmp/gs-test-batch.XXXXXX";
    apr_file_t *f;
    apr_size_t written;
    gs_batch_reader_t *r;
    gs_batch_part_t part;
    const char *err = NULL;

    ck_assert_int_eq(apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE
                                     | APR_FOPEN_EXCL, pool), APR_SUCCESS);
    ck_assert_int_eq(apr_file_remove(path, pool), APR_SUCCESS);
    ck_assert_int_eq(apr_file_write_full(f, answer, strlen(answer), &written), APR_SUCCESS);
    ck_assert_int_eq(gs_batch_reader_file(&r, pool, "multipart/mixed; boundary=b", 2, f, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(gs_batch_reader_next(r, pool, &part, &err), APR_SUCCESS);
    ck_assert_int_eq(part.index, 1);
    ck_assert_str_eq(part.body, "one");
    ck_assert_int_eq(gs_batch_reader_next(r, pool, &part, &err), APR_SUCCESS);
    ck_assert_int_eq(part.status, 503);
    ck_assert_str_eq(part.body, "two");
    ck_assert_int_eq(gs_batch_reader_next(r, pool, &part, &err), APR_EOF);
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
    tcase_add_test(tc, reader_takes_parts_out_of_order_crlf_and_lf_in_any_chunks);
    tcase_add_test(tc, reader_drops_the_truncated_part_only);
    tcase_add_test(tc, reader_takes_a_part_much_larger_than_its_chunk);
    tcase_add_test(tc, reader_refuses_what_is_not_multipart_and_reports_read_errors);
    tcase_add_test(tc, reader_reads_a_spooled_file);
    suite_add_tcase(s, tc);
    return s;
}
