/* fuzz.h -- what every libFuzzer harness of tests/fuzz shares: APR set up once, one subpool per
 * input (destroyed after it, so that LeakSanitizer sees what a parser leaks outside its pool),
 * and the input as a NUL-terminated copy for the parsers that take C strings.
 *
 * Built by scripts/fuzz (make fuzz B=build-fuzz CC=clang ...); each harness is
 * LLVMFuzzerTestOneInput over one parser of untrusted input.
 */
#ifndef GS_FUZZ_H
#define GS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static apr_pool_t *fuzz_root;

/* A harness's own setup, run once before the first input (libFuzzer's -timeout counts per
 * input): defined by the harnesses that need one. */
void fuzz_setup(void) __attribute__((weak));

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
        abort();
    }
    if (fuzz_setup) {
        fuzz_setup();
    }
    return 0;
}

/* A pool for one input. */
static inline apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, fuzz_root) != APR_SUCCESS) {
        abort();
    }
    return p;
}

/* data[0..size) as a C string from p (cut at its first NUL, as a C caller would see it). */
static inline char *fuzz_cstr(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *s = apr_palloc(p, size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits s at the first '\n' (replaced by NUL); returns the rest, or "" without one. */
static inline char *fuzz_split(char *s)
{
    char *nl = strchr(s, '\n');

    if (!nl) {
        return s + strlen(s);
    }
    *nl = '\0';
    return nl + 1;
}

#endif /* GS_FUZZ_H */
