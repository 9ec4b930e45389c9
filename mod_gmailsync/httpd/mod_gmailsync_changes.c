/* mod_gmailsync_changes.c -- the owner's change feed over HTTP (issue 23, sql/011):
 *   GET|HEAD {prefix}/changes?since=SEQ&limit=N
 * The changes after SEQ (default 0), at most N (1-1000, default 100), in seq order:
 *   {"changes": [{"seq","message_id","kind","labels_added","labels_removed","history_id","at"}],
 *    "next": the seq to ask after next time, "has_more": more are waiting, "newest": the newest seq}
 * 410 Gone (problem+json) when SEQ is older than what GmailSyncChangeRetention keeps: the client
 * reads the mailbox again from scratch and continues from the newest seq (docs/changes.md).
 * "newest" is read just before the page: a change committed in between may be in the page and
 * beyond "newest"; has_more is true while the page is full or behind "newest".
 */
#include <stdlib.h>

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
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_CHANGES_DEFAULT_LIMIT 100
#define GS_CHANGES_MAX_LIMIT     1000

/* A decimal integer in [0, max] (no sign, no blanks, at most 18 digits), else -1. */
static apr_int64_t count_arg(const char *s, long max)
{
    long v;

    /* digits only: no sign, no blank (strtol would take "+5" and " 5") */
    return s && apr_isdigit(*s) && gs_parse_int(s, 0, max, &v, NULL) == APR_SUCCESS ? v : -1;
}

static int bad_request(request_rec *r, const char *detail)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=changes.bad_request reason=\"%s\"", detail);
    return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-request", detail);
}

static int database_unavailable(request_rec *r, gs_db_t *db)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=changes.db_error reason=\"%s\"",
                  db && db->last_error ? db->last_error : "no connection");
    return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
}

int gs_httpd_handle_changes(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *args[3], *since_text = NULL, *limit_text = NULL;
    apr_int64_t since = 0, limit = GS_CHANGES_DEFAULT_LIMIT, newest = 0, purged = 0, got, last;
    apr_table_t *query = NULL;
    gs_db_rows_t *state, *page;
    json_object *body, *changes;
    const char *err = NULL;
    gs_id_result_t who;
    gs_db_t *db = NULL;

    (void)arg;
    if ((who = gs_httpd_identify(r, conf, &db, &user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    ap_args_to_table(r, &query);
    if (query) {
        since_text = apr_table_get(query, "since");
        limit_text = apr_table_get(query, "limit");
    }
    if (since_text && (since = count_arg(since_text, 999999999999999999L)) < 0) {
        return bad_request(r, "since must be a change sequence number (a whole number, 0 or "
                              "more)");
    }
    if (limit_text && (limit = count_arg(limit_text, GS_CHANGES_MAX_LIMIT)) < 1) {
        return bad_request(r, "limit must be a whole number from 1 to 1000");
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    args[0] = user_id;
    args[1] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, since);
    args[2] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, limit);
    if (gs_db_select(db, r->pool, GS_SQL_CHANGES_STATE, &state, 1, args) != APR_SUCCESS) {
        return database_unavailable(r, db);
    }
    if (state->nrows == 1) {
        newest = apr_atoi64(gs_db_cell(state, 0, 0));
        purged = apr_atoi64(gs_db_cell(state, 0, 1));
    }
    if (since < purged) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=changes.gone since=%" APR_INT64_T_FMT
                      " purged_through=%" APR_INT64_T_FMT, since, purged);
        return gs_httpd_send_json(r, HTTP_GONE, gs_httpd_problem(r, HTTP_GONE, "changes-gone",
            apr_psprintf(r->pool, "the changes up to %" APR_INT64_T_FMT " are no longer kept: "
                         "read the mailbox again from scratch, then ask for the changes after "
                         "%" APR_INT64_T_FMT, purged, newest)));
    }
    if (gs_db_select(db, r->pool, GS_SQL_CHANGES_PAGE, &page, 3, args) != APR_SUCCESS
        || page->nrows != 1) {
        return database_unavailable(r, db);
    }
    got = apr_atoi64(gs_db_cell(page, 0, 0));
    last = since;
    changes = gs_json_parse(r->pool, gs_db_cell(page, 0, 1), strlen(gs_db_cell(page, 0, 1)), &err);
    if (!changes || !json_object_is_type(changes, json_type_array)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=changes.bad_page reason=\"%s\"",
                      err ? err : "not an array");
        return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
    }
    if (got > 0) {
        json_object *seq;
        json_object_object_get_ex(json_object_array_get_idx(changes, (size_t)got - 1), "seq", &seq);
        last = json_object_get_int64(seq);
    }
    body = gs_json_own(r->pool, json_object_new_object());
    json_object_object_add(body, "changes", json_object_get(changes));
    gs_json_set_int(body, "next", last);
    gs_json_set_bool(body, "has_more", got == limit || last < newest);
    gs_json_set_int(body, "newest", newest);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return gs_httpd_send_json(r, HTTP_OK, body);
}
