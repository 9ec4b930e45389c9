-- 003: which version ran what. Expand-only: one nullable column that the 0.1 code ignores (it
-- never names it), so rolling the code back to 0.1 needs no schema change.
--
-- The worker writes its own version (GS_VERSION of the gmailsync-worker binary) when it claims or
-- adopts the task; NULL for tasks claimed by code older than this migration, and for the few
-- milliseconds between the daemon's claim and the worker's adopt.
--
-- Contract rule for later releases: a column is dropped (contract) at the earliest one release
-- after the code stopped using it, never in the release that stops using it.
ALTER TABLE gmailsync.sync_tasks
    ADD COLUMN worker_version text CHECK (length(worker_version) <= 64);
