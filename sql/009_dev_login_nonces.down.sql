-- 009 down: forgets unused development login links (scripts/gmailsync-dev login-url makes new ones).
DROP TABLE IF EXISTS gmailsync.dev_login_nonces;
