/* test_download.c -- the headers of an attachment download (gs_download.h): any stored name
 * and type becomes printable ASCII headers that name the file and run nothing. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_download.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The filename* value decoded, or NULL when there is none or it is not well formed. */
static const char *star_name(const char *cd)
{
    const char *v = strstr(cd, "; filename*=UTF-8''");
    char *out, *o;

    if (!v) {
        return NULL;
    }
    v += strlen("; filename*=UTF-8''");
    o = out = apr_palloc(pool, strlen(v) + 1);
    for (; *v; v++) {
        if (*v == '%') {
            ck_assert_int_ge(hex(v[1]), 0);
            ck_assert_int_ge(hex(v[2]), 0);
            *o++ = (char)(hex(v[1]) << 4 | hex(v[2]));
            v += 2;
        }
        else {
            ck_assert_msg(strchr("!#$&+-.^_`|~", *v) || (*v >= '0' && *v <= '9')
                          || (*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z'),
                          "not an attr-char: %c", *v);
            *o++ = *v;
        }
    }
    *o = '\0';
    return out;
}

static void assert_printable(const char *s)
{
    for (; *s; s++) {
        ck_assert_msg(*s >= 0x20 && *s <= 0x7E, "byte 0x%02x in a header", (unsigned char)*s);
    }
}

START_TEST(ascii_names_are_kept)
{
    ck_assert_str_eq(gs_download_disposition(pool, "report.pdf", "x"),
                     "attachment; filename=\"report.pdf\"");
    ck_assert_str_eq(gs_download_disposition(pool, "a b;c=d.txt", "x"),
                     "attachment; filename=\"a b;c=d.txt\"");
    ck_assert_str_eq(gs_download_disposition(pool, NULL, "1a2b-3"),
                     "attachment; filename=\"1a2b-3\"");
    ck_assert_str_eq(gs_download_disposition(pool, "", "1a2b-3"),
                     "attachment; filename=\"1a2b-3\"");
}
END_TEST

START_TEST(other_names_get_filename_star)
{
    static const struct { const char *name, *ascii, *star; } cases[] = {
        { "会议纪要 été.txt", "____ _t_.txt", "会议纪要 été.txt" },
        { "evil\"\r\nX-Injected: 1\\..\\../x.html", "evil___X-Injected: 1_.._.._x.html",
          "evil\"\r\nX-Injected: 1_.._.._x.html" },
        { "😀.png", "_.png", "😀.png" },
        { "a\tb", "a_b", "a\tb" },
        { "bad \xff\xfe.bin", "bad __.bin", "bad \xef\xbf\xbd\xef\xbf\xbd.bin" },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *cd = gs_download_disposition(pool, cases[i].name, "x");
        const char *want = apr_psprintf(pool, "attachment; filename=\"%s\"; filename*=", cases[i].ascii);

        assert_printable(cd);
        ck_assert_msg(!strncmp(cd, want, strlen(want)), "%s", cd);
        ck_assert_str_eq(star_name(cd), cases[i].star);
    }
}
END_TEST

START_TEST(long_names_are_cut_at_a_character)
{
    char name[1000];
    const char *cd, *star;
    int i;

    /* 400 bytes of three-byte characters: cut to 255 bytes, 85 whole characters */
    for (i = 0; i < 133; i++) {
        memcpy(name + i * 3, "\xe4\xb8\xad", 3);
    }
    name[399] = '\0';
    cd = gs_download_disposition(pool, name, "x");
    assert_printable(cd);
    star = star_name(cd);
    ck_assert_uint_le(strlen(star), GS_DOWNLOAD_NAME_MAX);
    ck_assert_uint_eq(strlen(star) % 3, 0);
    ck_assert_uint_ge(strlen(star), GS_DOWNLOAD_NAME_MAX - 3);
    memset(name, 'a', 999);
    name[999] = '\0';
    cd = gs_download_disposition(pool, name, "x");
    ck_assert_uint_eq(strlen(cd), strlen("attachment; filename=\"\"") + GS_DOWNLOAD_NAME_MAX);
}
END_TEST

START_TEST(only_safe_types_pass)
{
    static const char *const kept[] = { "application/pdf", "image/png", "IMAGE/JPEG",
                                        "text/plain", "message/rfc822", "video/mp4" };
    static const char *const refused[] = { "text/html", "image/svg+xml", "application/xhtml+xml",
                                           "text/xml", "application/javascript", "text/javascript",
                                           "application/x-shockwave-flash", "text/plain; x=1",
                                           "", "multipart/mixed" };
    size_t i;

    for (i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        ck_assert_str_eq(gs_download_type(kept[i]), apr_pstrdup(pool, gs_download_type(kept[i])));
        ck_assert_int_eq(strcasecmp(gs_download_type(kept[i]), kept[i]), 0);
    }
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ck_assert_str_eq(gs_download_type(refused[i]), "application/octet-stream");
    }
    ck_assert_str_eq(gs_download_type(NULL), "application/octet-stream");
}
END_TEST

Suite *gs_download_suite(void)
{
    Suite *s = suite_create("gs_download");
    TCase *tc = tcase_create("download");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ascii_names_are_kept);
    tcase_add_test(tc, other_names_get_filename_star);
    tcase_add_test(tc, long_names_are_cut_at_a_character);
    tcase_add_test(tc, only_safe_types_pass);
    suite_add_tcase(s, tc);
    return s;
}
