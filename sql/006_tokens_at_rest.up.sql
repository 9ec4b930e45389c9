-- 006: OAuth tokens encrypted at rest (issue 13). Expand-only: two generated columns that the
-- 0.1 code never names, so rolling the code back needs no schema change.
--
-- refresh_token and access_token keep their names and type; from this release on they hold
-- sealed values, "gs1:<key id>:<base64 of nonce | ciphertext | tag>" (AES-256-GCM under a key
-- of GmailSyncTokenKeyFile, which the database never sees). Rows written before hold plaintext
-- until `gmailsync-rotate-key --key-file FILE` seals them: SQL cannot, it has no key. The new
-- worker refuses a plaintext row (token_undecryptable); a 0.1 worker sends a sealed value to
-- the token endpoint as it is, which answers invalid_grant (auth_revoked) and changes nothing.
--
-- The generated columns name the key each value is under ('plaintext' for an unsealed one,
-- NULL for none), so that an operator sees without a key what a rotation left behind:
--   SELECT refresh_token_key, access_token_key, count(*) FROM gmailsync.accounts GROUP BY 1, 2;
-- Contract (a later release, one after nothing writes plaintext): a CHECK that every value is
-- sealed.
ALTER TABLE gmailsync.accounts
    ADD COLUMN refresh_token_key text GENERATED ALWAYS AS (
        CASE WHEN refresh_token IS NULL THEN NULL
             WHEN refresh_token ~ '^gs1:[0-9a-f]{8}:' THEN substr(refresh_token, 5, 8)
             ELSE 'plaintext' END) STORED,
    ADD COLUMN access_token_key text GENERATED ALWAYS AS (
        CASE WHEN access_token IS NULL THEN NULL
             WHEN access_token ~ '^gs1:[0-9a-f]{8}:' THEN substr(access_token, 5, 8)
             ELSE 'plaintext' END) STORED;
CREATE INDEX accounts_refresh_token_key ON gmailsync.accounts (refresh_token_key);
COMMENT ON COLUMN gmailsync.accounts.refresh_token IS
    'sealed: gs1:<key id>:<base64> (AES-256-GCM, GmailSyncTokenKeyFile); plaintext until gmailsync-rotate-key';
COMMENT ON COLUMN gmailsync.accounts.access_token IS
    'sealed like refresh_token; a cache the worker rewrites';
