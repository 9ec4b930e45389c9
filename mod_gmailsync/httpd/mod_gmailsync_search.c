/* mod_gmailsync_search.c -- the owner's mailbox, searched (issue 24, sql/012):
 *   GET|HEAD {prefix}/messages?q=QUERY&limit=N&cursor=C
 * The user's messages matching QUERY (gs_search.h; none: every message but the trash and spam),
 * newest first (internal date, then Gmail id, both descending; a message without a date, which
 * Gmail always gives, first), at most N (1-100, default 50):
 *   {"messages": [{"id","thread_id","date","from","subject","snippet","highlight","labels",
 *                  "has_attachments","unread","starred"}], "next_cursor": C or null}
 * C is opaque: the position after the page's last message (keyset pagination, stable while
 * messages arrive). A bad query or cursor is a 400 problem naming what is wrong; a query the
 * database cannot answer within the time box (GS_SEARCH_TIMEBOX_MS, statement_timeout of its
 * transaction) is a 422 problem, never a 5xx.
 *   GET|HEAD {prefix}/labels
 * The user's labels as the last sync saw them: {"labels": [{"id","name","type","messages"}]}.
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_script.h>

#include "gs_config.h"
#include "gs_db.h"
#include "gs_json.h"
#include "gs_log.h"
#include "gs_search.h"
#include "gs_sha256.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_SEARCH_DEFAULT_LIMIT 50
#define GS_SEARCH_MAX_LIMIT     100
/* No search runs longer than this inside PostgreSQL (a request answers within a second). */
#define GS_SEARCH_TIMEBOX_MS    "800"

/* The page query: the ids of the page first (the innermost query, around the compiled
 * expression), then their columns, so that the sender and the label names are looked up for
 * the page's messages only. Placeholders of the ids: user, the cursor (present, date us, id,
 * date us, date us, id), then the expression's own, then the limit. */
#define SEARCH_PAGE_HEAD \
    "SELECT m.gmail_id, m.thread_id," \
    " to_char(m.internal_date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')," \
    " (extract(epoch FROM m.internal_date) * 1000000)::bigint::text," \
    " COALESCE(fa.name, NULLIF(btrim(split_part(m.from_addr, '<', 1), ' \"'), ''))," \
    " COALESCE(fa.address, substring(m.from_addr FROM '<([^<>]*)>'), m.from_addr)," \
    " m.subject, m.snippet," \
    " (SELECT json_agg(COALESCE(l.name, x.id) ORDER BY x.n)" \
    "    FROM unnest(m.label_ids) WITH ORDINALITY AS x(id, n)" \
    "    LEFT JOIN gmailsync.labels l ON l.user_id = m.user_id AND l.label_id = x.id)::text," \
    " COALESCE(m.has_attachments, false)::text, ('UNREAD' = ANY (m.label_ids))::text," \
    " ('STARRED' = ANY (m.label_ids))::text" \
    " FROM ("
#define SEARCH_PAGE_TAIL \
    ") p JOIN gmailsync.messages m ON m.user_id = p.user_id AND m.gmail_id = p.gmail_id" \
    " LEFT JOIN LATERAL (SELECT a.name, a.address FROM gmailsync.message_addresses a" \
    "   WHERE a.user_id = m.user_id AND a.gmail_id = m.gmail_id AND a.role = 'from'" \
    "   ORDER BY a.position LIMIT 1) fa ON true" \
    " ORDER BY m.internal_date DESC, m.gmail_id DESC"
#define SEARCH_IDS "SELECT m.user_id, m.gmail_id, m.internal_date"
#define SEARCH_WHERE \
    " LEFT JOIN gmailsync.message_search s ON s.user_id = m.user_id AND s.gmail_id = m.gmail_id" \
    " WHERE m.user_id = %s AND m.deleted_at IS NULL" \
    " AND (%s::text IS NULL OR CASE WHEN %s::bigint IS NULL" \
    "   THEN m.internal_date IS NOT NULL OR m.gmail_id < %s" \
    "   ELSE m.internal_date < 'epoch'::timestamptz + %s::bigint * interval '1 microsecond'" \
    "     OR (m.internal_date = 'epoch'::timestamptz + %s::bigint * interval '1 microsecond'" \
    "         AND m.gmail_id < %s) END)" \
    " AND ("
