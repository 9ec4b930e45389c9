/* gs_connect.c -- see gs_connect.h */
#include <string.h>

#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_connect.h"
#include "gs_json.h"
#include "gs_sha256.h"

const char *gs_base64url(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = alphabet[v >> 6 & 63];
        *o++ = alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)data[i] << 16;
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
    }
    else if (len - i == 2) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = alphabet[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

apr_status_t gs_connect_random(apr_pool_t *p, const char **out)
{
    unsigned char raw[GS_CONNECT_RANDOM_BYTES];

    if (apr_generate_random_bytes(raw, sizeof raw) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *out = gs_base64url(p, raw, sizeof raw);
    memset(raw, 0, sizeof raw);
    return APR_SUCCESS;
}

int gs_session_token_plausible(const char *token)
{
    const char *c;

    if (!token || !*token || strlen(token) > GS_SESSION_COOKIE_MAX) {
        return 0;
    }
    for (c = token; *c; c++) {
        if (!apr_isgraph(*c) || *c == ';' || *c == ',' || *c == '"' || *c == '\\') {
            return 0;
        }
    }
    return 1;
}

int gs_connect_token_shape(const char *s)
{
    apr_size_t n = 0;

    if (!s) {
        return 0;
    }
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_') || n >= GS_CONNECT_TOKEN_LEN) {
            return 0;
        }
    }
    return n == GS_CONNECT_TOKEN_LEN;
}

const char *gs_connect_challenge(apr_pool_t *p, const char *verifier)
{
    unsigned char digest[GS_SHA256_DIGEST_LEN];

    gs_sha256(verifier, strlen(verifier), digest);
    return gs_base64url(p, digest, sizeof digest);
}

const char *gs_connect_sha256_hex(apr_pool_t *p, const char *s)
{
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    char *hex = apr_palloc(p, 65);

    gs_sha256(s, strlen(s), digest);
    gs_sha256_hex(digest, hex);
    return hex;
}

const char *gs_connect_auth_location(apr_pool_t *p, const gs_connect_auth_t *a)
{
    return apr_pstrcat(p, a->auth_url, strchr(a->auth_url, '?') ? "&" : "?",
                       "client_id=", gs_http_escape(p, a->client_id),
                       "&redirect_uri=", gs_http_escape(p, a->redirect_uri),
                       "&response_type=code",
                       "&scope=", gs_http_escape(p, GS_CONNECT_SCOPE),
                       "&access_type=offline&prompt=consent",
                       "&state=", gs_http_escape(p, a->state),
                       "&code_challenge=", gs_http_escape(p, a->challenge),
                       "&code_challenge_method=S256", NULL);
}

static gs_http_request_t *form_post(apr_pool_t *p, const char *url, const char *body)
{
    gs_http_request_t *req = gs_http_request(p, "POST", url);

    req->body = body;
    req->body_len = strlen(body);
    gs_http_add_header(req, p, "Content-Type", "application/x-www-form-urlencoded");
    gs_http_add_header(req, p, "Accept", "application/json");
    return req;
}

gs_http_request_t *gs_connect_exchange_request(apr_pool_t *p, const char *token_url,
                                               const char *client_id, const char *client_secret,
                                               const char *redirect_uri, const char *code,
                                               const char *verifier)
{
    return form_post(p, token_url,
                     apr_pstrcat(p, "grant_type=authorization_code&code=", gs_http_escape(p, code),
                                 "&redirect_uri=", gs_http_escape(p, redirect_uri),
                                 "&client_id=", gs_http_escape(p, client_id),
                                 "&client_secret=", gs_http_escape(p, client_secret),
                                 "&code_verifier=", gs_http_escape(p, verifier), NULL));
}

gs_http_request_t *gs_connect_profile_request(apr_pool_t *p, const char *api_base,
                                              const char *access_token)
{
    gs_http_request_t *req = gs_http_request(p, "GET",
                                             apr_pstrcat(p, api_base, "/gmail/v1/users/me/profile",
                                                         NULL));

    gs_http_add_header(req, p, "Authorization", apr_pstrcat(p, "Bearer ", access_token, NULL));
    gs_http_add_header(req, p, "Accept", "application/json");
    return req;
}

