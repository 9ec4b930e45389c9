/* test_gmail_parse.c -- Gmail's answers become what we store and what we retry. */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>
#include <apr_pools.h>
#include <check.h>

#include "gs_gmail.h"
#include "gs_gmail_parse.h"
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

static json_object *doc(const char *text)
{
    const char *err = NULL;
    json_object *o = gs_json_parse(pool, text, strlen(text), &err);

    ck_assert_msg(o != NULL, "%s", err);
    return o;
}

static gs_gm_class_t classify(int status, const char *body)
{
    const char *reason;

    return gs_gmail_classify(pool, status, body, body ? strlen(body) : 0, &reason);
}

/* format=raw: Gmail's base64url (padded or not) through apr_base64; anything else refused */
START_TEST(raw_is_base64url)
{
    static const struct { const char *in; const char *out; apr_size_t len; } ok[] = {
        { "", "", 0 }, { "YQ", "a", 1 }, { "YQ==", "a", 1 }, { "YWI", "ab", 2 }, { "YWI=", "ab", 2 },
        { "YWJj", "abc", 3 }, { "-_-_", "\xfb\xff\xbf", 3 }, { "AAE", "\0\1", 2 },
        { "RnJvbTogYUBiLmMNCg0KaGkNCg==", "From: a@b.c\r\n\r\nhi\r\n", 19 },
    };
    static const char *const bad[] = { "Y", "YQ===", "YQ=a", "Y+Q=", "YQ/=", "YW I", "YW\nI",
                                       "YWJjZ", "=", "YQ=\x80" };
    apr_size_t i;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        gs_gmail_raw_t r;
        ck_assert_int_eq(gs_gmail_decode_raw(pool, ok[i].in, strlen(ok[i].in), &r), APR_SUCCESS);
        ck_assert_uint_eq(r.len, ok[i].len);
        ck_assert_int_eq(memcmp(r.bytes, ok[i].out, ok[i].len), 0);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_gmail_raw_t r;
        ck_assert_msg(gs_gmail_decode_raw(pool, bad[i], strlen(bad[i]), &r) == APR_EINVAL,
                      "accepted '%s'", bad[i]);
    }
}
END_TEST

/* Messages of many KB are decoded 4 KB of text at a time: every length around the chunk's
 * edges, padded or not, gives the bytes back; a bad character in a later chunk is refused. */
START_TEST(long_raw_is_decoded_across_chunks)
{
    static const apr_size_t lens[] = { 3069, 3070, 3071, 3072, 3073, 3074, 6143, 6144, 6145,
                                       100000 };
    apr_size_t i, k;

    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        unsigned char *bytes = apr_palloc(pool, lens[i]);
        char *text = apr_palloc(pool, (apr_size_t)apr_base64_encode_len((int)lens[i]));
        apr_size_t n;
        gs_gmail_raw_t r;

        for (k = 0; k < lens[i]; k++) {
            bytes[k] = (unsigned char)(k * 131 + i * 7 + (k >> 8));
        }
        n = (apr_size_t)apr_base64_encode_binary(text, bytes, (int)lens[i]) - 1;
        for (k = 0; k < n; k++) {
            text[k] = text[k] == '+' ? '-' : text[k] == '/' ? '_' : text[k];
        }
        ck_assert_int_eq(gs_gmail_decode_raw(pool, text, n, &r), APR_SUCCESS);
        ck_assert_uint_eq(r.len, lens[i]);
        ck_assert_int_eq(memcmp(r.bytes, bytes, lens[i]), 0);
        while (n > 0 && text[n - 1] == '=') {
            n--;
        }
        ck_assert_int_eq(gs_gmail_decode_raw(pool, text, n, &r), APR_SUCCESS);
        ck_assert_uint_eq(r.len, lens[i]);
        ck_assert_int_eq(memcmp(r.bytes, bytes, lens[i]), 0);
        {   /* in place (a spooled answer's part): the same bytes, where the text was */
            char *copy = apr_pmemdup(pool, text, n + 1);

            ck_assert_int_eq(gs_gmail_decode_raw_in_place(copy, n, &r), APR_SUCCESS);
            ck_assert_ptr_eq(r.bytes, (const unsigned char *)copy);
            ck_assert_uint_eq(r.len, lens[i]);
            ck_assert_int_eq(memcmp(r.bytes, bytes, lens[i]), 0);
        }
        text[n - 2] = '+';
        ck_assert_int_eq(gs_gmail_decode_raw(pool, text, n, &r), APR_EINVAL);
        ck_assert_int_eq(gs_gmail_decode_raw_in_place(text, n, &r), APR_EINVAL);
    }
}
END_TEST

