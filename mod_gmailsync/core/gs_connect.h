/* gs_connect.h -- linking a Gmail account: the OAuth 2.0 authorization-code flow with PKCE.
 *
 * RFC 6749 section 4.1 with RFC 7636 (S256) and Google's parameters (access_type=offline,
 * prompt=consent, so that every consent yields a refresh token). What lives here is pure:
 * random values, the authorization URL, the code exchange, the profile read and the
 * revocation request. The httpd handlers (mod_gmailsync_oauth.c) store and check the state.
 *
 * No function returns a code, verifier, state or token inside a message (*why texts name the
 * endpoint's status and error code only).
 */
#ifndef GS_CONNECT_H
#define GS_CONNECT_H

#include <apr_pools.h>

#include "gs_http.h"
#include "gs_oauth.h"

#define GS_CONNECT_SCOPE         "https://www.googleapis.com/auth/gmail.readonly"
/* 32 random bytes in base64url without padding: 43 characters (RFC 7636 section 4.1). */
#define GS_CONNECT_RANDOM_BYTES  32
#define GS_CONNECT_TOKEN_LEN     43
/* Longest authorization code accepted from a callback (Google's are ~70 characters). */
#define GS_CONNECT_CODE_MAX      2048

/* base64url (RFC 4648 section 5) of len bytes, without padding, from p. */
const char *gs_base64url(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* A new random value of GS_CONNECT_TOKEN_LEN base64url characters (a state or a PKCE code
 * verifier); APR_EGENERAL if the system has no randomness to give. */
apr_status_t gs_connect_random(apr_pool_t *p, const char **out);

/* Is s a value gs_connect_random could have made (43 base64url characters)? */
int gs_connect_token_shape(const char *s);

/* The S256 code challenge of a verifier: base64url(SHA-256(verifier)). */
const char *gs_connect_challenge(apr_pool_t *p, const char *verifier);

/* The lowercase hex SHA-256 of s (how a state is stored), from p. */
const char *gs_connect_sha256_hex(apr_pool_t *p, const char *s);

typedef struct {
    const char *auth_url;        /* GmailSyncAuthURL */
    const char *client_id;
    const char *redirect_uri;    /* GmailSyncRedirectURI */
    const char *state;
    const char *challenge;       /* S256 of the verifier */
} gs_connect_auth_t;

/* The authorization URL to send the browser to (auth_url with its query extended). */
const char *gs_connect_auth_location(apr_pool_t *p, const gs_connect_auth_t *a);

/* POST token_url grant_type=authorization_code with the code, redirect_uri, the client and
 * the code_verifier. */
gs_http_request_t *gs_connect_exchange_request(apr_pool_t *p, const char *token_url,
                                               const char *client_id, const char *client_secret,
                                               const char *redirect_uri, const char *code,
                                               const char *verifier);

/* GET {api_base}/gmail/v1/users/me/profile with the access token. */
gs_http_request_t *gs_connect_profile_request(apr_pool_t *p, const char *api_base,
                                              const char *access_token);

/* Is a session cookie's value worth looking up: 1..GS_SESSION_COOKIE_MAX visible ASCII
 * characters, none of ; , " \ (what ap_cookie_read hands over is otherwise unchecked). */
#define GS_SESSION_COOKIE_MAX 512
int gs_session_token_plausible(const char *token);

/* Limits of an address (RFC 5321 section 4.5.3.1: a path of 256 octets with its brackets). */
#define GS_CONNECT_EMAIL_MAX       254
#define GS_CONNECT_EMAIL_LOCAL_MAX 64

/* Why s (len bytes) is not an address this server stores, or NULL when it is one: a strict
 * RFC 5322 addr-spec of printable ASCII, the local part a dot-atom of at most 64 bytes, the
 * domain two or more DNS labels (letters, digits, inner hyphens, 1..63 each), the whole at most
 * 254 bytes. A Google account's address is ASCII (an internationalized domain comes as its
 * A-labels); anything else -- a control, bidi or format character, invalid UTF-8, a NUL, a
 * quoted local part, an address literal -- is refused. Static text, never the address. */
const char *gs_connect_email_problem(const char *s, apr_size_t len);

/* The emailAddress of a 200 profile answer (from p), or NULL with *why: also when it is not an
 * address gs_connect_email_problem accepts. */
const char *gs_connect_profile_email(apr_pool_t *p, const gs_http_request_t *req,
                                     const char **why);

/* POST revoke_url token=<token> (RFC 7009). */
gs_http_request_t *gs_connect_revoke_request(apr_pool_t *p, const char *revoke_url,
                                             const char *token);

/* A libcurl client for one request-time call: connect 5 s, whole request 15 s, low speed 10 s. */
apr_status_t gs_connect_http(gs_http_t **http, apr_pool_t *p, const char **err);

#endif /* GS_CONNECT_H */
