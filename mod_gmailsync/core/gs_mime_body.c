/* gs_mime_body.c -- the text and the attachments of a message (gs_mime.h), split from
 * gs_mime.c, which parses the message and owns GMime's objects.
 *
 * Each text part is decoded to UTF-8 from its declared charset, strictly, then with the
 * charsets other parts declare and the fallback list, then with GMime's best effort. The MIME
 * tree is walked the way mail clients read it: of a multipart/alternative the last text/plain
 * and the last HTML rendering, a multipart/related's root with its related parts, nested
 * multiparts in order; every other part is an attachment with its size and SHA-256.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <gmime/gmime.h>

#include "gs_mime_html.h"
#include "gs_mime_int.h"
#include "gs_sha256.h"

/* ------------------------------------------------------------------ charsets */

/* Supersets that mail clients decode these labels with (the WHATWG encoding labels): the
 * Chinese national sets as GB18030, Shift_JIS as Windows-932, EUC-KR as Windows-949, Big5
 * with its HKSCS extension; the ISO 8859 sets as their Windows counterparts (GMime's table). */
static const char *superset_of(const char *canon)
{
    static const char *const table[][2] = {
        { "gb2312", "GB18030" }, { "gbk", "GB18030" }, { "x-gbk", "GB18030" },
        { "cp936", "GB18030" }, { "euc-cn", "GB18030" }, { "shift_jis", "CP932" },
        { "shift-jis", "CP932" }, { "x-sjis", "CP932" }, { "sjis", "CP932" }, { "euc-kr", "CP949" },
        { "ks_c_5601-1987", "CP949" }, { "big5", "BIG5-HKSCS" }, { "iso-2022-jp", "ISO-2022-JP-2" },
        { "us-ascii", "windows-1252" }, { "ascii", "windows-1252" },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (g_ascii_strcasecmp(canon, table[i][0]) == 0) {
            return table[i][1];
        }
    }
    if (g_ascii_strncasecmp(canon, "iso-8859-", 9) == 0) {
        const char *w = g_mime_charset_iso_to_windows(canon);

        if (w && g_ascii_strcasecmp(w, canon) != 0) {
            return w;
        }
    }
    return NULL;
}

/* Strict conversion to UTF-8 (GLib's iconv): NULL when the charset is unknown to iconv or the
 * bytes are not valid in it. */
static char *convert_strict(const char *bytes, apr_size_t len, const char *charset, gsize *outlen)
{
    const char *iname;

    if (g_ascii_strcasecmp(charset, "utf-8") == 0 || g_ascii_strcasecmp(charset, "utf8") == 0) {
        if (!g_utf8_validate_len(bytes, len, NULL)) {
            return NULL;
        }
        *outlen = len;
        return g_strndup(bytes, len);
    }
    iname = g_mime_charset_iconv_name(charset);
    return g_convert(bytes, (gssize)len, "UTF-8", iname ? iname : charset, NULL, outlen, NULL);
}

static void add_candidate(const char **list, int *n, int max, const char *cs)
{
    int i;

    if (!cs || !*cs || *n >= max) {
        return;
    }
    for (i = 0; i < *n; i++) {
        if (g_ascii_strcasecmp(list[i], cs) == 0) {
            return;
        }
    }
    list[(*n)++] = cs;
}

/* bytes[0..len) in the declared charset (or none) as UTF-8 in the result pool, with LF line
 * ends. *used: the charset it was decoded with. Order: the declared charset's superset, the
 * declared charset, UTF-8, the charsets the message's other text parts declare, the fallback
 * list, each strictly; then GMime's best effort over the fallback list. */
