/* gs_worker_conf.c -- see gs_worker_conf.h */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <openssl/crypto.h>

#include "gs_secretfile.h"
#include "gs_search.h"
#include "gs_worker_conf.h"

/* A configuration or secret file larger than this is a mistake, not a configuration. */
#define MAX_CONF_BYTES (64 * 1024)

typedef enum { K_STRING, K_URL, K_SECRET_FILE, K_MODE, K_INT, K_DURATION, K_LOG_LEVEL, K_TOKEN_KEY,
               K_TOKEN_KEY_FILE, K_CHOICE, K_SIZE, K_ON_OFF,
               K_SEARCH_CONFIG } kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    size_t offset;          /* of the field in gs_worker_conf_t */
    long min, max;          /* K_INT */
    apr_interval_time_t dmin; /* K_DURATION */
    const char *const *names; /* K_CHOICE: the values, indexed by the field's enum (0, 1, ...) */
} key_t_;

#define F(field) offsetof(gs_worker_conf_t, field)
static const key_t_ keys[] = {
    { "db", K_STRING, F(db), 0, 0, 0, NULL },
    { "api_base", K_URL, F(api_base), 0, 0, 0, NULL },
    { "token_url", K_URL, F(token_url), 0, 0, 0, NULL },
    { "client_id", K_STRING, F(client_id), 0, 0, 0, NULL },
    { "client_secret", K_STRING, F(client_secret), 0, 0, 0, NULL },
    { "client_secret_file", K_SECRET_FILE, F(client_secret_file), 0, 0, 0, NULL },
    /* repeatable: one key per line, the current one first (how the daemon passes them) */
    { "token_key", K_TOKEN_KEY, F(token_keys), 0, 0, 0, NULL },
    { "token_key_file", K_TOKEN_KEY_FILE, F(token_key_file), 0, 0, 0, NULL },
    { "mode", K_MODE, F(mode), 0, 0, 0, NULL },
    { "batch_size", K_INT, F(batch_size), 1, GS_MAX_BATCH_SIZE, 0, NULL },
    { "quota_units", K_INT, F(quota_units), 0, 1000000, 0, NULL },
    { "parallel", K_INT, F(parallel), 1, GS_WORKER_MAX_PARALLEL, 0, NULL },
    { "retries", K_INT, F(retries), 0, 100, 0, NULL },
    { "heartbeat", K_DURATION, F(heartbeat), 0, 0, 1000 * 50, NULL },
    { "progress_interval", K_DURATION, F(progress_interval), 0, 0, 0, NULL },
    { "stall_limit", K_DURATION, F(stall_limit), 0, 0, 0, NULL },
    { "db_wait", K_DURATION, F(db_wait), 0, 0, 0, NULL },
    { "retry_budget", K_DURATION, F(retry_budget), 0, 0, 1000 * 100, NULL },
    { "backoff_base", K_DURATION, F(backoff_base), 0, 0, 1000, NULL },
    { "backoff_max", K_DURATION, F(backoff_max), 0, 0, 1000, NULL },
    { "timeout", K_DURATION, F(timeout), 0, 0, 1000 * 100, NULL },
    { "connect_timeout", K_DURATION, F(connect_timeout), 0, 0, 1000 * 100, NULL },
    { "low_speed_time", K_DURATION, F(low_speed_time), 0, 0, APR_USEC_PER_SEC, NULL },
    { "content", K_CHOICE, F(content), 0, 0, 0, gs_content_mode_names },
    { "attachments", K_CHOICE, F(attachments), 0, 0, 0, gs_attach_mode_names },
    { "deletions", K_CHOICE, F(deletions), 0, 0, 0, gs_deletions_names },
    { "attachment_max_size", K_SIZE, F(attachment_max_size), 0, 0, 0, NULL },
    { "store_raw", K_ON_OFF, F(store_raw), 0, 0, 0, NULL },
    { "search_config", K_SEARCH_CONFIG, F(search_config), 0, 0, 0, NULL },
    { "host", K_STRING, F(host), 0, 0, 0, NULL },
    { "log_level", K_LOG_LEVEL, F(debug), 0, 0, 0, NULL },
    { NULL, K_STRING, 0, 0, 0, 0, NULL }
};
#undef F

