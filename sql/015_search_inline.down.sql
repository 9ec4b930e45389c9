-- 015 down: the search vector's default storage again (rows keep where they are).
ALTER TABLE gmailsync.message_search ALTER COLUMN doc SET STORAGE EXTENDED;
