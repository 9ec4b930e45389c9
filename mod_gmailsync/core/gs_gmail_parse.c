/* gs_gmail_parse.c -- see gs_gmail_parse.h */
#include <string.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_error.h"
#include "gs_gmail_parse.h"
#include "gs_json.h"
#include "gs_quota.h"

/* Bounds on what we store: a subject or address list longer than this is cut. */
#define MAX_HEADER_BYTES  4096
#define MAX_SNIPPET_BYTES 2048

static json_object *member(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!obj || !json_object_is_type(obj, json_type_object)
        || !json_object_object_get_ex(obj, key, &v)) {
        return NULL;
    }
    return v;
}

static const char *string_member(json_object *obj, const char *key)
{
    json_object *v = member(obj, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int gs_gmail_valid_id(const char *s)
{
    size_t i;

    if (!s || !*s) {
        return 0;
    }
    for (i = 0; s[i]; i++) {
        if (i >= 128 || !(apr_isalnum(s[i]) || s[i] == '-' || s[i] == '_')) {
            return 0;
        }
    }
    return 1;
}

int gs_gmail_valid_history_id(const char *s)
{
    size_t i;

    if (!s || !*s) {
        return 0;
    }
    for (i = 0; s[i]; i++) {
        if (i >= 20 || !apr_isdigit(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. Rejects overlong
 * forms, surrogates and code points above U+10FFFF, as PostgreSQL does. */
static int utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) {
            return 0;
        }
        if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)) {
            return 0;
        }
        return 3;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) {
            return 0;
        }
        if ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)) {
            return 0;
        }
        return 4;
    }
    return 0;
}

