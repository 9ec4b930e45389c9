-- 011: labels with their names, threads, archive mode for deletions and the change feed
-- (issue 23).
-- Expand-only: new tables, a nullable column, views and triggers the previous release never
-- names (its writes are fed like any other). The previous release
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

-- Conversations as Gmail shows them, kept in step with the messages by the triggers below (in
-- the transaction of the change): the newest threads of a large mailbox are one index scan
-- (user_id, newest_date), not an aggregate over every message. Deleted messages (archive mode)
-- are left out; a thread without messages goes.
CREATE TABLE gmailsync.threads (
    user_id          text         NOT NULL,
    thread_id        text         NOT NULL,
    subject          text,                    -- of its oldest message
    participants     text[]       NOT NULL,   -- From of its messages, first 20 distinct
    message_count    integer      NOT NULL,
    unread_count     integer      NOT NULL,
    newest_date      timestamptz,
    oldest_date      timestamptz,
    label_ids        text[]       NOT NULL,   -- the union of its messages' labels
    has_attachments  boolean      NOT NULL,
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, thread_id)
);
CREATE INDEX threads_user_newest ON gmailsync.threads (user_id, newest_date DESC);
CREATE INDEX messages_user_thread ON gmailsync.messages (user_id, thread_id);

-- A union of label sets, as one aggregate over a thread's messages.
CREATE AGGREGATE gmailsync.label_union(text[]) (SFUNC = array_cat, STYPE = text[], INITCOND = '{}');

-- Recomputes the threads named by (users[i], threads[i]) in one pass over their messages.
CREATE FUNCTION gmailsync.threads_refresh(users text[], threads text[]) RETURNS void
LANGUAGE plpgsql
-- Generic plans, made once per session: planning each call anew took most of the time of a
-- one-row change (a message stored with its content), about 0.5 of 0.6 ms here.
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF users IS NULL OR cardinality(users) = 0 THEN
        RETURN;
    END IF;
    WITH t AS (SELECT DISTINCT x.u AS user_id, x.t AS thread_id
                 FROM unnest(users, threads) AS x(u, t) WHERE x.t IS NOT NULL),
         a AS (SELECT t.user_id, t.thread_id, s.*
                 FROM t
                CROSS JOIN LATERAL (
                      SELECT count(*) AS n,
                             count(*) FILTER (WHERE 'UNREAD' = ANY (m.label_ids)) AS unread,
                             (array_agg(m.subject ORDER BY m.internal_date, m.gmail_id))[1]
                                 AS subject,
                             max(m.internal_date) AS newest, min(m.internal_date) AS oldest,
                             COALESCE(bool_or(m.has_attachments), false) AS attach,
                             gmailsync.label_union(m.label_ids) AS labels,
                             (array_agg(DISTINCT m.from_addr)
                                  FILTER (WHERE m.from_addr IS NOT NULL))[1:20] AS who
                        FROM gmailsync.messages m
                       WHERE m.user_id = t.user_id AND m.thread_id = t.thread_id
                         AND m.deleted_at IS NULL) s),
         gone AS (DELETE FROM gmailsync.threads h USING a
                   WHERE a.n = 0 AND h.user_id = a.user_id AND h.thread_id = a.thread_id)
    INSERT INTO gmailsync.threads AS h (user_id, thread_id, subject, participants, message_count,
                                        unread_count, newest_date, oldest_date, label_ids,
                                        has_attachments, updated_at)
    SELECT a.user_id, a.thread_id, a.subject, COALESCE(a.who, '{}'), a.n, a.unread, a.newest,
           a.oldest, ARRAY(SELECT DISTINCT l FROM unnest(a.labels) l ORDER BY l), a.attach, now()
      FROM a WHERE a.n > 0
    ON CONFLICT (user_id, thread_id) DO UPDATE SET subject = EXCLUDED.subject,
        participants = EXCLUDED.participants, message_count = EXCLUDED.message_count,
        unread_count = EXCLUDED.unread_count, newest_date = EXCLUDED.newest_date,
        oldest_date = EXCLUDED.oldest_date, label_ids = EXCLUDED.label_ids,
        has_attachments = EXCLUDED.has_attachments, updated_at = now();
END
$$;

-- The threads of the messages already stored.
SELECT gmailsync.threads_refresh(array_agg(user_id), array_agg(thread_id))
  FROM (SELECT DISTINCT user_id, thread_id FROM gmailsync.messages
         WHERE thread_id IS NOT NULL) d;

