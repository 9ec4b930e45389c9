-- 001 down: removes the whole gmailsync schema, data included.
DROP VIEW IF EXISTS gmailsync.user_sync_status;
DROP TABLE IF EXISTS gmailsync.messages;
DROP TABLE IF EXISTS gmailsync.sync_tasks;
DROP TABLE IF EXISTS gmailsync.accounts;
DROP TABLE IF EXISTS gmailsync.sessions;
DROP TABLE IF EXISTS gmailsync.schema_migrations;
DROP SCHEMA IF EXISTS gmailsync;
