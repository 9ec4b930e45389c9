/* fuzz_board.c -- the worker's "gs1 ..." progress lines as the daemon reads them from its stdout
 * (gs_board_parse). Oracle: a parsed line's task formats back into a line that parses to it. */
#include "fuzz.h"
#include "gs_board.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    gs_board_line_t l, again;
    char buf[GS_BOARD_LINE_MAX];
    int n;

    if (size > 2048) {
        return 0;   /* the daemon's line buffer (GS_LINE_MAX) */
    }
    p = fuzz_pool();
    if (gs_board_parse(fuzz_cstr(p, data, size), &l) == APR_SUCCESS) {
        n = gs_board_progress(buf, l.task, l.mode, l.processed, l.total, l.pct < 0 ? 0 : l.pct);
        if (n <= 0 || n >= GS_BOARD_LINE_MAX || buf[n - 1] != '\n' || buf[n] != '\0'
            || gs_board_parse(buf, &again) != APR_SUCCESS || strcmp(again.task, l.task)) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
