/* gs_log.h -- logging injected into the core library.
 *
 * The core never includes httpd headers; whoever hosts it (mod_gmailsync, the worker, unit tests)
 * installs a callback. Levels mirror httpd's APLOG_* numbers so the glue can pass them through.
 * Log lines are structured: "event=<name> key=value ..."; never pass a token or secret.
 */
#ifndef GS_LOG_H
#define GS_LOG_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_time.h>

typedef enum {
    GS_LOG_EMERG = 0, GS_LOG_ALERT, GS_LOG_CRIT, GS_LOG_ERR, GS_LOG_WARNING,
    GS_LOG_NOTICE, GS_LOG_INFO, GS_LOG_DEBUG, GS_LOG_TRACE1
} gs_log_level_t;

#define GS_LOG_MARK __FILE__, __LINE__

/* Writes one finished message. `rv` is APR_SUCCESS or the status the message is about. */
typedef void gs_log_print_cb(void *baton, const char *file, int line, gs_log_level_t level,
                             apr_status_t rv, const char *msg);
/* Answers whether `level` would be written, so callers can skip formatting. */
typedef int gs_log_is_level_cb(void *baton, gs_log_level_t level);

/* Installs the sink; NULL callbacks restore the default (stderr, levels up to INFO). Not thread-safe:
 * call once at startup before threads exist. */
void gs_log_set(gs_log_print_cb *print, gs_log_is_level_cb *is_level, void *baton);

int gs_log_is_level(gs_log_level_t level);

/* Formats into `p` (a scratch pool; NULL uses a small stack buffer) and hands the line to the sink. */
void gs_log_perror(const char *file, int line, gs_log_level_t level, apr_status_t rv,
                   apr_pool_t *p, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define gs_log_error(level, p, ...) gs_log_perror(GS_LOG_MARK, (level), APR_SUCCESS, (p), __VA_ARGS__)

const char *gs_log_level_name(gs_log_level_t level);

/* s as the value of a key=value field: as it is when it is a plain word (no space, control
 * character, '"', '\\' or '='), else in double quotes with '"' and '\\' escaped and control
 * bytes as \xHH, so that a user id with a space ("remote-user" names) stays one field. From p
 * when quoted; NULL gives "-". */
const char *gs_log_value(apr_pool_t *p, const char *s);

/* A repeat suppressor: one per call site whose error can repeat every tick (the daemon's claim
 * while PostgreSQL is away). The first line of a run of identical messages is written; the
 * repeats are counted and summarised at most once per `interval` as
 *   event=log.repeated count=N first=<RFC 3339> last=<RFC 3339> message=<the line>
 * and once more when the run ends (another message, or gs_log_repeat_end on success). Owned by
 * the caller (static storage or a struct field, zeroed); no locking: one thread per suppressor. */
#define GS_LOG_REPEAT_KEY_MAX 512
#define GS_LOG_REPEAT_INTERVAL apr_time_from_sec(60)

typedef struct {
    char msg[GS_LOG_REPEAT_KEY_MAX];   /* the current run's message ("" none) */
    gs_log_level_t level;
    apr_uint64_t total;                /* occurrences in the run */
    apr_uint64_t unreported;           /* repeats not summarised yet */
    apr_time_t first, last, next_summary;
    apr_interval_time_t interval;      /* 0: GS_LOG_REPEAT_INTERVAL */
} gs_log_repeat_t;

/* Logs one occurrence through the suppressor; `now` is the caller's clock (apr_time_now()).
 * Returns 1 when a line was written for it (first of a run), 0 when it was counted only. */
int gs_log_repeat(gs_log_repeat_t *rep, const char *file, int line, gs_log_level_t level,
                  apr_status_t rv, apr_time_t now, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* The condition is over: summarises the repeats not reported yet (if any) and resets. */
void gs_log_repeat_end(gs_log_repeat_t *rep, const char *file, int line, apr_time_t now);

#define GS_LOG_REPEAT(rep, level, rv, ...) \
    gs_log_repeat((rep), GS_LOG_MARK, (level), (rv), apr_time_now(), __VA_ARGS__)
#define GS_LOG_REPEAT_END(rep) gs_log_repeat_end((rep), GS_LOG_MARK, apr_time_now())

#endif /* GS_LOG_H */
