-- 004 down: forgets the retry state of running tasks (the tasks stay).
ALTER TABLE gmailsync.sync_tasks
    DROP COLUMN IF EXISTS retry_attempt,
    DROP COLUMN IF EXISTS retry_until,
    DROP COLUMN IF EXISTS retry_reason;
