/* gs_search.h -- the mailbox query language (issue 24), compiled to SQL without the database.
 *
 * A query is Gmail's language, a subset: words, "exact phrases", -negation, OR (binds tighter
 * than the implicit AND: `a OR b c` is `(a OR b) AND c`), parentheses, and the operators
 * from: to: cc: subject: label: has:attachment filename: is:unread is:starred
 * in:inbox|sent|trash|spam|anywhere before: after: (YYYY/MM/DD or YYYY-MM-DD, UTC)
 * older_than: newer_than: (Nd, Nm, Ny) larger: smaller: (bytes, or with K or M). An operator
 * value may be quoted (label:"My label"). Words and phrases are matched through the text-search
 * vector of gmailsync.message_search (sql/012); a run of Han characters is matched as its
 * overlapping character pairs (one character alone: that character), as the index stores it.
 * Without in:trash, in:spam or in:anywhere, the trash and spam are left out, as in Gmail.
 *
 * The compiled query is an SQL boolean expression over `m` (gmailsync.messages) and `s`
 * (gmailsync.message_search, LEFT JOINed: NULL for a message without content) made of fixed
 * text only: every value of the query is a parameter (apr_dbd's %s placeholder, $n for
 * PostgreSQL). No user text is ever in the SQL, so the same query shape is the same statement.
 */
#ifndef GS_SEARCH_H
#define GS_SEARCH_H

#include <apr_pools.h>
#include <apr_tables.h>

#define GS_SEARCH_DEFAULT_CONFIG "simple"
/* Bounds: a longer query, more terms or deeper parentheses are refused (400) before any SQL. */
#define GS_SEARCH_MAX_BYTES 2048
#define GS_SEARCH_MAX_TERMS 40
#define GS_SEARCH_MAX_DEPTH 8

typedef struct {
    const char *where;           /* the SQL expression (never NULL; "true" for no query) */
    apr_array_header_t *args;    /* const char *: the values of its placeholders, in order */
    apr_array_header_t *marks;   /* const char *: the words and phrases to mark in a snippet
                                  * (those not under a negation), lower case for ASCII */
    int terms;                   /* the terms and operators read */
    const char *strict;          /* NULL, or what every answer must match on the search row
                                  * alone (s.): the words, phrases and from:/to:/cc:/subject:/
                                  * filename: values outside OR, negation and parentheses, which
                                  * the GIN indexes find; already part of where */
    apr_array_header_t *strict_args; /* const char *: the values of its placeholders */
    const char *walk;            /* where, its strict atoms in a form no index takes (the same
                                  * placeholders): for the plan that walks the newest first */
} gs_search_t;

/* Compiles the query q[0..len) (any bytes: NUL or invalid UTF-8 is an error) with the
 * text-search configuration `config` (passed as a parameter). NULL with *err set to a sentence
 * that names the bad operator or term. Everything is owned by p. */
gs_search_t *gs_search_compile(apr_pool_t *p, const char *q, apr_size_t len, const char *config,
                               const char **err);

/* The length of the valid UTF-8 sequence at s (at most n bytes: no overlong form, surrogate or
 * code point past U+10FFFF, no NUL) and its code point in *cp, or 0. */
apr_size_t gs_search_utf8_char(const unsigned char *s, apr_size_t n, apr_uint32_t *cp);

/* Is name a text-search configuration name this module accepts: an SQL identifier (letters,
 * digits, _; not starting with a digit; at most 63 bytes), optionally schema-qualified
 * (schema.name)? */
int gs_search_config_valid(const char *name);

/* A snippet cut into segments, the marks' occurrences flagged (case-insensitive for ASCII; an
 * ASCII word matches at the start of a word). */
typedef struct {
    const char *text;
    int match;
} gs_search_segment_t;

apr_array_header_t *gs_search_highlight(apr_pool_t *p, const char *snippet,
                                        const apr_array_header_t *marks);

/* The opaque cursor of a page's last message: its date in microseconds since the epoch (NULL:
 * no date) and its Gmail id; base64url. gs_search_cursor_parse returns 0 for anything that is
 * not such a cursor (*date_us NULL when the message had no date). */
const char *gs_search_cursor_make(apr_pool_t *p, const char *date_us, const char *id);
int gs_search_cursor_parse(apr_pool_t *p, const char *cursor, const char **date_us,
                           const char **id);

#endif /* GS_SEARCH_H */
