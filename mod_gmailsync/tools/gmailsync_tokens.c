/* gmailsync_tokens.c -- main() of gmailsync-tokens, the tool behind scripts/gmailsync-rotate-key.
 *
 *   gmailsync-tokens generate
 *   gmailsync-tokens rotate [--key-file FILE] [--config FILE|-] [--user ID] [--unseal] [--dry-run]
 *   gmailsync-tokens check  [--key-file FILE] [--config FILE|-]
 *   gmailsync-tokens seal   --key-file FILE --user ID [--column refresh_token|access_token]
 *
 * generate prints a new key-file line. rotate seals every stored token under the key file's
 * current key: plaintext ones (rows written before tokens were sealed) and those under an older
 * key; tokens already current are left alone, so a rerun changes nothing. It runs online: one
 * row at a time, each write its own transaction and conditional on the values it read, so a
 * token a worker stores meanwhile is never overwritten (the row is read again and retried).
 * --unseal writes plaintext back (only to roll back to a release before sealed tokens). check
 * counts the tokens by key and exits 1 unless every one is under the current key. seal reads
 * one token on stdin and prints it sealed for that user's column (how scripts store a new
 * account without a plaintext token ever reaching the database, e.g. gmailsync-dev add-user).
 *
 * The database and the keys: --config names a worker configuration (db, token_key_file or
 * token_key lines; "-" reads it from stdin, how gmailsync-rotate-key passes the connection
 * string), else GS_PG_DSN and GS_TOKEN_KEY_FILE; --key-file overrides the keys. stdout carries
 * the counts, never a token or a key (generate aside); stderr the log.
 *
 * Exit codes: 0 done (check: all current), 1 some tokens failed (check: some not current),
 * 2 usage, 4 could not start (configuration, keys, database).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "gs_db.h"
#include "gs_log.h"
#include "gs_rekey.h"
#include "gs_sql.h"
#include "gs_tokenbox.h"
#include "gs_worker_conf.h"

#define EXIT_DONE    0
#define EXIT_SOME    1
#define EXIT_USAGE   2
#define EXIT_NOSTART 4

#define PAGE         200      /* rows read per query */
#define TRIES        5        /* writes of one row that lost to a concurrent one */

static const apr_getopt_option_t options[] = {
    { "key-file", 'k', 1, "the key file (first line: the current key)" },
    { "config", 'c', 1, "worker configuration (db, token_key_file), - for stdin" },
    { "user", 'u', 1, "only this user's row" },
    { "unseal", 'U', 0, "write the tokens back in plaintext (rollback to a release before 006)" },
    { "dry-run", 'n', 0, "count what would change, write nothing" },
    { "column", 'C', 1, "seal: refresh_token (default) or access_token" },
    { "help", 'h', 0, "print this help and exit" },
    { NULL, 0, 0, NULL }
};

static void usage(FILE *out)
{
    const apr_getopt_option_t *o;

    fprintf(out, "usage: gmailsync-tokens generate\n"
                 "       gmailsync-tokens rotate [--key-file FILE] [--config FILE|-] [--user ID] "
                 "[--unseal] [--dry-run]\n"
                 "       gmailsync-tokens check [--key-file FILE] [--config FILE|-]\n"
                 "       gmailsync-tokens seal --key-file FILE --user ID [--column COLUMN] "
                 "< token\n");
    for (o = options; o->name; o++) {
        fprintf(out, "  --%-9s %s\n", o->name, o->description);
    }
}

/* ------------------------------------------------------------------ rotate */

typedef struct {
    gs_db_t *db;
    const gs_keyring_t *kr;
    int unseal, dry_run;
    long rows, changed_rows;
    long counts[GS_REKEY_ACTIONS];
} rotate_t;

static const char *cell(const gs_db_rows_t *rows, int r, int c)
{
    const char *v = gs_db_cell(rows, r, c);
    return v && *v ? v : NULL;
}

/* One row: both columns decided, then one conditional write. Returns APR_SUCCESS when the row
 * is done (written, nothing to write, or failed tokens counted), APR_EAGAIN when a concurrent
 * write changed it first, or a database error. */
