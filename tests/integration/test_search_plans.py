"""Search's two plans (issue 24, mod_gmailsync_search.c): a query whose words every answer must
match looks its candidates up in the GIN index, at most 2,000 of them; with fewer it sorts
them, with more it walks the newest messages until the page is full. Both must answer exactly
what the query says, in the same order, page after page.

A mailbox of 2,600 messages is written straight into PostgreSQL and indexed with
gmailsync.search_refresh, the function the worker calls (a sync of that size would take a
minute and prove nothing more here), with words of known frequencies: every message, every
second, every third but, every tenth but, every 500th. Each query is answered through httpd
and compared with the answer computed here from the same rows: the ids, their order (date,
then id, newest first; two messages share each date) and the cursor's pages.
"""
import datetime

import pytest
import requests

N = 2600
BASE = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def gid(i):
    return "%016x" % (0x18c0000000000000 + i)


def words(i):
    w = ["alpha"]
    if i % 2 == 0:
        w.append("beta")            # "alpha beta" is a phrase in every second message
    if i % 3:
        w.append("delta")           # 1,733: under the cap, many pages
    if i % 10:
        w.append("epsilon")         # 2,340: over the cap
    if i % 500 == 0:
        w.append("gamma")           # 6: rare
    return w


def labels(i):
    out = ["INBOX"]
    if i % 7 == 0:
        out.append("UNREAD")
    if i % 13 == 0:
        out = ["TRASH"]
    return out


@pytest.fixture(scope="module")
def mailbox(stack):
    user = stack.add_user(messages=0)
    rows = [(gid(i), BASE - datetime.timedelta(minutes=i // 2), labels(i), "note %d" % i,
             " ".join(words(i)) + " filler text %d" % i) for i in range(N)]
    with stack.db() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO gmailsync.messages (user_id, gmail_id, thread_id, internal_date,"
                    " label_ids, subject, from_addr, to_addr, snippet, size_estimate,"
                    " content_state, has_attachments, raw_size)"
                    " SELECT %s, g, g, d, l::text[], s, 'Plan Sender <plans@example.test>',"
                    " 'me@example.test', left(b, 100), 1000, 'complete', false, 1000"
                    " FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[])"
                    " AS r (g, d, l, s, b)",
                    (user["user_id"], [r[0] for r in rows], [r[1] for r in rows],
                     ["{%s}" % ",".join(r[2]) for r in rows], [r[3] for r in rows],
                     [r[4] for r in rows]))
        cur.execute("INSERT INTO gmailsync.message_bodies (user_id, gmail_id, text_body)"
                    " SELECT %s, g, b FROM unnest(%s::text[], %s::text[]) AS r (g, b)",
                    (user["user_id"], [r[0] for r in rows], [r[4] for r in rows]))
        cur.execute("SELECT gmailsync.search_refresh('simple', %s, %s)",
                    ([user["user_id"]] * N, [r[0] for r in rows]))
        assert cur.fetchone()[0] == N
        cur.execute("ANALYZE gmailsync.message_search")
    conn.close()
    return user


def expected(pred, anywhere=False):
    """The ids matching pred(i), newest first (date, then id, both descending)."""
    keep = [i for i in range(N) if pred(i) and (anywhere or "TRASH" not in labels(i))]
    keep.sort(key=lambda i: (BASE - datetime.timedelta(minutes=i // 2), gid(i)), reverse=True)
    return [gid(i) for i in keep]


def answer(stack, user, q, limit=100, pages=None):
    """The ids of every page (or of the first `pages`) of q, following the cursor."""
    got, cursor, n = [], None, 0
    while True:
        params = {"q": q, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = requests.get(stack.api + "/messages", params=params, timeout=30,
                         cookies={"session": user["session"]})
        assert r.status_code == 200, (q, r.status_code, r.text)
        got += [m["id"] for m in r.json()["messages"]]
        cursor, n = r.json()["next_cursor"], n + 1
        if cursor is None or n == pages:
            return got


CASES = [
    # (query, which messages, the pages to compare: None for all)
    ("alpha", lambda i: True, 3),                                     # every message: a walk
    ("epsilon", lambda i: i % 10 != 0, 3),                            # over the cap: a walk
    ("delta", lambda i: i % 3 != 0, None),                            # under the cap: sorted
    ("gamma", lambda i: i % 500 == 0, None),                          # rare
    ("alpha -beta", lambda i: i % 2 == 1, 3),                         # a walk, a negation
    ("epsilon is:unread", lambda i: i % 10 != 0 and i % 7 == 0, None),  # a walk, a label
    ('"alpha beta"', lambda i: i % 2 == 0, 3),                        # a phrase
    ("delta epsilon", lambda i: i % 3 != 0 and i % 10 != 0, 2),       # two words, under
    ("gamma OR beta", lambda i: i % 500 == 0 or i % 2 == 0, 2),       # no strict word
    ("subject:note epsilon", lambda i: i % 10 != 0, 2),               # a field, over
    ("epsilon -delta -gamma", lambda i: i % 10 != 0 and i % 3 == 0, None),
]


@pytest.mark.parametrize("q,pred,pages", CASES, ids=[c[0] for c in CASES])
def test_each_plan_answers_exactly_in_order(stack, mailbox, q, pred, pages):
    want = expected(pred)
    got = answer(stack, mailbox, q, pages=pages)
    assert got == (want if pages is None else want[:100 * pages])


def test_the_cap_is_crossed_both_ways():
    # the table above holds queries on both sides of the 2,000 candidates
    assert len(expected(lambda i: i % 3 != 0)) < 2000 < len(expected(lambda i: i % 10 != 0))


def test_the_trash_only_when_asked_for(stack, mailbox):
    assert answer(stack, mailbox, "alpha in:anywhere", pages=2) == \
        expected(lambda i: True, anywhere=True)[:200]
    assert answer(stack, mailbox, "epsilon in:trash") == \
        [g for g in expected(lambda i: i % 10 != 0, anywhere=True)
         if "TRASH" in labels(int(g, 16) - 0x18c0000000000000)]


def test_small_pages_of_a_walk_follow_the_cursor(stack, mailbox):
    assert answer(stack, mailbox, "epsilon", limit=7, pages=12) == \
        expected(lambda i: i % 10 != 0)[:84]
