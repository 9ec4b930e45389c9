/* gs_tokenbox.c -- see gs_tokenbox.h: AES-256-GCM sealing of tokens, and the key file. */
#include "gs_secretfile.h"
#include "gs_tokenbox.h"
#include "gs_sha256.h"

#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <string.h>

#define NONCE_LEN 12
#define TAG_LEN   16
/* An OAuth token is a few hundred bytes; anything near this is not a token. */
#define PLAIN_MAX (16 * 1024)

static apr_status_t wipe_keys(void *data)
{
    gs_keyring_t *kr = data;
    if (kr->keys && kr->keys->nelts > 0) {
        OPENSSL_cleanse(kr->keys->elts, (size_t)kr->keys->nelts * sizeof(gs_tokenkey_t));
    }
    return APR_SUCCESS;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void key_id(const unsigned char key[GS_TOKENBOX_KEY_LEN], char id[GS_TOKENBOX_ID_LEN + 1])
{
    static const char label[] = "gmailsync token key id\n";
    unsigned char buf[sizeof(label) - 1 + GS_TOKENBOX_KEY_LEN], digest[GS_SHA256_DIGEST_LEN];
    char hex[65];

    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, key, GS_TOKENBOX_KEY_LEN);
    gs_sha256(buf, sizeof(buf), digest);
    OPENSSL_cleanse(buf, sizeof(buf));
    gs_sha256_hex(digest, hex);
    memcpy(id, hex, GS_TOKENBOX_ID_LEN);
    id[GS_TOKENBOX_ID_LEN] = '\0';
}

apr_status_t gs_keyring_parse(gs_keyring_t **out, apr_pool_t *p, const char *text,
                              apr_size_t len, const char **err)
{
    gs_keyring_t *kr = apr_pcalloc(p, sizeof(*kr));
    apr_size_t i = 0;
    int lineno = 0;

    kr->keys = apr_array_make(p, 2, sizeof(gs_tokenkey_t));
    apr_pool_cleanup_register(p, kr, wipe_keys, apr_pool_cleanup_null);
    while (i < len) {
        apr_size_t start = i, end, n = 0;
        gs_tokenkey_t k;
        int j;

        while (i < len && text[i] != '\n') {
            i++;
        }
        end = i++;
        lineno++;
        while (start < end && (text[start] == ' ' || text[start] == '\t')) start++;
        while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t'
                               || text[end - 1] == '\r')) end--;
        if (start == end || text[start] == '#') {
            continue;
        }
        if (end - start != 2 * GS_TOKENBOX_KEY_LEN) {
            *err = apr_psprintf(p, "line %d: a key is %d hex digits (this line has %" APR_SIZE_T_FMT
                                " characters)", lineno, 2 * GS_TOKENBOX_KEY_LEN, end - start);
            return APR_EINVAL;
        }
        for (n = 0; n < GS_TOKENBOX_KEY_LEN; n++) {
            int hi = hexval(text[start + 2 * n]), lo = hexval(text[start + 2 * n + 1]);
            if (hi < 0 || lo < 0) {
                OPENSSL_cleanse(&k, sizeof(k));
                *err = apr_psprintf(p, "line %d: a key is hex digits only", lineno);
                return APR_EINVAL;
            }
            k.key[n] = (unsigned char)(hi << 4 | lo);
        }
        key_id(k.key, k.id);
        for (j = 0; j < kr->keys->nelts; j++) {
            if (!strcmp(APR_ARRAY_IDX(kr->keys, j, gs_tokenkey_t).id, k.id)) {
                OPENSSL_cleanse(&k, sizeof(k));
                *err = apr_psprintf(p, "line %d: the same key is listed twice", lineno);
                return APR_EINVAL;
            }
        }
        APR_ARRAY_PUSH(kr->keys, gs_tokenkey_t) = k;
        OPENSSL_cleanse(&k, sizeof(k));
    }
    if (kr->keys->nelts == 0) {
        *err = "it holds no key (one line of 64 hex digits; gmailsync-rotate-key --generate "
               "prints one)";
        return APR_EINVAL;
    }
    *out = kr;
    return APR_SUCCESS;
}

