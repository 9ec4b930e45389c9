/* gs_content.c -- see gs_content.h */
#include <string.h>
#include <time.h>

#include <apr_strings.h>

#include "gs_content.h"
#include "gs_gmail_parse.h"
#include "gs_json.h"
#include "gs_log.h"
#include "gs_mem.h"
#include "gs_sha256.h"
#include "gs_sql.h"

/* Like the envelope columns of the metadata path: a header value longer than this is cut. */
#define MAX_HEADER_BYTES 4096
/* Attachments at least this large are looked up before their bytes are sent: the same file
 * in many messages crosses the wire once. */
#define BLOB_LOOKUP_BYTES (64 * 1024)
/* date_header: years 1000 to 9999 (a Date header outside is kept in headers only) */
#define DATE_MIN_SEC APR_INT64_C(-30610224000)
#define DATE_MAX_SEC APR_INT64_C(253402300799)

/* The first header of that name (case-insensitive), as gs_mime decoded it; NULL if absent. */
static const char *first_header(apr_pool_t *p, const gs_mime_t *m, const char *name)
{
    int i;

    for (i = 0; m->headers && i < m->headers->nelts; i++) {
        const gs_mime_header_t *h = &APR_ARRAY_IDX(m->headers, i, gs_mime_header_t);
        if (!strcasecmp(h->name, name)) {
            return gs_utf8_clean(p, h->value, MAX_HEADER_BYTES);
        }
    }
    return NULL;
}

json_object *gs_content_row(apr_pool_t *p, json_object *row, const gs_mime_t *m,
                            const unsigned char raw_sha256[32], apr_size_t raw_size)
{
    json_object *out = gs_json_own(p, json_object_new_object()), *refs, *headers;
    char hex[65];
    int i;

    /* Gmail's fields of the raw answer (shared, not copied: the row outlives this object) */
    json_object_object_foreach(row, key, value) {
        json_object_object_add(out, key, json_object_get(value));
    }
    gs_json_set_string(out, "subject", m->subject ? gs_utf8_clean(p, m->subject, MAX_HEADER_BYTES)
                                                  : NULL);
    gs_json_set_string(out, "from", first_header(p, m, "From"));
    gs_json_set_string(out, "to", first_header(p, m, "To"));
    gs_json_set_string(out, "cc", first_header(p, m, "Cc"));
    gs_json_set_string(out, "bcc", first_header(p, m, "Bcc"));
    gs_json_set_string(out, "reply_to", first_header(p, m, "Reply-To"));
    gs_json_set_string(out, "message_id", m->message_id
                       && strlen(m->message_id) <= GS_CONTENT_MAX_INDEXED ? m->message_id : NULL);
    gs_json_set_string(out, "in_reply_to", m->in_reply_to);
    refs = json_object_new_array();
    for (i = 0; m->references && i < m->references->nelts; i++) {
        json_object_array_add(refs, json_object_new_string(APR_ARRAY_IDX(m->references, i,
                                                                         const char *)));
    }
    gs_json_set_object(out, "reference_ids", refs);
    if (m->has_date && apr_time_sec(m->date) >= DATE_MIN_SEC
        && apr_time_sec(m->date) <= DATE_MAX_SEC) {
        gs_json_set_int(out, "date_us", (apr_int64_t)m->date);
    }
    else {
        gs_json_set_string(out, "date_us", NULL);
    }
    gs_json_set_bool(out, "has_attachments", m->has_attachments);
    gs_json_set_string(out, "content_state", gs_mime_state_name(m->state));
    gs_json_set_string(out, "content_reason", m->state == GS_MIME_COMPLETE ? NULL
                       : m->reason ? m->reason : "unreadable message");
    headers = json_object_new_array();
    for (i = 0; m->headers && i < m->headers->nelts; i++) {
        const gs_mime_header_t *h = &APR_ARRAY_IDX(m->headers, i, gs_mime_header_t);
        json_object *pair = json_object_new_array();
        json_object_array_add(pair, json_object_new_string(h->name));
        json_object_array_add(pair, json_object_new_string(h->value));
        json_object_array_add(headers, pair);
    }
    gs_json_set_object(out, "headers", headers);
    gs_sha256_hex(raw_sha256, hex);
    gs_json_set_string(out, "raw_sha256", hex);
    gs_json_set_int(out, "raw_size", (apr_int64_t)raw_size);
    return out;
}