static char *decode_text(ctx_t *c, const char *bytes, apr_size_t len, const char *declared,
                         const char **used)
{
    const char *cands[48];
    int n = 0, i;
    char *out = NULL, *res;
    gsize outlen = 0;
    const char *canon = NULL;

    if (declared && *declared) {
        canon = g_mime_charset_canon_name(declared);
    }
    if (memchr(bytes, '\0', len) && !(canon && (g_ascii_strncasecmp(canon, "utf-16", 6) == 0
                                               || g_ascii_strncasecmp(canon, "utf-32", 6) == 0
                                               || g_ascii_strncasecmp(canon, "ucs-", 4) == 0))) {
        /* a NUL is no character of any 8-bit or multibyte mail charset: junk, dropped */
        char *copy = apr_palloc(c->scratch, len + 1), *w = copy;
        apr_size_t k;

        for (k = 0; k < len; k++) {
            if (bytes[k] != '\0') {
                *w++ = bytes[k];
            }
        }
        len = (apr_size_t)(w - copy);
        bytes = copy;
    }
    if (declared && *declared) {
        const char *cn = canon ? canon : declared;

        /* a Latin label on bytes that are valid UTF-8 (and not ASCII) is a mislabel: UTF-8
         * text hardly ever happens to be valid in the other reading's intent */
        if (g_ascii_strcasecmp(cn, "us-ascii") == 0 || g_ascii_strncasecmp(cn, "iso-8859-", 9) == 0
            || g_ascii_strncasecmp(cn, "windows-125", 11) == 0 || g_ascii_strncasecmp(cn, "cp125", 5) == 0) {
            add_candidate(cands, &n, 48, "UTF-8");
        }
        add_candidate(cands, &n, 48, superset_of(cn));
        add_candidate(cands, &n, 48, canon ? canon : declared);
    }
    add_candidate(cands, &n, 48, "UTF-8");
    for (i = 0; i < c->declared->nelts; i++) {
        const char *d = APR_ARRAY_IDX(c->declared, i, const char *);
        const char *dc = g_mime_charset_canon_name(d);

        add_candidate(cands, &n, 48, superset_of(dc ? dc : d));
        add_candidate(cands, &n, 48, dc ? dc : d);
    }
    for (i = 0; c->fallback[i]; i++) {
        add_candidate(cands, &n, 48, c->fallback[i]);
    }
    for (i = 0; i < n && !out; i++) {
        out = convert_strict(bytes, len, cands[i], &outlen);
        if (out) {
            *used = apr_pstrdup(c->p, cands[i]);
        }
    }
    if (!out) {
        out = g_mime_utils_decode_8bit(c->po, bytes, len);
        if (!out) {
            return NULL;
        }
        outlen = strlen(out);
        *used = "best-effort";
    }
    res = gs_mime_pool_utf8(c->p, out, outlen);
    g_free(out);
    gs_mime_to_lf(res);
    return res;
}

/* ------------------------------------------------------------------ the bodies */

typedef struct {
    apr_array_header_t *text;   /* char *: text/plain pieces in order */
    apr_array_header_t *html;   /* char *: text/html pieces in order */
    const char *text_cs, *html_cs;
} bodies_t;

static void bodies_init(ctx_t *c, bodies_t *b)
{
    b->text = apr_array_make(c->p, 2, sizeof(char *));
    b->html = apr_array_make(c->p, 2, sizeof(char *));
    b->text_cs = b->html_cs = NULL;
}

static void bodies_append(bodies_t *to, const bodies_t *from, int text, int html)
{
    if (text && from->text->nelts) {
        apr_array_cat(to->text, from->text);
        if (!to->text_cs) {
            to->text_cs = from->text_cs;
        }
    }
    if (html && from->html->nelts) {
        apr_array_cat(to->html, from->html);
        if (!to->html_cs) {
            to->html_cs = from->html_cs;
        }
    }
}

static char *lower(apr_pool_t *p, const char *s)
{
    char *g = g_ascii_strdown(s ? s : "", -1);
    char *r = gs_mime_pool_str(p, g);

    g_free(g);
    return r;
}

