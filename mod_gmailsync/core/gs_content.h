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
} gs_content_result_t;

/* Stores the message `raw` whose Gmail fields are `row` (a gs_gmail_message_row object: id,
 * thread_id, history_id, internal_date, labels, snippet, size). gen and seen_by are the full
 * sync's stamps (NULL for incremental syncs). A message gs_mime cannot read is stored raw with
 * content_state parse_error and its reason: never a failure of the sync. Returns what the
 * statements returned (GS_EFAILED with the failure set, GS_ELOST, GS_EMOVED). */
apr_status_t gs_content_store(gs_task_t *t, apr_pool_t *p, const gs_content_opts_t *opts,
                              const char *gen, const char *seen_by, json_object *row,
                              const gs_gmail_raw_t *raw, gs_content_result_t *result);

/* The messages row of a parsed message, as GS_SQL_W_MESSAGE_PUT reads it: `row`'s Gmail
 * fields, subject, from, to, cc, bcc and reply_to as written (decoded to UTF-8), the ids of
 * Message-ID, In-Reply-To and References, the Date header (date_us, when it is a time
 * PostgreSQL can hold), the content state and reason, every header, the raw size and SHA-256.
 * Owned by p. Exposed for the unit tests. */
json_object *gs_content_row(apr_pool_t *p, json_object *row, const gs_mime_t *mime,
                            const unsigned char raw_sha256[32], apr_size_t raw_size);

#endif /* GS_CONTENT_H */
