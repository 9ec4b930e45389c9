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

/* Parses exactly `len` bytes. Returns NULL with *err set (text from p, naming the byte offset)
 * when gs_json_validate() refuses them or the document is a bare null. */
json_object *gs_json_parse(apr_pool_t *p, const char *data, apr_size_t len, const char **err);

/* Checks that the `len` bytes are exactly one JSON text (RFC 8259) and nothing else but
 * whitespace: UTF-8 as RFC 3629 has it (no overlong forms, no surrogates, nothing above
 * U+10FFFF), no raw control character in a string, only the eight single-character escapes and
 * \uXXXX with surrogates in pairs, numbers by the RFC grammar (no NaN, Infinity, '+', leading
 * zero), no duplicate key in any object (compared after unescaping), no U+0000 in a key (json-c
 * would cut the key there), at most max_depth nested arrays and objects. Returns APR_SUCCESS, or
 * APR_EINVAL with *err (static text) and, if offset is not NULL, the byte where it went wrong.
 * One pass, linear in len except that an object of more than 8 keys has its keys sorted; temporary
 * memory (a subpool of p, destroyed before returning) only for escaped keys and such objects. */
apr_status_t gs_json_validate(apr_pool_t *p, const char *data, apr_size_t len, int max_depth,
                              const char **err, apr_size_t *offset);

/* Serializes compactly (no escaping of '/') into memory from p. */
const char *gs_json_to_string(apr_pool_t *p, json_object *obj);

/* Convenience setters; `value` strings are copied by json-c. A NULL string becomes JSON null. */
void gs_json_set_string(json_object *obj, const char *key, const char *value);
void gs_json_set_int(json_object *obj, const char *key, apr_int64_t value);
void gs_json_set_bool(json_object *obj, const char *key, int value);
/* Adds `child` (which must not be pool-owned) under key; obj takes the reference. */
void gs_json_set_object(json_object *obj, const char *key, json_object *child);

#endif /* GS_JSON_H */
