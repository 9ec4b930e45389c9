/* gs_watch.c -- see gs_watch.h */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <json-c/json.h>

#include "gs_json.h"
#include "gs_sql.h"
#include "gs_watch.h"

const gs_sql_stmt_t gs_sql_watch_statements[] = {
    { GS_SQL_D_WATCH_PICK,
      /* taken under a lease (watch_retry_at): another daemon skips it while this one asks */
      "UPDATE gmailsync.accounts a"
      " SET watch_retry_at = now() + make_interval(secs => %s::double precision)"
      " WHERE a.user_id IN (SELECT user_id FROM gmailsync.accounts"
      "   WHERE refresh_token IS NOT NULL"
      "   AND (watch_retry_at IS NULL OR watch_retry_at <= now())"
      "   AND (watch_expires_at IS NULL OR watch_renewed_at IS NULL"
      "        OR watch_email IS DISTINCT FROM email OR now() >= " GS_WATCH_RENEW_AT ")"
      "   ORDER BY watch_expires_at NULLS FIRST, user_id LIMIT %s::integer"
      "   FOR NO KEY UPDATE SKIP LOCKED)"
      " RETURNING a.user_id, a.email, a.refresh_token,"
      "   CASE WHEN a.access_token_expires_at > now() + interval '60 seconds'"
      "        THEN a.access_token END,"
      "   GREATEST(0, floor(extract(epoch FROM a.access_token_expires_at - now())))::bigint::text,"
      "   (a.watch_expires_at IS NOT NULL)::text, a.watch_failures::text" },
    { GS_SQL_D_WATCH_OK,
      "UPDATE gmailsync.accounts SET watch_expires_at = to_timestamp(%s::double precision / 1000),"
      " watch_renewed_at = now(), watch_history_id = %s::numeric, watch_email = email,"
      " watch_error = NULL,"
      " watch_failures = 0, watch_retry_at = NULL"
      " WHERE user_id = %s AND refresh_token IS NOT NULL" },
    { GS_SQL_D_WATCH_FAILED,
      "UPDATE gmailsync.accounts SET watch_error = left(%s, 512),"
      " watch_failures = watch_failures + 1,"
      " watch_retry_at = now() + make_interval(secs => %s::double precision)"
      " WHERE user_id = %s" },
    { GS_SQL_WATCH_LIVE,
      "SELECT (watch_expires_at IS NOT NULL AND watch_expires_at > now())::text"
      " FROM gmailsync.accounts WHERE user_id = %s" },
    { GS_SQL_WATCH_STATS,
      "SELECT count(*) FILTER (WHERE watch_expires_at > now())::text,"
      " count(*) FILTER (WHERE watch_expires_at IS NOT NULL AND watch_renewed_at IS NOT NULL"
      "   AND now() >= " GS_WATCH_RENEW_AT ")::text,"
      " count(*) FILTER (WHERE watch_expires_at <= now())::text,"
      " count(*) FILTER (WHERE watch_expires_at IS NULL)::text,"
      " count(*) FILTER (WHERE watch_error IS NOT NULL)::text,"
      " COALESCE(max(watch_failures), 0)::text"
      " FROM gmailsync.accounts WHERE refresh_token IS NOT NULL" },
    { GS_SQL_PUSH_LATENCIES,
      "SELECT extract(epoch FROM started_at - created_at)::text FROM gmailsync.sync_tasks"
      " WHERE trigger = 'push' AND started_at IS NOT NULL"
      " AND started_at > now() - interval '1 day'" },
    { NULL, NULL }
};

static gs_http_request_t *me_post(apr_pool_t *p, const char *api_base, const char *access_token,
                                  const char *what)
{
    gs_http_request_t *req = gs_http_request(p, "POST",
                                             apr_pstrcat(p, api_base, "/gmail/v1/users/me/", what,
                                                         NULL));

    gs_http_add_header(req, p, "Authorization", apr_pstrcat(p, "Bearer ", access_token, NULL));
    gs_http_add_header(req, p, "Accept", "application/json");
    return req;
}

