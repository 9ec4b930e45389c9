/* fuzz_content.c -- one message through everything the worker does to it short of PostgreSQL
 * (issue 22): a batch part's JSON taken apart (gs_gmail_raw_part: the row, the base64url raw
 * decoded by gs_gmail_decode_raw), the parse (gs_mime) and every value the store sends
 * (gs_content_build: the row JSON with its headers, the addresses, the attachments with their
 * SHA-256 and stored flag, the bodies, the blobs, the parse_error reason).
 *
 * Input: a batch part's JSON when it starts with '{' ({"id":..,"threadId":..,"labelIds":[..],
 * "raw":"<base64url>"}), else the bytes of one raw message. The last byte's low bit picks
 * attachments = store (bytes up to 4 KB) or metadata.
 *
 * Oracle: every JSON text passes the strict RFC 8259 check and holds no \u0000 (jsonb refuses
 * it); every text is valid UTF-8 (C strings: no NUL); the row says parse_error, with a reason,
 * exactly when gs_mime did not read the message whole; raw_size and raw_sha256 are the raw
 * message's; indexed values are within GS_CONTENT_MAX_INDEXED; the attachments are gs_mime's,
 * with the columns' constraints (sql/010), their decoded sizes together within twice the raw
 * message (a forward is written back with CRLF), the stored ones exactly the blobs, whose bytes
 * hash to their sha256; the bodies within four times the raw message (an invalid byte becomes
 * U+FFFD, three bytes). Seeds: the MIME corpus of tests/data/mime and each of its messages as
 * a batch part (make_seeds.py). */
#include <glib.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "gs_content.h"
#include "gs_gmail.h"
#include "gs_gmail_parse.h"
#include "gs_json.h"
#include "gs_sha256.h"

static void utf8(const char *s)
{
    if (s && !g_utf8_validate(s, -1, NULL)) {
        abort();
    }
}

/* No string in v holds U+0000 (jsonb refuses it) or anything but UTF-8. */
static void no_nul(json_object *v)
{
    size_t i;

    if (json_object_is_type(v, json_type_string)) {
        if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
            abort();
        }
        utf8(json_object_get_string(v));
    }
    else if (json_object_is_type(v, json_type_array)) {
        for (i = 0; i < json_object_array_length(v); i++) {
            no_nul(json_object_array_get_idx(v, i));
        }
    }
    else if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, value) {
            (void)key;
            no_nul(value);
        }
    }
}

/* A JSON text the store sends: strict JSON, parsed, no U+0000 in its strings. */
static json_object *json_value(apr_pool_t *p, const char *text)
{
    const char *err = NULL;
    json_object *o;

    if (!text || gs_json_validate(p, text, strlen(text), GS_JSON_MAX_DEPTH, &err, NULL)
                     != APR_SUCCESS
        || !(o = gs_json_parse(p, text, strlen(text), &err))) {
        abort();
    }
    no_nul(o);
    return o;
}

static const char *member(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
           ? json_object_get_string(v) : NULL;
}

static void check_row(apr_pool_t *p, const gs_content_t *c, const gs_gmail_raw_t *raw)
{
    json_object *row = json_value(p, c->row), *headers;
    const char *state = member(row, "content_state"), *reason = member(row, "content_reason");
    const char *mid = member(row, "message_id");
    int complete = c->mime->state == GS_MIME_COMPLETE;
    unsigned char d[GS_SHA256_DIGEST_LEN];
    char hex[65];
    size_t i;

    if (!state || strcmp(state, complete ? "complete" : "parse_error") != 0
        || (reason != NULL) == complete || (reason && !*reason)) {
        abort();   /* parse_error (with a reason) exactly when the content is not complete */
    }
    gs_sha256(raw->bytes, raw->len, d);
    gs_sha256_hex(d, hex);
    if (json_object_get_int64(json_object_object_get(row, "raw_size")) != (int64_t)raw->len
        || strcmp(member(row, "raw_sha256") ? member(row, "raw_sha256") : "", hex) != 0
        || (mid && strlen(mid) > GS_CONTENT_MAX_INDEXED)
        || !gs_gmail_valid_id(member(row, "id"))) {
        abort();
    }
    headers = json_object_object_get(row, "headers");
    if (!json_object_is_type(headers, json_type_array)) {
        abort();
    }
    for (i = 0; i < json_object_array_length(headers); i++) {
        json_object *pair = json_object_array_get_idx(headers, i);

        if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) != 2
            || !json_object_is_type(json_object_array_get_idx(pair, 0), json_type_string)
            || !json_object_is_type(json_object_array_get_idx(pair, 1), json_type_string)) {
            abort();
        }
    }
}

