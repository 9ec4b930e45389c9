/* fuzz_headers.c -- request headers the module reads besides Origin: Accept (gs_accept.c: JSON
 * or an event stream) and the session cookie's value (gs_session_token_plausible, then hashed
 * as the identity code does). Input: "accept\ncookie-value". */
#include "fuzz.h"
#include "gs_accept.h"
#include "gs_connect.h"
#include "gs_sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *accept = fuzz_cstr(p, data, size), *cookie = fuzz_split(accept);
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    int w;

    (void)gs_accept_wants_event_stream(accept);
    w = gs_accept_weight(accept, "application", "json", 0);
    if (w < -1 || w > 1000) {
        abort();
    }
    (void)gs_accept_weight(accept, "text", "event-stream", 1);
    if (gs_session_token_plausible(cookie)) {
        gs_sha256(cookie, strlen(cookie), digest);
    }
    (void)gs_connect_token_shape(cookie);
    apr_pool_destroy(p);
    return 0;
}