-- The change feed: every change to a user's stored mailbox, numbered per user without a gap,
-- written by triggers in the transaction that makes the change (a change rolled back never
-- appears; the previous release's writes are fed too). Kinds: added (a new row, or a row
-- archive mode had marked deleted coming back), deleted (the row went, or archive mode set
-- deleted_at), labels (label_ids changed: labels_added, labels_removed), content (the row got
-- its content: content_state became complete or parse_error). An added change carries the
-- message's labels then (labels_added), so the feed alone rebuilds the mailbox's ids and
-- labels. A reader keeps the last seq it
-- applied, in its own transaction, and asks for seq > it (docs/changes.md).
CREATE TABLE gmailsync.change_seq (
    user_id         text    PRIMARY KEY,
    last_seq        bigint  NOT NULL DEFAULT 0,   -- the newest seq given out
    purged_through  bigint  NOT NULL DEFAULT 0    -- retention removed every seq up to this
);

CREATE TABLE gmailsync.changes (
    user_id         text         NOT NULL,
    seq             bigint       NOT NULL CHECK (seq > 0),
    gmail_id        text         NOT NULL,
    kind            text         NOT NULL CHECK (kind IN ('added', 'deleted', 'labels', 'content')),
    labels_added    text[],
    labels_removed  text[],
    history_id      numeric(20,0),
    created_at      timestamptz  NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX changes_created_at ON gmailsync.changes (created_at);

-- One change, as the triggers hand it to changes_record.
CREATE TYPE gmailsync.change AS (user_id text, gmail_id text, kind text, labels_added text[],
                                 labels_removed text[], history_id numeric);

-- Records changes (in the order of the array). Each user's rows are numbered from the user's
-- counter, whose row stays locked until the transaction ends: the transactions of one user take
-- their numbers, and commit, in order, so a reader never sees a later seq before an earlier one.
-- Then a wake-up on gmailsync_changes (user id and newest seq, sent at commit).
CREATE FUNCTION gmailsync.changes_record(pending gmailsync.change[]) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    woken integer;
BEGIN
    IF pending IS NULL OR cardinality(pending) = 0 THEN
        RETURN;
    END IF;
    WITH p AS (SELECT c.*, row_number() OVER (PARTITION BY c.user_id ORDER BY c.ord) AS rn
                 FROM unnest(pending) WITH ORDINALITY AS c(user_id, gmail_id, kind, labels_added,
                                                           labels_removed, history_id, ord)),
         n AS (SELECT p.user_id, count(*) AS k FROM p GROUP BY p.user_id),
         b AS (INSERT INTO gmailsync.change_seq AS s (user_id, last_seq)
               SELECT n.user_id, n.k FROM n ORDER BY n.user_id
               ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + EXCLUDED.last_seq
               RETURNING s.user_id, s.last_seq),
         c AS (INSERT INTO gmailsync.changes (user_id, seq, gmail_id, kind, labels_added,
                                              labels_removed, history_id)
               SELECT p.user_id, b.last_seq - n.k + p.rn, p.gmail_id, p.kind, p.labels_added,
                      p.labels_removed, p.history_id
                 FROM p JOIN n ON n.user_id = p.user_id JOIN b ON b.user_id = p.user_id)
    SELECT count(pg_notify('gmailsync_changes',
                           json_build_object('user_id', b.user_id, 'seq', b.last_seq)::text))
      INTO woken FROM b;
END
$$;

-- A row stored (INSERT: added, with its labels) or gone (DELETE: deleted); rows archive mode
-- had already marked deleted were fed then.
CREATE FUNCTION gmailsync.changes_on_rows() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    feed gmailsync.change[];
    users text[];
    threads text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(n.user_id, n.gmail_id, 'added', n.label_ids, NULL, n.history_id)
                         ::gmailsync.change ORDER BY n.user_id, n.gmail_id)
                   FILTER (WHERE n.deleted_at IS NULL),
               array_agg(n.user_id) FILTER (WHERE n.deleted_at IS NULL),
               array_agg(n.thread_id) FILTER (WHERE n.deleted_at IS NULL)
          INTO feed, users, threads FROM new_rows n;
    ELSE
        SELECT array_agg(ROW(o.user_id, o.gmail_id, 'deleted', NULL, NULL, o.history_id)
                         ::gmailsync.change ORDER BY o.user_id, o.gmail_id)
                   FILTER (WHERE o.deleted_at IS NULL),
               array_agg(o.user_id) FILTER (WHERE o.deleted_at IS NULL),
               array_agg(o.thread_id) FILTER (WHERE o.deleted_at IS NULL)
          INTO feed, users, threads FROM old_rows o;
    END IF;
    PERFORM gmailsync.changes_record(feed);
    PERFORM gmailsync.threads_refresh(users, threads);
    RETURN NULL;
