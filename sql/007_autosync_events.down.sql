-- 007 down: no more notifications; forgets who started each task (the tasks stay).
DROP TRIGGER IF EXISTS sync_tasks_notify_state ON gmailsync.sync_tasks;
DROP TRIGGER IF EXISTS sync_tasks_notify_insert ON gmailsync.sync_tasks;
DROP FUNCTION IF EXISTS gmailsync.sync_tasks_notify();
ALTER TABLE gmailsync.sync_tasks DROP COLUMN IF EXISTS trigger;
