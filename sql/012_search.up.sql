-- 012: search (issue 24). Expand-only: a new table, functions and indexes the previous release
-- never names; its writes go on as before. A message the previous release stores with content
-- after this migration has no search row until it is stored again by this release (or until
-- gmailsync.search_refresh is run for it, as the backfill below does): it is still listed,
-- filtered by labels, dates and sizes, but not found by words.
--
-- What is indexed per message (the cap: tsvector holds at most 1 MB and its positions stop at
-- 16,383, so a message's vector must stay well under both whatever the mail):
--   weight A  the subject (the messages column: at most 4,096 bytes)
--   weight B  the names and addresses of From, To and Cc (at most 4,096 characters)
--   weight C  the first 32,768 characters of the body (text/plain, else the text of the HTML)
--             and the attachment file names (at most 4,096 characters)
-- Chinese, Japanese and Korean: PostgreSQL's parser keeps a run of Han characters as one
-- word, so each run is also indexed as its overlapping character pairs (in order: a longer
-- query is a phrase of pairs) and each of its characters alone (1-character queries):
-- gmailsync.search_cjk. At most (32,768 + 8,192 + 4,096) characters give at most about 90,000
-- tokens of at most 16 bytes: under half the 1 MB limit.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- The characters counted as Han (CJK unified ideographs, extension A, compatibility).
CREATE FUNCTION gmailsync.search_cjk(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN t !~ '[㐀-䶿一-鿿豈-﫿]' THEN ''
    ELSE concat_ws(' ',
        (SELECT string_agg(substr(r.m[1], i, 2), ' ' ORDER BY r.n, i)
           FROM regexp_matches(t, '([㐀-䶿一-鿿豈-﫿]{2,})', 'g') WITH ORDINALITY AS r(m, n)
          CROSS JOIN LATERAL generate_series(1, char_length(r.m[1]) - 1) AS i),
        (SELECT string_agg(c[1], ' ') FROM regexp_matches(t, '([㐀-䶿一-鿿豈-﫿])', 'g') AS c))
    END
$$;

-- The text the word parser reads: Han characters blanked (they are indexed by search_cjk), so
-- that "Gmail邮件" gives the word gmail, as the query side splits it (gs_search.c).
CREATE FUNCTION gmailsync.search_words(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT regexp_replace(t, '[㐀-䶿一-鿿豈-﫿]', ' ', 'g')
$$;

-- One row per message with content (content_state complete or parse_error), written by the
-- worker in the transaction that stores the content (gmailsync.search_refresh), removed with the
-- message. Labels are not here: they are joined at query time, so a label change needs no
-- reindex.
CREATE TABLE gmailsync.message_search (
    user_id       text         NOT NULL,
    gmail_id      text         NOT NULL,
    sort_date     timestamptz  NOT NULL,   -- internal_date (else the Date header, else -infinity)
    config        regconfig    NOT NULL,   -- the text-search configuration of doc
    doc           tsvector     NOT NULL,   -- weighted: A subject, B people, C body and names
    -- lower case, for substrings (pg_trgm): subject:, from:, to:, cc:, filename:
    subject_lc    text         NOT NULL DEFAULT '',
    from_lc       text         NOT NULL DEFAULT '',   -- "name address, name address"
    to_lc         text         NOT NULL DEFAULT '',
    cc_lc         text         NOT NULL DEFAULT '',
    filenames_lc  text         NOT NULL DEFAULT '',   -- one name a line
    fields_lc     text         NOT NULL DEFAULT '',   -- all five: one trigram index for them
    indexed_at    timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, gmail_id),
    FOREIGN KEY (user_id, gmail_id) REFERENCES gmailsync.messages (user_id, gmail_id)
        ON DELETE CASCADE
);
CREATE INDEX message_search_doc ON gmailsync.message_search USING gin (user_id, doc);
CREATE INDEX message_search_fields ON gmailsync.message_search
    USING gin (fields_lc gin_trgm_ops);

-- (Re)indexes the messages named by (users[i], ids[i]) from what is stored: the messages row,
-- its addresses, bodies and attachments, with the configuration cfg. A message without content
-- (content_state NULL or metadata_only) or gone loses its row.
CREATE FUNCTION gmailsync.search_refresh(cfg regconfig, users text[], ids text[]) RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM gmailsync.message_search s
     USING unnest(users, ids) AS k(u, g)
     WHERE s.user_id = k.u AND s.gmail_id = k.g
       AND NOT EXISTS (SELECT 1 FROM gmailsync.messages m
                        WHERE m.user_id = k.u AND m.gmail_id = k.g
                          AND m.content_state IN ('complete', 'parse_error'));
    WITH k AS (SELECT DISTINCT u, g FROM unnest(users, ids) AS k(u, g)),
         t AS (SELECT m.user_id, m.gmail_id,
                      COALESCE(m.internal_date, m.date_header, '-infinity') AS sort_date,
                      COALESCE(m.subject, '') AS subject,
                      left(COALESCE((SELECT string_agg(concat_ws(' ', a.name, a.address), ', '
                                                       ORDER BY a.position)
                                       FROM gmailsync.message_addresses a
                                      WHERE a.user_id = m.user_id AND a.gmail_id = m.gmail_id
                                        AND a.role = 'from'), ''), 4096) AS f,
                      left(COALESCE((SELECT string_agg(concat_ws(' ', a.name, a.address), ', '
                                                       ORDER BY a.position)
                                       FROM gmailsync.message_addresses a
                                      WHERE a.user_id = m.user_id AND a.gmail_id = m.gmail_id
                                        AND a.role = 'to'), ''), 4096) AS t,
                      left(COALESCE((SELECT string_agg(concat_ws(' ', a.name, a.address), ', '
                                                       ORDER BY a.position)
                                       FROM gmailsync.message_addresses a
                                      WHERE a.user_id = m.user_id AND a.gmail_id = m.gmail_id
                                        AND a.role = 'cc'), ''), 4096) AS c,
                      left(COALESCE((SELECT string_agg(x.filename, E'\n' ORDER BY x.part_id)
                                       FROM gmailsync.message_attachments x
                                      WHERE x.user_id = m.user_id AND x.gmail_id = m.gmail_id
                                        AND x.filename IS NOT NULL AND x.filename <> ''), ''),
                           4096) AS names,
                      left(COALESCE(b.text_body, b.html_text, ''), 32768) AS body
                 FROM k JOIN gmailsync.messages m ON m.user_id = k.u AND m.gmail_id = k.g
                 LEFT JOIN gmailsync.message_bodies b
                        ON b.user_id = m.user_id AND b.gmail_id = m.gmail_id
                WHERE m.content_state IN ('complete', 'parse_error')),
         v AS (SELECT t.*, left(concat_ws(' ', t.f, t.t, t.c), 8192) AS people FROM t)
    INSERT INTO gmailsync.message_search AS s (user_id, gmail_id, sort_date, config, doc,
                                               subject_lc, from_lc, to_lc, cc_lc, filenames_lc,
                                               fields_lc, indexed_at)
    SELECT v.user_id, v.gmail_id, v.sort_date, cfg,
           setweight(to_tsvector(cfg, gmailsync.search_words(v.subject)) || to_tsvector('simple', gmailsync.search_cjk(v.subject)), 'A')
           || setweight(to_tsvector(cfg, gmailsync.search_words(v.people)) || to_tsvector('simple', gmailsync.search_cjk(v.people)), 'B')
           || setweight(to_tsvector(cfg, gmailsync.search_words(v.body))
                        || to_tsvector(cfg, gmailsync.search_words(v.names))
                        || to_tsvector('simple', gmailsync.search_cjk(v.body))
                        || to_tsvector('simple', gmailsync.search_cjk(v.names)), 'C'),
           lower(v.subject), lower(v.f), lower(v.t), lower(v.c), lower(v.names),
           lower(concat_ws(E'\n', v.subject, v.f, v.t, v.c, v.names)), now()
      FROM v
    ON CONFLICT (user_id, gmail_id) DO UPDATE SET sort_date = EXCLUDED.sort_date,
        config = EXCLUDED.config, doc = EXCLUDED.doc, subject_lc = EXCLUDED.subject_lc,
        from_lc = EXCLUDED.from_lc, to_lc = EXCLUDED.to_lc, cc_lc = EXCLUDED.cc_lc,
        filenames_lc = EXCLUDED.filenames_lc, fields_lc = EXCLUDED.fields_lc,
        indexed_at = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- The backfill: every message already stored with its content, with the default configuration
-- (simple; a worker with another GmailSyncSearchConfig reindexes a message when it stores it
-- again).
SELECT gmailsync.search_refresh('simple', array_agg(user_id), array_agg(gmail_id))
  FROM gmailsync.messages WHERE content_state IN ('complete', 'parse_error');
