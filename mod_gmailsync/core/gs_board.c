/* gs_board.c -- see gs_board.h */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_board.h"

/* Ends the line apr_snprintf wrote (n characters, at most GS_BOARD_LINE_MAX - 2) with '\n' and
 * a NUL, so that it is a C string too. */
static int finish(char *buf, int n)
{
    if (n < 0) {
        n = 0;
    }
    if (n > GS_BOARD_LINE_MAX - 2) {
        n = GS_BOARD_LINE_MAX - 2;
    }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    return n + 1;
}

int gs_board_progress(char *buf, const char *task, const char *mode, apr_int64_t processed,
                      apr_int64_t total, int pct)
{
    return finish(buf, apr_snprintf(buf, GS_BOARD_LINE_MAX - 1,
                                    "gs1 progress task=%s mode=%s processed=%" APR_INT64_T_FMT
                                    " total=%" APR_INT64_T_FMT " pct=%d.%02d", task,
                                    mode ? mode : "-", processed, total, pct / 100, pct % 100));
}

int gs_board_state(char *buf, const char *task, const char *state, const char *extra)
{
    return finish(buf, apr_snprintf(buf, GS_BOARD_LINE_MAX - 1, "gs1 state task=%s state=%s%s%s",
                                    task, state, extra && *extra ? " " : "", extra ? extra : ""));
}

int gs_board_retrying(char *buf, const char *task, const char *reason, apr_int64_t wait_ms,
                      apr_int64_t attempt)
{
    if (!reason) {
        return finish(buf, apr_snprintf(buf, GS_BOARD_LINE_MAX - 1,
                                        "gs1 retrying task=%s reason=none", task));
    }
    return finish(buf, apr_snprintf(buf, GS_BOARD_LINE_MAX - 1,
                                    "gs1 retrying task=%s reason=%s wait_ms=%" APR_INT64_T_FMT
                                    " attempt=%" APR_INT64_T_FMT, task, reason, wait_ms, attempt));
}

static void copy_field(char *dst, size_t size, const char *v, size_t len)
{
    if (len >= size) {
        len = size - 1;
    }
    memcpy(dst, v, len);
    dst[len] = '\0';
}

/* "12.34" -> 1234; -1 when malformed */
static apr_int64_t parse_count(const char *v, size_t len)
{
    char buf[24];

    copy_field(buf, sizeof buf, v, len);
    return apr_atoi64(buf);
}

static int parse_pct(const char *v, size_t len)
{
    char tmp[16];
    char *end;
    double d;

    if (!len || len >= sizeof tmp) {
        return -1;
    }
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    d = strtod(tmp, &end);
    if (*end || d < 0.0 || d > 100.0) {
        return -1;
    }
    return (int)(d * 100.0 + 0.5);
}

const char *const gs_board_call_class_names[GS_BOARD_CALL_CLASSES] = {
    "2xx", "4xx", "429", "5xx", "error"
};

int gs_board_call_class(int status)
{
    if (status == 0) {
        return 4;
    }
    if (status == 429) {
        return 2;
    }
    if (status >= 500) {
        return 3;
    }
    return status >= 400 ? 1 : 0;
}

int gs_board_calls(char *buf, const char *task, const apr_int64_t calls[GS_BOARD_CALL_CLASSES])
{
    return finish(buf, apr_snprintf(buf, GS_BOARD_LINE_MAX - 1,
                                    "gs1 calls task=%s 2xx=%" APR_INT64_T_FMT " 4xx=%"
                                    APR_INT64_T_FMT " 429=%" APR_INT64_T_FMT " 5xx=%"
                                    APR_INT64_T_FMT " error=%" APR_INT64_T_FMT, task, calls[0],
                                    calls[1], calls[2], calls[3], calls[4]));
}

apr_status_t gs_board_parse(const char *line, gs_board_line_t *out)
{
    const char *p = line;

    memset(out, 0, sizeof *out);
    out->pct = -1;
    if (strncmp(p, "gs1 ", 4)) {
        return APR_EINVAL;
    }
    p += 4;
    {
        size_t n = strcspn(p, " \n");
        copy_field(out->event, sizeof out->event, p, n);
        p += n;
    }
    if (strcmp(out->event, "state") && strcmp(out->event, "progress")
        && strcmp(out->event, "calls") && strcmp(out->event, "retrying")) {
        return APR_EINVAL;
    }
    while (*p == ' ') {
        const char *key = ++p, *eq, *v;
        size_t klen, vlen;

        vlen = strcspn(p, " \n");
        eq = memchr(key, '=', vlen);
        p += vlen;
        if (!eq) {
            continue;
        }
        klen = (size_t)(eq - key);
        v = eq + 1;
        vlen = (size_t)(p - v);
        if (klen == 4 && !strncmp(key, "task", 4)) {
            copy_field(out->task, sizeof out->task, v, vlen);
        }
        else if (!strcmp(out->event, "calls")) {
            int c;
            for (c = 0; c < GS_BOARD_CALL_CLASSES; c++) {
                if (klen == strlen(gs_board_call_class_names[c])
                    && !strncmp(key, gs_board_call_class_names[c], klen)) {
                    out->calls[c] = parse_count(v, vlen);
                }
            }
        }
        else if (klen == 5 && !strncmp(key, "state", 5)) {
            copy_field(out->state, sizeof out->state, v, vlen);
        }
        else if (klen == 4 && !strncmp(key, "mode", 4)) {
            copy_field(out->mode, sizeof out->mode, v, vlen);
        }
        else if (klen == 4 && !strncmp(key, "code", 4)) {
            copy_field(out->code, sizeof out->code, v, vlen);
        }
        else if (klen == 6 && !strncmp(key, "reason", 6)) {
            copy_field(out->reason, sizeof out->reason, v, vlen);
        }
        else if (klen == 7 && !strncmp(key, "wait_ms", 7)) {
            out->wait_ms = parse_count(v, vlen);
        }
        else if (klen == 7 && !strncmp(key, "attempt", 7)) {
            out->attempt = parse_count(v, vlen);
        }
        else if (klen == 9 && !strncmp(key, "processed", 9)) {
            out->processed = apr_atoi64(v);
        }
        else if (klen == 5 && !strncmp(key, "total", 5)) {
            out->total = apr_atoi64(v);
        }
        else if (klen == 3 && !strncmp(key, "pct", 3)) {
            out->pct = parse_pct(v, vlen);
        }
        else if (klen == 3 && !strncmp(key, "pid", 3)) {
            out->pid = atol(v);
        }
    }
    return out->task[0] ? APR_SUCCESS : APR_EINVAL;
}
