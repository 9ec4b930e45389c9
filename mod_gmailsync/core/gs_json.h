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

/* Where a member's string value is in a JSON text: its bytes between the quotes, as written. */
typedef struct {
    int found;              /* the top-level object has the member, and its value is a string */
    int escaped;            /* the bytes hold escapes (gs_json_unescape_in_place undoes them) */
    apr_size_t start, len;  /* [start, start + len) of the text */
    apr_size_t escape_at;   /* where the first escape is, from start (0 when none) */
} gs_json_span_t;

/* gs_json_validate, which also finds the member `key` of the document's top-level object (no
 * object holds a key twice: the validator refuses that); span is all zero when the text is
 * refused. For a value too large to copy: a
 * caller can read it where it is, and parse the rest of the document without it. */
apr_status_t gs_json_validate_member(apr_pool_t *p, const char *data, apr_size_t len,
                                     int max_depth, const char *key, gs_json_span_t *span,
                                     const char **err, apr_size_t *offset);

/* Undoes the escapes of a string's bytes that gs_json_validate_member found, in place; returns
 * the new length (never more than len). Only for bytes the validator has checked. */
apr_size_t gs_json_unescape_in_place(char *s, apr_size_t len);

/* Serializes compactly (no escaping of '/') into memory from p. */
const char *gs_json_to_string(apr_pool_t *p, json_object *obj);

/* Convenience setters; `value` strings are copied by json-c. A NULL string becomes JSON null. */
void gs_json_set_string(json_object *obj, const char *key, const char *value);
void gs_json_set_int(json_object *obj, const char *key, apr_int64_t value);
void gs_json_set_bool(json_object *obj, const char *key, int value);
/* Adds `child` (which must not be pool-owned) under key; obj takes the reference. */
void gs_json_set_object(json_object *obj, const char *key, json_object *child);

#endif /* GS_JSON_H */
