/* test_connect.c -- the pure parts of the connect flow: base64url, PKCE S256 (RFC 7636
 * appendix B), random states, the authorization URL, the code exchange and revocation bodies,
 * the profile answer, and GmailSyncRedirectURI's rules. */
#include <string.h>

#include <check.h>

#include "gs_config.h"
#include "gs_connect.h"
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

START_TEST(base64url_lengths)
{
    static const unsigned char d[] = { 0xfb, 0xff, 0xfe, 0x00 };

    ck_assert_str_eq(gs_base64url(pool, d, 0), "");
    ck_assert_str_eq(gs_base64url(pool, d, 1), "-w");
    ck_assert_str_eq(gs_base64url(pool, d, 2), "-_8");
    ck_assert_str_eq(gs_base64url(pool, d, 3), "-__-");
    ck_assert_str_eq(gs_base64url(pool, d, 4), "-__-AA");
}
END_TEST

START_TEST(rfc7636_appendix_b)
{
    static const unsigned char octets[] = { 116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96,
        125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132,
        141, 121 };
    const char *verifier = gs_base64url(pool, octets, sizeof octets);

    ck_assert_str_eq(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    ck_assert_str_eq(gs_connect_challenge(pool, verifier),
                     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(random_values)
{
    const char *a, *b;

    ck_assert_int_eq(gs_connect_random(pool, &a), APR_SUCCESS);
    ck_assert_int_eq(gs_connect_random(pool, &b), APR_SUCCESS);
    ck_assert_uint_eq(strlen(a), GS_CONNECT_TOKEN_LEN);
    ck_assert_str_ne(a, b);
    ck_assert(gs_connect_token_shape(a));
    ck_assert(!gs_connect_token_shape(NULL));
    ck_assert(!gs_connect_token_shape(""));
    ck_assert(!gs_connect_token_shape("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX"));
    ck_assert(!gs_connect_token_shape("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXkk"));
    ck_assert(!gs_connect_token_shape("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX="));
    ck_assert_str_eq(gs_connect_sha256_hex(pool, "abc"),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(authorization_url)
{
    gs_connect_auth_t a = { "https://accounts.example/auth", "id 1", "http://127.0.0.1:8/cb",
                            "ST", "CH" };

    ck_assert_str_eq(gs_connect_auth_location(pool, &a),
                     "https://accounts.example/auth?client_id=id%201"
                     "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8%2Fcb&response_type=code"
                     "&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fgmail.readonly"
                     "&access_type=offline&prompt=consent&state=ST&code_challenge=CH"
                     "&code_challenge_method=S256");
    a.auth_url = "https://accounts.example/auth?hd=example.com";
    ck_assert(strstr(gs_connect_auth_location(pool, &a), "auth?hd=example.com&client_id=") != NULL);
}
END_TEST

START_TEST(exchange_and_revoke_bodies)
{
    gs_http_request_t *req = gs_connect_exchange_request(pool, "https://t/token", "cid", "s&c",
                                                         "https://h/cb", "4/0A+b", "v");

    ck_assert_str_eq(req->method, "POST");
    ck_assert_str_eq(req->body, "grant_type=authorization_code&code=4%2F0A%2Bb"
                                "&redirect_uri=https%3A%2F%2Fh%2Fcb&client_id=cid"
                                "&client_secret=s%26c&code_verifier=v");
    ck_assert_uint_eq(req->body_len, strlen(req->body));
    req = gs_connect_revoke_request(pool, "https://t/revoke", "1//0x");
    ck_assert_str_eq(req->url, "https://t/revoke");
    ck_assert_str_eq(req->body, "token=1%2F%2F0x");
    req = gs_connect_profile_request(pool, "http://g", "ya29");
    ck_assert_str_eq(req->url, "http://g/gmail/v1/users/me/profile");
    ck_assert_str_eq(APR_ARRAY_IDX(req->headers, 0, const char *), "Authorization: Bearer ya29");
}
END_TEST

static const char *profile(int status, const char *body, const char **why)
{
    gs_http_request_t *req = gs_http_request(pool, "GET", "x");

    req->status = status;
    req->resp_body = body;
    req->resp_len = strlen(body);
    *why = NULL;
    return gs_connect_profile_email(pool, req, why);
}

START_TEST(profile_answers)
{
    const char *why;

    ck_assert_str_eq(profile(200, "{\"emailAddress\": \"a@b.c\", \"historyId\": \"1\"}", &why),
                     "a@b.c");
    ck_assert_ptr_null(profile(200, "{\"emailAddress\": 5}", &why));
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_null(profile(200, "{\"emailAddress\": \"nobody\"}", &why));
    ck_assert_ptr_null(profile(200, "not json", &why));
    ck_assert_ptr_null(profile(401, "{}", &why));
    ck_assert_str_eq(why, "profile answered 401");
}
END_TEST

/* issue 21 item 9: what the profile may give as the account's address */
START_TEST(profile_addresses_are_strict)
{
    static const char *const good[] = {
        "a@b.co", "first.last+tag@example.test", "x_y-z!#$%&'*/=?^`{|}~@sub.example-1.org",
    };
    static const char *const bad[] = {
        "", "nobody", "@b.co", "a@", "a@b", "a@@b.co", "a@b@c.co", ".a@b.co", "a.@b.co",
        "a..b@b.co", "a b@b.co", "\"a\"@b.co", "a@[127.0.0.1]", "a@-b.co", "a@b-.co", "a@b..co",
        "a@b.co.", "a@b_c.co", "a\x01@b.co", "a\x7f@b.co", "a\t@b.co", "a@b.co\r\nX: y",
        "\xe2\x80\xae" "evil@b.co",         /* U+202E RIGHT-TO-LEFT OVERRIDE */
        "a\xe2\x80\x8b@b.co",               /* U+200B ZERO WIDTH SPACE (format) */
        "\xc3\xa9@b.co",                    /* non-ASCII */
        "\xff@b.co",                         /* invalid UTF-8 */
    };
    char longest[300];
    const char *why;
    size_t i;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(!gs_connect_email_problem(good[i], strlen(good[i])), "%s", good[i]);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(gs_connect_email_problem(bad[i], strlen(bad[i])) != NULL, "%s", bad[i]);
    }
    ck_assert_ptr_nonnull(gs_connect_email_problem("a\0b@b.co", 8));   /* a NUL inside */
    memset(longest, 'a', 64);
    strcpy(longest + 64, "@b.co");
    ck_assert_ptr_null(gs_connect_email_problem(longest, strlen(longest)));
    memset(longest, 'a', 65);
    strcpy(longest + 65, "@b.co");
    ck_assert_ptr_nonnull(gs_connect_email_problem(longest, strlen(longest)));
    ck_assert_ptr_null(profile(200, "{\"emailAddress\": \"a\\u202e@b.co\"}", &why));
    ck_assert(strstr(why, "unacceptable emailAddress") != NULL);
    ck_assert_ptr_null(profile(200, "{\"emailAddress\": \"a@b.co\\u0000x\"}", &why));
}
END_TEST

/* issue 21 item 9: what the token endpoint may give as an access token */
START_TEST(access_tokens_are_b64tokens)
{
    static char big[GS_OAUTH_ACCESS_TOKEN_MAX + 2];
    gs_oauth_t *o = gs_oauth_make(pool, "https://t/token", "cid", "sec", "1//r");
    gs_http_request_t *req = gs_http_request(pool, "POST", "https://t/token");
    const char *why = NULL, *new_refresh = NULL;
    long expires_in = 0;

    ck_assert_ptr_null(gs_oauth_access_token_problem("ya29.a0AfH6-_~+/x==", 19));
    ck_assert_ptr_nonnull(gs_oauth_access_token_problem("ya29\r\nX-Injected: 1", 20));
    ck_assert_ptr_nonnull(gs_oauth_access_token_problem("ya 29", 5));
    ck_assert_ptr_nonnull(gs_oauth_access_token_problem("=abc", 4));
    ck_assert_ptr_nonnull(gs_oauth_access_token_problem("ab=c", 4));
    ck_assert_ptr_nonnull(gs_oauth_access_token_problem("", 0));
    memset(big, 'a', sizeof big - 1);
    ck_assert_ptr_nonnull(gs_oauth_access_token_problem(big, strlen(big)));
    ck_assert_ptr_null(gs_oauth_access_token_problem(big, GS_OAUTH_ACCESS_TOKEN_MAX));

    req->status = 200;
    req->resp_body = "{\"access_token\": \"ya29\\r\\nX-Injected: 1\", \"expires_in\": 3599}";
    req->resp_len = strlen(req->resp_body);
    ck_assert_int_eq(gs_oauth_parse(o, pool, req, 0, &expires_in, &new_refresh, &why),
                     GS_OAUTH_INVALID);
    ck_assert_ptr_null(o->access_token);
    ck_assert(strstr(why, "control character") != NULL);
    req->resp_body = "{\"access_token\": \"ya29.ok\", \"refresh_token\": \"1//a\\nb\"}";
    req->resp_len = strlen(req->resp_body);
    ck_assert_int_eq(gs_oauth_parse(o, pool, req, 0, &expires_in, &new_refresh, &why),
                     GS_OAUTH_INVALID);
    ck_assert_ptr_null(o->access_token);
    req->resp_body = "{\"access_token\": \"ya29.ok\", \"expires_in\": 60}";
    req->resp_len = strlen(req->resp_body);
    ck_assert_int_eq(gs_oauth_parse(o, pool, req, 0, &expires_in, &new_refresh, &why),
                     GS_OAUTH_OK);
    ck_assert_str_eq(o->access_token, "ya29.ok");
    /* a cached token of the wrong shape is not used: the next call refreshes */
    gs_oauth_set_token(o, "bad\ntoken", apr_time_from_sec(600), 0);
    ck_assert(gs_oauth_needs_refresh(o, 0));
}
END_TEST

START_TEST(redirect_uris)
{
    const char *path, *why;

    ck_assert_int_eq(gs_parse_redirect_uri(pool, "https://app.example/api/gmail/sync/oauth/callback",
                                           &path, &why), APR_SUCCESS);
    ck_assert_str_eq(path, "/api/gmail/sync/oauth/callback");
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "http://127.0.0.1:8080/cb", &path, &why),
                     APR_SUCCESS);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "http://[::1]:8080/cb", &path, &why),
                     APR_SUCCESS);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "http://localhost/cb", &path, &why),
                     APR_SUCCESS);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "http://app.example/cb", &path, &why),
                     APR_EINVAL);
    ck_assert(strstr(why, "https") != NULL);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "https://app.example/cb?x=1", &path, &why),
                     APR_EINVAL);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "/cb", &path, &why), APR_EINVAL);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "ftp://app.example/cb", &path, &why),
                     APR_EINVAL);
    ck_assert_int_eq(gs_parse_redirect_uri(pool, "https://app.example/cb#f", &path, &why),
                     APR_EINVAL);
    ck_assert(gs_is_loopback_host("127.0.0.2") && gs_is_loopback_host("::ffff:127.0.0.1"));
    ck_assert(!gs_is_loopback_host("128.0.0.1") && !gs_is_loopback_host(NULL));
}
END_TEST

Suite *gs_connect_suite(void)
{
    Suite *s = suite_create("gs_connect");
    TCase *tc = tcase_create("connect");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, base64url_lengths);
    tcase_add_test(tc, rfc7636_appendix_b);
    tcase_add_test(tc, random_values);
    tcase_add_test(tc, authorization_url);
    tcase_add_test(tc, exchange_and_revoke_bodies);
    tcase_add_test(tc, profile_answers);
    tcase_add_test(tc, redirect_uris);
    tcase_add_test(tc, profile_addresses_are_strict);
    tcase_add_test(tc, access_tokens_are_b64tokens);
    suite_add_tcase(s, tc);
    return s;
}
