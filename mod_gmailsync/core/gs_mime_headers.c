/* gs_mime_headers.c -- the envelope of a message parsed by gs_mime.c: every header in order,
 * RFC 2047 decoded one encoded word at a time, the Message-ID, In-Reply-To, References and Date,
 * and the addresses by role (GMime's address parser).
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gs_mime_int.h"

/* ------------------------------------------------------------------ addresses and headers */

static void add_addresses(ctx_t *c, apr_array_header_t *to, InternetAddressList *list, int depth)
{
    int i, n;

    if (!list || depth > 4) {
        return;
    }
    n = internet_address_list_length(list);
    for (i = 0; i < n && to->nelts < 10000; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);

        if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            gs_mime_addr_t *a = apr_array_push(to);
            const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
            char *norm;

            a->name = gs_mime_pool_str(c->p, internet_address_get_name(ia) ? internet_address_get_name(ia) : "");
            a->address = gs_mime_pool_str(c->p, addr ? addr : "");
            norm = g_utf8_strdown(a->address, -1);
            a->normalized = gs_mime_pool_str(c->p, g_strstrip(norm));
            g_free(norm);
        }
        else if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            add_addresses(c, to, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), depth + 1);
        }
    }
}

typedef struct {
    GMimeHeader *h;
    gint64 offset;   /* -1: unknown (then the list order) */
    int seq;
} hdr_at_t;

/* A header's value, unfolded and RFC 2047 decoded to UTF-8 by GMime, one encoded word at a
 * time. GMime 3.2.13 (Debian's) joins adjacent B-encoded words of one charset before decoding
 * and stops at the first one's '=' padding: "=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=" comes
 * out "Hello" (jstedfast/gmime#133, fixed after 3.2.13), and every long non-ASCII subject is
 * folded that way. So the raw value is cut at its white space and each piece is handed to
 * g_mime_utils_header_decode_text alone; the white space between two encoded words is dropped
 * (RFC 2047 section 6.2), other white space is kept, CR and LF of the folding go. A value
 * without "=?" is GMime's own. The decoding itself (base64, quoted-printable, charsets, the
 * fallback for 8-bit text) stays GMime's. */
static const char *header_text(ctx_t *c, GMimeHeader *h)
{
    const char *raw = g_mime_header_get_raw_value(h), *s, *v;
    apr_array_header_t *out;
    int prev_word = 0, first = 1;

    if (!raw || !strstr(raw, "=?")) {
        v = g_mime_header_get_value(h);
        return gs_mime_pool_str(c->p, v ? v : "");
    }
    out = apr_array_make(c->scratch, 16, sizeof(const char *));
    for (s = raw; *s; ) {
        const char *ws = s, *tok;
        char *piece, *decoded;
        int word;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
            s++;
        }
        tok = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            s++;
        }
        if (tok == s) {
            break;          /* trailing white space */
        }
        word = s - tok >= 8 && tok[0] == '=' && tok[1] == '?' && s[-2] == '?' && s[-1] == '=';
        if (!first && !(prev_word && word)) {
            const char *w;
            for (w = ws; w < tok; w++) {
                if (*w == ' ' || *w == '\t') {
                    APR_ARRAY_PUSH(out, const char *) = apr_pstrmemdup(c->scratch, w, 1);
                }
            }
        }
        piece = apr_pstrmemdup(c->scratch, tok, (apr_size_t)(s - tok));
        decoded = g_mime_utils_header_decode_text(c->po, piece);
        APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(c->scratch, decoded ? decoded : piece);
        g_free(decoded);
        prev_word = word;
        first = 0;
    }
    return gs_mime_pool_str(c->p, apr_array_pstrcat(c->scratch, out, 0));
}

/* The same GMime defect cuts display names in address lists, which GMime's own address parser
 * decodes. Before that parser sees a value, each padded B-encoded word ("=?cs?B?...=?=") is
 * rewritten as the Q-encoded word of the same bytes and charset ("=?cs?Q?=E9=95=BF?="), which
 * GMime joins without loss; unpadded words and everything else are left as they are. The base64
 * is decoded by GLib; the Q form writes every byte as "=XX", which RFC 2047 allows for any byte. */
