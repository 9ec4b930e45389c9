/* test_json_check.c -- the RFC 8259 validator that runs before json-c. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

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

typedef struct {
    const char *doc;
    size_t len;     /* 0: strlen(doc) */
} doc_t;

#define DOC(s) { s, sizeof(s) - 1 }

static apr_status_t check(const doc_t *d, const char **err, apr_size_t *at)
{
    *err = NULL;
    return gs_json_validate(pool, d->doc, d->len, GS_JSON_MAX_DEPTH, err, at);
}

START_TEST(accepts_valid_documents)
{
    static const doc_t good[] = {
        DOC("{}"), DOC("[]"), DOC(" \t\r\n{ } \t\r\n"), DOC("0"), DOC("-0"), DOC("12"),
        DOC("\"\""), DOC("true"), DOC("false"), DOC("null"),
        DOC("[0, -0, 1, -1, 10, 0.5, -0.5, 1e5, 1E5, 1e+5, 1e-5, 1.25E-10, 123456789012345678901]"),
        DOC("{\"force_full\": false}"),
        DOC("{\"a\": {\"a\": {\"a\": 1}}, \"b\": [{\"a\": 1}, {\"a\": 2}]}"),
        DOC("[\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"]"),
        DOC("[\"\\u0041\\u00e9\\u20AC\\uFFFF\\u0000\"]"),       /* \u0000 is fine in a value */
        DOC("[\"\\ud83d\\ude00\", \"\\uD800\\uDC00\", \"\\uDBFF\\uDFFF\"]"),
        DOC("[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"]"),
        DOC("[\"\xed\x9f\xbf\", \"\xee\x80\x80\"]"),                 /* U+D7FF, U+E000 */
        DOC("[\"\x7f\"]"),                                          /* DEL is not a control < 0x20 */
        DOC("{\"a\":1,\"A\":2,\"a \":3,\"\\u0062\":4,\"c\":5}"),     /* all different keys */
        DOC("[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]"),                   /* exactly 16 levels */
        /* Gmail's style: pretty-printed, HTML characters escaped, non-ASCII as UTF-8 */
        DOC("{\n  \"id\": \"18c0\",\n  \"snippet\": \"\\u003cb\\u003e caf\xc3\xa9 \\u0026\",\n"
            "  \"labelIds\": [\n    \"INBOX\"\n  ],\n  \"sizeEstimate\": 1234\n}\n"),
    };
    size_t i;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *err;
        apr_size_t at;
        ck_assert_msg(check(&good[i], &err, &at) == APR_SUCCESS, "refused %s: %s at %lu",
                      good[i].doc, err, (unsigned long)at);
    }
}
END_TEST

