/* fuzz_json.c -- the strict JSON checker (gs_json_validate) and the start request's body as
 * mod_gmailsync_body.c / mod_gmailsync_start.c read it (gs_json_parse, then "force_full").
 * Oracle: what the checker accepts json-c parses, and what it refuses gs_json_parse refuses. */
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