/* (internal_date DESC puts NULL first, as the index messages_user_internal_date has it: the
 * newest page is the first entries of that index) */
#define SEARCH_ORDER ") ORDER BY m.internal_date DESC, m.gmail_id DESC LIMIT %s::integer"
#define SEARCH_PLAIN SEARCH_PAGE_HEAD SEARCH_IDS " FROM gmailsync.messages m" SEARCH_WHERE

/* A query with words, phrases or field values that every answer must match (gs_search_t's
 * strict) runs one of two plans, chosen at run time by how many messages match those: the
 * planner cannot know, as it estimates every word outside its statistics at the same share.
 * The candidates are looked up in the GIN indexes, at most GS_SEARCH_CAP + 1 of them. If there
 * are at most GS_SEARCH_CAP, only they are joined and sorted (a rare word: a walk through the
 * newest messages would read the whole mailbox to find a few); else the newest messages are
 * walked, testing each, until the page is full (a frequent word: a short walk, where sorting
 * every match would not be), with the expression in its walking form (gs_search_t's walk), so
 * that the planner does not take the GIN index again. The branch not taken is never run (its
 * one-time filter is false). Placeholders: user and strict's own, then the ids' twice. */
#define GS_SEARCH_CAP "2000"
#define SEARCH_CAPPED_HEAD \
    "WITH c AS MATERIALIZED (SELECT s.gmail_id FROM gmailsync.message_search s" \
    "   WHERE s.user_id = %s AND "
#define SEARCH_CAPPED_FEW \
    " LIMIT " GS_SEARCH_CAP " + 1)," \
    " k AS MATERIALIZED (SELECT count(*) > " GS_SEARCH_CAP " AS many FROM c) " SEARCH_PAGE_HEAD \
    "(" SEARCH_IDS " FROM c JOIN gmailsync.messages m ON m.gmail_id = c.gmail_id" SEARCH_WHERE \
    "NOT (SELECT many FROM k)) AND ("
#define SEARCH_CAPPED_MANY \
    ") UNION ALL (" SEARCH_IDS " FROM gmailsync.messages m" SEARCH_WHERE \
    "(SELECT many FROM k)) AND ("

static int bad_request(request_rec *r, const char *detail)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=search.bad_request reason=\"%s\"",
                  gs_log_value(r->pool, detail));
    return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-request", detail);
}

static int database_unavailable(request_rec *r, gs_db_t *db)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=search.db_error reason=\"%s\"",
                  gs_log_value(r->pool, db && db->last_error ? db->last_error : "no connection"));
    return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
}

/* One value of the query string, percent-decoded with its length (it may hold a NUL): 0 when
 * absent, -1 when malformed, else 1. A name given twice is refused (-1). */
