/* fuzz_query.c -- the search query language (gs_search_compile), its highlights and cursors.
 * Input: "query\nsnippet". Oracles: a compiled query has exactly as many placeholders as
 * values and holds no byte of the query (only the fixed text gs_search.c writes: lower-case
 * SQL, so no upper-case letter of the input can appear unless the fixed text has it); the
 * highlight's segments put together are the snippet; a cursor made parses back. */
#include "fuzz.h"
#include "gs_search.h"

static const char *const fixed_words[] = {
    "COALESCE", "NOT", "OR", "AND", "ARRAY", "TRASH", "SPAM", "INBOX", "SENT", "UNREAD",
    "STARRED", "EXISTS", "SELECT", "FROM", "WHERE", "ANY", "LIKE", NULL };

/* sql has exactly nargs placeholders and no upper-case word but the fixed ones: the query's
 * text never reaches the SQL */
static void check_sql(const char *sql, int nargs)
{
    const char *s;
    size_t n = 0, i;

    for (s = sql; (s = strstr(s, "%s")); s += 2) {
        n++;
    }
    if (n != (size_t)nargs) {
        abort();
    }
    for (s = sql; *s; s++) {
        if (*s >= 'A' && *s <= 'Z' && (s == sql || !(s[-1] >= 'A' && s[-1] <= 'Z'))) {
            int known = 0;
            for (i = 0; fixed_words[i]; i++) {
                size_t w = strlen(fixed_words[i]);
                if (!strncmp(s, fixed_words[i], w) && !(s[w] >= 'A' && s[w] <= 'Z')) {
                    known = 1;
                }
            }
            if (!known) {
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *text = fuzz_cstr(p, data, size), *snippet = fuzz_split(text);
    const char *err = NULL, *d = NULL, *id = NULL;
    const gs_search_t *q;
    apr_array_header_t *segs;
    size_t i, len = 0;

    q = gs_search_compile(p, (const char *)data, size, "simple", &err);
    if (q) {
        /* the plan that walks takes the same values as where; the candidates' look-up its own */
        check_sql(q->where, q->args->nelts);
        check_sql(q->walk, q->args->nelts);
        if (q->strict) {
            check_sql(q->strict, q->strict_args->nelts);
        }
        else if (q->strict_args->nelts) {
            abort();
        }
        segs = gs_search_highlight(p, snippet, q->marks);
        for (i = 0; i < (size_t)segs->nelts; i++) {
            const gs_search_segment_t *g = &APR_ARRAY_IDX(segs, i, gs_search_segment_t);
            if (strncmp(snippet + len, g->text, strlen(g->text))) {
                abort();
            }
            len += strlen(g->text);
        }
        if (len != strlen(snippet)) {
            abort();
        }
    }
    else if (!err) {
        abort();
    }
    (void)gs_search_cursor_parse(p, text, &d, &id);
    if (gs_search_cursor_parse(p, gs_search_cursor_make(p, "123", "abc"), &d, &id) != 1
        || strcmp(d, "123") || strcmp(id, "abc")) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
