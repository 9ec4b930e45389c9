/* gs_sha256.c -- SHA-256 (see gs_sha256.h): OpenSSL's (EVP_Digest: its assembly, SHA-NI where
 * the CPU has it), and, should OpenSSL ever refuse (no provider for it), a straightforward one
 * after FIPS 180-4. The worker hashes every raw message and every attachment (issue 22). */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "gs_sha256.h"

/* OpenSSL 3 looks EVP_sha256() up in its providers at every EVP_Digest (3.2 us a call here for
 * 100 bytes, 0.27 us with the algorithm fetched once, 1 us for the FIPS 180-4 code below):
 * fetched once per process (pthread_once: httpd's threads). Never given back: OpenSSL's own
 * exit handler frees its providers first, and freeing the method after it would touch them;
 * one method object stays reachable until the process ends (and one more per graceful restart
 * of httpd, which loads the module again). */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *fetched_md;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_md(void)
{
    fetched_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}
#endif

static const EVP_MD *sha256_md(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    if (pthread_once(&fetch_once, fetch_md) == 0 && fetched_md) {
        return fetched_md;
    }
#endif
    return EVP_sha256();
}

typedef struct {
    apr_uint32_t h[8];
    unsigned char block[64];
    apr_size_t used;
    apr_uint64_t bits;
} sha256_ctx;

static const apr_uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(sha256_ctx *c, const unsigned char *p)
{
    apr_uint32_t w[64], a, b, cc, d, e, f, g, h, t1, t2;
    int i;

    for (i = 0; i < 16; i++) {
        w[i] = (apr_uint32_t)p[4 * i] << 24 | (apr_uint32_t)p[4 * i + 1] << 16
               | (apr_uint32_t)p[4 * i + 2] << 8 | (apr_uint32_t)p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        apr_uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        apr_uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3];
    e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1;
        d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_fips(const void *data, apr_size_t len,
                        unsigned char digest[GS_SHA256_DIGEST_LEN])
{
    static const apr_uint32_t init[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    const unsigned char *p = data;
    sha256_ctx c;
    int i;

    memcpy(c.h, init, sizeof init);
    c.used = 0;
    c.bits = (apr_uint64_t)len * 8;
    while (len >= 64) {
        compress(&c, p);
        p += 64;
        len -= 64;
    }
    memcpy(c.block, p, len);
    c.used = len;
    c.block[c.used++] = 0x80;
    if (c.used > 56) {
        memset(c.block + c.used, 0, 64 - c.used);
        compress(&c, c.block);
        c.used = 0;
    }
    memset(c.block + c.used, 0, 56 - c.used);
    for (i = 0; i < 8; i++) {
        c.block[56 + i] = (unsigned char)(c.bits >> (56 - 8 * i));
    }
    compress(&c, c.block);
    for (i = 0; i < 8; i++) {
        digest[4 * i] = (unsigned char)(c.h[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(c.h[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(c.h[i] >> 8);
        digest[4 * i + 3] = (unsigned char)c.h[i];
    }
}

void gs_sha256(const void *data, apr_size_t len, unsigned char digest[GS_SHA256_DIGEST_LEN])
{
    unsigned int n = 0;

    if (EVP_Digest(len ? data : "", len, digest, &n, sha256_md(), NULL) != 1
        || n != GS_SHA256_DIGEST_LEN) {
        sha256_fips(data, len, digest);
    }
}

struct gs_sha256_ctx_t {
    EVP_MD_CTX *md;
};

static apr_status_t md_cleanup(void *data)
{
    gs_sha256_ctx_t *ctx = data;

    EVP_MD_CTX_free(ctx->md);
    ctx->md = NULL;
    return APR_SUCCESS;
}

gs_sha256_ctx_t *gs_sha256_begin(apr_pool_t *p)
{
    gs_sha256_ctx_t *ctx = apr_pcalloc(p, sizeof *ctx);

    if (!(ctx->md = EVP_MD_CTX_new())) {
        return NULL;
    }
    apr_pool_cleanup_register(p, ctx, md_cleanup, apr_pool_cleanup_null);
    return EVP_DigestInit_ex(ctx->md, sha256_md(), NULL) == 1 ? ctx : NULL;
}

apr_status_t gs_sha256_update(gs_sha256_ctx_t *ctx, const void *data, apr_size_t len)
{
    if (!ctx->md || (len && EVP_DigestUpdate(ctx->md, data, len) != 1)) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t gs_sha256_end(gs_sha256_ctx_t *ctx, unsigned char digest[GS_SHA256_DIGEST_LEN])
{
    unsigned int n = 0;

    if (!ctx->md || EVP_DigestFinal_ex(ctx->md, digest, &n) != 1 || n != GS_SHA256_DIGEST_LEN) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

void gs_sha256_hex(const unsigned char digest[GS_SHA256_DIGEST_LEN], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    int i;

    for (i = 0; i < GS_SHA256_DIGEST_LEN; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    hex[64] = '\0';
}
