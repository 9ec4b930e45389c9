/* mod_gmailsync_errors.c -- what httpd answers by itself under GmailSyncPrefix is a problem too.
 *
 * Many requests never reach the handler: httpd refuses them while reading the request line or
 * headers (414, 400, 417), while decoding the path (%2F, %00: 404; a bad escape: 400), while
 * reading the body (bad chunking: 400, 413), or answers them itself (TRACE). Its answers are
 * HTML pages. These hooks make them application/problem+json with Cache-Control: no-store and
 * nosniff:
 *
 * - insert_error_filter: ap_send_error_response() runs it for every error it sends, whenever
 *   the error arose; for a request under the prefix it adds GMAILSYNC_PROBLEM, an output filter
 *   that drops the HTML and writes the problem with the same status (and Allow, Retry-After or
 *   WWW-Authenticate headers httpd set). "Under the prefix" is judged on r->uri, or, for errors
 *   raised before the URI is parsed (a 414 has only the request line cut at LimitRequestLine),
 *   on the request line itself, so no request elsewhere on the server changes.
 * - post_read_request: for requests under the prefix, a per-request custom response for every
 *   error status, so that the site's ErrorDocument redirects (local or to another URL) do not
 *   replace the problem with a page; insert_filter covers a local ErrorDocument of errors that
 *   happen before post_read_request runs.
 * - map_to_storage, before http_core's: TRACE under the prefix goes to the handler (405 with
 *   Allow, as for any other method an endpoint does not take) instead of being echoed back with
 *   the request's cookies, even where TraceEnable is on.
 */
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "gs_json.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

#define GS_PROBLEM_FILTER "GMAILSYNC_PROBLEM"

static ap_filter_rec_t *problem_filter_handle;

/* The next character of a path that may still be percent-encoded (httpd decodes r->uri only
 * after some of the errors handled here); advances *s. */
static int path_char(const char **s)
{
    const char *c = *s;

    if (c[0] == '%' && apr_isxdigit(c[1]) && apr_isxdigit(c[2])) {
        char hex[3] = { c[1], c[2], '\0' };
        *s += 3;
        return (int)strtol(hex, NULL, 16);
    }
    if (*c) {
        (*s)++;
    }
    return (unsigned char)*c;
}

/* 1 when path is the prefix or below it: "/api/gmail/sync", "/api/gmail/sync/...", with a
 * query, or cut off after the prefix, as in the request line of a 414. */
static int path_under_prefix(const char *path, const char *prefix)
{
    int next;

    while (*prefix) {
        if (path_char(&path) != (unsigned char)*prefix++) {
            return 0;
        }
    }
    next = path_char(&path);
    return next == '\0' || next == '/' || next == '?' || next == ' ' || next == '\t';
}

/* The path of the request line's target ("GET /x HTTP/1.1", or absolute-form
 * "GET http://host/x HTTP/1.1"), or NULL. */
static const char *request_line_path(const char *line)
{
    const char *s = line;

    if (!s) {
        return NULL;
    }
    while (*s && *s != ' ' && *s != '\t') {
        s++;
    }
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    if (!strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8)) {
        s = ap_strchr_c(s + 7, '/');
    }
    return s && *s == '/' ? s : NULL;
}

/* Whether httpd's answers to r are ours to rewrite. */
static int is_api_request(request_rec *r)
{
    const gs_srv_conf_t *conf = gs_httpd_srv_conf(r->server);
    const char *line_path;

    if (!conf || !conf->prefix) {
        return 0;
    }
    if (r->uri && *r->uri == '/' && path_under_prefix(r->uri, conf->prefix)) {
        return 1;
    }
    /* errors before r->uri was set, or a URI that normalisation moved away from the prefix */
    line_path = request_line_path(r->the_request);
    return line_path && path_under_prefix(line_path, conf->prefix);
}

static const char *problem_slug(int status)
{
    switch (status) {
    case HTTP_BAD_REQUEST:               return "bad-request";
    case HTTP_UNAUTHORIZED:              return "unauthenticated";
    case HTTP_FORBIDDEN:                 return "forbidden";
    case HTTP_NOT_FOUND:                 return "not-found";
    case HTTP_METHOD_NOT_ALLOWED:        return "method-not-allowed";
    case HTTP_REQUEST_TIME_OUT:          return "request-timeout";
    case HTTP_LENGTH_REQUIRED:           return "length-required";
    case HTTP_REQUEST_ENTITY_TOO_LARGE:  return "body-too-large";
    case HTTP_REQUEST_URI_TOO_LARGE:     return "uri-too-long";
    case HTTP_UNSUPPORTED_MEDIA_TYPE:    return "unsupported-media-type";
    case HTTP_EXPECTATION_FAILED:        return "expectation-failed";
    case HTTP_NOT_IMPLEMENTED:           return "not-implemented";
    case HTTP_SERVICE_UNAVAILABLE:       return "unavailable";
    case HTTP_VERSION_NOT_SUPPORTED:     return "http-version-not-supported";
    default:                             return status >= 500 ? "server-error" : "client-error";
    }
}