START_TEST(classifies_what_to_retry)
{
    const char *rate403 = "{\"error\":{\"code\":403,\"errors\":[{\"domain\":\"usageLimits\","
                          "\"reason\":\"userRateLimitExceeded\"}]}}";
    const char *rate403b = "{\"error\":{\"code\":403,\"errors\":[{\"reason\":\"rateLimitExceeded\"}]}}";
    const char *denied = "{\"error\":{\"code\":403,\"errors\":[{\"reason\":\"forbidden\"}]}}";
    const char *reason;

    ck_assert_int_eq(classify(200, "{}"), GS_GM_OK);
    ck_assert_int_eq(classify(404, NULL), GS_GM_NOT_FOUND);
    ck_assert_int_eq(classify(401, NULL), GS_GM_UNAUTHORIZED);
    ck_assert_int_eq(classify(429, NULL), GS_GM_RATE_LIMITED);
    ck_assert_int_eq(classify(403, rate403), GS_GM_RATE_LIMITED);
    ck_assert_int_eq(classify(403, rate403b), GS_GM_RATE_LIMITED);
    ck_assert_int_eq(classify(403, denied), GS_GM_FORBIDDEN);
    ck_assert_int_eq(classify(403, "<html>"), GS_GM_FORBIDDEN);
    ck_assert_int_eq(classify(500, NULL), GS_GM_TRANSIENT);
    ck_assert_int_eq(classify(502, "<!DOCTYPE html><html>"), GS_GM_TRANSIENT);
    ck_assert_int_eq(classify(503, NULL), GS_GM_TRANSIENT);
    ck_assert_int_eq(classify(400, NULL), GS_GM_BAD_REQUEST);
    gs_gmail_classify(pool, 403, rate403, strlen(rate403), &reason);
    ck_assert_str_eq(reason, "userRateLimitExceeded");
}
END_TEST

START_TEST(message_becomes_a_row)
{
    json_object *msg = doc(
        "{\"id\":\"18f09c276aaedbce\",\"threadId\":\"18f0\",\"labelIds\":[\"INBOX\",\"Label_4\"],"
        "\"snippet\":\"It\\u0026#39;s\",\"payload\":{\"mimeType\":\"text/plain\",\"headers\":["
        "{\"name\":\"subject\",\"value\":\"Caf\\u00e9 \\u003cok\\u003e\"},"
        "{\"name\":\"From\",\"value\":\"\\u738b\\u4f1f <w@example.cn>\"},"
        "{\"name\":\"To\",\"value\":\"a@example.com\"},{\"name\":\"To\",\"value\":\"second\"}]},"
        "\"sizeEstimate\":3364,\"historyId\":\"3310776\",\"internalDate\":\"1713855690410\"}");
    const char *err = NULL, *s;
    json_object *row = gs_json_own(pool, gs_gmail_message_row(pool, msg, &err)), *v;

    ck_assert_ptr_nonnull(row);
    s = gs_json_to_string(pool, row);
    ck_assert_ptr_nonnull(strstr(s, "\"id\":\"18f09c276aaedbce\""));
    ck_assert_ptr_nonnull(strstr(s, "\"labels\":[\"INBOX\",\"Label_4\"]"));
    ck_assert_ptr_nonnull(strstr(s, "\"internal_date\":1713855690410"));
    ck_assert_ptr_nonnull(strstr(s, "\"history_id\":\"3310776\""));
    ck_assert_ptr_nonnull(strstr(s, "\"size\":3364"));
    ck_assert(json_object_object_get_ex(row, "subject", &v));
    ck_assert_str_eq(json_object_get_string(v), "Caf\xc3\xa9 <ok>");
    ck_assert(json_object_object_get_ex(row, "to", &v));
    ck_assert_str_eq(json_object_get_string(v), "a@example.com");   /* the first one */
    ck_assert(json_object_object_get_ex(row, "from", &v));
    ck_assert_str_eq(json_object_get_string(v), "\xe7\x8e\x8b\xe4\xbc\x9f <w@example.cn>");
}
END_TEST

