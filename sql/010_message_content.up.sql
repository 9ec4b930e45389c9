-- 010: the whole message (issue 22): what gs_mime reads from Gmail's format=raw. Expand-only:
-- nullable columns on messages and new tables the previous release never names, so rolling the
-- code back needs no schema change. The previous release keeps inserting, updating and
-- deleting messages as before: its rows simply have no content (content_state NULL), and the
-- content tables follow a deleted message (ON DELETE CASCADE).
--
-- content_state: NULL  never fetched with content (a row of the previous release, or of
--                      GmailSyncContent metadata before it was a state)
--                'metadata_only'  fetched on purpose without content (GmailSyncContent metadata)
--                'complete'       parsed; bodies, addresses, attachments and raw are stored
--                'parse_error'    the raw message is stored, content_reason says why; whatever
--                                 could be read is stored too
-- A sync with GmailSyncContent full fetches content for the rows whose state is NULL or
-- 'metadata_only' (the backfill) and never for 'complete' or 'parse_error' ones.
ALTER TABLE gmailsync.messages
    ADD COLUMN message_id       text,
    ADD COLUMN in_reply_to      text,
    ADD COLUMN reference_ids    text[],        -- the References header's ids, in order
    ADD COLUMN date_header      timestamptz,   -- the Date header (internal_date is Gmail's)
    ADD COLUMN cc_addr          text,          -- as written, like from_addr and to_addr
    ADD COLUMN bcc_addr         text,
    ADD COLUMN reply_to_addr    text,
    ADD COLUMN has_attachments  boolean,
    ADD COLUMN content_state    text
        CHECK (content_state IN ('complete', 'metadata_only', 'parse_error')),
    ADD COLUMN content_reason   text,
    ADD COLUMN content_synced_at timestamptz,
    -- every header of the message in order, duplicates kept, RFC 2047 decoded to UTF-8:
    -- [["Received", "from ..."], ["Subject", "..."], ...]
    ADD COLUMN headers          jsonb
        CHECK (headers IS NULL OR jsonb_typeof(headers) = 'array'),
    ADD COLUMN raw_sha256       bytea          CHECK (octet_length(raw_sha256) = 32),
    ADD COLUMN raw_size         bigint         CHECK (raw_size >= 0),
    ADD CONSTRAINT messages_content_reason
        CHECK (content_state IS DISTINCT FROM 'parse_error' OR content_reason IS NOT NULL);
CREATE INDEX messages_user_message_id ON gmailsync.messages (user_id, message_id)
    WHERE message_id IS NOT NULL;

-- Participants by role: "all mail from X" is one indexed query
-- (WHERE user_id = $1 AND address = lower($2) AND role = 'from').
CREATE TABLE gmailsync.message_addresses (
    user_id   text     NOT NULL,
    gmail_id  text     NOT NULL,
    role      text     NOT NULL CHECK (role IN ('from', 'to', 'cc', 'bcc', 'reply_to', 'sender')),
    position  integer  NOT NULL CHECK (position >= 0),
    name      text     NOT NULL DEFAULT '',
    address   text     NOT NULL,            -- normalised: trimmed, lower case
    PRIMARY KEY (user_id, gmail_id, role, position),
    FOREIGN KEY (user_id, gmail_id) REFERENCES gmailsync.messages (user_id, gmail_id)
        ON DELETE CASCADE
);
CREATE INDEX message_addresses_address ON gmailsync.message_addresses (user_id, address, role);

-- The bodies, decoded to UTF-8 with LF line ends: text/plain, text/html, and a text rendering
-- of the HTML for a message without text/plain (search, previews).
CREATE TABLE gmailsync.message_bodies (
    user_id       text  NOT NULL,
    gmail_id      text  NOT NULL,
    text_body     text,
    html_body     text,
    html_text     text,
    text_charset  text,     -- the charset the body was decoded from (declared or fallback)
    html_charset  text,
    PRIMARY KEY (user_id, gmail_id),
    FOREIGN KEY (user_id, gmail_id) REFERENCES gmailsync.messages (user_id, gmail_id)
        ON DELETE CASCADE
);

-- Each attachment of a message (inline images of the HTML included, related = true). Its bytes
-- are in attachment_blobs under (user_id, sha256) when stored is true: not stored when
-- GmailSyncAttachments metadata, or larger than GmailSyncAttachmentMaxSize.
CREATE TABLE gmailsync.message_attachments (
    user_id      text     NOT NULL,
    gmail_id     text     NOT NULL,
    part_id      text     NOT NULL CHECK (part_id <> ''),   -- IMAP section number: 2, 1.2.2
    filename     text,
    mime_type    text     NOT NULL,
    size         bigint   NOT NULL CHECK (size >= 0),       -- decoded bytes
    content_id   text,
    disposition  text     CHECK (disposition IN ('inline', 'attachment')),
    is_inline    boolean  NOT NULL,
    related      boolean  NOT NULL DEFAULT false,
    sha256       bytea    NOT NULL CHECK (octet_length(sha256) = 32),
    stored       boolean  NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, gmail_id, part_id),
    FOREIGN KEY (user_id, gmail_id) REFERENCES gmailsync.messages (user_id, gmail_id)
        ON DELETE CASCADE
);
CREATE INDEX message_attachments_sha256 ON gmailsync.message_attachments (user_id, sha256);

-- Attachment bytes, content-addressed per user: the same file in ten messages of one user is
-- stored once; never shared across users (no user can learn that another has a file). A blob
-- no message_attachments row names any more is garbage (gmailsync-cleanup removes it).
CREATE TABLE gmailsync.attachment_blobs (
    user_id     text         NOT NULL,
    sha256      bytea        NOT NULL CHECK (octet_length(sha256) = 32),
    size        bigint       NOT NULL CHECK (size >= 0),
    bytes       bytea        NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, sha256),
    CHECK (octet_length(bytes) = size)
);

-- The raw RFC 822 message as Gmail serves it (GmailSyncStoreRaw On): the .eml export.
CREATE TABLE gmailsync.message_raw (
    user_id   text   NOT NULL,
    gmail_id  text   NOT NULL,
    raw       bytea  NOT NULL,
    PRIMARY KEY (user_id, gmail_id),
    FOREIGN KEY (user_id, gmail_id) REFERENCES gmailsync.messages (user_id, gmail_id)
        ON DELETE CASCADE
);

-- lz4 rather than pglz for the large columns where the server has it (PostgreSQL 14+, built
-- with lz4 as Debian's is): several times faster to compress, a similar ratio on mail. An
-- older server or one without lz4 keeps pglz; nothing else depends on it.
DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 140000 THEN
        BEGIN
            ALTER TABLE gmailsync.message_raw ALTER COLUMN raw SET COMPRESSION lz4;
            ALTER TABLE gmailsync.attachment_blobs ALTER COLUMN bytes SET COMPRESSION lz4;
            ALTER TABLE gmailsync.message_bodies ALTER COLUMN text_body SET COMPRESSION lz4;
            ALTER TABLE gmailsync.message_bodies ALTER COLUMN html_body SET COMPRESSION lz4;
            ALTER TABLE gmailsync.message_bodies ALTER COLUMN html_text SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
            RAISE NOTICE 'lz4 column compression is not available: pglz is kept';
        END;
    END IF;
END
$$;
