/* test_mime.c -- gs_mime over the corpus of tests/data/mime (written by make_corpus.py there):
 * charsets (declared, superset, missing, wrong), encoded words, RFC 2231 filenames, the body
 * resolution of alternative/related/mixed, attachments and their hashes, forwards, broken
 * structure, the limits for hostile input, and the HTML-to-text rendering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <check.h>

#include "gs_content.h"
#include "gs_json.h"
#include "gs_mime_html.h"
#include "gs_mime.h"
#include "gs_sha256.h"
#include "gs_sha256.h"
#include "unit.h"

#ifndef GS_TEST_DATA_DIR
#define GS_TEST_DATA_DIR "tests/data"
#endif

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static char *slurp(const char *name, apr_size_t *len)
{
    char *path = apr_pstrcat(pool, GS_TEST_DATA_DIR, "/mime/", name, NULL);
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    buf = apr_palloc(pool, (apr_size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (apr_size_t)n;
    return buf;
}

static gs_mime_t *parse_opts(const char *name, const gs_mime_opts_t *opts)
{
    apr_size_t len;
    char *raw = slurp(name, &len);

    return gs_mime_parse(pool, raw, len, opts);
}

static gs_mime_t *parse(const char *name)
{
    gs_mime_t *m = parse_opts(name, NULL);

    ck_assert_ptr_nonnull(m);
    return m;
}

static gs_mime_t *parse_complete(const char *name)
{
    gs_mime_t *m = parse(name);

    ck_assert_msg(m->state == GS_MIME_COMPLETE, "%s: %s", name, m->reason ? m->reason : "?");
    ck_assert_ptr_null(m->reason);
    return m;
}

#define ADDR(arr, i) (&APR_ARRAY_IDX((arr), (i), gs_mime_addr_t))
#define ATT(m, i) (&APR_ARRAY_IDX((m)->attachments, (i), gs_mime_attachment_t))
#define HDR(m, i) (&APR_ARRAY_IDX((m)->headers, (i), gs_mime_header_t))

static const char *sha_hex(const void *data, apr_size_t len)
{
    unsigned char d[GS_SHA256_DIGEST_LEN];
    char *hex = apr_palloc(pool, 65);

    gs_sha256(data, len, d);
    gs_sha256_hex(d, hex);
    return hex;
}

/* ------------------------------------------------------------------ charsets */

START_TEST(utf8_quoted_printable)
{
    gs_mime_t *m = parse_complete("utf8_qp.eml");

    ck_assert_str_eq(m->subject, "utf8: Grüße aus Köln ✓");
    ck_assert_str_eq(m->text, "Grüße aus Köln!\nDiese Zeile ist sehr lang und wird von quoted-printable "
                     "umbrochen, damit der Decoder weiche Zeilenumbrüche zusammenfügt: äöüß€.\n");
    ck_assert_str_eq(m->text_charset, "UTF-8");
    ck_assert_int_eq(m->from->nelts, 1);
    ck_assert_str_eq(ADDR(m->from, 0)->name, "Jürgen Müller");
    ck_assert_str_eq(ADDR(m->from, 0)->address, "Juergen.Mueller@Example.COM");
    ck_assert_str_eq(ADDR(m->from, 0)->normalized, "juergen.mueller@example.com");
    ck_assert_str_eq(m->message_id, "utf8@corpus.example");
    ck_assert_str_eq(m->date_raw, "Mon, 07 Dec 2026 09:15:00 +0100");
    ck_assert_int_eq(m->has_date, 1);
    ck_assert_int_eq(apr_time_sec(m->date), 1796631300);   /* 2026-12-07T08:15:00Z */
    ck_assert_ptr_null(m->html);
    ck_assert_ptr_null(m->html_text);
    ck_assert_int_eq(m->attachments->nelts, 0);
    ck_assert_int_eq(m->has_attachments, 0);
}
END_TEST

START_TEST(latin_charsets)
{
    ck_assert_str_eq(parse_complete("latin1.eml")->text, "Café crème à la française, señor.\n");
    /* Windows-1252 bytes declared ISO-8859-1: read as Windows-1252, as mail clients do */
    ck_assert_str_eq(parse_complete("cp1252_as_latin1.eml")->text, "“Smart quotes” cost 5 € – really.\n");
}
END_TEST

START_TEST(chinese_charsets)
{
    gs_mime_t *m = parse_complete("gb2312.eml");

    ck_assert_str_eq(m->subject, "gb2312: 中文邮件测试");
    ck_assert_str_eq(ADDR(m->from, 0)->name, "张伟");
    ck_assert_str_eq(m->text, "你好，世界！这是一封中文邮件。\n");
    ck_assert_str_eq(m->text_charset, "GB18030");
    /* 镕 is in GBK, not in GB2312 */
    ck_assert_str_eq(parse_complete("gbk.eml")->text, "朱镕基先生：您好。\n");
    /* four-byte GB18030 sequences: a CJK Extension B character and an emoji */
    ck_assert_str_eq(parse_complete("gb18030.eml")->text, "中文：𠀀 与 😀 都是四字节。\n");
    m = parse_complete("big5.eml");
    ck_assert_str_eq(m->subject, "big5: 繁體中文");
    ck_assert_str_eq(m->text, "繁體中文測試：臺灣的郵件。\n");
}
END_TEST

