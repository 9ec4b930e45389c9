/* test_search.c -- the query language (gs_search): what each query compiles to, that no value
 * of the query reaches the SQL, the errors, the bounds, highlights and cursors. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_search.h"
#include "gs_store.h"
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

static const gs_search_t *ok(const char *q)
{
    const char *err = NULL;
    const gs_search_t *s = gs_search_compile(pool, q, strlen(q), "english", &err);

    ck_assert_msg(s != NULL, "%s: %s", q, err ? err : "?");
    return s;
}

static const char *bad(const char *q, apr_size_t len)
{
    const char *err = NULL;
    const gs_search_t *s = gs_search_compile(pool, q, len, "simple", &err);

    ck_assert_msg(s == NULL, "%s compiled", q);
    ck_assert_ptr_nonnull(err);
    return err;
}

static int placeholders(const char *sql)
{
    int n = 0;

    for (; (sql = strstr(sql, "%s")); sql += 2) {
        n++;
    }
    return n;
}

static const char *argv_at(const gs_search_t *s, int i)
{
    ck_assert_int_lt(i, s->args->nelts);
    return APR_ARRAY_IDX(s->args, i, const char *);
}

START_TEST(no_query_is_everything_but_trash_and_spam)
{
    const gs_search_t *s = ok("");

    ck_assert_str_eq(s->where, "NOT (m.label_ids && ARRAY['TRASH', 'SPAM']::text[])");
    ck_assert_int_eq(s->args->nelts, 0);
    ck_assert_str_eq(ok("   \t ")->where, s->where);
    ck_assert_str_eq(ok("in:anywhere")->where, "(true) AND true");
    ck_assert_str_eq(ok("in:trash")->where, "(('TRASH' = ANY (m.label_ids))) AND true");
}
END_TEST

START_TEST(words_phrases_or_and_negation)
{
    const gs_search_t *s = ok("report");

    ck_assert_str_eq(s->where, "((s.doc @@ plainto_tsquery(%s::regconfig, %s)))"
                     " AND NOT (m.label_ids && ARRAY['TRASH', 'SPAM']::text[])");
    ck_assert_str_eq(argv_at(s, 0), "english");
    ck_assert_str_eq(argv_at(s, 1), "report");
    s = ok("\"exact words\" -spam a OR b");
    ck_assert_ptr_nonnull(strstr(s->where, "phraseto_tsquery(%s::regconfig, %s)"));
    ck_assert_ptr_nonnull(strstr(s->where, "NOT COALESCE(s.doc @@ plainto_tsquery"));
    ck_assert_ptr_nonnull(strstr(s->where, " OR "));
    ck_assert_int_eq(placeholders(s->where), s->args->nelts);
    ck_assert_str_eq(argv_at(s, 1), "exact words");
    ck_assert_str_eq(argv_at(s, 3), "spam");
    /* the marks: what is not negated */
    ck_assert_int_eq(s->marks->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(s->marks, 0, const char *), "exact words");
    ck_assert_str_eq(APR_ARRAY_IDX(s->marks, 1, const char *), "a");
    /* OR binds tighter than AND */
    s = ok("a OR b c");
    ck_assert_ptr_nonnull(strstr(s->where, "((COALESCE(s.doc @@ plainto_tsquery(%s::regconfig, %s),"
                                 " false) OR COALESCE(s.doc @@ plainto_tsquery(%s::regconfig, %s),"
                                 " false)) AND (s.doc @@ plainto_tsquery"));
    /* inside a group, an OR or a negation: COALESCE (a message without a search row is NULL) */
    ck_assert_ptr_nonnull(strstr(ok("-a")->where, "NOT COALESCE(s.doc @@"));
    ck_assert_ptr_null(strstr(ok("(a)")->where, "COALESCE(s.doc @@"));
    /* a lower-case or is a word; a lone OR or - is nothing */
    ck_assert_int_eq(ok("a or b")->args->nelts, 6);
    ck_assert_int_eq(ok("OR")->args->nelts, 0);
    ck_assert_int_eq(ok("- !!! ()")->args->nelts, 0);
}
END_TEST

