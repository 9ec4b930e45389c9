/* gs_secretfile.c -- see gs_secretfile.h */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <openssl/crypto.h>

#include "gs_secretfile.h"

typedef struct {
    char *data;
    apr_size_t size;
} wipe_t;

static apr_status_t wipe(void *baton)
{
    wipe_t *w = baton;

    OPENSSL_cleanse(w->data, w->size);
    return APR_SUCCESS;
}

/* The rule st breaks, or NULL. */
static const char *broken_rule(apr_pool_t *p, const char *path, const struct stat *st)
{
    uid_t me = geteuid();

    if (!S_ISREG(st->st_mode)) {
        return apr_psprintf(p, "%s is not a regular file (%s): a secret must be kept in a plain "
                            "file", path, S_ISFIFO(st->st_mode) ? "a FIFO"
                            : S_ISDIR(st->st_mode) ? "a directory"
                            : S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? "a device"
                            : S_ISSOCK(st->st_mode) ? "a socket" : "not a file");
    }
    if (st->st_uid != 0 && st->st_uid != me) {
        return apr_psprintf(p, "%s is owned by uid %ld: it must be owned by root%s (chown it)",
                            path, (long)st->st_uid,
                            me ? apr_psprintf(p, " or by uid %ld, who reads it", (long)me) : "");
    }
    if (st->st_mode & (S_IRWXG | S_IRWXO)) {
        return apr_psprintf(p, "%s has mode %04o: it must not be open to its group or to other "
                            "users (chmod 600 it; its owner alone may read it)", path,
                            (unsigned)(st->st_mode & 07777));
    }
    return NULL;
}

apr_status_t gs_secret_file_read(apr_pool_t *p, const char *path, apr_size_t max, char **data,
                                 apr_size_t *len, const char **err)
{
    struct stat st;
    apr_size_t used = 0;
    wipe_t *w;
    char *buf;
    int fd, e;

    *data = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        *err = e == ELOOP ? apr_psprintf(p, "%s is a symbolic link: name the file itself", path)
                          : apr_psprintf(p, "cannot open %s: %s", path, strerror(e));
        return e == ELOOP ? APR_EINVAL : APR_FROM_OS_ERROR(e);
    }
    if (fstat(fd, &st) != 0) {
        e = errno;
        *err = apr_psprintf(p, "cannot stat %s: %s", path, strerror(e));
        (void)close(fd);
        return APR_FROM_OS_ERROR(e);
    }
    if ((*err = broken_rule(p, path, &st))) {
        (void)close(fd);
        return APR_EINVAL;
    }
    if (st.st_size <= 0 || (apr_size_t)st.st_size > max) {
        *err = apr_psprintf(p, "%s is %s", path, st.st_size <= 0 ? "empty"
                            : apr_psprintf(p, "larger than %" APR_SIZE_T_FMT " bytes", max));
        (void)close(fd);
        return APR_EINVAL;
    }
    buf = apr_palloc(p, max + 1);
    w = apr_palloc(p, sizeof *w);
    w->data = buf;
    w->size = max + 1;
    apr_pool_cleanup_register(p, w, wipe, apr_pool_cleanup_null);
    for (;;) {
        ssize_t n = read(fd, buf + used, max + 1 - used);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            e = errno;
            *err = apr_psprintf(p, "cannot read %s: %s", path, strerror(e));
            (void)close(fd);
            OPENSSL_cleanse(buf, max + 1);
            return APR_FROM_OS_ERROR(e);
        }
        if (n == 0) {
            break;
        }
        used += (apr_size_t)n;
        if (used > max) {
            *err = apr_psprintf(p, "%s is larger than %" APR_SIZE_T_FMT " bytes", path, max);
            (void)close(fd);
            OPENSSL_cleanse(buf, max + 1);
            return APR_EINVAL;
        }
    }
    if (close(fd) != 0) {
        e = errno;
        *err = apr_psprintf(p, "cannot read %s: %s", path, strerror(e));
        OPENSSL_cleanse(buf, max + 1);
        return APR_FROM_OS_ERROR(e);
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return APR_SUCCESS;
}
