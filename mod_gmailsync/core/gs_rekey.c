/* gs_rekey.c -- see gs_rekey.h */
#include <string.h>

#include "gs_rekey.h"

gs_rekey_action_t gs_rekey_value(const gs_keyring_t *kr, apr_pool_t *p, const char *column,
                                 const char *user_id, const char *stored, int unseal,
                                 const char **out, const char **why)
{
    const char *context = gs_tokenbox_context(p, column, user_id), *id, *plain = NULL;

    *out = stored;
    *why = NULL;
    if (!stored || !*stored) {
        return GS_REKEY_EMPTY;
    }
    if (!(id = gs_tokenbox_key_id(p, stored))) {
        if (unseal) {
            return GS_REKEY_CURRENT;
        }
        if (gs_tokenbox_seal(kr, p, context, stored, out) != APR_SUCCESS) {
            *out = NULL;
            *why = "cannot encrypt it (empty or larger than a token)";
            return GS_REKEY_FAILED;
        }
        return GS_REKEY_SEAL;
    }
    if (gs_tokenbox_open(kr, p, context, stored, &plain, why) != APR_SUCCESS) {
        *out = NULL;
        return GS_REKEY_FAILED;
    }
    if (unseal) {
        *out = plain;
        return GS_REKEY_UNSEAL;
    }
    if (!strcmp(id, gs_keyring_current_id(kr))) {
        return GS_REKEY_CURRENT;
    }
    if (gs_tokenbox_seal(kr, p, context, plain, out) != APR_SUCCESS) {
        *out = NULL;
        *why = "cannot encrypt it";
        return GS_REKEY_FAILED;
    }
    return GS_REKEY_RESEAL;
}

const char *gs_rekey_action_name(gs_rekey_action_t a)
{
    static const char *const names[GS_REKEY_ACTIONS] = {
        "empty", "current", "sealed", "resealed", "unsealed", "failed"
    };

    return (unsigned)a < GS_REKEY_ACTIONS ? names[a] : "unknown";
}
