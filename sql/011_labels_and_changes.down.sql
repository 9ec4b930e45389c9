-- 011 down: forgets label names, threads, archive mode and the change feed. Rows kept by
-- GmailSyncDeletions keep (deleted in Gmail) are removed, after the triggers: without
-- deleted_at they would look like mail the user still has.
DROP TRIGGER IF EXISTS messages_changes_insert ON gmailsync.messages;
DROP TRIGGER IF EXISTS messages_changes_update ON gmailsync.messages;
DROP TRIGGER IF EXISTS messages_changes_delete ON gmailsync.messages;
DROP FUNCTION IF EXISTS gmailsync.changes_on_rows();
DROP FUNCTION IF EXISTS gmailsync.changes_on_update();
DROP FUNCTION IF EXISTS gmailsync.changes_record(gmailsync.change[]);
DROP TYPE IF EXISTS gmailsync.change;
DROP FUNCTION IF EXISTS gmailsync.threads_refresh(text[], text[]);
DROP AGGREGATE IF EXISTS gmailsync.label_union(text[]);
DROP TABLE IF EXISTS gmailsync.threads;
DROP INDEX IF EXISTS gmailsync.messages_user_thread;
DROP TABLE IF EXISTS gmailsync.changes;
DROP TABLE IF EXISTS gmailsync.change_seq;
DROP VIEW IF EXISTS gmailsync.label_counts;
DROP VIEW IF EXISTS gmailsync.message_labels;
DROP VIEW IF EXISTS gmailsync.deleted_messages;
DROP VIEW IF EXISTS gmailsync.mailbox;
DROP INDEX IF EXISTS gmailsync.messages_label_ids;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'gmailsync'
                  AND table_name = 'messages' AND column_name = 'deleted_at') THEN
        DELETE FROM gmailsync.messages WHERE deleted_at IS NOT NULL;
    END IF;
END
$$;
ALTER TABLE gmailsync.messages DROP COLUMN IF EXISTS deleted_at;
DROP TABLE IF EXISTS gmailsync.labels;
