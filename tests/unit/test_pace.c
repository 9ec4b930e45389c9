/* test_pace.c -- the rate controller and the parts-in-flight controller on a simulated clock:
 * a window of quota at the start, never more than the rate in any one-second window whatever
 * its phase, the full rate in the long run; a rate limit lowers the rate to what Gmail
 * admitted, holds for Retry-After exactly, and the rate climbs back; "too many concurrent
 * requests" shrinks the parts in flight, which grow back slowly and not past a recent failure. */
#include <apr_time.h>
#include <check.h>

#include "gs_pace.h"
#include "unit.h"

#define SEC APR_USEC_PER_SEC
#define MS 1000

START_TEST(pace_spends_one_window_then_waits_for_it_to_pass)
{
    gs_pace_t pc;
    apr_time_t t0 = 1000 * SEC;

    gs_pace_init(&pc, 250, t0);
    ck_assert(gs_pace_room(&pc, t0) == 250.0);
    ck_assert_int_eq(gs_pace_take(&pc, 6, t0), 0);            /* getProfile + messages.list */
    ck_assert_int_eq(gs_pace_take(&pc, 240, t0 + 10 * MS), 0); /* a round of 48 parts */
    ck_assert(gs_pace_take(&pc, 250, t0 + 60 * MS) == GS_PACE_WINDOW + GS_PACE_MARGIN + 10 * MS - 60 * MS);
    ck_assert(gs_pace_room(&pc, t0 + 60 * MS) == 4.0);
    /* the profile and list calls left the window: their 6 units, not more */
    ck_assert(gs_pace_room(&pc, t0 + GS_PACE_WINDOW + GS_PACE_MARGIN) == 10.0);
    ck_assert_int_eq(gs_pace_take(&pc, 250, t0 + GS_PACE_WINDOW + GS_PACE_MARGIN + 10 * MS), 0);
}
END_TEST

START_TEST(pace_never_overfills_a_fixed_window_and_keeps_the_rate)
{
    static double spent[200 * 1000];   /* units per simulated millisecond */
    gs_pace_t pc;
    apr_time_t t = 0, end = 100 * SEC;
    double total = 0.0;
    int phase, ms;

    gs_pace_init(&pc, 250, 0);
    /* a greedy client: rounds of 25 parts (125 units) whenever the pace allows, each taking
     * 50 ms before the next can be asked */
    while (t < end) {
        apr_interval_time_t w = gs_pace_take(&pc, 125, t);
        if (w > 0) {
            t += w;
            continue;
        }
        spent[t / MS] += 125;
        total += 125;
        t += 50 * MS;
    }
    /* Gmail's windows have some phase we do not know: none of them sees more than 250 */
    for (phase = 0; phase < 1000; phase += 7) {
        for (ms = phase; ms + 1000 <= 100 * 1000; ms += 1000) {
            double in = 0.0;
            int i;
            for (i = ms; i < ms + 1000; i++) {
                in += spent[i];
            }
            ck_assert_msg(in <= 250.0, "%.0f units in the window at %d ms", in, ms);
        }
    }
    /* and the rate is the quota's, less the margin: at least 0.98 of 250/s */
    ck_assert_msg(total >= 0.98 * 250 * 100, "%.0f units in 100 s", total);
}
END_TEST

START_TEST(pace_large_calls_pass_alone_and_unlimited_is_free)
{
    gs_pace_t pc;

    gs_pace_init(&pc, 10, 0);
    ck_assert_int_eq(gs_pace_take(&pc, 50, 0), 0);             /* larger than the rate: alone */
    ck_assert(gs_pace_take(&pc, 1, MS) > 0);
    ck_assert_int_eq(gs_pace_take(&pc, 1, GS_PACE_WINDOW + GS_PACE_MARGIN), 0);
    gs_pace_init(&pc, 0, 0);
    ck_assert_int_eq(gs_pace_take(&pc, 1e6, 0), 0);
    ck_assert(gs_pace_room(&pc, 0) > 1e9);
    gs_pace_limited(&pc, 5, SEC, 0);                             /* nothing to lower */
    ck_assert_int_eq(gs_pace_take(&pc, 5, 1), 0);
}
END_TEST