static void add_attachment(ctx_t *c, GMimeObject *obj, const char *path, int related)
{
    gs_mime_attachment_t *a = apr_array_push(c->m->attachments);
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *mt = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
    const char *disp = g_mime_object_get_disposition(obj);
    GMimeContentDisposition *cd = g_mime_object_get_content_disposition(obj);
    int is_message = GMIME_IS_MESSAGE_PART(obj);
    GMimeStream *mem = NULL;
    unsigned char digest[GS_SHA256_DIGEST_LEN];

    memset(a, 0, sizeof(*a));
    a->part_id = apr_pstrdup(c->p, path);
    a->mime_type = lower(c->p, mt ? mt : "application/octet-stream");
    g_free(mt);
    if (GMIME_IS_PART(obj)) {
        a->filename = gs_mime_pool_str(c->p, g_mime_part_get_filename(GMIME_PART(obj)));
    }
    else {
        const char *fn = g_mime_object_get_content_disposition_parameter(obj, "filename");

        a->filename = gs_mime_pool_str(c->p, fn ? fn : g_mime_object_get_content_type_parameter(obj, "name"));
    }
    a->content_id = gs_mime_pool_str(c->p, g_mime_object_get_content_id(obj));
    a->disposition = disp ? lower(c->p, disp) : NULL;
    if (a->disposition && strcmp(a->disposition, "inline") != 0 && strcmp(a->disposition, "attachment") != 0) {
        a->disposition = NULL;   /* neither of RFC 2183's: as if none were declared */
    }
    a->is_inline = !(cd && g_mime_content_disposition_is_attachment(cd))
                   && ((a->disposition && strcmp(a->disposition, "inline") == 0) || a->content_id);
    a->related = related;
    if (is_message) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

        mem = inner ? gs_mime_decoded(c, GMIME_OBJECT(inner), 1) : NULL;
    }
    else if (GMIME_IS_PART(obj)) {
        GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(obj));
        GMimeStream *encoded = content ? g_mime_data_wrapper_get_stream(content) : NULL;
        gint64 written = encoded ? g_mime_stream_length(encoded) : -1;
        gs_mime_source_t *src;

        if (written >= 0 && (apr_size_t)written >= c->opts->stream_at) {
            /* large: its size and hash a piece at a time; its bytes, when wanted, read again
             * from the message when they are sent (never whole here) */
            src = apr_pcalloc(c->p, sizeof *src);
            src->content = content;
            if (gs_mime_hash_pieces(c, src, &a->size, digest) == APR_SUCCESS) {
                if (c->opts->want_bytes && (c->opts->max_attachment_bytes == 0
                                            || a->size <= c->opts->max_attachment_bytes)) {
                    a->source = src;
                    c->keep = 1;
                }
                goto hashed;
            }
        }
        mem = gs_mime_decoded(c, obj, 0);
    }
    if (mem) {
        GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));

        a->size = ba->len;
        gs_sha256(ba->len ? ba->data : (const guint8 *)"", ba->len, digest);
        if (c->opts->want_bytes
            && (c->opts->max_attachment_bytes == 0 || ba->len <= c->opts->max_attachment_bytes)) {
            /* the decoded bytes themselves, not a copy: the stream that holds them moves from
             * the scratch pool to the result's pool; a NUL after them (not counted in size),
             * as the bytes of a C string */
            g_byte_array_append(ba, (const guint8 *)"", 1);
            a->bytes = ba->data;
            gs_mime_keep(c, mem);
        }
        else {
            gs_mime_release(c, mem);
        }
    }
    else {
        a->size = 0;
        gs_sha256("", 0, digest);
        if (c->opts->want_bytes) {
            a->bytes = apr_pcalloc(c->p, 1);
        }
    }
hashed:
    gs_sha256_hex(digest, a->sha256);
    if (!a->is_inline || (a->filename && !related)) {
        c->m->has_attachments = 1;
    }
}

static const char *child_path(ctx_t *c, const char *path, int index)
{
    return *path ? apr_psprintf(c->p, "%s.%d", path, index + 1) : apr_psprintf(c->p, "%d", index + 1);
}

