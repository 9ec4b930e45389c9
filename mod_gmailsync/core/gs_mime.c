/* gs_mime.c -- a raw RFC 822 message parsed with GMime 3 (see gs_mime.h).
 *
 * GMime does the MIME: the parser, RFC 2047 and RFC 2231, the transfer encodings, the address
 * lists and the Date header. Charsets go through GMime's charset tables (canonical and iconv
 * names, ISO-to-Windows supersets) and GLib's iconv (g_convert, strict); a body whose declared
 * charset is missing or wrong is tried, strictly, with the charsets of the fallback list, and
 * when none fits it is decoded with g_mime_utils_decode_8bit, GMime's best-effort decoder over
 * the same list. Nothing here decodes a charset or a transfer encoding by hand.
 *
 * The envelope (headers and addresses) is read in gs_mime_headers.c, the bodies and the
 * attachments in gs_mime_body.c, HTML is rendered as text by gs_mime_html.c. GMime's objects live in a scratch subpool of the caller's pool: each is released by a pool
 * cleanup, and the subpool is destroyed before gs_mime_parse returns. The result is copied
 * into the caller's pool.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <gmime/gmime.h>

#include "gs_mime_html.h"
#include "gs_mem.h"
#include "gs_mime_int.h"
#include "gs_sha256.h"

static const char *const default_fallback[] = { "UTF-8", "windows-1252", NULL };

/* ------------------------------------------------------------------ set-up */

static gsize init_once;

void gs_mime_init(void)
{
    if (g_once_init_enter(&init_once)) {
        g_mime_init();
        g_once_init_leave(&init_once, 1);
    }
}

const char *gs_mime_state_name(gs_mime_state_e state)
{
    return state == GS_MIME_COMPLETE ? "complete" : "parse_error";
}

/* ------------------------------------------------------------------ pool-owned GLib objects */

static apr_status_t unref_cleanup(void *obj)
{
    g_object_unref(obj);
    return APR_SUCCESS;
}

static apr_status_t options_cleanup(void *opts)
{
    g_mime_parser_options_free(opts);
    return APR_SUCCESS;
}

static apr_status_t format_cleanup(void *fo)
{
    g_mime_format_options_free(fo);
    return APR_SUCCESS;
}

/* A GByteArray over bytes it does not own: the array goes, the bytes stay. */
static apr_status_t borrowed_cleanup(void *array)
{
    (void)g_byte_array_free(array, FALSE);
    return APR_SUCCESS;
}

static void *pool_own(apr_pool_t *scratch, void *gobj)
{
    if (gobj) {
        apr_pool_cleanup_register(scratch, gobj, unref_cleanup, apr_pool_cleanup_null);
    }
    return gobj;
}

/* ------------------------------------------------------------------ UTF-8 strings in the pool */

/* s[0..len) as valid UTF-8 without NULs, in p (GLib replaces invalid sequences by U+FFFD). */
char *gs_mime_pool_utf8(apr_pool_t *p, const char *s, apr_size_t len)
{
    char *valid, *out, *w;
    apr_size_t i, n;

    if (g_utf8_validate_len(s, len, NULL)) {
        valid = NULL;
        n = len;
    }
    else {
        valid = g_utf8_make_valid(s, (gssize)len);
        s = valid;
        n = strlen(valid);   /* make_valid turns an embedded NUL into U+FFFD */
    }
    out = w = apr_palloc(p, n + 1);
    if (!memchr(s, '\0', n)) {
        memcpy(out, s, n);
        w = out + n;
    }
    else {
        for (i = 0; i < n; i++) {
            if (s[i] != '\0') {
                *w++ = s[i];
            }
        }
    }
    *w = '\0';
    g_free(valid);
    return out;
}

char *gs_mime_pool_str(apr_pool_t *p, const char *s)
{
    return s ? gs_mime_pool_utf8(p, s, strlen(s)) : NULL;
}

