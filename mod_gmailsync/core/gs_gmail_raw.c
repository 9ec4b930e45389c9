/* gs_gmail_raw.c -- see gs_gmail.h: a format=raw message of messages.get, its "raw" field
 * (base64url, padded or not) decoded where it is or into a pool, and the rest of the message
 * read as a row. Split from gs_gmail_fetch.c, which asks for the messages in batches. */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>

#include "gs_gmail.h"
#include "gs_json.h"

/* characters of base64url translated to apr_base64's alphabet at a time (a multiple of 4) */
#define DECODE_CHUNK 4096

/* base64url -> the standard alphabet apr_base64 reads; 0: not base64url */
static const char url_to_std[256] = {
    ['A'] = 'A', ['B'] = 'B', ['C'] = 'C', ['D'] = 'D', ['E'] = 'E', ['F'] = 'F', ['G'] = 'G',
    ['H'] = 'H', ['I'] = 'I', ['J'] = 'J', ['K'] = 'K', ['L'] = 'L', ['M'] = 'M', ['N'] = 'N',
    ['O'] = 'O', ['P'] = 'P', ['Q'] = 'Q', ['R'] = 'R', ['S'] = 'S', ['T'] = 'T', ['U'] = 'U',
    ['V'] = 'V', ['W'] = 'W', ['X'] = 'X', ['Y'] = 'Y', ['Z'] = 'Z', ['a'] = 'a', ['b'] = 'b',
    ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',
    ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p',
    ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w',
    ['x'] = 'x', ['y'] = 'y', ['z'] = 'z', ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3',
    ['4'] = '4', ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9', ['-'] = '+',
    ['_'] = '/'
};

/* The length of a base64url text (padded or not) without its padding in *np; APR_EINVAL when
 * the padding is wrong. */
static apr_status_t raw_length(const char *text, apr_size_t len, apr_size_t *np)
{
    apr_size_t n = len;

    while (n > 0 && text[n - 1] == '=') {
        n--;
    }
    /* padding only completes a last group of 2 or 3 characters */
    if (len - n > 2 || n % 4 == 1 || (len > n && (n % 4 == 0 || len % 4 != 0))
        || n > (apr_size_t)APR_INT32_MAX - 4) {
        return APR_EINVAL;
    }
    *np = n;
    return APR_SUCCESS;
}

/* text[0..n) decoded to o, which may be text itself: the decoded bytes are 3/4 of the text,
 * and each chunk is copied out before its bytes are written. apr_base64 stops at the first
 * byte outside its alphabet: each chunk's bytes are checked as they are mapped to it, so
 * nothing is cut silently (APR_EINVAL, o then holds a part of the bytes). */
static apr_status_t raw_decode(const char *text, apr_size_t n, unsigned char *o,
                               gs_gmail_raw_t *out)
{
    apr_size_t i;

    out->bytes = o;
    /* the URL-safe alphabet as the standard one, a chunk at a time on the stack */
    for (i = 0; i < n; i += DECODE_CHUNK) {
        char std[DECODE_CHUNK + 1];
        apr_size_t k = n - i < DECODE_CHUNK ? n - i : DECODE_CHUNK, j;
        int want = (int)(k / 4 * 3 + (k % 4 ? k % 4 - 1 : 0));
        unsigned char ok = 1;

        for (j = 0; j < k; j++) {
            std[j] = url_to_std[(unsigned char)text[i + j]];
            ok &= (unsigned char)(std[j] != 0);
        }
        std[k] = '\0';
        if (!ok || apr_base64_decode_binary(o, std) != want) {
            return APR_EINVAL;
        }
        o += want;
    }
    *o = '\0';
    out->len = (apr_size_t)(o - out->bytes);
    return APR_SUCCESS;
}

apr_status_t gs_gmail_decode_raw(apr_pool_t *p, const char *text, apr_size_t len,
                                 gs_gmail_raw_t *out)
{
    apr_size_t i, n;
    unsigned char ok = 1;

    if (raw_length(text, len, &n) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    /* every byte checked before anything is allocated for it */
    for (i = 0; i < n; i++) {
        ok &= (unsigned char)(url_to_std[(unsigned char)text[i]] != 0);
    }
    if (!ok) {
        return APR_EINVAL;
    }
    /* the decoded bytes are the only copy of the message made here */
    return raw_decode(text, n, apr_palloc(p, n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) + 1), out);
}

apr_status_t gs_gmail_decode_raw_in_place(char *text, apr_size_t len, gs_gmail_raw_t *out)
{
    apr_size_t n;

    if (raw_length(text, len, &n) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    return raw_decode(text, n, (unsigned char *)text, out);   /* one pass: checked as decoded */
}

apr_status_t gs_gmail_raw_part(apr_pool_t *p, apr_pool_t *into, char *body, apr_size_t len,
                               json_object **row, gs_gmail_raw_t *raw, const char **err)
{
    apr_pool_t *mp;
    gs_json_span_t span;
    json_object *msg, *r;
    apr_size_t at = 0, raw_len;
    char *rest;
    apr_status_t rv;

    *row = NULL;
    if ((rv = apr_pool_create(&mp, p)) != APR_SUCCESS) {
        return rv;
    }
    rv = APR_EINVAL;
    if (gs_json_validate_member(mp, body, len, GS_JSON_MAX_DEPTH, "raw", &span, err, &at)
        != APR_SUCCESS) {
        *err = apr_psprintf(p, "%s (at byte %" APR_SIZE_T_FMT ")", *err, at);
    }
    else if (!span.found) {
        *err = "the message has no raw field";
    }
    else {
        /* the message without its raw field's bytes ("raw":"") */
        rest = apr_palloc(mp, len - span.len + 1);
        memcpy(rest, body, span.start);
        memcpy(rest + span.start, body + span.start + span.len, len - span.start - span.len);
        rest[len - span.len] = '\0';
        if ((msg = gs_json_parse(mp, rest, len - span.len, err))
            && (r = gs_gmail_message_row(mp, msg, err))) {
            /* Google's JSON writes '=' as \u003d: the padding comes escaped */
            /* the bytes before the first escape stay where they are */
            raw_len = span.escaped
                      ? span.escape_at + gs_json_unescape_in_place(body + span.start
                                                                   + span.escape_at,
                                                                   span.len - span.escape_at)
                      : span.len;
            if ((rv = into ? gs_gmail_decode_raw(into, body + span.start, raw_len, raw)
                           : gs_gmail_decode_raw_in_place(body + span.start, raw_len, raw))
                == APR_SUCCESS) {
                *row = r;
            }
            else {
                *err = "the raw message is not base64url";
                json_object_put(r);
            }
        }
        else {
            *err = apr_pstrdup(p, *err);    /* it may be mp's */
        }
    }
    apr_pool_destroy(mp);
    return rv;
}
