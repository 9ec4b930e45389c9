-- 008: the parts in flight that Gmail's per-user concurrency limit let through (issue 15).
-- Expand-only: one nullable column that the previous release never names, so rolling the code
-- back needs no schema change.
--
-- After "Too many concurrent requests for user" the worker shrinks the batch parts it has in
-- flight at once (batch size x parallel batches) and grows them back slowly; the level it ends
-- at is stored here so that the account's next sync starts there instead of relearning it.
-- NULL: never limited (the worker starts at its configured maximum).
ALTER TABLE gmailsync.accounts
    ADD COLUMN gmail_parts_in_flight integer
        CHECK (gmail_parts_in_flight BETWEEN 1 AND 10000);
