/* fuzz_origin.c -- Origin headers (gs_origin_parse) and the host comparisons of the cross-origin
 * check (gs_host_equals, gs_host_matches_pattern). Input: "origin\nother". Oracle: a parsed
 * origin formats into text that parses to the same scheme, host and port. */
#include "fuzz.h"
#include "gs_origin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *text = fuzz_cstr(p, data, size), *other = fuzz_split(text);
    const char *why = NULL, *formatted;
    gs_origin_t o, again;

    if (gs_origin_parse(p, text, &o, &why) == APR_SUCCESS) {
        formatted = gs_origin_format(p, &o);
        if (gs_origin_parse(p, formatted, &again, &why) != APR_SUCCESS
            || strcmp(o.scheme, again.scheme) || strcmp(o.host, again.host)
            || o.port != again.port) {
            abort();
        }
        (void)gs_host_equals(other, o.host);
        (void)gs_host_matches_pattern(other, o.host);
    }
    (void)gs_host_equals(text, other);
    (void)gs_host_matches_pattern(text, other);
    apr_pool_destroy(p);
    return 0;
}
