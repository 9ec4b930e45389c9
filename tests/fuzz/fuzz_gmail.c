/* fuzz_gmail.c -- Gmail's JSON answers (gs_gmail_parse.c): errors by status, the profile, list
 * and history pages, messages (one, or each of a "messages" array) turned into rows, and the end
 * of a per-user lockout read from an error message (gs_quota.c's RFC 3339 parser).
 * Input: the first byte picks the HTTP status, the rest is the body. */
#include <string.h>

#include <json-c/json.h>

#include "fuzz.h"
#include "gs_gmail_parse.h"
#include "gs_json.h"
#include "gs_quota.h"

static const int statuses[] = { 200, 200, 200, 200, 400, 401, 403, 404, 408, 429, 500, 503 };

static void row(apr_pool_t *p, json_object *msg)
{
    const char *err = NULL;
    json_object *r = gs_gmail_message_row(p, msg, &err);

    if (r) {
        json_object *id;
        if (!json_object_object_get_ex(r, "id", &id)
            || !gs_gmail_valid_id(json_object_get_string(id))) {
            abort(); /* a row without a valid id */
        }
        (void)gs_json_to_string(p, r);
        json_object_put(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *body, *reason = NULL, *err = NULL, *labels;
    json_object *doc, *msgs;
    gs_profile_t profile;
    gs_list_page_t list;
    gs_history_page_t hist;
    int status, i, nlabels, skipped;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    body = fuzz_cstr(p, data + 1, size - 1);
    if (gs_gmail_classify(p, status, body, size - 1, &reason) == GS_GM_RATE_LIMITED) {
        (void)gs_gmail_lockout_until(p, body, size - 1);
    }
    {
        /* the lockout's time parser on the raw text: it never reads past the NUL */
        apr_time_t t;
        const char *end = NULL;
        if (gs_parse_rfc3339_utc(body, &t, &end) == APR_SUCCESS
            && (end < body + 20 || end > body + strlen(body) || end[-1] != 'Z' || t < 0)) {
            abort();
        }
        (void)gs_parse_retry_after_text(body);
    }
    if ((doc = gs_json_parse(p, body, size - 1, &err))) {
        if (gs_gmail_parse_profile(doc, &profile, &err) == APR_SUCCESS
            && !gs_gmail_valid_history_id(profile.history_id)) {
            abort();
        }
        if (gs_gmail_parse_list(p, doc, &list, &err) == APR_SUCCESS) {
            for (i = 0; i < list.ids->nelts; i++) {
                if (!gs_gmail_valid_id(APR_ARRAY_IDX(list.ids, i, const char *))) {
                    abort();
                }
            }
        }
        if (gs_gmail_parse_history(p, doc, &hist, &err) == APR_SUCCESS) {
            for (i = 0; i < hist.changes->nelts; i++) {
                const gs_hist_change_t *c = &APR_ARRAY_IDX(hist.changes, i, gs_hist_change_t);
                if (!gs_gmail_valid_id(c->msg_id)) {
                    abort();
                }
            }
        }
        if (gs_gmail_parse_labels(p, doc, &labels, &nlabels, &skipped, &err) == APR_SUCCESS) {
            /* the rows are valid JSON, one per label taken, each with a valid id */
            json_object *rows = gs_json_parse(p, labels, strlen(labels), &err);
            if (!rows || !json_object_is_type(rows, json_type_array)
                || (int)json_object_array_length(rows) != nlabels
                || gs_json_validate(p, labels, strlen(labels), GS_JSON_MAX_DEPTH, &err, NULL)
                   != APR_SUCCESS) {
                abort();
            }
            for (i = 0; i < nlabels; i++) {
                json_object *id = json_object_object_get(json_object_array_get_idx(rows,
                                                         (size_t)i), "id");
                if (!gs_gmail_valid_id(json_object_get_string(id))) {
                    abort();
                }
            }
        }
        row(p, doc);
        if (json_object_object_get_ex(doc, "messages", &msgs)
            && json_object_is_type(msgs, json_type_array)) {
            for (i = 0; i < (int)json_object_array_length(msgs); i++) {
                row(p, json_object_array_get_idx(msgs, (size_t)i));
            }
        }
    }
    (void)gs_utf8_clean(p, body, 64);
    apr_pool_destroy(p);
    return 0;
}