START_TEST(japanese_charsets)
{
    gs_mime_t *m = parse_complete("iso2022jp.eml");

    ck_assert_str_eq(m->subject, "iso2022jp: 日本語の件名");
    ck_assert_str_eq(m->text, "日本語のメールです。よろしくお願いします。\n");
    ck_assert_str_eq(parse_complete("shift_jis.eml")->text, "こんにちは、世界。カタカナも。\n");
}
END_TEST

START_TEST(missing_charset)
{
    gs_mime_t *m = parse_complete("nocharset_utf8.eml");

    ck_assert_str_eq(m->text, "naïve résumé — 中文\n");
    ck_assert_str_eq(m->text_charset, "UTF-8");
    /* no Content-Type at all, Latin-1 bytes: the fallback list's windows-1252 */
    m = parse_complete("nocharset_latin1.eml");
    ck_assert_str_eq(m->text, "Grüße, Dänemark.\n");
    ck_assert_str_eq(m->text_charset, "windows-1252");
    /* a text part declaring nothing beside an HTML part declaring gb2312 */
    m = parse_complete("gb2312_undeclared_alt.eml");
    ck_assert_str_eq(m->text, "请查收附件。");
    ck_assert_str_eq(m->html, "<p>请查收附件。</p>\n");
}
END_TEST

START_TEST(wrong_charset)
{
    gs_mime_t *m = parse_complete("wrong_utf8.eml");

    ck_assert_str_eq(m->text, "Crème brûlée à volonté.\n");
    ck_assert_str_eq(m->text_charset, "windows-1252");
    m = parse_complete("wrong_ascii.eml");
    ck_assert_str_eq(m->text, "Ünïcödé in a US-ASCII part.\n");
    ck_assert_str_eq(m->text_charset, "UTF-8");
}
END_TEST

START_TEST(fallback_list_is_configurable)
{
    static const char *const cjk_first[] = { "UTF-8", "GB18030", "windows-1252", NULL };
    gs_mime_opts_t o;
    apr_size_t len;
    char *raw = slurp("gb2312.eml", &len), *body;
    const char *gb = "\xc4\xe3\xba\xc3";   /* 你好 in GB2312 */
    gs_mime_t *m;

    (void)raw;
    memset(&o, 0, sizeof(o));
    o.fallback_charsets = cjk_first;
    body = apr_pstrcat(pool, "Subject: x\r\nContent-Type: text/plain\r\n\r\n", gb, "\r\n", NULL);
    m = gs_mime_parse(pool, body, strlen(body), &o);
    ck_assert_str_eq(m->text, "你好\n");
    ck_assert_str_eq(m->text_charset, "GB18030");
}
END_TEST

/* ------------------------------------------------------------------ headers and addresses */

/* The messages row of a parsed message (what GS_SQL_W_MESSAGE_PUT reads) */
START_TEST(content_row)
{
    apr_size_t len;
    char *raw = slurp("rfc2047.eml", &len);
    gs_mime_t *m = gs_mime_parse(pool, raw, len, NULL);
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    json_object *gmail = gs_json_own(pool, json_object_new_object()), *row, *v, *h;
    char hex[65];

    gs_json_set_string(gmail, "id", "18e4ff40c8862fb4");
    gs_json_set_string(gmail, "snippet", "from Gmail");
    gs_sha256(raw, len, digest);
    gs_sha256_hex(digest, hex);
    row = gs_content_row(pool, gmail, m, digest, len);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "id")), "18e4ff40c8862fb4");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "snippet")), "from Gmail");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "subject")), m->subject);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "content_state")),
                     "complete");
    ck_assert_ptr_null(json_object_object_get(row, "content_reason"));
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "raw_sha256")), hex);
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(row, "raw_size")), (int64_t)len);
    ck_assert_ptr_nonnull(strstr(json_object_get_string(json_object_object_get(row, "cc")),
                                 "Renée"));
    v = json_object_object_get(row, "date_us");
    ck_assert(m->has_date && json_object_get_int64(v) == (int64_t)m->date);
    h = json_object_object_get(row, "headers");
    ck_assert_int_eq((int)json_object_array_length(h), m->headers->nelts);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
                         json_object_array_get_idx(h, 0), 0)), HDR(m, 0)->name);
    /* a Date PostgreSQL cannot hold is left out (the header keeps it) */
    m->date = (apr_time_t)APR_INT64_C(200000) * 365 * 86400 * APR_USEC_PER_SEC;
    row = gs_content_row(pool, gmail, m, digest, len);
    ck_assert_ptr_null(json_object_object_get(row, "date_us"));
    /* parse_error carries its reason */
    m = parse("malformed.eml");
    row = gs_content_row(pool, gmail, m, digest, 3);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(row, "content_state")),
                     "parse_error");
    ck_assert_ptr_nonnull(json_object_get_string(json_object_object_get(row, "content_reason")));
}
END_TEST