gs_worker_conf_t *gs_worker_conf_make(apr_pool_t *p)
{
    gs_worker_conf_t *conf = apr_pcalloc(p, sizeof *conf);

    conf->api_base = GS_DEFAULT_API_BASE;
    conf->token_url = GS_DEFAULT_TOKEN_URL;
    conf->mode = GS_SYNC_SMART;
    conf->batch_size = GS_DEFAULT_BATCH_SIZE;
    conf->quota_units = GS_DEFAULT_QUOTA_UNITS;
    conf->parallel = GS_WORKER_DEFAULT_PARALLEL;
    conf->retries = GS_WORKER_DEFAULT_RETRIES;
    conf->heartbeat = GS_DEFAULT_HEARTBEAT;
    conf->progress_interval = GS_DEFAULT_PROGRESS_INTERVAL;
    conf->stall_limit = GS_WORKER_DEFAULT_STALL_LIMIT;
    conf->db_wait = GS_WORKER_DEFAULT_DB_WAIT;
    conf->retry_budget = GS_DEFAULT_RETRY_BUDGET;
    conf->backoff_base = GS_WORKER_DEFAULT_BACKOFF_BASE;
    conf->backoff_max = GS_WORKER_DEFAULT_BACKOFF_MAX;
    conf->timeout = GS_WORKER_DEFAULT_TIMEOUT;
    conf->connect_timeout = GS_WORKER_DEFAULT_CONNECT_TIMEOUT;
    conf->low_speed_time = GS_WORKER_DEFAULT_LOW_SPEED_TIME;
    conf->content = GS_CONTENT_FULL;
    conf->attachments = GS_ATTACH_STORE;
    conf->attachment_max_size = GS_DEFAULT_ATTACHMENT_MAX_SIZE;
    conf->store_raw = 1;
    conf->search_config = GS_SEARCH_DEFAULT_CONFIG;
    return conf;
}

/* Reads a whole file (or stdin for "-") of at most MAX_CONF_BYTES into a NUL-terminated buffer. */
static apr_status_t read_all(apr_pool_t *p, const char *path, char **data, apr_size_t *len,
                             const char **err)
{
    apr_file_t *f = NULL;
    apr_size_t cap = 4096, used = 0, n;
    char *buf;
    apr_status_t rv;

    if (!strcmp(path, "-")) {
        rv = apr_file_open_stdin(&f, p);
    }
    else {
        rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT, p);
    }
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "cannot open %s", !strcmp(path, "-") ? "stdin" : path);
        return rv;
    }
    buf = apr_palloc(p, cap + 1);
    for (;;) {
        if (used == cap) {
            char *bigger;
            if (cap >= MAX_CONF_BYTES) {
                *err = apr_psprintf(p, "%s is larger than %d bytes", path, MAX_CONF_BYTES);
                rv = APR_EINVAL;
                break;
            }
            bigger = apr_palloc(p, cap * 2 + 1);
            memcpy(bigger, buf, used);
            buf = bigger;
            cap *= 2;
        }
        n = cap - used;
        rv = apr_file_read(f, buf + used, &n);
        used += n;
        if (rv == APR_EOF) {
            rv = APR_SUCCESS;
            break;
        }
        if (rv != APR_SUCCESS) {
            *err = apr_psprintf(p, "cannot read %s", !strcmp(path, "-") ? "stdin" : path);
            break;
        }
    }
    if (strcmp(path, "-")) {
        apr_file_close(f);
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return rv;
}

