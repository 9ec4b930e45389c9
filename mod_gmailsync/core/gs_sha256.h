/* gs_sha256.h -- SHA-256 (FIPS 180-4), for hashing session tokens before they are looked up or
 * cached: the database and the shared-memory cache only ever see the digest. */
#ifndef GS_SHA256_H
#define GS_SHA256_H

#include <apr.h>

#define GS_SHA256_DIGEST_LEN 32

void gs_sha256(const void *data, apr_size_t len, unsigned char digest[GS_SHA256_DIGEST_LEN]);

/* Lowercase hex of a digest into `hex` (65 bytes, NUL-terminated). */
void gs_sha256_hex(const unsigned char digest[GS_SHA256_DIGEST_LEN], char hex[65]);

#endif /* GS_SHA256_H */
