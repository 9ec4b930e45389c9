-- 008 down: forgets the learnt concurrency levels (the next syncs relearn them).
ALTER TABLE gmailsync.accounts
    DROP COLUMN IF EXISTS gmail_parts_in_flight;