/* Fixed texts: httpd's error-notes may quote the request back, which a problem never does. */
static const char *problem_detail(int status)
{
    switch (status) {
    case HTTP_BAD_REQUEST:
        return "the request is malformed: request line, header fields, URL encoding or body "
               "framing";
    case HTTP_UNAUTHORIZED:              return "authentication is required";
    case HTTP_FORBIDDEN:                 return "access to this endpoint is not allowed";
    case HTTP_NOT_FOUND:                 return "no such endpoint";
    case HTTP_METHOD_NOT_ALLOWED:        return "this method is not allowed here";
    case HTTP_REQUEST_TIME_OUT:          return "the request did not arrive in time";
    case HTTP_LENGTH_REQUIRED:           return "the request needs a Content-Length";
    case HTTP_REQUEST_ENTITY_TOO_LARGE:  return "the request body is too large";
    case HTTP_REQUEST_URI_TOO_LARGE:     return "the request line is longer than this server "
                                                "accepts";
    case HTTP_EXPECTATION_FAILED:        return "only \"Expect: 100-continue\" is supported";
    case HTTP_NOT_IMPLEMENTED:           return "the method or transfer coding is not supported";
    case HTTP_SERVICE_UNAVAILABLE:       return "the service is unavailable; retry shortly";
    case HTTP_VERSION_NOT_SUPPORTED:     return "this server speaks HTTP/1.x";
    default:                             return NULL;
    }
}

/* Replaces the body of httpd's error answer with the problem: drops every bucket up to EOS,
 * then writes the problem and EOS. Headers are set on the first call, before HTTP_HEADER (a
 * protocol filter, after this one) sends them. */
static apr_status_t problem_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    const char *text = f->ctx;
    apr_bucket *b;

    if (!text) {
        text = gs_json_to_string(r->pool, gs_httpd_problem(r, r->status, problem_slug(r->status),
                                                           problem_detail(r->status)));
        f->ctx = (void *)text;
        ap_set_content_type(r, "application/problem+json");
        r->content_encoding = NULL;
        r->content_languages = NULL;
        apr_table_unset(r->headers_out, "Content-Encoding");
        apr_table_unset(r->headers_out, "ETag");
        apr_table_unset(r->headers_out, "Last-Modified");
        apr_table_unset(r->headers_out, "Accept-Ranges");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
        if (r->status == HTTP_SERVICE_UNAVAILABLE) {
            apr_table_setn(r->headers_out, "Retry-After", GS_RETRY_AFTER_SECONDS);
        }
        ap_set_content_length(r, (apr_off_t)strlen(text));
    }
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_EOS(b)) {
            break;
        }
    }
    if (b == APR_BRIGADE_SENTINEL(bb)) {
        apr_brigade_cleanup(bb); /* more of the HTML page; nothing to pass yet */
        return APR_SUCCESS;
    }
    apr_brigade_cleanup(bb);
    if (!r->header_only) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(text, strlen(text),
                                                              bb->bucket_alloc));
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

static int has_problem_filter(request_rec *r)
{
    ap_filter_t *f;

    for (f = r->output_filters; f; f = f->next) {
        if (f->frec == problem_filter_handle) {
            return 1;
        }
    }
    return 0;
}

static void add_problem_filter(request_rec *r)
{
    if (!has_problem_filter(r)) {
        ap_add_output_filter_handle(problem_filter_handle, NULL, r, r->connection);
    }
}

static void gs_insert_error_filter(request_rec *r)
{
    /* redirects (3xx) keep their Location and body; only errors become problems (also for
     * HTTP/0.9, which gets the body without headers) */
    if (r->status >= 400 && is_api_request(r)) {
        add_problem_filter(r);
    }
}

/* A local ErrorDocument for an error httpd raised before post_read_request (a bad header, a
 * 414): the redirected request serves the document with the original status; the filter
 * replaces it. */
static void gs_insert_filter(request_rec *r)
{
    request_rec *first = r;

    if (!r->prev || r->status < 400) {
        return;
    }
    while (first->prev) {
        first = first->prev;
    }
    if (first->status >= 400 && is_api_request(first)) {
        add_problem_filter(r);
    }
}

/* Every error status httpd knows gets a (placeholder) custom response for this request, which
 * takes precedence over ErrorDocument; the problem filter then writes the real body. */
static int gs_post_read_request(request_rec *r)
{
    int status;

    if (r->main || !is_api_request(r)) {
        return DECLINED;
    }
    for (status = 400; status < 600; status++) {
        const char *line = ap_get_status_line(status);
        /* statuses httpd has no line for share 500's slot: set that one once */
        if (line && atoi(line) == status) {
            ap_custom_response(r, status, "\"");
        }
    }
    return DECLINED;
}

/* http_core answers TRACE in map_to_storage (echoing the request, Cookie included, unless
 * TraceEnable off); under the prefix the handler answers it instead. */
static int gs_trace_map_to_storage(request_rec *r)
{
    int rc;

    if (r->method_number != M_TRACE || r->main || !r->uri
        || !path_under_prefix(r->uri, gs_httpd_srv_conf(r->server)->prefix)) {
        return DECLINED;
    }
    rc = gs_httpd_handler(r);
    return rc == OK ? DONE : rc;
}

void gs_httpd_errors_register_hooks(void)
{
    static const char *const before_http_core[] = { "http_core.c", NULL };

    problem_filter_handle = ap_register_output_filter(GS_PROBLEM_FILTER, problem_filter, NULL,
                                                      AP_FTYPE_CONTENT_SET);
    ap_hook_insert_error_filter(gs_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_filter(gs_insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(gs_post_read_request, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_map_to_storage(gs_trace_map_to_storage, NULL, before_http_core, APR_HOOK_FIRST);
}