/* GMime 3.2.13 joins adjacent B-encoded words of one charset and stops at the first one's
 * padding (jstedfast/gmime#133): gs_mime decodes each word alone */
START_TEST(padded_base64_words_in_a_row)
{
    const char *raw = "Subject: =?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=\r\n"
                      "X-Folded: =?UTF-8?B?6ZW/5Li76aKYIGFzIGVhY2gg?=\r\n"
                      " =?UTF-8?B?5Lya6K6uIHNlZQ==?=\r\n =?UTF-8?B?ZQ==?= tail  end\r\n"
                      "From: a@example.com\r\n\r\nbody\r\n";
    gs_mime_t *m = gs_mime_parse(pool, raw, strlen(raw), NULL);

    ck_assert_str_eq(m->subject, "Hello world");
    ck_assert_str_eq(HDR(m, 0)->value, "Hello world");
    ck_assert_str_eq(HDR(m, 1)->name, "X-Folded");
    ck_assert_str_eq(HDR(m, 1)->value, "长主题 as each 会议 seee tail  end");
}
END_TEST

/* The same defect in display names, which GMime's address parser decodes: a name in several
 * padded words (one character split between two of them) comes out whole, in every role */
START_TEST(padded_base64_words_in_display_names)
{
    const char *raw = "From: =?UTF-8?B?5byg5A==?= =?UTF-8?B?vJ/mmI4gKA==?=\r\n"
                      " =?UTF-8?B?5YyX5Lqs5YiG5YWs5Y+4KQ==?= <Zhang@Example.CN>\r\n"
                      "To: =?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?= <a@example.com>,"
                      " \"Plain, Name\" <b@example.com>\r\n"
                      "Cc: =?UTF-8?B?SGVsbG8=?= <c@example.com>\r\n"
                      "Cc: =?ISO-8859-1?B?UmVu6WU=?= =?ISO-8859-1?Q?_Dupr=E9?= <d@example.fr>\r\n"
                      "Subject: s\r\n\r\nbody\r\n";
    gs_mime_t *m = gs_mime_parse(pool, raw, strlen(raw), NULL);

    ck_assert_int_eq(m->from->nelts, 1);
    ck_assert_str_eq(ADDR(m->from, 0)->name, "张伟明 (北京分公司)");
    ck_assert_str_eq(ADDR(m->from, 0)->normalized, "zhang@example.cn");
    ck_assert_int_eq(m->to->nelts, 2);
    ck_assert_str_eq(ADDR(m->to, 0)->name, "Hello world");
    ck_assert_str_eq(ADDR(m->to, 1)->name, "Plain, Name");
    ck_assert_str_eq(ADDR(m->to, 1)->address, "b@example.com");
    ck_assert_int_eq(m->cc->nelts, 2);
    ck_assert_str_eq(ADDR(m->cc, 0)->name, "Hello");
    ck_assert_str_eq(ADDR(m->cc, 1)->name, "Renée Dupré");
}
END_TEST

START_TEST(encoded_words)
{
    gs_mime_t *m = parse_complete("rfc2047.eml");

    /* split across a folded line, ISO-8859-1 Q then UTF-8 B */
    ck_assert_str_eq(m->subject, "rfc2047: Préparation de la réunion — 会议");
    ck_assert_int_eq(m->cc->nelts, 2);
    ck_assert_str_eq(ADDR(m->cc, 0)->name, "Renée");
    ck_assert_str_eq(ADDR(m->cc, 0)->address, "renee@example.fr");
    ck_assert_str_eq(ADDR(m->cc, 1)->name, "李娜");
    ck_assert_int_eq(m->reply_to->nelts, 1);
    ck_assert_str_eq(ADDR(m->reply_to, 0)->name, "Support Team");
    ck_assert_str_eq(ADDR(m->reply_to, 0)->normalized, "support@example.net");
    ck_assert_int_eq(m->bcc->nelts, 0);
    ck_assert_int_eq(m->sender->nelts, 0);
}
END_TEST

