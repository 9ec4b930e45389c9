/* gs_tokenbox.h -- OAuth tokens encrypted at rest.
 *
 * A token is stored as "gs1:<key id>:<base64 of nonce | ciphertext | tag>", sealed with
 * AES-256-GCM (OpenSSL EVP) under a 256-bit key the database never sees. The additional
 * authenticated data binds the value to its place ("refresh_token", the user id), so a value
 * copied to another row or column does not open.
 *
 * Keys live in a key file (GmailSyncTokenKeyFile, the worker's token_key_file): one key per
 * line as 64 hex digits, '#' comments and blank lines allowed. The first key is the current
 * one: it seals. Later lines are older keys, kept only to open values not yet re-sealed by
 * gmailsync-rotate-key. A key's id is derived from the key (8 hex digits), so a file cannot
 * name a key wrongly. The file must be a regular file of root's (or of the user reading it),
 * readable by its owner only (gs_secretfile.h). */
#ifndef GS_TOKENBOX_H
#define GS_TOKENBOX_H

#include <apr_pools.h>
#include <apr_tables.h>

#define GS_TOKENBOX_KEY_LEN   32
#define GS_TOKENBOX_ID_LEN    8
#define GS_TOKENBOX_PREFIX    "gs1:"
/* A key file larger than this is not a key file. */
#define GS_TOKENBOX_FILE_MAX  (64 * 1024)

typedef struct {
    unsigned char key[GS_TOKENBOX_KEY_LEN];
    char id[GS_TOKENBOX_ID_LEN + 1];
} gs_tokenkey_t;

typedef struct {
    apr_array_header_t *keys;   /* of gs_tokenkey_t; [0] is the current key */
} gs_keyring_t;

/* Parses key-file text. On failure *err (from p) says which line and why, never a key. The
 * key bytes live in p; a cleanup on p wipes them. */
apr_status_t gs_keyring_parse(gs_keyring_t **kr, apr_pool_t *p, const char *text,
                              apr_size_t len, const char **err);

/* Reads and parses the key file at path under gs_secretfile.h's rules: opened without blocking
 * or following a symbolic link, a regular file owned by root or the reading user, with no group
 * or other permission bits. */
apr_status_t gs_keyring_load(gs_keyring_t **kr, apr_pool_t *p, const char *path,
                             const char **err);

/* The id of the current key. */
const char *gs_keyring_current_id(const gs_keyring_t *kr);

/* The i-th key of the ring as a key-file line (64 hex digits, from p): how the daemon hands the
 * keys to a worker on its stdin. NULL when i is out of range. */
const char *gs_keyring_hex(const gs_keyring_t *kr, apr_pool_t *p, int i);

/* The key with this id, or NULL. */
const gs_tokenkey_t *gs_keyring_find(const gs_keyring_t *kr, const char *id);

/* The context (additional authenticated data) of a column of a user's row. */
const char *gs_tokenbox_context(apr_pool_t *p, const char *column, const char *user_id);

/* Seals plain under the current key into *sealed (from p). */
apr_status_t gs_tokenbox_seal(const gs_keyring_t *kr, apr_pool_t *p, const char *context,
                              const char *plain, const char **sealed);

/* Opens a sealed value into *plain (from p). APR_EINVAL: not a sealed value; APR_ENOENT: its
 * key is not in the ring; APR_EGENERAL: it does not authenticate (wrong key, wrong context,
 * tampered). *err says which, never a value. */
apr_status_t gs_tokenbox_open(const gs_keyring_t *kr, apr_pool_t *p, const char *context,
                              const char *sealed, const char **plain, const char **err);

/* The key id a sealed value names (from p), or NULL when it is not a sealed value. */
const char *gs_tokenbox_key_id(apr_pool_t *p, const char *sealed);

/* A new random key as a key-file line (64 hex digits, from p). */
apr_status_t gs_tokenbox_generate_key(apr_pool_t *p, const char **line);

#endif /* GS_TOKENBOX_H */
