/* test_worker_conf.c -- the worker's key = value configuration: strict, and never echoes values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <check.h>

#include "gs_worker_conf.h"
#include "unit.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static apr_status_t parse(gs_worker_conf_t *conf, const char *text, const char **err)
{
    *err = NULL;
    return gs_worker_conf_parse(conf, pool, text, strlen(text), err);
}

START_TEST(defaults_match_the_directives)
{
    gs_worker_conf_t *c = gs_worker_conf_make(pool);

    ck_assert_int_eq(c->batch_size, 50);
    ck_assert_int_eq(c->quota_units, 250);
    ck_assert_int_eq(c->mode, GS_SYNC_SMART);
    ck_assert(c->heartbeat == apr_time_from_sec(5));
    ck_assert(c->progress_interval == apr_time_from_sec(1));
    ck_assert(c->retry_budget == apr_time_from_sec(300));     /* GmailSyncRetryBudget */
    ck_assert_int_eq(c->retries, 0);                          /* no count cap by default */
    ck_assert_str_eq(c->api_base, "https://gmail.googleapis.com");
    ck_assert_str_eq(c->token_url, "https://oauth2.googleapis.com/token");
    /* issue 22: GmailSyncContent full, GmailSyncAttachments store, 25M, GmailSyncStoreRaw On */
    ck_assert_int_eq(c->content, GS_CONTENT_FULL);
    ck_assert_int_eq(c->attachments, GS_ATTACH_STORE);
    ck_assert(c->attachment_max_size == 25 * 1024 * 1024);
    ck_assert_int_eq(c->store_raw, 1);
    ck_assert_int_eq(c->deletions, GS_DELETIONS_DELETE);       /* issue 23 */
    ck_assert_str_eq(c->search_config, "simple");               /* issue 24 */
}
END_TEST

START_TEST(parses_every_key)
{
    gs_worker_conf_t *c = gs_worker_conf_make(pool);
    const char *err;
    const char *text =
        "# the daemon writes this\n"
        "db = host=127.0.0.1 port=5432 dbname=x password=s#cret\n"
        "  api_base   =   http://127.0.0.1:8089/   \r\n"
        "token_url=http://127.0.0.1:8089/token\n"
        "\n"
        "client_id = id-1\n"
        "client_secret = top = secret\n"
        "token_key = " KEY_A "\n"
        "token_key = " KEY_B "\n"
        "mode = full\n"
        "batch_size = 25\n"
        "quota_units = 0\n"
        "parallel = 3\n"
        "retries = 2\n"
        "retry_budget = 90s\n"
        "heartbeat = 250ms\n"
        "progress_interval = 2s\n"
        "backoff_base = 10ms\n"
        "backoff_max = 1s\n"
        "timeout = 30s\n"
        "connect_timeout = 2s\n"
        "low_speed_time = 5s\n"
        "host = web-1\n"
        "content = metadata\n"
        "attachments = metadata\n"
        "attachment_max_size = 512K\n"
        "store_raw = off\n"
        "deletions = keep\n"
        "search_config = pg_catalog.english\n"
        "log_level = debug";

    ck_assert_int_eq(parse(c, text, &err), APR_SUCCESS);
    ck_assert_str_eq(c->db, "host=127.0.0.1 port=5432 dbname=x password=s#cret");
    ck_assert_str_eq(c->api_base, "http://127.0.0.1:8089");
    ck_assert_str_eq(c->client_secret, "top = secret");
    ck_assert_int_eq(c->mode, GS_SYNC_FULL);
    ck_assert_int_eq(c->batch_size, 25);
    ck_assert_int_eq(c->quota_units, 0);
    ck_assert_int_eq(c->parallel, 3);
    ck_assert_int_eq(c->retries, 2);
    ck_assert(c->retry_budget == apr_time_from_sec(90));
    ck_assert(c->heartbeat == apr_time_from_msec(250));
    ck_assert(c->backoff_max == apr_time_from_sec(1));
    ck_assert_str_eq(c->host, "web-1");
    ck_assert_int_eq(c->debug, 1);
    ck_assert_int_eq(c->content, GS_CONTENT_METADATA);
    ck_assert_int_eq(c->attachments, GS_ATTACH_METADATA);
    ck_assert(c->attachment_max_size == 512 * 1024);
    ck_assert_int_eq(c->store_raw, 0);
    ck_assert_int_eq(c->deletions, GS_DELETIONS_KEEP);
    ck_assert_str_eq(c->search_config, "pg_catalog.english");
    /* token_key repeats: the first line is the current key, the order is kept */
    ck_assert_ptr_nonnull(c->token_keys);
    ck_assert_int_eq(c->token_keys->keys->nelts, 2);
    ck_assert_str_eq(gs_keyring_current_id(c->token_keys), "f095d690");
    ck_assert_str_eq(gs_keyring_hex(c->token_keys, pool, 1), KEY_B);
    ck_assert_ptr_null(gs_keyring_hex(c->token_keys, pool, 2));
    ck_assert_int_eq(gs_worker_conf_check(c, pool, &err), APR_SUCCESS);
}
END_TEST

