/* gs_json.h -- json-c objects owned by APR pools.
 *
 * Every object handed out here is released by a cleanup on the given pool (json_object_put),
 * so no code path has to remember to free it. Do not json_object_put() them yourself.
 */
#ifndef GS_JSON_H
#define GS_JSON_H

#include <apr_pools.h>
#include <json-c/json.h>

/* Maximum nesting accepted from untrusted input. */
#define GS_JSON_MAX_DEPTH 16

/* Ties `obj` to `p`; returns obj (NULL passes through). */
json_object *gs_json_own(apr_pool_t *p, json_object *obj);

/* A new empty object owned by p. */
json_object *gs_json_object(apr_pool_t *p);

/* Parses exactly `len` bytes. Returns NULL with *err set (static text) when the input is not one
 * complete JSON value, is a bare null, nests deeper than GS_JSON_MAX_DEPTH, or has trailing
 * non-space bytes. */
json_object *gs_json_parse(apr_pool_t *p, const char *data, apr_size_t len, const char **err);

/* Serializes compactly (no escaping of '/') into memory from p. */
const char *gs_json_to_string(apr_pool_t *p, json_object *obj);

/* Convenience setters; `value` strings are copied by json-c. A NULL string becomes JSON null. */
void gs_json_set_string(json_object *obj, const char *key, const char *value);
void gs_json_set_int(json_object *obj, const char *key, apr_int64_t value);
void gs_json_set_bool(json_object *obj, const char *key, int value);
/* Adds `child` (which must not be pool-owned) under key; obj takes the reference. */
void gs_json_set_object(json_object *obj, const char *key, json_object *child);

#endif /* GS_JSON_H */
