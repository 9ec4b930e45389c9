/* gs_json_check.c -- RFC 8259 validation before json-c sees a document (see gs_json.h).
 *
 * json-c, even in strict mode, accepts NaN and Infinity, raw control characters and invalid
 * UTF-8 in strings, lone surrogate escapes (turned into U+FFFD) and duplicate keys (the last one
 * wins, so {"force_full":1,"force_full":false} reads as false). This is a single forward pass
 * over the bytes with the grammar of RFC 8259 and the UTF-8 of RFC 3629; json-c then only builds
 * the objects of a document already known to be valid.
 *
 * Cost: linear in the document, plus O(k log k) for an object with k > GS_INLINE_KEYS keys
 * (their keys are sorted to find duplicates, which no input can degrade the way it can degrade
 * a hash table). Memory: none for the usual document; a scratch pool, created on first need
 * and destroyed before returning, holds unescaped keys and the key lists of large objects.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_tables.h>

#include "gs_json.h"

/* Keys of one object compared pairwise before they are spilled into a sorted list. */
#define GS_INLINE_KEYS 8

typedef struct {
    const char *ptr;   /* the key after unescaping (into the scratch pool if it had escapes) */
    apr_size_t len;
} objkey_t;

typedef struct {
    const unsigned char *start, *pos, *end;
    apr_pool_t *parent, *scratch;
    int depth, max_depth;
    const char *err;
    const unsigned char *err_at;
    int last_escaped;           /* the last string had an escape ... */
    const unsigned char *last_escape_at;   /* ... the first one here */
    objkey_t want;              /* gs_json_validate_member: the key looked for ... */
    gs_json_span_t *span;       /* ... and where its string value is (NULL: not looking) */
} checker_t;

static int fail(checker_t *c, const unsigned char *at, const char *why)
{
    if (!c->err) {
        c->err = why;
        c->err_at = at;
    }
    return 0;
}

static apr_pool_t *scratch_pool(checker_t *c)
{
    if (!c->scratch && apr_pool_create(&c->scratch, c->parent) != APR_SUCCESS) {
        c->scratch = NULL;
    }
    return c->scratch;
}

/* RFC 8259 whitespace is exactly these four; \v and \f are not. */
static void skip_ws(checker_t *c)
{
    while (c->pos < c->end
           && (*c->pos == ' ' || *c->pos == '\t' || *c->pos == '\n' || *c->pos == '\r')) {
        c->pos++;
    }
}

/* Length (2..4) of the well-formed multi-byte UTF-8 sequence at s, or 0. RFC 3629: no overlong
 * forms, no surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.. and F5..FF). */
static int utf8_seq(const unsigned char *s, const unsigned char *end)
{
    apr_size_t left = (apr_size_t)(end - s);

    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        return left >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        if (left < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80
            || (s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)) {
            return 0;
        }
        return 3;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        if (left < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80
            || (s[3] & 0xC0) != 0x80
            || (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)) {
            return 0;
        }
        return 4;
    }
    return 0; /* 80..C1 (continuation bytes, overlong leads) and F5..FF */
}