static apr_status_t rotate_row(rotate_t *rt, apr_pool_t *p, const char *user, const char *refresh,
                               const char *access, long counts[GS_REKEY_ACTIONS])
{
    static const char *const columns[2] = { "refresh_token", "access_token" };
    const char *stored[2] = { refresh, access }, *out[2], *why;
    const char *args[5];
    int i, change = 0, affected = 0;
    apr_status_t rv;

    for (i = 0; i < 2; i++) {
        gs_rekey_action_t a = gs_rekey_value(rt->kr, p, columns[i], user, stored[i], rt->unseal,
                                             &out[i], &why);
        counts[a]++;
        if (a == GS_REKEY_FAILED) {
            const char *id = gs_tokenbox_key_id(p, stored[i]);
            gs_log_error(GS_LOG_ERR, p, "event=token.undecryptable user=%s column=%s key=%s "
                         "reason=\"%s\"", gs_log_value(p, user), columns[i], id ? id : "none", why);
            printf("failed user=%s column=%s key=%s reason=\"%s\"\n", gs_log_value(p, user),
            columns[i],
                   id ? id : "none", why);
            out[i] = stored[i];           /* left as it is */
        }
        else if (a == GS_REKEY_SEAL || a == GS_REKEY_RESEAL || a == GS_REKEY_UNSEAL) {
            change = 1;
        }
    }
    if (!change || rt->dry_run) {
        return APR_SUCCESS;
    }
    args[0] = out[0];
    args[1] = out[1];
    args[2] = user;
    args[3] = refresh;
    args[4] = access;
    if ((rv = gs_db_exec(rt->db, p, GS_SQL_K_ACCOUNT_RESEAL, &affected, 5, args)) != APR_SUCCESS) {
        return rv;
    }
    if (affected == 0) {
        return APR_EAGAIN;
    }
    rt->changed_rows++;
    return APR_SUCCESS;
}

/* Rotates one row, reading it again after a lost race. */
static apr_status_t rotate_one(rotate_t *rt, apr_pool_t *p, const char *user, const char *refresh,
                               const char *access)
{
    int attempt;

    for (attempt = 1;; attempt++) {
        long counts[GS_REKEY_ACTIONS] = { 0 };
        const char *args[1] = { user };
        gs_db_rows_t *rows;
        apr_status_t rv = rotate_row(rt, p, user, refresh, access, counts);
        int i;

        if (rv == APR_SUCCESS) {
            for (i = 0; i < GS_REKEY_ACTIONS; i++) {
                rt->counts[i] += counts[i];
            }
            rt->rows++;
            return APR_SUCCESS;
        }
        if (rv != APR_EAGAIN) {
            return rv;
        }
        if (attempt == TRIES) {
            gs_log_error(GS_LOG_ERR, p, "event=token.busy user=%s tries=%d", gs_log_value(p, user),
            TRIES);
            printf("failed user=%s column=* key=none reason=\"changed concurrently %d times: "
                   "run again\"\n", gs_log_value(p, user), TRIES);
            rt->counts[GS_REKEY_FAILED]++;
            rt->rows++;
            return APR_SUCCESS;
        }
        /* a worker stored a new token meanwhile: decide again on what is there now */
        if ((rv = gs_db_select(rt->db, p, GS_SQL_K_ACCOUNT_ONE, &rows, 1, args)) != APR_SUCCESS) {
            return rv;
        }
        if (rows->nrows != 1) {
            return APR_SUCCESS;          /* deleted meanwhile: nothing left to seal */
        }
        refresh = cell(rows, 0, 1);
        access = cell(rows, 0, 2);
    }
}

static int rotate(rotate_t *rt, apr_pool_t *pool, const char *only_user)
{
    const char *after = "", *limit = apr_itoa(pool, PAGE);
    apr_pool_t *page;
    apr_status_t rv = APR_SUCCESS;
    int more = 1, i;

    if (apr_pool_create(&page, pool) != APR_SUCCESS) {
        return EXIT_NOSTART;
    }
    while (more && rv == APR_SUCCESS) {
        gs_db_rows_t *rows;

        apr_pool_clear(page);
        if (only_user) {
            const char *args[1] = { only_user };
            rv = gs_db_select(rt->db, page, GS_SQL_K_ACCOUNT_ONE, &rows, 1, args);
            more = 0;
        }
        else {
            const char *args[2] = { after, limit };
            rv = gs_db_select(rt->db, page, GS_SQL_K_ACCOUNTS_PAGE, &rows, 2, args);
            more = rv == APR_SUCCESS && rows->nrows == PAGE;
        }
        for (i = 0; rv == APR_SUCCESS && i < rows->nrows; i++) {
            const char *user = gs_db_cell(rows, i, 0);
            if (!user) {
                continue;
            }
            rv = rotate_one(rt, page, user, cell(rows, i, 1), cell(rows, i, 2));
            after = apr_pstrdup(pool, user);
        }
    }
    if (rv != APR_SUCCESS) {
        gs_log_error(GS_LOG_ERR, pool, "event=rotate.error reason=\"%s\"",
                     rt->db->last_error ? rt->db->last_error : "database error");
        printf("summary: rows=%ld written=%ld sealed=%ld resealed=%ld current=%ld unsealed=%ld "
               "failed=%ld interrupted=1\n", rt->rows, rt->changed_rows,
               rt->counts[GS_REKEY_SEAL], rt->counts[GS_REKEY_RESEAL],
               rt->counts[GS_REKEY_CURRENT], rt->counts[GS_REKEY_UNSEAL],
               rt->counts[GS_REKEY_FAILED]);
        return EXIT_NOSTART;
    }
    printf("summary: rows=%ld written=%ld sealed=%ld resealed=%ld current=%ld unsealed=%ld "
           "failed=%ld%s\n", rt->rows, rt->changed_rows, rt->counts[GS_REKEY_SEAL],
           rt->counts[GS_REKEY_RESEAL], rt->counts[GS_REKEY_CURRENT],
           rt->counts[GS_REKEY_UNSEAL], rt->counts[GS_REKEY_FAILED],
           rt->dry_run ? " dry_run=1" : "");
    return rt->counts[GS_REKEY_FAILED] ? EXIT_SOME : EXIT_DONE;
}

