/* gs_http.c -- see gs_http.h: the implementation-independent part. */
#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_http.h"

static apr_status_t http_cleanup(void *data)
{
    gs_http_t *http = data;

    if (http->impl->destroy) {
        http->impl->destroy(http);
    }
    return APR_SUCCESS;
}

gs_http_t *gs_http_create(apr_pool_t *p, const gs_http_impl_t *impl, void *impl_data,
                          const gs_http_settings_t *settings)
{
    gs_http_t *http = apr_pcalloc(p, sizeof *http);

    http->impl = impl;
    http->impl_data = impl_data;
    http->settings = *settings;
    if (http->settings.max_parallel < 1) {
        http->settings.max_parallel = 1;
    }
    apr_pool_cleanup_register(p, http, http_cleanup, apr_pool_cleanup_null);
    return http;
}

void gs_http_set_tick(gs_http_t *http, gs_http_tick_cb *tick, void *baton)
{
    http->tick = tick;
    http->tick_baton = baton;
}

gs_http_request_t *gs_http_request(apr_pool_t *p, const char *method, const char *url)
{
    gs_http_request_t *req = apr_pcalloc(p, sizeof *req);

    req->method = method;
    req->url = url;
    req->resp_body = "";
    return req;
}

void gs_http_add_header(gs_http_request_t *req, apr_pool_t *p, const char *name,
                        const char *value)
{
    if (!req->headers) {
        req->headers = apr_array_make(p, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(req->headers, const char *) = apr_pstrcat(p, name, ": ", value, NULL);
}

apr_status_t gs_http_perform(gs_http_t *http, apr_pool_t *p, gs_http_request_t **reqs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        reqs[i]->status = 0;
        reqs[i]->transport_error = NULL;
        reqs[i]->timed_out = 0;
        reqs[i]->content_type = reqs[i]->retry_after = NULL;
        reqs[i]->resp_body = "";
        reqs[i]->resp_len = 0;
        reqs[i]->resp_file = NULL;
        reqs[i]->resp_file_len = 0;
        reqs[i]->too_large = 0;
    }
    return n > 0 ? http->impl->perform(http, p, reqs, n) : APR_SUCCESS;
}

apr_status_t gs_http_run_tick(gs_http_t *http)
{
    return http->tick ? http->tick(http->tick_baton) : APR_SUCCESS;
}

apr_status_t gs_http_sleep(gs_http_t *http, apr_interval_time_t d)
{
    apr_time_t until = apr_time_now() + d;
    apr_status_t rv;

    for (;;) {
        apr_time_t now = apr_time_now();
        if ((rv = gs_http_run_tick(http)) != APR_SUCCESS) {
            return rv;
        }
        if (now >= until) {
            return APR_SUCCESS;
        }
        apr_sleep(until - now < GS_HTTP_TICK ? until - now : GS_HTTP_TICK);
    }
}

const char *gs_http_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (apr_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}
