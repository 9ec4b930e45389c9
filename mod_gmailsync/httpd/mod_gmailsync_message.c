/* mod_gmailsync_message.c -- a user's synced mail:
 *   GET|HEAD {prefix}/messages/{id}/raw   the stored raw RFC 822 message (sql/010's message_raw)
 *                                          as message/rfc822, an .eml download
 * and what the other message endpoints share (the 404, streaming in slices); the message view
 * is in mod_gmailsync_message_view.c, attachment downloads in mod_gmailsync_attachment.c.
 * The owner only: another user's id, an unknown id and a malformed one are the same 404.
 *
 * A message can be 25 MB and more, so it is never held whole: it is read in slices of
 * GS_SLICE bytes (one prepared statement each, the pooled connection given back between
 * slices so that a slow client holds no database connection), each slice decoded into one heap
 * bucket of the connection's bucket allocator and passed down the output filters, which write
 * it before the next slice is read. Attachment bytes are streamed the same way.
 */
#include <apr_buckets.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "gs_db.h"
#include "gs_gmail_parse.h"
#include "gs_log.h"
#include "gs_sql.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_SLICE (2 * 1024 * 1024)

int gs_httpd_message_not_found(request_rec *r)
{
    return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found", "no such message");
}

int gs_httpd_message_db_unavailable(request_rec *r, gs_db_t *db, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "event=message.db_error step=%s reason=\"%s\"",
                  what, db && db->last_error ? db->last_error : "no connection");
    return gs_httpd_identify_failed(r, GS_ID_DB_UNAVAILABLE);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)apr_tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes len bytes of hex text into out (len / 2 bytes); 0 when it is not hex. */
static int hex_decode(const char *hex, apr_size_t len, unsigned char *out)
{
    apr_size_t i;

    if (len % 2) {
        return 0;
    }
    for (i = 0; i < len; i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);

        if (hi < 0 || lo < 0) {
            return 0;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

/* The body has begun (status line and headers are out): a failure can only cut the connection,
 * which the client sees as a body shorter than its Content-Length. */
static int cut_short(request_rec *r, const gs_httpd_slices_t *what, apr_off_t sent,
                     const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "event=message.%s_cut user=%s message=%s sent=%" APR_OFF_T_FMT " reason=\"%s\"",
                  what->event, gs_log_value(r->pool, what->user_id), what->message, sent, why);
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

int gs_httpd_stream_slices(request_rec *r, const gs_httpd_slices_t *what, apr_off_t size)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
    apr_pool_t *slice_pool;
    apr_off_t offset = 0;
    apr_status_t rv;

    if ((rv = apr_pool_create(&slice_pool, r->pool)) != APR_SUCCESS) {
        return cut_short(r, what, 0, "out of memory");
    }
    while (offset < size) {
        apr_off_t want = size - offset < GS_SLICE ? size - offset : GS_SLICE;
        const char *args[4], *hex, *now_size;
        gs_db_rows_t *rows;
        unsigned char *buf;
        apr_size_t hexlen;
        gs_db_t *db;

        apr_pool_clear(slice_pool);
        args[0] = apr_off_t_toa(slice_pool, offset);
        args[1] = apr_off_t_toa(slice_pool, want);
        args[2] = what->user_id;
        args[3] = what->key;
        if (!(db = gs_httpd_request_db(r))) {
            return cut_short(r, what, offset, "the database cannot be reached");
        }
        if (gs_db_select(db, slice_pool, what->statement, &rows, 4, args)
            != APR_SUCCESS) {
            return cut_short(r, what, offset,
                             apr_pstrcat(slice_pool, "database: ", db->last_error, NULL));
        }
        /* a slow client must not hold a pooled connection between slices */
        gs_httpd_release_db(r);
        now_size = rows->nrows == 1 ? gs_db_cell(rows, 0, 0) : NULL;
        hex = rows->nrows == 1 ? gs_db_cell(rows, 0, 1) : NULL;
        if (!now_size || apr_atoi64(now_size) != size || !hex) {
            return cut_short(r, what, offset, "it was deleted or changed");
        }
        hexlen = strlen(hex);
        if (hexlen != (apr_size_t)want * 2) {
            return cut_short(r, what, offset, "a slice of the wrong length");
        }
        buf = apr_bucket_alloc((apr_size_t)want, c->bucket_alloc);
        if (!buf) {
            return cut_short(r, what, offset, "out of memory");
        }
        if (!hex_decode(hex, hexlen, buf)) {
            apr_bucket_free(buf);
            return cut_short(r, what, offset, "a slice that is not hex");
        }
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create((const char *)buf, (apr_size_t)want,
                                                           apr_bucket_free, c->bucket_alloc));
        offset += want;
        if (offset == size) {
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
        }
        /* the hex copy goes before the bytes are written */
        apr_pool_clear(slice_pool);
        rv = ap_pass_brigade(r->output_filters, bb);
        apr_brigade_cleanup(bb);
        if (rv != APR_SUCCESS || c->aborted) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          "event=message.%s_client_gone user=%s message=%s sent=%" APR_OFF_T_FMT,
                          what->event, gs_log_value(r->pool, what->user_id), what->message,
                          offset);
            c->keepalive = AP_CONN_CLOSE;
            return OK;
        }
    }
    apr_pool_destroy(slice_pool);
    if (size == 0) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
        if ((rv = ap_pass_brigade(r->output_filters, bb)) != APR_SUCCESS) {
            c->keepalive = AP_CONN_CLOSE;
        }
        apr_brigade_cleanup(bb);
    }
    return OK;
}

