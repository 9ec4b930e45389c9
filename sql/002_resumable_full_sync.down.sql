-- 002 down: drops the resumable full sync bookkeeping (the synced data stays).
ALTER TABLE gmailsync.messages
    DROP COLUMN IF EXISTS seen_by,
    DROP COLUMN IF EXISTS fetched_in;

ALTER TABLE gmailsync.accounts
    DROP COLUMN IF EXISTS full_sync_started_at,
    DROP COLUMN IF EXISTS full_sync_history_id,
    DROP COLUMN IF EXISTS full_sync_task;
