-- 013 down: push notifications (issue 26). Tasks started by a push are recorded as 'user'.
DROP TABLE gmailsync.push_messages;
DROP INDEX gmailsync.accounts_email_lower;
DROP INDEX gmailsync.accounts_push_pending;
ALTER TABLE gmailsync.accounts DROP COLUMN push_pending_since;
ALTER TABLE gmailsync.sync_tasks DROP CONSTRAINT sync_tasks_trigger_check;
UPDATE gmailsync.sync_tasks SET trigger = 'user' WHERE trigger = 'push';
ALTER TABLE gmailsync.sync_tasks
    ADD CONSTRAINT sync_tasks_trigger_check CHECK (trigger IN ('user', 'schedule'));