START_TEST(pace_rate_limit_lowers_to_what_gmail_admitted_and_holds_for_retry_after)
{
    gs_pace_t pc;
    apr_time_t t0 = 50 * SEC;

    gs_pace_init(&pc, 250, t0);
    ck_assert_int_eq(gs_pace_take(&pc, 250, t0), 0);
    /* Gmail allows 200: 10 of the 50 parts came back 429, Retry-After: 1 */
    gs_pace_limited(&pc, 50, SEC, t0 + 50 * MS);
    ck_assert(pc.rate == 200.0);
    /* nothing goes out before Retry-After has passed: exactly that long, not a backoff */
    ck_assert(gs_pace_hold(&pc, t0 + 500 * MS) == 550 * MS);
    ck_assert(gs_pace_take(&pc, 5, t0 + 500 * MS) == 550 * MS);
    ck_assert(gs_pace_room(&pc, t0 + 500 * MS) == 0.0);
    ck_assert(gs_pace_room(&pc, t0 + SEC + 50 * MS) == 200.0);
    ck_assert_int_eq(gs_pace_take(&pc, 200, t0 + SEC + 50 * MS), 0);
    /* a limit when Gmail admitted nearly all still lowers the rate by GS_PACE_DECREASE */
    gs_pace_limited(&pc, 1, 0, t0 + SEC + 100 * MS);
    ck_assert(pc.rate == 200.0 * GS_PACE_DECREASE);
    ck_assert(gs_pace_hold(&pc, t0 + SEC + 100 * MS) == 0);    /* no Retry-After: no hold */
}
END_TEST

START_TEST(pace_recovers_gradually_to_the_admitted_level_then_probes_beyond)
{
    gs_pace_t pc;

    gs_pace_init(&pc, 250, 0);
    ck_assert_int_eq(gs_pace_take(&pc, 250, 0), 0);
    gs_pace_limited(&pc, 100, SEC, 10 * MS);                   /* admitted 150 */
    ck_assert(pc.rate == 150.0 && pc.admitted == 150.0);
    /* calm for GS_PACE_CALM, then held at what Gmail admitted until GS_PACE_PROBE_AFTER */
    (void)gs_pace_room(&pc, 10 * MS + GS_PACE_CALM + SEC);
    ck_assert(pc.rate == 150.0);
    (void)gs_pace_room(&pc, 10 * MS + GS_PACE_PROBE_AFTER - SEC);
    ck_assert(pc.rate == 150.0);
    /* then GS_PACE_STEP of 250 per second, up to the configured rate and not beyond */
    (void)gs_pace_room(&pc, 10 * MS + GS_PACE_PROBE_AFTER + SEC);
    ck_assert(pc.rate > 150.0 && pc.rate <= 155.0);
    (void)gs_pace_room(&pc, 10 * MS + GS_PACE_PROBE_AFTER + 100 * SEC);
    ck_assert(pc.rate == 250.0);

    /* a limit when Gmail admitted nearly all: the rate goes GS_PACE_DECREASE lower, and climbs
     * back to the admitted level five times faster, right after the calm */
    gs_pace_init(&pc, 250, 0);
    ck_assert_int_eq(gs_pace_take(&pc, 250, 0), 0);
    gs_pace_limited(&pc, 1, 0, 10 * MS);
    ck_assert(pc.rate == 250.0 * GS_PACE_DECREASE && pc.admitted == 249.0);
    (void)gs_pace_room(&pc, 10 * MS + GS_PACE_CALM - MS);
    ck_assert(pc.rate == 250.0 * GS_PACE_DECREASE);
    (void)gs_pace_room(&pc, 10 * MS + GS_PACE_CALM + SEC);
    ck_assert(pc.rate == 249.0);
}
END_TEST

START_TEST(pace_refund_frees_what_gmail_did_not_charge)
{
    gs_pace_t pc;

    gs_pace_init(&pc, 250, 0);
    ck_assert_int_eq(gs_pace_take(&pc, 250, 0), 0);
    gs_pace_refund(&pc, 125, 60 * MS);
    ck_assert(gs_pace_room(&pc, 60 * MS) == 125.0);
    ck_assert_int_eq(gs_pace_take(&pc, 125, 60 * MS), 0);
    ck_assert(gs_pace_take(&pc, 5, 70 * MS) > 0);
}
END_TEST

START_TEST(pace_never_drops_below_its_floor)
{
    gs_pace_t pc;
    int i;

    gs_pace_init(&pc, 250, 0);
    for (i = 0; i < 100; i++) {
        gs_pace_limited(&pc, 1000, 0, i * MS);
    }
    ck_assert(pc.rate == 250 * GS_PACE_FLOOR);
    ck_assert_int_eq(gs_pace_take(&pc, 25, 200 * MS), 0);
}
END_TEST

