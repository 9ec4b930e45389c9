/* gs_search.c -- see gs_search.h */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_search.h"

typedef struct {
    apr_pool_t *p;
    const char *s, *end;     /* the query left to read */
    const char *config;
    apr_array_header_t *args;
    apr_array_header_t *marks;
    int terms, depth, trash_ok;
    /* the last word, phrase or field operator: its SQL and the same without COALESCE (see
     * parse_and) */
    const char *last_text, *last_strict, *last_walk;
    int last_first, last_n;  /* the placeholders of the last word, phrase or field atom */
    const char *strict;      /* the atoms every answer must match, on s alone (or NULL) */
    apr_array_header_t *strict_args;
    const char *err;
} parser_t;

/* Han characters, as gmailsync.search_cjk counts them (sql/012). */
static int is_han(apr_uint32_t c)
{
    return (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF)
           || (c >= 0xF900 && c <= 0xFAFF);
}

apr_size_t gs_search_utf8_char(const unsigned char *s, apr_size_t n, apr_uint32_t *cp)
{
    apr_size_t len, i;
    apr_uint32_t c;

    if (n == 0) {
        return 0;
    }
    if (s[0] < 0x80) {
        *cp = s[0];
        return s[0] ? 1 : 0;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        c = s[0] & 0x1F;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        c = s[0] & 0x0F;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        c = s[0] & 0x07;
    }
    else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) || (len == 4 && (c < 0x10000
                                                                               || c > 0x10FFFF))) {
        return 0;
    }
    *cp = c;
    return len;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The length of the blank at s (an ASCII one, or U+3000, the ideographic space Chinese and
 * Japanese keyboards type), or 0. */
static apr_size_t blank_at(const char *s, const char *end)
{
    if (s < end && is_blank(*s)) {
        return 1;
    }
    return end - s >= 3 && (unsigned char)s[0] == 0xE3 && (unsigned char)s[1] == 0x80
           && (unsigned char)s[2] == 0x80 ? 3 : 0;
}

static const char *arg(parser_t *ps, const char *value)
{
    APR_ARRAY_PUSH(ps->args, const char *) = value;
    return "%s";
}

static int fail(parser_t *ps, const char *msg)
{
    if (!ps->err) {
        ps->err = msg;
    }
    return 0;
}

/* Splits text into what the word parser reads (Han characters blanked) and the Han runs as the
 * index stores them: each run of two or more as its overlapping pairs, in order, a lone
 * character as itself. Either may come back empty. */
static void split_han(apr_pool_t *p, const char *text, const char **words, const char **han,
                      int *has_word)
{
    apr_size_t n = strlen(text), i = 0, len;
    char *w = apr_palloc(p, n + 1);
    apr_array_header_t *pairs = apr_array_make(p, 8, sizeof(const char *));
    const char *run = NULL, *prev = NULL;
    int run_len = 0;
    apr_uint32_t c;

    *has_word = 0;
    while (i <= n) {
        len = i < n ? gs_search_utf8_char((const unsigned char *)text + i, n - i, &c) : 0;
        if (i < n && len && is_han(c)) {
            memset(w + i, ' ', len);
            if (prev) {
                APR_ARRAY_PUSH(pairs, const char *) = apr_pstrmemdup(p, prev,
                    (apr_size_t)(text + i + len - prev));
            }
            else {
                run = text + i;
            }
            prev = text + i;
            run_len++;
            i += len;
            continue;
        }
        if (run && run_len == 1) {
            APR_ARRAY_PUSH(pairs, const char *) = apr_pstrmemdup(p, run,
                                                                 (apr_size_t)(text + i - run));
        }
        run = prev = NULL;
        run_len = 0;
        if (i == n) {
            break;
        }
        if (!len) {
            len = 1;
        }
        memcpy(w + i, text + i, len);
        if (len > 1 || apr_isalnum(text[i])) {
            *has_word = 1;
        }
        i += len;
    }
    w[n] = '\0';
    *words = w;
    *han = apr_array_pstrcat(p, pairs, ' ');
}

