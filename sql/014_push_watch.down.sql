-- 014 down: the watch columns of issue 26's renewal.
ALTER TABLE gmailsync.accounts
    DROP COLUMN watch_retry_at,
    DROP COLUMN watch_failures,
    DROP COLUMN watch_error,
    DROP COLUMN watch_email,
    DROP COLUMN watch_history_id,
    DROP COLUMN watch_renewed_at,
    DROP COLUMN watch_expires_at;