apr_status_t gs_keyring_load(gs_keyring_t **kr, apr_pool_t *p, const char *path,
                             const char **err)
{
    apr_status_t rv;
    apr_size_t n;
    char *buf;

    if ((rv = gs_secret_file_read(p, path, GS_TOKENBOX_FILE_MAX, &buf, &n, err)) != APR_SUCCESS) {
        return rv;
    }
    rv = gs_keyring_parse(kr, p, buf, n, err);
    OPENSSL_cleanse(buf, n);
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "%s: %s", path, *err);
    }
    return rv;
}

const char *gs_keyring_current_id(const gs_keyring_t *kr)
{
    return APR_ARRAY_IDX(kr->keys, 0, gs_tokenkey_t).id;
}

const gs_tokenkey_t *gs_keyring_find(const gs_keyring_t *kr, const char *id)
{
    int i;
    for (i = 0; id && i < kr->keys->nelts; i++) {
        const gs_tokenkey_t *k = &APR_ARRAY_IDX(kr->keys, i, gs_tokenkey_t);
        if (!strcmp(k->id, id)) {
            return k;
        }
    }
    return NULL;
}

const char *gs_tokenbox_context(apr_pool_t *p, const char *column, const char *user_id)
{
    return apr_pstrcat(p, "gmailsync/1 ", column, " ", user_id, NULL);
}

/* One AES-256-GCM pass: seal (enc=1: in is plain, tag is written) or open (enc=0: tag is
 * checked). Returns 1 on success. */
static int gcm(int enc, const unsigned char *key, const unsigned char *nonce, const char *aad,
               const unsigned char *in, int inlen, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = 0, n = 0, fin = 0;

    if (!ctx) {
        return 0;
    }
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1
        && EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) == 1
        && EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1
        && EVP_CipherUpdate(ctx, out, &n, in, inlen) == 1 && n == inlen
        && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1)
        && EVP_CipherFinal_ex(ctx, out + n, &fin) == 1 && fin == 0
        && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1)) {
        ok = 1;
    }
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

apr_status_t gs_tokenbox_seal(const gs_keyring_t *kr, apr_pool_t *p, const char *context,
                              const char *plain, const char **sealed)
{
    const gs_tokenkey_t *k = &APR_ARRAY_IDX(kr->keys, 0, gs_tokenkey_t);
    apr_size_t plen = strlen(plain), rawlen = NONCE_LEN + plen + TAG_LEN;
    unsigned char *raw;
    char *b64, *s;

    if (plen == 0 || plen > PLAIN_MAX) {
        return APR_EINVAL;
    }
    raw = apr_palloc(p, rawlen);
    if (RAND_bytes(raw, NONCE_LEN) != 1
        || !gcm(1, k->key, raw, context, (const unsigned char *)plain, (int)plen,
                raw + NONCE_LEN, raw + NONCE_LEN + plen)) {
        return APR_EGENERAL;
    }
    b64 = apr_palloc(p, apr_base64_encode_len((int)rawlen));
    apr_base64_encode_binary(b64, raw, (int)rawlen);
    s = apr_pstrcat(p, GS_TOKENBOX_PREFIX, k->id, ":", b64, NULL);
    *sealed = s;
    return APR_SUCCESS;
}

/* Splits "gs1:<id>:<b64>"; NULL when it is not one. */
static const char *split(const char *sealed, char id[GS_TOKENBOX_ID_LEN + 1])
{
    apr_size_t i;
    const char *s;

    if (!sealed || strncmp(sealed, GS_TOKENBOX_PREFIX, sizeof(GS_TOKENBOX_PREFIX) - 1)) {
        return NULL;
    }
    s = sealed + sizeof(GS_TOKENBOX_PREFIX) - 1;
    for (i = 0; i < GS_TOKENBOX_ID_LEN; i++) {
        if (hexval(s[i]) < 0 || (s[i] >= 'A' && s[i] <= 'F')) {
            return NULL;
        }
        id[i] = s[i];
    }
    id[GS_TOKENBOX_ID_LEN] = '\0';
    return s[GS_TOKENBOX_ID_LEN] == ':' ? s + GS_TOKENBOX_ID_LEN + 1 : NULL;
}