END
$$;

-- An update: archive mode's marks (deleted, or back: added), label changes, content stored;
-- and the threads of rows whose thread-visible columns changed (an unchanged upsert costs none).
-- One pass over the pairs of old and new rows.
CREATE FUNCTION gmailsync.changes_on_update() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    feed gmailsync.change[];
    users text[];
    threads text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;        -- an upsert that only inserted
    END IF;
    -- planned for each statement (EXECUTE), for the number of rows it changed: a plan cached
    -- for one row pairs old and new rows by comparing every pair, 0.2 ms a row for 500
    EXECUTE $q$
    WITH j AS MATERIALIZED (
             SELECT n.user_id, n.gmail_id, n.history_id, n.label_ids AS nl, o.label_ids AS ol,
                    n.deleted_at IS NULL AS live, o.deleted_at IS NULL AS was_live,
                    n.content_state IN ('complete', 'parse_error')
                        AND (o.content_state IS NULL OR o.content_state = 'metadata_only')
                        AS content,
                    n.thread_id AS nt, o.thread_id AS ot,
                    (n.thread_id, n.label_ids, n.deleted_at, n.subject, n.from_addr,
                     n.internal_date, n.has_attachments)
                        IS DISTINCT FROM (o.thread_id, o.label_ids, o.deleted_at, o.subject,
                                          o.from_addr, o.internal_date, o.has_attachments)
                        AS visible
               FROM new_rows n JOIN old_rows o
                 ON o.user_id = n.user_id AND o.gmail_id = n.gmail_id)
    SELECT (SELECT array_agg(k.c ORDER BY (k.c).user_id, (k.c).gmail_id, k.ord)
              FROM j CROSS JOIN LATERAL (VALUES
                   -- archive mode: marked deleted, or back
                   (1, j.live <> j.was_live,
                    ROW(j.user_id, j.gmail_id, CASE WHEN j.live THEN 'added' ELSE 'deleted' END,
                        CASE WHEN j.live THEN j.nl END, NULL, j.history_id)::gmailsync.change),
                   (2, j.live AND j.was_live AND NOT (j.nl @> j.ol AND j.nl <@ j.ol),
                    ROW(j.user_id, j.gmail_id, 'labels',
                        ARRAY(SELECT x FROM unnest(j.nl) x WHERE x <> ALL (j.ol)),
                        ARRAY(SELECT x FROM unnest(j.ol) x WHERE x <> ALL (j.nl)),
                        j.history_id)::gmailsync.change),
                   (3, j.live AND j.content,
                    ROW(j.user_id, j.gmail_id, 'content', NULL, NULL, j.history_id)
                        ::gmailsync.change)) AS k(ord, due, c)
             WHERE k.due),
           -- (both in the same order: pairs)
           (SELECT array_agg(v.u ORDER BY v.u, v.t) FROM j
             CROSS JOIN LATERAL (VALUES (j.user_id, j.nt), (j.user_id, j.ot)) v(u, t)
             WHERE j.visible),
           (SELECT array_agg(v.t ORDER BY v.u, v.t) FROM j
             CROSS JOIN LATERAL (VALUES (j.user_id, j.nt), (j.user_id, j.ot)) v(u, t)
             WHERE j.visible)
    $q$ INTO feed, users, threads;
    PERFORM gmailsync.changes_record(feed);
    PERFORM gmailsync.threads_refresh(users, threads);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_changes_insert AFTER INSERT ON gmailsync.messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gmailsync.changes_on_rows();
CREATE TRIGGER messages_changes_update AFTER UPDATE ON gmailsync.messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gmailsync.changes_on_update();
CREATE TRIGGER messages_changes_delete AFTER DELETE ON gmailsync.messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gmailsync.changes_on_rows();
