/* gs_watch.h -- Gmail's users.watch and users.stop for push notifications (issue 26, sql/014).
 *
 * While GmailSyncPushTopic is set, the daemon watches every linked account (users.watch with the
 * topic and no label filter: every change of the mailbox is published) and renews each watch
 * well before it lapses: GS_WATCH_RENEW_AFTER after it was granted (Google advises daily), or
 * GS_WATCH_MARGIN before its expiration, or at half its granted lifetime when that is shorter
 * (a short expiration, as the fake can grant, is renewed in time too). A failed attempt waits
 * gs_watch_backoff(failures) before the next one. Disconnecting an account stops its watch.
 * Quota: watch costs 100 units, stop 50 (as Gmail counts them).
 */
#ifndef GS_WATCH_H
#define GS_WATCH_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gs_db.h"
#include "gs_http.h"

#define GS_WATCH_MIN_SCHEMA   14                 /* sql/014: the watch columns */
#define GS_WATCH_UNITS        100
#define GS_WATCH_STOP_UNITS   50
#define GS_WATCH_RENEW_AFTER  "86400"            /* seconds: renew a day after the grant */
#define GS_WATCH_MARGIN       "86400"            /* seconds: or a day before the expiration */
#define GS_WATCH_BACKOFF_BASE apr_time_from_sec(2)
#define GS_WATCH_BACKOFF_MAX  apr_time_from_sec(3600)

/* the time a watch is renewed at (sql/014's columns; NULL for an account never watched) */
#define GS_WATCH_RENEW_AT \
    "LEAST(watch_renewed_at + make_interval(secs => " GS_WATCH_RENEW_AFTER ")," \
    " watch_expires_at - LEAST(make_interval(secs => " GS_WATCH_MARGIN ")," \
    " (watch_expires_at - watch_renewed_at) / 2))"

#define GS_SQL_D_WATCH_PICK   "gs_d_watch_pick"   /* (lease s, limit) -> user_id, email,
                                                     refresh_token, access_token (when it has a
                                                     minute left, else NULL), its seconds left,
                                                     'true' when watched before, failures */
#define GS_SQL_D_WATCH_OK     "gs_d_watch_ok"     /* (expiration ms, history id, user_id) */
#define GS_SQL_D_WATCH_FAILED "gs_d_watch_failed" /* (error, retry in s, user_id) */
#define GS_SQL_WATCH_LIVE     "gs_watch_live"     /* (user_id) -> 'true' while a watch holds */
#define GS_SQL_WATCH_STATS    "gs_watch_stats"    /* () -> watched, due, lapsed, unwatched,
                                                     failing, max failures */
#define GS_SQL_PUSH_LATENCIES "gs_push_latencies" /* () -> seconds from a push's arrival to its
                                                     sync's RUNNING, tasks of the last day */

/* What /health and /metrics tell about the watches (every host). */
typedef struct {
    apr_int64_t watched;     /* linked accounts with a watch that has not lapsed */
    apr_int64_t due;         /* watched once, and at or past the renewal time (lapsed included) */
    apr_int64_t lapsed;      /* of those, lapsed */
    apr_int64_t unwatched;   /* linked accounts never watched yet */
    apr_int64_t failing;     /* linked accounts whose last attempt failed */
    apr_int64_t max_failures;/* the longest streak of failed attempts */
} gs_watch_stats_t;

/* POST {api_base}/gmail/v1/users/me/watch {"topicName": topic} (no label filter). */
gs_http_request_t *gs_watch_request(apr_pool_t *p, const char *api_base,
                                    const char *access_token, const char *topic);
/* POST {api_base}/gmail/v1/users/me/stop. */
gs_http_request_t *gs_watch_stop_request(apr_pool_t *p, const char *api_base,
                                         const char *access_token);
/* Reads watch's 200 answer: *history_id and *expiration_ms as decimal digits (from p).
 * APR_EINVAL with *why (static or from p) for any other answer. */
apr_status_t gs_watch_parse(apr_pool_t *p, const gs_http_request_t *req, const char **history_id,
                            const char **expiration_ms, const char **why);
/* The wait after the n-th consecutive failure (n >= 1): GS_WATCH_BACKOFF_BASE doubled each
 * time up to cap (GS_WATCH_BACKOFF_MAX when cap <= 0), and at least a Retry-After in seconds
 * (NULL or not digits: none). */
apr_interval_time_t gs_watch_backoff(int n, apr_interval_time_t cap, const char *retry_after);
/* The counts above, in the caller's transaction. */
apr_status_t gs_watch_stats(gs_db_t *db, apr_pool_t *p, gs_watch_stats_t *st);

#endif /* GS_WATCH_H */
