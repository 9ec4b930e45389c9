-- 012 down: forgets the search index (the mail itself is untouched).
DROP FUNCTION IF EXISTS gmailsync.search_refresh(regconfig, text[], text[]);
DROP TABLE IF EXISTS gmailsync.message_search;
DROP FUNCTION IF EXISTS gmailsync.search_cjk(text);
DROP FUNCTION IF EXISTS gmailsync.search_words(text);
DROP EXTENSION IF EXISTS btree_gin;
DROP EXTENSION IF EXISTS pg_trgm;
