/* gs_log.c -- see gs_log.h */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>

#include "gs_log.h"

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug", "trace1"
};

static void stderr_print(void *baton, const char *file, int line, gs_log_level_t level,
                         apr_status_t rv, const char *msg)
{
    char errbuf[128];
    (void)baton;
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "[gmailsync:%s] %s: (%d) %s (%s:%d)\n", gs_log_level_name(level), msg,
                rv, apr_strerror(rv, errbuf, sizeof errbuf), file, line);
    }
    else {
        fprintf(stderr, "[gmailsync:%s] %s\n", gs_log_level_name(level), msg);
    }
}

static int stderr_is_level(void *baton, gs_log_level_t level)
{
    (void)baton;
    return level <= GS_LOG_INFO;
}

static gs_log_print_cb *log_print = stderr_print;
static gs_log_is_level_cb *log_is_level = stderr_is_level;
static void *log_baton;

void gs_log_set(gs_log_print_cb *print, gs_log_is_level_cb *is_level, void *baton)
{
    log_print = print ? print : stderr_print;
    log_is_level = is_level ? is_level : stderr_is_level;
    log_baton = baton;
}

int gs_log_is_level(gs_log_level_t level)
{
    return log_is_level(log_baton, level);
}

const char *gs_log_level_name(gs_log_level_t level)
{
    if ((unsigned)level < sizeof level_names / sizeof level_names[0]) {
        return level_names[level];
    }
    return "trace";
}

void gs_log_perror(const char *file, int line, gs_log_level_t level, apr_status_t rv,
                   apr_pool_t *p, const char *fmt, ...)
{
    va_list ap;
    char buf[2048];
    const char *msg;

    if (!log_is_level(log_baton, level)) {
        return;
    }
    va_start(ap, fmt);
    if (p) {
        msg = apr_pvsprintf(p, fmt, ap);
    }
    else {
        apr_vsnprintf(buf, sizeof buf, fmt, ap);
        msg = buf;
    }
    va_end(ap);
    log_print(log_baton, file, line, level, rv, msg);
}

/* ------------------------------------------------------------------ repeat suppressor */

static void rfc3339(apr_time_t t, char out[32])
{
    apr_time_exp_t e;
    apr_size_t len;

    if (apr_time_exp_gmt(&e, t) != APR_SUCCESS
        || apr_strftime(out, &len, 32, "%Y-%m-%dT%H:%M:%SZ", &e) != APR_SUCCESS) {
        apr_cpystrn(out, "unknown", 32);
    }
}

static void repeat_summary(gs_log_repeat_t *rep, const char *file, int line, int ended)
{
    char first[32], last[32], buf[GS_LOG_REPEAT_KEY_MAX + 256];

    if (rep->unreported == 0) {
        return;
    }
    rfc3339(rep->first, first);
    rfc3339(rep->last, last);
    apr_snprintf(buf, sizeof buf, "event=log.repeated count=%" APR_UINT64_T_FMT " total=%"
                 APR_UINT64_T_FMT " first=%s last=%s ended=%s message=%s", rep->unreported,
                 rep->total, first, last, ended ? "yes" : "no", rep->msg);
    rep->unreported = 0;
    if (log_is_level(log_baton, rep->level)) {
        log_print(log_baton, file, line, rep->level, APR_SUCCESS, buf);
    }
}

int gs_log_repeat(gs_log_repeat_t *rep, const char *file, int line, gs_log_level_t level,
                  apr_status_t rv, apr_time_t now, const char *fmt, ...)
{
    char msg[GS_LOG_REPEAT_KEY_MAX];
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (rep->msg[0] && !strcmp(rep->msg, msg) && rep->level == level) {
        rep->total++;
        rep->unreported++;
        rep->last = now;
        if (now >= rep->next_summary) {
            repeat_summary(rep, file, line, 0);
            rep->next_summary = now + (rep->interval ? rep->interval : GS_LOG_REPEAT_INTERVAL);
        }
        return 0;
    }
    repeat_summary(rep, file, line, 1);  /* another message ends the previous run */
    apr_cpystrn(rep->msg, msg, sizeof rep->msg);
    rep->level = level;
    rep->total = 1;
    rep->unreported = 0;
    rep->first = rep->last = now;
    rep->next_summary = now + (rep->interval ? rep->interval : GS_LOG_REPEAT_INTERVAL);
    if (log_is_level(log_baton, level)) {
        log_print(log_baton, file, line, level, rv, msg);
    }
    return 1;
}

void gs_log_repeat_end(gs_log_repeat_t *rep, const char *file, int line, apr_time_t now)
{
    (void)now;
    if (!rep->msg[0]) {
        return;
    }
    repeat_summary(rep, file, line, 1);
    rep->msg[0] = '\0';
    rep->total = 0;
}

const char *gs_log_value(apr_pool_t *p, const char *s)
{
    const unsigned char *c;
    char *out, *o;
    int plain = 1;

    if (!s) {
        return "-";
    }
    for (c = (const unsigned char *)s; *c && plain; c++) {
        plain = *c > 0x20 && *c != 0x7f && *c != '"' && *c != '\\' && *c != '=';
    }
    if (plain && *s) {
        return s;
    }
    o = out = apr_palloc(p, strlen(s) * 4 + 3);
    *o++ = '"';
    for (c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        }
        else if (*c < 0x20 || *c == 0x7f) {
            o += apr_snprintf(o, 5, "\\x%02x", *c);
        }
        else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}