START_TEST(duplicate_headers_in_order)
{
    gs_mime_t *m = parse_complete("duplicate_headers.eml");
    static const char *const names[] = { "Received", "Received", "X-Tag", "X-Tag", "From", "To",
                                         "Subject", "Date", "Message-ID", "MIME-Version", "Subject" };
    int i;

    ck_assert_int_eq(m->headers->nelts, 11);
    for (i = 0; i < 11; i++) {
        ck_assert_str_eq(HDR(m, i)->name, names[i]);
    }
    ck_assert_str_eq(HDR(m, 0)->value, "from a.example by b.example; Mon, 07 Dec 2026 09:15:02 +0100");
    ck_assert_str_eq(HDR(m, 3)->value, "zwei ü");
    ck_assert_str_eq(HDR(m, 6)->value, "duplicates");
    ck_assert_str_eq(HDR(m, 10)->value, "second subject");
    ck_assert_int_ge(m->warnings, 1);
}
END_TEST

START_TEST(content_headers_keep_their_place)
{
    gs_mime_t *m = parse_complete("forward.eml");
    int i, ct = -1, irt = -1;

    for (i = 0; i < m->headers->nelts; i++) {
        if (!strcmp(HDR(m, i)->name, "Content-Type")) ct = i;
        if (!strcmp(HDR(m, i)->name, "In-Reply-To")) irt = i;
    }
    ck_assert_int_eq(ct, 6);
    ck_assert_int_eq(irt, 7);
    ck_assert_str_eq(HDR(m, 8)->name, "References");
    ck_assert_str_eq(HDR(m, 8)->value, "<a1@corpus.example> <original@corpus.example>");
    ck_assert_str_eq(m->in_reply_to, "original@corpus.example");
    ck_assert_int_eq(m->references->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(m->references, 0, const char *), "a1@corpus.example");
    ck_assert_str_eq(APR_ARRAY_IDX(m->references, 1, const char *), "original@corpus.example");
}
END_TEST

START_TEST(eight_bit_headers)
{
    gs_mime_t *m = parse("no_boundary.eml");

    /* raw Latin-1 bytes in headers: GMime's fallback charsets */
    ck_assert_str_eq(m->subject, "café 8-bit");
    ck_assert_str_eq(ADDR(m->from, 0)->name, "Müller");
    ck_assert_ptr_null(m->message_id);
    ck_assert_int_eq(m->has_date, 0);
    ck_assert_ptr_null(m->date_raw);
    /* a multipart that declares no boundary */
    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(m->reason, "boundary"));
}
END_TEST

/* ------------------------------------------------------------------ structure */

START_TEST(alternative_bodies)
{
    gs_mime_t *m = parse_complete("alternative.eml");

    ck_assert_str_eq(m->text, "Hello in plain text — ok.");
    ck_assert_str_eq(m->html, "<html><body><p>Hello in <b>HTML</b> — ok.</p></body></html>\n");
    ck_assert_ptr_null(m->html_text);   /* there is a text/plain body */
    ck_assert_int_eq(m->attachments->nelts, 0);
}
END_TEST

static const unsigned char PNG[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0xa5, 0xf6, 0x45, 0x40, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
};
static const char PDF[] = "%PDF-1.4\n% corpus attachment\n1 0 obj << /Type /Catalog >> endobj\n"
                          "trailer << >>\n%%EOF\n";

START_TEST(mixed_with_nested_alternative_and_attachments)
{
    gs_mime_opts_t o;
    gs_mime_t *m;
    gs_mime_attachment_t *a;

    memset(&o, 0, sizeof(o));
    o.want_bytes = 1;
    m = parse_opts("mixed_nested.eml", &o);
    ck_assert_int_eq(m->state, GS_MIME_COMPLETE);
    ck_assert_str_eq(m->text, "See the logo (plain).");
    ck_assert_str_eq(m->html, "<p>See the logo: <img src=\"cid:logo@corpus\"></p>");
    ck_assert_int_eq(m->attachments->nelts, 3);
    a = ATT(m, 0);                      /* the inline image of the HTML */
    ck_assert_str_eq(a->part_id, "1.2.2");
    ck_assert_str_eq(a->mime_type, "image/png");
    ck_assert_str_eq(a->filename, "logo.png");
    ck_assert_str_eq(a->content_id, "logo@corpus");
    ck_assert_str_eq(a->disposition, "inline");
    ck_assert_int_eq(a->is_inline, 1);
    ck_assert_int_eq(a->related, 1);
    ck_assert_uint_eq(a->size, sizeof(PNG));
    ck_assert_str_eq(a->sha256, sha_hex(PNG, sizeof(PNG)));
    ck_assert_int_eq(memcmp(a->bytes, PNG, sizeof(PNG)), 0);
    a = ATT(m, 1);
    ck_assert_str_eq(a->part_id, "2");
    ck_assert_str_eq(a->filename, "report.pdf");
    ck_assert_str_eq(a->mime_type, "application/pdf");
    ck_assert_str_eq(a->disposition, "attachment");
    ck_assert_int_eq(a->is_inline, 0);
    ck_assert_uint_eq(a->size, strlen(PDF));
    ck_assert_int_eq(memcmp(a->bytes, PDF, strlen(PDF)), 0);
    ck_assert_str_eq(a->sha256, sha_hex(PDF, strlen(PDF)));
    a = ATT(m, 2);                      /* RFC 2231: charset, percent-encoding, continuations */
    ck_assert_str_eq(a->part_id, "3");
    ck_assert_str_eq(a->filename, "会议纪要 été.txt");
    ck_assert_str_eq(a->mime_type, "text/plain");
    ck_assert_uint_eq(a->size, strlen("会议纪要\n"));
    ck_assert_int_eq(memcmp(a->bytes, "会议纪要\n", a->size), 0);
    ck_assert_int_eq(m->has_attachments, 1);
}
END_TEST

