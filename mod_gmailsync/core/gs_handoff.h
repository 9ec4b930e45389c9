/* gs_handoff.h -- the hand-off message a request handler writes to the daemon's Unix socket
 * after it created a task (mod_gmailsync_daemon.c):
 *
 *   gs1 start task=<uuid> user=<id>\n
 *
 * (the user id with '%', spaces, control and non-ASCII bytes as %XX),
 * at most GS_HANDOFF_MAX bytes. It only wakes the daemon (PostgreSQL is the queue), but the
 * daemon reads it from a socket, so it is parsed as untrusted input: fields in any order,
 * unknown ones ignored, values without spaces. Pure; fuzzed by tests/fuzz/fuzz_handoff.c.
 */
#ifndef GS_HANDOFF_H
#define GS_HANDOFF_H

#include <apr_errno.h>

#define GS_HANDOFF_MAX 512

typedef struct {
    char task[40];    /* 36 for a UUID */
    char user[257];
} gs_handoff_t;

/* Formats the message into buf (size bytes); returns its length, or -1 when it does not fit. */
int gs_handoff_format(char *buf, apr_size_t size, const char *task, const char *user);

/* Parses the len bytes of buf (not necessarily NUL-terminated). APR_EINVAL when it is not a
 * "gs1 start" line ending in '\n' with a task and a user that fit out's fields. */
apr_status_t gs_handoff_parse(const char *buf, apr_size_t len, gs_handoff_t *out);

#endif /* GS_HANDOFF_H */