START_TEST(han_runs_become_pairs)
{
    const gs_search_t *s = ok("会议纪要");

    ck_assert_ptr_nonnull(strstr(s->where, "phraseto_tsquery('simple', %s)"));
    ck_assert_int_eq(s->args->nelts, 1);
    ck_assert_str_eq(argv_at(s, 0), "会议 议纪 纪要");
    s = ok("会");
    ck_assert_str_eq(argv_at(s, 0), "会");
    /* mixed: the words and the pairs, both */
    s = ok("Gmail邮件");
    ck_assert_int_eq(s->args->nelts, 3);
    ck_assert_str_eq(argv_at(s, 1), "Gmail      ");   /* each Han byte blanked */
    ck_assert_str_eq(argv_at(s, 2), "邮件");
    /* the ideographic space separates words */
    s = ok("会议\xe3\x80\x80纪要");
    ck_assert_int_eq(s->args->nelts, 2);
    ck_assert_str_eq(argv_at(s, 1), "纪要");
    s = ok("\"中文 邮件\"");
    ck_assert_str_eq(argv_at(s, 0), "中文 邮件");
}
END_TEST

START_TEST(operators)
{
    const gs_search_t *s = ok("from:Bob@Example.com");

    ck_assert_ptr_nonnull(strstr(s->where, "(s.fields_lc LIKE lower(%s) AND s.from_lc LIKE"
                                 " lower(%s))"));
    ck_assert_str_eq(argv_at(s, 0), "%Bob@Example.com%");
    ck_assert_str_eq(argv_at(s, 1), "%Bob@Example.com%");
    ck_assert_ptr_nonnull(strstr(ok("-from:x")->where, "NOT COALESCE(s.fields_lc LIKE"));
    ck_assert_str_eq(argv_at(ok("subject:100%_off\\"), 0), "%100\\%\\_off\\\\%");
    s = ok("label:\"My label\" has:attachment is:unread is:starred in:inbox in:sent");
    ck_assert_str_eq(argv_at(s, 0), "My label");
    ck_assert_ptr_nonnull(strstr(s->where, "COALESCE(m.has_attachments, false)"));
    ck_assert_ptr_nonnull(strstr(s->where, "'UNREAD' = ANY"));
    ck_assert_ptr_nonnull(strstr(s->where, "'STARRED' = ANY"));
    ck_assert_ptr_nonnull(strstr(s->where, "'SENT' = ANY"));
    s = ok("before:2024/2/29 after:2023-12-01");
    ck_assert_str_eq(argv_at(s, 0), "2024-02-29T00:00:00Z");
    ck_assert_str_eq(argv_at(s, 1), "2023-12-01T00:00:00Z");
    s = ok("older_than:7d newer_than:2Y older_than:3m");
    ck_assert_str_eq(argv_at(s, 0), "7 days");
    ck_assert_str_eq(argv_at(s, 1), "2 years");
    ck_assert_str_eq(argv_at(s, 2), "3 months");
    s = ok("larger:10K smaller:2M larger:100");
    ck_assert_str_eq(argv_at(s, 0), "10240");
    ck_assert_str_eq(argv_at(s, 1), "2097152");
    ck_assert_str_eq(argv_at(s, 2), "100");
    s = ok("filename:报告.pdf cc:carol to:\"a b\"");
    ck_assert_str_eq(argv_at(s, 0), "%报告.pdf%");
    ck_assert_str_eq(argv_at(s, 4), "%a b%");
    /* an upper-case or digit prefix is not an operator: a word (10:30, HTTP:) */
    ck_assert_int_eq(ok("10:30")->args->nelts, 2);
}
END_TEST