static int hex4(const unsigned char *s, const unsigned char *end, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (end - s < 4) {
        return 0;
    }
    for (i = 0; i < 4; i++) {
        unsigned char h = s[i];
        v <<= 4;
        if (h >= '0' && h <= '9') {
            v |= (unsigned)(h - '0');
        }
        else if (h >= 'a' && h <= 'f') {
            v |= (unsigned)(h - 'a' + 10);
        }
        else if (h >= 'A' && h <= 'F') {
            v |= (unsigned)(h - 'A' + 10);
        }
        else {
            return 0;
        }
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    }
    else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Unescapes the already validated string body [s, end) to o (which may be s: an escape never
 * grows when decoded, and each is read whole before its bytes are written); returns the end. */
static char *unescape_to(char *o, const unsigned char *s, const unsigned char *end)
{
    unsigned cp, lo;

    while (s < end) {
        if (*s != '\\') {
            /* the run up to the next escape, moved at once (a raw message is megabytes of
             * base64 with one escape or two at its end) */
            const unsigned char *bs = memchr(s, '\\', (apr_size_t)(end - s));
            apr_size_t run = (apr_size_t)((bs ? bs : end) - s);

            if ((const unsigned char *)o != s) {
                memmove(o, s, run);
            }
            o += run;
            s += run;
            continue;
        }
        switch (s[1]) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            (void)hex4(s + 2, end, &cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                (void)hex4(s + 8, end, &lo);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
            o = put_utf8(o, cp);
            s += 4;
            break;
        default:  *o++ = (char)s[1]; break; /* " \ / */
        }
        s += 2;
    }
    return o;
}

/* Unescapes the already validated string body [s, end) into the scratch pool. */
static int unescape(checker_t *c, const unsigned char *s, const unsigned char *end, objkey_t *key)
{
    apr_pool_t *p = scratch_pool(c);
    char *out;

    if (!p) {
        return fail(c, s, "out of memory");
    }
    out = apr_palloc(p, (apr_size_t)(end - s)); /* an escape never grows when decoded */
    key->ptr = out;
    key->len = (apr_size_t)(unescape_to(out, s, end) - out);
    return 1;
}

apr_size_t gs_json_unescape_in_place(char *s, apr_size_t len)
{
    return (apr_size_t)(unescape_to(s, (const unsigned char *)s, (const unsigned char *)s + len)
                        - s);
}

/* A string at c->pos (which is '"'). With `key`, also yields its unescaped value. */
static int string(checker_t *c, objkey_t *key)
{
    const unsigned char *body = ++c->pos, *s = body;
    int escaped = 0, n;
    unsigned cp, lo;

    for (;;) {
        /* the printable ASCII that stands for itself, eight bytes at a time where they all are
         * (a raw message's string is megabytes of base64): a byte of a word is such a byte
         * unless it is a control character, '"', '\\' or not ASCII */
        while (c->end - s >= 8) {
            apr_uint64_t w, ctl, quote, bslash;

            memcpy(&w, s, 8);
            ctl = (w - UINT64_C(0x2020202020202020)) & ~w;
            quote = ((w ^ UINT64_C(0x2222222222222222)) - UINT64_C(0x0101010101010101))
                    & ~(w ^ UINT64_C(0x2222222222222222));
            bslash = ((w ^ UINT64_C(0x5c5c5c5c5c5c5c5c)) - UINT64_C(0x0101010101010101))
                     & ~(w ^ UINT64_C(0x5c5c5c5c5c5c5c5c));
            if ((ctl | quote | bslash | w) & UINT64_C(0x8080808080808080)) {
                break;
            }
            s += 8;
        }
        if (s >= c->end) {
            return fail(c, s, "unterminated string");
        }
        if (*s == '"') {
            break;
        }
        if (*s < 0x20) {
            return fail(c, s, "control character in a string (escape it)");
        }
        if (*s < 0x80 && *s != '\\') {
            s++;
            continue;
        }
        if (*s >= 0x80) {
            if (!(n = utf8_seq(s, c->end))) {
                return fail(c, s, "invalid UTF-8 in a string");
            }
            s += n;
            continue;
        }
        if (!escaped) {
            c->last_escape_at = s;
        }
        escaped = 1;
        if (s + 1 >= c->end) {
            return fail(c, s, "unterminated string");
        }
        switch (s[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            s += 2;
            continue;
        case 'u':
            break;
        default:
            return fail(c, s, "invalid escape in a string");
        }
        if (!hex4(s + 2, c->end, &cp)) {
            return fail(c, s, "\\u must be followed by four hex digits");
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail(c, s, "lone low surrogate escape");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* a high surrogate must be followed at once by a low one: the pair is one code point */
            if (c->end - s < 12 || s[6] != '\\' || s[7] != 'u' || !hex4(s + 8, c->end, &lo)
                || lo < 0xDC00 || lo > 0xDFFF) {
                return fail(c, s, "high surrogate escape not followed by a low surrogate");
            }
            s += 6;
        }
        s += 6;
    }
    c->pos = s + 1;
    c->last_escaped = escaped;
    if (key) {
        if (escaped) {
            if (!unescape(c, body, s, key)) {
                return 0;
            }
            /* json-c keeps keys as C strings: "a\u0000b" would become "a" and could collide
             * with a key we saw as different. RFC 8259 lets implementations set such limits. */
            if (memchr(key->ptr, '\0', key->len)) {
                return fail(c, body, "object key contains U+0000");
            }
        }
        else {
            key->ptr = (const char *)body;
            key->len = (apr_size_t)(s - body);
        }
    }
    return 1;
}

static int digits(checker_t *c)
{
    const unsigned char *from = c->pos;

    while (c->pos < c->end && *c->pos >= '0' && *c->pos <= '9') {
        c->pos++;
    }
    return c->pos > from;
}

/* number = [ "-" ] int [ frac ] [ exp ]; int = "0" / digit1-9 *DIGIT (RFC 8259 section 6) */
static int number(checker_t *c)
{
    const unsigned char *at = c->pos;

    if (*c->pos == '-') {
        c->pos++;
    }
    if (c->pos < c->end && *c->pos == 'I') {
        return fail(c, at, "NaN and Infinity are not JSON numbers");
    }
    if (c->pos < c->end && *c->pos == '0') {
        c->pos++;
        if (c->pos < c->end && *c->pos >= '0' && *c->pos <= '9') {
            return fail(c, at, "numbers may not have leading zeros");
        }
    }
    else if (!digits(c)) {
        return fail(c, at, "invalid number");
    }
    if (c->pos < c->end && *c->pos == '.') {
        c->pos++;
        if (!digits(c)) {
            return fail(c, at, "invalid number: digits must follow '.'");
        }
    }
    if (c->pos < c->end && (*c->pos == 'e' || *c->pos == 'E')) {
        c->pos++;
        if (c->pos < c->end && (*c->pos == '+' || *c->pos == '-')) {
            c->pos++;
        }
        if (!digits(c)) {
            return fail(c, at, "invalid number: digits must follow the exponent");
        }
    }
    return 1;
}

static int literal(checker_t *c, const char *word)
{
    apr_size_t len = strlen(word);

    if ((apr_size_t)(c->end - c->pos) < len || memcmp(c->pos, word, len)) {
        return fail(c, c->pos, "invalid literal (true, false and null are the only ones)");
    }
    c->pos += len;
    return 1;
}

static int key_cmp(const void *a, const void *b)
{
    const objkey_t *x = a, *y = b;
    int d = memcmp(x->ptr, y->ptr, x->len < y->len ? x->len : y->len);

    return d ? d : (x->len > y->len) - (x->len < y->len);
}

static int same_key(const objkey_t *a, const objkey_t *b)
{
    return a->len == b->len && !memcmp(a->ptr, b->ptr, a->len);
}

static int value(checker_t *c);

static int object(checker_t *c)
{
    const unsigned char *open = c->pos;
    objkey_t inline_keys[GS_INLINE_KEYS];
    apr_array_header_t *many = NULL;
    int nkeys = 0, i;

    c->pos++;
    skip_ws(c);
    if (c->pos < c->end && *c->pos == '}') {
        c->pos++;
        return 1;
    }
    for (;;) {
        objkey_t key;
        const unsigned char *key_at;

        skip_ws(c);
        if (c->pos >= c->end || *c->pos != '"') {
            return fail(c, c->pos, "object keys must be double-quoted strings");
        }
        key_at = c->pos;
        if (!string(c, &key)) {
            return 0;
        }
        if (nkeys < GS_INLINE_KEYS) {
            for (i = 0; i < nkeys; i++) {
                if (same_key(&inline_keys[i], &key)) {
                    return fail(c, key_at, "duplicate object key");
                }
            }
            inline_keys[nkeys] = key;
        }
        else {
            if (!many) {
                apr_pool_t *p = scratch_pool(c);
                if (!p) {
                    return fail(c, key_at, "out of memory");
                }
                many = apr_array_make(p, 4 * GS_INLINE_KEYS, sizeof(objkey_t));
                for (i = 0; i < GS_INLINE_KEYS; i++) {
                    APR_ARRAY_PUSH(many, objkey_t) = inline_keys[i];
                }
            }
            APR_ARRAY_PUSH(many, objkey_t) = key;
        }
        nkeys++;
        skip_ws(c);
        if (c->pos >= c->end || *c->pos != ':') {
            return fail(c, c->pos, "':' expected after an object key");
        }
        c->pos++;
        if (c->span && c->depth == 1 && same_key(&key, &c->want)) {
            const unsigned char *at;

            skip_ws(c);
            at = c->pos;
            if (!value(c)) {
                return 0;
            }
            if (*at == '"') {   /* a string: its bytes between the quotes */
                c->span->found = 1;
                c->span->start = (apr_size_t)(at + 1 - c->start);
                c->span->len = (apr_size_t)(c->pos - 1 - (at + 1));
                c->span->escaped = c->last_escaped;
                c->span->escape_at = c->last_escaped
                                     ? (apr_size_t)(c->last_escape_at - (at + 1)) : 0;
            }
        }
        else if (!value(c)) {
            return 0;
        }
        skip_ws(c);
        if (c->pos < c->end && *c->pos == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->end && *c->pos == '}') {
            c->pos++;
            break;
        }
        return fail(c, c->pos, c->pos < c->end ? "',' or '}' expected in an object"
                                               : "incomplete JSON document");
    }
    if (many) {
        objkey_t *k = (objkey_t *)many->elts;
        qsort(k, (size_t)many->nelts, sizeof *k, key_cmp);
        for (i = 1; i < many->nelts; i++) {
            if (same_key(&k[i - 1], &k[i])) {
                return fail(c, open, "duplicate object key");
            }
        }
    }
    return 1;
}

static int array(checker_t *c)
{
    c->pos++;
    skip_ws(c);
    if (c->pos < c->end && *c->pos == ']') {
        c->pos++;
        return 1;
    }
    for (;;) {
        if (!value(c)) {
            return 0;
        }
        skip_ws(c);
        if (c->pos < c->end && *c->pos == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->end && *c->pos == ']') {
            c->pos++;
            return 1;
        }
        return fail(c, c->pos, c->pos < c->end ? "',' or ']' expected in an array"
                                               : "incomplete JSON document");
    }
}

static int value(checker_t *c)
{
    int ok;

    skip_ws(c);
    if (c->pos >= c->end) {
        return fail(c, c->pos, "incomplete JSON document");
    }
    switch (*c->pos) {
    case '{':
    case '[':
        if (++c->depth > c->max_depth) {
            return fail(c, c->pos, "nesting too deep");
        }
        ok = *c->pos == '{' ? object(c) : array(c);
        c->depth--;
        return ok;
    case '"':
        return string(c, NULL);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    case 'N':
    case 'I':
        return fail(c, c->pos, "NaN and Infinity are not JSON numbers");
    case '\'':
        return fail(c, c->pos, "strings must use double quotes");
    default:
        if (*c->pos == '-' || (*c->pos >= '0' && *c->pos <= '9')) {
            return number(c);
        }
        return fail(c, c->pos, "unexpected character");
    }
}

static apr_status_t check(checker_t *c, apr_pool_t *p, const char *data, apr_size_t len,
                          int max_depth, const char **err, apr_size_t *offset)
{
    int ok;

    c->start = c->pos = (const unsigned char *)data;
    c->end = c->start + len;
    c->parent = p;
    c->max_depth = max_depth;
    ok = value(c);
    if (ok) {
        skip_ws(c);
        if (c->pos < c->end) {
            ok = fail(c, c->pos, "trailing data after the JSON document");
        }
    }
    if (c->scratch) {
        apr_pool_destroy(c->scratch);
    }
    if (ok) {
        return APR_SUCCESS;
    }
    *err = c->err;
    if (offset) {
        *offset = (apr_size_t)(c->err_at - c->start);
    }
    return APR_EINVAL;
}

apr_status_t gs_json_validate(apr_pool_t *p, const char *data, apr_size_t len, int max_depth,
                              const char **err, apr_size_t *offset)
{
    checker_t c;

    memset(&c, 0, sizeof c);
    return check(&c, p, data, len, max_depth, err, offset);
}

apr_status_t gs_json_validate_member(apr_pool_t *p, const char *data, apr_size_t len,
                                     int max_depth, const char *key, gs_json_span_t *span,
                                     const char **err, apr_size_t *offset)
{
    checker_t c;
    apr_status_t rv;

    memset(&c, 0, sizeof c);
    memset(span, 0, sizeof *span);
    c.want.ptr = key;
    c.want.len = strlen(key);
    c.span = span;
    if ((rv = check(&c, p, data, len, max_depth, err, offset)) != APR_SUCCESS) {
        memset(span, 0, sizeof *span);   /* found before the text turned out invalid */
    }
    return rv;
}
