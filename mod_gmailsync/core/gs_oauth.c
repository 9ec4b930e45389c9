/* gs_oauth.c -- see gs_oauth.h */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_error.h"
#include "gs_json.h"
#include "gs_oauth.h"

gs_oauth_t *gs_oauth_make(apr_pool_t *p, const char *token_url, const char *client_id,
                          const char *client_secret, const char *refresh_token)
{
    gs_oauth_t *o = apr_pcalloc(p, sizeof *o);

    o->pool = p;
    o->token_url = token_url;
    o->client_id = client_id;
    o->client_secret = client_secret;
    o->refresh_token = refresh_token;
    return o;
}

const char *gs_oauth_access_token_problem(const char *s, apr_size_t len)
{
    apr_size_t i = 0;

    if (!s || len == 0) {
        return "empty";
    }
    if (len > GS_OAUTH_ACCESS_TOKEN_MAX) {
        return "longer than " APR_STRINGIFY(GS_OAUTH_ACCESS_TOKEN_MAX) " bytes";
    }
    /* RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
     * *"=" */
    for (; i < len && (apr_isalnum(s[i]) || strchr("-._~+/", s[i])) && s[i]; i++) {
    }
    if (i == 0) {
        return "not a bearer token (RFC 6750 b64token)";
    }
    for (; i < len && s[i] == '='; i++) {
    }
    if (i < len) {
        return (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? "a control character in it"
               : "not a bearer token (RFC 6750 b64token)";
    }
    return NULL;
}

const char *gs_oauth_refresh_token_problem(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (!s || len == 0) {
        return "empty";
    }
    if (len > GS_OAUTH_REFRESH_TOKEN_MAX) {
        return "longer than " APR_STRINGIFY(GS_OAUTH_REFRESH_TOKEN_MAX) " bytes";
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return "not visible ASCII";
        }
    }
    return NULL;
}

void gs_oauth_set_token(gs_oauth_t *o, const char *access_token, apr_interval_time_t remaining,
                        apr_time_t now)
{
    o->access_token = access_token && !gs_oauth_access_token_problem(access_token,
                                                                     strlen(access_token))
                      ? apr_pstrdup(o->pool, access_token) : NULL;
    o->expires_at = now + (remaining > 0 ? remaining : 0);
}

void gs_oauth_invalidate(gs_oauth_t *o)
{
    o->access_token = NULL;
    o->expires_at = 0;
}

int gs_oauth_needs_refresh(const gs_oauth_t *o, apr_time_t now)
{
    return !o->access_token || o->expires_at - GS_OAUTH_MARGIN <= now;
}

gs_http_request_t *gs_oauth_refresh_request(const gs_oauth_t *o, apr_pool_t *p)
{
    gs_http_request_t *req = gs_http_request(p, "POST", o->token_url);

    req->body = apr_pstrcat(p, "grant_type=refresh_token&refresh_token=",
                            gs_http_escape(p, o->refresh_token ? o->refresh_token : ""),
                            "&client_id=", gs_http_escape(p, o->client_id),
                            "&client_secret=", gs_http_escape(p, o->client_secret), NULL);
    req->body_len = strlen(req->body);
    gs_http_add_header(req, p, "Content-Type", "application/x-www-form-urlencoded");
    gs_http_add_header(req, p, "Accept", "application/json");
    return req;
}

static const char *string_member(json_object *obj, const char *key)
{
    json_object *v;

    if (obj && json_object_object_get_ex(obj, key, &v)
        && json_object_is_type(v, json_type_string)) {
        return json_object_get_string(v);
    }
    return NULL;
}

/* The string member's length as JSON has it (a \u0000 inside does not shorten it), or 0. */
static apr_size_t string_member_len(json_object *obj, const char *key)
{
    json_object *v;

    if (obj && json_object_object_get_ex(obj, key, &v)
        && json_object_is_type(v, json_type_string)) {
        return (apr_size_t)json_object_get_string_len(v);
    }
    return 0;
}

gs_oauth_outcome_t gs_oauth_parse(gs_oauth_t *o, apr_pool_t *p, const gs_http_request_t *req,
                                  apr_time_t now, long *expires_in, const char **new_refresh,
                                  const char **why)
{
    const char *perr = NULL, *error;
    json_object *doc = NULL, *v;

    *new_refresh = NULL;
    if (req->status == 0) {
        *why = apr_psprintf(p, "token endpoint unreachable: %s",
                            req->transport_error ? req->transport_error : "transfer failed");
        return GS_OAUTH_RETRY;
    }
    if (req->resp_len) {
        doc = gs_json_parse(p, req->resp_body, req->resp_len, &perr);
    }
    if (req->status == 200) {
        const char *token, *bad;
        long ttl = 3600;

        if (!doc || !(token = string_member(doc, "access_token")) || !*token) {
            *why = "token endpoint answered 200 without an access token";
            return GS_OAUTH_RETRY;
        }
        /* it goes into an Authorization header: a CR LF in it would add a header of the
         * endpoint's choosing, megabytes of it would be stored and sent with every call */
        if ((bad = gs_oauth_access_token_problem(token, string_member_len(doc, "access_token")))) {
            *why = apr_psprintf(p, "token endpoint answered 200 with an unusable access token "
                                "(%s, %" APR_SIZE_T_FMT " bytes)", bad,
                                string_member_len(doc, "access_token"));
            return GS_OAUTH_INVALID;
        }
        if ((token = string_member(doc, "refresh_token")) && *token
            && (bad = gs_oauth_refresh_token_problem(token,
                                                     string_member_len(doc, "refresh_token")))) {
            *why = apr_psprintf(p, "token endpoint answered 200 with an unusable refresh token "
                                "(%s, %" APR_SIZE_T_FMT " bytes)", bad,
                                string_member_len(doc, "refresh_token"));
            return GS_OAUTH_INVALID;
        }
        token = string_member(doc, "access_token");
        if (json_object_object_get_ex(doc, "expires_in", &v)
            && (json_object_is_type(v, json_type_int)
                || json_object_is_type(v, json_type_string))) {
            ttl = (long)json_object_get_int64(v);
        }
        if (ttl <= 0 || ttl > 86400 * 7) {
            ttl = 3600;
        }
        gs_oauth_set_token(o, token, apr_time_from_sec(ttl), now);
        if ((token = string_member(doc, "refresh_token")) && *token) {
            o->refresh_token = apr_pstrdup(o->pool, token);
            *new_refresh = o->refresh_token;
        }
        *expires_in = ttl;
        return GS_OAUTH_OK;
    }
    error = string_member(doc, "error");
    *why = apr_psprintf(p, "token endpoint answered %d%s%s", req->status, error ? " " : "",
                        error ? gs_error_clean(p, error, 64) : "");
    if (req->status == 429 || req->status >= 500) {
        return GS_OAUTH_RETRY;
    }
    if (error && !strcmp(error, "invalid_grant")) {
        return GS_OAUTH_REVOKED;
    }
    return GS_OAUTH_CLIENT;
}