static int query_value(request_rec *r, const char *name, const char **value, apr_size_t *len)
{
    const char *a = r->args, *amp;
    apr_size_t nlen = strlen(name);
    int found = 0;

    *value = NULL;
    *len = 0;
    while (a && *a) {
        amp = ap_strchr_c(a, '&');
        if (!strncmp(a, name, nlen) && (a[nlen] == '=' || a[nlen] == '&' || !a[nlen])) {
            const char *v = a[nlen] == '=' ? a + nlen + 1 : a + nlen;
            apr_size_t vlen = amp ? (apr_size_t)(amp - v) : strlen(v), i, o = 0;
            char *out = apr_palloc(r->pool, vlen + 1);

            if (found++) {
                return -1;
            }
            for (i = 0; i < vlen; i++) {
                if (v[i] == '+') {
                    out[o++] = ' ';
                }
                else if (v[i] == '%') {
                    if (i + 2 >= vlen || !apr_isxdigit(v[i + 1]) || !apr_isxdigit(v[i + 2])) {
                        return -1;
                    }
                    out[o++] = (char)((apr_isdigit(v[i + 1]) ? v[i + 1] - '0'
                                       : (apr_tolower(v[i + 1]) - 'a' + 10)) * 16
                                      + (apr_isdigit(v[i + 2]) ? v[i + 2] - '0'
                                         : (apr_tolower(v[i + 2]) - 'a' + 10)));
                    i += 2;
                }
                else {
                    out[o++] = v[i];
                }
            }
            out[o] = '\0';
            *value = out;
            *len = o;
        }
        a = amp ? amp + 1 : NULL;
    }
    return found;
}

/* Gmail's snippets are HTML-escaped: the text itself. */
static const char *unescape_snippet(apr_pool_t *p, const char *s)
{
    static const char *const names[][2] = { { "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" },
                                            { "&quot;", "\"" }, { "&#39;", "'" }, { NULL, NULL } };
    char *out = apr_palloc(p, strlen(s) + 1), *o = out;
    int i;

    while (*s) {
        if (*s == '&') {
            for (i = 0; names[i][0]; i++) {
                apr_size_t n = strlen(names[i][0]);
                if (!strncmp(s, names[i][0], n)) {
                    *o++ = names[i][1][0];
                    s += n;
                    break;
                }
            }
            if (names[i][0]) {
                continue;
            }
        }
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

static json_object *message_json(apr_pool_t *p, const gs_db_rows_t *rows, int i,
                                 const gs_search_t *q, int has_query)
{
    json_object *o = json_object_new_object(), *labels, *hl = json_object_new_array();
    const char *snippet = unescape_snippet(p, gs_db_cell(rows, i, 7) ? gs_db_cell(rows, i, 7)
                                                                      : "");
    const char *labels_json = gs_db_cell(rows, i, 8), *err = NULL;
    int k;

    gs_json_set_string(o, "id", gs_db_cell(rows, i, 0));
    gs_json_set_string(o, "thread_id", gs_db_cell(rows, i, 1));
    gs_json_set_string(o, "date", gs_db_cell(rows, i, 2));
    if (gs_db_cell(rows, i, 4) || gs_db_cell(rows, i, 5)) {
        json_object *from = json_object_new_object();
        gs_json_set_string(from, "name", gs_db_cell(rows, i, 4) ? gs_db_cell(rows, i, 4) : "");
        gs_json_set_string(from, "address", gs_db_cell(rows, i, 5) ? gs_db_cell(rows, i, 5)
                                                                     : "");
        json_object_object_add(o, "from", from);
    }
    else {
        json_object_object_add(o, "from", NULL);
    }
    gs_json_set_string(o, "subject", gs_db_cell(rows, i, 6) ? gs_db_cell(rows, i, 6) : "");
    gs_json_set_string(o, "snippet", snippet);
    if (has_query && q->marks->nelts > 0) {
        apr_array_header_t *segs = gs_search_highlight(p, snippet, q->marks);
        for (k = 0; k < segs->nelts; k++) {
            const gs_search_segment_t *seg = &APR_ARRAY_IDX(segs, k, gs_search_segment_t);
            json_object *j = json_object_new_object();
            gs_json_set_string(j, "text", seg->text);
            gs_json_set_bool(j, "match", seg->match);
            json_object_array_add(hl, j);
        }
    }
    json_object_object_add(o, "highlight", hl);
    labels = labels_json ? gs_json_parse(p, labels_json, strlen(labels_json), &err) : NULL;
    json_object_object_add(o, "labels", labels && json_object_is_type(labels, json_type_array)
                                        ? json_object_get(labels) : json_object_new_array());
    gs_json_set_bool(o, "has_attachments", !strcmp(gs_db_cell(rows, i, 9), "true"));
    gs_json_set_bool(o, "unread", !strcmp(gs_db_cell(rows, i, 10), "true"));
    gs_json_set_bool(o, "starred", !strcmp(gs_db_cell(rows, i, 11), "true"));
    return o;
}

/* The values of one page query's placeholders (SEARCH_WHERE's, the expression's, the limit)
 * from args[at]; returns the index after them. */
static int page_args(const char **args, int at, const gs_search_t *q, const char *user_id,
                     const char *after_id, const char *date_us, const char *limit)
{
    int i;

    args[at++] = user_id;
    args[at++] = after_id ? "1" : NULL;
    args[at++] = date_us;
    args[at++] = after_id;
    args[at++] = date_us;
    args[at++] = date_us;
    args[at++] = after_id;
    for (i = 0; i < q->args->nelts; i++) {
        args[at++] = APR_ARRAY_IDX(q->args, i, const char *);
    }
    args[at++] = limit;
    return at;
}

/* A failed search: the time box (422) or the database (503). */
static int search_failed(request_rec *r, gs_db_t *db, apr_time_t started)
{
    const char *e = db->last_error ? db->last_error : "";

    /* 57014 query_canceled: mod_dbd's connections give no SQLSTATE (gs_db.h), the message */
    if (!strcmp(db->last_sqlstate, "57014") || strstr(e, "canceling statement due to statement "
                                                        "timeout")) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=search.too_expensive ms=%"
                      APR_INT64_T_FMT, (apr_int64_t)apr_time_as_msec(apr_time_now() - started));
        gs_db_rollback(db);
        return gs_httpd_send_problem(r, HTTP_UNPROCESSABLE_ENTITY, "query-too-expensive",
                                     "query too expensive, narrow it: add words or operators "
                                     "(from:, label:, after:) that match fewer messages");
    }
    return database_unavailable(r, db);
}