START_TEST(message_without_labels_or_headers)
{
    const char *err = NULL;
    json_object *row = gs_json_own(pool, gs_gmail_message_row(
                                              pool, doc("{\"id\":\"abc\",\"threadId\":\"abc\"}"), &err));
    const char *s = gs_json_to_string(pool, row);

    ck_assert_ptr_nonnull(strstr(s, "\"labels\":[]"));
    ck_assert_ptr_nonnull(strstr(s, "\"subject\":null"));
    ck_assert_ptr_null(gs_gmail_message_row(pool, doc("{\"threadId\":\"x\"}"), &err));
    ck_assert_ptr_null(gs_gmail_message_row(pool, doc("{\"id\":\"a'b\"}"), &err));
}
END_TEST

START_TEST(utf8_is_repaired_and_cut_on_boundaries)
{
    ck_assert_str_eq(gs_utf8_clean(pool, "plain", 100), "plain");
    ck_assert_str_eq(gs_utf8_clean(pool, "a\xff" "b", 100), "a\xef\xbf\xbd" "b");
    ck_assert_str_eq(gs_utf8_clean(pool, "\xed\xa0\x80", 100), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(gs_utf8_clean(pool, "\xc0\xaf", 100), "\xef\xbf\xbd\xef\xbf\xbd");  /* overlong */
    ck_assert_str_eq(gs_utf8_clean(pool, "ab\xe7\x8e\x8b", 4), "ab");   /* never half a char */
    ck_assert_str_eq(gs_utf8_clean(pool, "\xf0\x9f\x8e\x89!", 5), "\xf0\x9f\x8e\x89!");
}
END_TEST

START_TEST(list_page_dedupes_and_keeps_the_token)
{
    gs_list_page_t page;
    const char *err = NULL;

    ck_assert_int_eq(gs_gmail_parse_list(pool, doc("{\"messages\":[{\"id\":\"a\",\"threadId\":\"a\"},"
                                                   "{\"id\":\"b\"},{\"id\":\"a\"}],"
                                                   "\"nextPageToken\":\"0123\","
                                                   "\"resultSizeEstimate\":201}"), &page, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(page.ids->nelts, 2);
    ck_assert_str_eq(page.next_token, "0123");
    ck_assert_int_eq(gs_gmail_parse_list(pool, doc("{\"resultSizeEstimate\":0}"), &page, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(page.ids->nelts, 0);
    ck_assert_ptr_null(page.next_token);
    ck_assert_int_ne(gs_gmail_parse_list(pool, doc("{\"messages\":[{\"id\":\"a b\"}]}"), &page, &err),
                     APR_SUCCESS);
}
END_TEST

START_TEST(history_page_keeps_the_order_of_changes)
{
    gs_history_page_t page;
    const gs_hist_change_t *c;
    const char *err = NULL;

    ck_assert_int_eq(gs_gmail_parse_history(pool, doc(
        "{\"history\":["
        "{\"id\":\"101\",\"messages\":[{\"id\":\"m1\"}],\"messagesAdded\":[{\"message\":{\"id\":\"m1\"}}]},"
        "{\"id\":\"105\",\"messages\":[{\"id\":\"m2\"}],\"labelsAdded\":[{\"message\":{\"id\":\"m2\"},"
        "\"labelIds\":[\"STARRED\"]}],\"labelsRemoved\":[{\"message\":{\"id\":\"m2\"},\"labelIds\":[\"INBOX\"]}]},"
        "{\"id\":\"109\",\"messagesDeleted\":[{\"message\":{\"id\":\"m3\"}}]}],"
        "\"nextPageToken\":\"77\",\"historyId\":\"120\"}"), &page, &err), APR_SUCCESS);
    ck_assert_int_eq(page.records, 3);
    ck_assert_str_eq(page.last_record_id, "109");
    ck_assert_str_eq(page.history_id, "120");
    ck_assert_str_eq(page.next_token, "77");
    ck_assert_int_eq(page.changes->nelts, 4);
    c = &APR_ARRAY_IDX(page.changes, 1, gs_hist_change_t);
    ck_assert_int_eq(c->kind, GS_HIST_LABELS_ADDED);
    ck_assert_str_eq(APR_ARRAY_IDX(c->labels, 0, const char *), "STARRED");
    ck_assert_int_eq(APR_ARRAY_IDX(page.changes, 2, gs_hist_change_t).kind, GS_HIST_LABELS_REMOVED);
    ck_assert_int_eq(APR_ARRAY_IDX(page.changes, 3, gs_hist_change_t).kind, GS_HIST_DELETED);

    /* an empty page that still has a next page is fine */
    ck_assert_int_eq(gs_gmail_parse_history(pool, doc("{\"nextPageToken\":\"8\",\"historyId\":\"5\"}"),
                                            &page, &err), APR_SUCCESS);
    ck_assert_int_eq(page.records, 0);
    ck_assert_ptr_null(page.last_record_id);
    ck_assert_int_ne(gs_gmail_parse_history(pool, doc("{\"historyId\":\"x5\"}"), &page, &err),
                     APR_SUCCESS);
}
END_TEST

START_TEST(profile_needs_a_history_id)
{
    gs_profile_t prof;
    const char *err = NULL;

    ck_assert_int_eq(gs_gmail_parse_profile(doc("{\"emailAddress\":\"a@b\",\"messagesTotal\":1200,"
                                                "\"historyId\":\"3312073\"}"), &prof, &err),
                     APR_SUCCESS);
    ck_assert_int_eq((int)prof.messages_total, 1200);
    ck_assert_str_eq(prof.history_id, "3312073");
    ck_assert_int_ne(gs_gmail_parse_profile(doc("{\"messagesTotal\":1}"), &prof, &err), APR_SUCCESS);
}
END_TEST

/* users.labels.list: Gmail's fields into gmailsync.labels rows; what is not Gmail's shape is
 * cleaned or left out, never passed on. */
START_TEST(labels_become_rows)
{
    const char *rows_json, *err = NULL;
    json_object *rows, *r;
    int n, skipped;

    ck_assert_int_eq(gs_gmail_parse_labels(pool, doc(
        "{\"labels\":[{\"id\":\"INBOX\",\"name\":\"INBOX\",\"type\":\"system\","
        "\"messageListVisibility\":\"hide\",\"labelListVisibility\":\"labelShow\"},"
        "{\"id\":\"Label_7\",\"name\":\"\u5bb6\u5ead/\u8d26\u5355\",\"type\":\"user\","
        "\"color\":{\"textColor\":\"#ffffff\",\"backgroundColor\":\"#16a765\"}},"
        "{\"id\":\"Label_8\",\"name\":\"x\",\"type\":\"weird\",\"color\":{\"textColor\":"
        "\"red\",\"backgroundColor\":\"#12345g\"},\"labelListVisibility\":\"a b\"},"
        "{\"id\":\"bad id\",\"name\":\"n\"},{\"id\":\"Label_9\"},{\"id\":\"Label_10\",\"name\":\"\"},"
        "7]}"), &rows_json, &n, &skipped, &err), APR_SUCCESS);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(skipped, 4);
    rows = doc(rows_json);
    ck_assert_int_eq((int)json_object_array_length(rows), 3);
    r = json_object_array_get_idx(rows, 0);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "type")), "system");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "message_list_visibility")),
                     "hide");
    ck_assert_ptr_null(json_object_object_get(r, "text_color"));
    r = json_object_array_get_idx(rows, 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "name")),
                     "\xe5\xae\xb6\xe5\xba\xad/\xe8\xb4\xa6\xe5\x8d\x95");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "background_color")),
                     "#16a765");
    r = json_object_array_get_idx(rows, 2);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(r, "type")), "user");
    ck_assert_ptr_null(json_object_object_get(r, "text_color"));
    ck_assert_ptr_null(json_object_object_get(r, "background_color"));
    ck_assert_ptr_null(json_object_object_get(r, "label_list_visibility"));
    /* no labels array: malformed (Gmail always lists the system labels) */
    ck_assert_int_eq(gs_gmail_parse_labels(pool, doc("{}"), &rows_json, &n, &skipped, &err),
                     APR_EINVAL);
    ck_assert_ptr_nonnull(err);
}
END_TEST

