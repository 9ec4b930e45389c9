/* gs_origin.c -- see gs_origin.h */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "gs_origin.h"

#define WHY(reason) do { if (why) { *why = (reason); } } while (0)

static apr_port_t default_port(const char *scheme)
{
    return strcmp(scheme, "https") ? 80 : 443;
}

static int is_name_char(int ch)
{
    return apr_isalnum(ch) || ch == '-' || ch == '_';
}

/* The end of the host at s: a run of name labels, or a bracketed IPv6 address; NULL if none. */
static const char *host_end(const char *s)
{
    const char *c = s;

    if (*c == '[') {
        for (c++; apr_isxdigit(*c) || *c == ':' || *c == '.'; c++) {
        }
        return *c == ']' && c > s + 2 ? c + 1 : NULL;
    }
    for (;;) {
        const char *label = c;
        while (is_name_char((unsigned char)*c)) {
            c++;
        }
        if (c == label) {
            return NULL; /* empty label: "", ".x", "x..y", "x." */
        }
        if (*c != '.') {
            return c;
        }
        c++;
    }
}

apr_status_t gs_origin_parse(apr_pool_t *p, const char *text, gs_origin_t *out,
                             const char **why)
{
    const char *host, *end, *c;
    char *lower, *w;
    long port = 0;

    if (!text) {
        WHY("no origin");
        return APR_EINVAL;
    }
    if (!strncasecmp(text, "https://", 8)) {
        out->scheme = "https";
        host = text + 8;
    }
    else if (!strncasecmp(text, "http://", 7)) {
        out->scheme = "http";
        host = text + 7;
    }
    else {
        WHY("an origin is http:// or https:// followed by a host (\"null\" is not accepted)");
        return APR_EINVAL;
    }
    if (!(end = host_end(host))) {
        WHY("an origin needs a host name, IPv4 or bracketed IPv6 address");
        return APR_EINVAL;
    }
    c = end;
    if (*c == ':') {
        for (c++; apr_isdigit(*c) && port <= 65535; c++) {
            port = port * 10 + (*c - '0');
        }
        if (c == end + 1 || port < 1 || port > 65535) {
            WHY("an origin's port is a number from 1 to 65535");
            return APR_EINVAL;
        }
    }
    if (*c) {
        WHY("an origin is scheme://host[:port] with no path, query, user or spaces");
        return APR_EINVAL;
    }
    lower = apr_pstrmemdup(p, host, (apr_size_t)(end - host));
    for (w = lower; *w; w++) {
        *w = (char)apr_tolower(*w);
    }
    out->host = lower;
    out->port = port ? (apr_port_t)port : default_port(out->scheme);
    return APR_SUCCESS;
}

const char *gs_origin_format(apr_pool_t *p, const gs_origin_t *o)
{
    if (o->port == default_port(o->scheme)) {
        return apr_pstrcat(p, o->scheme, "://", o->host, NULL);
    }
    return apr_psprintf(p, "%s://%s:%u", o->scheme, o->host, (unsigned)o->port);
}

/* [s, *len) without the brackets of an IPv6 address */
static const char *unbracket(const char *s, apr_size_t *len)
{
    *len = strlen(s);
    if (*len >= 2 && s[0] == '[' && s[*len - 1] == ']') {
        *len -= 2;
        return s + 1;
    }
    return s;
}

int gs_host_equals(const char *name, const char *host)
{
    apr_size_t nlen, hlen;
    const char *n = unbracket(name, &nlen), *h = unbracket(host, &hlen);

    return nlen > 0 && nlen == hlen && !strncasecmp(n, h, nlen);
}

/* Glob of one label: pattern [p, pe) against [h, he). Iterative with one backtrack point, so
 * linear in practice and never worse than the product of two short labels. */
static int label_matches(const char *p, const char *pe, const char *h, const char *he)
{
    const char *star = NULL, *retry = NULL;

    if (pe - p == 1 && *p == '*' && h == he) {
        return 0; /* "*" alone stands for a label, and labels are not empty */
    }
    while (h < he) {
        if (p < pe && (*p == '?' || apr_tolower(*p) == apr_tolower(*h))) {
            p++;
            h++;
        }
        else if (p < pe && *p == '*') {
            star = p++;
            retry = h;
        }
        else if (star) {
            p = star + 1;
            h = ++retry;
        }
        else {
            return 0;
        }
    }
    while (p < pe && *p == '*') {
        p++;
    }
    return p == pe;
}

int gs_host_matches_pattern(const char *pattern, const char *host)
{
    for (;;) {
        const char *pe = strchr(pattern, '.'), *he = strchr(host, '.');

        if (!pe) {
            pe = pattern + strlen(pattern);
        }
        if (!he) {
            he = host + strlen(host);
        }
        if (!label_matches(pattern, pe, host, he)) {
            return 0;
        }
        if (!*pe || !*he) {
            return !*pe && !*he; /* the same number of labels */
        }
        pattern = pe + 1;
        host = he + 1;
    }
}
