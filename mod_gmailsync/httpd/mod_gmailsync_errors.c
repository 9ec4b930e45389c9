/* mod_gmailsync_errors.c -- what httpd answers by itself under GmailSyncPrefix.
 *
 * TRACE: http_core answers it in map_to_storage, before any handler, echoing the request back
 * with its Cookie header (cross-site tracing) unless TraceEnable is off. A map_to_storage hook
 * that runs first sends TRACE under the prefix to the handler instead, which refuses it like
 * any method an endpoint does not take (405 problem with Allow), even where TraceEnable is on.
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

#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* The next character of a path that may still be percent-encoded; advances *s. */
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

/* 1 when path is the prefix or below it: "/api/gmail/sync", "/api/gmail/sync/...". */
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

    ap_hook_map_to_storage(gs_trace_map_to_storage, NULL, before_http_core, APR_HOOK_FIRST);
}
