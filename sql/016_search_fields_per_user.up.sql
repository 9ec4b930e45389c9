-- 016: the trigram index of the search fields, per user (issue 24). Expand-only: one index
-- added; the previous release runs on it unchanged.
--
-- from:, to:, cc:, subject: and filename: find their candidates through the trigrams of
-- fields_lc. Every search is one user's, but 012's index holds every user's trigrams: on a
-- million messages over 50 users, "from:peggy" looked up 44,890 rows to keep the user's 4,408,
-- and the planner ANDed them with the user's rows of a frequent word (96,342) to confirm 2,001
-- candidates: about 170 ms, where an index that starts with the user took 29 ms
-- (docs/performance.md). btree_gin (012) gives user_id its GIN operator class. The planner
-- prefers this index for every search; 012's (message_search_fields) is dropped by a later
-- release, once no release before this one runs.
--
-- The build locks writes to message_search while it runs (about 80 s per million messages on 2
-- cores): a sync that stores content waits for it, searches go on. An index of this name built
-- before with CREATE INDEX CONCURRENTLY (no write lock) is kept (docs/operations.md).
CREATE INDEX IF NOT EXISTS message_search_fields_user ON gmailsync.message_search
    USING gin (user_id, fields_lc gin_trgm_ops);
