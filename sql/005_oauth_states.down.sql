-- 005 down: forgets pending authorizations (a connect in progress must be started again).
DROP TABLE IF EXISTS gmailsync.oauth_states;
