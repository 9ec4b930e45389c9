/* test_handoff.c -- the daemon's hand-off message: what httpd writes, the daemon reads back;
 * anything else from the socket is refused. */
#include <string.h>

#include <check.h>

#include "gs_handoff.h"
#include "unit.h"

#define TASK "6f1c0d2e-0000-4000-8000-000000000001"

START_TEST(messages_round_trip)
{
    char buf[GS_HANDOFF_MAX];
    gs_handoff_t m;
    int n = gs_handoff_format(buf, sizeof buf, TASK, "user-1");

    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "gs1 start task=" TASK " user=user-1\n");
    ck_assert_int_eq(gs_handoff_parse(buf, (apr_size_t)n, &m), APR_SUCCESS);
    ck_assert_str_eq(m.task, TASK);
    ck_assert_str_eq(m.user, "user-1");
    /* fields in any order, unknown ones ignored */
    ck_assert_int_eq(gs_handoff_parse("gs1 start user=u future=1 task=t\n", 33, &m), APR_SUCCESS);
    ck_assert_str_eq(m.task, "t");
    ck_assert_str_eq(m.user, "u");
}
END_TEST

START_TEST(malformed_messages_are_refused)
{
    static const char *const bad[] = {
        "gs1 start task=t user=u",          /* no newline */
        "gs2 start task=t user=u\n",
        "gs1 start\n",
        "gs1 start task=t\n",
        "gs1 start user=u\n",
        "gs1 start task= user=u\n",
        "gs1 startx task=t user=u\n",
        "gs1 start task=t\tx user=u\n",
        "gs1 start task=0123456789012345678901234567890123456789 user=u\n",
    };
    gs_handoff_t m;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(gs_handoff_parse(bad[i], strlen(bad[i]), &m) == APR_EINVAL, "%s", bad[i]);
    }
    /* a NUL inside the bytes read */
    ck_assert_int_eq(gs_handoff_parse("gs1 start task=t\0x user=u\n", 26, &m), APR_EINVAL);
}
END_TEST

START_TEST(what_does_not_fit_is_not_written)
{
    char buf[64];

    ck_assert_int_eq(gs_handoff_format(buf, sizeof buf, TASK, "a-user-id-that-is-far-too-long"),
                     -1);
}
END_TEST

START_TEST(a_user_with_spaces_is_encoded)
{
    char buf[GS_HANDOFF_MAX];
    gs_handoff_t m;
    int n = gs_handoff_format(buf, sizeof buf, TASK, "Jane Doe 100%");

    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "gs1 start task=" TASK " user=Jane%20Doe%20100%25\n");
    ck_assert_int_eq(gs_handoff_parse(buf, (apr_size_t)n, &m), APR_SUCCESS);
    ck_assert_str_eq(m.user, "Jane Doe 100%");
    /* a bad escape or a control character is refused */
    {
        static const char bad_escape[] = "gs1 start task=" TASK " user=a%2\n";
        static const char control[] = "gs1 start task=" TASK " user=a%0A\n";

        ck_assert_int_ne(gs_handoff_parse(bad_escape, sizeof bad_escape - 1, &m), APR_SUCCESS);
        ck_assert_int_ne(gs_handoff_parse(control, sizeof control - 1, &m), APR_SUCCESS);
    }
}
END_TEST

Suite *gs_handoff_suite(void)
{
    Suite *s = suite_create("gs_handoff");
    TCase *tc = tcase_create("wire");

    tcase_add_test(tc, messages_round_trip);
    tcase_add_test(tc, malformed_messages_are_refused);
    tcase_add_test(tc, what_does_not_fit_is_not_written);
    tcase_add_test(tc, a_user_with_spaces_is_encoded);
    suite_add_tcase(s, tc);
    return s;
}
