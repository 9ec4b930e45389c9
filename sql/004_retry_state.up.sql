-- 004: what a worker that waits on Gmail is waiting for. Expand-only: three nullable columns that
-- the previous release ignores (it never names them), so rolling the code back needs no schema
-- change.
--
-- While a worker backs off after a rate limit (429, 403 rateLimitExceeded/userRateLimitExceeded)
-- or an unavailable Gmail (5xx, timeouts), it records why (`rate_limited` or `unavailable`), when
-- it asks again (database clock) and how many retries it made since the last successful answer;
-- the task JSON shows them as "retrying" while the task is RUNNING. The worker clears them with the
-- first successful answer and at the end of the task.
ALTER TABLE gmailsync.sync_tasks
    ADD COLUMN retry_reason text CHECK (length(retry_reason) <= 32),
    ADD COLUMN retry_until timestamptz,
    ADD COLUMN retry_attempt integer CHECK (retry_attempt >= 0);
