/* gs_sql_mailbox.c -- the statements that read and index the owner's mail (issues 22 and 24:
 * the search's index and time box, the labels, the message view, the raw message, the
 * attachments); labels in gs_sql.h, found by gs_sql_find. The search's page query itself is
 * built per query shape by mod_gmailsync_search.c. */
#include <stddef.h>

#include "gs_sql.h"

#define RFC3339 GS_SQL_RFC3339

/* An attachment's number n (from 0) among its message's: in the order of the MIME tree, its part
 * ids compared number by number ("2" before "10", "1.2" before "2"), without a cast that a
 * malformed part id could make fail. t is the message_attachments row. */
#define GS_SQL_ATTACHMENT_N "(row_number() OVER (ORDER BY ARRAY(SELECT lpad(x.p, 10, '0')" \
    " FROM unnest(string_to_array(t.part_id, '.')) WITH ORDINALITY AS x(p, o) ORDER BY x.o)," \
    " t.part_id COLLATE \"C\") - 1)"

const gs_sql_stmt_t gs_sql_mailbox_statements[] = {
    { GS_SQL_W_SEARCH_REFRESH,
      "SELECT gmailsync.search_refresh(%s::regconfig, %s::text[], %s::text[])::text" },
    { GS_SQL_SEARCH_TIMEBOX,
      /* custom plans: how many messages a word matches decides the plan (walk the newest
       * first for a frequent word, the GIN index for a rare one), which a generic plan cannot
       * know; the statement stays prepared (parsed once per session) */
      "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', '0', true),"
      " set_config('plan_cache_mode', 'force_custom_plan', true),"
      /* and no parallel workers: a page of one user's mail is not worth starting them (about
       * 10 ms), nor taking the database's cores from other requests */
      " set_config('max_parallel_workers_per_gather', '0', true)" },
    { GS_SQL_LABELS_LIST,
      /* the messages not deleted (nor in the trash or spam, as the default search) per label */
      "SELECT COALESCE(json_agg(json_build_object('id', l.label_id, 'name', l.name,"
      " 'type', l.type, 'messages', (SELECT count(*) FROM gmailsync.messages m"
      "   WHERE m.user_id = l.user_id AND m.label_ids @> ARRAY[l.label_id]"
      "   AND m.deleted_at IS NULL))"
      " ORDER BY l.type, lower(l.name), l.label_id), '[]')::text"
      " FROM gmailsync.labels l WHERE l.user_id = %s" },
    { GS_SQL_MESSAGE_RAW_SIZE,
      /* octet_length of a TOASTed value reads its header only, not the (lz4) bytes */
      "SELECT octet_length(r.raw)::text FROM gmailsync.messages m"
      " LEFT JOIN gmailsync.message_raw r ON r.user_id = m.user_id AND r.gmail_id = m.gmail_id"
      " WHERE m.user_id = %s AND m.gmail_id = %s" },
    { GS_SQL_MESSAGE_RAW_SLICE,
      /* substring of a TOASTed bytea decompresses and reads only up to the slice's end;
       * encode(..., 'hex') whatever the session's bytea_output */
      "SELECT octet_length(raw)::text,"
      " encode(substring(raw FROM %s::integer + 1 FOR %s::integer), 'hex')"
      " FROM gmailsync.message_raw WHERE user_id = %s AND gmail_id = %s" },
    /* ---------------------------------------------------------------- the message view
     * (issue 24): one JSON document built here, so that every value is escaped by PostgreSQL
     * and the module sends it as it is. What a hostile message could make huge is cut, and the
     * document says what was ("truncated"): each body at the given number of characters, the
     * first 1,000 headers with each value cut at 16,384 characters, the subject likewise, the
     * first 1,000 addresses of each role, the first 1,000 attachments. */
    { GS_SQL_MESSAGE_VIEW,
      "WITH k AS (SELECT %s::integer AS body_max),"
      " m AS (SELECT user_id, gmail_id, thread_id, internal_date, date_header, label_ids,"
      "   subject, snippet, message_id, in_reply_to, from_addr, to_addr, cc_addr, bcc_addr,"
      "   reply_to_addr, headers, content_state, content_reason, raw_size, size_estimate,"
      "   deleted_at FROM gmailsync.messages WHERE user_id = %s AND gmail_id = %s),"
      " b AS (SELECT t.* FROM gmailsync.message_bodies t, m"
      "   WHERE t.user_id = m.user_id AND t.gmail_id = m.gmail_id),"
      " a AS (SELECT " GS_SQL_ATTACHMENT_N " AS n, t.*, t.stored AND EXISTS (SELECT 1"
      "     FROM gmailsync.attachment_blobs s WHERE s.user_id = t.user_id AND s.sha256 = t.sha256)"
      "     AS bytes_stored"
      "   FROM gmailsync.message_attachments t, m"
      "   WHERE t.user_id = m.user_id AND t.gmail_id = m.gmail_id)"
      " SELECT json_build_object('id', m.gmail_id, 'thread_id', m.thread_id,"
      " 'date', " RFC3339("m.internal_date") ", 'date_header', " RFC3339("m.date_header") ","
      " 'labels', ARRAY(SELECT COALESCE(CASE WHEN l.type = 'user' THEN l.name END, x.id)"
      "   FROM unnest(m.label_ids) WITH ORDINALITY AS x(id, o) LEFT JOIN gmailsync.labels l"
      "   ON l.user_id = m.user_id AND l.label_id = x.id ORDER BY x.o),"
      " 'label_ids', m.label_ids,"
      " 'unread', 'UNREAD' = ANY (m.label_ids), 'starred', 'STARRED' = ANY (m.label_ids),"
      " 'subject', left(m.subject, 16384), 'snippet', m.snippet,"
      " 'message_id', m.message_id, 'in_reply_to', m.in_reply_to,"
      " 'envelope', (SELECT json_object_agg(r.role, COALESCE((SELECT json_agg(json_build_object("
      "     'name', e.name, 'address', e.address) ORDER BY e.position)"
      "     FROM gmailsync.message_addresses e WHERE e.user_id = m.user_id"
      "     AND e.gmail_id = m.gmail_id AND e.role = r.role AND e.position < 1000), '[]'))"
      "   FROM unnest(ARRAY['from', 'to', 'cc', 'bcc', 'reply_to', 'sender']) AS r(role)),"
      " 'as_written', json_build_object('from', m.from_addr, 'to', m.to_addr, 'cc', m.cc_addr,"
      "   'bcc', m.bcc_addr, 'reply_to', m.reply_to_addr),"
      " 'headers', (SELECT json_agg(json_build_array(h.v ->> 0, left(h.v ->> 1, 16384))"
      "   ORDER BY h.o) FROM jsonb_array_elements(m.headers) WITH ORDINALITY AS h(v, o)"
      "   WHERE h.o <= 1000),"
      " 'content_state', m.content_state, 'content_reason', m.content_reason,"
      " 'size', COALESCE(m.raw_size, m.size_estimate),"
      " 'raw_stored', EXISTS (SELECT 1 FROM gmailsync.message_raw w"
      "   WHERE w.user_id = m.user_id AND w.gmail_id = m.gmail_id),"
      " 'deleted_at', " RFC3339("m.deleted_at") ","
      " 'text_body', (SELECT left(b.text_body, k.body_max) FROM b),"
      " 'text_length', (SELECT length(b.text_body) FROM b),"
      " 'text_charset', (SELECT b.text_charset FROM b),"
      " 'html_body', (SELECT left(b.html_body, k.body_max) FROM b),"
      " 'html_length', (SELECT length(b.html_body) FROM b),"
      " 'html_charset', (SELECT b.html_charset FROM b),"
      " 'attachments', (SELECT COALESCE(json_agg(json_build_object('n', a.n, 'part_id', a.part_id,"
      "   'filename', a.filename, 'mime_type', a.mime_type, 'size', a.size,"
      "   'content_id', a.content_id, 'disposition', a.disposition, 'inline', a.is_inline,"
      "   'related', a.related, 'sha256', encode(a.sha256, 'hex'), 'stored', a.bytes_stored)"
      "   ORDER BY a.n), '[]') FROM a WHERE a.n < 1000),"
      " 'truncated', json_build_object("
      "   'text', COALESCE((SELECT length(b.text_body) > k.body_max FROM b), false),"
      "   'html', COALESCE((SELECT length(b.html_body) > k.body_max FROM b), false),"
      "   'subject', COALESCE(length(m.subject) > 16384, false),"
      "   'headers', COALESCE(jsonb_array_length(m.headers) > 1000 OR EXISTS (SELECT 1"
      "     FROM jsonb_array_elements(m.headers) AS h(v) WHERE length(h.v ->> 1) > 16384), false),"
      "   'envelope', EXISTS (SELECT 1 FROM gmailsync.message_addresses e"
      "     WHERE e.user_id = m.user_id AND e.gmail_id = m.gmail_id AND e.position >= 1000),"
      "   'attachments', EXISTS (SELECT 1 FROM a WHERE a.n >= 1000)))::text"
      " FROM m, k" },
    { GS_SQL_ATTACHMENT_GET,
      "SELECT a.part_id, a.filename, a.mime_type, a.stored::text, encode(a.sha256, 'hex'),"
      " (SELECT octet_length(s.bytes)::text FROM gmailsync.attachment_blobs s"
      "   WHERE s.user_id = a.user_id AND s.sha256 = a.sha256)"
      " FROM gmailsync.messages m LEFT JOIN LATERAL (SELECT t.*, " GS_SQL_ATTACHMENT_N " AS n"
      "   FROM gmailsync.message_attachments t"
      "   WHERE t.user_id = m.user_id AND t.gmail_id = m.gmail_id) a ON a.n = %s::integer"
      " WHERE m.user_id = %s AND m.gmail_id = %s" },
    { GS_SQL_BLOB_SLICE,
      /* like GS_SQL_MESSAGE_RAW_SLICE: only the slice is decompressed and read */
      "SELECT octet_length(bytes)::text,"
      " encode(substring(bytes FROM %s::integer + 1 FOR %s::integer), 'hex')"
      " FROM gmailsync.attachment_blobs WHERE user_id = %s AND sha256 = decode(%s, 'hex')" },
    { NULL, NULL }
};