/* CRLF and lone CR line ends as LF, in place (the bodies are stored with LF line ends). */
void gs_mime_to_lf(char *s)
{
    char *r = s, *w = s;

    while (*r) {
        if (r[0] == '\r') {
            *w++ = '\n';
            r += (r[1] == '\n') ? 2 : 1;
        }
        else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}


void gs_mime_set_error(ctx_t *c, const char *reason)
{
    c->m->state = GS_MIME_PARSE_ERROR;
    if (!c->m->reason) {
        c->m->reason = apr_pstrdup(c->p, reason);
    }
}

static const char *warning_name(GMimeParserWarning w)
{
    switch (w) {
    case GMIME_WARN_DUPLICATED_HEADER: return "duplicated header";
    case GMIME_WARN_DUPLICATED_PARAMETER: return "duplicated parameter";
    case GMIME_WARN_UNENCODED_8BIT_HEADER: return "unencoded 8-bit header";
    case GMIME_WARN_INVALID_CONTENT_TYPE: return "invalid content type";
    case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE: return "invalid RFC 2047 header value";
    case GMIME_WARN_MALFORMED_MULTIPART: return "malformed multipart (no child parts)";
    case GMIME_WARN_TRUNCATED_MESSAGE: return "truncated message (a closing boundary is missing)";
    case GMIME_WARN_MALFORMED_MESSAGE: return "malformed message";
    case GMIME_CRIT_INVALID_HEADER_NAME: return "invalid header name";
    case GMIME_CRIT_CONFLICTING_HEADER: return "conflicting header";
    case GMIME_CRIT_CONFLICTING_PARAMETER: return "conflicting parameter";
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY: return "multipart without a boundary";
    case GMIME_WARN_INVALID_PARAMETER: return "invalid parameter";
    case GMIME_WARN_INVALID_ADDRESS_LIST: return "invalid address list";
    case GMIME_CRIT_NESTING_OVERFLOW: return "MIME nesting too deep";
    case GMIME_WARN_PART_WITHOUT_CONTENT: return "part without content";
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT: return "part without headers or content";
    }
    return "parser warning";
}

/* The structural problems make the message parse_error (stored raw, with what could be read);
 * the cosmetic ones are counted. A conflicting header or parameter (two Subject lines, two
 * charset parameters) is cosmetic: GMime keeps one, and every header is in the list anyway. */
static int warning_is_error(GMimeParserWarning w)
{
    switch (w) {
    case GMIME_WARN_MALFORMED_MULTIPART:
    case GMIME_WARN_TRUNCATED_MESSAGE:
    case GMIME_WARN_MALFORMED_MESSAGE:
    case GMIME_CRIT_INVALID_HEADER_NAME:
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
    case GMIME_CRIT_NESTING_OVERFLOW:
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        return 1;
    default:
        return 0;
    }
}

static void on_warning(gint64 offset, GMimeParserWarning errcode, const gchar *item, gpointer data)
{
    ctx_t *c = data;

    (void)item;
    if (warning_is_error(errcode)) {
        if (!c->m->reason) {
            gs_mime_set_error(c, offset < 0 ? warning_name(errcode)
                                    : apr_psprintf(c->scratch, "%s at byte %" APR_INT64_T_FMT,
                                                   warning_name(errcode), (apr_int64_t)offset));
        }
    }
    else {
        c->m->warnings++;
    }
}

/* ------------------------------------------------------------------ decoded content */

/* The part's content with its transfer encoding undone, as a GByteArray owned by a memory
 * stream that the scratch pool releases (the caller may release it sooner with
 * apr_pool_cleanup_run). NULL when the part has no content or the write fails. */
GMimeStream *gs_mime_decoded(ctx_t *c, GMimeObject *obj, int whole_message)
{
    GMimeDataWrapper *content = whole_message ? NULL : g_mime_part_get_content(GMIME_PART(obj));
    GMimeStream *encoded = content ? g_mime_data_wrapper_get_stream(content) : NULL;
    gint64 written = encoded ? g_mime_stream_length(encoded) : -1;
    GMimeStream *mem;
    ssize_t n;

    /* room for the decoded bytes at once (base64: 3/4 of what is written; the other encodings
     * never grow), rather than a buffer doubled and copied as it fills */
    if (written > 0 && written < (gint64)G_MAXINT / 2) {
        guint room = (guint)(g_mime_data_wrapper_get_encoding(content)
                             == GMIME_CONTENT_ENCODING_BASE64 ? written / 4 * 3 + 4 : written + 1);

        GByteArray *ba = g_byte_array_sized_new(room);

        (void)gs_mem_huge(ba->data, room);   /* advice only: a large part fills it at once */
        mem = g_mime_stream_mem_new_with_byte_array(ba);
    }
    else {
        mem = g_mime_stream_mem_new();
    }
    if (!mem) {
        return NULL;
    }
    if (whole_message) {
        n = g_mime_object_write_to_stream(obj, c->fo, mem);
    }
    else {
        n = content ? g_mime_data_wrapper_write_to_stream(content, mem) : 0;
    }
    if (n < 0) {
        g_object_unref(mem);
        return NULL;
    }
    return pool_own(c->scratch, mem);
}

void gs_mime_release(ctx_t *c, GMimeStream *mem)
{
    (void)apr_pool_cleanup_run(c->scratch, mem, unref_cleanup);
}

void gs_mime_keep(ctx_t *c, GMimeStream *mem)
{
    apr_pool_cleanup_kill(c->scratch, mem, unref_cleanup);
    pool_own(c->p, mem);
}

/* ------------------------------------------------------------------ decoded a piece at a time */

struct gs_mime_reader_t {
    GMimeStream *stream;        /* the content with its transfer encoding undone */
};

/* What g_mime_data_wrapper_write_to_stream writes, as a stream to read from: the content
 * through GMime's decoder of its transfer encoding (base64, quoted-printable, uuencode), or as
 * it is. A new reference, owned by p. */
static GMimeStream *decoding_stream(apr_pool_t *p, GMimeDataWrapper *content)
{
    GMimeStream *src = g_mime_data_wrapper_get_stream(content), *f;
    GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(content);

    if (!src || g_mime_stream_reset(src) != 0 || !(f = g_mime_stream_filter_new(src))) {
        return NULL;
    }
    if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
        || enc == GMIME_CONTENT_ENCODING_UUENCODE) {
        GMimeFilter *decoder = g_mime_filter_basic_new(enc, FALSE);

        g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), decoder);
        g_object_unref(decoder);
    }
    return pool_own(p, f);
}

