/* gs_mime_int.h -- what gs_mime.c shares with gs_mime_headers.c and gs_mime_body.c: the parse
 * state and the pool helpers. Not part of the core's interface (gs_mime.h).
 */
#ifndef GS_MIME_INT_H
#define GS_MIME_INT_H

#include <apr_pools.h>
#include <gmime/gmime.h>

#include "gs_mime.h"
#include "gs_sha256.h"

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

/* a large part's content, read again when its bytes are sent (gs_mime_reader_open) */
struct gs_mime_source_t {
    GMimeDataWrapper *content;  /* the part's, alive as long as the message (the scratch pool) */
};

/* s as valid UTF-8 without NULs, in p (NULL for NULL) */
char *gs_mime_pool_str(apr_pool_t *p, const char *s);
/* the message is parse_error; the first reason is kept */
void gs_mime_set_error(ctx_t *c, const char *reason);
/* the headers, the envelope fields and the addresses of msg into c->m */
void gs_mime_read_envelope(ctx_t *c, GMimeMessage *msg);
/* the bodies, their charsets and the attachments of the tree under top into c->m
 * (gs_mime_body.c) */
void gs_mime_read_bodies(ctx_t *c, GMimeObject *top);

/* gs_mime.c's helpers of gs_mime_body.c: */
/* s[0..len) as valid UTF-8 without NULs, in p */
char *gs_mime_pool_utf8(apr_pool_t *p, const char *s, apr_size_t len);
/* CRLF and lone CR line ends as LF, in place */
void gs_mime_to_lf(char *s);
/* the part's content with its transfer encoding undone (whole_message: obj written as a
 * message), in a memory stream the scratch pool owns; NULL when it has none */
GMimeStream *gs_mime_decoded(ctx_t *c, GMimeObject *obj, int whole_message);
/* releases such a stream now; or hands it to the result's pool (its bytes are kept) */
void gs_mime_release(ctx_t *c, GMimeStream *mem);
void gs_mime_keep(ctx_t *c, GMimeStream *mem);
/* a large part's size and SHA-256, read a piece at a time; APR_EGENERAL when that fails */
apr_status_t gs_mime_hash_pieces(ctx_t *c, const gs_mime_source_t *src, apr_size_t *size,
                                 unsigned char digest[GS_SHA256_DIGEST_LEN]);

#endif
