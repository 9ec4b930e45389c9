/* test_quota.c -- backoff grows, caps, jitters and honours Retry-After; the retry budget is
 * counted in time. */
#include <string.h>

#include <apr_time.h>
#include <check.h>

#include "gs_quota.h"
#include "unit.h"

#define SEC APR_USEC_PER_SEC

START_TEST(backoff_grows_caps_and_jitters)
{
    apr_interval_time_t base = SEC / 2, max = 8 * SEC, d;
    int a;

    for (a = 1; a <= 10; a++) {
        apr_interval_time_t full = base << (a - 1);
        if (full > max) {
            full = max;
        }
        d = gs_backoff_delay(a, base, max, 0, 0.0);
        ck_assert(d == full / 2);
        d = gs_backoff_delay(a, base, max, 0, 0.999);
        ck_assert(d <= full && d > full / 2);
    }
    ck_assert(gs_backoff_delay(1, base, max, 3 * SEC, 0.5) == 3 * SEC);      /* Retry-After wins */
    ck_assert(gs_backoff_delay(1, base, max, 3600 * SEC, 0.5) == GS_RETRY_AFTER_MAX);
}
END_TEST

START_TEST(retry_after_parses_seconds_and_dates)
{
    apr_time_t now = apr_time_from_sec(1700000000);

    ck_assert(gs_parse_retry_after("1", now) == SEC);
    ck_assert(gs_parse_retry_after(" 30 ", now) == 30 * SEC);
    ck_assert(gs_parse_retry_after(NULL, now) == 0);
    ck_assert(gs_parse_retry_after("soon", now) == 0);
    ck_assert(gs_parse_retry_after("5x", now) == 0);
    /* Tue, 14 Nov 2023 22:13:30 GMT is 10 s after 1700000000 */
    ck_assert(gs_parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now) == 10 * SEC);
}
END_TEST

START_TEST(retry_budget_is_counted_in_time_not_in_answers)
{
    gs_retry_policy_t pol = { 30 * SEC, 0, SEC / 2, 32 * SEC };
    apr_time_t ok = 1000 * SEC;
    apr_interval_time_t wait;
    int attempt;

    /* a hundred failed answers within the budget: always wait, never give up */
    for (attempt = 1; attempt <= 100; attempt++) {
        ck_assert_int_eq(gs_retry_decide(&pol, ok, ok + SEC / 10, attempt, 0, 0.5, &wait),
                         GS_RETRY_WAIT);
        ck_assert(wait > 0 && wait <= 30 * SEC);
    }
    /* the budget spent since the last success: give up, whatever the attempt */
    ck_assert_int_eq(gs_retry_decide(&pol, ok, ok + 30 * SEC, 1, 0, 0.5, &wait),
                     GS_RETRY_OUT_OF_TIME);
    ck_assert_int_eq(gs_retry_decide(&pol, ok, ok + 31 * SEC, 1, 0, 0.5, &wait),
                     GS_RETRY_OUT_OF_TIME);
    /* a success moves the start of the budget */
    ck_assert_int_eq(gs_retry_decide(&pol, ok + 20 * SEC, ok + 31 * SEC, 1, 0, 0.5, &wait),
                     GS_RETRY_WAIT);
}
END_TEST

START_TEST(retry_wait_honours_retry_after_and_ends_at_the_budget)
{
    gs_retry_policy_t pol = { 30 * SEC, 0, SEC / 2, 32 * SEC };
    apr_interval_time_t wait;

    /* Retry-After wins over a shorter backoff */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 1, 7 * SEC, 0.0, &wait), GS_RETRY_WAIT);
    ck_assert(wait == 7 * SEC);
    /* capped exponential backoff with equal jitter */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 3, 0, 0.0, &wait), GS_RETRY_WAIT);
    ck_assert(wait == SEC);                                   /* 0.5 s * 4, half of it fixed */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 3, 0, 0.999, &wait), GS_RETRY_WAIT);
    ck_assert(wait > 19 * SEC / 10 && wait <= 2 * SEC);
    /* near the end of the budget the backoff is shortened: the last try falls on its edge */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, 28 * SEC, 20, 0, 0.5, &wait), GS_RETRY_WAIT);
    ck_assert(wait == 2 * SEC);
    /* a Retry-After reaching past the budget: Gmail will not answer in time, give up now */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, 28 * SEC, 1, 3 * SEC, 0.5, &wait),
                     GS_RETRY_OUT_OF_TIME);
    ck_assert(wait == 0);
    /* a long Retry-After within a long budget is waited out in full */
    pol.budget = 600 * SEC;
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 1, 240 * SEC, 0.5, &wait), GS_RETRY_WAIT);
    ck_assert(wait == 240 * SEC);
    /* ... and one beyond GS_RETRY_AFTER_MAX is treated as the cap */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 1, 3600 * SEC, 0.5, &wait), GS_RETRY_WAIT);
    ck_assert(wait == GS_RETRY_AFTER_MAX);
}
END_TEST