static void add_addresses(json_object *arr, const char *role, const apr_array_header_t *list)
{
    int i;

    for (i = 0; list && i < list->nelts; i++) {
        const gs_mime_addr_t *a = &APR_ARRAY_IDX(list, i, gs_mime_addr_t);
        json_object *o;

        if (!a->normalized || !*a->normalized || strlen(a->normalized) > GS_CONTENT_MAX_INDEXED) {
            continue;   /* an empty group names nobody; a longer one cannot be indexed */
        }
        o = json_object_new_object();
        gs_json_set_string(o, "role", role);
        gs_json_set_int(o, "position", i);
        gs_json_set_string(o, "name", a->name ? a->name : "");
        gs_json_set_string(o, "address", a->normalized);
        json_object_array_add(arr, o);
    }
}

/* A bytea argument: the four values apr_dbd's pgsql driver takes for %pDb (bytes, length,
 * table, column), never NULL (a NULL would shift the values that follow). */
static void blob_args(apr_pool_t *p, const char **args, const void *bytes, apr_size_t len)
{
    args[0] = bytes && len ? (const char *)bytes : "";
    args[1] = apr_psprintf(p, "%" APR_SIZE_T_FMT, bytes ? len : 0);
    args[2] = "";
    args[3] = "";
}

/* One piece of a blob, bytes[0..len) at offset `off`: the first by the put (which inserts
 * nothing when the blob is stored already: *affected 0), the others appended. */
static apr_status_t blob_piece(gs_task_t *t, apr_pool_t *p, const gs_mime_attachment_t *a,
                               const void *bytes, apr_size_t len, apr_size_t off, int *affected)
{
    const char *args[7];

    if (off == 0) {
        args[0] = t->user_id;
        args[1] = a->sha256;
        args[2] = apr_psprintf(p, "%" APR_SIZE_T_FMT, len);
        blob_args(p, args + 3, bytes, len);
        return gs_task_exec(t, p, GS_SQL_W_BLOB_PUT, 0, affected, 7, args);
    }
    blob_args(p, args, bytes, len);
    args[4] = t->user_id;
    args[5] = a->sha256;
    args[6] = apr_psprintf(p, "%" APR_SIZE_T_FMT, off);
    return gs_task_exec(t, p, GS_SQL_W_BLOB_APPEND, 0, affected, 7, args);
}

/* An append that found no row to append to: the row the put began is not there (or has
 * another length), which this transaction rules out. */
static apr_status_t piece_lost(gs_task_t *t, apr_pool_t *p, const char *what, const char *id,
                               apr_size_t off)
{
    gs_log_error(GS_LOG_ERR, p, "event=content.piece_lost task=%s %s=%s offset=%"
                 APR_SIZE_T_FMT, t->task_id, what, id, off);
    return APR_EGENERAL;
}

/* An attachment's bytes, GS_CONTENT_PIECE at a time: from its decoded bytes, or read again
 * from the message (a source: never whole in memory, one piece at a time). */
static apr_status_t put_blob_bytes(gs_task_t *t, apr_pool_t *p, const gs_mime_attachment_t *a)
{
    apr_size_t off = 0, n;
    int affected = 0;
    apr_status_t rv;

    if (!a->source) {
        do {
            n = a->size - off < GS_CONTENT_PIECE ? a->size - off : GS_CONTENT_PIECE;
            if ((rv = blob_piece(t, p, a, a->bytes ? a->bytes + off : NULL, n, off, &affected))
                != APR_SUCCESS) {
                return rv;
            }
            if (!affected) {
                return off == 0 ? APR_SUCCESS : piece_lost(t, p, "sha256", a->sha256, off);
            }
            off += n;
        } while (off < a->size);
        return APR_SUCCESS;
    }
    {
        apr_pool_t *rp, *pp;
        gs_mime_reader_t *r;
        char *buf;

        if ((rv = apr_pool_create(&rp, p)) != APR_SUCCESS) {
            return rv;
        }
        if ((rv = apr_pool_create(&pp, rp)) != APR_SUCCESS) {
            apr_pool_destroy(rp);
            return rv;
        }
        buf = apr_palloc(rp, GS_CONTENT_PIECE);
        (void)gs_mem_huge(buf, GS_CONTENT_PIECE);   /* advice only */
        rv = gs_mime_reader_open(&r, rp, a->source);
        while (rv == APR_SUCCESS) {
            n = GS_CONTENT_PIECE;
            if ((rv = gs_mime_reader_read(r, buf, &n)) != APR_SUCCESS || n == 0) {
                break;
            }
            if (off + n > a->size) {
                rv = APR_EGENERAL;   /* GMime decoded more than it did when hashing */
                break;
            }
            if ((rv = blob_piece(t, pp, a, buf, n, off, &affected)) != APR_SUCCESS) {
                break;
            }
            apr_pool_clear(pp);
            if (!affected) {
                rv = off == 0 ? APR_SUCCESS : piece_lost(t, p, "sha256", a->sha256, off);
                off = a->size;
                break;
            }
            off += n;
            if (off == a->size) {
                break;
            }
        }
        apr_pool_destroy(rp);
        if (rv == APR_SUCCESS && off != a->size) {
            rv = APR_EGENERAL;       /* ... or less */
        }
        return rv;
    }
}

