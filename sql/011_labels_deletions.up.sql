-- 011: labels with their names, and archive mode for deletions (issue 23). Expand-only: a new
-- table, a nullable column and views the previous release never names. The previous release
-- keeps deleting messages that Gmail deleted (it knows no archive mode) and never writes labels;
-- its rows have deleted_at NULL, which is what they are.

-- users.labels.list as Gmail gave it at the user's last sync: a rename shows after the next
-- sync; a label deleted in Gmail goes (Gmail also takes it off its messages, and the sync
-- applies that like any other label change). Messages keep label ids (Gmail's are stable across
-- renames); names come from here through the views below.
CREATE TABLE gmailsync.labels (
    user_id                  text         NOT NULL,
    label_id                 text         NOT NULL CHECK (label_id <> ''),
    name                     text         NOT NULL,
    type                     text         NOT NULL CHECK (type IN ('system', 'user')),
    text_color               text,        -- "#rrggbb", user labels with a colour only
    background_color         text,
    message_list_visibility  text,        -- show | hide
    label_list_visibility    text,        -- labelShow | labelShowIfUnread | labelHide
    synced_at                timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, label_id)
);

-- GmailSyncDeletions keep (archive mode): a message deleted in Gmail keeps its rows and gets
-- deleted_at; GmailSyncDeletions delete (the default) removes the rows as before. TRASH and
-- SPAM are labels, never deletions.
ALTER TABLE gmailsync.messages ADD COLUMN deleted_at timestamptz;

-- "every message with label X" (label_ids @> ARRAY['X']) without reading the user's mailbox
CREATE INDEX messages_label_ids ON gmailsync.messages USING gin (label_ids);

-- The mailbox as Gmail shows it: the messages not deleted, each with its label names in the
-- order of label_ids (an id no labels row names yet, before the user's first sync of this
-- release, shows as the id itself).
CREATE VIEW gmailsync.mailbox AS
SELECT m.user_id, m.gmail_id, m.thread_id, m.history_id, m.internal_date, m.label_ids,
       ARRAY(SELECT COALESCE(l.name, x.id)
               FROM unnest(m.label_ids) WITH ORDINALITY AS x(id, n)
               LEFT JOIN gmailsync.labels l ON l.user_id = m.user_id AND l.label_id = x.id
              ORDER BY x.n) AS label_names,
       m.subject, m.from_addr, m.to_addr, m.cc_addr, m.snippet, m.size_estimate,
       m.message_id, m.in_reply_to, m.date_header, m.has_attachments, m.content_state,
       m.synced_at
  FROM gmailsync.messages m
 WHERE m.deleted_at IS NULL;

-- Archive mode's other half: what Gmail deleted and GmailSyncDeletions keep kept.
CREATE VIEW gmailsync.deleted_messages AS
SELECT m.user_id, m.gmail_id, m.thread_id, m.internal_date, m.label_ids, m.subject,
       m.from_addr, m.snippet, m.deleted_at
  FROM gmailsync.messages m
 WHERE m.deleted_at IS NOT NULL;

-- One row per (message, label), names and types joined: "which labels does this message
-- have", "every message labelled Travel" by name.
CREATE VIEW gmailsync.message_labels AS
SELECT m.user_id, m.gmail_id, x.id AS label_id, l.name, l.type
  FROM gmailsync.messages m
 CROSS JOIN LATERAL unnest(m.label_ids) AS x(id)
  LEFT JOIN gmailsync.labels l ON l.user_id = m.user_id AND l.label_id = x.id
 WHERE m.deleted_at IS NULL;

-- Each label with the counts of the synced mail (Gmail's own counts cost a labels.get each):
-- messages and threads, and of those the unread ones, deleted messages left out.
CREATE VIEW gmailsync.label_counts AS
SELECT l.user_id, l.label_id, l.name, l.type,
       c.messages_total, c.messages_unread, c.threads_total, c.threads_unread
  FROM gmailsync.labels l
 CROSS JOIN LATERAL (
       SELECT count(*) AS messages_total,
              count(*) FILTER (WHERE 'UNREAD' = ANY (m.label_ids)) AS messages_unread,
              count(DISTINCT m.thread_id) AS threads_total,
              count(DISTINCT m.thread_id) FILTER (WHERE 'UNREAD' = ANY (m.label_ids))
                  AS threads_unread
         FROM gmailsync.messages m
        WHERE m.user_id = l.user_id AND m.label_ids @> ARRAY[l.label_id]
          AND m.deleted_at IS NULL) c;
