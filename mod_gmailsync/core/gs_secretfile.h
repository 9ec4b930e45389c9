/* gs_secretfile.h -- reading a file that holds a secret: the token key file
 * (GmailSyncTokenKeyFile, token_key_file) and the OAuth client secret (GmailSyncClientSecretFile,
 * client_secret_file).
 *
 * One set of rules for every such file, checked on the file that was opened (fstat after open,
 * so nothing can swap it in between):
 *   - opened without blocking (O_NONBLOCK: a FIFO does not hang `apachectl -t`) and without
 *     following a final symbolic link (O_NOFOLLOW: name the file itself);
 *   - a regular file;
 *   - owned by root or by the user reading it;
 *   - no permission bits for its group or for others (chmod 600).
 */
#ifndef GS_SECRETFILE_H
#define GS_SECRETFILE_H

#include <apr_pools.h>

/* Reads the file at path (at most max bytes) into *data (NUL-terminated, from p; a cleanup on p
 * wipes it) and *len. On failure *err (from p) names the file and the rule it breaks; never any
 * of its content. APR_EINVAL for a broken rule, else the system's error. */
apr_status_t gs_secret_file_read(apr_pool_t *p, const char *path, apr_size_t max, char **data,
                                 apr_size_t *len, const char **err);

#endif /* GS_SECRETFILE_H */
