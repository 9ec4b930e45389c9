/* gs_sha256.h -- SHA-256 (FIPS 180-4), for hashing session tokens before they are looked up or
 * cached (the database and the shared-memory cache only ever see the digest), and the worker's
 * raw messages and attachments (issue 22). */
#ifndef GS_SHA256_H
#define GS_SHA256_H

#include <apr.h>
#include <apr_pools.h>

#define GS_SHA256_DIGEST_LEN 32

void gs_sha256(const void *data, apr_size_t len, unsigned char digest[GS_SHA256_DIGEST_LEN]);

/* The same a piece at a time (OpenSSL's only): begin returns NULL when OpenSSL refuses (the
 * caller then hashes the whole with gs_sha256); the context is freed with p. */
typedef struct gs_sha256_ctx_t gs_sha256_ctx_t;

gs_sha256_ctx_t *gs_sha256_begin(apr_pool_t *p);
apr_status_t gs_sha256_update(gs_sha256_ctx_t *ctx, const void *data, apr_size_t len);
apr_status_t gs_sha256_end(gs_sha256_ctx_t *ctx, unsigned char digest[GS_SHA256_DIGEST_LEN]);

/* Lowercase hex of a digest into `hex` (65 bytes, NUL-terminated). */
void gs_sha256_hex(const unsigned char digest[GS_SHA256_DIGEST_LEN], char hex[65]);

#endif /* GS_SHA256_H */