apr_status_t gs_mime_reader_open(gs_mime_reader_t **reader, apr_pool_t *p,
                                 const gs_mime_source_t *source)
{
    gs_mime_reader_t *r = apr_pcalloc(p, sizeof *r);

    if (!source || !(r->stream = decoding_stream(p, source->content))) {
        return APR_EGENERAL;
    }
    *reader = r;
    return APR_SUCCESS;
}

apr_status_t gs_mime_reader_read(gs_mime_reader_t *r, void *buf, apr_size_t *len)
{
    apr_size_t want = *len, got = 0, idle = 0;

    while (got < want && !g_mime_stream_eos(r->stream)) {
        ssize_t n = g_mime_stream_read(r->stream, (char *)buf + got, want - got);

        if (n < 0) {
            return APR_EGENERAL;
        }
        /* a read may yield nothing (input the decoder drops) but the stream moves on: a stream
         * that stands still would be GMime's bug, an error here rather than a silent end */
        if (n == 0 && ++idle > 1000000) {
            return APR_EGENERAL;
        }
        if (n > 0) {
            idle = 0;
        }
        got += (apr_size_t)n;
    }
    *len = got;
    return APR_SUCCESS;
}

/* A large attachment's size and SHA-256 without holding its bytes: read a piece at a time
 * (GS_MIME_PIECE) through its own reader in the scratch pool. APR_EGENERAL when GMime or
 * OpenSSL fails (the caller then decodes it whole). */
#define GS_MIME_PIECE (64 * 1024)

