/* test_log.c -- the repeat suppressor writes a run's first line, then bounded summaries. */
#include <string.h>

#include <apr_strings.h>
#include <check.h>

#include "gs_log.h"
#include "unit.h"

static char lines[16][1024];
static int nlines;

static void capture(void *baton, const char *file, int line, gs_log_level_t level,
                    apr_status_t rv, const char *msg)
{
    (void)baton, (void)file, (void)line, (void)level, (void)rv;
    if (nlines < 16) {
        apr_cpystrn(lines[nlines], msg, sizeof lines[nlines]);
    }
    nlines++;
}

static int all_levels(void *baton, gs_log_level_t level)
{
    (void)baton, (void)level;
    return 1;
}

static void setup(void)
{
    nlines = 0;
    gs_log_set(capture, all_levels, NULL);
}

static void teardown(void)
{
    gs_log_set(NULL, NULL, NULL);
}

#define SEC(n) ((apr_time_t)(n) * APR_USEC_PER_SEC)

START_TEST(one_line_then_a_summary_per_interval)
{
    gs_log_repeat_t rep;
    int i, written = 0;

    memset(&rep, 0, sizeof rep);
    /* one failure a second for five minutes: the first line and one summary a minute */
    for (i = 0; i < 300; i++) {
        written += gs_log_repeat(&rep, GS_LOG_MARK, GS_LOG_ERR, APR_SUCCESS, SEC(1000 + i),
                                 "event=daemon.claim_failed reason=\"%s\"", "gone");
    }
    ck_assert_int_eq(written, 1);
    ck_assert_int_eq(nlines, 1 + 4);
    ck_assert_str_eq(lines[0], "event=daemon.claim_failed reason=\"gone\"");
    ck_assert_ptr_nonnull(strstr(lines[1], "event=log.repeated count=60 total=61 "
                                           "first=1970-01-01T00:16:40Z last=1970-01-01T00:17:40Z"
                                           " ended=no message=event=daemon.claim_failed"));
    /* recovery: the repeats since the last summary, once */
    gs_log_repeat_end(&rep, GS_LOG_MARK, SEC(1300));
    ck_assert_int_eq(nlines, 6);
    ck_assert_ptr_nonnull(strstr(lines[5], "count=59 total=300 "));
    ck_assert_ptr_nonnull(strstr(lines[5], "ended=yes"));
    gs_log_repeat_end(&rep, GS_LOG_MARK, SEC(1301));
    ck_assert_int_eq(nlines, 6);
}
END_TEST

START_TEST(another_message_ends_the_run_and_is_written)
{
    gs_log_repeat_t rep;

    memset(&rep, 0, sizeof rep);
    ck_assert_int_eq(gs_log_repeat(&rep, GS_LOG_MARK, GS_LOG_ERR, 0, SEC(1), "a"), 1);
    ck_assert_int_eq(gs_log_repeat(&rep, GS_LOG_MARK, GS_LOG_ERR, 0, SEC(2), "a"), 0);
    ck_assert_int_eq(gs_log_repeat(&rep, GS_LOG_MARK, GS_LOG_ERR, 0, SEC(3), "b"), 1);
    ck_assert_int_eq(nlines, 3);
    ck_assert_ptr_nonnull(strstr(lines[1], "count=1 total=2 "));
    ck_assert_ptr_nonnull(strstr(lines[1], "message=a"));
    ck_assert_str_eq(lines[2], "b");
    /* a run without repeats ends silently; the same message later is a new run */
    gs_log_repeat_end(&rep, GS_LOG_MARK, SEC(4));
    ck_assert_int_eq(nlines, 3);
    ck_assert_int_eq(gs_log_repeat(&rep, GS_LOG_MARK, GS_LOG_ERR, 0, SEC(5), "b"), 1);
    ck_assert_int_eq(nlines, 4);
}
END_TEST

/* issue 21 item 9: a remote-user name with a space is still one key=value field */
START_TEST(field_values_stay_one_field)
{
    apr_pool_t *p;

    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    ck_assert_str_eq(gs_log_value(p, "user-1"), "user-1");
    ck_assert_str_eq(gs_log_value(p, "J\xc3\xbcrgen"), "J\xc3\xbcrgen");
    ck_assert_str_eq(gs_log_value(p, "Jane Doe"), "\"Jane Doe\"");
    ck_assert_str_eq(gs_log_value(p, "a=b"), "\"a=b\"");
    ck_assert_str_eq(gs_log_value(p, "q\"u\\o"), "\"q\\\"u\\\\o\"");
    ck_assert_str_eq(gs_log_value(p, "x\ny\x7f"), "\"x\\x0ay\\x7f\"");
    ck_assert_str_eq(gs_log_value(p, ""), "\"\"");
    ck_assert_str_eq(gs_log_value(p, NULL), "-");
    apr_pool_destroy(p);
}
END_TEST

Suite *gs_log_suite(void)
{
    Suite *s = suite_create("gs_log");
    TCase *tc = tcase_create("repeat");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, one_line_then_a_summary_per_interval);
    tcase_add_test(tc, another_message_ends_the_run_and_is_written);
    tcase_add_test(tc, field_values_stay_one_field);
    suite_add_tcase(s, tc);
    return s;
}
