/* fuzz_handoff.c -- the daemon's hand-off messages from its Unix socket (gs_handoff_parse).
 * Oracle: what it accepts formats back into a message that parses to the same fields. */
#include "fuzz.h"
#include "gs_handoff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gs_handoff_t m, again;
    char buf[GS_HANDOFF_MAX];
    int len;

    if (size >= GS_HANDOFF_MAX) {
        return 0;   /* the daemon reads at most GS_HANDOFF_MAX - 1 bytes */
    }
    if (gs_handoff_parse((const char *)data, size, &m) != APR_SUCCESS) {
        return 0;
    }
    if ((len = gs_handoff_format(buf, sizeof buf, m.task, m.user)) < 0) {
        return 0;   /* a long user and task together may not fit */
    }
    if (gs_handoff_parse(buf, (apr_size_t)len, &again) != APR_SUCCESS
        || strcmp(m.task, again.task) || strcmp(m.user, again.user)) {
        abort();
    }
    return 0;
}