START_TEST(related_root_and_resources)
{
    gs_mime_t *m = parse_complete("related.eml");

    /* the root is the part the start parameter names, not the first */
    ck_assert_str_eq(m->html, "<p><img src=\"cid:img1@corpus\"><img src=\"cid:img2@corpus\"></p>");
    ck_assert_ptr_null(m->text);
    ck_assert_str_eq(m->html_text, "");
    ck_assert_int_eq(m->attachments->nelts, 2);
    ck_assert_str_eq(ATT(m, 0)->part_id, "1");
    ck_assert_str_eq(ATT(m, 0)->mime_type, "image/gif");
    ck_assert_str_eq(ATT(m, 0)->content_id, "img2@corpus");
    ck_assert_ptr_null(ATT(m, 0)->disposition);
    ck_assert_int_eq(ATT(m, 0)->is_inline, 1);
    ck_assert_str_eq(ATT(m, 1)->part_id, "3");
    ck_assert_str_eq(ATT(m, 1)->content_id, "img1@corpus");
    ck_assert_int_eq(ATT(m, 1)->related, 1);
    ck_assert_int_eq(m->has_attachments, 0);   /* inline resources are not attachments */
}
END_TEST

START_TEST(html_only_message)
{
    gs_mime_t *m = parse_complete("html_only.eml");

    ck_assert_ptr_null(m->text);
    ck_assert_ptr_nonnull(strstr(m->html, "<p>Café &amp; crème"));
    ck_assert_str_eq(m->html_text, "Weekly news\n\nCafé & crème <3 €5 中\n\n- one\n- two\na b\nBye\nnow");
}
END_TEST

START_TEST(forwarded_message)
{
    gs_mime_opts_t o;
    gs_mime_t *m;
    gs_mime_attachment_t *a;

    memset(&o, 0, sizeof(o));
    o.want_bytes = 1;
    m = parse_opts("forward.eml", &o);
    ck_assert_int_eq(m->state, GS_MIME_COMPLETE);
    ck_assert_str_eq(m->text, "See the forwarded message.");
    ck_assert_int_eq(m->attachments->nelts, 1);
    a = ATT(m, 0);
    ck_assert_str_eq(a->mime_type, "message/rfc822");
    ck_assert_str_eq(a->filename, "original.eml");
    ck_assert_str_eq(a->part_id, "2");
    ck_assert_ptr_nonnull(a->bytes);
    ck_assert_int_eq(strncmp((const char *)a->bytes, "From: Carol <carol@example.com>\r\n", 33), 0);
    ck_assert_ptr_nonnull(strstr((const char *)a->bytes, "\r\nSubject: Original\r\n"));
    /* the CRLF before the boundary is the boundary's */
    ck_assert_ptr_nonnull(strstr((const char *)a->bytes, "\r\n\r\nThe original text."));
    ck_assert_ptr_null(strstr((const char *)a->bytes, "\n\n"));
    ck_assert_str_eq(a->sha256, sha_hex(a->bytes, a->size));
    ck_assert_int_eq(m->has_attachments, 1);
}
END_TEST

