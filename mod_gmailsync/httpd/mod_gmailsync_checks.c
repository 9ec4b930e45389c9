/* mod_gmailsync_checks.c -- what httpd checks once the whole configuration is read (the
 * directives themselves are parsed in mod_gmailsync_config.c): that httpd's User may execute the
 * worker, the secrets read while still root, and that the connect flow is complete. */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_file_info.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <unixd.h>

#include "gs_secretfile.h"
#include "mod_gmailsync.h"

APLOG_USE_MODULE(gmailsync);

/* ------------------------------------------------------------------ the worker's mode bits */

/* Would `uid` (with `groups`) be allowed to execute (a file) or search (a directory) what `st`
 * describes, by its mode bits and ownership as the kernel decides (ACLs aside)? */
static int may_exec(const struct stat *st, uid_t uid, const gid_t *groups, int ngroups)
{
    int i;

    if (uid == 0) {
        return S_ISDIR(st->st_mode) || (st->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0;
    }
    if (st->st_uid == uid) {
        return (st->st_mode & S_IXUSR) != 0;
    }
    for (i = 0; i < ngroups; i++) {
        if (st->st_gid == groups[i]) {
            return (st->st_mode & S_IXGRP) != 0;
        }
    }
    return (st->st_mode & S_IXOTH) != 0;
}

/* The groups httpd's children have after dropping privileges: unixd's initgroups(User, Group). */
static int user_groups(apr_pool_t *p, gid_t **groups)
{
    const char *name = ap_unixd_config.user_name;
    int n = 32;

    if (!name || *name == '#') {
        struct passwd *pw = getpwuid(ap_unixd_config.user_id);
        name = pw ? apr_pstrdup(p, pw->pw_name) : NULL;
    }
    *groups = apr_palloc(p, (apr_size_t)n * sizeof **groups);
    if (!name) {
        (*groups)[0] = ap_unixd_config.group_id;
        return 1;
    }
    if (getgrouplist(name, ap_unixd_config.group_id, *groups, &n) < 0) {
        *groups = apr_palloc(p, (apr_size_t)n * sizeof **groups);
        if (getgrouplist(name, ap_unixd_config.group_id, *groups, &n) < 0) {
            (*groups)[0] = ap_unixd_config.group_id;
            return 1;
        }
    }
    return n;
}

/* Why httpd's User cannot run `path` (it and every directory above it), or NULL when it can.
 * Started as root, httpd's daemon and workers run as User/Group: access(X_OK) as root would
 * answer for root. Otherwise nobody changes users and access() answers for the right one. */
static const char *worker_not_runnable(apr_pool_t *p, const char *path)
{
    gid_t *groups;
    int ngroups;
    char *prefix = apr_pstrdup(p, path), *slash = prefix;

    if (geteuid() != 0) {
        return access(path, X_OK) == 0 ? NULL
                                       : apr_psprintf(p, "not executable (%s)", strerror(errno));
    }
    ngroups = user_groups(p, &groups);
    for (;;) {
        struct stat st;
        char saved;

        slash = strchr(slash + 1, '/');
        saved = slash ? *slash : '\0';
        if (slash) {
            *slash = '\0';
        }
        if (stat(*prefix ? prefix : "/", &st) != 0) {
            return apr_psprintf(p, "cannot stat %s (%s)", prefix, strerror(errno));
        }
        if (!may_exec(&st, ap_unixd_config.user_id, groups, ngroups)) {
            return apr_psprintf(p, "User %s (uid %ld, gid %ld) cannot %s %s: mode %04o, owner "
                                "%ld:%ld",
                                ap_unixd_config.user_name ? ap_unixd_config.user_name : "?",
                                (long)ap_unixd_config.user_id, (long)ap_unixd_config.group_id,
                                slash ? "search" : "execute", prefix,
                                (unsigned)(st.st_mode & 07777), (long)st.st_uid,
                                (long)st.st_gid);
        }
        if (!slash) {
            return NULL;
        }
        *slash = saved;
    }
}

int gs_httpd_worker_check(server_rec *s, apr_pool_t *ptemp)
{
    const char *checked = NULL;

    for (; s; s = s->next) {
        const gs_srv_conf_t *conf = gs_httpd_srv_conf(s);
        const char *why;
        apr_finfo_t finfo;

        if (!conf->worker_path || conf->worker_path == checked) {
            continue;
        }
        checked = conf->worker_path;
        if (!conf->worker_where
            && apr_stat(&finfo, conf->worker_path, APR_FINFO_TYPE, ptemp) != APR_SUCCESS) {
            continue; /* the built-in default, not installed: nothing configured to check */
        }
        if ((why = worker_not_runnable(ptemp, conf->worker_path))) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s %s (%s): httpd cannot run the worker: %s",
                         GS_DIR_WORKER, conf->worker_path,
                         conf->worker_where ? conf->worker_where : "the default", why);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

const char *gs_httpd_read_secret(apr_pool_t *p, const char *path, server_rec *s)
{
    const char *why = NULL;
    apr_size_t len;
    char *buf;

    if (!path) {
        return NULL;
    }
    if (gs_secret_file_read(p, path, GS_CLIENT_SECRET_MAX, &buf, &len, &why) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "cannot read %s: %s",
                     GS_DIR_CLIENT_SECRET_FILE, why);
        return NULL;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) {
        buf[--len] = '\0';
    }
    return buf;
}

void gs_httpd_conf_read_secrets(apr_pool_t *pconf, server_rec *s)
{
    const char *main_file = gs_httpd_srv_conf(s)->client_secret_file;
    const char *main_secret = gs_httpd_read_secret(pconf, main_file, s);
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        gs_srv_conf_t *conf = gs_httpd_srv_conf(vs);

        /* a virtual host that inherits the file shares the main server's reading */
        if (vs == s || (conf->client_secret_file && main_file
                        && !strcmp(conf->client_secret_file, main_file))) {
            conf->client_secret = main_secret;
        }
        else {
            conf->client_secret = gs_httpd_read_secret(pconf, conf->client_secret_file, vs);
        }
    }
}

const char *gs_httpd_server_where(apr_pool_t *p, const server_rec *vs)
{
    return apr_psprintf(p, "%s:%d", vs->defn_name ? vs->defn_name : "(main server)",
                        vs->defn_line_number);
}

int gs_httpd_conf_check_connect(server_rec *s, apr_pool_t *ptemp)
{
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        const gs_srv_conf_t *conf = gs_httpd_srv_conf(vs);
        const char *where = gs_httpd_server_where(ptemp, vs);
        const char *path, *want, *why;

        if (!conf->redirect_uri) {
            continue;
        }
        if (!conf->token_keys) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s needs %s (tokens are stored encrypted) in %s",
                         GS_DIR_REDIRECT_URI, GS_DIR_TOKEN_KEY_FILE, where);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (!conf->client_id || !conf->client_secret_file) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s needs %s and %s in %s", GS_DIR_REDIRECT_URI,
                         GS_DIR_CLIENT_ID, GS_DIR_CLIENT_SECRET_FILE, where);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        want = apr_pstrcat(ptemp, conf->prefix, "/oauth/callback", NULL);
        if (gs_parse_redirect_uri(ptemp, conf->redirect_uri, &path, &why) != APR_SUCCESS
            || strcmp(path, want)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "mod_gmailsync: %s %s must point at this server's callback %s "
                         "(%s %s) in %s", GS_DIR_REDIRECT_URI, conf->redirect_uri, want,
                         GS_DIR_PREFIX, conf->prefix, where);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}
