/* gs_gmail_retry.h -- internal to the Gmail client (gs_gmail.c, gs_gmail_fetch.c): how one
 * attempt is judged and what happens after it. Not for other callers: use gs_gmail.h. */
#ifndef GS_GMAIL_RETRY_H
#define GS_GMAIL_RETRY_H

#include "gs_gmail.h"

#define USERS_ME "/gmail/v1/users/me"

/* What went wrong with the last attempt, for the retry decision and the failure message. */
typedef struct {
    gs_gm_class_t cls;
    int status;                 /* 0: the transfer failed */
    const char *reason;         /* Gmail's reason, or the transport error */
    apr_interval_time_t retry_after;
    int concurrent;             /* "Too many concurrent requests for user" (not the quota) */
    apr_time_t until;           /* a rate limit's lockout end named in its message, or 0 */
} gs_attempt_t;

/* Whether an answer is Gmail's per-user concurrency limit rather than its quota. */
int gs_gmail_too_concurrent(int status, const char *body, apr_size_t len);

/* Waits (ticking) until the quota bucket grants `units`. */
apr_status_t gs_gmail_wait_quota(gs_gmail_t *gm, int units);

/* After a retryable failure: fails the task when attempt exceeds the budget, else logs
 * event=gmail.retry and sleeps the backoff (ticking). */
apr_status_t gs_gmail_back_off(gs_gmail_t *gm, apr_pool_t *p, const char *method,
                               const gs_attempt_t *a, int attempt, int parts);

/* Classifies a finished top-level request. */
void gs_gmail_judge(apr_pool_t *p, const gs_http_request_t *req, gs_attempt_t *a);

/* The failure for a non-retryable answer: api_disabled for 403 accessNotConfigured,
 * auth_revoked for other 401/403, internal otherwise. */
apr_status_t gs_gmail_fail_for(gs_gmail_t *gm, apr_pool_t *p, const char *method,
                               const gs_attempt_t *a);

/* Adds the bearer token. */
void gs_gmail_authorize(gs_gmail_t *gm, gs_http_request_t *req, apr_pool_t *p);

#endif /* GS_GMAIL_RETRY_H */