/* RFC 5322 atext */
static int is_atext(char c)
{
    return apr_isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

const char *gs_connect_email_problem(const char *s, apr_size_t len)
{
    const char *at, *label;
    apr_size_t i, local;
    int labels = 0;

    if (!s || len == 0) {
        return "empty";
    }
    if (len > GS_CONNECT_EMAIL_MAX) {
        return "longer than " APR_STRINGIFY(GS_CONNECT_EMAIL_MAX) " bytes";
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f) {
            return "a control character in it";
        }
        if (c >= 0x80) {
            return "a character outside printable ASCII in it (an address with a bidi, format "
                   "or other non-ASCII character is not stored)";
        }
    }
    if (!(at = memchr(s, '@', len)) || memchr(at + 1, '@', len - (apr_size_t)(at - s) - 1)) {
        return "not one local part and one domain (exactly one @)";
    }
    local = (apr_size_t)(at - s);
    if (local == 0 || local > GS_CONNECT_EMAIL_LOCAL_MAX) {
        return "a local part that is empty or longer than "
               APR_STRINGIFY(GS_CONNECT_EMAIL_LOCAL_MAX) " bytes";
    }
    /* dot-atom: atext runs separated by single dots */
    for (i = 0; i < local; i++) {
        if (s[i] == '.' ? i == 0 || i == local - 1 || s[i - 1] == '.' : !is_atext(s[i])) {
            return "a local part that is not a dot-atom";
        }
    }
    /* the domain: DNS labels */
    for (label = at + 1; ; label++) {
        const char *end = label;

        while (end < s + len && *end != '.') {
            if (!apr_isalnum(*end) && *end != '-') {
                return "a domain that is not a host name";
            }
            end++;
        }
        if (end == label || end - label > 63 || *label == '-' || end[-1] == '-') {
            return "a domain that is not a host name";
        }
        labels++;
        if (end == s + len) {
            break;
        }
        label = end;
    }
    return labels < 2 ? "a domain that is not a host name" : NULL;
}

const char *gs_connect_profile_email(apr_pool_t *p, const gs_http_request_t *req,
                                     const char **why)
{
    const char *perr = NULL, *email, *problem;
    json_object *doc, *v;

    if (req->status != 200) {
        *why = req->status ? apr_psprintf(p, "profile answered %d", req->status)
                           : apr_pstrcat(p, "profile unreachable: ", req->transport_error
                                         ? req->transport_error : "transfer failed", NULL);
        return NULL;
    }
    if (!(doc = gs_json_parse(p, req->resp_body, req->resp_len, &perr))
        || !json_object_object_get_ex(doc, "emailAddress", &v)
        || !json_object_is_type(v, json_type_string)) {
        *why = "profile answer without an emailAddress";
        return NULL;
    }
    email = json_object_get_string(v);
    if ((problem = gs_connect_email_problem(email, (apr_size_t)json_object_get_string_len(v)))) {
        *why = apr_pstrcat(p, "profile answer with an unacceptable emailAddress: ", problem, NULL);
        return NULL;
    }
    return apr_pstrdup(p, email);
}

gs_http_request_t *gs_connect_revoke_request(apr_pool_t *p, const char *revoke_url,
                                             const char *token)
{
    return form_post(p, revoke_url, apr_pstrcat(p, "token=", gs_http_escape(p, token), NULL));
}

apr_status_t gs_connect_http(gs_http_t **http, apr_pool_t *p, const char **err)
{
    gs_http_settings_t hs;

    memset(&hs, 0, sizeof hs);
    hs.timeout = apr_time_from_sec(15);
    hs.connect_timeout = apr_time_from_sec(5);
    hs.low_speed_time = apr_time_from_sec(10);
    hs.max_parallel = 1;
    hs.user_agent = "mod_gmailsync/" GS_VERSION " (gzip)";     /* see gmailsync_worker.c */
    return gs_curl_create(http, p, &hs, err);
}
