/* mod_gmailsync_body.c -- the request bodies of the POST endpoints (POST {prefix}/smart,
 * {prefix}/oauth/disconnect): optional, at most GS_MAX_BODY bytes, application/json, a JSON
 * object checked against RFC 8259 strictly (gs_json_check.c) before json-c builds it.
 */
#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include "gs_json.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* A body must arrive whole within GS_BODY_DEADLINE of its first read: a client that sends one
 * byte now and then (slowloris) would otherwise hold an httpd thread for GS_MAX_BODY times the
 * server's Timeout, since every byte restarts that per-read timeout. The connection's socket
 * timeout is lowered to what is left of the deadline before each read (as mod_reqtimeout does),
 * so no single read can wait past it either; the caller's timeout is restored afterwards. */
static apr_status_t read_within(request_rec *r, apr_bucket_brigade *bb, apr_size_t want,
                                apr_time_t deadline)
{
    apr_socket_t *sock = ap_get_conn_socket(r->connection);
    apr_interval_time_t saved = 0, left = deadline - apr_time_now();
    apr_status_t rv;

    if (left <= 0) {
        return APR_TIMEUP;
    }
    if (sock && apr_socket_timeout_get(sock, &saved) == APR_SUCCESS
        && (saved < 0 || left < saved)) {
        apr_socket_timeout_set(sock, left);
    } else {
        sock = NULL;
    }
    rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ, want);
    if (sock) {
        apr_socket_timeout_set(sock, saved);
    }
    if (rv == APR_SUCCESS && apr_time_now() > deadline) {
        rv = APR_TIMEUP;
    }
    return rv;
}

/* Reads at most max bytes. Returns OK, the status to answer (400, 408, 413), or
 * AP_FILTER_ERROR when HTTP_IN has already answered a malformed body (bad chunking, over
 * LimitRequestBody): ap_get_client_block() would hide that as -1 and a second answer would
 * follow the first on the wire. */
static int read_body(request_rec *r, apr_size_t max, char **data, apr_size_t *len)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    apr_size_t total = 0;
    apr_status_t rv;
    char *buf;
    int seen_eos = 0;
    apr_time_t deadline = apr_time_now() + GS_BODY_DEADLINE;

    *data = NULL;
    *len = 0;
    if (cl) {
        apr_off_t declared;
        char *end;
        if (apr_strtoff(&declared, cl, &end, 10) != APR_SUCCESS || *end || declared < 0) {
            return HTTP_BAD_REQUEST;
        }
        if (declared > (apr_off_t)max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    buf = apr_palloc(r->pool, max + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_bucket *b;

        rv = read_within(r, bb, max + 1 - total, deadline);
        if (rv != APR_SUCCESS) {
            apr_brigade_destroy(bb);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *chunk;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if (apr_bucket_read(b, &chunk, &n, APR_BLOCK_READ) != APR_SUCCESS) {
                apr_brigade_destroy(bb);
                return HTTP_BAD_REQUEST;
            }
            if (n > max - total) {
                apr_brigade_destroy(bb);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(buf + total, chunk, n);
            total += n;
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    buf[total] = '\0';
    *data = buf;
    *len = total;
    return OK;
}

int gs_httpd_discard_body(request_rec *r)
{
    char *data;
    apr_size_t len;

    return read_body(r, GS_MAX_BODY, &data, &len);
}

/* For refusals before the body is read (origin, identity): the connection is closed rather
 * than the body read after the answer, which costs nothing for a refused request and keeps a
 * malformed body from turning into a second error answer. */
void gs_httpd_leave_body_unread(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    if (apr_table_get(r->headers_in, "Transfer-Encoding") || (cl && strcmp(cl, "0"))) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
}

static int is_json_media_type(const char *ct)
{
    const char *semi;
    size_t len;

    if (!ct) {
        return 0;
    }
    while (apr_isspace(*ct)) {
        ct++;
    }
    semi = ap_strchr_c(ct, ';');
    len = semi ? (size_t)(semi - ct) : strlen(ct);
    while (len > 0 && apr_isspace(ct[len - 1])) {
        len--;
    }
    return len == strlen("application/json") && !strncasecmp(ct, "application/json", len);
}

int gs_httpd_raw_body(request_rec *r, apr_size_t max, char **data, apr_size_t *len, int *answered)
{
    int status;

    *answered = 1;
    if ((status = read_body(r, max, data, len)) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE; /* do not read the rest of a refused body */
        if (status == AP_FILTER_ERROR) {
            return status;
        }
        if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return gs_httpd_send_problem(r, status, "body-too-large",
                                         apr_psprintf(r->pool, "the request body is limited to "
                                                      "%" APR_SIZE_T_FMT " bytes", max));
        }
        if (status == HTTP_REQUEST_TIME_OUT) {
            return gs_httpd_send_problem(r, status, "request-timeout",
                                         "the request body did not arrive in time");
        }
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "bad-body",
                                     "the request body could not be read");
    }
    *answered = 0;
    return OK;
}

int gs_httpd_json_body(request_rec *r, json_object **doc, int *answered)
{
    const char *err = NULL;
    apr_size_t len;
    char *data;
    int status;

    *doc = NULL;
    if ((status = gs_httpd_raw_body(r, GS_MAX_BODY, &data, &len, answered)) != OK || *answered) {
        return status;
    }
    *answered = 1;
    if (len == 0) {
        *answered = 0;
        return OK;
    }
    if (!is_json_media_type(apr_table_get(r->headers_in, "Content-Type"))) {
        return gs_httpd_send_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                                     "the body must be application/json");
    }
    if (!(*doc = gs_json_parse(r->pool, data, len, &err))) {
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "malformed-json",
                                     apr_pstrcat(r->pool, "malformed JSON: ", err, NULL));
    }
    if (!json_object_is_type(*doc, json_type_object)) {
        return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "invalid-request",
                                     "the body must be a JSON object");
    }
    *answered = 0;
    return OK;
}

int gs_httpd_json_bool(request_rec *r, json_object *doc, const char *name, int *value,
                       int *answered)
{
    json_object *member;

    *answered = 0;
    if (doc && json_object_object_get_ex(doc, name, &member)) {
        if (!json_object_is_type(member, json_type_boolean)) {
            *answered = 1;
            return gs_httpd_send_problem(r, HTTP_BAD_REQUEST, "invalid-request",
                                         apr_pstrcat(r->pool, name, " must be true or false",
                                                     NULL));
        }
        *value = json_object_get_boolean(member) ? 1 : 0;
    }
    return OK;
}
