-- Optional row-level security for a hosting application that reads the synced mail with a
-- database role of its own (issue 24; docs/contract.md "Row-level security"). Not a numbered
-- migration: gmailsync-migrate never applies it. Run it as a superuser, after the migrations:
--
--   psql -v ON_ERROR_STOP=1 -d gmailsync -f sql/optional/row_level_security.sql
--   GRANT gmailsync_reader TO webapp;          -- the application's login role
--
-- and, in the application, per request or transaction:
--
--   SELECT set_config('gmailsync.user_id', 'the-user-id', true);   -- true: this transaction
--
-- The role gmailsync_reader (NOLOGIN; its members inherit it) may SELECT the mail tables and
-- views below, and sees only the rows whose user_id is that setting: another user's rows, and
-- every row while the setting is unset or empty, are invisible. It may read nothing else of the
-- schema (sessions, accounts, sync_tasks: permission denied). The module's own role owns the
-- tables, and row-level security does not apply to a table's owner (no FORCE ROW LEVEL
-- SECURITY here), so the module, its daemon and its workers work as before; a deployment whose
-- module role does not own the tables gives it BYPASSRLS.
--
-- The setting isolates the application's requests from each other; it does not protect the
-- data from the application, which chooses the user id it sets.
--
-- Run it again at will (and after migrations that add a table to the list: a table not yet
-- created is skipped). sql/optional/row_level_security.undo.sql removes it all; run that before
-- migrating down past 011, or not at all: the down files drop the tables with their policies.
SET client_min_messages = warning;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gmailsync_reader') THEN
        CREATE ROLE gmailsync_reader NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA gmailsync TO gmailsync_reader;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['messages', 'message_addresses', 'message_bodies',
                             'message_attachments', 'attachment_blobs', 'message_raw', 'labels',
                             'threads', 'changes', 'change_seq', 'message_search']
    LOOP
        CONTINUE WHEN to_regclass(format('gmailsync.%I', t)) IS NULL;
        EXECUTE format('ALTER TABLE gmailsync.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS gmailsync_reader_own_rows ON gmailsync.%I', t);
        -- NULLIF: a setting SET LOCAL left behind reads '' after its transaction
        EXECUTE format('CREATE POLICY gmailsync_reader_own_rows ON gmailsync.%I FOR SELECT'
                       ' TO gmailsync_reader'
                       ' USING (user_id = NULLIF(current_setting(''gmailsync.user_id'', true), ''''))',
                       t);
        EXECUTE format('GRANT SELECT ON gmailsync.%I TO gmailsync_reader', t);
    END LOOP;
    -- A view reads its tables with its owner's rights, past row-level security, unless it is a
    -- security_invoker view (PostgreSQL 15): only then may the role read it. On an older server
    -- the views stay closed to it.
    IF current_setting('server_version_num')::integer >= 150000 THEN
        FOREACH t IN ARRAY ARRAY['mailbox', 'message_labels', 'label_counts', 'deleted_messages']
        LOOP
            CONTINUE WHEN to_regclass(format('gmailsync.%I', t)) IS NULL;
            EXECUTE format('ALTER VIEW gmailsync.%I SET (security_invoker = true)', t);
            EXECUTE format('GRANT SELECT ON gmailsync.%I TO gmailsync_reader', t);
        END LOOP;
    END IF;
END
$$;