static const char *unpad_encoded_words(apr_pool_t *p, const char *raw)
{
    static const char hex[] = "0123456789ABCDEF";
    apr_array_header_t *out;
    const char *s = raw, *copied = raw;

    if (!raw || !strstr(raw, "=?=")) {
        return raw;
    }
    out = apr_array_make(p, 8, sizeof(const char *));
    while ((s = strstr(s, "=?")) != NULL) {
        const char *cs = s + 2, *q = cs, *text, *end;
        char *b64, *w;
        guchar *bytes;
        gsize n = 0, i;

        while (*q && *q != '?' && *q != ' ' && *q != '\t' && q - cs < 64) {
            q++;
        }
        if (*q != '?' || q == cs || (q[1] != 'B' && q[1] != 'b') || q[2] != '?') {
            s += 2;
            continue;
        }
        text = q + 3;
        end = text + strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");
        if (end[0] != '?' || end[1] != '=' || end == text || end[-1] != '=') {
            s = text;
            continue;
        }
        b64 = apr_pstrmemdup(p, text, (apr_size_t)(end - text));
        bytes = g_base64_decode(b64, &n);
        if (!bytes || !n) {
            g_free(bytes);
            s = end + 2;
            continue;
        }
        APR_ARRAY_PUSH(out, const char *) = apr_pstrmemdup(p, copied, (apr_size_t)(s - copied));
        w = apr_palloc(p, (apr_size_t)(q - s) + 3 + 3 * n + 3);
        memcpy(w, s, (apr_size_t)(q - s));
        APR_ARRAY_PUSH(out, const char *) = w;
        w += q - s;
        memcpy(w, "?Q?", 3);
        w += 3;
        for (i = 0; i < n; i++) {
            *w++ = '=';
            *w++ = hex[bytes[i] >> 4];
            *w++ = hex[bytes[i] & 15];
        }
        memcpy(w, "?=", 3);
        g_free(bytes);
        s = copied = end + 2;
    }
    APR_ARRAY_PUSH(out, const char *) = copied;
    return apr_array_pstrcat(p, out, 0);
}

/* The addresses of every header called name, in order, parsed by GMime from their raw values
 * (after unpad_encoded_words). */
static void add_addresses_of(ctx_t *c, apr_array_header_t *to, GMimeHeaderList *hl,
                             const char *name, InternetAddressList *parsed)
{
    int i, n = hl ? g_mime_header_list_get_count(hl) : 0, padded = 0;

    for (i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *raw = g_mime_header_get_raw_value(h);

        if (!g_ascii_strcasecmp(g_mime_header_get_name(h), name) && raw && strstr(raw, "=?=")) {
            padded = 1;
            break;
        }
    }
    if (!padded) {
        add_addresses(c, to, parsed, 0);
        return;
    }
    for (i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *raw = g_mime_header_get_raw_value(h);
        InternetAddressList *list;

        if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) || !raw) {
            continue;
        }
        list = internet_address_list_parse(c->po, unpad_encoded_words(c->scratch, raw));
        if (list) {
            add_addresses(c, to, list, 0);
            g_object_unref(list);
        }
    }
}

