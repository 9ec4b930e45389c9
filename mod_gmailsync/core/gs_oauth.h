/* gs_oauth.h -- the user's Gmail access token: cached, refreshed through the token endpoint.
 *
 * The refresh token, the client secret and the access token live only in memory from the
 * owning pool and in the request bodies/headers built here; no function returns them inside a
 * message. The expiry is kept on the local clock, derived from "seconds left" as the database
 * (cached token) or the token endpoint (expires_in) state it, so host clock skew does not matter.
 */
#ifndef GS_OAUTH_H
#define GS_OAUTH_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gs_http.h"

/* Refresh this long before the stated expiry, so a token does not die mid-request. */
#define GS_OAUTH_MARGIN apr_time_from_sec(60)

/* Longest access token taken from a token endpoint (Google documents up to 2048 bytes). */
#define GS_OAUTH_ACCESS_TOKEN_MAX  4096
/* Longest refresh token taken from a token endpoint (Google documents up to 512 bytes). */
#define GS_OAUTH_REFRESH_TOKEN_MAX 4096

typedef struct {
    apr_pool_t *pool;            /* holds the tokens */
    const char *token_url;
    const char *client_id;
    const char *client_secret;
    const char *refresh_token;
    const char *access_token;    /* NULL until there is one */
    apr_time_t expires_at;       /* local clock */
} gs_oauth_t;

typedef enum {
    GS_OAUTH_OK = 0,      /* a new access token is in place */
    GS_OAUTH_RETRY,       /* transient (5xx, 429, transport, malformed answer): try again later */
    GS_OAUTH_REVOKED,     /* invalid_grant: the user must link the account again */
    GS_OAUTH_CLIENT,      /* the endpoint rejected our client (invalid_client...): configuration */
    GS_OAUTH_INVALID      /* a 200 whose access or refresh token is unusable (not RFC 6750's
                           * b64token, too long): nothing of it is kept or sent anywhere */
} gs_oauth_outcome_t;

/* Is s (len bytes) a usable bearer token: 1..GS_OAUTH_ACCESS_TOKEN_MAX characters of RFC 6750's
 * b64token (ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=" only at the end)? NULL
 * when it is, else why not (static text, never the token). */
const char *gs_oauth_access_token_problem(const char *s, apr_size_t len);

/* Is s (len bytes) a plausible refresh token: 1..GS_OAUTH_REFRESH_TOKEN_MAX visible ASCII
 * characters (RFC 6749 appendix A.17 without the space)? NULL when it is, else why not. */
const char *gs_oauth_refresh_token_problem(const char *s, apr_size_t len);

gs_oauth_t *gs_oauth_make(apr_pool_t *p, const char *token_url, const char *client_id,
                          const char *client_secret, const char *refresh_token);

/* Installs a token from the cache with `remaining` time to live (as the database computed it).
 * A token that is not a usable bearer token (gs_oauth_access_token_problem) is not installed:
 * the next call refreshes instead of sending it. */
void gs_oauth_set_token(gs_oauth_t *o, const char *access_token, apr_interval_time_t remaining,
                        apr_time_t now);

/* Forgets the access token (after Gmail rejected it with 401). */
void gs_oauth_invalidate(gs_oauth_t *o);

/* No usable token, or it expires within GS_OAUTH_MARGIN. */
int gs_oauth_needs_refresh(const gs_oauth_t *o, apr_time_t now);

/* The POST to the token endpoint (grant_type=refresh_token), from p. */
gs_http_request_t *gs_oauth_refresh_request(const gs_oauth_t *o, apr_pool_t *p);

/* Interprets the token endpoint's answer. On GS_OAUTH_OK the new token is installed and
 * *expires_in (seconds) and *new_refresh (a rotated refresh token, or NULL) are set. *why says
 * what went wrong otherwise (the endpoint's error code and status; never a token). A 200 whose
 * access token (or rotated refresh token) is unusable is GS_OAUTH_INVALID: nothing installed. */
gs_oauth_outcome_t gs_oauth_parse(gs_oauth_t *o, apr_pool_t *p, const gs_http_request_t *req,
                                  apr_time_t now, long *expires_in, const char **new_refresh,
                                  const char **why);

#endif /* GS_OAUTH_H */