START_TEST(errors_name_what_is_wrong)
{
    static const struct { const char *q; apr_size_t len; const char *says; } cases[] = {
        { "foo:bar", 7, "unknown operator foo:" }, { "x http://a", 10, "unknown operator http:" },
        { "is:important", 12, "is:important" }, { "in:drafts", 9, "in:drafts" },
        { "has:drive", 9, "has:drive" }, { "before:2023/02/29", 17, "before:2023/02/29" },
        { "after:yesterday", 15, "after:yesterday" }, { "older_than:7w", 13, "older_than:7w" },
        { "larger:10G", 10, "larger:10G" }, { "larger:99999999999", 18, "larger:" },
        { "from:", 5, "from: needs a value" }, { "a\0b", 3, "NUL" },
        { "caf\xe9", 4, "UTF-8" },
        { "\xed\xa0\x80", 3, "UTF-8" },      /* a surrogate */
        { "\xc0\xaf", 2, "UTF-8" } };        /* overlong */
    apr_size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = bad(cases[i].q, cases[i].len);
        ck_assert_msg(strstr(err, cases[i].says) != NULL, "%s: %s", cases[i].q, err);
    }
}
END_TEST

START_TEST(bounds)
{
    char *big = apr_palloc(pool, GS_SEARCH_MAX_BYTES + 2);
    const char *many = "";
    int i;

    memset(big, 'a', GS_SEARCH_MAX_BYTES + 1);
    big[GS_SEARCH_MAX_BYTES + 1] = '\0';
    ck_assert_ptr_nonnull(strstr(bad(big, GS_SEARCH_MAX_BYTES + 1), "too long"));
    big[GS_SEARCH_MAX_BYTES] = '\0';
    ok(big);
    for (i = 0; i < GS_SEARCH_MAX_TERMS; i++) {
        many = apr_pstrcat(pool, many, "w ", NULL);
    }
    ok(many);
    many = apr_pstrcat(pool, many, "w", NULL);
    ck_assert_ptr_nonnull(strstr(bad(many, strlen(many)), "too many terms"));
    ck_assert_ptr_nonnull(strstr(bad("((((((((((a))))))))))", 21), "too deep"));
    ok("(((a)))");
    ok("a) b ( c");
    ok("\"unterminated");
}
END_TEST

START_TEST(no_query_text_in_the_sql)
{
    static const char *const hostile[] = {
        "'; DROP TABLE gmailsync.messages; --", "from:\"x') OR true --\"", "%s %d $1 \\",
        "label:'", "subject:\"%%\"", "\"a\\\" OR 1=1\"", "-(-(-x))", "label:' OR ''='",
        "(from:a OR !!!) OR - OR (-) ''" };
    apr_size_t i;

    for (i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const gs_search_t *s = ok(hostile[i]);
        ck_assert_int_eq(placeholders(s->where), s->args->nelts);
        ck_assert_msg(!strstr(s->where, "DROP") && !strstr(s->where, "1=1")
                      && !strstr(s->where, "$1") && !strstr(s->where, "--"), "%s", s->where);
    }
}
END_TEST

START_TEST(config_names)
{
    ck_assert(gs_search_config_valid("simple"));
    ck_assert(gs_search_config_valid("pg_catalog.english"));
    ck_assert(gs_search_config_valid("_x1"));
    ck_assert(!gs_search_config_valid(""));
    ck_assert(!gs_search_config_valid("1x"));
    ck_assert(!gs_search_config_valid("a.b.c"));
    ck_assert(!gs_search_config_valid("a."));
    ck_assert(!gs_search_config_valid("simple; DROP"));
    ck_assert(!gs_search_config_valid("\"Quoted\""));
    ck_assert(!gs_search_config_valid(NULL));
}
END_TEST