START_TEST(empty_attachment)
{
    gs_mime_opts_t o;
    gs_mime_t *m;

    memset(&o, 0, sizeof(o));
    o.want_bytes = 1;
    m = parse_opts("empty_attachment.eml", &o);
    ck_assert_int_eq(m->attachments->nelts, 1);
    ck_assert_str_eq(ATT(m, 0)->filename, "empty.bin");
    ck_assert_uint_eq(ATT(m, 0)->size, 0);
    ck_assert_ptr_nonnull(ATT(m, 0)->bytes);
    ck_assert_str_eq(ATT(m, 0)->sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_int_eq(m->has_attachments, 1);
}
END_TEST

START_TEST(attachment_bytes_limit)
{
    gs_mime_opts_t o;
    gs_mime_t *m;

    memset(&o, 0, sizeof(o));
    o.want_bytes = 1;
    o.max_attachment_bytes = 70;        /* the PNG (67) fits, the PDF (85) does not */
    m = parse_opts("mixed_nested.eml", &o);
    ck_assert_ptr_nonnull(ATT(m, 0)->bytes);
    ck_assert_ptr_null(ATT(m, 1)->bytes);
    ck_assert_uint_eq(ATT(m, 1)->size, strlen(PDF));
    ck_assert_str_eq(ATT(m, 1)->sha256, sha_hex(PDF, strlen(PDF)));
    o.want_bytes = 0;
    m = parse_opts("mixed_nested.eml", &o);
    ck_assert_ptr_null(ATT(m, 0)->bytes);
}
END_TEST

/* Attachments at stream_at or more: hashed a piece at a time, their bytes read back from a
 * source (gs_mime_reader_*) in any piece size, the same as decoded whole; over the bytes limit
 * a hash and no source. */
static char *read_back(const gs_mime_attachment_t *a, apr_size_t piece)
{
    gs_mime_reader_t *r;
    char *out = apr_palloc(pool, a->size + 1);
    apr_size_t off = 0, n;

    ck_assert_ptr_nonnull(a->source);
    ck_assert_int_eq(gs_mime_reader_open(&r, pool, a->source), APR_SUCCESS);
    do {
        n = piece;
        ck_assert_int_eq(gs_mime_reader_read(r, out + off, &n), APR_SUCCESS);
        ck_assert_uint_le(off + n, a->size);
        off += n;
    } while (n > 0);
    ck_assert_uint_eq(off, a->size);
    return out;
}

START_TEST(large_attachments_are_read_in_pieces)
{
    gs_mime_opts_t o;
    gs_mime_t *m;
    apr_size_t piece;

    memset(&o, 0, sizeof(o));
    o.want_bytes = 1;
    o.stream_at = 1;                    /* every part with content */
    m = parse_opts("mixed_nested.eml", &o);
    ck_assert_int_eq(m->state, GS_MIME_COMPLETE);
    ck_assert_int_eq(m->attachments->nelts, 3);
    ck_assert_ptr_null(ATT(m, 0)->bytes);
    ck_assert_uint_eq(ATT(m, 0)->size, sizeof(PNG));
    ck_assert_str_eq(ATT(m, 0)->sha256, sha_hex(PNG, sizeof(PNG)));
    ck_assert_uint_eq(ATT(m, 1)->size, strlen(PDF));
    ck_assert_str_eq(ATT(m, 1)->sha256, sha_hex(PDF, strlen(PDF)));
    for (piece = 1; piece <= 100; piece += 33) {
        ck_assert_int_eq(memcmp(read_back(ATT(m, 0), piece), PNG, sizeof(PNG)), 0);
        ck_assert_int_eq(memcmp(read_back(ATT(m, 1), piece), PDF, strlen(PDF)), 0);
        ck_assert_int_eq(memcmp(read_back(ATT(m, 2), piece), "会议纪要\n", ATT(m, 2)->size), 0);
    }
    /* the bodies do not change: they are never streamed */
    ck_assert_str_eq(m->text, "See the logo (plain).");
    /* over the bytes limit: the hash, no bytes, no source */
    o.max_attachment_bytes = 70;
    m = parse_opts("mixed_nested.eml", &o);
    ck_assert_ptr_nonnull(ATT(m, 0)->source);
    ck_assert_ptr_null(ATT(m, 1)->source);
    ck_assert_ptr_null(ATT(m, 1)->bytes);
    ck_assert_str_eq(ATT(m, 1)->sha256, sha_hex(PDF, strlen(PDF)));
    /* without want_bytes: hashes only */
    o.want_bytes = 0;
    m = parse_opts("mixed_nested.eml", &o);
    ck_assert_ptr_null(ATT(m, 0)->source);
    ck_assert_str_eq(ATT(m, 0)->sha256, sha_hex(PNG, sizeof(PNG)));
}
END_TEST

START_TEST(malformed_yields_what_it_can)
{
    gs_mime_t *m = parse("malformed.eml");

    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_str_eq(gs_mime_state_name(m->state), "parse_error");
    ck_assert_ptr_nonnull(strstr(m->reason, "closing boundary"));
    ck_assert_str_eq(m->subject, "malformed");
    ck_assert_str_eq(m->text, "Still readable — yes.");
    ck_assert_int_eq(m->attachments->nelts, 1);
}
END_TEST

/* ------------------------------------------------------------------ hostile input */

START_TEST(garbage_and_empty_input)
{
    unsigned char junk[4096];
    unsigned int i, x = 12345;
    gs_mime_t *m;

    for (i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    m = gs_mime_parse(pool, junk, sizeof(junk), NULL);
    ck_assert_ptr_nonnull(m);
    m = gs_mime_parse(pool, "", 0, NULL);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(m->text);
    m = gs_mime_parse(pool, "\n\n\n", 3, NULL);
    ck_assert_ptr_nonnull(m);
}
END_TEST

START_TEST(size_limit)
{
    gs_mime_opts_t o;
    gs_mime_t *m;

    memset(&o, 0, sizeof(o));
    o.max_message_bytes = 100;
    m = parse_opts("alternative.eml", &o);
    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(m->reason, "limit"));
    ck_assert_ptr_null(m->subject);
}
END_TEST

/* depth nested multiparts, each with a text part */
static char *nested(int depth)
{
    apr_array_header_t *a = apr_array_make(pool, depth * 4 + 4, sizeof(char *));
    int i;

    APR_ARRAY_PUSH(a, const char *) = "Subject: deep\r\n";
    for (i = 0; i < depth; i++) {
        APR_ARRAY_PUSH(a, char *) = apr_psprintf(pool, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                                                 "--b%d\r\nContent-Type: text/plain\r\n\r\nlevel %d\r\n--b%d\r\n",
                                                 i, i, i, i);
    }
    APR_ARRAY_PUSH(a, const char *) = "Content-Type: text/plain\r\n\r\nbottom\r\n";
    for (i = depth - 1; i >= 0; i--) {
        APR_ARRAY_PUSH(a, char *) = apr_psprintf(pool, "--b%d--\r\n", i);
    }
    return apr_array_pstrcat(pool, a, '\0');
}

START_TEST(deep_nesting)
{
    char *raw = nested(10);
    gs_mime_t *m = gs_mime_parse(pool, raw, strlen(raw), NULL);

    ck_assert_int_eq(m->state, GS_MIME_COMPLETE);
    ck_assert_ptr_nonnull(strstr(m->text, "level 9\nbottom"));
    raw = nested(100);
    m = gs_mime_parse(pool, raw, strlen(raw), NULL);
    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(m->reason, "nesting"));
    ck_assert_ptr_nonnull(strstr(m->text, "level 0\nlevel 1\n"));
    /* 5,000 levels: GMime would compare each of the 10,000 boundary lines with up to a
     * thousand open boundaries; only the headers are parsed */
    raw = nested(5000);
    m = gs_mime_parse(pool, raw, strlen(raw), NULL);
    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(m->reason, "too costly to parse"));
    ck_assert_str_eq(m->subject, "deep");
    ck_assert_ptr_null(m->text);
}
END_TEST