static apr_status_t read_secret_file(gs_worker_conf_t *conf, apr_pool_t *p, const char *path,
                                     const char **err)
{
    char *data;
    apr_size_t len;
    apr_status_t rv;

    if (!strcmp(path, "-")) {
        *err = "client_secret_file cannot be stdin";
        return APR_EINVAL;
    }
    /* the rules of every secret file: gs_secretfile.h */
    if ((rv = gs_secret_file_read(p, path, MAX_CONF_BYTES, &data, &len, err)) != APR_SUCCESS) {
        return rv;
    }
    while (len > 0 && apr_isspace(data[len - 1])) {
        data[--len] = '\0';
    }
    if (len == 0 || strlen(data) != len) {
        *err = apr_psprintf(p, "client_secret_file %s is empty or not text", path);
        return APR_EINVAL;
    }
    conf->client_secret = data;
    conf->client_secret_file = apr_pstrdup(p, path);
    return APR_SUCCESS;
}

/* One token_key line: appended to the key-file text that gs_worker_conf_parse turns into the
 * ring once every line is read. */
static apr_status_t add_token_key(apr_pool_t *p, char **ring_text, const char *value,
                                  const char **why)
{
    apr_size_t have = *ring_text ? strlen(*ring_text) : 0, n = strlen(value);
    char *text;

    if (n != 2 * GS_TOKENBOX_KEY_LEN) {
        *why = "a key is 64 hex digits";
        return APR_EINVAL;
    }
    text = apr_palloc(p, have + n + 2);
    if (have) {
        memcpy(text, *ring_text, have);
        OPENSSL_cleanse(*ring_text, have);
    }
    memcpy(text + have, value, n);
    text[have + n] = '\n';
    text[have + n + 1] = '\0';
    *ring_text = text;
    return APR_SUCCESS;
}

static apr_status_t read_token_key_file(gs_worker_conf_t *conf, apr_pool_t *p, const char *path,
                                        const char **why)
{
    gs_keyring_t *kr;
    apr_status_t rv;

    if (!strcmp(path, "-")) {
        *why = "token_key_file cannot be stdin";
        return APR_EINVAL;
    }
    if ((rv = gs_keyring_load(&kr, p, path, why)) != APR_SUCCESS) {
        return rv;
    }
    conf->token_keys = kr;
    conf->token_key_file = apr_pstrdup(p, path);
    return APR_SUCCESS;
}

static apr_status_t apply(gs_worker_conf_t *conf, apr_pool_t *p, const key_t_ *k,
                          const char *value, const char **why)
{
    void *field = (char *)conf + k->offset;
    apr_interval_time_t d;
    long n;
    int choice;
    apr_status_t rv;

    switch (k->kind) {
    case K_STRING:
        if (!*value) {
            *why = "empty value";
            return APR_EINVAL;
        }
        *(const char **)field = apr_pstrdup(p, value);
        return APR_SUCCESS;
    case K_URL:
        return gs_parse_http_url(p, value, (const char **)field, why);
    case K_SECRET_FILE:
        return read_secret_file(conf, p, value, why);
    case K_MODE:
        if (!strcmp(value, "smart")) {
            conf->mode = GS_SYNC_SMART;
        }
        else if (!strcmp(value, "full")) {
            conf->mode = GS_SYNC_FULL;
        }
        else {
            *why = "mode is smart or full";
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    case K_INT:
        if ((rv = gs_parse_int(value, k->min, k->max, &n, why)) != APR_SUCCESS) {
            return rv;
        }
        *(int *)field = (int)n;
        return APR_SUCCESS;
    case K_DURATION:
        if ((rv = gs_parse_duration(value, &d, why)) != APR_SUCCESS) {
            return rv;
        }
        if (d < k->dmin) {
            *why = apr_psprintf(p, "at least %s", gs_format_duration(p, k->dmin));
            return APR_EINVAL;
        }
        *(apr_interval_time_t *)field = d;
        return APR_SUCCESS;
    case K_TOKEN_KEY:
        *why = "token_key is read by gs_worker_conf_parse";
        return APR_EINVAL;
    case K_TOKEN_KEY_FILE:
        return read_token_key_file(conf, p, value, why);
    case K_CHOICE:
        /* the fields are enums whose values index their names (gs_config.h) */
        if ((rv = gs_parse_choice(p, value, k->names, &choice, why)) != APR_SUCCESS) {
            return rv;
        }
        *(int *)field = choice;
        return APR_SUCCESS;
    case K_SIZE:
        return gs_parse_size(value, GS_MAX_ATTACHMENT_MAX_SIZE, (apr_int64_t *)field, why);
    case K_ON_OFF:
        if (!strcasecmp(value, "on") || !strcasecmp(value, "off")) {
            *(int *)field = !strcasecmp(value, "on");
            return APR_SUCCESS;
        }
        *why = "expected on or off";
        return APR_EINVAL;
    case K_SEARCH_CONFIG:
        if (!gs_search_config_valid(value)) {
            *why = "a text-search configuration name: an identifier, optionally schema-qualified";
            return APR_EINVAL;
        }
        *(const char **)field = apr_pstrdup(p, value);
        return APR_SUCCESS;
    case K_LOG_LEVEL:
        if (!strcmp(value, "info") || !strcmp(value, "debug")) {
            conf->debug = !strcmp(value, "debug");
            return APR_SUCCESS;
        }
        *why = "log_level is info or debug";
        return APR_EINVAL;
    }
    *why = "unknown key type";
    return APR_EINVAL;
}

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
        *--end = '\0';
    }
    return s;
}

