-- 001: the gmailsync schema. Applied by scripts/gmailsync-migrate inside one transaction.
CREATE SCHEMA IF NOT EXISTS gmailsync;

CREATE TABLE gmailsync.schema_migrations (
    version     integer PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Sessions of the hosting web application, keyed by the SHA-256 of the cookie value so that a
-- database dump does not hand out live sessions.
CREATE TABLE gmailsync.sessions (
    token_sha256  bytea       PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    user_id       text        NOT NULL CHECK (user_id <> '' AND length(user_id) <= 256),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON gmailsync.sessions (expires_at);
CREATE INDEX sessions_user_id ON gmailsync.sessions (user_id);

-- One linked Gmail account per user: OAuth credentials and the incremental-sync cursor.
CREATE TABLE gmailsync.accounts (
    user_id                  text        PRIMARY KEY CHECK (user_id <> '' AND length(user_id) <= 256),
    email                    text        NOT NULL,
    refresh_token            text,
    access_token             text,
    access_token_expires_at  timestamptz,
    history_id               numeric(20,0) CHECK (history_id >= 0),
    last_full_sync_at        timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gmailsync.sync_tasks (
    task_id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              text        NOT NULL CHECK (user_id <> '' AND length(user_id) <= 256),
    state                text        NOT NULL DEFAULT 'CREATED'
                         CHECK (state IN ('CREATED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'STUCK')),
    force_full           boolean     NOT NULL DEFAULT false,
    mode                 text        CHECK (mode IN ('full', 'incremental')),
    processed            bigint      NOT NULL DEFAULT 0 CHECK (processed >= 0),
    total                bigint      CHECK (total >= 0),
    progress_percentage  numeric(5,2) NOT NULL DEFAULT 0
                         CHECK (progress_percentage >= 0 AND progress_percentage <= 100),
    error_code           text,
    error_message        text,
    lease                uuid,
    worker_host          text,
    worker_pid           integer,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    heartbeat_at         timestamptz,
    finished_at          timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- 100 % means done: no other state may claim it
    CONSTRAINT sync_tasks_full_only_when_succeeded
        CHECK (progress_percentage < 100 OR state = 'SUCCEEDED'),
    CONSTRAINT sync_tasks_terminal_has_finished_at
        CHECK ((state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')) = (finished_at IS NOT NULL)),
    CONSTRAINT sync_tasks_failed_has_error
        CHECK (state <> 'FAILED' OR error_code IS NOT NULL)
);

-- The guarantee behind idempotent start: at most one active task per user, whatever the callers,
-- hosts or locks do. Statements that rely on it must repeat this predicate exactly.
CREATE UNIQUE INDEX sync_tasks_one_active_per_user
    ON gmailsync.sync_tasks (user_id) WHERE state IN ('CREATED', 'RUNNING');
CREATE INDEX sync_tasks_user_created ON gmailsync.sync_tasks (user_id, created_at DESC);
CREATE INDEX sync_tasks_queue ON gmailsync.sync_tasks (created_at) WHERE state = 'CREATED';
CREATE INDEX sync_tasks_running_heartbeat ON gmailsync.sync_tasks (heartbeat_at) WHERE state = 'RUNNING';
CREATE INDEX sync_tasks_finished ON gmailsync.sync_tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE gmailsync.messages (
    user_id        text          NOT NULL,
    gmail_id       text          NOT NULL CHECK (gmail_id <> ''),
    thread_id      text,
    history_id     numeric(20,0),
    internal_date  timestamptz,
    label_ids      text[]        NOT NULL DEFAULT '{}',
    subject        text,
    from_addr      text,
    to_addr        text,
    snippet        text,
    size_estimate  bigint,
    synced_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, gmail_id)
);
CREATE INDEX messages_user_internal_date ON gmailsync.messages (user_id, internal_date DESC);

-- The seed's per-user status, derived from sync_tasks so the two can never disagree: the active
-- task if there is one, else the newest. Users with an account but no task show is_syncing=false.
CREATE VIEW gmailsync.user_sync_status AS
SELECT u.user_id,
       t.task_id,
       COALESCE(t.state IN ('CREATED', 'RUNNING'), false) AS is_syncing,
       COALESCE(t.progress_percentage, 0)                 AS progress_percentage,
       t.started_at,
       COALESCE(t.updated_at, a.updated_at)               AS updated_at,
       t.state
  FROM (SELECT user_id FROM gmailsync.accounts
        UNION
        SELECT DISTINCT user_id FROM gmailsync.sync_tasks) u
  LEFT JOIN gmailsync.accounts a ON a.user_id = u.user_id
  LEFT JOIN LATERAL (
        SELECT st.*
          FROM gmailsync.sync_tasks st
         WHERE st.user_id = u.user_id
         ORDER BY (st.state IN ('CREATED', 'RUNNING')) DESC, st.created_at DESC
         LIMIT 1) t ON true;