static int is_type(GMimeObject *obj, const char *type, const char *subtype)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);

    return ct && g_mime_content_type_is_type(ct, type, subtype);
}

static void walk(ctx_t *c, GMimeObject *obj, const char *path, int depth, bodies_t *b, int related);

/* A leaf: a text/plain or text/html part that is not declared an attachment is a body piece;
 * anything else is an attachment. */
static void walk_leaf(ctx_t *c, GMimeObject *obj, const char *path, bodies_t *b, int related)
{
    GMimeContentDisposition *cd = g_mime_object_get_content_disposition(obj);
    int attachment = cd && g_mime_content_disposition_is_attachment(cd);
    int plain = is_type(obj, "text", "plain"), html = is_type(obj, "text", "html");

    if (GMIME_IS_PART(obj) && !attachment && (plain || html) && !related) {
        GMimeStream *mem = gs_mime_decoded(c, obj, 0);
        const char *declared = g_mime_object_get_content_type_parameter(obj, "charset");
        const char *used = NULL;
        char *text;

        if (!mem) {
            return;
        }
        {
            GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));

            text = decode_text(c, ba->len ? (const char *)ba->data : "", ba->len, declared, &used);
        }
        gs_mime_release(c, mem);
        if (!text) {
            return;
        }
        if (plain) {
            APR_ARRAY_PUSH(b->text, char *) = text;
            if (!b->text_cs) {
                b->text_cs = used;
            }
        }
        else {
            APR_ARRAY_PUSH(b->html, char *) = text;
            if (!b->html_cs) {
                b->html_cs = used;
            }
        }
        return;
    }
    add_attachment(c, obj, path, related);
}

/* multipart/alternative: the last alternative that has a text/plain rendering gives the text,
 * the last one with HTML gives the HTML (a client shows the last alternative it can render);
 * the attachments of every alternative are kept. */
static void walk_alternative(ctx_t *c, GMimeMultipart *mp, const char *path, int depth, bodies_t *b)
{
    int i, n = g_mime_multipart_get_count(mp), text_i = -1, html_i = -1;
    bodies_t *alt = apr_pcalloc(c->p, sizeof(bodies_t) * (apr_size_t)(n > 0 ? n : 1));

    for (i = 0; i < n && !c->stopped; i++) {
        bodies_init(c, &alt[i]);
        walk(c, g_mime_multipart_get_part(mp, i), child_path(c, path, i), depth + 1, &alt[i], 0);
        if (alt[i].text->nelts) {
            text_i = i;
        }
        if (alt[i].html->nelts) {
            html_i = i;
        }
    }
    if (text_i >= 0) {
        bodies_append(b, &alt[text_i], 1, 0);
    }
    if (html_i >= 0) {
        bodies_append(b, &alt[html_i], 0, 1);
    }
}

/* multipart/related: the root (the part the start parameter names, else the first) is the
 * body; the others are its resources (attachments marked related). */
static void walk_related(ctx_t *c, GMimeMultipart *mp, const char *path, int depth, bodies_t *b)
{
    int i, n = g_mime_multipart_get_count(mp), root = 0;
    const char *start = g_mime_object_get_content_type_parameter(GMIME_OBJECT(mp), "start");

    if (start) {
        char *id = g_strstrip(g_strdup(start));
        apr_size_t l = strlen(id);
        const char *want = id;

        if (l >= 2 && id[0] == '<' && id[l - 1] == '>') {
            id[l - 1] = '\0';
            want = id + 1;
        }
        for (i = 0; i < n; i++) {
            const char *cid = g_mime_object_get_content_id(g_mime_multipart_get_part(mp, i));

            if (cid && strcmp(cid, want) == 0) {
                root = i;
                break;
            }
        }
        g_free(id);
    }
    for (i = 0; i < n && !c->stopped; i++) {
        walk(c, g_mime_multipart_get_part(mp, i), child_path(c, path, i), depth + 1, b, i != root);
    }
}