/* ------------------------------------------------------------------ check */

/* Counts the tokens per key id ("plaintext" for the unsealed ones). */
static int check(gs_db_t *db, const gs_keyring_t *kr, apr_pool_t *pool)
{
    static const char *const columns[2] = { "refresh_token", "access_token" };
    apr_hash_t *tally[2] = { apr_hash_make(pool), apr_hash_make(pool) };
    apr_hash_t *ids = apr_hash_make(pool);
    apr_hash_index_t *hi;
    const char *after = "", *limit = apr_itoa(pool, PAGE);
    long rows_seen = 0, current = 0, older = 0, unknown = 0, plaintext = 0;
    apr_pool_t *page;
    int more = 1, i, c;

    if (apr_pool_create(&page, pool) != APR_SUCCESS) {
        return EXIT_NOSTART;
    }
    while (more) {
        const char *args[2] = { after, limit };
        gs_db_rows_t *rows;

        apr_pool_clear(page);
        if (gs_db_select(db, page, GS_SQL_K_ACCOUNTS_PAGE, &rows, 2, args) != APR_SUCCESS) {
            gs_log_error(GS_LOG_ERR, pool, "event=check.error reason=\"%s\"",
                         db->last_error ? db->last_error : "database error");
            return EXIT_NOSTART;
        }
        more = rows->nrows == PAGE;
        for (i = 0; i < rows->nrows; i++) {
            rows_seen++;
            for (c = 0; c < 2; c++) {
                const char *v = cell(rows, i, c + 1), *id;
                long *n;
                if (!v) {
                    continue;
                }
                id = gs_tokenbox_key_id(pool, v);
                id = id ? id : "plaintext";
                if (!(n = apr_hash_get(tally[c], id, APR_HASH_KEY_STRING))) {
                    n = apr_pcalloc(pool, sizeof *n);
                    id = apr_pstrdup(pool, id);
                    apr_hash_set(tally[c], id, APR_HASH_KEY_STRING, n);
                    apr_hash_set(ids, id, APR_HASH_KEY_STRING, id);
                }
                (*n)++;
            }
            if (gs_db_cell(rows, i, 0)) {
                after = apr_pstrdup(pool, gs_db_cell(rows, i, 0));
            }
        }
    }
    for (hi = apr_hash_first(pool, ids); hi; hi = apr_hash_next(hi)) {
        const char *id = apr_hash_this_key(hi), *status;
        long n[2];
        for (c = 0; c < 2; c++) {
            long *v = apr_hash_get(tally[c], id, APR_HASH_KEY_STRING);
            n[c] = v ? *v : 0;
        }
        if (!strcmp(id, "plaintext")) {
            status = "plaintext";
            plaintext += n[0] + n[1];
        }
        else if (!strcmp(id, gs_keyring_current_id(kr))) {
            status = "current";
            current += n[0] + n[1];
        }
        else if (gs_keyring_find(kr, id)) {
            status = "older";
            older += n[0] + n[1];
        }
        else {
            status = "unknown";
            unknown += n[0] + n[1];
        }
        printf("key=%s status=%s %s=%ld %s=%ld\n", id, status, columns[0], n[0], columns[1],
               n[1]);
    }
    printf("summary: rows=%ld current=%ld older=%ld unknown=%ld plaintext=%ld\n", rows_seen,
           current, older, unknown, plaintext);
    return older + unknown + plaintext ? EXIT_SOME : EXIT_DONE;
}

/* ------------------------------------------------------------------ seal */

/* One token from stdin (one line, at most a few KiB), sealed on stdout. */
static int seal(const gs_keyring_t *kr, apr_pool_t *pool, const char *user, const char *column)
{
    char buf[16 * 1024];
    size_t n = fread(buf, 1, sizeof buf - 1, stdin);
    const char *sealed;
    int rc = EXIT_DONE;

    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }
    if (n == 0 || strlen(buf) != n || strchr(buf, '\n')) {
        fprintf(stderr, "gmailsync-tokens: seal reads one token (one line) on stdin\n");
        rc = EXIT_USAGE;
    }
    else if (gs_tokenbox_seal(kr, pool, gs_tokenbox_context(pool, column, user), buf, &sealed)
             != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-tokens: cannot encrypt the token\n");
        rc = EXIT_NOSTART;
    }
    else {
        printf("%s\n", sealed);
    }
    memset(buf, 0, sizeof buf);
    return rc;
}

