/* test_content.c -- what the worker makes of one format=raw message short of PostgreSQL: a batch
 * part's JSON taken apart (gs_gmail_raw_part: the row and the base64url raw) and the values the
 * store sends (gs_content_build: the row JSON, addresses, attachments with their stored flag,
 * bodies, the blobs to send, the bound on indexed values). The harness tests/fuzz/fuzz_content.c
 * runs the same two functions over any input. */
#include <stdio.h>
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_content.h"
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

static const char MIXED[] =
    "From: Ann <Ann@Example.com>\r\n"
    "To: bob@example.com, \"Carl\" <carl@example.com>\r\n"
    "Subject: report\r\n"
    "Message-ID: <m1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=z\r\n\r\n"
    "--z\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    "--z\r\nContent-Type: application/pdf; name=a.pdf\r\n"
    "Content-Disposition: attachment; filename=a.pdf\r\n\r\nsmall\r\n"
    "--z\r\nContent-Type: application/zip; name=b.zip\r\n"
    "Content-Disposition: attachment; filename=b.zip\r\n\r\nthis one is larger\r\n"
    "--z--\r\n";

/* A gs_gmail_message_row for id, owned by the pool. */
static json_object *gmail_row(const char *id)
{
    json_object *row = gs_json_own(pool, json_object_new_object());

    gs_json_set_string(row, "id", id);
    gs_json_set_string(row, "thread_id", "t1");
    return row;
}

static json_object *parsed(const char *text)
{
    const char *err = NULL;
    json_object *o = gs_json_parse(pool, text, strlen(text), &err);

    ck_assert_msg(o != NULL, "not JSON (%s): %.200s", err ? err : "?", text);
    return o;
}

static gs_content_t *build(const char *raw, apr_size_t len, gs_attach_mode_t mode,
                           apr_int64_t max_size)
{
    gs_content_opts_t o = { mode, max_size, 1 };
    gs_gmail_raw_t r;

    r.bytes = (const unsigned char *)raw;
    r.len = len;
    return gs_content_build(pool, &o, gmail_row("18e4ff40c8862fb4"), &r);
}

START_TEST(values_of_a_message_with_attachments)
{
    gs_content_t *c = build(MIXED, sizeof MIXED - 1, GS_ATTACH_STORE, 10);
    json_object *row = parsed(c->row), *addrs = parsed(c->addresses);
    json_object *atts = parsed(c->attachments), *a;

    ck_assert_str_eq(c->id, "18e4ff40c8862fb4");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "content_state")),
                     "complete");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "message_id")),
                     "m1@example.com");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "thread_id")), "t1");
    ck_assert_int_eq((int)json_object_get_int64(json_object_object_get(row, "raw_size")),
                     (int)sizeof MIXED - 1);
    /* one from, two to, normalised */
    ck_assert_int_eq((int)json_object_array_length(addrs), 3);
    a = json_object_array_get_idx(addrs, 0);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(a, "role")), "from");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(a, "address")),
                     "ann@example.com");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(a, "name")), "Ann");
    a = json_object_array_get_idx(addrs, 2);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(a, "role")), "to");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(a, "position")), 1);
    /* two attachments; only the one within the 10-byte limit is stored */
    ck_assert_int_eq((int)json_object_array_length(atts), 2);
    ck_assert(json_object_get_boolean(json_object_object_get(json_object_array_get_idx(atts, 0),
                                                             "stored")));
    ck_assert(!json_object_get_boolean(json_object_object_get(json_object_array_get_idx(atts, 1),
                                                              "stored")));
    ck_assert_int_eq(c->blobs->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(c->blobs, 0, const gs_mime_attachment_t *)->filename, "a.pdf");
    ck_assert_str_eq(c->text, "hello");
    ck_assert_str_eq(c->text_charset, "UTF-8");
    ck_assert_ptr_null(c->html);
    ck_assert_ptr_null(c->html_charset);

    /* attachments = metadata: rows with their hashes, no bytes */
    c = build(MIXED, sizeof MIXED - 1, GS_ATTACH_METADATA, 1024);
    ck_assert_int_eq(c->blobs->nelts, 0);
    ck_assert_ptr_null(APR_ARRAY_IDX(c->mime->attachments, 0, gs_mime_attachment_t).bytes);
    ck_assert_ptr_null(strstr(c->attachments, "\"stored\":true"));
    /* a limit of 0 stores no bytes either */
    c = build(MIXED, sizeof MIXED - 1, GS_ATTACH_STORE, 0);
    ck_assert_int_eq(c->blobs->nelts, 0);
}
END_TEST

START_TEST(parse_error_carries_its_reason)
{
    static const char cut[] = "Content-Type: multipart/mixed; boundary=z\r\n\r\n"
                              "--z\r\nContent-Type: text/plain\r\n\r\nno end\r\n";
    gs_content_t *c = build(cut, sizeof cut - 1, GS_ATTACH_STORE, 1024);
    json_object *row = parsed(c->row);

    ck_assert_int_eq(c->mime->state, GS_MIME_PARSE_ERROR);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "content_state")),
                     "parse_error");
    ck_assert_ptr_nonnull(strstr(json_object_get_string(json_object_object_get(row,
                                                                               "content_reason")),
                                 "closing boundary"));
    ck_assert_str_eq(c->text, "no end\n");
}
END_TEST