START_TEST(many_parts_and_headers)
{
    apr_array_header_t *a = apr_array_make(pool, 2100, sizeof(char *));
    gs_mime_opts_t o;
    gs_mime_t *m;
    char *raw;
    int i;

    APR_ARRAY_PUSH(a, const char *) = "Content-Type: multipart/mixed; boundary=z\r\n\r\n";
    for (i = 0; i < 200; i++) {
        APR_ARRAY_PUSH(a, const char *) = "--z\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n";
    }
    APR_ARRAY_PUSH(a, const char *) = "--z--\r\n";
    raw = apr_array_pstrcat(pool, a, '\0');
    memset(&o, 0, sizeof(o));
    o.max_parts = 50;
    m = gs_mime_parse(pool, raw, strlen(raw), &o);
    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(m->reason, "more than 50 MIME parts"));
    ck_assert_int_eq(m->attachments->nelts, 49);
    m = gs_mime_parse(pool, raw, strlen(raw), NULL);
    ck_assert_int_eq(m->state, GS_MIME_COMPLETE);
    ck_assert_int_eq(m->attachments->nelts, 200);

    apr_array_clear(a);
    for (i = 0; i < 2000; i++) {
        APR_ARRAY_PUSH(a, char *) = apr_psprintf(pool, "X-H%d: v\r\n", i);
    }
    APR_ARRAY_PUSH(a, const char *) = "\r\nbody\r\n";
    raw = apr_array_pstrcat(pool, a, '\0');
    m = gs_mime_parse(pool, raw, strlen(raw), NULL);
    ck_assert_int_eq(m->state, GS_MIME_PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(m->reason, "more than 1000 headers"));
    ck_assert_int_eq(m->headers->nelts, 1000);
    ck_assert_str_eq(HDR(m, 999)->name, "X-H999");
    ck_assert_str_eq(m->text, "body\n");
}
END_TEST

START_TEST(nul_and_invalid_bytes_become_valid_utf8)
{
    static const char raw[] = "Subject: a\xff" "b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx\0y\xc3(\r\n";
    gs_mime_t *m = gs_mime_parse(pool, raw, sizeof(raw) - 1, NULL);

    ck_assert_ptr_nonnull(m->text);
    ck_assert_ptr_null(memchr(m->text, '\0', strlen(m->text)));
    ck_assert_int_eq(strncmp(m->text, "xy", 2), 0);   /* the NUL is dropped */
    ck_assert_ptr_nonnull(m->subject);
}
END_TEST

/* ------------------------------------------------------------------ HTML as text */

static const char *h2t(const char *html)
{
    return gs_mime_html_to_text(pool, html, strlen(html));
}