START_TEST(retry_after_is_the_wait_exactly)
{
    gs_retry_policy_t pol = { 600 * SEC, 0, SEC / 2, 32 * SEC };
    apr_interval_time_t wait;

    /* the sixth retry would back off 8-16 s; Gmail said 1 s: 1 s it is */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 6, SEC, 0.99, &wait), GS_RETRY_WAIT);
    ck_assert(wait == SEC);
    /* Retry-After: 0 says nothing: the backoff applies */
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 6, 0, 0.0, &wait), GS_RETRY_WAIT);
    ck_assert(wait == 8 * SEC);
}
END_TEST

START_TEST(retry_attempt_cap_applies_only_when_set)
{
    gs_retry_policy_t pol = { 600 * SEC, 2, SEC / 2, 32 * SEC };
    apr_interval_time_t wait;

    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 2, 0, 0.5, &wait), GS_RETRY_WAIT);
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 3, 0, 0.5, &wait), GS_RETRY_OUT_OF_ATTEMPTS);
    pol.max_attempts = 0;
    ck_assert_int_eq(gs_retry_decide(&pol, 0, SEC, 1000, 0, 0.5, &wait), GS_RETRY_WAIT);
    ck_assert(wait <= 32 * SEC);
}
END_TEST

START_TEST(rfc3339_utc_is_parsed_strictly)
{
    apr_time_t t = 0;
    const char *end = NULL;
    /* 2026-12-06T20:15:00Z is 1796588100 */
    static const char *const bad[] = {
        "", "2026-12-06T20:15:00", "2026-12-06T20:15:00.Z", "2026-12-06T20:15:00+00:00",
        "2026-12-06 20:15:00Z", " 2026-12-06T20:15:00Z", "2026-1-06T20:15:00Z",
        "2026-12-6T20:15:00Z", "2026-12-06T20:15:0Z", "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06T23:59:60Z",
        "2026-12-06T20:60:00Z", "1969-12-31T23:59:59Z", "2026-12-06T20:15:00.1234567890Z",
        "2026-12-06t20:15:00Z", "2026-12-06T20:15:00z", "+026-12-06T20:15:00Z",
        "2026-12-06T20:15:00.12a3Z", "2026-12-0",
    };
    size_t i;

    ck_assert_int_eq(gs_parse_rfc3339_utc("2026-12-06T20:15:00.123Z", &t, &end), APR_SUCCESS);
    ck_assert(t == apr_time_from_sec(1796588100) + 123000);
    ck_assert(*end == '\0');
    ck_assert_int_eq(gs_parse_rfc3339_utc("2026-12-06T20:15:00Z and more", &t, &end), APR_SUCCESS);
    ck_assert(t == apr_time_from_sec(1796588100) && !strcmp(end, " and more"));
    ck_assert_int_eq(gs_parse_rfc3339_utc("2026-12-06T20:15:00.123456789Z", &t, NULL),
                     APR_SUCCESS);
    ck_assert(t == apr_time_from_sec(1796588100) + 123456);
    ck_assert_int_eq(gs_parse_rfc3339_utc("2028-02-29T23:59:59.5Z", &t, NULL), APR_SUCCESS);
    ck_assert(t == apr_time_from_sec(1835481599) + 500000);
    ck_assert_int_eq(gs_parse_rfc3339_utc("1970-01-01T00:00:00Z", &t, NULL), APR_SUCCESS);
    ck_assert(t == 0);
    ck_assert_int_eq(gs_parse_rfc3339_utc(NULL, &t, NULL), APR_EINVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = 42;
        ck_assert_msg(gs_parse_rfc3339_utc(bad[i], &t, NULL) == APR_EINVAL, "took %s", bad[i]);
        ck_assert(t == 42);
    }
}
END_TEST

