/* gs_pace.h -- pacing Gmail calls just under the per-user quota, and the parts in flight just
 * under the per-user concurrency limit.
 *
 * Rate: Gmail counts quota units in fixed one-second windows whose phase the client does not
 * know. Any fixed window lies inside some sliding window of the same length, so a client that
 * never spends more than `rate` units in any sliding window of GS_PACE_WINDOW (plus a margin
 * for the spread of network delays) never goes over, whatever the phase, and still spends the
 * full quota: the burst is one window's worth at the start and nothing after. A rate-limit
 * answer (429, 403 rateLimitExceeded) means Gmail's quota is lower than ours (another client of
 * the same user, a lower project quota): the rate drops to what Gmail admitted in that window
 * (at least GS_PACE_DECREASE lower), no call goes out before Retry-After, and after
 * GS_PACE_CALM without one the rate climbs back by GS_PACE_STEP of the configured rate per
 * second: up to the level that was admitted, then (after GS_PACE_PROBE_AFTER) beyond it, up to
 * the configured rate.
 *
 * Concurrency: the parts in flight (batch parts of one round, all parallel batches together)
 * start at GS_FLIGHT_START (batches of 25 parts pass at Gmail where 100 fail), or at the level
 * that worked for the account last time. While no refusal was ever seen, a clean round at the
 * full level that did not wait for the quota doubles it, up to the configured maximum: more
 * parts in flight only help when the quota is not what limits the sync. "Too many concurrent
 * requests for user" (429 parts while the quota is not the cause) shrinks it to the number Gmail
 * answered (at least one part less; a quarter less if none was answered); from then on, after
 * GS_FLIGHT_GROW_ROUNDS such clean rounds it grows by one part, never back to a level that
 * failed within GS_FLIGHT_CEILING_TTL.
 *
 * Pure arithmetic on times passed in by the caller: no sleeping, no clock, unit-testable.
 */
#ifndef GS_PACE_H
#define GS_PACE_H

#include <apr_time.h>

#define GS_PACE_WINDOW        apr_time_from_sec(1)
#define GS_PACE_MARGIN        apr_time_from_msec(10)
#define GS_PACE_LOG           64        /* calls remembered in the window (more: merged) */
#define GS_PACE_DECREASE      0.98      /* a rate limit lowers the rate at least this much */
#define GS_PACE_FLOOR         0.10      /* never below this share of the configured rate */
#define GS_PACE_CALM          apr_time_from_sec(5)
#define GS_PACE_STEP          0.01      /* of the configured rate, per calm second */
#define GS_PACE_PROBE_AFTER   apr_time_from_sec(10)

#define GS_FLIGHT_START       25
#define GS_FLIGHT_DECREASE    0.75
#define GS_FLIGHT_GROW_ROUNDS 20
#define GS_FLIGHT_CEILING_TTL apr_time_from_sec(120)

typedef struct {
    apr_time_t at;
    double units;
} gs_pace_call_t;

typedef struct {
    double configured;          /* units per second; <= 0: unlimited */
    double rate;                /* units allowed in any window now */
    double admitted;            /* what Gmail admitted in the window of the last rate limit (0: none) */
    apr_time_t hold_until;      /* Retry-After: nothing goes out before */
    apr_time_t limited_at;      /* the last rate limit (0: none) */
    apr_time_t raised_at;       /* the last step up */
    gs_pace_call_t log[GS_PACE_LOG];
    int first, n;               /* ring of the calls in the window, oldest first */
} gs_pace_t;

void gs_pace_init(gs_pace_t *pc, int units_per_sec, apr_time_t now);

/* Units that may go out now (a large number when unlimited); 0 while holding for Retry-After. */
double gs_pace_room(gs_pace_t *pc, apr_time_t now);

/* 0 if `units` may go out now (then they are counted), else how long to wait before asking
 * again (nothing counted). A call larger than the rate goes out once the window is empty. */
apr_interval_time_t gs_pace_take(gs_pace_t *pc, double units, apr_time_t now);

/* Gmail refused `refused` of the units sent in the current window as over quota, saying
 * Retry-After `retry_after` (0: none). Lowers the rate and holds until Retry-After. */
void gs_pace_limited(gs_pace_t *pc, double refused, apr_interval_time_t retry_after,
                     apr_time_t now);

/* Gmail refused `units` of the last calls without charging them (too many concurrent
 * requests): they no longer count in the window. */
void gs_pace_refund(gs_pace_t *pc, double units, apr_time_t now);

/* How long until the hold for Retry-After ends (0: none). */
apr_interval_time_t gs_pace_hold(const gs_pace_t *pc, apr_time_t now);

typedef struct {
    int level;                  /* parts in flight allowed now, >= 1 */
    int max;                    /* configured: batch_size x parallel (and one window of quota) */
    int ceiling;                /* the lowest level that failed recently (0: none) */
    apr_time_t ceiling_at;
    int clean;                  /* rounds without a concurrency refusal since the last change */
    int refused_ever;           /* a refusal was seen (or remembered): grow one part at a time */
    int changed;                /* level differs from the one the run started with */
} gs_flight_t;

/* `remembered` (> 0): the level that worked for this account last time; else GS_FLIGHT_START
 * (at most max). */
void gs_flight_init(gs_flight_t *fl, int max, int remembered);

/* After a round of `sent` parts in which `refused` were refused as too many concurrent
 * requests; `paced`: the round waited for the quota (more parts at once would not have made the
 * sync faster). Returns the new level. */
int gs_flight_round(gs_flight_t *fl, int sent, int refused, int paced, apr_time_t now);

#endif /* GS_PACE_H */
