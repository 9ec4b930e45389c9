/* gs_mime.h -- one raw RFC 822 message (the bytes of Gmail's format=raw, once base64url-decoded)
 * parsed with GMime 3 into a result owned by an APR pool (issue 22).
 *
 * What it yields: Message-ID, In-Reply-To, References, Date, Subject, the addresses by role,
 * every header of the top-level message in order with duplicates (RFC 2047 decoded to UTF-8),
 * the text/plain and text/html bodies decoded to UTF-8, a text rendering of an HTML-only body,
 * the attachments (metadata, SHA-256, and the decoded bytes when asked), and a parse state.
 * Every string of the result is valid UTF-8 without NUL bytes (PostgreSQL's text and jsonb
 * accept it as is); invalid sequences become U+FFFD.
 *
 * Who links it: gs_mime.o is built into its own archive (libgsmime.a) with GMime's flags and is
 * linked into the worker, the unit tests and the fuzz harnesses only. httpd's module never
 * links GMime or GLib (make check-module-links verifies it).
 *
 * GMime's one-time set-up: gs_mime_init() calls g_mime_init() once per process (GLib's g_once,
 * so concurrent first calls are safe). The worker calls it once at start-up, before its first
 * parse; gs_mime_parse() also calls it, so the unit tests and the fuzz harnesses need nothing.
 * g_mime_shutdown() is never called: GMime's tables live until the process exits.
 *
 * Bounds for hostile input (see gs_mime_opts_t): the message size, the MIME nesting depth
 * (GMime's parser also stops at its own limit and says so), the parts visited, the headers
 * kept. Work and memory are linear in the message size: the parser keeps one copy of the
 * message, and one decoded part at a time exists outside the pool.
 */
#ifndef GS_MIME_H
#define GS_MIME_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define GS_MIME_DEFAULT_MAX_MESSAGE   (64 * 1024 * 1024)
#define GS_MIME_DEFAULT_MAX_DEPTH     32
#define GS_MIME_DEFAULT_MAX_HEADERS   1000
#define GS_MIME_DEFAULT_MAX_PARTS     10000
#define GS_MIME_DEFAULT_STREAM_AT     (4 * 1024 * 1024)

typedef enum {
    GS_MIME_COMPLETE = 0,        /* content_state 'complete' */
    GS_MIME_PARSE_ERROR = 1      /* content_state 'parse_error': what could be read is there */
} gs_mime_state_e;

typedef struct {
    apr_size_t max_message_bytes;      /* larger: parse_error, nothing parsed (0: default) */
    int max_depth;                     /* deeper parts are skipped, parse_error (0: default) */
    int max_headers;                   /* top-level headers kept; more: parse_error (0: default) */
    int max_parts;                     /* MIME parts visited; more: parse_error (0: default) */
    int want_bytes;                    /* keep each attachment's decoded bytes in the pool */
    apr_size_t max_attachment_bytes;   /* ...only up to this size (0: no limit); larger ones
                                        * keep their metadata and hash, bytes = NULL */
    /* An attachment whose content, as written (encoded), is at least this large (0: the default,
     * GS_MIME_DEFAULT_STREAM_AT) is decoded and hashed a piece at a time, never whole; when its
     * bytes are wanted they are not kept either: it gets a `source` to read them from again
     * (gs_mime_reader_open). GMime's objects then live as long as p, and so must raw. */
    apr_size_t stream_at;
    /* Charsets tried, in order, for a body whose declared charset is missing or wrong, and for
     * unencoded 8-bit header text (GMime's fallback charsets). NULL-terminated; NULL: the
     * default { "UTF-8", "windows-1252", NULL }. */
    const char *const *fallback_charsets;
} gs_mime_opts_t;

typedef struct {
    const char *name;        /* display name (decoded), "" when none */
    const char *address;     /* as written (addr-spec), "" for an empty group */
    const char *normalized;  /* trimmed and lower-cased: what the addresses table indexes */
} gs_mime_addr_t;

