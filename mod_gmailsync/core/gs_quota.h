/* gs_quota.h -- staying inside Gmail's per-user quota, and backing off when we do not.
 *
 * Gmail charges each call in quota units (getProfile 1, labels.list 1, history.list 2, messages.list 5,
 * messages.get 5 per batch part) against a per-user budget of 250 units/s by default. A client
 * that sends at will gets 429s and wastes its retry budget; gs_pace.h keeps the worker just
 * under the limit. This file: the costs, and the retry decision after a failure.
 *
 * Pure arithmetic on times passed in by the caller: no sleeping, no clock, unit-testable.
 */
#ifndef GS_QUOTA_H
#define GS_QUOTA_H

#include <apr_time.h>

/* Gmail's costs in quota units. */
#define GS_UNITS_GET_PROFILE   1
#define GS_UNITS_LABELS_LIST   1
#define GS_UNITS_HISTORY_LIST  2
#define GS_UNITS_MESSAGES_LIST 5
#define GS_UNITS_MESSAGES_GET  5

/* Longest Retry-After the worker honours; a larger value is treated as this. */
#define GS_RETRY_AFTER_MAX apr_time_from_sec(300)

/* The wait before retry number `attempt` (1 = first retry): exponential from `base`, capped at
 * `max`, with "equal jitter" (half fixed, half random; `random01` in [0, 1)), and never shorter
 * than `retry_after` (a server's Retry-After, 0 if none; itself capped at GS_RETRY_AFTER_MAX). */
apr_interval_time_t gs_backoff_delay(int attempt, apr_interval_time_t base,
                                     apr_interval_time_t max, apr_interval_time_t retry_after,
                                     double random01);

/* The retry decision after a retryable failure (429, 403 rate limits, 5xx, no answer). The
 * budget is counted in time: retrying goes on until `budget` has passed since the last
 * successful Gmail answer (`last_ok`), whatever the number of failed answers in between, so that a
 * storm of rate limits is waited out while a Gmail that never recovers ends the task in bounded
 * time. `max_attempts` (> 0) additionally caps the consecutive failures of one request; 0: no cap. */
typedef struct {
    apr_interval_time_t budget;          /* > 0 */
    int max_attempts;                    /* 0: only the time budget counts */
    apr_interval_time_t base, max;       /* backoff, see gs_backoff_delay */
} gs_retry_policy_t;

typedef enum {
    GS_RETRY_WAIT = 0,                   /* wait *wait, then ask again */
    GS_RETRY_OUT_OF_TIME,                /* the time budget is spent (or Retry-After outlasts it) */
    GS_RETRY_OUT_OF_ATTEMPTS             /* more than max_attempts consecutive failures */
} gs_retry_verdict_t;

/* Decides retry number `attempt` (1 = first retry) at `now`: the backoff of gs_backoff_delay
 * (never shorter than `retry_after`), shortened so that the last try falls at the end of the
 * budget. A Retry-After (> 0) is the wait, exactly: neither shorter nor stretched by the
 * backoff. A Retry-After that reaches past the end of the budget gives up at once: Gmail said it
 * will not answer before then. */
gs_retry_verdict_t gs_retry_decide(const gs_retry_policy_t *pol, apr_time_t last_ok,
                                   apr_time_t now, int attempt, apr_interval_time_t retry_after,
                                   double random01, apr_interval_time_t *wait);

/* Parses a Retry-After header: delta-seconds or an HTTP date (relative to now). 0 if absent or
 * unparseable. */
apr_interval_time_t gs_parse_retry_after(const char *value, apr_time_t now);

/* Gmail's per-user lockout: a 429 (or 403 rateLimitExceeded/userRateLimitExceeded) whose message
 * says "User-rate limit exceeded.  Retry after 2026-12-06T20:15:00.123Z" and that has no
 * Retry-After header. Asking again before that time lengthens the lockout, so the worker waits
 * until it (plus this margin for the clocks' difference) or, if that is past the retry budget,
 * gives up at once. */
#define GS_LOCKOUT_MARGIN apr_time_from_sec(1)

/* Parses a strict RFC 3339 UTC time at s, as Google writes it: "YYYY-MM-DDTHH:MM:SS" with an
 * optional fraction of 1-9 digits and "Z" (no other offset, no blanks, a year from 1970; a date
 * or time that does not exist, such as Feb 30 or 24:00, is refused). APR_SUCCESS with *t and,
 * if end is not NULL, *end just after the "Z"; APR_EINVAL otherwise. strptime and timegm do the
 * calendar. */
apr_status_t gs_parse_rfc3339_utc(const char *s, apr_time_t *t, const char **end);

/* The end of a lockout named in an error message ("... Retry after <RFC 3339 time>"), or 0. */
apr_time_t gs_parse_retry_after_text(const char *message);

/* The retry decision after a lockout that ends at `until` (absolute): wait until then plus
 * GS_LOCKOUT_MARGIN (not capped at GS_RETRY_AFTER_MAX: an early call lengthens the lockout;
 * the last wait is shortened to the end of the budget), or GS_RETRY_OUT_OF_TIME at once when
 * `until` is past the budget's end, or GS_RETRY_OUT_OF_ATTEMPTS as gs_retry_decide. */
gs_retry_verdict_t gs_retry_decide_lockout(const gs_retry_policy_t *pol, apr_time_t last_ok,
                                           apr_time_t now, int attempt, apr_time_t until,
                                           apr_interval_time_t *wait);

#endif /* GS_QUOTA_H */
