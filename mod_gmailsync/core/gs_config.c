/* gs_config.c -- see gs_config.h */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include "gs_config.h"
#include "gs_origin.h"

#define WHY(reason) do { if (why) { *why = (reason); } } while (0)

apr_status_t gs_parse_duration(const char *text, apr_interval_time_t *out, const char **why)
{
    static const struct { const char *suffix; apr_int64_t usec; } units[] = {
        { "ms", 1000 }, { "s", APR_USEC_PER_SEC }, { "", APR_USEC_PER_SEC },
        { "m", 60 * APR_USEC_PER_SEC }, { "h", 3600 * APR_USEC_PER_SEC },
        { "d", 86400 * APR_USEC_PER_SEC },
    };
    const char *p = text;
    apr_int64_t value = 0;
    size_t i;

    if (!text || !*text) {
        WHY("empty duration");
        return APR_EINVAL;
    }
    if (!apr_isdigit(*p)) {
        WHY("a duration is a whole number followed by ms, s, m, h or d (e.g. 5s)");
        return APR_EINVAL;
    }
    for (; apr_isdigit(*p); p++) {
        if (value > GS_MAX_DURATION / 1000) { /* too large in any unit; avoids overflow */
            WHY("duration is too large (at most 30d)");
            return APR_EINVAL;
        }
        value = value * 10 + (*p - '0');
    }
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(p, units[i].suffix)) {
            if (value > GS_MAX_DURATION / units[i].usec) {
                WHY("duration is too large (at most 30d)");
                return APR_EINVAL;
            }
            *out = (apr_interval_time_t)(value * units[i].usec);
            return APR_SUCCESS;
        }
    }
    WHY("unknown duration unit (use ms, s, m, h or d)");
    return APR_EINVAL;
}

apr_status_t gs_parse_int(const char *text, long min, long max, long *out, const char **why)
{
    char *end;
    long value;

    if (!text || !*text || apr_isspace(*text)) {
        WHY("not a number");
        return APR_EINVAL;
    }
    errno = 0;
    value = strtol(text, &end, 10);
    if (*end) {
        WHY("not a whole number");
        return APR_EINVAL;
    }
    if (errno == ERANGE || value < min || value > max) {
        WHY("number out of range");
        return APR_EINVAL;
    }
    *out = value;
    return APR_SUCCESS;
}

apr_status_t gs_parse_size(const char *text, apr_int64_t max, apr_int64_t *out, const char **why)
{
    apr_int64_t value = 0, unit = 1;
    const char *c = text;

    if (!text || !apr_isdigit(*text)) {
        WHY("a size is a whole number of bytes, optionally followed by K or M (e.g. 25M)");
        return APR_EINVAL;
    }
    for (; apr_isdigit(*c); c++) {
        if (value > (GS_MAX_ATTACHMENT_MAX_SIZE * 1024)) {
            WHY("size out of range");
            return APR_EINVAL;
        }
        value = value * 10 + (*c - '0');
    }
    if (*c == 'K' || *c == 'k') {
        unit = 1024;
        c++;
    }
    else if (*c == 'M' || *c == 'm') {
        unit = 1024 * 1024;
        c++;
    }
    if (*c) {
        WHY("a size is a whole number of bytes, optionally followed by K or M (e.g. 25M)");
        return APR_EINVAL;
    }
    if (value > max / unit) {
        WHY("size out of range");
        return APR_EINVAL;
    }
    *out = value * unit;
    return APR_SUCCESS;
}

const char *const gs_content_mode_names[] = { "full", "metadata", NULL };
const char *const gs_attach_mode_names[] = { "store", "metadata", NULL };
const char *const gs_deletions_names[] = { "delete", "keep", NULL };

apr_status_t gs_parse_choice(apr_pool_t *p, const char *text, const char *const *names, int *out,
                             const char **why)
{
    int i;

    for (i = 0; text && names[i]; i++) {
        if (!strcasecmp(text, names[i])) {
            *out = i;
            return APR_SUCCESS;
        }
    }
    if (why) {
        const char *list = names[0];
        for (i = 1; names[i]; i++) {
            list = apr_pstrcat(p, list, names[i + 1] ? ", " : " or ", names[i], NULL);
        }
        *why = apr_pstrcat(p, "expected ", list, NULL);
    }
    return APR_EINVAL;
}

apr_status_t gs_parse_percent(const char *text, double *out, const char **why)
{
    char *end;
    double value;

    if (!text || !*text || !(apr_isdigit(*text) || *text == '.')) {
        WHY("a percentage is a number from 0 to 100, optionally followed by %");
        return APR_EINVAL;
    }
    errno = 0;
    value = strtod(text, &end);
    if (*end == '%') {
        end++;
    }
    if (*end || errno == ERANGE || !isfinite(value)) {
        WHY("a percentage is a number from 0 to 100, optionally followed by %");
        return APR_EINVAL;
    }
    if (value < 0.0 || value > 100.0) {
        WHY("percentage out of range 0-100");
        return APR_EINVAL;
    }
    *out = value;
    return APR_SUCCESS;
}

