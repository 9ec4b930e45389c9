/* fuzz_json.c -- the strict JSON checker (gs_json_validate) and the start request's body as
 * mod_gmailsync_body.c / mod_gmailsync_start.c read it (gs_json_parse, then "force_full").
 * Oracle: what the checker accepts json-c parses, and what it refuses gs_json_parse refuses;
 * gs_json_validate_member decides as gs_json_validate does, and the string it finds in place,
 * unescaped in place, is the one json-c reads for that member. */
#include <json-c/json.h>

#include "fuzz.h"
#include "gs_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *err = NULL, *text = (const char *)data;
    apr_size_t offset = 0;
    apr_status_t rv = gs_json_validate(p, text, size, GS_JSON_MAX_DEPTH, &err, &offset);
    json_object *doc = gs_json_parse(p, text, size, &err), *v;

    if (rv != APR_SUCCESS && doc) {
        abort(); /* gs_json_parse took what the checker refused */
    }
    if (rv != APR_SUCCESS && offset > size) {
        abort(); /* the offset of the error is outside the input */
    }
    {
        gs_json_span_t span;
        const char *merr = NULL;
        apr_size_t moff = 0;
        apr_status_t mrv = gs_json_validate_member(p, text, size, GS_JSON_MAX_DEPTH, "raw", &span,
                                                   &merr, &moff);

        if (mrv != rv || (rv != APR_SUCCESS && moff != offset)) {
            abort(); /* looking for a member changed the verdict */
        }
        if (span.found) {
            char *copy = fuzz_cstr(p, data, size);
            apr_size_t n;

            if (!doc || span.start + span.len >= size
                || !json_object_object_get_ex(doc, "raw", &v)
                || !json_object_is_type(v, json_type_string)) {
                abort(); /* a member json-c does not see as that string */
            }
            n = gs_json_unescape_in_place(copy + span.start, span.len);
            if (n != (apr_size_t)json_object_get_string_len(v)
                || memcmp(copy + span.start, json_object_get_string(v), n)) {
                abort(); /* not the value json-c reads */
            }
        }
        else if (doc && json_object_is_type(doc, json_type_object)
                 && json_object_object_get_ex(doc, "raw", &v)
                 && json_object_is_type(v, json_type_string)) {
            abort(); /* a string member it did not find */
        }
    }
    if (doc && json_object_is_type(doc, json_type_object)) {
        if (json_object_object_get_ex(doc, "force_full", &v)
            && json_object_is_type(v, json_type_boolean)) {
            (void)json_object_get_boolean(v);
        }
        (void)gs_json_to_string(p, doc);
    }
    apr_pool_destroy(p);
    return 0;
}
