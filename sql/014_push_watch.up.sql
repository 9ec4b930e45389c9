-- 014: Gmail watch renewal for push notifications (issue 26). Expand-only: new nullable
-- columns of accounts that the previous release never names (its INSERTs and UPDATEs list
-- their columns), so rolling the code back needs no schema change.
--
-- The daemon calls users.watch for every linked account while GmailSyncPushTopic is set and
-- renews each watch well before it lapses (a day before, or after 24 h; half the granted
-- lifetime when that is shorter).
--   watch_expires_at   the expiration Gmail answered (ms since the epoch, stored as a time)
--   watch_renewed_at   when that watch was granted
--   watch_history_id   the mailbox's historyId Gmail answered with the watch
--   watch_email        the address the watch was granted for: an account linked again to
--                      another address is watched again at once
--   watch_error        why the last attempt failed (NULL after a success)
--   watch_failures     consecutive failed attempts (the backoff's exponent)
--   watch_retry_at     no attempt before this time: the backoff after a failure, or the lease
--                      of a daemon whose attempt is under way (no two daemons watch one account)
ALTER TABLE gmailsync.accounts
    ADD COLUMN watch_expires_at timestamptz,
    ADD COLUMN watch_renewed_at timestamptz,
    ADD COLUMN watch_history_id numeric(20, 0),
    ADD COLUMN watch_email      text,
    ADD COLUMN watch_error      text CHECK (length(watch_error) <= 512),
    ADD COLUMN watch_failures   integer NOT NULL DEFAULT 0 CHECK (watch_failures >= 0),
    ADD COLUMN watch_retry_at   timestamptz;
