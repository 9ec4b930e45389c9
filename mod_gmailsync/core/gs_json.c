/* gs_json.c -- see gs_json.h */
#include <limits.h>

#include <apr_strings.h>

#include "gs_json.h"

static apr_status_t json_cleanup(void *data)
{
    json_object_put(data);
    return APR_SUCCESS;
}

json_object *gs_json_own(apr_pool_t *p, json_object *obj)
{
    if (obj) {
        apr_pool_cleanup_register(p, obj, json_cleanup, apr_pool_cleanup_null);
    }
    return obj;
}

json_object *gs_json_object(apr_pool_t *p)
{
    return gs_json_own(p, json_object_new_object());
}

json_object *gs_json_parse(apr_pool_t *p, const char *data, apr_size_t len, const char **err)
{
    json_tokener *tok;
    json_object *obj;
    enum json_tokener_error jerr;
    apr_size_t at = 0;

    if (len > (apr_size_t)INT_MAX) {
        *err = "document too large";
        return NULL;
    }
    /* the validator decides what is JSON; json-c only builds what passed */
    if (gs_json_validate(p, data, len, GS_JSON_MAX_DEPTH, err, &at) != APR_SUCCESS) {
        *err = apr_psprintf(p, "%s (at byte %" APR_SIZE_T_FMT ")", *err, at);
        return NULL;
    }
    if (!(tok = json_tokener_new_ex(GS_JSON_MAX_DEPTH))) {
        *err = "out of memory";
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    obj = json_tokener_parse_ex(tok, data, (int)len);
    if ((jerr = json_tokener_get_error(tok)) == json_tokener_continue) {
        /* a bare top-level number ("12") is complete only once json-c sees what follows it;
         * the validator has already seen that nothing does */
        obj = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);

    if (jerr != json_tokener_success) {
        json_object_put(obj);
        *err = json_tokener_error_desc(jerr);
        return NULL;
    }
    if (!obj) {
        *err = "the document is a bare null";
        return NULL;
    }
    return gs_json_own(p, obj);
}

const char *gs_json_to_string(apr_pool_t *p, json_object *obj)
{
    return apr_pstrdup(p, json_object_to_json_string_ext(
                              obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

void gs_json_set_string(json_object *obj, const char *key, const char *value)
{
    json_object_object_add(obj, key, value ? json_object_new_string(value) : NULL);
}

void gs_json_set_int(json_object *obj, const char *key, apr_int64_t value)
{
    json_object_object_add(obj, key, json_object_new_int64(value));
}

void gs_json_set_bool(json_object *obj, const char *key, int value)
{
    json_object_object_add(obj, key, json_object_new_boolean(value ? 1 : 0));
}

void gs_json_set_object(json_object *obj, const char *key, json_object *child)
{
    json_object_object_add(obj, key, child);
}