START_TEST(refuses_invalid_documents)
{
    static const doc_t bad[] = {
        /* structure */
        DOC(""), DOC(" "), DOC("{"), DOC("}"), DOC("["), DOC("[1"), DOC("[1,]"), DOC("[,1]"),
        DOC("{\"a\"}"), DOC("{\"a\":}"), DOC("{\"a\" 1}"), DOC("{\"a\":1,}"), DOC("{,}"),
        DOC("{a:1}"), DOC("{'a':1}"), DOC("['a']"), DOC("{1:1}"), DOC("{\"a\":1}}"),
        DOC("{\"a\":1} x"), DOC("{} {}"), DOC("1 2"), DOC("[1 2]"), DOC("{\"a\":1 \"b\":2}"),
        DOC("{\"a\":1}\0"), DOC("\xef\xbb\xbf{}"),                   /* NUL after, BOM before */
        DOC("{}\v"), DOC("\f{}"),                                  /* not JSON whitespace */
        DOC("[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"),                 /* 17 levels */
        /* literals */
        DOC("tru"), DOC("True"), DOC("nul"), DOC("NULL"), DOC("undefined"), DOC("[truex]"),
        /* numbers */
        DOC("{\"x\":NaN}"), DOC("{\"x\":Infinity}"), DOC("{\"x\":-Infinity}"), DOC("[nan]"),
        DOC("[+1]"), DOC("[01]"), DOC("[-01]"), DOC("[00]"), DOC("[1.]"), DOC("[.5]"),
        DOC("[-]"), DOC("[1e]"), DOC("[1e+]"), DOC("[0x10]"), DOC("[1.5.5]"), DOC("[--1]"),
        DOC("[1_000]"), DOC("[\xd9\xa1]"),                          /* ARABIC-INDIC DIGIT ONE */
        /* control characters */
        DOC("{\"x\":\"a\x01z\"}"), DOC("[\"\t\"]"), DOC("[\"\n\"]"), DOC("[\"\x1f\"]"),
        DOC("[\"a\0b\"]"),
        /* escapes */
        DOC("[\"\\a\"]"), DOC("[\"\\x41\"]"), DOC("[\"\\'\"]"), DOC("[\"\\U0041\"]"),
        DOC("[\"\\u004\"]"), DOC("[\"\\u00g0\"]"), DOC("[\"\\\"]"), DOC("[\"\\"),
        DOC("[\"\\ud800\"]"), DOC("[\"\\udc00\"]"), DOC("[\"\\udfff\\ud800\"]"),
        DOC("[\"\\ud800\\u0041\"]"), DOC("[\"\\ud800\\ud800\"]"), DOC("[\"\\ud800x\"]"),
        DOC("[\"\\ud800\\n\"]"), DOC("[\"\\ud800\\udc0\"]"),
        /* UTF-8 */
        DOC("{\"x\":\"\xff\xfe\xc0\xaf\"}"), DOC("[\"\xc0\xaf\"]"), DOC("[\"\xc1\xbf\"]"),
        DOC("[\"\xe0\x80\xaf\"]"), DOC("[\"\xe0\x9f\xbf\"]"), DOC("[\"\xf0\x80\x80\xaf\"]"),
        DOC("[\"\xf0\x8f\xbf\xbf\"]"),                                /* overlong forms */
        DOC("[\"\xed\xa0\x80\"]"), DOC("[\"\xed\xbf\xbf\"]"),           /* UTF-8 surrogates */
        DOC("[\"\xed\xa0\xbd\xed\xb8\x80\"]"),                         /* CESU-8 pair */
        DOC("[\"\xf4\x90\x80\x80\"]"), DOC("[\"\xf5\x80\x80\x80\"]"),  /* above U+10FFFF */
        DOC("[\"\xf8\x88\x80\x80\x80\"]"), DOC("[\"\xfe\"]"), DOC("[\"\xff\"]"),
        DOC("[\"\x80\"]"), DOC("[\"\xbf\"]"), DOC("[\"\xc3\"]"), DOC("[\"\xc3\x28\"]"),
        DOC("[\"\xe2\x82\"]"), DOC("[\"\xf0\x9f\x98\"]"), DOC("[\"\xc3"),  /* truncated */
        DOC("[\xc3\xa9]"),                                            /* outside a string */
        /* duplicate keys, also after unescaping, also in nested and large objects */
        DOC("{\"force_full\":1,\"force_full\":false}"),
        DOC("{\"force_full\":false,\"force_full\":1}"),
        DOC("{\"a\":1,\"\\u0061\":2}"), DOC("{\"\\u0061\":1,\"a\":2}"),
        DOC("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}"),
        DOC("{\"a/\":1,\"a\\/\":2}"), DOC("{\"\":1,\"\":2}"),
        DOC("[{\"ok\":1},{\"x\":{\"y\":1,\"y\":2}}]"),
        DOC("{\"k1\":0,\"k2\":0,\"k3\":0,\"k4\":0,\"k5\":0,\"k6\":0,\"k7\":0,\"k8\":0,"
            "\"k9\":0,\"k10\":0,\"k3\":0}"),
        DOC("{\"k1\":0,\"k2\":0,\"k3\":0,\"k4\":0,\"k5\":0,\"k6\":0,\"k7\":0,\"k8\":0,"
            "\"k9\":0,\"k10\":0,\"k11\":0,\"k\\u0031\\u0030\":0}"),
        /* a key json-c would cut at U+0000 */
        DOC("{\"force_full\\u0000x\":1,\"force_full\":true}"),
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err;
        apr_size_t at = (apr_size_t)-1;
        ck_assert_msg(check(&bad[i], &err, &at) == APR_EINVAL, "accepted #%lu %s",
                      (unsigned long)i, bad[i].doc);
        ck_assert_msg(err != NULL, "no reason for %s", bad[i].doc);
        ck_assert_msg(at <= bad[i].len, "offset %lu beyond %s", (unsigned long)at, bad[i].doc);
    }
}
END_TEST