static void check_addresses(apr_pool_t *p, const gs_content_t *c)
{
    static const char *const roles[] = { "from", "to", "cc", "bcc", "reply_to", "sender" };
    json_object *addrs = json_value(p, c->addresses);
    size_t i, r;

    for (i = 0; i < json_object_array_length(addrs); i++) {
        json_object *a = json_object_array_get_idx(addrs, i);
        const char *role = member(a, "role"), *addr = member(a, "address");

        for (r = 0; role && r < sizeof roles / sizeof roles[0] && strcmp(role, roles[r]); r++) {
        }
        if (!role || r == sizeof roles / sizeof roles[0] || !addr || !*addr
            || strlen(addr) > GS_CONTENT_MAX_INDEXED || !member(a, "name")
            || json_object_get_int(json_object_object_get(a, "position")) < 0) {
            abort();
        }
    }
}

static void check_attachments(apr_pool_t *p, const gs_content_t *c, const gs_gmail_raw_t *raw)
{
    json_object *atts = json_value(p, c->attachments);
    const apr_array_header_t *ma = c->mime->attachments;
    apr_uint64_t total = 0;
    int i, stored = 0;

    if ((int)json_object_array_length(atts) != ma->nelts) {
        abort();
    }
    for (i = 0; i < ma->nelts; i++) {
        json_object *j = json_object_array_get_idx(atts, (size_t)i);
        const char *part = member(j, "part_id"), *type = member(j, "mime_type");
        const char *disp = member(j, "disposition"), *sha = member(j, "sha256");
        int64_t size = json_object_get_int64(json_object_object_get(j, "size"));

        if (!part || !*part || !type || !*type || size < 0
            || (disp && strcmp(disp, "inline") && strcmp(disp, "attachment"))
            || !sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64
            || strcmp(sha, APR_ARRAY_IDX(ma, i, gs_mime_attachment_t).sha256) != 0) {
            abort();
        }
        total += (apr_uint64_t)size;
        stored += json_object_get_boolean(json_object_object_get(j, "stored"));
    }
    if (total > 2 * (apr_uint64_t)raw->len + 2 || stored != c->blobs->nelts) {
        abort();
    }
    for (i = 0; i < c->blobs->nelts; i++) {
        const gs_mime_attachment_t *a = APR_ARRAY_IDX(c->blobs, i, const gs_mime_attachment_t *);
        unsigned char d[GS_SHA256_DIGEST_LEN];
        char hex[65];

        if (!a->bytes || a->size > 4096) {
            abort();
        }
        gs_sha256(a->bytes, a->size, d);
        gs_sha256_hex(d, hex);
        if (strcmp(hex, a->sha256) != 0) {
            abort();
        }
    }
}

static void check_bodies(const gs_content_t *c, const gs_gmail_raw_t *raw)
{
    apr_size_t bound = 4 * raw->len + 16;

    utf8(c->text);
    utf8(c->html);
    utf8(c->html_text);
    utf8(c->text_charset);
    utf8(c->html_charset);
    if ((c->text && strlen(c->text) > bound) || (c->html && strlen(c->html) > bound)
        || (c->html_text && (!c->html || strlen(c->html_text) > strlen(c->html) + 1))
        || (!c->text && c->text_charset) || (!c->html && c->html_charset)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    gs_content_opts_t o;
    gs_content_t *c;
    gs_gmail_raw_t raw;
    json_object *row;
    const char *err = NULL;

    if (size == 0) {
        return 0;
    }
    p = fuzz_pool();
    if (data[0] == '{') {
        /* decoded into the pool (an answer held in memory) or in place (a spooled answer's
         * part), by the last byte: the same message either way */
        char *text = apr_pmemdup(p, data, size);
        int in_place = (data[size - 1] & 2) != 0;

        if (gs_gmail_raw_part(p, in_place ? NULL : p, text, size, &row, &raw, &err)
            != APR_SUCCESS) {
            if (row || !err) {
                abort();
            }
            apr_pool_destroy(p);
            return 0;
        }
        gs_json_own(p, row);
        if (raw.len > size || (in_place && (raw.bytes < (const unsigned char *)text
                                            || raw.bytes + raw.len > (const unsigned char *)text
                                               + size))) {
            abort();
        }
    }
    else {
        row = gs_json_own(p, json_object_new_object());
        gs_json_set_string(row, "id", "18e4ff40c8862fb4");
        raw.bytes = data;
        raw.len = size;
    }
    o.attachments = (data[size - 1] & 1) ? GS_ATTACH_METADATA : GS_ATTACH_STORE;
    o.attachment_max_size = 4096;
    o.store_raw = 1;
    c = gs_content_build(p, &o, row, &raw);
    if (!c || !c->mime || !c->id || strcmp(c->id, member(row, "id")) != 0) {
        abort();
    }
    check_row(p, c, &raw);
    check_addresses(p, c);
    check_attachments(p, c, &raw);
    check_bodies(c, &raw);
    apr_pool_destroy(p);
    return 0;
}
