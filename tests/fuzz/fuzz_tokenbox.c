/* fuzz_tokenbox.c -- sealed tokens read from the database (gs_tokenbox_open, gs_tokenbox_key_id
 * on arbitrary text) and key files (gs_keyring_parse). Input: "context\nsealed-or-key-file".
 * Oracle: the input sealed under a test key opens to itself. */
#include "fuzz.h"
#include "gs_tokenbox.h"

#define KEY_FILE "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" \
                 "0101010101010101010101010101010101010101010101010101010101010101\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *context = fuzz_cstr(p, data, size), *rest = fuzz_split(context);
    gs_keyring_t *kr = NULL, *other = NULL;
    const char *err = NULL, *plain = NULL, *sealed = NULL;

    if (gs_keyring_parse(&kr, p, KEY_FILE, strlen(KEY_FILE), &err) != APR_SUCCESS) {
        abort();
    }
    (void)gs_tokenbox_key_id(p, rest);
    (void)gs_tokenbox_open(kr, p, context, rest, &plain, &err);
    if (gs_keyring_parse(&other, p, rest, strlen(rest), &err) == APR_SUCCESS
        && !gs_keyring_current_id(other)) {
        abort();
    }
    if (gs_tokenbox_seal(kr, p, context, rest, &sealed) == APR_SUCCESS
        && (gs_tokenbox_open(kr, p, context, sealed, &plain, &err) != APR_SUCCESS
            || strcmp(plain, rest))) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