/* A word or a phrase against the text-search vector: NULL when it holds nothing to search. */
static const char *text_atom(parser_t *ps, const char *text, int phrase)
{
    const char *words, *han, *sql = NULL;
    int has_word;

    split_han(ps->p, text, &words, &han, &has_word);
    ps->last_first = ps->args->nelts;
    if (has_word) {
        /* (one placeholder after the other: their values are pushed in the same order) */
        arg(ps, ps->config);
        arg(ps, words);
        sql = phrase ? "phraseto_tsquery(%s::regconfig, %s)" : "plainto_tsquery(%s::regconfig, %s)";
    }
    if (*han) {
        const char *h = apr_pstrcat(ps->p, "phraseto_tsquery('simple', ", arg(ps, han), ")",
                                    NULL);
        sql = sql ? apr_pstrcat(ps->p, "(", sql, " && ", h, ")", NULL) : h;
    }
    if (!sql) {
        return NULL;
    }
    ps->last_n = ps->args->nelts - ps->last_first;
    ps->last_strict = apr_pstrcat(ps->p, "(s.doc @@ ", sql, ")", NULL);
    /* (@@ as the function behind it: no index can take it) */
    ps->last_walk = apr_pstrcat(ps->p, "ts_match_vq(s.doc, ", sql, ")", NULL);
    ps->last_text = apr_pstrcat(ps->p, "COALESCE(s.doc @@ ", sql, ", false)", NULL);
    return ps->last_text;
}

/* A LIKE pattern that finds value anywhere (its %, _ and \ taken literally). */
static const char *contains_pattern(apr_pool_t *p, const char *value)
{
    char *out = apr_palloc(p, strlen(value) * 2 + 3), *o = out;

    *o++ = '%';
    for (; *value; value++) {
        if (*value == '%' || *value == '_' || *value == '\\') {
            *o++ = '\\';
        }
        *o++ = *value;
    }
    *o++ = '%';
    *o = '\0';
    return out;
}

/* YYYY/MM/DD or YYYY-MM-DD (month and day of one or two digits) -> "YYYY-MM-DDT00:00:00Z". */
static const char *parse_date(apr_pool_t *p, const char *v)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y = 0, m = 0, d = 0, i, k;
    char sep;

    for (i = 0; i < 4; i++) {
        if (!apr_isdigit(v[i])) {
            return NULL;
        }
        y = y * 10 + (v[i] - '0');
    }
    sep = v[4];
    if (sep != '/' && sep != '-') {
        return NULL;
    }
    for (i = 5, k = 0; apr_isdigit(v[i]) && k < 2; i++, k++) {
        m = m * 10 + (v[i] - '0');
    }
    if (!k || v[i] != sep) {
        return NULL;
    }
    for (i++, k = 0; apr_isdigit(v[i]) && k < 2; i++, k++) {
        d = d * 10 + (v[i] - '0');
    }
    if (!k || v[i] || y < 1000 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]
        || (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
        return NULL;
    }
    return apr_psprintf(p, "%04d-%02d-%02dT00:00:00Z", y, m, d);
}

/* A whole number of 1 to 9 digits followed by one of `units` (or nothing when units has ""):
 * *n and the unit's index, or -1. */
static int parse_amount(const char *v, const char *const *units, long *n)
{
    int i, digits = 0;

    *n = 0;
    for (; apr_isdigit(*v) && digits < 10; v++, digits++) {
        *n = *n * 10 + (*v - '0');
    }
    if (!digits || digits > 9) {
        return -1;
    }
    for (i = 0; units[i]; i++) {
        if (!strcasecmp(v, units[i])) {
            return i;
        }
    }
    return -1;
}

static const char *const label_sql =
    "EXISTS (SELECT 1 FROM gmailsync.labels l WHERE l.user_id = m.user_id"
    " AND l.label_id = ANY (m.label_ids) AND (lower(l.name) = lower(%s)"
    " OR replace(lower(l.name), ' ', '-') = lower(%s)))";

