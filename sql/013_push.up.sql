-- 013: Gmail push notifications through Cloud Pub/Sub (issue 26). Expand-only: the previous
-- release never names the new column or table, and its inserts never write 'push', so rolling
-- the code back needs no schema change.
--
-- sync_tasks.trigger gains 'push': a task started by POST {prefix}/push, or the follow-up the
-- daemon starts for a push that arrived while a sync of the account was running.
ALTER TABLE gmailsync.sync_tasks DROP CONSTRAINT sync_tasks_trigger_check;
ALTER TABLE gmailsync.sync_tasks
    ADD CONSTRAINT sync_tasks_trigger_check CHECK (trigger IN ('user', 'schedule', 'push'));

-- accounts.push_pending_since: a push came while the account's sync was RUNNING (it may have
-- read Gmail's history before the change): the daemon starts one more sync once none is active
-- and clears it in the same transaction. Set again by pushes during that sync: never more than
-- one queued, never lost.
ALTER TABLE gmailsync.accounts ADD COLUMN push_pending_since timestamptz;
CREATE INDEX accounts_push_pending ON gmailsync.accounts (push_pending_since)
    WHERE push_pending_since IS NOT NULL;
-- a push names the mailbox by its address
CREATE INDEX accounts_email_lower ON gmailsync.accounts (lower(email));

-- Pub/Sub message ids already taken, kept for the lifetime of the token that carried them
-- (a replay of the same push within it is acknowledged and ignored); expired rows are removed
-- by the inserts.
CREATE TABLE gmailsync.push_messages (
    message_id  text        PRIMARY KEY CHECK (message_id <> '' AND length(message_id) <= 128),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX push_messages_expires_at ON gmailsync.push_messages (expires_at);
