/* gs_quota.c -- see gs_quota.h */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, timegm */
#endif
#include <string.h>
#include <time.h>

#include <apr_date.h>
#include <apr_lib.h>

#include "gs_quota.h"

apr_interval_time_t gs_backoff_delay(int attempt, apr_interval_time_t base,
                                     apr_interval_time_t max, apr_interval_time_t retry_after,
                                     double random01)
{
    apr_interval_time_t d = base;
    int i;

    for (i = 1; i < attempt && d < max; i++) {
        d *= 2;
    }
    if (d > max) {
        d = max;
    }
    if (random01 < 0.0 || random01 >= 1.0) {
        random01 = 0.5;
    }
    d = d / 2 + (apr_interval_time_t)((double)(d / 2) * random01);
    if (retry_after > GS_RETRY_AFTER_MAX) {
        retry_after = GS_RETRY_AFTER_MAX;
    }
    return d > retry_after ? d : retry_after;
}

gs_retry_verdict_t gs_retry_decide(const gs_retry_policy_t *pol, apr_time_t last_ok,
                                   apr_time_t now, int attempt, apr_interval_time_t retry_after,
                                   double random01, apr_interval_time_t *wait)
{
    apr_interval_time_t left = last_ok + pol->budget - now, d;

    *wait = 0;
    if (pol->max_attempts > 0 && attempt > pol->max_attempts) {
        return GS_RETRY_OUT_OF_ATTEMPTS;
    }
    if (retry_after > GS_RETRY_AFTER_MAX) {
        retry_after = GS_RETRY_AFTER_MAX;
    }
    if (left <= 0 || retry_after > left) {
        return GS_RETRY_OUT_OF_TIME;
    }
    /* Gmail said when: that is the wait, no longer (the pacing lowers the rate instead); the
     * backoff is for answers that do not say */
    d = retry_after > 0 ? retry_after
                        : gs_backoff_delay(attempt, pol->base, pol->max, 0, random01);
    *wait = d < left ? d : left;
    return GS_RETRY_WAIT;
}

apr_interval_time_t gs_parse_retry_after(const char *value, apr_time_t now)
{
    apr_int64_t secs = 0;
    apr_time_t when;

    if (!value) {
        return 0;
    }
    while (apr_isspace(*value)) {
        value++;
    }
    if (apr_isdigit(*value)) {
        const char *c;

        for (c = value; apr_isdigit(*c); c++) {
            if (secs > 86400) {
                return GS_RETRY_AFTER_MAX;
            }
            secs = secs * 10 + (*c - '0');
        }
        while (apr_isspace(*c)) {
            c++;
        }
        return *c ? 0 : apr_time_from_sec(secs);
    }
    when = apr_date_parse_http(value);
    if (when == APR_DATE_BAD || when <= now) {
        return 0;
    }
    return when - now;
}

apr_status_t gs_parse_rfc3339_utc(const char *s, apr_time_t *t, const char **end)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    char copy[sizeof shape];
    struct tm tm, want, back;
    const char *c;
    time_t secs;
    apr_int64_t usec = 0, scale = 100000;
    int i, digits = 0;

    if (!s) {
        return APR_EINVAL;
    }
    /* the exact shape first (it also stops at a NUL): strptime alone would take "2026-1-6T1:2:3"
     * or leading blanks */
    for (i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !apr_isdigit(s[i]) : s[i] != shape[i]) {
            return APR_EINVAL;
        }
    }
    memcpy(copy, s, sizeof shape - 1);
    copy[sizeof shape - 1] = '\0';
    memset(&tm, 0, sizeof tm);
    c = strptime(copy, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!c || *c || tm.tm_year < 70) {
        return APR_EINVAL;
    }
    c = s + sizeof shape - 1;
    if (*c == '.') {
        for (c++; apr_isdigit(*c); c++, digits++) {
            if (digits < 6) {
                usec += (*c - '0') * scale;
                scale /= 10;
            }
        }
        if (digits < 1 || digits > 9) {
            return APR_EINVAL;
        }
    }
    if (*c != 'Z') {
        return APR_EINVAL;
    }
    tm.tm_isdst = 0;
    want = tm;                   /* timegm normalises its argument in place */
    secs = timegm(&tm);
    /* timegm normalises (Feb 30 is Mar 2, 24:00 the next day, :60 the next minute): only a time
     * that comes back unchanged existed */
    if (secs == (time_t)-1 || !gmtime_r(&secs, &back) || back.tm_year != want.tm_year
        || back.tm_mon != want.tm_mon || back.tm_mday != want.tm_mday
        || back.tm_hour != want.tm_hour || back.tm_min != want.tm_min
        || back.tm_sec != want.tm_sec) {
        return APR_EINVAL;
    }
    *t = apr_time_from_sec((apr_time_t)secs) + usec;
    if (end) {
        *end = c + 1;
    }
    return APR_SUCCESS;
}

apr_time_t gs_parse_retry_after_text(const char *message)
{
    static const char needle[] = "Retry after ";
    const char *at;
    apr_time_t until;

    if (!message || !(at = strstr(message, needle))) {
        return 0;
    }
    for (at += sizeof needle - 1; *at == ' '; at++) {
    }
    return gs_parse_rfc3339_utc(at, &until, NULL) == APR_SUCCESS && until > 0 ? until : 0;
}

gs_retry_verdict_t gs_retry_decide_lockout(const gs_retry_policy_t *pol, apr_time_t last_ok,
                                           apr_time_t now, int attempt, apr_time_t until,
                                           apr_interval_time_t *wait)
{
    apr_time_t budget_end = last_ok + pol->budget, at = until + GS_LOCKOUT_MARGIN;

    *wait = 0;
    if (pol->max_attempts > 0 && attempt > pol->max_attempts) {
        return GS_RETRY_OUT_OF_ATTEMPTS;
    }
    if (until > budget_end || now >= budget_end) {
        return GS_RETRY_OUT_OF_TIME;
    }
    if (at < now + GS_LOCKOUT_MARGIN) {
        at = now + GS_LOCKOUT_MARGIN;    /* already over by our clock: the clocks differ */
    }
    if (at > budget_end) {
        at = budget_end;
    }
    *wait = at - now;
    return GS_RETRY_WAIT;
}
