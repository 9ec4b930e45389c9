/* gs_pace.c -- see gs_pace.h */
#include "gs_pace.h"
#include "gs_quota.h"

#define UNLIMITED 1e18
#define EPSILON 1e-9

void gs_pace_init(gs_pace_t *pc, int units_per_sec, apr_time_t now)
{
    pc->configured = units_per_sec > 0 ? (double)units_per_sec : 0.0;
    pc->rate = pc->configured;
    pc->admitted = 0.0;
    pc->hold_until = 0;
    pc->limited_at = 0;
    pc->raised_at = now;
    pc->first = 0;
    pc->n = 0;
}

/* Forgets the calls that left the window; returns the units of those still in it. */
static double in_window(gs_pace_t *pc, apr_time_t now)
{
    double sum = 0.0;
    int i;

    while (pc->n > 0 && pc->log[pc->first].at + GS_PACE_WINDOW + GS_PACE_MARGIN <= now) {
        pc->first = (pc->first + 1) % GS_PACE_LOG;
        pc->n--;
    }
    for (i = 0; i < pc->n; i++) {
        sum += pc->log[(pc->first + i) % GS_PACE_LOG].units;
    }
    return sum;
}

/* The climb back after a rate limit: GS_PACE_STEP of the configured rate per calm second (five
 * times that below the level Gmail admitted), up to that level until GS_PACE_PROBE_AFTER has
 * passed, then up to the configured rate. */
static void recover(gs_pace_t *pc, apr_time_t now)
{
    apr_time_t from = pc->limited_at + GS_PACE_CALM;
    double cap, step;

    if (!pc->limited_at || pc->rate >= pc->configured || now < from) {
        return;
    }
    if (pc->raised_at < from) {
        pc->raised_at = from;
    }
    while (pc->raised_at + APR_USEC_PER_SEC <= now && pc->rate < pc->configured) {
        pc->raised_at += APR_USEC_PER_SEC;
        cap = pc->configured;
        if (pc->admitted > 0.0 && pc->raised_at - pc->limited_at < GS_PACE_PROBE_AFTER
            && pc->admitted < cap) {
            cap = pc->admitted;
        }
        step = pc->configured * GS_PACE_STEP * (pc->rate < pc->admitted ? 5.0 : 1.0);
        pc->rate = pc->rate + step < cap ? pc->rate + step : (pc->rate > cap ? pc->rate : cap);
    }
}

double gs_pace_room(gs_pace_t *pc, apr_time_t now)
{
    double left;

    if (pc->configured <= 0.0) {
        return UNLIMITED;
    }
    if (now < pc->hold_until) {
        return 0.0;
    }
    recover(pc, now);
    left = pc->rate - in_window(pc, now);
    return left > 0.0 ? left : 0.0;
}

apr_interval_time_t gs_pace_take(gs_pace_t *pc, double units, apr_time_t now)
{
    double sum, freed = 0.0;
    apr_interval_time_t wait = 0;
    int i;

    if (pc->configured <= 0.0) {
        return 0;
    }
    if (now < pc->hold_until) {
        return pc->hold_until - now;
    }
    recover(pc, now);
    sum = in_window(pc, now);
    if (sum + units <= pc->rate + EPSILON || (pc->n == 0 && units > pc->rate)) {
        if (pc->n == GS_PACE_LOG) {
            /* merged into the newest call: it leaves the window later, which is on the safe side */
            gs_pace_call_t *last = &pc->log[(pc->first + pc->n - 1) % GS_PACE_LOG];
            last->units += units;
            last->at = now;
        }
        else {
            gs_pace_call_t *c = &pc->log[(pc->first + pc->n) % GS_PACE_LOG];
            c->at = now;
            c->units = units;
            pc->n++;
        }
        return 0;
    }
    /* wait until enough of the oldest calls have left the window */
    for (i = 0; i < pc->n; i++) {
        const gs_pace_call_t *c = &pc->log[(pc->first + i) % GS_PACE_LOG];
        freed += c->units;
        wait = c->at + GS_PACE_WINDOW + GS_PACE_MARGIN - now;
        if (sum - freed + units <= pc->rate + EPSILON || i == pc->n - 1) {
            break;
        }
    }
    return wait < 1000 ? 1000 : wait;
}