/* A Message-ID or an address too long for a btree entry (PostgreSQL refuses an index row over
 * 2,704 bytes: the whole store would fail, and the sync with it) is left out of the indexed
 * columns; the headers keep it whole. */
START_TEST(indexed_values_are_bounded)
{
    apr_size_t n = 5000;
    char *local = apr_palloc(pool, n + 1);
    const char *raw;
    gs_content_t *c;
    json_object *row, *addrs, *headers;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        local[i] = (char)('a' + (i * 7919) % 26);
    }
    local[n] = '\0';
    raw = apr_psprintf(pool, "From: <%s@example.com>, ok@example.com\r\nMessage-ID: <%s@x>\r\n"
                             "\r\nbody\r\n", local, local);
    c = build(raw, strlen(raw), GS_ATTACH_STORE, 1024);
    row = parsed(c->row);
    addrs = parsed(c->addresses);
    ck_assert_int_eq(c->mime->state, GS_MIME_COMPLETE);
    ck_assert_uint_gt(strlen(c->mime->message_id), GS_CONTENT_MAX_INDEXED);
    ck_assert_ptr_null(json_object_object_get(row, "message_id"));
    ck_assert_int_eq((int)json_object_array_length(addrs), 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(
                         json_object_array_get_idx(addrs, 0), "address")), "ok@example.com");
    /* its position stays the one in the header */
    ck_assert_int_eq(json_object_get_int(json_object_object_get(
                         json_object_array_get_idx(addrs, 0), "position")), 1);
    headers = json_object_object_get(row, "headers");
    ck_assert_ptr_nonnull(strstr(json_object_get_string(json_object_array_get_idx(
                                     json_object_array_get_idx(headers, 1), 1)), local));
    /* at the bound, kept */
    local[GS_CONTENT_MAX_INDEXED - 2] = '\0';   /* "<" local "@x" ">" -> local@x */
    raw = apr_psprintf(pool, "Message-ID: <%s@x>\r\n\r\nbody\r\n", local);
    c = build(raw, strlen(raw), GS_ATTACH_STORE, 1024);
    ck_assert_uint_eq(strlen(c->mime->message_id), GS_CONTENT_MAX_INDEXED);
    ck_assert_ptr_nonnull(json_object_object_get(parsed(c->row), "message_id"));
}
END_TEST

/* The JSON of one batch part: its row and its raw bytes, as the worker takes them. */
START_TEST(raw_part_is_taken_apart)
{
    static const char msg[] = "Subject: hi\r\n\r\nbody\r\n";
    char *b64 = apr_palloc(pool, (apr_size_t)apr_base64_encode_len(sizeof msg - 1));
    const char *err = NULL;
    json_object *row = NULL;
    gs_gmail_raw_t raw;
    char *u, *body;

    apr_base64_encode_binary(b64, (const unsigned char *)msg, sizeof msg - 1);
    for (u = b64; *u; u++) {   /* base64url: Gmail's alphabet */
        *u = *u == '+' ? '-' : *u == '/' ? '_' : *u;
    }
    body = apr_psprintf(pool, "{\"id\":\"18e4ff40c8862fb4\",\"threadId\":\"18e4\","
                              "\"labelIds\":[\"INBOX\",\"UNREAD\"],\"raw\":\"%s\"}", b64);
    ck_assert_int_eq(gs_gmail_raw_part(pool, pool, body, strlen(body), &row, &raw, &err),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(row);
    gs_json_own(pool, row);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "id")),
                     "18e4ff40c8862fb4");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "thread_id")), "18e4");
    ck_assert_int_eq((int)json_object_array_length(json_object_object_get(row, "labels")), 2);
    ck_assert_uint_eq(raw.len, sizeof msg - 1);
    ck_assert_int_eq(memcmp(raw.bytes, msg, raw.len), 0);

    /* no raw, a raw that is not base64url, no valid id, not JSON: refused, no row */
    {
        static const char *const bad[] = {
            "{\"id\":\"18e4ff40c8862fb4\"}",
            "{\"id\":\"18e4ff40c8862fb4\",\"raw\":7}",
            "{\"id\":\"18e4ff40c8862fb4\",\"raw\":\"a+b/\"}",
            "{\"id\":\"18e4ff40c8862fb4\",\"raw\":\"YQ=\"}",
            "{\"id\":\"bad id\",\"raw\":\"YQ\"}",
            "{\"raw\":\"YQ\"}",
            "{\"id\":\"18e4ff40c8862fb4\",\"raw\":\"YQ\"",
        };
        apr_size_t i;

        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            row = (json_object *)1;
            err = NULL;
            ck_assert_msg(gs_gmail_raw_part(pool, pool, apr_pstrdup(pool, bad[i]),
                                            strlen(bad[i]), &row, &raw, &err)
                          == APR_EINVAL, "accepted: %s", bad[i]);
            ck_assert_ptr_null(row);
            ck_assert_ptr_nonnull(err);
        }
    }
}
END_TEST

Suite *gs_content_suite(void)
{
    const TTest *const tests[] = { values_of_a_message_with_attachments,
                                   parse_error_carries_its_reason, indexed_values_are_bounded,
                                   raw_part_is_taken_apart };
    Suite *s = suite_create("gs_content");
    TCase *tc = tcase_create("values");
    size_t i;

    tcase_add_checked_fixture(tc, setup, teardown);
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        tcase_add_test(tc, tests[i]);
    }
    suite_add_tcase(s, tc);
    return s;
}