START_TEST(html_to_text_rendering)
{
    ck_assert_str_eq(h2t(""), "");
    ck_assert_str_eq(h2t("plain"), "plain");
    ck_assert_str_eq(h2t("  a \n\t b  "), "a b");
    ck_assert_str_eq(h2t("<p>one</p><p>two</p>"), "one\n\ntwo");
    ck_assert_str_eq(h2t("a<br>b<br/><br>c"), "a\nb\n\nc");
    ck_assert_str_eq(h2t("<div>x</div>y"), "x\ny");
    ck_assert_str_eq(h2t("&lt;b&gt; &amp;amp; &quot;q&quot; &#39;s&#x27; &euro;&nbsp;1"), "<b> &amp; \"q\" 's' € 1");
    ck_assert_str_eq(h2t("&unknown; &#; &#xZZ; & alone"), "&unknown; &#; &#xZZ; & alone");
    ck_assert_str_eq(h2t("&#0;&#xD800;&#x110000;"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(h2t("<script>var a = '<p>';</script>ok<style>p{}</style>!"), "ok!");
    ck_assert_str_eq(h2t("<SCRIPT type=x>hidden</SCRIPT >shown"), "shown");
    ck_assert_str_eq(h2t("a<!-- <p>hidden</p> -->b"), "ab");
    ck_assert_str_eq(h2t("a<!-- never closed"), "a");
    ck_assert_str_eq(h2t("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
    ck_assert_str_eq(h2t("<a href=\"x>y\" title='>'>link</a>"), "link");
    ck_assert_str_eq(h2t("<pre>  a\n   b</pre>c"), "  a\n   b\nc");
    ck_assert_str_eq(h2t("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>"), "1 2\n3");
    ck_assert_str_eq(h2t("<ul><li>x<li>y</ul>"), "- x\n- y");
    ck_assert_str_eq(h2t("text <unclosed tag"), "text");
    ck_assert_str_eq(h2t("<script>never closed"), "never closed");
    ck_assert_str_eq(h2t("中文<b>粗体</b>"), "中文粗体");
}
END_TEST

START_TEST(html_to_text_is_linear_and_bounded)
{
    apr_size_t n = 2 * 1024 * 1024, i;
    char *s = apr_palloc(pool, n + 1);
    static const char *const pats[] = { "<script>", "<!--", "<a '", "&#x1F600;", "<p>", "<br>" };
    apr_time_t t0 = apr_time_now();

    for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        apr_size_t k, l = strlen(pats[i]);
        char *out;

        for (k = 0; k + l <= n; k += l) {
            memcpy(s + k, pats[i], l);
        }
        s[k] = '\0';
        out = gs_mime_html_to_text(pool, s, k);
        ck_assert_uint_le(strlen(out), k + 1);
    }
    /* six 2 MB hostile documents: well under a second each when linear */
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_sec(10));
}
END_TEST

Suite *gs_mime_suite(void)
{
    Suite *s = suite_create("gs_mime");
    TCase *tc = tcase_create("corpus");
    TCase *th = tcase_create("hostile");
    TCase *tx = tcase_create("html_to_text");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, utf8_quoted_printable);
    tcase_add_test(tc, latin_charsets);
    tcase_add_test(tc, chinese_charsets);
    tcase_add_test(tc, japanese_charsets);
    tcase_add_test(tc, missing_charset);
    tcase_add_test(tc, wrong_charset);
    tcase_add_test(tc, fallback_list_is_configurable);
    tcase_add_test(tc, encoded_words);
    tcase_add_test(tc, padded_base64_words_in_a_row);
    tcase_add_test(tc, padded_base64_words_in_display_names);
    tcase_add_test(tc, content_row);
    tcase_add_test(tc, duplicate_headers_in_order);
    tcase_add_test(tc, content_headers_keep_their_place);
    tcase_add_test(tc, eight_bit_headers);
    tcase_add_test(tc, alternative_bodies);
    tcase_add_test(tc, mixed_with_nested_alternative_and_attachments);
    tcase_add_test(tc, related_root_and_resources);
    tcase_add_test(tc, html_only_message);
    tcase_add_test(tc, forwarded_message);
    tcase_add_test(tc, empty_attachment);
    tcase_add_test(tc, attachment_bytes_limit);
    tcase_add_test(tc, large_attachments_are_read_in_pieces);
    tcase_add_test(tc, malformed_yields_what_it_can);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(th, setup, teardown);
    tcase_set_timeout(th, 60);
    tcase_add_test(th, garbage_and_empty_input);
    tcase_add_test(th, size_limit);
    tcase_add_test(th, deep_nesting);
    tcase_add_test(th, many_parts_and_headers);
    tcase_add_test(th, nul_and_invalid_bytes_become_valid_utf8);
    suite_add_tcase(s, th);
    tcase_add_checked_fixture(tx, setup, teardown);
    tcase_set_timeout(tx, 60);
    tcase_add_test(tx, html_to_text_rendering);
    tcase_add_test(tx, html_to_text_is_linear_and_bounded);
    suite_add_tcase(s, tx);
    return s;
}
