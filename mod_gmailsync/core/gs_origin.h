/* gs_origin.h -- the Origin request header (RFC 6454) and host names, for the cross-site check.
 *
 * Pure parsing and comparison; which names count as "this server" is the httpd glue's business
 * (ServerName, ServerAlias, GmailSyncAllowOrigin), never the client's Host header.
 */
#ifndef GS_ORIGIN_H
#define GS_ORIGIN_H

#include <apr_network_io.h>
#include <apr_pools.h>

typedef struct {
    const char *scheme;   /* "http" or "https" */
    const char *host;     /* lower-case; an IPv6 address keeps its brackets */
    apr_port_t port;      /* as given, else the scheme's default (80, 443) */
} gs_origin_t;

/* Parses a serialised origin: scheme "://" host [ ":" port ], with scheme http or https
 * (any case), a DNS name or IPv4 address (letters, digits, '-', '_', non-empty labels) or a
 * bracketed IPv6 address, and a port 1..65535; nothing else, no path, no user info, no spaces.
 * The opaque origin "null" and lists of origins are refused like any other malformed value.
 * Returns APR_SUCCESS or APR_EINVAL with *why (static text) when why is not NULL. */
apr_status_t gs_origin_parse(apr_pool_t *p, const char *text, gs_origin_t *out,
                             const char **why);

/* "scheme://host" plus ":port" only when it is not the scheme's default: the one spelling of an
 * origin, so that equal origins compare equal as strings. */
const char *gs_origin_format(apr_pool_t *p, const gs_origin_t *o);

/* 1 when host equals name, ignoring case and the brackets of an IPv6 address. */
int gs_host_equals(const char *name, const char *host);

/* 1 when host matches a ServerAlias wildcard such as "*.example.com" or "app-?.example.com":
 * label by label, ignoring case, with the same number of labels on both sides; '*' matches any
 * run of characters and '?' one character, but never across a '.', and a label that is only '*'
 * needs at least one character. So "*.example.com" matches "a.example.com", not
 * "a.b.example.com", "example.com" or "a.example.com.evil". */
int gs_host_matches_pattern(const char *pattern, const char *host);

#endif /* GS_ORIGIN_H */
