-- 006 down: forgets which key each token is under (the tokens stay as they are: sealed values
-- remain sealed; `gmailsync-rotate-key --unseal` writes plaintext back for a release before 006).
DROP INDEX IF EXISTS gmailsync.accounts_refresh_token_key;
ALTER TABLE gmailsync.accounts
    DROP COLUMN IF EXISTS refresh_token_key,
    DROP COLUMN IF EXISTS access_token_key;
COMMENT ON COLUMN gmailsync.accounts.refresh_token IS NULL;
COMMENT ON COLUMN gmailsync.accounts.access_token IS NULL;