apr_status_t gs_mime_hash_pieces(ctx_t *c, const gs_mime_source_t *src, apr_size_t *size,
                                unsigned char digest[GS_SHA256_DIGEST_LEN])
{
    apr_pool_t *hp;
    gs_mime_reader_t *r;
    gs_sha256_ctx_t *sha;
    char *buf;
    apr_status_t rv;

    if ((rv = apr_pool_create(&hp, c->scratch)) != APR_SUCCESS) {
        return rv;
    }
    buf = apr_palloc(hp, GS_MIME_PIECE);
    *size = 0;
    if (!(sha = gs_sha256_begin(hp))) {
        rv = APR_EGENERAL;
    }
    else if ((rv = gs_mime_reader_open(&r, hp, src)) == APR_SUCCESS) {
        for (;;) {
            apr_size_t n = GS_MIME_PIECE;

            if ((rv = gs_mime_reader_read(r, buf, &n)) != APR_SUCCESS || n == 0
                || (rv = gs_sha256_update(sha, buf, n)) != APR_SUCCESS) {
                break;
            }
            *size += n;
        }
        if (rv == APR_SUCCESS) {
            rv = gs_sha256_end(sha, digest);
        }
    }
    apr_pool_destroy(hp);
    return rv;
}

/* ------------------------------------------------------------------ GMime's own cost
 *
 * GMime's parser compares every line that starts with "--" with each boundary of the open
 * multiparts (up to its own nesting limit, about a thousand): a message of a thousand nested
 * multiparts followed by megabytes of "--x" lines costs it minutes. Both counts are bounded
 * from the bytes before GMime sees them (a count, not a parse: each nesting level needs a
 * "multipart/" in a Content-Type, each boundary candidate is a line starting with "--"); over
 * the budget, only the header block goes to GMime and the message is parse_error. Real mail is
 * far below it: 10,000 flat parts are one multipart times 10,000 lines. */
#define GS_MIME_PARSER_BUDGET 4000000.0

static int over_parser_budget(const char *s, apr_size_t len, double *cost)
{
    const char *at, *end = s + len;
    apr_size_t multiparts = 0, dashes = 0;

    /* memchr from one '/' to the next ("multipart/" ends with one) and from one line to the
     * next: a few hops per line of a message rather than a test per byte */
    for (at = s; (at = memchr(at, '/', (apr_size_t)(end - at))) != NULL; at++) {
        if (at - s >= 9 && g_ascii_strncasecmp(at - 9, "multipart", 9) == 0) {
            multiparts++;
        }
    }
    for (at = s; at && end - at >= 2; ) {
        if (at[0] == '-' && at[1] == '-') {
            dashes++;
        }
        if ((at = memchr(at, '\n', (apr_size_t)(end - at))) != NULL) {
            at++;
        }
    }
    *cost = (double)multiparts * (double)dashes;
    return *cost > GS_MIME_PARSER_BUDGET;
}

/* The length of the header block (up to and including the empty line ending it). */
static apr_size_t header_block(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] == '\n' && (i + 1 >= len || s[i + 1] == '\n'
                             || (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n'))) {
            return i + 1;
        }
    }
    return len;
}

/* ------------------------------------------------------------------ gs_mime_parse */

static gs_mime_t *result_new(apr_pool_t *p)
{
    gs_mime_t *m = apr_pcalloc(p, sizeof(*m));

    m->references = apr_array_make(p, 0, sizeof(const char *));
    m->from = apr_array_make(p, 1, sizeof(gs_mime_addr_t));
    m->to = apr_array_make(p, 1, sizeof(gs_mime_addr_t));
    m->cc = apr_array_make(p, 0, sizeof(gs_mime_addr_t));
    m->bcc = apr_array_make(p, 0, sizeof(gs_mime_addr_t));
    m->reply_to = apr_array_make(p, 0, sizeof(gs_mime_addr_t));
    m->sender = apr_array_make(p, 0, sizeof(gs_mime_addr_t));
    m->headers = apr_array_make(p, 16, sizeof(gs_mime_header_t));
    m->attachments = apr_array_make(p, 0, sizeof(gs_mime_attachment_t));
    return m;
}