apr_status_t gs_worker_conf_parse(gs_worker_conf_t *conf, apr_pool_t *p, const char *text,
                                  apr_size_t len, const char **err)
{
    apr_hash_t *seen = apr_hash_make(p);
    char *copy, *line, *next, *token_keys = NULL;
    int lineno = 0;
    apr_status_t rv = APR_SUCCESS;

    if (memchr(text, '\0', len)) {
        *err = "the configuration contains a NUL byte";
        return APR_EINVAL;
    }
    copy = apr_pstrmemdup(p, text, len);
    for (line = copy; line && rv == APR_SUCCESS; line = next) {
        char *eq, *key, *value;
        const char *why = NULL;
        const key_t_ *k;

        lineno++;
        if ((next = strchr(line, '\n'))) {
            *next++ = '\0';
        }
        key = trim(line);
        if (!*key || *key == '#') {
            continue;
        }
        if (!(eq = strchr(key, '='))) {
            *err = apr_psprintf(p, "line %d: expected key = value", lineno);
            rv = APR_EINVAL;
            break;
        }
        *eq = '\0';
        value = trim(eq + 1);
        key = trim(key);
        for (k = keys; k->name && strcmp(k->name, key); k++) {
        }
        if (!k->name) {
            *err = apr_psprintf(p, "line %d: unknown key '%.64s'", lineno, key);
            rv = APR_EINVAL;
        }
        else if (k->kind == K_TOKEN_KEY) {
            if (add_token_key(p, &token_keys, value, &why) != APR_SUCCESS) {
                *err = apr_psprintf(p, "line %d: bad %s: %s", lineno, k->name, why);
                rv = APR_EINVAL;
            }
            apr_hash_set(seen, k->name, APR_HASH_KEY_STRING, k);
        }
        else if (apr_hash_get(seen, k->name, APR_HASH_KEY_STRING)) {
            *err = apr_psprintf(p, "line %d: %s is set twice", lineno, k->name);
            rv = APR_EINVAL;
        }
        else if (apply(conf, p, k, value, &why) != APR_SUCCESS) {
            /* the reason, never the value: it may be a secret */
            *err = apr_psprintf(p, "line %d: bad %s: %s", lineno, k->name, why ? why : "invalid");
            rv = APR_EINVAL;
        }
        else {
            apr_hash_set(seen, k->name, APR_HASH_KEY_STRING, k);
        }
    }
    memset(copy, 0, len);   /* it held the secrets; the values we keep are copies */
    if (rv == APR_SUCCESS && token_keys) {
        gs_keyring_t *kr;
        const char *why = NULL;

        if (apr_hash_get(seen, "token_key_file", APR_HASH_KEY_STRING)) {
            *err = "set token_key or token_key_file, not both";
            rv = APR_EINVAL;
        }
        else if (gs_keyring_parse(&kr, p, token_keys, strlen(token_keys), &why) != APR_SUCCESS) {
            *err = apr_psprintf(p, "bad token_key: %s", why);
            rv = APR_EINVAL;
        }
        else {
            conf->token_keys = kr;
        }
    }
    if (token_keys) {
        OPENSSL_cleanse(token_keys, strlen(token_keys));
    }
    if (rv == APR_SUCCESS && apr_hash_get(seen, "client_secret", APR_HASH_KEY_STRING)
        && apr_hash_get(seen, "client_secret_file", APR_HASH_KEY_STRING)) {
        *err = "set client_secret or client_secret_file, not both";
        rv = APR_EINVAL;
    }
    return rv;
}