const char *gs_utf8_clean(apr_pool_t *p, const char *s, apr_size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t len = strlen(s), i = 0;
    char *out, *o;
    int clean = 1;

    while (i < len) {
        int n = utf8_seq(u + i);
        if (!n) {
            clean = 0;
            break;
        }
        i += (apr_size_t)n;
    }
    if (clean && len <= max) {
        return s;
    }
    o = out = apr_palloc(p, len * 3 + 1);
    for (i = 0; i < len; ) {
        int n = utf8_seq(u + i);
        if ((apr_size_t)(o - out) + (apr_size_t)(n ? n : 3) > max) {
            break;
        }
        if (n) {
            memcpy(o, s + i, (apr_size_t)n);
            o += n;
            i += (apr_size_t)n;
        }
        else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}

gs_gm_class_t gs_gmail_classify(apr_pool_t *p, int status, const char *body, apr_size_t len,
                                const char **reason)
{
    const char *perr, *r = NULL;
    json_object *doc = NULL, *err, *errors;

    if (status >= 200 && status < 300) {
        *reason = "ok";
        return GS_GM_OK;
    }
    if (body && len && len < 65536) {
        doc = gs_json_parse(p, body, len, &perr);
    }
    err = member(doc, "error");
    errors = member(err, "errors");
    if (errors && json_object_is_type(errors, json_type_array)
        && json_object_array_length(errors) > 0) {
        r = string_member(json_object_array_get_idx(errors, 0), "reason");
    }
    if (!r) {
        r = string_member(err, "status");
    }
    *reason = r ? gs_error_clean(p, r, 64) : apr_psprintf(p, "HTTP %d", status);
    switch (status) {
    case 401:
        return GS_GM_UNAUTHORIZED;
    case 404:
        return GS_GM_NOT_FOUND;
    case 408:
    case 409:
        return GS_GM_TRANSIENT;
    case 429:
        return GS_GM_RATE_LIMITED;
    case 403:
        if (r && (!strcmp(r, "rateLimitExceeded") || !strcmp(r, "userRateLimitExceeded")
                  || !strcmp(r, "quotaExceeded") || !strcmp(r, "dailyLimitExceeded")
                  || !strcmp(r, "RESOURCE_EXHAUSTED"))) {
            return GS_GM_RATE_LIMITED;
        }
        return GS_GM_FORBIDDEN;
    default:
        break;
    }
    return status >= 500 ? GS_GM_TRANSIENT : GS_GM_BAD_REQUEST;
}

apr_time_t gs_gmail_lockout_until(apr_pool_t *p, const char *body, apr_size_t len)
{
    const char *perr;
    json_object *doc, *err, *errors;
    apr_time_t until;

    if (!body || !len || len >= 65536 || !(doc = gs_json_parse(p, body, len, &perr))) {
        return 0;
    }
    err = member(doc, "error");
    if ((until = gs_parse_retry_after_text(string_member(err, "message")))) {
        return until;
    }
    errors = member(err, "errors");
    if (errors && json_object_is_type(errors, json_type_array)
        && json_object_array_length(errors) > 0) {
        return gs_parse_retry_after_text(string_member(json_object_array_get_idx(errors, 0),
                                                       "message"));
    }
    return 0;
}

apr_status_t gs_gmail_parse_profile(json_object *doc, gs_profile_t *out, const char **err)
{
    json_object *v = member(doc, "messagesTotal");

    out->history_id = string_member(doc, "historyId");
    if (!gs_gmail_valid_history_id(out->history_id)) {
        *err = "the profile has no valid historyId";
        return APR_EINVAL;
    }
    out->messages_total = v && (json_object_is_type(v, json_type_int)
                                || json_object_is_type(v, json_type_string))
                          ? json_object_get_int64(v) : 0;
    if (out->messages_total < 0) {
        out->messages_total = 0;
    }
    return APR_SUCCESS;
}

/* "#rrggbb" (what Gmail's label colours are), else NULL. */
static const char *label_color(json_object *color, const char *key)
{
    const char *c = string_member(color, key);
    int i;

    if (!c || strlen(c) != 7 || c[0] != '#') {
        return NULL;
    }
    for (i = 1; i < 7; i++) {
        if (!apr_isxdigit(c[i])) {
            return NULL;
        }
    }
    return c;
}

/* A visibility word: letters only, at most 32 (Gmail's are show, hide, labelShow...). */
static const char *label_word(json_object *label, const char *key)
{
    const char *w = string_member(label, key);
    size_t i;

    for (i = 0; w && w[i]; i++) {
        if (i >= 32 || !apr_isalpha(w[i])) {
            return NULL;
        }
    }
    return w && *w ? w : NULL;
}

apr_status_t gs_gmail_parse_labels(apr_pool_t *p, json_object *doc, const char **rows_json,
                                   int *count, int *skipped, const char **err)
{
    json_object *labels = member(doc, "labels"), *rows;
    size_t i, n;

    *count = *skipped = 0;
    if (!labels || !json_object_is_type(labels, json_type_array)) {
        *err = "the label list has no labels array";
        return APR_EINVAL;
    }
    rows = json_object_new_array();
    n = json_object_array_length(labels);
    for (i = 0; i < n; i++) {
        json_object *l = json_object_array_get_idx(labels, i), *row, *color = member(l, "color");
        const char *id = string_member(l, "id"), *name = string_member(l, "name");
        const char *type = string_member(l, "type");

        if (!gs_gmail_valid_id(id) || !name || !*name) {
            (*skipped)++;
            continue;
        }
        row = json_object_new_object();
        gs_json_set_string(row, "id", id);
        gs_json_set_string(row, "name", gs_utf8_clean(p, name, 1024));
        gs_json_set_string(row, "type", type && !strcmp(type, "system") ? "system" : "user");
        gs_json_set_string(row, "text_color", label_color(color, "textColor"));
        gs_json_set_string(row, "background_color", label_color(color, "backgroundColor"));
        gs_json_set_string(row, "message_list_visibility",
                           label_word(l, "messageListVisibility"));
        gs_json_set_string(row, "label_list_visibility", label_word(l, "labelListVisibility"));
        json_object_array_add(rows, row);
        (*count)++;
    }
    *rows_json = gs_json_to_string(p, rows);
    json_object_put(rows);
    return APR_SUCCESS;
}

static const char *next_token(apr_pool_t *p, json_object *doc)
{
    const char *t = string_member(doc, "nextPageToken");

    return t && *t ? apr_pstrdup(p, t) : NULL;
}

apr_status_t gs_gmail_parse_list(apr_pool_t *p, json_object *doc, gs_list_page_t *out,
                                 const char **err)
{
    json_object *msgs = member(doc, "messages");
    apr_hash_t *seen;
    size_t i, n;

    if (!doc || !json_object_is_type(doc, json_type_object)) {
        *err = "the message list is not an object";
        return APR_EINVAL;
    }
    n = msgs && json_object_is_type(msgs, json_type_array) ? json_object_array_length(msgs) : 0;
    out->ids = apr_array_make(p, (int)(n ? n : 1), sizeof(const char *));
    out->next_token = next_token(p, doc);
    seen = apr_hash_make(p);
    for (i = 0; i < n; i++) {
        const char *id = string_member(json_object_array_get_idx(msgs, i), "id");
        if (!gs_gmail_valid_id(id)) {
            *err = "the message list holds an invalid id";
            return APR_EINVAL;
        }
        if (!apr_hash_get(seen, id, APR_HASH_KEY_STRING)) {
            id = apr_pstrdup(p, id);
            apr_hash_set(seen, id, APR_HASH_KEY_STRING, id);
            APR_ARRAY_PUSH(out->ids, const char *) = id;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t add_changes(apr_pool_t *p, gs_history_page_t *out, json_object *list,
                                gs_hist_kind_t kind, const char *record_id, const char **err)
{
    size_t i, j, n;

    if (!list) {
        return APR_SUCCESS;
    }
    if (!json_object_is_type(list, json_type_array)) {
        *err = "a history record has a malformed change list";
        return APR_EINVAL;
    }
    n = json_object_array_length(list);
    for (i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(list, i);
        json_object *labels = member(item, "labelIds");
        const char *id = string_member(member(item, "message"), "id");
        gs_hist_change_t *c;

        if (!gs_gmail_valid_id(id)) {
            *err = "a history record names an invalid message id";
            return APR_EINVAL;
        }
        c = apr_array_push(out->changes);
        c->kind = kind;
        c->record_id = record_id;
        c->msg_id = apr_pstrdup(p, id);
        c->labels = apr_array_make(p, 2, sizeof(const char *));
        if (kind == GS_HIST_LABELS_ADDED || kind == GS_HIST_LABELS_REMOVED) {
            size_t m = labels && json_object_is_type(labels, json_type_array)
                       ? json_object_array_length(labels) : 0;
            for (j = 0; j < m; j++) {
                json_object *l = json_object_array_get_idx(labels, j);
                if (json_object_is_type(l, json_type_string)) {
                    APR_ARRAY_PUSH(c->labels, const char *) =
                        gs_utf8_clean(p, apr_pstrdup(p, json_object_get_string(l)), 256);
                }
            }
        }
    }
    return APR_SUCCESS;
}

apr_status_t gs_gmail_parse_history(apr_pool_t *p, json_object *doc, gs_history_page_t *out,
                                    const char **err)
{
    json_object *history = member(doc, "history");
    size_t i, n;
    apr_status_t rv;

    memset(out, 0, sizeof *out);
    out->history_id = string_member(doc, "historyId");
    if (!gs_gmail_valid_history_id(out->history_id)) {
        *err = "the history page has no valid historyId";
        return APR_EINVAL;
    }
    out->history_id = apr_pstrdup(p, out->history_id);
    out->next_token = next_token(p, doc);
    out->changes = apr_array_make(p, 16, sizeof(gs_hist_change_t));
    if (history && !json_object_is_type(history, json_type_array)) {
        *err = "the history page is malformed";
        return APR_EINVAL;
    }
    n = history ? json_object_array_length(history) : 0;
    for (i = 0; i < n; i++) {
        json_object *rec = json_object_array_get_idx(history, i);
        const char *id = string_member(rec, "id");

        if (!gs_gmail_valid_history_id(id)) {
            *err = "a history record has no valid id";
            return APR_EINVAL;
        }
        out->records++;
        id = out->last_record_id = apr_pstrdup(p, id);
        if ((rv = add_changes(p, out, member(rec, "messagesAdded"), GS_HIST_ADDED, id, err))
            || (rv = add_changes(p, out, member(rec, "messagesDeleted"), GS_HIST_DELETED, id, err))
            || (rv = add_changes(p, out, member(rec, "labelsAdded"), GS_HIST_LABELS_ADDED, id, err))
            || (rv = add_changes(p, out, member(rec, "labelsRemoved"), GS_HIST_LABELS_REMOVED, id,
                                 err))) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* The first header of that name (case-insensitive), cleaned; NULL if absent. */
static const char *header(apr_pool_t *p, json_object *headers, const char *name)
{
    size_t i, n;

    if (!headers || !json_object_is_type(headers, json_type_array)) {
        return NULL;
    }
    n = json_object_array_length(headers);
    for (i = 0; i < n; i++) {
        json_object *h = json_object_array_get_idx(headers, i);
        const char *hn = string_member(h, "name"), *hv = string_member(h, "value");
        if (hn && hv && !strcasecmp(hn, name)) {
            return gs_utf8_clean(p, hv, MAX_HEADER_BYTES);
        }
    }
    return NULL;
}

static void add_clean_string(apr_pool_t *p, json_object *row, const char *key, const char *v,
                             apr_size_t max)
{
    gs_json_set_string(row, key, v ? gs_utf8_clean(p, v, max) : NULL);
}

json_object *gs_gmail_message_row(apr_pool_t *p, json_object *msg, const char **err)
{
    const char *id = string_member(msg, "id"), *hid, *date;
    json_object *row, *labels, *out_labels, *size, *headers;
    size_t i, n;

    if (!gs_gmail_valid_id(id)) {
        *err = "the message has no valid id";
        return NULL;
    }
    row = json_object_new_object();
    gs_json_set_string(row, "id", id);
    add_clean_string(p, row, "thread_id", string_member(msg, "threadId"), 256);
    hid = string_member(msg, "historyId");
    gs_json_set_string(row, "history_id", gs_gmail_valid_history_id(hid) ? hid : NULL);
    date = string_member(msg, "internalDate");
    if (gs_gmail_valid_history_id(date) && strlen(date) <= 15) {   /* ms since 1970: 13 digits */
        gs_json_set_int(row, "internal_date", apr_atoi64(date));
    }
    else {
        gs_json_set_string(row, "internal_date", NULL);
    }
    out_labels = json_object_new_array();
    labels = member(msg, "labelIds");
    n = labels && json_object_is_type(labels, json_type_array)
        ? json_object_array_length(labels) : 0;
    for (i = 0; i < n; i++) {
        json_object *l = json_object_array_get_idx(labels, i);
        if (json_object_is_type(l, json_type_string)) {
            json_object_array_add(out_labels, json_object_new_string(
                                      gs_utf8_clean(p, json_object_get_string(l), 256)));
        }
    }
    gs_json_set_object(row, "labels", out_labels);
    headers = member(member(msg, "payload"), "headers");
    gs_json_set_string(row, "subject", header(p, headers, "Subject"));
    gs_json_set_string(row, "from", header(p, headers, "From"));
    gs_json_set_string(row, "to", header(p, headers, "To"));
    add_clean_string(p, row, "snippet", string_member(msg, "snippet"), MAX_SNIPPET_BYTES);
    size = member(msg, "sizeEstimate");
    if (size && json_object_is_type(size, json_type_int)) {
        gs_json_set_int(row, "size", json_object_get_int64(size));
    }
    else {
        gs_json_set_string(row, "size", NULL);
    }
    return row;
}
