/* gs_error.h -- how a sync ends when it does not succeed.
 *
 * Two outcomes besides success: the task FAILS (a failure record with a documented error_code
 * and a message the user can act on, stored in sync_tasks), or the worker LOSES its lease (the
 * task was cancelled or rescued; it stops and writes nothing more). Functions that can end the
 * sync return GS_EFAILED or GS_ELOST; the failure record travels in a gs_failure_t.
 *
 * Messages never contain tokens, secrets or connection strings.
 */
#ifndef GS_ERROR_H
#define GS_ERROR_H

#include <apr_errno.h>
#include <apr_pools.h>

#define GS_EFAILED   (APR_OS_START_USERERR + 4001)  /* the task must FAIL: see the failure record */
#define GS_ELOST     (APR_OS_START_USERERR + 4002)  /* the lease is gone: stop without writing */
#define GS_ENOTFOUND (APR_OS_START_USERERR + 4004)  /* Gmail answered 404 */
#define GS_EMOVED    (APR_OS_START_USERERR + 4005)  /* the database is another server now (a
                                                       failover): what this sync wrote may be
                                                       lost; start again from what is stored */

/* The error codes of sync_tasks.error_code (documented in mod_gmailsync/worker/README.md). */
#define GS_ERR_AUTH_REVOKED      "auth_revoked"
#define GS_ERR_GMAIL_UNAVAILABLE "gmail_unavailable"
#define GS_ERR_QUOTA_EXHAUSTED   "quota_exhausted"
#define GS_ERR_DB_UNAVAILABLE    "db_unavailable"
#define GS_ERR_WORKER_CRASHED    "worker_crashed"
#define GS_ERR_STUCK             "stuck"
#define GS_ERR_CANCELLED         "cancelled"
#define GS_ERR_INTERNAL          "internal"
/* Gmail answered 403 accessNotConfigured: the Gmail API is switched off in the OAuth client's
 * Google Cloud project (an operator's setting, not the user's grant) */
#define GS_ERR_API_DISABLED      "api_disabled"
/* PostgreSQL ran out of disk space (SQLSTATE 53100 disk_full) while storing: what was committed
 * is kept, the next sync resumes once space is freed */
#define GS_ERR_STORAGE_FULL      "storage_full"
/* the account's stored token does not open with the worker's keys: its key is not in the key
 * file, it does not authenticate (tampered, copied from another row), or it is plaintext */
#define GS_ERR_TOKEN_UNDECRYPTABLE "token_undecryptable"

/* Longest error_message stored; longer ones are cut at a UTF-8 boundary. */
#define GS_ERROR_MESSAGE_MAX 500

typedef struct {
    const char *code;      /* one of GS_ERR_*, NULL while nothing failed */
    const char *message;   /* NULL, or buf: the record owns its text, whatever pool the failing
                            * call had (a batch round's pool is gone before the task ends) */
    char buf[GS_ERROR_MESSAGE_MAX + 1];
} gs_failure_t;

/* Records the failure (the first one wins: later, consequential failures do not overwrite it)
 * and returns GS_EFAILED. */
apr_status_t gs_fail(gs_failure_t *f, apr_pool_t *p, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Copies s into p, cut to at most max bytes without splitting a UTF-8 sequence, with control
 * characters replaced by spaces: safe for error_message and for key="value" log fields. */
const char *gs_error_clean(apr_pool_t *p, const char *s, apr_size_t max);

#endif /* GS_ERROR_H */