static apr_status_t parse_http_uri(apr_pool_t *p, const char *text, apr_uri_t *uri,
                                   const char **why)
{
    const char *c;

    if (!text || !*text) {
        WHY("empty URL");
        return APR_EINVAL;
    }
    for (c = text; *c; c++) {
        if (apr_isspace(*c) || apr_iscntrl(*c)) {
            WHY("URL contains whitespace or control characters");
            return APR_EINVAL;
        }
    }
    if (apr_uri_parse(p, text, uri) != APR_SUCCESS || !uri->scheme || !uri->hostname
        || !*uri->hostname) {
        WHY("not an absolute URL (expected http://host/... or https://host/...)");
        return APR_EINVAL;
    }
    if (strcasecmp(uri->scheme, "http") && strcasecmp(uri->scheme, "https")) {
        WHY("only http and https URLs are supported");
        return APR_EINVAL;
    }
    if (uri->user || uri->password) {
        WHY("credentials in URLs are not allowed");
        return APR_EINVAL;
    }
    if (uri->fragment) {
        WHY("URL must not have a #fragment");
        return APR_EINVAL;
    }
    if (uri->port_str) {
        long port;
        if (gs_parse_int(uri->port_str, 1, 65535, &port, NULL) != APR_SUCCESS) {
            WHY("invalid port in URL");
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

int gs_is_loopback_host(const char *host)
{
    if (!host) {
        return 0;
    }
    if (!strncasecmp(host, "::ffff:", 7)) {
        host += 7;
    }
    return !strcasecmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

apr_status_t gs_parse_redirect_uri(apr_pool_t *p, const char *text, const char **path,
                                   const char **why)
{
    apr_uri_t uri;
    apr_status_t rv;

    if ((rv = parse_http_uri(p, text, &uri, why)) != APR_SUCCESS) {
        return rv;
    }
    if (strcasecmp(uri.scheme, "https") && !gs_is_loopback_host(uri.hostname)) {
        WHY("a redirect URI must be https, or http on a loopback host (127.0.0.1, [::1], "
            "localhost)");
        return APR_EINVAL;
    }
    if (uri.query) {
        WHY("a redirect URI must not have a query");
        return APR_EINVAL;
    }
    *path = uri.path && *uri.path ? uri.path : "/";
    return APR_SUCCESS;
}

apr_status_t gs_parse_http_url(apr_pool_t *p, const char *text, const char **normalized,
                               const char **why)
{
    apr_uri_t uri;
    char *copy;
    size_t len;
    apr_status_t rv;

    if ((rv = parse_http_uri(p, text, &uri, why)) != APR_SUCCESS) {
        return rv;
    }
    copy = apr_pstrdup(p, text);
    len = strlen(copy);
    while (len > 0 && copy[len - 1] == '/' && len > strlen(uri.scheme) + 3) {
        copy[--len] = '\0';
    }
    *normalized = copy;
    return APR_SUCCESS;
}

apr_status_t gs_parse_origin(apr_pool_t *p, const char *text, const char **normalized,
                             const char **why)
{
    gs_origin_t origin;
    apr_status_t rv;

    /* the same parser as the Origin header, so that a configured origin and a request's compare
     * in one spelling (lower case, no default port) */
    if ((rv = gs_origin_parse(p, text, &origin, why)) != APR_SUCCESS) {
        return rv;
    }
    *normalized = gs_origin_format(p, &origin);
    return APR_SUCCESS;
}

apr_status_t gs_parse_uri_prefix(const char *text, const char **why)
{
    const char *c;
    size_t len;

    if (!text || text[0] != '/' || !text[1]) {
        WHY("the prefix must be an absolute path such as /api/gmail/sync");
        return APR_EINVAL;
    }
    len = strlen(text);
    if (text[len - 1] == '/') {
        WHY("the prefix must not end with '/'");
        return APR_EINVAL;
    }
    for (c = text; *c; c++) {
        if (apr_isspace(*c) || apr_iscntrl(*c) || *c == '?' || *c == '#' || *c == '%') {
            WHY("the prefix may not contain whitespace, '?', '#' or '%'");
            return APR_EINVAL;
        }
    }
    if (strstr(text, "/../") || strstr(text, "/./") || strstr(text, "//")
        || (len >= 3 && !strcmp(text + len - 3, "/.."))) {
        WHY("the prefix must be a normalized path");
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

const char *gs_format_duration(apr_pool_t *p, apr_interval_time_t d)
{
    static const struct { const char *suffix; apr_int64_t usec; } units[] = {
        { "d", 86400 * APR_USEC_PER_SEC }, { "h", 3600 * APR_USEC_PER_SEC },
        { "m", 60 * APR_USEC_PER_SEC }, { "s", APR_USEC_PER_SEC }, { "ms", 1000 },
    };
    size_t i;

    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (d >= units[i].usec && d % units[i].usec == 0) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT "%s", (apr_int64_t)(d / units[i].usec),
                                units[i].suffix);
        }
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", (apr_int64_t)(d / 1000));
}

const char *gs_sync_mode_name(gs_sync_mode_t mode)
{
    return mode == GS_SYNC_FULL ? "full" : "smart";
}
