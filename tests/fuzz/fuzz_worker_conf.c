/* fuzz_worker_conf.c -- the worker's configuration from its stdin (gs_worker_conf_parse, then
 * gs_worker_conf_check). Inputs naming a *_file key are skipped: those open files. */
#include "fuzz.h"
#include "gs_worker_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    gs_worker_conf_t *conf;
    const char *err = NULL;

    if (memmem(data, size, "_file", 5)) {
        return 0;
    }
    p = fuzz_pool();
    conf = gs_worker_conf_make(p);
    if (gs_worker_conf_parse(conf, p, (const char *)data, size, &err) == APR_SUCCESS) {
        (void)gs_worker_conf_check(conf, p, &err);
    }
    else if (!err) {
        abort();   /* a refusal names the line and the key */
    }
    apr_pool_destroy(p);
    return 0;
}
