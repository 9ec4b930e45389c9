/* gs_content.h -- one message fetched with format=raw, parsed (gs_mime) and stored with its
 * content (issue 22, sql/010): the messages row with its envelope and content columns, the
 * addresses by role, the bodies, the attachments and their content-addressed bytes, the raw
 * message.
 *
 * Runs inside the caller's transaction (one that holds the task: gs_task_hold), so the row and
 * its content commit together or not at all, and is safe to run again (a replayed transaction):
 * the row is upserted and its old parts deleted before the new ones go in. The parse lives in a
 * pool of its own, destroyed before returning: memory is bounded by one message, not a batch.
 *
 * Linked into the worker (and the unit tests) only: it calls gs_mime, which httpd's module must
 * never link.
 */
#ifndef GS_CONTENT_H
#define GS_CONTENT_H

#include <apr_pools.h>
#include <json-c/json.h>

#include "gs_config.h"
#include "gs_gmail.h"
#include "gs_mime.h"
#include "gs_task.h"

typedef struct {
    gs_attach_mode_t attachments;      /* store: attachment bytes kept (within the size) */
    apr_int64_t attachment_max_size;   /* larger attachments: metadata and SHA-256 only */
    int store_raw;                     /* keep the raw message in message_raw */
} gs_content_opts_t;

/* What one store did. */
typedef struct {
    int parse_error;      /* stored with content_state parse_error */
    int blobs_stored;     /* attachment bytes sent (not already stored for the user) */
    int blobs_known;      /* attachments whose bytes the user had stored already */
    /* the costliest message of the store: the worker's CPU time (this thread's: the parse,
     * gs_content_build and the client side of its statements, not PostgreSQL's) and its wall
     * time, in microseconds, with its Gmail id (owned by the row) */
    apr_int64_t cpu_max_us, wall_max_us;
    const char *cpu_max_id;
} gs_content_result_t;

/* Indexed text columns (messages.message_id, message_addresses.address) take values of at most
 * this many bytes: a btree entry holds at most 2,704 bytes (user_id, up to 1,024 bytes, is in
 * the same entries), and RFC 5322 lines end at 998. A longer Message-ID is stored as NULL and a
 * longer address gets no address row (both stay whole in the headers column). */
#define GS_CONTENT_MAX_INDEXED 998

/* A raw message or attachment larger than this goes to PostgreSQL a piece at a time (libpq
 * copies a parameter whole into its output buffer and keeps that buffer as large as the largest
 * value it sent): the first piece by its put, the others appended (GS_SQL_W_*_APPEND). */
#define GS_CONTENT_PIECE (4 * 1024 * 1024)

/* Everything the store sends for one message, built without the database: the values of
 * GS_SQL_W_MESSAGE_PUT, GS_SQL_W_MESSAGE_PARTS, GS_SQL_W_BLOB_PUT and GS_SQL_W_RAW_PUT but
 * the user, the sync's stamps and the raw bytes themselves. Every text is valid UTF-8 without
 * NUL; the JSON texts hold no "\u0000" (jsonb refuses it). Owned by the pool it was built in. */
typedef struct {
    const gs_mime_t *mime;        /* the parse (state, reason, and what blobs point into) */
    const char *id;               /* the message's Gmail id */
    const char *row;              /* GS_SQL_W_MESSAGE_PUT's row JSON (gs_content_row) */
    const char *addresses;        /* GS_SQL_W_MESSAGE_PARTS's JSON array: role, position,
                                   * name, address (normalised) */
    const char *attachments;      /* ...its JSON array: part_id, filename, mime_type, size,
                                   * content_id, disposition, is_inline, related, sha256, stored */
    const char *text, *html, *html_text;      /* the bodies (NULL when none) */
    const char *text_charset, *html_charset;  /* NULL when that body is NULL */
    apr_array_header_t *blobs;    /* const gs_mime_attachment_t *: the attachments whose bytes
                                   * go to attachment_blobs (stored = true), in part order */
} gs_content_t;

/* Parses `raw` (gs_mime, with the options' attachment bytes) and builds the values the store
 * sends for it; `row` is the message's gs_gmail_message_row. Never fails: a message gs_mime
 * cannot read gives content_state parse_error and its reason. Everything is owned by p. */
gs_content_t *gs_content_build(apr_pool_t *p, const gs_content_opts_t *opts, json_object *row,
                               const gs_gmail_raw_t *raw);

/* Stores the message `raw` whose Gmail fields are `row` (a gs_gmail_message_row object: id,
 * thread_id, history_id, internal_date, labels, snippet, size): gs_content_build, then its
 * statements. gen and seen_by are the full sync's stamps (NULL for incremental syncs). A
 * message gs_mime cannot read is stored raw with content_state parse_error and its reason:
 * never a failure of the sync. Returns what the statements returned (GS_EFAILED with the
 * failure set, GS_ELOST, GS_EMOVED). */
apr_status_t gs_content_store(gs_task_t *t, apr_pool_t *p, const gs_content_opts_t *opts,
                              const char *gen, const char *seen_by, json_object *row,
                              const gs_gmail_raw_t *raw, gs_content_result_t *result);

/* The messages row of a parsed message, as GS_SQL_W_MESSAGE_PUT reads it: `row`'s Gmail
 * fields, subject, from, to, cc, bcc and reply_to as written (decoded to UTF-8), the ids of
 * Message-ID (NULL over GS_CONTENT_MAX_INDEXED bytes), In-Reply-To and References, the Date
 * header (date_us, when it is a time PostgreSQL can hold), the content state and reason, every
 * header, the raw size and SHA-256. Owned by p. Exposed for the unit tests. */
json_object *gs_content_row(apr_pool_t *p, json_object *row, const gs_mime_t *mime,
                            const unsigned char raw_sha256[32], apr_size_t raw_size);

#endif /* GS_CONTENT_H */
