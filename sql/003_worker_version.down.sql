-- 003 down: forgets which version ran each task (the tasks stay).
ALTER TABLE gmailsync.sync_tasks
    DROP COLUMN IF EXISTS worker_version;