/* An operator and its value: the SQL, NULL with ps->err on a bad one. */
static const char *operator_atom(parser_t *ps, const char *op, const char *v)
{
    apr_pool_t *p = ps->p;
    static const char *const fields[][2] = {
        { "from", "s.from_lc" }, { "to", "s.to_lc" }, { "cc", "s.cc_lc" },
        { "subject", "s.subject_lc" }, { "filename", "s.filenames_lc" }, { NULL, NULL } };
    static const char *const ages[] = { "d", "m", "y", NULL };
    static const char *const age_names[] = { " days", " months", " years" };
    static const char *const sizes[] = { "", "k", "m", NULL };
    static const long size_units[] = { 1, 1024, 1024 * 1024 };
    long n;
    int i;

    if (!*v) {
        fail(ps, apr_psprintf(p, "the operator %s: needs a value", op));
        return NULL;
    }
    for (i = 0; fields[i][0]; i++) {
        if (!strcmp(op, fields[i][0])) {
            /* fields_lc holds every field (the trigram index): it finds the candidates, the
             * field itself decides; at the top (parse_and) without COALESCE, as a word */
            const char *like = apr_pstrcat(p, "s.fields_lc LIKE lower(%s) AND ", fields[i][1],
                                           " LIKE lower(%s)", NULL);
            ps->last_first = ps->args->nelts;
            ps->last_n = 2;
            arg(ps, contains_pattern(p, v));
            arg(ps, contains_pattern(p, v));
            ps->last_strict = apr_pstrcat(p, "(", like, ")", NULL);
            ps->last_walk = apr_pstrcat(p, "(textlike(s.fields_lc, lower(%s)) AND textlike(",
                                        fields[i][1], ", lower(%s)))", NULL);
            ps->last_text = apr_pstrcat(p, "COALESCE(", like, ", false)", NULL);
            return ps->last_text;
        }
    }
    if (!strcmp(op, "label")) {
        arg(ps, v);
        arg(ps, v);
        return label_sql;
    }
    if (!strcmp(op, "has")) {
        if (!strcasecmp(v, "attachment") || !strcasecmp(v, "attachments")) {
            return "COALESCE(m.has_attachments, false)";
        }
    }
    else if (!strcmp(op, "is")) {
        if (!strcasecmp(v, "unread")) {
            return "('UNREAD' = ANY (m.label_ids))";
        }
        if (!strcasecmp(v, "starred")) {
            return "('STARRED' = ANY (m.label_ids))";
        }
    }
    else if (!strcmp(op, "in")) {
        static const char *const boxes[][2] = {
            { "inbox", "('INBOX' = ANY (m.label_ids))" }, { "sent", "('SENT' = ANY (m.label_ids))" },
            { "trash", "('TRASH' = ANY (m.label_ids))" }, { "spam", "('SPAM' = ANY (m.label_ids))" },
            { "anywhere", "true" }, { NULL, NULL } };
        for (i = 0; boxes[i][0]; i++) {
            if (!strcasecmp(v, boxes[i][0])) {
                if (i >= 2) {
                    ps->trash_ok = 1;
                }
                return boxes[i][1];
            }
        }
    }
    else if (!strcmp(op, "before") || !strcmp(op, "after")) {
        const char *d = parse_date(p, v);
        if (d) {
            return apr_pstrcat(p, "(m.internal_date ", *op == 'b' ? "<" : ">=", " ",
                               arg(ps, d), "::timestamptz)", NULL);
        }
        fail(ps, apr_psprintf(p, "%s:%s is not a date: write YYYY/MM/DD or YYYY-MM-DD", op, v));
        return NULL;
    }
    else if (!strcmp(op, "older_than") || !strcmp(op, "newer_than")) {
        if ((i = parse_amount(v, ages, &n)) >= 0 && n <= 100000) {
            return apr_pstrcat(p, "(m.internal_date ", *op == 'o' ? "<" : ">", " now() - ",
                               arg(ps, apr_psprintf(p, "%ld%s", n, age_names[i])),
                               "::interval)", NULL);
        }
        fail(ps, apr_psprintf(p, "%s:%s is not an age: write a number and d, m or y (7d)", op,
                              v));
        return NULL;
    }
    else if (!strcmp(op, "larger") || !strcmp(op, "smaller")) {
        if ((i = parse_amount(v, sizes, &n)) >= 0) {
            return apr_pstrcat(p, "(COALESCE(m.raw_size, m.size_estimate) ",
                               *op == 'l' ? ">" : "<", " ",
                               arg(ps, apr_psprintf(p, "%" APR_INT64_T_FMT,
                                                    (apr_int64_t)n * size_units[i])),
                               "::bigint)", NULL);
        }
        fail(ps, apr_psprintf(p, "%s:%s is not a size: write bytes, or a number with K or M",
                              op, v));
        return NULL;
    }
    else {
        fail(ps, apr_psprintf(p, "unknown operator %s: (known: from, to, cc, subject, label, "
                              "has, filename, is, in, before, after, older_than, newer_than, "
                              "larger, smaller)", op));
        return NULL;
    }
    fail(ps, apr_psprintf(p, "unknown value in %s:%s", op, v));
    return NULL;
}

static void skip_blanks(parser_t *ps)
{
    apr_size_t n;

    while ((n = blank_at(ps->s, ps->end))) {
        ps->s += n;
    }
}

/* A quoted string from ps->s (at the quote) to the next quote or the end. */
static const char *quoted(parser_t *ps)
{
    const char *start = ++ps->s, *q = memchr(start, '"', (apr_size_t)(ps->end - start));
    const char *stop = q ? q : ps->end;

    ps->s = q ? q + 1 : ps->end;
    return apr_pstrmemdup(ps->p, start, (apr_size_t)(stop - start));
}