const char *gs_tokenbox_key_id(apr_pool_t *p, const char *sealed)
{
    char id[GS_TOKENBOX_ID_LEN + 1];
    return split(sealed, id) ? apr_pstrdup(p, id) : NULL;
}

static int is_b64(const char *s)
{
    apr_size_t n = 0;
    for (; *s; s++, n++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')
              || *s == '+' || *s == '/' || *s == '=')) {
            return 0;
        }
    }
    return n > 0 && n % 4 == 0;
}

apr_status_t gs_tokenbox_open(const gs_keyring_t *kr, apr_pool_t *p, const char *context,
                              const char *sealed, const char **plain, const char **err)
{
    char id[GS_TOKENBOX_ID_LEN + 1];
    const char *b64 = split(sealed, id);
    const gs_tokenkey_t *k;
    unsigned char *raw;
    char *out;
    int rawlen, plen;

    if (!b64 || !is_b64(b64) || strlen(b64) > 2 * PLAIN_MAX) {
        *err = "the stored value is not an encrypted token";
        return APR_EINVAL;
    }
    if (!(k = gs_keyring_find(kr, id))) {
        *err = apr_psprintf(p, "the stored value is under key %s, which the key file does not "
                            "hold", id);
        return APR_ENOENT;
    }
    raw = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64));
    rawlen = apr_base64_decode_binary(raw, b64);
    if (rawlen <= NONCE_LEN + TAG_LEN) {
        *err = "the stored value is not an encrypted token";
        return APR_EINVAL;
    }
    plen = rawlen - NONCE_LEN - TAG_LEN;
    out = apr_palloc(p, (apr_size_t)plen + 1);
    if (!gcm(0, k->key, raw, context, raw + NONCE_LEN, plen, (unsigned char *)out,
             raw + NONCE_LEN + plen)) {
        OPENSSL_cleanse(out, (size_t)plen);
        *err = apr_psprintf(p, "the stored value does not authenticate under key %s (tampered, "
                            "or copied from another row)", id);
        return APR_EGENERAL;
    }
    out[plen] = '\0';
    if (memchr(out, '\0', (size_t)plen)) {
        OPENSSL_cleanse(out, (size_t)plen);
        *err = "the stored value is not a token";
        return APR_EINVAL;
    }
    *plain = out;
    return APR_SUCCESS;
}

/* A key as a key-file line. */
static char *key_line(apr_pool_t *p, const unsigned char key[GS_TOKENBOX_KEY_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char *s = apr_palloc(p, 2 * GS_TOKENBOX_KEY_LEN + 1);
    int i;

    for (i = 0; i < GS_TOKENBOX_KEY_LEN; i++) {
        s[2 * i] = hex[key[i] >> 4];
        s[2 * i + 1] = hex[key[i] & 15];
    }
    s[2 * GS_TOKENBOX_KEY_LEN] = '\0';
    return s;
}

const char *gs_keyring_hex(const gs_keyring_t *kr, apr_pool_t *p, int i)
{
    if (i < 0 || i >= kr->keys->nelts) {
        return NULL;
    }
    return key_line(p, APR_ARRAY_IDX(kr->keys, i, gs_tokenkey_t).key);
}

apr_status_t gs_tokenbox_generate_key(apr_pool_t *p, const char **line)
{
    unsigned char key[GS_TOKENBOX_KEY_LEN];

    if (RAND_bytes(key, sizeof(key)) != 1) {
        return APR_EGENERAL;
    }
    *line = key_line(p, key);
    OPENSSL_cleanse(key, sizeof(key));
    return APR_SUCCESS;
}