int gs_httpd_message_select(request_rec *r, const gs_srv_conf_t *conf, const char *id,
                            const char *label, const char *first, const char **user_id,
                            gs_db_rows_t **rows)
{
    const char *args[3];
    gs_id_result_t who;
    gs_db_t *db = NULL;
    int nargs = 0;

    *rows = NULL;
    if ((who = gs_httpd_identify(r, conf, &db, user_id)) != GS_ID_OK) {
        return gs_httpd_identify_failed(r, who);
    }
    /* a malformed id is unknown: the same answer, no query */
    if (!gs_gmail_valid_id(id)) {
        return gs_httpd_message_not_found(r);
    }
    if (!db && !(db = gs_httpd_request_db(r))) {
        return gs_httpd_message_db_unavailable(r, NULL, "connect");
    }
    if (first) {
        args[nargs++] = first;
    }
    args[nargs++] = *user_id;
    args[nargs++] = id;
    if (gs_db_select(db, r->pool, label, rows, nargs, args) != APR_SUCCESS) {
        *rows = NULL;
        return gs_httpd_message_db_unavailable(r, db, label);
    }
    gs_httpd_release_db(r);
    if ((*rows)->nrows == 0) {
        *rows = NULL;
        return gs_httpd_message_not_found(r);
    }
    return OK;
}

int gs_httpd_send_download(request_rec *r, const gs_httpd_slices_t *what, const char *type,
                           const char *disposition, const char *size_text)
{
    apr_off_t size;
    char *end;

    if (!size_text || apr_strtoff(&size, size_text, &end, 10) != APR_SUCCESS || *end
        || size < 0) {
        return gs_httpd_message_db_unavailable(r, NULL, "size is not a number");
    }
    r->status = HTTP_OK;
    ap_set_content_type(r, type);
    apr_table_setn(r->headers_out, "Content-Disposition", disposition);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    /* httpd's byterange filter would answer a Range only when the whole download is in one
     * brigade (one slice): no ranges at all, so that every download is the same 200 */
    apr_table_unset(r->headers_in, "Range");
    apr_table_setn(r->headers_out, "Accept-Ranges", "none");
    ap_set_content_length(r, size);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "event=message.%s user=%s message=%s bytes=%" APR_OFF_T_FMT, what->event,
                  gs_log_value(r->pool, what->user_id), what->message, size);
    if (r->header_only) {
        return OK;
    }
    return gs_httpd_stream_slices(r, what, size);
}

int gs_httpd_handle_message_raw(request_rec *r, const gs_srv_conf_t *conf, const char *arg)
{
    gs_httpd_slices_t raw = { GS_SQL_MESSAGE_RAW_SLICE, NULL, arg, arg, "raw" };
    gs_db_rows_t *rows;
    int rc;

    rc = gs_httpd_message_select(r, conf, arg, GS_SQL_MESSAGE_RAW_SIZE, NULL, &raw.user_id,
                                 &rows);
    if (!rows) {
        return rc;
    }
    if (!gs_db_cell(rows, 0, 0)) {
        return gs_httpd_send_problem(r, HTTP_NOT_FOUND, "not-found",
                                     "no raw message is stored for this message (synced "
                                     "without its content: GmailSyncContent metadata, "
                                     "GmailSyncStoreRaw Off, or a sync before content was "
                                     "stored)");
    }
    return gs_httpd_send_download(r, &raw, "message/rfc822",
                                  apr_psprintf(r->pool, "attachment; filename=\"%s.eml\"", arg),
                                  gs_db_cell(rows, 0, 0));
}
