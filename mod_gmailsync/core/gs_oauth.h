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
    GS_OAUTH_CLIENT       /* the endpoint rejected our client (invalid_client...): configuration */
} gs_oauth_outcome_t;

gs_oauth_t *gs_oauth_make(apr_pool_t *p, const char *token_url, const char *client_id,
                          const char *client_secret, const char *refresh_token);

/* Installs a token from the cache with `remaining` time to live (as the database computed it). */
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
 * what went wrong otherwise (the endpoint's error code and status; never a token). */
gs_oauth_outcome_t gs_oauth_parse(gs_oauth_t *o, apr_pool_t *p, const gs_http_request_t *req,
                                  apr_time_t now, long *expires_in, const char **new_refresh,
                                  const char **why);

#endif /* GS_OAUTH_H */