static int ends_word(const char *s, const char *end)
{
    return blank_at(s, end) || *s == '(' || *s == ')' || *s == '"';
}

static const char *parse_and(parser_t *ps, const char **walk);

/* A term, "phrase", operator or ( group ); NULL with no ps->err: nothing to search. */
static const char *parse_primary(parser_t *ps, int negated, int *empty)
{
    const char *start, *colon, *word, *sql;

    *empty = 0;
    if (++ps->terms > GS_SEARCH_MAX_TERMS) {
        fail(ps, apr_psprintf(ps->p, "too many terms: at most %d", GS_SEARCH_MAX_TERMS));
        return NULL;
    }
    if (*ps->s == '(') {
        if (++ps->depth > GS_SEARCH_MAX_DEPTH) {
            fail(ps, apr_psprintf(ps->p, "parentheses nested too deep: at most %d",
                                  GS_SEARCH_MAX_DEPTH));
            return NULL;
        }
        ps->s++;
        sql = parse_and(ps, NULL);
        ps->depth--;
        skip_blanks(ps);
        if (ps->s < ps->end && *ps->s == ')') {
            ps->s++;
        }
        *empty = !sql && !ps->err;
        return sql;
    }
    if (*ps->s == '"') {
        word = quoted(ps);
        if (!negated && *word) {
            APR_ARRAY_PUSH(ps->marks, const char *) = word;
        }
        sql = text_atom(ps, word, 1);
        *empty = !sql;
        return sql;
    }
    start = ps->s;
    while (ps->s < ps->end && !ends_word(ps->s, ps->end) && *ps->s != ':') {
        ps->s++;
    }
    colon = ps->s < ps->end && *ps->s == ':' ? ps->s : NULL;
    if (colon && colon > start) {
        const char *op = apr_pstrmemdup(ps->p, start, (apr_size_t)(colon - start)), *v;
        const char *c;

        for (c = op; *c && (apr_islower(*c) || *c == '_'); c++) {
        }
        if (!*c) {
            ps->s = colon + 1;
            if (ps->s < ps->end && *ps->s == '"') {
                v = quoted(ps);
            }
            else {
                const char *vs = ps->s;
                while (ps->s < ps->end && !ends_word(ps->s, ps->end)) {
                    ps->s++;
                }
                v = apr_pstrmemdup(ps->p, vs, (apr_size_t)(ps->s - vs));
            }
            return operator_atom(ps, op, v);
        }
    }
    while (ps->s < ps->end && !ends_word(ps->s, ps->end)) {
        ps->s++;
    }
    word = apr_pstrmemdup(ps->p, start, (apr_size_t)(ps->s - start));
    if (!negated && *word) {
        APR_ARRAY_PUSH(ps->marks, const char *) = word;
    }
    sql = text_atom(ps, word, 0);
    *empty = !sql;
    return sql;
}

static const char *parse_unary(parser_t *ps, int *empty)
{
    const char *sql;

    if (*ps->s == '-' && ps->s + 1 < ps->end && !blank_at(ps->s + 1, ps->end)
        && ps->s[1] != ')') {
        ps->s++;
        sql = parse_primary(ps, 1, empty);
        return sql ? apr_pstrcat(ps->p, "NOT ", sql, NULL) : NULL;
    }
    return parse_primary(ps, 0, empty);
}

static int at_or(parser_t *ps)
{
    return ps->end - ps->s >= 2 && ps->s[0] == 'O' && ps->s[1] == 'R'
           && (ps->end - ps->s == 2 || blank_at(ps->s + 2, ps->end) || ps->s[2] == '('
               || ps->s[2] == '"');
}

/* unary (OR unary)*: an alternative that holds nothing to search is left out (it pushed no
 * value); NULL (*empty) when every one is. */
static const char *parse_or(parser_t *ps, int *empty)
{
    const char *sql = parse_unary(ps, empty), *next;
    int e;

    for (;;) {
        const char *save = ps->s;
        if (ps->err) {
            return NULL;
        }
        skip_blanks(ps);
        if (!at_or(ps)) {
            ps->s = save;
            break;
        }
        ps->s += 2;
        skip_blanks(ps);
        if (ps->s >= ps->end || *ps->s == ')') {
            break;    /* a trailing OR: nothing to join */
        }
        next = parse_unary(ps, &e);
        if (next) {
            sql = sql ? apr_pstrcat(ps->p, "(", sql, " OR ", next, ")", NULL) : next;
        }
    }
    *empty = !sql;
    return sql;
}