void gs_pace_limited(gs_pace_t *pc, double refused, apr_interval_time_t retry_after,
                     apr_time_t now)
{
    double admitted, lower, floor_rate;

    if (pc->configured <= 0.0) {
        return;
    }
    admitted = in_window(pc, now) - refused;
    if (admitted < 0.0) {
        admitted = 0.0;
    }
    floor_rate = pc->configured * GS_PACE_FLOOR;
    lower = pc->rate * GS_PACE_DECREASE;
    if (admitted < lower) {
        lower = admitted;
    }
    if (lower < floor_rate) {
        lower = floor_rate;
    }
    pc->rate = lower;
    pc->admitted = admitted > lower ? admitted : lower;
    pc->limited_at = now;
    pc->raised_at = now;
    if (retry_after > GS_RETRY_AFTER_MAX) {
        retry_after = GS_RETRY_AFTER_MAX;
    }
    if (retry_after > 0 && now + retry_after > pc->hold_until) {
        pc->hold_until = now + retry_after;
    }
}

void gs_pace_refund(gs_pace_t *pc, double units, apr_time_t now)
{
    int i;

    (void)in_window(pc, now);
    for (i = pc->n - 1; i >= 0 && units > 0.0; i--) {
        gs_pace_call_t *c = &pc->log[(pc->first + i) % GS_PACE_LOG];
        double back = c->units < units ? c->units : units;
        c->units -= back;
        units -= back;
    }
}

apr_interval_time_t gs_pace_hold(const gs_pace_t *pc, apr_time_t now)
{
    return pc->hold_until > now ? pc->hold_until - now : 0;
}

void gs_flight_init(gs_flight_t *fl, int max, int remembered)
{
    fl->max = max > 0 ? max : 1;
    fl->level = remembered > 0 ? remembered : GS_FLIGHT_START;
    if (fl->level > fl->max) {
        fl->level = fl->max;
    }
    fl->refused_ever = remembered > 0;
    fl->ceiling = 0;
    fl->ceiling_at = 0;
    fl->clean = 0;
    fl->changed = 0;
}

int gs_flight_round(gs_flight_t *fl, int sent, int refused, int paced, apr_time_t now)
{
    int answered = sent - refused, lower;

    if (fl->ceiling && now - fl->ceiling_at >= GS_FLIGHT_CEILING_TTL) {
        fl->ceiling = 0;
    }
    if (refused > 0) {
        /* Gmail answered `answered` parts at once: that many fit, more did not */
        lower = answered > 0 ? answered : (int)(fl->level * GS_FLIGHT_DECREASE);
        if (lower >= fl->level) {
            lower = fl->level - 1;
        }
        if (lower < 1) {
            lower = 1;
        }
        if (lower != fl->level) {
            fl->changed = 1;
        }
        /* the level that failed: one more than Gmail answered, else what was sent */
        if (!fl->ceiling || lower + 1 < fl->ceiling) {
            fl->ceiling = answered > 0 ? lower + 1 : sent;
        }
        fl->ceiling_at = now;
        fl->level = lower;
        fl->clean = 0;
        fl->refused_ever = 1;
        return fl->level;
    }
    if (paced) {
        fl->clean = 0;
        return fl->level;
    }
    if (sent < fl->level || fl->level >= fl->max) {
        return fl->level;
    }
    if (!fl->refused_ever) {
        fl->level = fl->level * 2 < fl->max ? fl->level * 2 : fl->max;
        fl->changed = 1;
        return fl->level;
    }
    if (++fl->clean < GS_FLIGHT_GROW_ROUNDS) {
        return fl->level;
    }
    fl->clean = 0;
    if (fl->ceiling && fl->level + 1 >= fl->ceiling) {
        return fl->level;
    }
    fl->level++;
    fl->changed = 1;
    return fl->level;
}
