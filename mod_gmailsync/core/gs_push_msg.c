/* gs_push_msg.c -- see gs_push_msg.h */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <cjose/base64.h>
#include <cjose/util.h>

#include "gs_json.h"
#include "gs_push_msg.h"

static apr_status_t release_bytes(void *data)
{
    cjose_get_dealloc()(data);
    return APR_SUCCESS;
}

/* Standard base64 as Pub/Sub writes it: groups of four of the alphabet, '=' only as the
 * padding of the last group. Checked here because cjose's decoder asserts (aborts the process)
 * on some invalid input instead of failing. */
static int base64_shaped(const char *s, apr_size_t len)
{
    apr_size_t i, pad = 0;

    if (!len || len % 4) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];

        if (c == '=') {
            if (i < len - 2) {
                return 0;
            }
            pad++;
        }
        else if (pad || !(apr_isalnum(c) || c == '+' || c == '/')) {
            return 0;
        }
    }
    return 1;
}

/* A printable ASCII string member of at most max bytes, or NULL. */
static const char *bounded_string(json_object *obj, const char *key, apr_size_t max)
{
    json_object *v;
    const char *s, *c;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    s = json_object_get_string(v);
    if (!*s || strlen(s) > max) {
        return NULL;
    }
    for (c = s; *c; c++) {
        if (*c < 0x21 || *c > 0x7e) {
            return NULL;
        }
    }
    return s;
}

/* historyId: a JSON integer > 0, or a string of 1 to 20 digits within 64 bits. */
static int history_id(json_object *obj, apr_uint64_t *out)
{
    json_object *v;
    const char *s;
    apr_uint64_t n = 0;

    if (!json_object_object_get_ex(obj, "historyId", &v)) {
        return 0;
    }
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i <= 0 || i == INT64_MAX) {   /* json-c saturates: INT64_MAX may be larger */
            return 0;
        }
        *out = (apr_uint64_t)i;
        return 1;
    }
    if (!json_object_is_type(v, json_type_string)) {
        return 0;
    }
    s = json_object_get_string(v);
    if (!*s || strlen(s) > 20) {
        return 0;
    }
    for (; *s; s++) {
        if (!apr_isdigit(*s) || n > (APR_UINT64_MAX - (apr_uint64_t)(*s - '0')) / 10) {
            return 0;
        }
        n = n * 10 + (apr_uint64_t)(*s - '0');
    }
    *out = n;
    return n > 0;
}

static int plausible_address(const char *a)
{
    const char *at = strchr(a, '@');

    return at && at != a && at[1] && !strchr(at + 1, '@');
}

apr_status_t gs_push_msg_parse(apr_pool_t *p, const char *body, apr_size_t len,
                               gs_push_msg_t *out, const char **err)
{
    json_object *doc, *msg, *data, *inner;
    const char *b64, *why, *sub = NULL;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    cjose_err cerr;
    json_object *v;
    char *email, *c;

    memset(out, 0, sizeof *out);
    if (!body || !len || len > GS_PUSH_BODY_MAX) {
        *err = "the push body is empty or larger than " APR_STRINGIFY(GS_PUSH_BODY_MAX) " bytes";
        return APR_EINVAL;
    }
    if (!(doc = gs_json_parse(p, body, len, &why)) || !json_object_is_type(doc, json_type_object)) {
        *err = "the push body is not a JSON object";
        return APR_EINVAL;
    }
    if (!json_object_object_get_ex(doc, "message", &msg) || !json_object_is_type(msg, json_type_object)) {
        *err = "the push body has no \"message\" object";
        return APR_EINVAL;
    }
    if (json_object_object_get_ex(doc, "subscription", &v)
        && !(sub = bounded_string(doc, "subscription", GS_PUSH_SUBSCRIPTION_MAX))) {
        *err = "\"subscription\" is not a short string";
        return APR_EINVAL;
    }
    if (!(out->message_id = bounded_string(msg, "messageId", GS_PUSH_MESSAGE_ID_MAX))
        && !(out->message_id = bounded_string(msg, "message_id", GS_PUSH_MESSAGE_ID_MAX))) {
        *err = "\"message.messageId\" is missing or not a short string";
        return APR_EINVAL;
    }
    if (!json_object_object_get_ex(msg, "data", &data) || !json_object_is_type(data, json_type_string)
        || !(b64 = json_object_get_string(data)) || !*b64 || strlen(b64) > GS_PUSH_DATA_MAX) {
        *err = "\"message.data\" is missing, empty or longer than " APR_STRINGIFY(GS_PUSH_DATA_MAX);
        return APR_EINVAL;
    }
    if (!base64_shaped(b64, strlen(b64)) || !cjose_base64_decode(b64, strlen(b64), &raw, &rawlen, &cerr)) {
        *err = "\"message.data\" is not base64";
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, raw, release_bytes, apr_pool_cleanup_null);
    if (!(inner = gs_json_parse(p, (const char *)raw, rawlen, &why))
        || !json_object_is_type(inner, json_type_object)) {
        *err = "\"message.data\" is not a base64 JSON object";
        return APR_EINVAL;
    }
    if (!(out->email = bounded_string(inner, "emailAddress", GS_PUSH_ADDRESS_MAX))
        || !plausible_address(out->email)) {
        *err = "the notification's \"emailAddress\" is missing or not an address";
        return APR_EINVAL;
    }
    if (!history_id(inner, &out->history_id)) {
        *err = "the notification's \"historyId\" is missing or not a positive 64-bit number";
        return APR_EINVAL;
    }
    email = apr_pstrdup(p, out->email);
    for (c = email; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    out->email = email;
    out->subscription = sub;
    return APR_SUCCESS;
}