START_TEST(flight_shrinks_to_what_gmail_answered_and_grows_back_slowly)
{
    gs_flight_t fl;
    apr_time_t t = 0;
    int i;

    gs_flight_init(&fl, 100, 0);
    ck_assert_int_eq(fl.level, GS_FLIGHT_START);
    /* rounds that waited for the quota prove nothing; a clean full one doubles the level */
    ck_assert_int_eq(gs_flight_round(&fl, 25, 0, 1, t), 25);
    ck_assert_int_eq(gs_flight_round(&fl, 25, 0, 0, t), 50);
    /* 50 parts at once, 25 refused as too many concurrent requests */
    ck_assert_int_eq(gs_flight_round(&fl, 50, 25, 0, t), 25);
    ck_assert(fl.changed);
    /* Gmail answered 25 of 50: 26 is known to fail, and is not tried within
     * GS_FLIGHT_CEILING_TTL however many clean rounds */
    for (i = 0; i < 10 * GS_FLIGHT_GROW_ROUNDS; i++) {
        ck_assert_int_eq(gs_flight_round(&fl, 25, 0, 0, t += 100 * MS), 25);
    }
    t += GS_FLIGHT_CEILING_TTL;
    for (i = 1; i < GS_FLIGHT_GROW_ROUNDS; i++) {
        ck_assert_int_eq(gs_flight_round(&fl, 25, 0, 0, t += 100 * MS), 25);
    }
    /* then GS_FLIGHT_GROW_ROUNDS clean rounds at the level: one more part */
    ck_assert_int_eq(gs_flight_round(&fl, 25, 0, 0, t += 100 * MS), 26);
    /* smaller rounds (the end of the queue, the quota) prove nothing */
    for (i = 0; i < 3 * GS_FLIGHT_GROW_ROUNDS; i++) {
        ck_assert_int_eq(gs_flight_round(&fl, 10, 0, 0, t += 100 * MS), 26);
    }
    /* 26 fails with none answered: a quarter off, and 26 is the ceiling again */
    ck_assert_int_eq(gs_flight_round(&fl, 26, 26, 0, t += 100 * MS), 19);
    ck_assert_int_eq(fl.ceiling, 26);
}
END_TEST

START_TEST(flight_starts_at_the_remembered_level_and_never_below_one)
{
    gs_flight_t fl;
    int i;

    gs_flight_init(&fl, 100, 20);
    ck_assert_int_eq(fl.level, 20);
    ck_assert(!fl.changed);
    /* a remembered level grows one part at a time, not by doubling */
    for (i = 0; i < GS_FLIGHT_GROW_ROUNDS; i++) {
        (void)gs_flight_round(&fl, 20, 0, 0, i);
    }
    ck_assert_int_eq(fl.level, 21);
    gs_flight_init(&fl, 10, 0);                                /* the start, at most the max */
    ck_assert_int_eq(fl.level, 10);
    gs_flight_init(&fl, 100, 500);                             /* more than configured: the max */
    ck_assert_int_eq(fl.level, 100);
    ck_assert_int_eq(gs_flight_round(&fl, 100, 100, 0, 0), 75);   /* none answered: a quarter off */
    ck_assert_int_eq(gs_flight_round(&fl, 75, 74, 0, 1), 1);
    ck_assert_int_eq(gs_flight_round(&fl, 1, 1, 0, 2), 1);
    ck_assert_int_eq(gs_flight_round(&fl, 1, 0, 0, 3), 1);
}
END_TEST

Suite *gs_pace_suite(void)
{
    Suite *s = suite_create("gs_pace");
    TCase *tc = tcase_create("pace");

    tcase_add_test(tc, pace_spends_one_window_then_waits_for_it_to_pass);
    tcase_add_test(tc, pace_never_overfills_a_fixed_window_and_keeps_the_rate);
    tcase_add_test(tc, pace_large_calls_pass_alone_and_unlimited_is_free);
    tcase_add_test(tc, pace_rate_limit_lowers_to_what_gmail_admitted_and_holds_for_retry_after);
    tcase_add_test(tc, pace_recovers_gradually_to_the_admitted_level_then_probes_beyond);
    tcase_add_test(tc, pace_refund_frees_what_gmail_did_not_charge);
    tcase_add_test(tc, pace_never_drops_below_its_floor);
    tcase_add_test(tc, flight_shrinks_to_what_gmail_answered_and_grows_back_slowly);
    tcase_add_test(tc, flight_starts_at_the_remembered_level_and_never_below_one);
    suite_add_tcase(s, tc);
    return s;
}
