/* gs_mime_int.h -- what gs_mime.c shares with gs_mime_headers.c: the parse state and the
 * pool helpers. Not part of the core's interface (gs_mime.h).
 */
#ifndef GS_MIME_INT_H
#define GS_MIME_INT_H

#include <apr_pools.h>
#include <gmime/gmime.h>

#include "gs_mime.h"

typedef struct {
    apr_pool_t *p;              /* the result's */
    apr_pool_t *scratch;        /* GMime's objects */
    const gs_mime_opts_t *opts;
    const char **fallback;      /* NULL-terminated */
    GMimeParserOptions *po;
    GMimeFormatOptions *fo;     /* writing a forwarded message: the source's line ends */
    gs_mime_t *m;
    int parts;
    int stopped;                /* max_parts reached: visit no more */
    int keep;                   /* an attachment has a source: GMime's objects stay until p goes */
    apr_array_header_t *declared;   /* const char *: charsets the message's text parts declare */
} ctx_t;

/* s as valid UTF-8 without NULs, in p (NULL for NULL) */
char *gs_mime_pool_str(apr_pool_t *p, const char *s);
/* the message is parse_error; the first reason is kept */
void gs_mime_set_error(ctx_t *c, const char *reason);
/* the headers, the envelope fields and the addresses of msg into c->m */
void gs_mime_read_envelope(ctx_t *c, GMimeMessage *msg);

#endif