/* The terms of one AND; *walk (when asked for) gets the same with its strict atoms in a form no
 * index can take, for the plan that walks the newest messages (gs_search_t). */
static const char *parse_and(parser_t *ps, const char **walk)
{
    const char *sql = NULL, *sql_walk = NULL, *next, *next_walk;
    int empty;

    for (;;) {
        skip_blanks(ps);
        if (ps->s >= ps->end || *ps->s == ')' || ps->err) {
            break;
        }
        if (at_or(ps)) {
            ps->s += 2;    /* a leading OR: nothing to join */
            continue;
        }
        next = next_walk = parse_or(ps, &empty);
        if (ps->err) {
            return NULL;
        }
        /* a word, phrase or field every answer must match (not negated, not in an OR): without
         * COALESCE, which makes the outer join to message_search an inner one, so that the
         * planner can start from its GIN index (a message without a row matches no word) */
        if (next && ps->depth == 0 && next == ps->last_text) {
            int k;

            next = ps->last_strict;
            next_walk = ps->last_walk;
            /* and the same again on its own, for the capped look-up of the candidates
             * (mod_gmailsync_search.c) */
            ps->strict = ps->strict ? apr_pstrcat(ps->p, ps->strict, " AND ", next, NULL) : next;
            for (k = 0; k < ps->last_n; k++) {
                APR_ARRAY_PUSH(ps->strict_args, const char *) =
                    APR_ARRAY_IDX(ps->args, ps->last_first + k, const char *);
            }
        }
        if (next) {
            sql = sql ? apr_pstrcat(ps->p, sql, " AND ", next, NULL) : next;
            sql_walk = sql_walk ? apr_pstrcat(ps->p, sql_walk, " AND ", next_walk, NULL)
                                : next_walk;
        }
    }
    if (walk) {
        *walk = sql_walk;
    }
    return sql;
}

/* The expression (NULL: none) and the trash and spam left out unless asked for. */
static const char *with_folders(apr_pool_t *p, const char *expr, int trash_ok)
{
    return apr_pstrcat(p, expr ? "(" : "", expr ? expr : "", expr ? ") AND " : "",
                       trash_ok ? "true" : "NOT (m.label_ids && ARRAY['TRASH', 'SPAM']::text[])",
                       NULL);
}

gs_search_t *gs_search_compile(apr_pool_t *p, const char *q, apr_size_t len, const char *config,
                               const char **err)
{
    parser_t ps;
    gs_search_t *out;
    const char *sql, *sql_walk, *where, *walk = NULL;
    apr_size_t i, n;
    apr_uint32_t c;

    if (len > GS_SEARCH_MAX_BYTES) {
        *err = apr_psprintf(p, "the query is too long: at most %d bytes", GS_SEARCH_MAX_BYTES);
        return NULL;
    }
    for (i = 0; i < len; i += n) {
        if (!(n = gs_search_utf8_char((const unsigned char *)q + i, len - i, &c))) {
            *err = q[i] ? "the query is not valid UTF-8" : "the query holds a NUL character";
            return NULL;
        }
    }
    memset(&ps, 0, sizeof ps);
    ps.p = p;
    ps.s = q;
    ps.end = q + len;
    ps.config = config;
    ps.args = apr_array_make(p, 8, sizeof(const char *));
    ps.marks = apr_array_make(p, 4, sizeof(const char *));
    ps.strict_args = apr_array_make(p, 4, sizeof(const char *));
    where = NULL;
    while (ps.s < ps.end) {
        sql = parse_and(&ps, &sql_walk);
        if (ps.err) {
            *err = ps.err;
            return NULL;
        }
        if (sql) {
            where = where ? apr_pstrcat(p, where, " AND ", sql, NULL) : sql;
            walk = walk ? apr_pstrcat(p, walk, " AND ", sql_walk, NULL) : sql_walk;
        }
        if (ps.s < ps.end && *ps.s == ')') {
            ps.s++;     /* an unmatched ): ignored, as Gmail does */
        }
    }
    out = apr_pcalloc(p, sizeof *out);
    out->args = ps.args;
    out->marks = ps.marks;
    out->terms = ps.terms;
    out->strict = ps.strict;
    out->strict_args = ps.strict_args;
    out->where = with_folders(p, where, ps.trash_ok);
    out->walk = with_folders(p, walk, ps.trash_ok);
    return out;
}