gs_mime_t *gs_mime_parse(apr_pool_t *p, const void *raw, apr_size_t len, const gs_mime_opts_t *user)
{
    gs_mime_opts_t opts;
    ctx_t c;
    gs_mime_t *m = result_new(p);
    GMimeStream *stream;
    GByteArray *bytes;
    GMimeParser *parser;
    GMimeMessage *msg;

    gs_mime_init();
    memset(&opts, 0, sizeof(opts));
    if (user) {
        opts = *user;
    }
    if (!opts.max_message_bytes) opts.max_message_bytes = GS_MIME_DEFAULT_MAX_MESSAGE;
    if (opts.max_depth <= 0) opts.max_depth = GS_MIME_DEFAULT_MAX_DEPTH;
    if (opts.max_headers <= 0) opts.max_headers = GS_MIME_DEFAULT_MAX_HEADERS;
    if (opts.max_parts <= 0) opts.max_parts = GS_MIME_DEFAULT_MAX_PARTS;
    if (!opts.stream_at) opts.stream_at = GS_MIME_DEFAULT_STREAM_AT;

    memset(&c, 0, sizeof(c));
    c.p = p;
    c.opts = &opts;
    c.m = m;
    c.fallback = (const char **)(opts.fallback_charsets ? opts.fallback_charsets : default_fallback);
    if (len > opts.max_message_bytes) {
        gs_mime_set_error(&c, apr_psprintf(p, "message of %" APR_SIZE_T_FMT " bytes is over the %"
                                   APR_SIZE_T_FMT "-byte limit", len, opts.max_message_bytes));
        return m;
    }
    if (apr_pool_create(&c.scratch, p) != APR_SUCCESS) {
        gs_mime_set_error(&c, "out of memory");
        return m;
    }
    c.declared = apr_array_make(c.scratch, 4, sizeof(const char *));
    c.po = g_mime_parser_options_new();
    apr_pool_cleanup_register(c.scratch, c.po, options_cleanup, apr_pool_cleanup_null);
    g_mime_parser_options_set_fallback_charsets(c.po, c.fallback);
    g_mime_parser_options_set_allow_addresses_without_domain(c.po, TRUE);
    g_mime_parser_options_set_warning_callback(c.po, on_warning, &c);
    c.fo = g_mime_format_options_new();
    apr_pool_cleanup_register(c.scratch, c.fo, format_cleanup, apr_pool_cleanup_null);
    {   /* a message/rfc822 part is written back with the line ends of the message's first line */
        const char *nl = memchr(raw, '\n', len);

        g_mime_format_options_set_newline_format(c.fo, nl && nl > (const char *)raw && nl[-1] == '\r'
                                                       ? GMIME_NEWLINE_FORMAT_DOS
                                                       : GMIME_NEWLINE_FORMAT_UNIX);
    }

    /* the parser reads the message where it is (GMime's memory stream over the caller's bytes,
     * which it does not own: see below) and, persisting the stream, keeps each part's content
     * as a window on it rather than another copy */
    {
        double cost;

        if (over_parser_budget(raw, len, &cost)) {
            gs_mime_set_error(&c, apr_psprintf(p, "too costly to parse (nested multiparts times boundary "
                                       "lines: %.0f): headers only", cost));
            len = header_block(raw, len);
        }
    }
    /* A byte array over the caller's bytes: registered before the stream, so that it is
     * released (without its bytes: borrowed, read only) after the stream and whatever reads
     * from it; the stream is told it does not own the array. Nothing writes to the stream. */
    bytes = g_byte_array_new_take((guint8 *)(len ? raw : ""), len);
    apr_pool_cleanup_register(c.scratch, bytes, borrowed_cleanup, apr_pool_cleanup_null);
    stream = pool_own(c.scratch, g_mime_stream_mem_new_with_byte_array(bytes));
    if (stream) {
        g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
    }
    parser = stream ? pool_own(c.scratch, g_mime_parser_new_with_stream(stream)) : NULL;
    if (!parser) {
        gs_mime_set_error(&c, "out of memory");
        apr_pool_destroy(c.scratch);
        return m;
    }
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    g_mime_parser_set_persist_stream(parser, TRUE);
    msg = pool_own(c.scratch, g_mime_parser_construct_message(parser, c.po));
    if (!msg) {
        gs_mime_set_error(&c, "not a message (GMime found no header block)");
        apr_pool_destroy(c.scratch);
        return m;
    }
    gs_mime_read_envelope(&c, msg);
    gs_mime_read_bodies(&c, g_mime_message_get_mime_part(msg));
    if (!c.keep) {
        apr_pool_destroy(c.scratch);
    }
    /* else the attachments' sources read from GMime's objects: the scratch pool, a subpool of
     * p, goes with p */
    return m;
}
