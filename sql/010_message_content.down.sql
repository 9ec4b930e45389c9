-- 010 down: forgets the message content (bodies, addresses, attachments, raw); the envelope
-- columns of 001 stay. A later up finds every row with content_state NULL and backfills it.
DROP TABLE IF EXISTS gmailsync.message_raw;
DROP TABLE IF EXISTS gmailsync.attachment_blobs;
DROP TABLE IF EXISTS gmailsync.message_attachments;
DROP TABLE IF EXISTS gmailsync.message_bodies;
DROP TABLE IF EXISTS gmailsync.message_addresses;
DROP INDEX IF EXISTS gmailsync.messages_user_message_id;
ALTER TABLE gmailsync.messages
    DROP CONSTRAINT IF EXISTS messages_content_reason,
    DROP COLUMN IF EXISTS message_id,
    DROP COLUMN IF EXISTS in_reply_to,
    DROP COLUMN IF EXISTS reference_ids,
    DROP COLUMN IF EXISTS date_header,
    DROP COLUMN IF EXISTS cc_addr,
    DROP COLUMN IF EXISTS bcc_addr,
    DROP COLUMN IF EXISTS reply_to_addr,
    DROP COLUMN IF EXISTS has_attachments,
    DROP COLUMN IF EXISTS content_state,
    DROP COLUMN IF EXISTS content_reason,
    DROP COLUMN IF EXISTS content_synced_at,
    DROP COLUMN IF EXISTS headers,
    DROP COLUMN IF EXISTS raw_sha256,
    DROP COLUMN IF EXISTS raw_size;