static apr_status_t put_blob(gs_task_t *t, apr_pool_t *p, const gs_mime_attachment_t *a,
                             gs_content_result_t *result)
{
    const char *known[2] = { t->user_id, a->sha256 };
    gs_db_rows_t *rows;
    apr_status_t rv;

    if (a->size >= BLOB_LOOKUP_BYTES) {
        if ((rv = gs_task_select(t, p, GS_SQL_W_BLOB_KNOWN, &rows, 2, known)) != APR_SUCCESS) {
            return rv;
        }
        if (rows->nrows > 0) {
            result->blobs_known++;
            return APR_SUCCESS;
        }
    }
    if ((rv = put_blob_bytes(t, p, a)) == APR_SUCCESS) {
        result->blobs_stored++;
    }
    return rv;
}

gs_content_t *gs_content_build(apr_pool_t *p, const gs_content_opts_t *o, json_object *row,
                               const gs_gmail_raw_t *raw)
{
    gs_content_t *c = apr_pcalloc(p, sizeof *c);
    unsigned char digest[GS_SHA256_DIGEST_LEN];
    json_object *addrs = gs_json_own(p, json_object_new_array());
    json_object *atts = gs_json_own(p, json_object_new_array());
    gs_mime_opts_t mo;
    const gs_mime_t *m;
    int i;

    memset(&mo, 0, sizeof mo);
    /* GmailSyncAttachmentMaxSize 0 keeps no bytes (gs_mime reads 0 as "no limit") */
    mo.want_bytes = o->attachments == GS_ATTACH_STORE && o->attachment_max_size > 0;
    mo.max_attachment_bytes = (apr_size_t)o->attachment_max_size;
    c->mime = m = gs_mime_parse(p, raw->bytes, raw->len, &mo);
    c->id = json_object_get_string(json_object_object_get(row, "id"));
    gs_sha256(raw->bytes, raw->len, digest);
    c->row = gs_json_to_string(p, gs_content_row(p, row, m, digest, raw->len));

    add_addresses(addrs, "from", m->from);
    add_addresses(addrs, "to", m->to);
    add_addresses(addrs, "cc", m->cc);
    add_addresses(addrs, "bcc", m->bcc);
    add_addresses(addrs, "reply_to", m->reply_to);
    add_addresses(addrs, "sender", m->sender);
    c->addresses = gs_json_to_string(p, addrs);
    c->blobs = apr_array_make(p, m->attachments->nelts, sizeof(const gs_mime_attachment_t *));
    for (i = 0; i < m->attachments->nelts; i++) {
        const gs_mime_attachment_t *a = &APR_ARRAY_IDX(m->attachments, i, gs_mime_attachment_t);
        /* within the size (an empty attachment too: its blob is empty) */
        int stored = o->attachments == GS_ATTACH_STORE && o->attachment_max_size > 0
                     && (apr_int64_t)a->size <= o->attachment_max_size
                     && (a->bytes != NULL || a->source != NULL || a->size == 0);
        json_object *j = json_object_new_object();

        json_object_array_add(atts, j);   /* owned by atts (the pool) from here on */
        gs_json_set_string(j, "part_id", a->part_id);
        gs_json_set_string(j, "filename", a->filename);
        gs_json_set_string(j, "mime_type", a->mime_type ? a->mime_type
                                                        : "application/octet-stream");
        gs_json_set_int(j, "size", (apr_int64_t)a->size);
        gs_json_set_string(j, "content_id", a->content_id);
        gs_json_set_string(j, "disposition", a->disposition);
        gs_json_set_bool(j, "is_inline", a->is_inline);
        gs_json_set_bool(j, "related", a->related);
        gs_json_set_string(j, "sha256", a->sha256);
        gs_json_set_bool(j, "stored", stored);
        if (stored) {
            APR_ARRAY_PUSH(c->blobs, const gs_mime_attachment_t *) = a;
        }
    }
    c->attachments = gs_json_to_string(p, atts);
    c->text = m->text;
    c->html = m->html;
    c->html_text = m->html_text;
    c->text_charset = m->text ? m->text_charset : NULL;
    c->html_charset = m->html ? m->html_charset : NULL;
    return c;
}

