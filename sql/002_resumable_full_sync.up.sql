-- 002: resumable full syncs. Expand-only: new nullable columns that the 0.1 code ignores.
--
-- A full sync records the mailbox historyId before it lists anything (accounts.full_sync_*). If it
-- is interrupted, the next task continues that same full sync: it skips the messages already
-- fetched under it (messages.fetched_in = accounts.full_sync_task) instead of fetching them again,
-- and when it completes, the cursor becomes the historyId the FIRST attempt recorded, so the next
-- incremental sync replays every change since then (label changes of skipped rows included).
--
-- Removal rule: every message id a full sync lists is stamped with that task (messages.seen_by,
-- by the fetch or by the skip); when the full sync succeeds, the user's rows without that stamp
-- are deleted in the same transaction that marks the task SUCCEEDED and moves the cursor.
ALTER TABLE gmailsync.accounts
    ADD COLUMN full_sync_task        uuid,           -- task that began the pending full sync; NULL: none
    ADD COLUMN full_sync_history_id  numeric(20,0) CHECK (full_sync_history_id >= 0),
    ADD COLUMN full_sync_started_at  timestamptz;

ALTER TABLE gmailsync.messages
    ADD COLUMN fetched_in  uuid,   -- the full sync (its first task) that last fetched this row
    ADD COLUMN seen_by     uuid;   -- the last full-sync task whose listing included this id
