/* gs_quota.c -- see gs_quota.h */
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