typedef struct {
    const char *name;        /* as written */
    const char *value;       /* unfolded, RFC 2047 decoded to UTF-8 */
} gs_mime_header_t;

/* Where an attachment's decoded bytes can be read again (see stream_at). */
typedef struct gs_mime_source_t gs_mime_source_t;

typedef struct {
    const char *part_id;     /* IMAP section number: "1", "2", "2.1" (a single-part body is "1") */
    const char *filename;    /* RFC 2231 / RFC 2047 decoded; NULL when none */
    const char *mime_type;   /* lower case, e.g. "image/png", "message/rfc822" */
    const char *content_id;  /* without the angle brackets; NULL when none */
    const char *disposition; /* "inline", "attachment", or NULL when the part declares neither */
    int is_inline;           /* not declared attachment, and declared inline or has a Content-ID */
    int related;             /* a resource of a multipart/related (an inline image of the HTML) */
    apr_size_t size;         /* decoded bytes (a message/rfc822 part: the message as written) */
    char sha256[65];         /* lower-case hex of gs_sha256 over the decoded bytes */
    const unsigned char *bytes;  /* decoded bytes when asked and within the limit, else NULL;
                                  * a NUL follows them (bytes[size]) */
    const gs_mime_source_t *source;  /* instead of bytes for an attachment of stream_at or more:
                                      * its bytes are read again from the message; else NULL */
} gs_mime_attachment_t;

typedef struct {
    gs_mime_state_e state;
    const char *reason;           /* why parse_error (NULL when complete) */
    int warnings;                 /* GMime's non-critical warnings (duplicated header, ...) */

    const char *message_id;       /* without angle brackets; NULL when none */
    const char *in_reply_to;      /* the first message id of In-Reply-To; NULL when none */
    apr_array_header_t *references;   /* const char *: the ids of References, in order */
    const char *subject;          /* NULL when none */
    const char *date_raw;         /* the Date header as written; NULL when none */
    int has_date;                 /* date is valid */
    apr_time_t date;              /* the Date header's instant */

    apr_array_header_t *from, *to, *cc, *bcc, *reply_to, *sender;   /* gs_mime_addr_t */
    apr_array_header_t *headers;  /* gs_mime_header_t, in order, duplicates kept */

    const char *text;             /* text/plain body; NULL when none */
    const char *html;             /* text/html body; NULL when none */
    const char *html_text;        /* text rendering of the HTML when there is no text/plain */
    const char *text_charset;     /* the charset the text body was decoded from */
    const char *html_charset;     /* ... the HTML body */

    apr_array_header_t *attachments;  /* gs_mime_attachment_t, in part order */
    int has_attachments;          /* an attachment that is not an inline resource */
} gs_mime_t;

/* g_mime_init() once per process (see above). */
void gs_mime_init(void);

/* Parses raw[0..len) (any bytes). Never fails: a message GMime cannot read, one over a limit,
 * or one with a critical parser warning is GS_MIME_PARSE_ERROR with a reason and whatever
 * could be read. opts may be NULL (defaults). The result and all it points to are in p. */
gs_mime_t *gs_mime_parse(apr_pool_t *p, const void *raw, apr_size_t len, const gs_mime_opts_t *opts);

/* Reading an attachment's bytes again from its source, in order from the first: each read fills
 * buf with up to *len bytes (fewer only at the end, 0 there). The reader is freed with p; a
 * source may be read by several readers, one after the other. APR_EGENERAL when GMime fails. */
typedef struct gs_mime_reader_t gs_mime_reader_t;

apr_status_t gs_mime_reader_open(gs_mime_reader_t **reader, apr_pool_t *p,
                                 const gs_mime_source_t *source);
apr_status_t gs_mime_reader_read(gs_mime_reader_t *reader, void *buf, apr_size_t *len);

/* (A message without text/plain gets html_text from gs_mime_html_to_text, gs_mime_html.h.) */

/* "complete" or "parse_error": the content_state values of migration 010. */
const char *gs_mime_state_name(gs_mime_state_e state);

#endif /* GS_MIME_H */
