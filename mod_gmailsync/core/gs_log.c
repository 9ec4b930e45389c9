/* gs_log.c -- see gs_log.h */
#include <stdarg.h>
#include <stdio.h>

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