static const char *segments(const char *snippet, const char *q)
{
    const gs_search_t *s = ok(q);
    apr_array_header_t *segs = gs_search_highlight(pool, snippet, s->marks);
    const char *out = "";
    int i;

    for (i = 0; i < segs->nelts; i++) {
        const gs_search_segment_t *g = &APR_ARRAY_IDX(segs, i, gs_search_segment_t);
        out = apr_pstrcat(pool, out, g->match ? "[" : "", g->text, g->match ? "]" : "", NULL);
    }
    return out;
}

START_TEST(highlights)
{
    ck_assert_str_eq(segments("The Report and reports, a preport", "report"),
                     "The [Report] and [report]s, a preport");
    ck_assert_str_eq(segments("请看会议纪要和会议", "会议"), "请看[会议]纪要和[会议]");
    ck_assert_str_eq(segments("made made schedule all", "\"made schedule\" -all"),
                     "made [made schedule] all");
    ck_assert_str_eq(segments("nothing here", "from:x"), "nothing here");
    ck_assert_str_eq(segments("", "x"), "");
}
END_TEST

START_TEST(cursors)
{
    const char *c = gs_search_cursor_make(pool, "1710281116329000", "18e34b2caa9b335c");
    const char *d = NULL, *id = NULL;

    ck_assert(gs_search_cursor_parse(pool, c, &d, &id));
    ck_assert_str_eq(d, "1710281116329000");
    ck_assert_str_eq(id, "18e34b2caa9b335c");
    c = gs_search_cursor_make(pool, NULL, "abc");
    ck_assert(gs_search_cursor_parse(pool, c, &d, &id));
    ck_assert_ptr_null(d);
    ck_assert_str_eq(id, "abc");
    c = gs_search_cursor_make(pool, "-5", "x_y-z");
    ck_assert(gs_search_cursor_parse(pool, c, &d, &id));
    ck_assert_str_eq(d, "-5");
    ck_assert(!gs_search_cursor_parse(pool, "", &d, &id));
    ck_assert(!gs_search_cursor_parse(pool, "!!!", &d, &id));
    ck_assert(!gs_search_cursor_parse(pool, "MTox", &d, &id));          /* "1:1" */
    ck_assert(!gs_search_cursor_parse(pool, "MjoxOmE", &d, &id));       /* "2:1:a" */
    ck_assert(!gs_search_cursor_parse(pool, "MTp4OmE", &d, &id));       /* "1:x:a" */
    ck_assert(!gs_search_cursor_parse(pool, "MToxOic7", &d, &id));      /* "1:1:';" */
}
END_TEST

/* the worker indexes with gmailsync.search_refresh(config, users text[], ids text[]): a user id
 * with quotes and backslashes (test_security's) must stay one element of the array literal */
START_TEST(text_array_literals_quote_any_user_id)
{
    const char *ids[3] = { "sqli-2-\" OR 1=1 --", "back\\slash", "18c0ffee" };

    ck_assert_str_eq(gs_store_text_array(pool, ids, 3),
                     "{\"sqli-2-\\\" OR 1=1 --\",\"back\\\\slash\",\"18c0ffee\"}");
    ck_assert_str_eq(gs_store_text_array(pool, ids, 0), "{}");
}
END_TEST

Suite *gs_search_suite(void)
{
    Suite *s = suite_create("gs_search");
    TCase *tc = tcase_create("queries");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, no_query_is_everything_but_trash_and_spam);
    tcase_add_test(tc, words_phrases_or_and_negation);
    tcase_add_test(tc, han_runs_become_pairs);
    tcase_add_test(tc, text_array_literals_quote_any_user_id);
    tcase_add_test(tc, operators);
    tcase_add_test(tc, errors_name_what_is_wrong);
    tcase_add_test(tc, bounds);
    tcase_add_test(tc, no_query_text_in_the_sql);
    tcase_add_test(tc, config_names);
    tcase_add_test(tc, highlights);
    tcase_add_test(tc, cursors);
    suite_add_tcase(s, tc);
    return s;
}
