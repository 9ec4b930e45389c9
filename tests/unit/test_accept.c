/* test_accept.c -- Accept decides between the task JSON and the event stream. */
#include <check.h>

#include "gs_accept.h"
#include "unit.h"

START_TEST(stream_only_when_asked_for_by_name)
{
    static const char *const stream[] = {
        "text/event-stream",
        "TEXT/Event-Stream",
        " text/event-stream ",
        "text/event-stream;q=1",
        "text/event-stream; q=0.5",
        "text/event-stream ; charset=utf-8 ; q=0.001",
        "text/event-stream;Q=1.000",
        "application/json;q=0.5, text/event-stream",
        "text/event-stream, application/json",               /* a tie goes to the stream */
        "text/event-stream;q=0.9, */*;q=0.8",
        "application/*;q=0.2, text/event-stream;q=0.3",
        "text/html, text/event-stream",
        ",, text/event-stream ,",
        "text/event-stream;foo=\"a,b;q=0\"",
        "text/event-stream;q=0, text/event-stream;q=0.5",     /* equally specific: the higher q */
        "text/event-stream;;q=1",
        "text/event-stream, text/event-stream;q=abc",        /* the bad element is ignored */
    };
    static const char *const json[] = {
        "", "*/*", "text/*", "application/json", "text/event-streamx", "text/event-stream-x",
        "xtext/event-stream", "text/event-streams", "text/event", "event-stream",
        "text/event-stream;q=0", "text/event-stream;q=0.000", "text/event-stream; q=0",
        "text/event-stream;q=0.5, application/json", "text/event-stream;q=0.5, */*",
        "text/event-stream;q=0.5, application/*", "application/json, text/event-stream;q=0.9",
        "text/event-stream;q=2", "text/event-stream;q=1.5", "text/event-stream;q=-1",
        "text/event-stream;q=0.5555", "text/event-stream;q=", "text/event-stream;q=.5",
        "text/event-stream;q", "text/event-stream q=1", "text/event-stream;charset=\"utf-8",
        "text/event-stream/x", "*/event-stream", "text/ event-stream", "text /event-stream",
        "application/json, text/*", "text/plain; x=\"text/event-stream\"",
    };
    size_t i;

    ck_assert(!gs_accept_wants_event_stream(NULL));
    for (i = 0; i < sizeof stream / sizeof stream[0]; i++) {
        ck_assert_msg(gs_accept_wants_event_stream(stream[i]), "JSON for %s", stream[i]);
    }
    for (i = 0; i < sizeof json / sizeof json[0]; i++) {
        ck_assert_msg(!gs_accept_wants_event_stream(json[i]), "stream for %s", json[i]);
    }
}
END_TEST

START_TEST(weights)
{
    ck_assert_int_eq(gs_accept_weight(NULL, "application", "json", 0), -1);
    ck_assert_int_eq(gs_accept_weight("text/html", "application", "json", 0), -1);
    ck_assert_int_eq(gs_accept_weight("*/*", "application", "json", 0), 1000);
    ck_assert_int_eq(gs_accept_weight("*/*", "application", "json", 1), -1);
    ck_assert_int_eq(gs_accept_weight("*/*;q=0.1, application/*;q=0.2", "application", "json", 0),
                     200);
    ck_assert_int_eq(gs_accept_weight("application/json;q=0.3, application/*;q=0.9, */*",
                                      "application", "json", 0), 300);
    ck_assert_int_eq(gs_accept_weight("application/json;q=0.125", "application", "json", 0), 125);
    ck_assert_int_eq(gs_accept_weight("application/json;q=0.", "application", "json", 0), 0);
    ck_assert_int_eq(gs_accept_weight("application/json;q=1.", "application", "json", 0), 1000);
    ck_assert_int_eq(gs_accept_weight("application/json;q=1.001", "application", "json", 0), -1);
}
END_TEST

Suite *gs_accept_suite(void)
{
    Suite *s = suite_create("gs_accept");
    TCase *tc = tcase_create("media ranges");

    tcase_add_test(tc, stream_only_when_asked_for_by_name);
    tcase_add_test(tc, weights);
    suite_add_tcase(s, tc);
    return s;
}
