/* gs_board.h -- the worker's live-progress lines on stdout, read by the parent daemon.
 *
 * Protocol "gs1": one line per event, at most GS_BOARD_LINE_MAX bytes including the '\n'
 * (below PIPE_BUF, so each line reaches a pipe in one piece), space-separated key=value fields
 * after the two-word prefix; values never contain spaces. Readers must ignore unknown keys and
 * unknown events, so fields can be added without a version change; an incompatible change
 * becomes "gs2".
 *
 *   gs1 state task=<uuid> state=RUNNING pid=<pid>
 *       the worker claimed or adopted the task
 *   gs1 progress task=<uuid> mode=<full|incremental> processed=<N> total=<M> pct=<0.00-99.00>
 *       throttled (at most every GS_BOARD_MIN_GAP); pct never decreases and stays below 100
 *   gs1 state task=<uuid> state=SUCCEEDED processed=<N> total=<N> pct=100.00
 *   gs1 state task=<uuid> state=FAILED code=<error_code>
 *   gs1 state task=<uuid> state=LOST
 *       the task was taken away (cancelled, rescued): nothing more was written
 *   gs1 retrying task=<uuid> reason=<rate_limited|unavailable> wait_ms=<N> attempt=<N>
 *       the worker waits wait_ms before asking Gmail again (attempt: retries since the last
 *       successful answer)
 *   gs1 retrying task=<uuid> reason=none
 *       a call succeeded again: the wait is over
 *   gs1 calls task=<uuid> 2xx=<N> 4xx=<N> 429=<N> 5xx=<N> error=<N>
 *       at the end: Gmail's answers (requests and batch parts) by class; error = no answer
 *
 * The database stays the truth: the board is a best-effort cache, and the worker keeps syncing
 * when nobody reads its stdout (EPIPE) or the pipe is full (lines are dropped, never waited for).
 */
#ifndef GS_BOARD_H
#define GS_BOARD_H

#include <apr_pools.h>
#include <apr_time.h>

#define GS_BOARD_LINE_MAX 256
#define GS_BOARD_MIN_GAP  apr_time_from_msec(200)

/* Classes of Gmail answers, in the order of the calls line. */
#define GS_BOARD_CALL_CLASSES 5
extern const char *const gs_board_call_class_names[GS_BOARD_CALL_CLASSES];
/* 2xx (and other non-error statuses) -> 0, 4xx except 429 -> 1, 429 -> 2, 5xx -> 3, 0 -> 4 */
int gs_board_call_class(int status);

typedef struct {
    char event[16];          /* "state" or "progress" */
    char task[40];
    char state[16];          /* state events */
    char mode[16];           /* progress events */
    char code[32];           /* FAILED */
    char reason[16];         /* retrying events: rate_limited, unavailable or none */
    apr_int64_t wait_ms;     /* retrying */
    apr_int64_t attempt;     /* retrying */
    apr_int64_t processed, total;
    int pct;                 /* hundredths of a percent; -1 if absent */
    long pid;                /* RUNNING; 0 if absent */
    apr_int64_t calls[GS_BOARD_CALL_CLASSES];   /* calls events */
} gs_board_line_t;

/* Formats lines into buf (GS_BOARD_LINE_MAX bytes), '\n'- and NUL-terminated; returns the length
 * including the '\n' (at most GS_BOARD_LINE_MAX - 1), not the NUL. */
int gs_board_progress(char *buf, const char *task, const char *mode, apr_int64_t processed,
                      apr_int64_t total, int pct);
int gs_board_state(char *buf, const char *task, const char *state, const char *extra);

/* reason NULL: the "reason=none" line (a call succeeded again). */
int gs_board_retrying(char *buf, const char *task, const char *reason, apr_int64_t wait_ms,
                      apr_int64_t attempt);

int gs_board_calls(char *buf, const char *task, const apr_int64_t calls[GS_BOARD_CALL_CLASSES]);

/* Parses one line (with or without its '\n'). APR_EINVAL if it is not a gs1 line. */
apr_status_t gs_board_parse(const char *line, gs_board_line_t *out);

#endif /* GS_BOARD_H */
