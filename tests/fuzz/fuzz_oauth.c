/* fuzz_oauth.c -- the OAuth token endpoint's answers (gs_oauth_parse: the worker's refresh, the
 * connect flow's code exchange) and the profile answer of the connect flow
 * (gs_connect_profile_email). Input: the first byte picks the status, then the Content-Type
 * line, then the body. */
#include "fuzz.h"
#include "gs_connect.h"
#include "gs_http.h"
#include "gs_oauth.h"

static const int statuses[] = { 200, 200, 200, 0, 400, 401, 403, 429, 500, 503 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    gs_oauth_t *o;
    gs_http_request_t *req;
    const char *rest, *nl, *new_refresh = NULL, *why = NULL, *email;
    size_t left, ctlen;
    long expires_in = 0;
    apr_time_t now = apr_time_from_sec(1700000000);

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    req = gs_http_request(p, "POST", "http://127.0.0.1:1/token");
    req->status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    if (!req->status) {
        req->transport_error = "connection reset";
    }
    rest = (const char *)data + 1;
    left = size - 1;
    nl = memchr(rest, '\n', left);
    ctlen = nl ? (size_t)(nl - rest) : 0;
    req->content_type = nl ? fuzz_cstr(p, (const uint8_t *)rest, ctlen) : NULL;
    rest += nl ? ctlen + 1 : 0;
    left -= nl ? ctlen + 1 : 0;
    req->resp_body = fuzz_cstr(p, (const uint8_t *)rest, left);
    req->resp_len = left;

    o = gs_oauth_make(p, req->url, "client-id", "client-secret", "refresh-token");
    if (gs_oauth_parse(o, p, req, now, &expires_in, &new_refresh, &why) == GS_OAUTH_OK
        && gs_oauth_needs_refresh(o, now - apr_time_from_sec(3600))) {
        abort(); /* a token it accepted is not in place */
    }
    email = gs_connect_profile_email(p, req, &why);
    if (!email && !why) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