int gs_httpd_handle_search(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *q = NULL, *limit_text = NULL, *cursor = NULL, *label;
    const char *date_us = NULL, *after_id = NULL, *sql, *err = NULL, **args, *page_limit;
    apr_size_t qlen = 0, ilen;
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    char hex[65];
    long limit = GS_SEARCH_DEFAULT_LIMIT;
    gs_id_result_t who;
    gs_db_t *db = NULL;
    gs_search_t *compiled;
    gs_db_rows_t *rows, *box;
    json_object *body, *list;
    apr_time_t started;
    int i, n, got;

    (void)arg;
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (query_value(r, "q", &q, &qlen) < 0) {
        return bad_request(r, "q must be given once, percent-encoded");
    }
    if (query_value(r, "limit", &limit_text, &ilen) < 0
        || (limit_text && (!apr_isdigit(*limit_text) || strlen(limit_text) != ilen
                           || gs_parse_int(limit_text, 1, GS_SEARCH_MAX_LIMIT, &limit, NULL)
                              != APR_SUCCESS))) {
        return bad_request(r, "limit must be a whole number from 1 to 100");
    }
    if (query_value(r, "cursor", &cursor, &ilen) < 0
        || (cursor && *cursor && (strlen(cursor) != ilen
                                  || !gs_search_cursor_parse(r->pool, cursor, &date_us,
                                                             &after_id)))) {
        return bad_request(r, "cursor is not one this server gave (next_cursor of a page)");
    }
    if (!(compiled = gs_search_compile(r->pool, q ? q : "", qlen, conf->search_config, &err))) {
        return bad_request(r, apr_pstrcat(r->pool, "bad query: ", err, NULL));
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    page_limit = apr_ltoa(r->pool, limit + 1);
    if (!compiled->strict) {
        sql = apr_pstrcat(r->pool, SEARCH_PLAIN, compiled->where, SEARCH_ORDER, SEARCH_PAGE_TAIL,
                          NULL);
        args = apr_palloc(r->pool, sizeof(char *) * (apr_size_t)(8 + compiled->args->nelts));
        n = page_args(args, 0, compiled, user_id, after_id, date_us, page_limit);
    }
    else {
        sql = apr_pstrcat(r->pool, SEARCH_CAPPED_HEAD, compiled->strict, SEARCH_CAPPED_FEW,
                          compiled->where, SEARCH_ORDER, SEARCH_CAPPED_MANY, compiled->walk,
                          SEARCH_ORDER, ")" SEARCH_PAGE_TAIL, NULL);
        args = apr_palloc(r->pool, sizeof(char *) * (apr_size_t)(1 + compiled->strict_args->nelts
                                                                 + 2 * (8 + compiled->args->nelts)));
        args[0] = user_id;
        for (i = 0; i < compiled->strict_args->nelts; i++) {
            args[1 + i] = APR_ARRAY_IDX(compiled->strict_args, i, const char *);
        }
        n = 1 + compiled->strict_args->nelts;
        n = page_args(args, n, compiled, user_id, after_id, date_us, page_limit);
        n = page_args(args, n, compiled, user_id, after_id, date_us, page_limit);
    }
    gs_sha256(sql, strlen(sql), digest);
    gs_sha256_hex(digest, hex);
    label = apr_pstrcat(r->pool, "gs_g_search_", apr_pstrndup(r->pool, hex, 24), NULL);
    started = apr_time_now();
    {
        const char *ms = GS_SEARCH_TIMEBOX_MS;
        if (gs_db_begin(db, r->pool) != APR_SUCCESS
            || gs_db_select(db, r->pool, GS_SQL_SEARCH_TIMEBOX, &box, 1, &ms) != APR_SUCCESS) {
            return database_unavailable(r, db);
        }
    }
    if (gs_db_select_generated(db, r->pool, label, sql, &rows, n, args) != APR_SUCCESS) {
        return search_failed(r, db, started);
    }
    if (gs_db_commit(db) != APR_SUCCESS) {
        return database_unavailable(r, db);
    }
    got = rows->nrows > limit ? (int)limit : rows->nrows;
    body = gs_json_own(r->pool, json_object_new_object());
    list = json_object_new_array();
    json_object_object_add(body, "messages", list);
    for (i = 0; i < got; i++) {
        json_object_array_add(list, message_json(r->pool, rows, i, compiled, qlen > 0));
    }
    gs_json_set_string(body, "next_cursor", rows->nrows > limit
                       ? gs_search_cursor_make(r->pool, gs_db_cell(rows, got - 1, 3),
                                               gs_db_cell(rows, got - 1, 0))
                       : NULL);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "event=search user=%s terms=%d messages=%d "
                  "ms=%" APR_INT64_T_FMT, gs_log_value(r->pool, user_id), compiled->terms, got,
                  (apr_int64_t)apr_time_as_msec(apr_time_now() - started));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return gs_httpd_send_json(r, HTTP_OK, body);
}

int gs_httpd_handle_labels(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *err = NULL, *doc;
    gs_id_result_t who;
    gs_db_t *db = NULL;
    gs_db_rows_t *rows;
    json_object *body, *labels;

    (void)arg;
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    if (gs_db_select(db, r->pool, GS_SQL_LABELS_LIST, &rows, 1, &user_id) != APR_SUCCESS
        || rows->nrows != 1 || !(doc = gs_db_cell(rows, 0, 0))) {
        return database_unavailable(r, db);
    }
    labels = gs_json_parse(r->pool, doc, strlen(doc), &err);
    if (!labels || !json_object_is_type(labels, json_type_array)) {
        return database_unavailable(r, db);
    }
    body = gs_json_own(r->pool, json_object_new_object());
    json_object_object_add(body, "labels", json_object_get(labels));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return gs_httpd_send_json(r, HTTP_OK, body);
}