START_TEST(names_the_problem_and_where)
{
    static const struct { doc_t d; const char *err; apr_size_t at; } cases[] = {
        { DOC("{\"x\":NaN}"), "NaN and Infinity are not JSON numbers", 5 },
        { DOC("{\"x\":-Infinity}"), "NaN and Infinity are not JSON numbers", 5 },
        { DOC("{\"a\":1,\"a\":2}"), "duplicate object key", 7 },
        { DOC("[\"ab\x01\"]"), "control character in a string (escape it)", 4 },
        { DOC("[\"\xed\xa0\x80\"]"), "invalid UTF-8 in a string", 2 },
        { DOC("[\"x\\ud800\"]"), "high surrogate escape not followed by a low surrogate", 3 },
        { DOC("[\"\\udc00\"]"), "lone low surrogate escape", 2 },
        { DOC("[01]"), "numbers may not have leading zeros", 1 },
        { DOC("{} x"), "trailing data after the JSON document", 3 },
        { DOC("[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]"), "nesting too deep", 16 },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err;
        apr_size_t at = 0;
        ck_assert_int_eq(check(&cases[i].d, &err, &at), APR_EINVAL);
        ck_assert_str_eq(err, cases[i].err);
        ck_assert_msg(at == cases[i].at, "%s: at %lu, expected %lu", cases[i].d.doc,
                      (unsigned long)at, (unsigned long)cases[i].at);
    }
}
END_TEST

START_TEST(does_not_read_past_the_length)
{
    /* the bytes after len would make each of these valid; they must not be looked at */
    static const struct { const char *buf; size_t len; } cases[] = {
        { "[\"\xc3\xa9\"]", 3 }, { "[\"\\u0041\"]", 6 }, { "[\"\\ud83d\\ude00\"]", 9 },
        { "true", 3 }, { "[12]", 2 }, { "{\"a\":1}", 6 },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err;
        char *copy = apr_pmemdup(pool, cases[i].buf, cases[i].len); /* no terminator after */
        ck_assert_int_eq(gs_json_validate(pool, copy, cases[i].len, GS_JSON_MAX_DEPTH, &err,
                                          NULL), APR_EINVAL);
    }
}
END_TEST

START_TEST(large_documents_are_linear)
{
    /* 20000 distinct keys in one object and 20000 small objects: both quick, and a duplicate
     * at the very end of the big object is still found */
    apr_size_t n = 20000, i;
    char *doc = apr_palloc(pool, n * 24 + 64), *o = doc;
    const char *err;

    *o++ = '{';
    for (i = 0; i < n; i++) {
        o += apr_snprintf(o, 24, "%s\"k%lu\":[{}]", i ? "," : "", (unsigned long)i);
    }
    *o++ = '}';
    ck_assert_int_eq(gs_json_validate(pool, doc, (apr_size_t)(o - doc), GS_JSON_MAX_DEPTH, &err,
                                      NULL), APR_SUCCESS);
    o--;
    o += apr_snprintf(o, 24, ",\"k%lu\":0}", (unsigned long)(n / 2));
    ck_assert_int_eq(gs_json_validate(pool, doc, (apr_size_t)(o - doc), GS_JSON_MAX_DEPTH, &err,
                                      NULL), APR_EINVAL);
    ck_assert_str_eq(err, "duplicate object key");
}
END_TEST

START_TEST(parse_refuses_what_validate_refuses)
{
    static const doc_t bad[] = {
        DOC("{\"x\":NaN}"), DOC("{\"x\":Infinity}"), DOC("{\"x\":\"\x01\"}"),
        DOC("{\"x\":\"\xff\xfe\xc0\xaf\"}"), DOC("{\"x\":\"\xed\xa0\x80\"}"),
        DOC("{\"x\":\"\\ud800\"}"), DOC("{\"x\":\"\\udc00\"}"), DOC("{\"x\":\"\\ud800\\u0041\"}"),
        DOC("{\"force_full\":1,\"force_full\":false}"),
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err = NULL;
        ck_assert_msg(gs_json_parse(pool, bad[i].doc, bad[i].len, &err) == NULL, "parsed %s",
                      bad[i].doc);
        ck_assert_ptr_nonnull(strstr(err, "(at byte "));
    }
}
END_TEST

