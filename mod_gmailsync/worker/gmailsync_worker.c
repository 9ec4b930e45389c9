/* gmailsync_worker.c -- main() of gmailsync-worker, the process that runs one sync task.
 *
 * The daemon inside httpd starts one worker per task; operators can also run it by hand.
 * This file only parses the command line and sets up APR; the sync itself lives in the core.
 */
#include <stdio.h>
#include <stdlib.h>

#include <apr_getopt.h>
#include <apr_general.h>
#include <apr_pools.h>

#include "gs_log.h"

#define EXIT_USAGE 2

static const apr_getopt_option_t options[] = {
    { "version", 'V', 0, "print the version and exit" },
    { "help", 'h', 0, "print this help and exit" },
    { NULL, 0, 0, NULL }
};

static void usage(FILE *out, const char *argv0)
{
    const apr_getopt_option_t *o;

    fprintf(out, "usage: %s [options]\n", argv0);
    for (o = options; o->name; o++) {
        fprintf(out, "  --%-12s %s\n", o->name, o->description);
    }
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_getopt_t *opt;
    apr_status_t rv;
    const char *arg;
    int ch;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-worker: cannot initialize APR\n");
        return EXIT_FAILURE;
    }
    atexit(apr_terminate);
    if (apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "gmailsync-worker: out of memory\n");
        return EXIT_FAILURE;
    }
    if ((rv = apr_getopt_init(&opt, pool, argc, argv)) != APR_SUCCESS) {
        gs_log_perror(GS_LOG_MARK, GS_LOG_ERR, rv, pool, "cannot parse the command line");
        return EXIT_FAILURE;
    }
    opt->errfn = NULL;
    while ((rv = apr_getopt_long(opt, options, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 'V':
            printf("gmailsync-worker %s\n", GS_VERSION);
            return EXIT_SUCCESS;
        case 'h':
            usage(stdout, argv[0]);
            return EXIT_SUCCESS;
        default:
            break;
        }
    }
    if (rv != APR_EOF || opt->ind < argc) {
        fprintf(stderr, "gmailsync-worker: unknown option or argument\n");
        usage(stderr, argv[0]);
        return EXIT_USAGE;
    }
    usage(stderr, argv[0]);
    return EXIT_USAGE;
}
