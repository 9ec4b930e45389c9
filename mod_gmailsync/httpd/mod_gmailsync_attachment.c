/* mod_gmailsync_attachment.c -- an attachment's stored bytes (issue 24):
 *   GET|HEAD {prefix}/messages/{id}/attachments/{n}
 * n is the attachment's number in the message view (from 0, in the order of the MIME tree).
 * The bytes come from gmailsync.attachment_blobs (content-addressed per user), streamed in
 * slices like /raw. Always a download that no browser renders in the site's origin:
 * Content-Disposition: attachment (RFC 6266, filename* for a name that is not ASCII),
 * X-Content-Type-Options: nosniff, Content-Security-Policy: sandbox, and a Content-Type taken
 * from the stored type only when it is on a list of types that cannot carry active content
 * (else application/octet-stream): gs_download.h. 404: another user's, an unknown or a malformed id ("no such
 * message", the same body as /raw's); an n the message does not have; an attachment whose bytes
 * were not stored (GmailSyncAttachments metadata, or over GmailSyncAttachmentMaxSize).
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_db.h"
#include "gs_download.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_ATTACHMENTS_SEGMENT "/attachments/"

/* n: 1 to 6 digits. */
static int parse_n(const char *s, int *n)
{
    int v = 0, i;

    for (i = 0; s[i]; i++) {
        if (i == 6 || !apr_isdigit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *n = v;
    return i > 0;
}

int gs_httpd_handle_attachment(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_httpd_slices_t blob = { GS_SQL_BLOB_SLICE, NULL, NULL, NULL, "attachment" };
    const char *slash, *id;
    gs_db_rows_t *rows;
    int n = 0, rc;

    /* arg is "{id}/attachments/{n}" (the route checked the shape); a malformed n is one the
     * message does not have, once the message is known to be the caller's */
    slash = ap_strchr_c(arg, '/');
    id = slash ? apr_pstrmemdup(r->pool, arg, (apr_size_t)(slash - arg)) : arg;
    if (slash && (strncmp(slash, GS_ATTACHMENTS_SEGMENT, sizeof GS_ATTACHMENTS_SEGMENT - 1)
                  || !parse_n(slash + sizeof GS_ATTACHMENTS_SEGMENT - 1, &n))) {
        n = -1;
    }
    rc = gs_httpd_message_select(r, conf, id, GS_SQL_ATTACHMENT_GET, apr_itoa(r->pool, n),
                                 &blob.user_id, &rows);
    if (!rows) {
        return rc;
    }
    if (!gs_db_cell(rows, 0, 0)) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such attachment");
    }
    if (!gs_db_cell(rows, 0, 5) || !(blob.key = gs_db_cell(rows, 0, 4))) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found",
                                     "only this attachment's metadata is stored, not its bytes "
                                     "(GmailSyncAttachments metadata, or larger than "
                                     "GmailSyncAttachmentMaxSize)");
    }
    blob.message = id;
    apr_table_setn(r->headers_out, "Content-Security-Policy", "sandbox");
    return gs_httpd_send_download(r, &blob, gs_download_type(gs_db_cell(rows, 0, 2)),
                                  gs_download_disposition(r->pool, gs_db_cell(rows, 0, 1),
                                                          apr_psprintf(r->pool, "%s-%d", id, n)),
                                  gs_db_cell(rows, 0, 5));
}
