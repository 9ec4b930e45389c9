/* fuzz_download.c -- the headers of an attachment download (gs_download.h) from a stored file
 * name and type, both the sender's. Input: "name\ntype". Oracle: the disposition is printable
 * ASCII, its filename is quoted without a quote or backslash inside, and its filename* (when
 * there is one) decodes to a name without a slash or backslash; the type is the input or
 * application/octet-stream. */
#include "fuzz.h"
#include "gs_download.h"

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *name = fuzz_cstr(p, data, size), *type = fuzz_split(name);
    const char *cd = gs_download_disposition(p, name, "fallback"), *c, *star, *t;

    for (c = cd; *c; c++) {
        if (*c < 0x20 || *c > 0x7E) {
            abort();
        }
    }
    if (strncmp(cd, "attachment; filename=\"", 22)) {
        abort();
    }
    for (c = cd + 22; *c && *c != '"'; c++) {
        if (*c == '\\') {
            abort();
        }
    }
    if (*c != '"' || (c[1] && strncmp(c + 1, "; filename*=UTF-8''", 19))) {
        abort();
    }
    star = c[1] ? c + 20 : NULL;
    for (c = star; c && *c; c++) {
        if (*c == '%') {
            int v = hex(c[1]) < 0 || hex(c[2]) < 0 ? -1 : hex(c[1]) << 4 | hex(c[2]);
            if (v < 0 || v == '/' || v == '\\') {
                abort();
            }
            c += 2;
        }
        else if (*c == '/' || *c == '\\' || *c == '"' || *c == ' ' || *c == ';') {
            abort();
        }
    }
    t = gs_download_type(type);
    if (strcmp(t, "application/octet-stream") && strcasecmp(t, type)) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
