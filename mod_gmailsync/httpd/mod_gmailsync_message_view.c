/* mod_gmailsync_message_view.c -- one message of the user, to read it (issue 24):
 *   GET|HEAD {prefix}/messages/{id}
 * 200 application/json: the ids, dates, labels (names; system labels by id), unread and
 * starred, the envelope by role ({name, address} lists), the headers in order, the text and
 * HTML bodies (the HTML as a string: the page shows it in a sandboxed frame), the content state
 * and the attachments (n, the number /attachments/{n} serves). The document is built by
 * GS_SQL_MESSAGE_VIEW and sent as PostgreSQL wrote it; what a hostile message could make huge
 * is cut there and named in "truncated" (docs/api.md). The owner only: another user's id, an
 * unknown id and a malformed one are the same 404 as /raw's.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_db.h"
#include "gs_log.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* Each body is cut at this many characters (up to 4 bytes each in UTF-8): a 25 MB message can
 * hold a body of 25 MB, which no page shows. "truncated" says when, "*_length" how long it is. */
#define GS_MESSAGE_BODY_MAX "1048576"

int gs_httpd_handle_message_view(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    const char *user_id = NULL, *doc;
    gs_db_rows_t *rows;
    apr_size_t len;
    int rc;

    rc = gs_httpd_message_select(r, conf, arg, GS_SQL_MESSAGE_VIEW, GS_MESSAGE_BODY_MAX,
                                 &user_id, &rows);
    if (!rows) {
        return rc;
    }
    if (!(doc = gs_db_cell(rows, 0, 0))) {
        return gs_httpd_message_db_unavailable(r, NULL, "view is NULL");
    }
    len = strlen(doc);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "event=message.view user=%s message=%s bytes=%" APR_SIZE_T_FMT,
                  gs_log_value(r->pool, user_id), arg, len);
    r->status = HTTP_OK;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only && ap_rwrite(doc, (int)len, r) < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "event=message.view_client_gone user=%s "
                      "message=%s", gs_log_value(r->pool, user_id), arg);
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    return OK;
}
