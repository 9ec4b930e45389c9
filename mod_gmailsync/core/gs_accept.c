/* gs_accept.c -- see gs_accept.h */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>

#include "gs_accept.h"

/* specificity of a matching range; higher wins */
enum { NO_MATCH = -1, ANY_TYPE = 0, ANY_SUBTYPE = 1, EXACT = 2 };

typedef struct {
    const char *type, *subtype;
    apr_size_t type_len, subtype_len;
    int q;                               /* 0..1000 */
} range_t;

/* tchar of RFC 9110 section 5.6.2 */
static int is_tchar(int ch)
{
    return apr_isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *token_end(const char *s)
{
    while (is_tchar((unsigned char)*s)) {
        s++;
    }
    return s;
}

static const char *ows(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* The end of the quoted-string starting at s ('"'), or NULL if it is not terminated. */
static const char *quoted_end(const char *s)
{
    for (s++; *s; s++) {
        if (*s == '\\') {
            if (!*++s) {
                return NULL;
            }
        }
        else if (*s == '"') {
            return s + 1;
        }
    }
    return NULL;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), as 0..1000; -1 if invalid */
static int qvalue(const char *s, const char *end)
{
    int q, scale = 100;

    if (s == end || (*s != '0' && *s != '1')) {
        return -1;
    }
    q = (*s++ - '0') * 1000;
    if (s < end && *s == '.') {
        for (s++; s < end && scale > 0 && apr_isdigit(*s); s++, scale /= 10) {
            q += (*s - '0') * scale;
        }
    }
    return s == end && q <= 1000 ? q : -1;
}

/* Skips what is left of a bad element: up to the next comma outside a quoted string. */
static const char *skip_element(const char *s)
{
    while (*s && *s != ',') {
        if (*s == '"') {
            const char *e = quoted_end(s);
            if (!e) {
                return s + strlen(s);
            }
            s = e;
        }
        else {
            s++;
        }
    }
    return s;
}

/* Parses one media range at s into *r; returns the position after it (at ',' or the end), or
 * NULL if it is malformed. */
static const char *parse_range(const char *s, range_t *r)
{
    const char *e;

    r->type = s;
    if ((e = token_end(s)) == s || *e != '/') {
        return NULL;
    }
    r->type_len = (apr_size_t)(e - s);
    r->subtype = s = e + 1;
    if ((e = token_end(s)) == s) {
        return NULL;
    }
    r->subtype_len = (apr_size_t)(e - s);
    if (r->type_len == 1 && *r->type == '*' && !(r->subtype_len == 1 && *r->subtype == '*')) {
        return NULL; /* STAR/subtype is not a media range */
    }
    r->q = 1000;
    for (s = e;;) {
        const char *name, *value, *value_end;
        apr_size_t name_len;

        s = ows(s);
        if (!*s || *s == ',') {
            return s;
        }
        if (*s != ';') {
            return NULL;
        }
        s = ows(s + 1);
        if (!*s || *s == ',' || *s == ';') {
            continue; /* an empty parameter is allowed: OWS ";" OWS [ parameter ] */
        }
        name = s;
        if ((s = token_end(s)) == name || *s != '=') {
            return NULL;
        }
        name_len = (apr_size_t)(s - name);
        value = ++s;
        value_end = *s == '"' ? quoted_end(s) : token_end(s);
        if (!value_end || value_end == value) {
            return NULL;
        }
        if (name_len == 1 && apr_tolower(*name) == 'q'
            && (r->q = qvalue(value, value_end)) < 0) {
            return NULL;
        }
        s = value_end;
    }
}

static int specificity(const range_t *r, const char *type, const char *subtype)
{
    int any_type = r->type_len == 1 && *r->type == '*';
    int any_sub = r->subtype_len == 1 && *r->subtype == '*';

    if (any_type) {
        return ANY_TYPE; /* only STAR/STAR parses */
    }
    if (strlen(type) != r->type_len || strncasecmp(r->type, type, r->type_len)) {
        return NO_MATCH;
    }
    if (any_sub) {
        return ANY_SUBTYPE;
    }
    if (strlen(subtype) != r->subtype_len || strncasecmp(r->subtype, subtype, r->subtype_len)) {
        return NO_MATCH;
    }
    return EXACT;
}

int gs_accept_weight(const char *accept, const char *type, const char *subtype, int exact_only)
{
    int best_spec = NO_MATCH, best_q = -1;
    const char *s = accept;

    if (!accept) {
        return -1;
    }
    while (*s) {
        range_t r;
        const char *next;
        int spec;

        s = ows(s);
        if (*s == ',') {
            s++;          /* empty list elements are allowed */
            continue;
        }
        if (!*s) {
            break;
        }
        if (!(next = parse_range(s, &r))) {
            s = skip_element(s);
            continue;
        }
        s = next;
        spec = specificity(&r, type, subtype);
        if (spec == NO_MATCH || (exact_only && spec != EXACT)) {
            continue;
        }
        if (spec > best_spec) {
            best_spec = spec;
            best_q = r.q;
        }
        else if (spec == best_spec && r.q > best_q) {
            best_q = r.q;
        }
    }
    return best_q;
}

int gs_accept_wants_event_stream(const char *accept)
{
    int sse = gs_accept_weight(accept, "text", "event-stream", 1);

    return sse > 0 && sse >= gs_accept_weight(accept, "application", "json", 0);
}
