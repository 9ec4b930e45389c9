/* gs_rekey.h -- what gmailsync-rotate-key does to one stored token: the decision, pure (no
 * database), so that the unit tests cover every case and the tool (gmailsync-tokens) only loops
 * over rows.
 *
 * A stored value is one of: nothing (NULL or ''), a plaintext token (not "gs1:<id>:..."; what
 * rows written before tokens were sealed hold), a value sealed under the ring's current key, one
 * sealed under an older key of the ring, or one that does not open (its key is not in the ring,
 * or it does not authenticate). */
#ifndef GS_REKEY_H
#define GS_REKEY_H

#include <apr_pools.h>

#include "gs_tokenbox.h"

typedef enum {
    GS_REKEY_EMPTY = 0,   /* nothing stored */
    GS_REKEY_CURRENT,     /* already sealed under the current key (or, unsealing, plaintext) */
    GS_REKEY_SEAL,        /* plaintext: *out is it sealed under the current key */
    GS_REKEY_RESEAL,      /* under an older key: *out is it sealed under the current key */
    GS_REKEY_UNSEAL,      /* unsealing (rollback to a release before sealed tokens): *out is the
                             plaintext */
    GS_REKEY_FAILED       /* does not open: *why says why (and names the key id), *out is NULL */
} gs_rekey_action_t;

#define GS_REKEY_ACTIONS 6

/* Decides what becomes of `stored`, the value of `column` ("refresh_token" or "access_token")
 * in user_id's row, and computes the new value into *out (from p; the stored value itself when
 * nothing changes). `unseal` writes plaintext back instead of sealing. */
gs_rekey_action_t gs_rekey_value(const gs_keyring_t *kr, apr_pool_t *p, const char *column,
                                 const char *user_id, const char *stored, int unseal,
                                 const char **out, const char **why);

/* "sealed", "resealed", ...: the word the tool counts an action under. */
const char *gs_rekey_action_name(gs_rekey_action_t a);

#endif /* GS_REKEY_H */