static apr_status_t store_built(gs_task_t *t, apr_pool_t *p, const gs_content_opts_t *o,
                                const char *gen, const char *seen_by, const gs_gmail_raw_t *raw,
                                const gs_content_t *c, gs_content_result_t *result)
{
    const char *put[4], *parts[9], *rawargs[7];
    apr_size_t off = 0;
    apr_status_t rv;
    int i;

    put[0] = c->row;
    put[1] = t->user_id;
    put[2] = gen;
    put[3] = seen_by;
    if ((rv = gs_task_exec(t, p, GS_SQL_W_MESSAGE_PUT, 1, NULL, 4, put)) != APR_SUCCESS) {
        return rv;
    }
    /* the blobs before the attachment rows that name them, in the same transaction: see
     * GS_SQL_W_BLOB_PUT for the lock that keeps gmailsync-cleanup from removing them */
    for (i = 0; i < c->blobs->nelts; i++) {
        if ((rv = put_blob(t, p, APR_ARRAY_IDX(c->blobs, i, const gs_mime_attachment_t *),
                           result)) != APR_SUCCESS) {
            return rv;
        }
    }
    parts[0] = t->user_id;
    parts[1] = c->id;
    parts[2] = c->addresses;
    parts[3] = c->attachments;
    parts[4] = c->text;
    parts[5] = c->html;
    parts[6] = c->html_text;
    parts[7] = c->text_charset;
    parts[8] = c->html_charset;
    if ((rv = gs_task_exec(t, p, GS_SQL_W_MESSAGE_PARTS, 0, NULL, 9, parts)) != APR_SUCCESS) {
        return rv;
    }
    if (!o->store_raw) {
        return APR_SUCCESS;
    }
    /* GS_CONTENT_PIECE at a time: the first piece by the put, the others appended */
    do {
        apr_size_t n = raw->len - off < GS_CONTENT_PIECE ? raw->len - off : GS_CONTENT_PIECE;
        int affected = 0;

        if (off == 0) {
            rawargs[0] = t->user_id;
            rawargs[1] = c->id;
            blob_args(p, rawargs + 2, raw->bytes, n);
            rv = gs_task_exec(t, p, GS_SQL_W_RAW_PUT, 0, NULL, 6, rawargs);
        }
        else {
            blob_args(p, rawargs, raw->bytes + off, n);
            rawargs[4] = t->user_id;
            rawargs[5] = c->id;
            rawargs[6] = apr_psprintf(p, "%" APR_SIZE_T_FMT, off);
            if ((rv = gs_task_exec(t, p, GS_SQL_W_RAW_APPEND, 0, &affected, 7, rawargs))
                == APR_SUCCESS && affected != 1) {
                rv = piece_lost(t, p, "id", c->id, off);
            }
        }
        off += n;
    } while (rv == APR_SUCCESS && off < raw->len);
    return rv;
}

/* This thread's CPU time in microseconds (0 when the clock is not there). */
static apr_int64_t thread_cpu_us(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return 0;
    }
    return (apr_int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

apr_status_t gs_content_store(gs_task_t *t, apr_pool_t *p, const gs_content_opts_t *opts,
                              const char *gen, const char *seen_by, json_object *row,
                              const gs_gmail_raw_t *raw, gs_content_result_t *result)
{
    apr_int64_t cpu0 = thread_cpu_us(), cpu;
    apr_time_t wall0 = apr_time_now(), wall;
    const gs_content_t *c;
    apr_pool_t *mp;
    apr_status_t rv;

    if ((rv = apr_pool_create(&mp, p)) != APR_SUCCESS) {
        return rv;
    }
    apr_pool_tag(mp, "gs_content_message");
    c = gs_content_build(mp, opts, row, raw);
    if (c->mime->state != GS_MIME_COMPLETE) {
        result->parse_error++;
    }
    rv = store_built(t, mp, opts, gen, seen_by, raw, c, result);
    cpu = thread_cpu_us() - cpu0;
    wall = apr_time_now() - wall0;
    if (gs_log_is_level(GS_LOG_DEBUG)) {
        gs_log_error(GS_LOG_DEBUG, mp, "event=content.stored task=%s id=%s raw_bytes=%"
                     APR_SIZE_T_FMT " state=%s cpu_us=%" APR_INT64_T_FMT " wall_us=%"
                     APR_INT64_T_FMT, t->task_id, c->id, raw->len,
                     gs_mime_state_name(c->mime->state), cpu, (apr_int64_t)wall);
    }
    if (cpu >= result->cpu_max_us) {
        result->cpu_max_us = cpu;
        result->cpu_max_id = json_object_get_string(json_object_object_get(row, "id"));
    }
    if (wall > result->wall_max_us) {
        result->wall_max_us = wall;
    }
    apr_pool_destroy(mp);
    return rv;
}
