-- 005: the OAuth connect flow (issue 13). Expand-only: one new table that the previous release
-- never names, so rolling the code back needs no schema change.
--
-- One row per pending authorization (GET {prefix}/oauth/start): the SHA-256 of the state value
-- (the state itself is never stored), who asked for it (the user and the SHA-256 of the session
-- cookie, NULL with GmailSyncUserFrom remote-user), the PKCE code verifier sealed with the token
-- key (gs_tokenbox, context "code_verifier" + user id), and its expiry. The callback consumes
-- the row with DELETE ... RETURNING, so a state is used once; expired rows are removed by the
-- next start.
CREATE TABLE gmailsync.oauth_states (
    state_sha256    bytea       PRIMARY KEY CHECK (octet_length(state_sha256) = 32),
    user_id         text        NOT NULL CHECK (user_id <> '' AND length(user_id) <= 256),
    session_sha256  bytea       CHECK (octet_length(session_sha256) = 32),
    code_verifier   text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX oauth_states_expires_at ON gmailsync.oauth_states (expires_at);