START_TEST(parse_builds_what_validate_accepts)
{
    const char *err = NULL, *text;
    json_object *o, *v;

    o = gs_json_parse(pool, "12", 2, &err);
    ck_assert_msg(o != NULL, "%s", err);
    ck_assert_int_eq(json_object_get_int(o), 12);
    text = "{\"k\\u00e9\":\"\\ud83d\\ude00\"}";
    o = gs_json_parse(pool, text, strlen(text), &err);
    ck_assert_msg(o != NULL, "%s", err);
    ck_assert(json_object_object_get_ex(o, "k\xc3\xa9", &v));
    ck_assert_str_eq(json_object_get_string(v), "\xf0\x9f\x98\x80");
}
END_TEST

/* The member a large value is read from in place (a format=raw message's "raw"): found at the
 * top level only, as written between its quotes, its escapes undone in place. */
START_TEST(finds_a_top_level_member_where_it_is)
{
    const char *text = "{\"id\":\"a\",\"x\":{\"raw\":\"inner\"},\"raw\":\"QUJD\\u003d\\u003d\","
                       "\"n\":1}";
    static const char *const none[] = { "{\"x\":{\"raw\":\"inner\"}}", "{\"raw\":12}",
                                        "[\"raw\",\"raw\"]", "{}" };
    const char *err = NULL;
    gs_json_span_t span;
    char *copy;
    apr_size_t at = 0, i;

    ck_assert_int_eq(gs_json_validate_member(pool, text, strlen(text), GS_JSON_MAX_DEPTH, "raw",
                                             &span, &err, &at), APR_SUCCESS);
    ck_assert(span.found && span.escaped);
    ck_assert_uint_eq(span.len, 16);
    ck_assert(!strncmp(text + span.start, "QUJD\\u003d\\u003d\"", 17));
    copy = apr_pstrdup(pool, text);
    ck_assert_uint_eq(gs_json_unescape_in_place(copy + span.start, span.len), 6);
    ck_assert(!strncmp(copy + span.start, "QUJD==", 6));
    /* every escape, in place: the same as json-c's reading */
    text = "{\"raw\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u4e2d\\ud83d\\ude00z\"}";
    ck_assert_int_eq(gs_json_validate_member(pool, text, strlen(text), GS_JSON_MAX_DEPTH, "raw",
                                             &span, &err, &at), APR_SUCCESS);
    copy = apr_pstrdup(pool, text);
    copy[span.start + gs_json_unescape_in_place(copy + span.start, span.len)] = '\0';
    ck_assert_str_eq(copy + span.start, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80z");
    /* unescaped, a nested one, a value that is not a string, none, not an object */
    text = "{\"raw\":\"plain\"}";
    ck_assert_int_eq(gs_json_validate_member(pool, text, strlen(text), 4, "raw", &span, &err, &at),
                     APR_SUCCESS);
    ck_assert(span.found && !span.escaped && span.start == 8 && span.len == 5);
    for (i = 0; i < sizeof none / sizeof *none; i++) {
        ck_assert_int_eq(gs_json_validate_member(pool, none[i], strlen(none[i]), 4, "raw", &span,
                                                 &err, &at), APR_SUCCESS);
        ck_assert_msg(!span.found, "%s", none[i]);
    }
    /* the checks are gs_json_validate's: a duplicate raw is refused */
    text = "{\"raw\":\"a\",\"raw\":\"b\"}";
    ck_assert_int_eq(gs_json_validate_member(pool, text, strlen(text), 4, "raw", &span, &err, &at),
                     APR_EINVAL);
    ck_assert_str_eq(err, "duplicate object key");
}
END_TEST

Suite *gs_json_check_suite(void)
{
    Suite *s = suite_create("gs_json_check");
    TCase *tc = tcase_create("rfc8259");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, accepts_valid_documents);
    tcase_add_test(tc, refuses_invalid_documents);
    tcase_add_test(tc, names_the_problem_and_where);
    tcase_add_test(tc, does_not_read_past_the_length);
    tcase_add_test(tc, large_documents_are_linear);
    tcase_add_test(tc, parse_refuses_what_validate_refuses);
    tcase_add_test(tc, parse_builds_what_validate_accepts);
    tcase_add_test(tc, finds_a_top_level_member_where_it_is);
    suite_add_tcase(s, tc);
    return s;
}
