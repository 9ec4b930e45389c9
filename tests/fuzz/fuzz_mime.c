/* fuzz_mime.c -- gs_mime_parse over any bytes (the raw message of Gmail's format=raw, issue 22),
 * keeping the decoded attachment bytes up to a small limit, then the invariants the storing
 * code relies on: every string is valid UTF-8 without NUL, every kept attachment's bytes hash
 * to its sha256, the state and reason agree; parsed again with every part decoded a piece at a
 * time (gs_mime_opts_t.stream_at), the same attachments come out, read back from their sources. gs_mime_html_to_text also runs on the input as
 * is (bytes that are not even UTF-8) and must stay within its bound. Seeds: the MIME corpus of
 * tests/data/mime and hostile shapes (make_seeds.py). */
#include <glib.h>

#include "fuzz.h"
#include "gs_mime_html.h"
#include "gs_mime.h"
#include "gs_sha256.h"

static void check_str(const char *s)
{
    if (s && !g_utf8_validate(s, -1, NULL)) {
        abort();
    }
}

static void check_addrs(const apr_array_header_t *a)
{
    int i;

    for (i = 0; i < a->nelts; i++) {
        const gs_mime_addr_t *x = &APR_ARRAY_IDX(a, i, gs_mime_addr_t);

        if (!x->name || !x->address || !x->normalized) {
            abort();
        }
        check_str(x->name);
        check_str(x->address);
        check_str(x->normalized);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    gs_mime_opts_t o;
    gs_mime_t *m;
    char *h;
    int i;

    memset(&o, 0, sizeof(o));
    o.want_bytes = 1;
    o.max_attachment_bytes = 4096;
    m = gs_mime_parse(p, data, size, &o);
    if (!m || (m->state == GS_MIME_COMPLETE) != (m->reason == NULL)) {
        abort();
    }
    check_str(m->reason);
    check_str(m->message_id);
    check_str(m->in_reply_to);
    check_str(m->subject);
    check_str(m->date_raw);
    check_str(m->text);
    check_str(m->html);
    check_str(m->html_text);
    for (i = 0; i < m->references->nelts; i++) {
        check_str(APR_ARRAY_IDX(m->references, i, const char *));
    }
    for (i = 0; i < m->headers->nelts; i++) {
        check_str(APR_ARRAY_IDX(m->headers, i, gs_mime_header_t).name);
        check_str(APR_ARRAY_IDX(m->headers, i, gs_mime_header_t).value);
    }
    check_addrs(m->from);
    check_addrs(m->to);
    check_addrs(m->cc);
    check_addrs(m->bcc);
    check_addrs(m->reply_to);
    check_addrs(m->sender);
    for (i = 0; i < m->attachments->nelts; i++) {
        const gs_mime_attachment_t *a = &APR_ARRAY_IDX(m->attachments, i, gs_mime_attachment_t);
        unsigned char d[GS_SHA256_DIGEST_LEN];
        char hex[65];

        if (!a->part_id || !a->mime_type || a->size > 2 * size + 16) {   /* a forward is written back with CRLF: at most twice */
            abort();
        }
        check_str(a->filename);
        check_str(a->content_id);
        if (a->bytes) {
            gs_sha256(a->bytes, a->size, d);
            gs_sha256_hex(d, hex);
            if (strcmp(hex, a->sha256) != 0) {
                abort();
            }
        }
    }
    {
        /* the same message with every part's content decoded a piece at a time (stream_at 1):
         * the same attachments, sizes and hashes, and a source whose bytes, read back in
         * pieces of 1 to 64 bytes, are the bytes decoded whole */
        gs_mime_opts_t so = o;
        const gs_mime_t *s;
        apr_size_t piece = size ? (apr_size_t)data[size - 1] % 64 + 1 : 1;

        so.stream_at = 1;
        s = gs_mime_parse(p, data, size, &so);
        if (s->attachments->nelts != m->attachments->nelts || s->state != m->state) {
            abort();
        }
        for (i = 0; i < m->attachments->nelts; i++) {
            const gs_mime_attachment_t *a = &APR_ARRAY_IDX(m->attachments, i, gs_mime_attachment_t);
            const gs_mime_attachment_t *b = &APR_ARRAY_IDX(s->attachments, i, gs_mime_attachment_t);
            gs_mime_reader_t *r;
            unsigned char buf[64];
            apr_size_t off = 0, n;

            if (a->size != b->size || strcmp(a->sha256, b->sha256) != 0
                || (a->bytes != NULL) != (b->bytes != NULL || b->source != NULL)) {
                abort();
            }
            if (!b->source) {
                continue;
            }
            if (gs_mime_reader_open(&r, p, b->source) != APR_SUCCESS) {
                abort();
            }
            do {
                n = piece;
                if (gs_mime_reader_read(r, buf, &n) != APR_SUCCESS || off + n > b->size
                    || (n && memcmp(buf, a->bytes + off, n) != 0)) {
                    abort();
                }
                off += n;
            } while (n > 0);
            if (off != b->size) {
                abort();
            }
        }
    }
    h = gs_mime_html_to_text(p, (const char *)data, size);
    if (strlen(h) > size + 1) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