static void walk(ctx_t *c, GMimeObject *obj, const char *path, int depth, bodies_t *b, int related)
{
    if (!obj || c->stopped) {
        return;
    }
    if (++c->parts > c->opts->max_parts) {
        c->stopped = 1;
        gs_mime_set_error(c, apr_psprintf(c->scratch, "more than %d MIME parts", c->opts->max_parts));
        return;
    }
    if (depth > c->opts->max_depth) {
        gs_mime_set_error(c, apr_psprintf(c->scratch, "MIME nesting deeper than %d", c->opts->max_depth));
        return;
    }
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int i, n = g_mime_multipart_get_count(mp);

        if (related) {   /* a multipart resource of a related: its leaves are resources */
            for (i = 0; i < n && !c->stopped; i++) {
                walk(c, g_mime_multipart_get_part(mp, i), child_path(c, path, i), depth + 1, b, 1);
            }
        }
        else if (is_type(obj, "multipart", "alternative")) {
            walk_alternative(c, mp, path, depth, b);
        }
        else if (is_type(obj, "multipart", "related")) {
            walk_related(c, mp, path, depth, b);
        }
        else {           /* mixed, signed, digest, report...: every part in order */
            for (i = 0; i < n && !c->stopped; i++) {
                walk(c, g_mime_multipart_get_part(mp, i), child_path(c, path, i), depth + 1, b, 0);
            }
        }
        return;
    }
    /* a leaf, or message/rfc822 (a forward: one attachment, the message as written) */
    walk_leaf(c, obj, *path ? path : "1", b, related);
}

/* The charsets the text parts declare (tried for a sibling that declares none or a wrong one). */
static void collect_declared(ctx_t *c, GMimeObject *obj, int depth)
{
    if (!obj || depth > c->opts->max_depth || c->declared->nelts >= 8) {
        return;
    }
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int i, n = g_mime_multipart_get_count(mp);

        for (i = 0; i < n && i < c->opts->max_parts; i++) {
            collect_declared(c, g_mime_multipart_get_part(mp, i), depth + 1);
        }
    }
    else if (GMIME_IS_PART(obj) && is_type(obj, "text", "*")) {
        const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");

        if (cs && *cs && strlen(cs) < 64) {
            APR_ARRAY_PUSH(c->declared, const char *) = apr_pstrdup(c->scratch, cs);
        }
    }
}

/* Joins body pieces: text pieces on separate lines, HTML pieces one after the other. */
static const char *join(apr_pool_t *p, apr_array_header_t *pieces, int text)
{
    apr_array_header_t *parts;
    int i;

    if (!pieces->nelts) {
        return NULL;
    }
    if (pieces->nelts == 1) {
        return APR_ARRAY_IDX(pieces, 0, char *);
    }
    parts = apr_array_make(p, pieces->nelts * 2, sizeof(char *));
    for (i = 0; i < pieces->nelts; i++) {
        const char *s = APR_ARRAY_IDX(pieces, i, char *);
        apr_size_t l = strlen(s);

        APR_ARRAY_PUSH(parts, const char *) = s;
        if (i + 1 < pieces->nelts && (l == 0 || s[l - 1] != '\n')) {
            APR_ARRAY_PUSH(parts, const char *) = "\n";
        }
    }
    (void)text;
    return apr_array_pstrcat(p, parts, '\0');
}

void gs_mime_read_bodies(ctx_t *c, GMimeObject *top)
{
    gs_mime_t *m = c->m;
    bodies_t b;

    collect_declared(c, top, 0);
    bodies_init(c, &b);
    walk(c, top, "", 0, &b, 0);
    m->text = join(c->p, b.text, 1);
    m->html = join(c->p, b.html, 0);
    m->text_charset = b.text_cs;
    m->html_charset = b.html_cs;
    if (m->html && !m->text) {
        m->html_text = gs_mime_html_to_text(c->p, m->html, strlen(m->html));
    }
}
