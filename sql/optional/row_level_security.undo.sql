-- Undoes sql/optional/row_level_security.sql: its policies and row-level security on the tables
-- that have them, the views' security_invoker, and every grant to gmailsync_reader. Run it as
-- a superuser. The role itself is left (roles belong to the cluster, and members may hold it):
-- DROP ROLE gmailsync_reader once no database grants it anything.
SET client_min_messages = warning;

DO $$
DECLARE
    t text;
BEGIN
    IF to_regnamespace('gmailsync') IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gmailsync_reader') THEN
        RETURN;
    END IF;
    FOR t IN SELECT tablename FROM pg_policies
              WHERE schemaname = 'gmailsync' AND policyname = 'gmailsync_reader_own_rows'
    LOOP
        EXECUTE format('DROP POLICY gmailsync_reader_own_rows ON gmailsync.%I', t);
        EXECUTE format('ALTER TABLE gmailsync.%I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
    FOR t IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = 'gmailsync'::regnamespace AND c.relkind = 'v'
                AND c.reloptions @> ARRAY['security_invoker=true']
    LOOP
        EXECUTE format('ALTER VIEW gmailsync.%I RESET (security_invoker)', t);
    END LOOP;
    REVOKE ALL ON ALL TABLES IN SCHEMA gmailsync FROM gmailsync_reader;
    REVOKE ALL ON SCHEMA gmailsync FROM gmailsync_reader;
END
$$;
