-- 016 down: only 012's trigram index of every user's fields again.
DROP INDEX gmailsync.message_search_fields_user;