gs_http_request_t *gs_watch_request(apr_pool_t *p, const char *api_base,
                                    const char *access_token, const char *topic)
{
    gs_http_request_t *req = me_post(p, api_base, access_token, "watch");
    json_object *body = gs_json_object(p);

    gs_json_set_string(body, "topicName", topic);
    req->body = gs_json_to_string(p, body);
    req->body_len = strlen(req->body);
    gs_http_add_header(req, p, "Content-Type", "application/json");
    return req;
}

gs_http_request_t *gs_watch_stop_request(apr_pool_t *p, const char *api_base,
                                         const char *access_token)
{
    gs_http_request_t *req = me_post(p, api_base, access_token, "stop");

    req->body = "";
    req->body_len = 0;
    return req;
}

/* A decimal uint64 as Gmail sends it (a JSON string, or a number). */
static const char *digits(apr_pool_t *p, json_object *doc, const char *key)
{
    json_object *v;
    const char *s;
    apr_size_t i, n;

    if (!json_object_object_get_ex(doc, key, &v)
        || !(json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int))) {
        return NULL;
    }
    s = json_object_get_string(v);
    n = strlen(s);
    if (n == 0 || n > 19) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (!apr_isdigit(s[i])) {
            return NULL;
        }
    }
    return apr_pstrdup(p, s);
}

apr_status_t gs_watch_parse(apr_pool_t *p, const gs_http_request_t *req, const char **history_id,
                            const char **expiration_ms, const char **why)
{
    const char *perr = NULL;
    json_object *doc;

    *history_id = *expiration_ms = NULL;
    if (req->status != 200) {
        *why = req->status ? apr_psprintf(p, "watch answered %d", req->status)
                           : apr_pstrcat(p, "Gmail unreachable: ", req->transport_error
                                         ? req->transport_error : "transfer failed", NULL);
        return APR_EINVAL;
    }
    if (!(doc = gs_json_parse(p, req->resp_body, req->resp_len, &perr))
        || !json_object_is_type(doc, json_type_object)) {
        *why = "watch answer is not a JSON object";
        return APR_EINVAL;
    }
    if (!(*history_id = digits(p, doc, "historyId"))
        || !(*expiration_ms = digits(p, doc, "expiration"))) {
        *history_id = *expiration_ms = NULL;
        *why = "watch answer without a historyId and an expiration";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_interval_time_t gs_watch_backoff(int n, apr_interval_time_t cap, const char *retry_after)
{
    apr_interval_time_t wait = GS_WATCH_BACKOFF_BASE;
    apr_int64_t ra;
    char *end;

    if (cap <= 0) {
        cap = GS_WATCH_BACKOFF_MAX;
    }
    while (--n > 0 && wait < cap) {
        wait *= 2;
    }
    if (wait > cap) {
        wait = cap;
    }
    if (retry_after && apr_isdigit(*retry_after)) {
        ra = apr_strtoi64(retry_after, &end, 10);
        if (*end == '\0' && ra > 0 && ra < 86400 && apr_time_from_sec(ra) > wait) {
            wait = apr_time_from_sec(ra);
        }
    }
    return wait;
}

apr_status_t gs_watch_stats(gs_db_t *db, apr_pool_t *p, gs_watch_stats_t *st)
{
    gs_db_rows_t *rows;
    apr_status_t rv;

    memset(st, 0, sizeof *st);
    if ((rv = gs_db_select(db, p, GS_SQL_WATCH_STATS, &rows, 0, NULL)) != APR_SUCCESS) {
        return rv;
    }
    if (rows->nrows != 1) {
        return APR_EGENERAL;
    }
    st->watched = apr_atoi64(gs_db_cell(rows, 0, 0));
    st->due = apr_atoi64(gs_db_cell(rows, 0, 1));
    st->lapsed = apr_atoi64(gs_db_cell(rows, 0, 2));
    st->unwatched = apr_atoi64(gs_db_cell(rows, 0, 3));
    st->failing = apr_atoi64(gs_db_cell(rows, 0, 4));
    st->max_failures = apr_atoi64(gs_db_cell(rows, 0, 5));
    return APR_SUCCESS;
}
