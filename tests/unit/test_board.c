/* test_board.c -- the gs1 stdout protocol reads back what the worker writes. */
#include <string.h>

#include <apr_pools.h>
#include <check.h>

#include "gs_board.h"
#include "gs_task.h"
#include "unit.h"

START_TEST(progress_lines_round_trip)
{
    char buf[GS_BOARD_LINE_MAX];
    gs_board_line_t l;
    int n = gs_board_progress(buf, "6f1c0d2e-0000-4000-8000-000000000001", "full", 1234, 5000, 2468);

    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert(!strncmp(buf, "gs1 progress task=6f1c0d2e-0000-4000-8000-000000000001 mode=full "
                            "processed=1234 total=5000 pct=24.68\n", (size_t)n));
    buf[n] = '\0';
    ck_assert_int_eq(gs_board_parse(buf, &l), APR_SUCCESS);
    ck_assert_str_eq(l.event, "progress");
    ck_assert_str_eq(l.mode, "full");
    ck_assert_int_eq((int)l.processed, 1234);
    ck_assert_int_eq((int)l.total, 5000);
    ck_assert_int_eq(l.pct, 2468);
}
END_TEST

START_TEST(retrying_lines_round_trip)
{
    char buf[GS_BOARD_LINE_MAX];
    gs_board_line_t l;
    int n = gs_board_retrying(buf, "t-1", "rate_limited", 1500, 7);

    ck_assert_int_eq(buf[n - 1], '\n');
    buf[n] = '\0';
    ck_assert_str_eq(buf, "gs1 retrying task=t-1 reason=rate_limited wait_ms=1500 attempt=7\n");
    ck_assert_int_eq(gs_board_parse(buf, &l), APR_SUCCESS);
    ck_assert_str_eq(l.event, "retrying");
    ck_assert_str_eq(l.reason, "rate_limited");
    ck_assert_int_eq((int)l.wait_ms, 1500);
    ck_assert_int_eq((int)l.attempt, 7);
    n = gs_board_retrying(buf, "t-1", NULL, 0, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "gs1 retrying task=t-1 reason=none\n");
    ck_assert_int_eq(gs_board_parse(buf, &l), APR_SUCCESS);
    ck_assert_str_eq(l.reason, "none");
}
END_TEST

START_TEST(state_lines_round_trip_and_unknown_keys_pass)
{
    char buf[GS_BOARD_LINE_MAX];
    gs_board_line_t l;
    int n = gs_board_state(buf, "t-1", "FAILED", "code=quota_exhausted");

    buf[n] = '\0';
    ck_assert_int_eq(gs_board_parse(buf, &l), APR_SUCCESS);
    ck_assert_str_eq(l.state, "FAILED");
    ck_assert_str_eq(l.code, "quota_exhausted");
    ck_assert_int_eq(gs_board_parse("gs1 state task=t-2 state=RUNNING pid=42 future=yes", &l),
                     APR_SUCCESS);
    ck_assert_int_eq((int)l.pid, 42);
    ck_assert_int_ne(gs_board_parse("gs2 state task=t", &l), APR_SUCCESS);
    ck_assert_int_ne(gs_board_parse("gs1 wobble task=t", &l), APR_SUCCESS);
    ck_assert_int_ne(gs_board_parse("gs1 state state=RUNNING", &l), APR_SUCCESS);
}
END_TEST

START_TEST(calls_lines_round_trip_by_class)
{
    static const int statuses[] = { 200, 204, 400, 401, 404, 429, 429, 500, 503, 0 };
    apr_int64_t calls[GS_BOARD_CALL_CLASSES] = { 0 };
    char line[GS_BOARD_LINE_MAX];
    gs_board_line_t parsed;
    size_t i;

    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        calls[gs_board_call_class(statuses[i])]++;
    }
    ck_assert(calls[0] == 2 && calls[1] == 3 && calls[2] == 2 && calls[3] == 2 && calls[4] == 1);
    gs_board_calls(line, "11111111-1111-4111-8111-111111111111", calls);
    ck_assert_str_eq(line, "gs1 calls task=11111111-1111-4111-8111-111111111111 "
                           "2xx=2 4xx=3 429=2 5xx=2 error=1\n");
    ck_assert(gs_board_parse(line, &parsed) == APR_SUCCESS);
    ck_assert_str_eq(parsed.event, "calls");
    for (i = 0; i < GS_BOARD_CALL_CLASSES; i++) {
        ck_assert_int_eq(parsed.calls[i], calls[i]);
    }
}
END_TEST

/* found by the sanitizer stage: the lines were not NUL-terminated (the calls test compared past
 * the '\n' into uninitialized stack), and a line cut at the limit had no room for one */
START_TEST(lines_are_strings_even_when_cut_at_the_limit)
{
    char buf[GS_BOARD_LINE_MAX], extra[400];
    int n;

    memset(buf, 'x', sizeof buf);
    n = gs_board_state(buf, "t-1", "FAILED", "code=x");
    ck_assert_int_eq((int)strlen(buf), n);
    ck_assert_str_eq(buf, "gs1 state task=t-1 state=FAILED code=x\n");
    memset(extra, 'y', sizeof extra - 1);
    extra[sizeof extra - 1] = '\0';
    memset(buf, 'x', sizeof buf);
    n = gs_board_state(buf, "t-1", "FAILED", extra);
    ck_assert_int_eq(n, GS_BOARD_LINE_MAX - 1);
    ck_assert_int_eq((int)strlen(buf), n);
    ck_assert_int_eq(buf[n - 1], '\n');
}
END_TEST

START_TEST(percentage_stays_below_100_until_done)
{
    ck_assert_int_eq(gs_task_pct(0, 0), 0);
    ck_assert_int_eq(gs_task_pct(5, 0), 0);
    ck_assert_int_eq(gs_task_pct(1, 3), 3333);
    ck_assert_int_eq(gs_task_pct(999, 1000), 9900);
    ck_assert_int_eq(gs_task_pct(1000, 1000), 9900);
    ck_assert_int_eq(gs_task_pct(2000, 1000), 9900);
}
END_TEST

Suite *gs_board_suite(void)
{
    Suite *s = suite_create("gs_board");
    TCase *tc = tcase_create("protocol");

    tcase_add_test(tc, progress_lines_round_trip);
    tcase_add_test(tc, retrying_lines_round_trip);
    tcase_add_test(tc, state_lines_round_trip_and_unknown_keys_pass);
    tcase_add_test(tc, percentage_stays_below_100_until_done);
    tcase_add_test(tc, calls_lines_round_trip_by_class);
    tcase_add_test(tc, lines_are_strings_even_when_cut_at_the_limit);
    suite_add_tcase(s, tc);
    return s;
}