START_TEST(lockout_end_comes_from_the_message_and_access_not_configured_is_forbidden)
{
    static const char lockout[] =
        "{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"User-rate limit exceeded.  "
        "Retry after 2026-12-06T20:15:00.123Z\",\n    \"errors\": [{\"message\": \"User-rate limit "
        "exceeded.  Retry after 2026-12-06T20:15:00.123Z\", \"domain\": \"usageLimits\", "
        "\"reason\": \"rateLimitExceeded\"}],\n    \"status\": \"RESOURCE_EXHAUSTED\"\n  }\n}\n";
    static const char in_errors_only[] =
        "{\"error\":{\"code\":403,\"message\":\"User-rate limit exceeded.\",\"errors\":[{\"message\":"
        "\"User-rate limit exceeded.  Retry after 2026-12-06T20:15:00.123Z\",\"reason\":"
        "\"userRateLimitExceeded\"}]}}";
    static const char disabled[] =
        "{\"error\":{\"code\":403,\"message\":\"Gmail API has not been used in project 1 before or it "
        "is disabled.\",\"errors\":[{\"message\":\"x\",\"domain\":\"usageLimits\",\"reason\":"
        "\"accessNotConfigured\"}],\"status\":\"PERMISSION_DENIED\"}}";
    static const char plain[] =
        "{\"error\":{\"message\":\"Resource has been exhausted (e.g. check quota).\"}}";
    const apr_time_t at = apr_time_from_sec(1796588100) + 123000;
    const char *reason;

    ck_assert_int_eq(gs_gmail_classify(pool, 429, lockout, strlen(lockout), &reason),
                     GS_GM_RATE_LIMITED);
    ck_assert(gs_gmail_lockout_until(pool, lockout, strlen(lockout)) == at);
    ck_assert_int_eq(gs_gmail_classify(pool, 403, in_errors_only, strlen(in_errors_only), &reason),
                     GS_GM_RATE_LIMITED);
    ck_assert(gs_gmail_lockout_until(pool, in_errors_only, strlen(in_errors_only)) == at);
    ck_assert(gs_gmail_lockout_until(pool, plain, strlen(plain)) == 0);
    ck_assert(gs_gmail_lockout_until(pool, "not json", 8) == 0);
    ck_assert(gs_gmail_lockout_until(pool, NULL, 0) == 0);
    ck_assert_int_eq(gs_gmail_classify(pool, 403, disabled, strlen(disabled), &reason),
                     GS_GM_FORBIDDEN);
    ck_assert_str_eq(reason, "accessNotConfigured");
}
END_TEST

Suite *gs_gmail_parse_suite(void)
{
    Suite *s = suite_create("gs_gmail_parse");
    TCase *tc = tcase_create("answers");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, classifies_what_to_retry);
    tcase_add_test(tc, raw_is_base64url);
    tcase_add_test(tc, long_raw_is_decoded_across_chunks);
    tcase_add_test(tc, message_becomes_a_row);
    tcase_add_test(tc, message_without_labels_or_headers);
    tcase_add_test(tc, utf8_is_repaired_and_cut_on_boundaries);
    tcase_add_test(tc, list_page_dedupes_and_keeps_the_token);
    tcase_add_test(tc, history_page_keeps_the_order_of_changes);
    tcase_add_test(tc, profile_needs_a_history_id);
    tcase_add_test(tc, labels_become_rows);
    tcase_add_test(tc, lockout_end_comes_from_the_message_and_access_not_configured_is_forbidden);
    suite_add_tcase(s, tc);
    return s;
}