apr_status_t gs_worker_conf_from_env(gs_worker_conf_t *conf, apr_pool_t *p, const char **err)
{
    static const struct { const char *env, *key; } vars[] = {
        { "GS_PG_DSN", "db" }, { "GS_API_BASE", "api_base" }, { "GS_TOKEN_URL", "token_url" },
        { "GS_CLIENT_ID", "client_id" }, { "GS_CLIENT_SECRET_FILE", "client_secret_file" },
        { "GS_TOKEN_KEY_FILE", "token_key_file" },
    };
    size_t i;

    for (i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *value = getenv(vars[i].env);
        const key_t_ *k;
        const char *why = NULL;

        if (!value || !*value) {
            continue;
        }
        for (k = keys; strcmp(k->name, vars[i].key); k++) {
        }
        if (apply(conf, p, k, value, &why) != APR_SUCCESS) {
            *err = apr_psprintf(p, "bad %s: %s", vars[i].env, why ? why : "invalid");
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

apr_status_t gs_worker_conf_load(gs_worker_conf_t *conf, apr_pool_t *p, const char *path,
                                 const char **err)
{
    char *data;
    apr_size_t len;
    apr_status_t rv;

    if ((rv = read_all(p, path, &data, &len, err)) != APR_SUCCESS) {
        return rv;
    }
    rv = gs_worker_conf_parse(conf, p, data, len, err);
    memset(data, 0, len); /* the text held the secret; the parsed copy is all we keep */
    return rv;
}

apr_status_t gs_worker_conf_check(gs_worker_conf_t *conf, apr_pool_t *p, const char **err)
{
    if (!conf->db) {
        *err = "no database: set db (or GS_PG_DSN)";
        return APR_EINVAL;
    }
    if (!conf->client_id) {
        *err = "no OAuth client: set client_id (or GS_CLIENT_ID)";
        return APR_EINVAL;
    }
    if (!conf->client_secret) {
        *err = "no OAuth client secret: set client_secret or client_secret_file "
               "(or GS_CLIENT_SECRET_FILE)";
        return APR_EINVAL;
    }
    if (!conf->token_keys) {
        *err = "no token keys: set token_key or token_key_file (or GS_TOKEN_KEY_FILE)";
        return APR_EINVAL;
    }
    if (conf->backoff_max < conf->backoff_base) {
        *err = "backoff_max is smaller than backoff_base";
        return APR_EINVAL;
    }
    if (!conf->host) {
        char name[256];
        if (gethostname(name, sizeof name) != 0) {
            *err = "cannot determine the host name: set host";
            return APR_EINVAL;
        }
        name[sizeof name - 1] = '\0';
        conf->host = apr_pstrdup(p, name);
    }
    return APR_SUCCESS;
}