static int hdr_cmp(const void *a, const void *b)
{
    const hdr_at_t *x = a, *y = b;

    if (x->offset >= 0 && y->offset >= 0 && x->offset != y->offset) {
        return x->offset < y->offset ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void gs_mime_read_envelope(ctx_t *c, GMimeMessage *msg)
{
    gs_mime_t *m = c->m;
    GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
    int i, n = hl ? g_mime_header_list_get_count(hl) : 0;
    const char *v;
    GDateTime *dt;

    /* GMime keeps the Content-* headers of the top-level message in its body part's list:
     * both lists are merged back into the order of the message by their stream offsets */
    {
        GMimeObject *body = g_mime_message_get_mime_part(msg);
        GMimeHeaderList *bl = body ? g_mime_object_get_header_list(body) : NULL;
        int bn = bl ? g_mime_header_list_get_count(bl) : 0, total = 0, k;
        hdr_at_t *all;

        if (n > c->opts->max_headers || bn > c->opts->max_headers
            || n + bn > c->opts->max_headers) {
            gs_mime_set_error(c, apr_psprintf(c->scratch, "more than %d headers", c->opts->max_headers));
            n = n > c->opts->max_headers ? c->opts->max_headers : n;
            bn = bn > c->opts->max_headers ? c->opts->max_headers : bn;
        }
        all = apr_palloc(c->scratch, sizeof(hdr_at_t) * (apr_size_t)(n + bn + 1));
        for (i = 0; i < n; i++) {
            all[total].h = g_mime_header_list_get_header_at(hl, i);
            all[total].offset = g_mime_header_get_offset(all[total].h);
            all[total].seq = total;
            total++;
        }
        for (i = 0; i < bn; i++) {
            GMimeHeader *h = g_mime_header_list_get_header_at(bl, i);
            gint64 off = g_mime_header_get_offset(h);

            for (k = 0; k < n && off >= 0; k++) {   /* in both lists: once */
                if (all[k].offset == off) {
                    break;
                }
            }
            if (off >= 0 && k < n) {
                continue;
            }
            all[total].h = h;
            all[total].offset = off;
            all[total].seq = total;
            total++;
        }
        qsort(all, (size_t)total, sizeof(hdr_at_t), hdr_cmp);
        for (i = 0; i < total && i < c->opts->max_headers; i++) {
            gs_mime_header_t *out = apr_array_push(m->headers);

            out->name = gs_mime_pool_str(c->p, g_mime_header_get_name(all[i].h));
            out->value = header_text(c, all[i].h);
        }
    }
    m->message_id = gs_mime_pool_str(c->p, g_mime_message_get_message_id(msg));
    {
        GMimeHeader *sh = g_mime_header_list_get_header(hl, "Subject");
        m->subject = sh ? header_text(c, sh) : NULL;
    }
    m->date_raw = gs_mime_pool_str(c->p, g_mime_object_get_header(GMIME_OBJECT(msg), "Date"));
    dt = g_mime_message_get_date(msg);
    if (dt && m->date_raw) {
        m->has_date = 1;
        m->date = (apr_time_t)g_date_time_to_unix(dt) * APR_USEC_PER_SEC
                  + (apr_time_t)g_date_time_get_microsecond(dt);
    }
    v = g_mime_object_get_header(GMIME_OBJECT(msg), "In-Reply-To");
    if (v) {
        GMimeReferences *refs = g_mime_references_parse(c->po, v);

        if (refs) {
            if (g_mime_references_length(refs) > 0) {
                m->in_reply_to = gs_mime_pool_str(c->p, g_mime_references_get_message_id(refs, 0));
            }
            g_mime_references_free(refs);
        }
    }
    v = g_mime_object_get_header(GMIME_OBJECT(msg), "References");
    if (v) {
        GMimeReferences *refs = g_mime_references_parse(c->po, v);

        if (refs) {
            int k, len = g_mime_references_length(refs);

            for (k = 0; k < len && k < 1000; k++) {
                APR_ARRAY_PUSH(m->references, const char *) =
                    gs_mime_pool_str(c->p, g_mime_references_get_message_id(refs, k));
            }
            g_mime_references_free(refs);
        }
    }
    add_addresses_of(c, m->from, hl, "From", g_mime_message_get_from(msg));
    add_addresses_of(c, m->to, hl, "To", g_mime_message_get_to(msg));
    add_addresses_of(c, m->cc, hl, "Cc", g_mime_message_get_cc(msg));
    add_addresses_of(c, m->bcc, hl, "Bcc", g_mime_message_get_bcc(msg));
    add_addresses_of(c, m->reply_to, hl, "Reply-To", g_mime_message_get_reply_to(msg));
    add_addresses_of(c, m->sender, hl, "Sender", g_mime_message_get_sender(msg));
}