START_TEST(rejects_mistakes_without_echoing_values)
{
    static const char *const bad[] = {
        "nonsense\n", "dbx = 1\n", "db = a\ndb = b\n", "batch_size = 0\n", "batch_size = 101\n",
        "batch_size = 5x\n", "mode = fast\n", "heartbeat = 5 s\n", "heartbeat = 1ms\n",
        "api_base = ftp://x\n", "api_base = http://user:pw@host\n", "client_secret =\n",
        "client_secret = a\nclient_secret_file = /etc/hostname\n", "parallel = 17\n",
        "client_secret_file = /nonexistent/secret\n", "log_level = loud\n",
        "retry_budget = 10ms\n",
        "token_key = 00\n", "token_key = " KEY_A "\ntoken_key = " KEY_A "\n",
        "token_key = " KEY_A "\ntoken_key_file = /nonexistent\n",
        "token_key_file = /nonexistent/keys\n", "token_key_file = -\n",
        "content = all\n", "attachments = none\n", "attachment_max_size = 25G\n",
        "attachment_max_size = 1.5M\n", "attachment_max_size =\n", "store_raw = yes\n",
        "deletions = archive\n", "deletions =\n", "search_config = a;b\n",
        "search_config = a.b.c\n", "search_config =\n",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_worker_conf_t *c = gs_worker_conf_make(pool);
        const char *err;
        ck_assert_msg(parse(c, bad[i], &err) != APR_SUCCESS, "accepted: %s", bad[i]);
        ck_assert_msg(err && (strstr(err, "line") || strstr(err, "client_secret")
                              || strstr(err, "token_key")), "no line in: %s", err);
        ck_assert_msg(!strstr(err, KEY_A) && !strstr(err, "0001020304"), "a key in: %s", err);
    }
    {
        gs_worker_conf_t *c = gs_worker_conf_make(pool);
        const char *err;
        ck_assert_int_ne(parse(c, "client_id = x\nmode = SeCrEtVaLuE\n", &err), APR_SUCCESS);
        ck_assert_ptr_null(strstr(err, "SeCrEtVaLuE"));
        ck_assert_ptr_nonnull(strstr(err, "line 2"));
    }
}
END_TEST

START_TEST(reads_the_secret_file_and_checks_requirements)
{
    char path[] = "/tmp/gs-unit-secretXXXXXX";
    int fd = mkstemp(path);
    gs_worker_conf_t *c = gs_worker_conf_make(pool);
    const char *err, *text;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "s3cret\n", 7), 7);
    close(fd);
    ck_assert_int_ne(gs_worker_conf_check(c, pool, &err), APR_SUCCESS);   /* no db */
    ck_assert_ptr_nonnull(strstr(err, "db"));
    text = apr_psprintf(pool, "db = dbname=x\nclient_id = c\nclient_secret_file = %s\n", path);
    ck_assert_int_eq(parse(c, text, &err), APR_SUCCESS);
    ck_assert_str_eq(c->client_secret, "s3cret");
    ck_assert_int_ne(gs_worker_conf_check(c, pool, &err), APR_SUCCESS);   /* no token keys */
    ck_assert_ptr_nonnull(strstr(err, "token_key"));
    unlink(path);
    /* token_key_file: the key file, owner-only */
    c = gs_worker_conf_make(pool);
    strcpy(path, "/tmp/gs-unit-keysXXXXXX");
    ck_assert_int_ge(fd = mkstemp(path), 0);
    ck_assert_int_eq(write(fd, KEY_A "\n", 65), 65);
    close(fd);
    ck_assert_int_eq(chmod(path, 0640), 0);
    text = apr_psprintf(pool, "db = dbname=x\nclient_id = c\nclient_secret = s\n"
                        "token_key_file = %s\n", path);
    ck_assert_int_ne(parse(c, text, &err), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "other users"));
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(parse(c, text, &err), APR_SUCCESS);
    ck_assert_str_eq(c->token_key_file, path);
    ck_assert_str_eq(gs_keyring_current_id(c->token_keys), "f095d690");
    ck_assert_int_eq(gs_worker_conf_check(c, pool, &err), APR_SUCCESS);
    ck_assert_ptr_nonnull(c->host);
    unlink(path);
}
END_TEST

START_TEST(environment_fills_the_basics)
{
    gs_worker_conf_t *c = gs_worker_conf_make(pool);
    const char *err = NULL;

    setenv("GS_PG_DSN", "dbname=envdb", 1);
    setenv("GS_API_BASE", "http://127.0.0.1:9/", 1);
    setenv("GS_CLIENT_ID", "env-client", 1);
    unsetenv("GS_TOKEN_URL");
    unsetenv("GS_CLIENT_SECRET_FILE");
    ck_assert_int_eq(gs_worker_conf_from_env(c, pool, &err), APR_SUCCESS);
    ck_assert_str_eq(c->db, "dbname=envdb");
    ck_assert_str_eq(c->api_base, "http://127.0.0.1:9");
    ck_assert_str_eq(c->client_id, "env-client");
    ck_assert_int_ne(gs_worker_conf_check(c, pool, &err), APR_SUCCESS);   /* no secret */
    setenv("GS_API_BASE", "not a url", 1);
    ck_assert_int_ne(gs_worker_conf_from_env(c, pool, &err), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "GS_API_BASE"));
    unsetenv("GS_PG_DSN");
    unsetenv("GS_API_BASE");
    unsetenv("GS_CLIENT_ID");
}
END_TEST

Suite *gs_worker_conf_suite(void)
{
    Suite *s = suite_create("gs_worker_conf");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_match_the_directives);
    tcase_add_test(tc, parses_every_key);
    tcase_add_test(tc, rejects_mistakes_without_echoing_values);
    tcase_add_test(tc, reads_the_secret_file_and_checks_requirements);
    tcase_add_test(tc, environment_fills_the_basics);
    suite_add_tcase(s, tc);
    return s;
}