/* ------------------------------------------------------------------ main */

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_getopt_t *opt;
    apr_status_t rv;
    const char *arg, *cmd, *key_file = NULL, *config = NULL, *user = NULL, *err = NULL;
    const char *column = "refresh_token";
    gs_worker_conf_t *conf;
    const gs_keyring_t *kr;
    rotate_t rt;
    int ch, unseal = 0, dry_run = 0;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-tokens: cannot initialize APR\n");
        return EXIT_NOSTART;
    }
    atexit(apr_terminate);
    if (apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        return EXIT_NOSTART;
    }
    /* the core's default log sink: stderr, up to info */
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return EXIT_DONE;
    }
    if (!strcmp(cmd, "generate")) {
        const char *line;
        if (argc != 2) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (gs_tokenbox_generate_key(pool, &line) != APR_SUCCESS) {
            fprintf(stderr, "gmailsync-tokens: no random bytes\n");
            return EXIT_NOSTART;
        }
        printf("%s\n", line);
        return EXIT_DONE;
    }
    if (strcmp(cmd, "rotate") && strcmp(cmd, "check") && strcmp(cmd, "seal")) {
        fprintf(stderr, "gmailsync-tokens: unknown command '%.64s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (apr_getopt_init(&opt, pool, argc - 1, argv + 1) != APR_SUCCESS) {
        return EXIT_USAGE;
    }
    opt->errfn = NULL;
    while ((rv = apr_getopt_long(opt, options, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 'k':
            key_file = arg;
            break;
        case 'c':
            config = arg;
            break;
        case 'u':
            user = arg;
            break;
        case 'U':
            unseal = 1;
            break;
        case 'n':
            dry_run = 1;
            break;
        case 'C':
            column = arg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_DONE;
        default:
            break;
        }
    }
    if (rv != APR_EOF || opt->ind < opt->argc
        || (!strcmp(cmd, "check") && (user || unseal || dry_run))
        || (!strcmp(cmd, "seal") && (!user || !key_file || config || unseal || dry_run
                                     || (strcmp(column, "refresh_token")
                                         && strcmp(column, "access_token"))))) {
        fprintf(stderr, "gmailsync-tokens: unknown option or argument\n");
        usage(stderr);
        return EXIT_USAGE;
    }

    if (!strcmp(cmd, "seal")) {
        gs_keyring_t *ring;
        if (gs_keyring_load(&ring, pool, key_file, &err) != APR_SUCCESS) {
            fprintf(stderr, "gmailsync-tokens: %s\n", err);
            return EXIT_NOSTART;
        }
        return seal(ring, pool, user, column);
    }
    conf = gs_worker_conf_make(pool);
    rv = config ? gs_worker_conf_load(conf, pool, config, &err)
                : gs_worker_conf_from_env(conf, pool, &err);
    if (rv == APR_SUCCESS && key_file) {
        gs_keyring_t *ring;
        if ((rv = gs_keyring_load(&ring, pool, key_file, &err)) == APR_SUCCESS) {
            conf->token_keys = ring;
            conf->token_key_file = key_file;
        }
    }
    if (rv == APR_SUCCESS && !conf->db) {
        err = "no database: set db in --config, or GS_PG_DSN";
        rv = APR_EINVAL;
    }
    if (rv == APR_SUCCESS && !conf->token_keys) {
        err = "no keys: pass --key-file (or token_key_file in --config, or GS_TOKEN_KEY_FILE)";
        rv = APR_EINVAL;
    }
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-tokens: %s\n", err);
        return EXIT_NOSTART;
    }
    kr = conf->token_keys;
    printf("keys: %d, current %s%s%s\n", kr->keys->nelts, gs_keyring_current_id(kr),
           conf->token_key_file ? " from " : "", conf->token_key_file ? conf->token_key_file : "");

    memset(&rt, 0, sizeof rt);
    if ((rv = apr_dbd_init(pool)) != APR_SUCCESS
        || (rv = gs_db_open(&rt.db, pool, conf->db, &err)) != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-tokens: %s\n", err ? err : "cannot initialise apr_dbd");
        return EXIT_NOSTART;
    }
    {
        gs_db_session_t session = { "gmailsync-tokens", 0, 0, 0 };
        gs_db_set_session(rt.db, &session);
    }
    if (!strcmp(cmd, "check")) {
        return check(rt.db, kr, pool);
    }
    rt.kr = kr;
    rt.unseal = unseal;
    rt.dry_run = dry_run;
    return rotate(&rt, pool, user);
}