START_TEST(lockout_end_is_read_from_gmails_message)
{
    apr_time_t at = apr_time_from_sec(1796588100) + 123000;

    /* Gmail's words, two blanks included */
    ck_assert(gs_parse_retry_after_text("User-rate limit exceeded.  Retry after "
                                        "2026-12-06T20:15:00.123Z") == at);
    ck_assert(gs_parse_retry_after_text("Retry after 2026-12-06T20:15:00.123Z (quota)") == at);
    ck_assert(gs_parse_retry_after_text("User-rate limit exceeded.") == 0);
    ck_assert(gs_parse_retry_after_text("Retry after soon") == 0);
    ck_assert(gs_parse_retry_after_text("retry after 2026-12-06T20:15:00.123Z") == 0);
    ck_assert(gs_parse_retry_after_text(NULL) == 0);
}
END_TEST

START_TEST(lockout_is_waited_out_within_the_budget_else_given_up_at_once)
{
    gs_retry_policy_t pol = { 600 * SEC, 0, SEC / 2, 32 * SEC };
    apr_time_t ok = 1000 * SEC, now = ok + 10 * SEC;
    apr_interval_time_t wait;

    /* ends in 3 s: wait until then and the margin, not the backoff */
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, now, 1, now + 3 * SEC, &wait),
                     GS_RETRY_WAIT);
    ck_assert(wait == 3 * SEC + GS_LOCKOUT_MARGIN);
    /* 9 minutes: longer than any Retry-After is honoured, but inside the budget: all of it */
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, now, 1, now + 540 * SEC, &wait),
                     GS_RETRY_WAIT);
    ck_assert(wait == 540 * SEC + GS_LOCKOUT_MARGIN);
    /* ends just inside the budget: the last wait ends with the budget */
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, now, 1, ok + 600 * SEC, &wait),
                     GS_RETRY_WAIT);
    ck_assert(wait == 590 * SEC);
    /* past the budget: give up now */
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, now, 1, ok + 601 * SEC, &wait),
                     GS_RETRY_OUT_OF_TIME);
    ck_assert(wait == 0);
    /* already over by our clock (the clocks differ): the margin */
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, now, 1, now - 5 * SEC, &wait),
                     GS_RETRY_WAIT);
    ck_assert(wait == GS_LOCKOUT_MARGIN);
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, ok + 600 * SEC, 1, ok, &wait),
                     GS_RETRY_OUT_OF_TIME);
    pol.max_attempts = 2;
    ck_assert_int_eq(gs_retry_decide_lockout(&pol, ok, now, 3, now + SEC, &wait),
                     GS_RETRY_OUT_OF_ATTEMPTS);
}
END_TEST

Suite *gs_quota_suite(void)
{
    Suite *s = suite_create("gs_quota");
    TCase *tc = tcase_create("retry");

    tcase_add_test(tc, backoff_grows_caps_and_jitters);
    tcase_add_test(tc, retry_after_parses_seconds_and_dates);
    tcase_add_test(tc, retry_budget_is_counted_in_time_not_in_answers);
    tcase_add_test(tc, retry_wait_honours_retry_after_and_ends_at_the_budget);
    tcase_add_test(tc, retry_after_is_the_wait_exactly);
    tcase_add_test(tc, retry_attempt_cap_applies_only_when_set);
    tcase_add_test(tc, rfc3339_utc_is_parsed_strictly);
    tcase_add_test(tc, lockout_end_is_read_from_gmails_message);
    tcase_add_test(tc, lockout_is_waited_out_within_the_budget_else_given_up_at_once);
    suite_add_tcase(s, tc);
    return s;
}
