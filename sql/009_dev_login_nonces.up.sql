-- 009: the development login's one-time nonces (issue 21). Expand-only: one new table that the
-- previous release never names, so rolling the code back needs no schema change.
--
-- `scripts/gmailsync-dev login-url` writes one row per login link: the SHA-256 of the nonce
-- (the nonce itself is never stored), the SHA-256 of the session it signs in as (that session
-- must still be unexpired when the link is used), and an expiry two minutes out. GET
-- {prefix}/dev-login?nonce=... (GmailSyncDevLogin On, loopback only) consumes the row with
-- DELETE ... RETURNING, so a link works once, and sets the cookie of a new session of the same
-- user and expiry: no URL ever carries a session. Production servers never write or read it.
CREATE TABLE gmailsync.dev_login_nonces (
    nonce_sha256    bytea       PRIMARY KEY CHECK (octet_length(nonce_sha256) = 32),
    session_sha256  bytea       NOT NULL CHECK (octet_length(session_sha256) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX dev_login_nonces_expires_at ON gmailsync.dev_login_nonces (expires_at);
