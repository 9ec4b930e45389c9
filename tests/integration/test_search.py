"""Search (issue 24): GET {prefix}/messages?q=&limit=&cursor= and GET {prefix}/labels.

A fixed corpus written here (English, Chinese in UTF-8 and in GB18030, accented French, mixed
text, HTML only, an attachment-heavy message, trash, spam, sent mail, one from two days ago) is
imported as raw RFC 822 into the fake Gmail, synced by gmailsync-worker (which indexes it in
the content's transaction), and searched through httpd. Each query of the table names exactly
the messages it must return; bob holds look-alike mail that alice must never see. Hostile
queries are answered or refused (400), never a 5xx, each within a second; a search that cannot
finish within the time box (a lock held on the index, so it cannot be flaky) is a 422.
"""
import base64
import datetime
import email.utils
import http.client
import urllib.parse
import time
from email.header import Header
from email.message import EmailMessage
from email import policy

import psycopg2
import pytest
import requests

from gsworker import Gmail, daemon_paused  # noqa: F401
from test_message_content import import_message
from test_message_view import sync

NOW = time.time()


def message(frm, subject, body, to="Alice <alice@example.test>", cc=None, date="2024-03-10 09:00",
            attachments=(), html=None, charset="utf-8"):
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = Header(subject, charset).encode() if charset != "utf-8" else subject
    if isinstance(date, float):
        msg["Date"] = email.utils.formatdate(date, usegmt=True)
    else:
        msg["Date"] = email.utils.format_datetime(
            datetime.datetime.fromisoformat(date + ":00+00:00"))
    if html is not None and body is None:
        msg.set_content(html, subtype="html")
    elif charset != "utf-8":
        msg.set_content(body.encode(charset), maintype="text", subtype="plain",
                        params={"charset": charset}, cte="base64")
    else:
        msg.set_content(body)
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=policy.SMTP)


PHOTO = bytes(range(256)) * 1200          # 300 KiB: the only message over 200K

ALICE = {
    "en_report": (message("Bob Builder <bob@builder.example>", "Quarterly report for Q3",
                          "Please find the quarterly numbers attached. The budget meeting is on"
                          " Friday.", attachments=[("budget-2024.xlsx", b"PK\x03\x04 sheet")],
                          date="2024-03-10 09:00"), "INBOX,UNREAD"),
    "en_lunch": (message("Carol <carol@food.example>", "Lunch on Friday?",
                         "Shall we try the new noodle place? Reply soon.",
                         cc="dave@team.example", date="2024-03-12 11:00"), "INBOX,STARRED"),
    "zh_utf8": (message("王伟 <wang.wei@example.cn>", "会议纪要",
                        "今天的会议讨论了预算和招聘计划。请查看附件。",
                        attachments=[("会议纪要.pdf", b"%PDF-1.4 minutes")],
                        date="2024-02-01 03:00"), "INBOX"),
    "zh_gb18030": (message("=?gb18030?b?%s?= <li.na@example.cn>"
                           % base64.b64encode("李娜".encode("gb18030")).decode(), "季度报告",
                           "季度报告已经完成，请审阅。数据中心迁移计划下周开始。",
                           charset="gb18030", date="2023-12-20 08:00"), "INBOX,UNREAD"),
    "accented": (message("Zoë Sénéchal <zoe@exemple.fr>", "Café crème à Genève",
                         "Réunion déjà prévue à l'hôtel. Naïve façade.",
                         date="2024-01-15 16:00"), "INBOX,{voyages}"),
    "mixed": (message("Ken <ken@example.jp>", "Gmail邮件 sync status",
                      "The Gmail同步 works. 数据同步完成 at 10:30.",
                      to="alice@example.test, bob@builder.example", date="2024-03-01 09:00"),
              "INBOX,{mine}"),
    "sent": (message("Alice <alice@example.test>", "Re: Lunch on Friday?",
                     "Yes, noodles sound great.", to="carol@food.example",
                     date="2024-03-12 12:00"), "SENT"),
    "trash": (message("news@old.example", "Old newsletter", "unsubscribe budget tips",
                      date="2022-05-05 10:00"), "TRASH"),
    "spam": (message("winner@lottery.example", "You won the lottery",
                     "Claim your budget prize now", date="2024-03-11 10:00"), "SPAM"),
    "big": (message("Bob Builder <bob@builder.example>", "Photos from the trip",
                    "Some photos from Genève.", attachments=[("beach.JPG", PHOTO)],
                    date="2024-03-05 18:00"), "INBOX,{voyages}"),
    "html_only": (message("news@shop.example", "Spring sale", None,
                          html="<p>Huge <b>discount</b> on shoes</p>", date="2024-03-08 07:00"),
                  "INBOX,CATEGORY_PROMOTIONS"),
    "old": (message("bob@builder.example", "Ancient history",
                    "From long ago: the first budget draft.", date="2015-06-01 10:00"), "INBOX"),
    "recent": (message("Dana <dana@example.org>", "Fresh news", "Hot off the press.",
                       date=NOW - 2 * 86400), "INBOX"),
}

# bob: look-alikes of alice's mail; alice must never see them
BOB = {
    "b_report": (message("Bob <bob@builder.example>", "Quarterly report budget 会议纪要",
                         "budget Friday noodle 季度报告 Genève discount"), "INBOX,UNREAD,STARRED"),
    "b_trip": (message("Carol <carol@food.example>", "Photos", "trip",
                       attachments=[("beach.JPG", PHOTO)]), "INBOX,{voyages}"),
}

DEFAULT = set(ALICE) - {"trash", "spam"}   # what a search without in: looks at
ALL = set(ALICE)
INBOX = {k for k, (_, labels) in ALICE.items() if "INBOX" in labels}

# (query, the names of the messages it must return)
TABLE = [
    ("", DEFAULT),
    ("budget", {"en_report", "old"}),
    ("BUDGET", {"en_report", "old"}),
    ("budget in:anywhere", {"en_report", "old", "trash", "spam"}),
    ("budget in:trash", {"trash"}),
    ("budget in:spam", {"spam"}),
    ("quarterly", {"en_report"}),
    ("Quarterly report", {"en_report"}),
    ('"quarterly report"', {"en_report"}),
    ('"report quarterly"', set()),
    ("friday", {"en_report", "en_lunch", "sent"}),
    ("friday -lunch", {"en_report"}),
    ("lunch OR photos", {"en_lunch", "sent", "big"}),
    ("(lunch OR photos) -re", {"en_lunch", "big"}),
    ("noodle", {"en_lunch"}),
    ("noodles", {"sent"}),
    ("noodle OR noodles", {"en_lunch", "sent"}),
    ("-budget", DEFAULT - {"en_report", "old"}),
    ("discount", {"html_only"}),
    ("shoes discount", {"html_only"}),
    ("nowhere-to-be-found", set()),
    ("bob@builder.example", {"en_report", "big", "old", "mixed"}),
    ("from:carol", {"en_lunch"}),
    ("to:carol", {"sent"}),
    ("cc:dave", {"en_lunch"}),
    ("cc:DAVE@TEAM.EXAMPLE", {"en_lunch"}),
    ("to:bob@builder.example", {"mixed"}),
    ("from:bob@builder.example", {"en_report", "big", "old"}),
    ("from:builder", {"en_report", "big", "old"}),
    ("from:%", set()),
    ("subject:_", set()),
    ("subject:lunch", {"en_lunch", "sent"}),
    ('subject:"on friday"', {"en_lunch", "sent"}),
    ("label:Voyages", {"accented", "big"}),
    ("label:voyages", {"accented", "big"}),
    ('label:"My label"', {"mixed"}),
    ("label:my-label", {"mixed"}),
    ("label:nonexistent", set()),
    ("has:attachment", {"en_report", "zh_utf8", "big"}),
    ("has:attachment -filename:pdf", {"en_report", "big"}),
    ("filename:budget", {"en_report"}),
    ("filename:.jpg", {"big"}),
    ("filename:xlsx OR filename:pdf", {"en_report", "zh_utf8"}),
    ("filename:会议", {"zh_utf8"}),
    ("is:unread", {"en_report", "zh_gb18030"}),
    ("is:starred", {"en_lunch"}),
    ("is:unread is:starred", set()),
    ("is:unread OR is:starred", {"en_report", "zh_gb18030", "en_lunch"}),
    ("in:inbox", INBOX),
    ("in:sent", {"sent"}),
    ("in:trash", {"trash"}),
    ("in:spam", {"spam"}),
    ("in:anywhere", ALL),
    ("before:2024/01/01", {"zh_gb18030", "old"}),
    ("before:2024/01/01 in:anywhere", {"zh_gb18030", "old", "trash"}),
    ("after:2024/03/10", {"en_report", "en_lunch", "sent", "recent"}),
    ("after:2024-03-01 before:2024-03-09", {"mixed", "big", "html_only"}),
    ("older_than:1y", DEFAULT - {"recent"}),
    ("newer_than:7d", {"recent"}),
    ("newer_than:30m", {"recent"}),
    ("newer_than:20y older_than:1y in:anywhere", ALL - {"recent"}),
    ("larger:200K", {"big"}),
    ("larger:1M", set()),
    ("smaller:200K", DEFAULT - {"big"}),
    ("larger:100000", {"big"}),
    # Chinese: 1, 2, 3 and 4 characters, UTF-8 and GB18030
    ("会", {"zh_utf8"}),
    ("会议", {"zh_utf8"}),
    ("议纪要", {"zh_utf8"}),
    ("会议纪要", {"zh_utf8"}),
    ("会要", set()),
    ("季度报告", {"zh_gb18030"}),
    ("报", {"zh_gb18030"}),
    ("报告", {"zh_gb18030"}),
    ("数据中心", {"zh_gb18030"}),
    ("心迁", {"zh_gb18030"}),
    ("计划", {"zh_utf8", "zh_gb18030"}),
    ("数据", {"zh_gb18030", "mixed"}),
    ("同步", {"mixed"}),
    ("王伟", {"zh_utf8"}),
    ("from:王伟", {"zh_utf8"}),
    ("from:李娜", {"zh_gb18030"}),
    ("李娜 is:unread", {"zh_gb18030"}),
    # mixed and accented
    ("Gmail邮件", {"mixed"}),
    ("gmail", {"mixed"}),
    ("10:30", {"mixed"}),
    ("café", {"accented"}),
    ("CAFÉ", {"accented"}),
    ("cafe", set()),
    ("Genève", {"accented", "big"}),
    ("déjà naïve", {"accented"}),
    ("from:zoë", {"accented"}),
    ("from:SÉNÉCHAL", {"accented"}),
]


@pytest.fixture(scope="module")
def corpus(stack):
    gmail = Gmail(stack.gmail_url)
    gmail.clear_faults()
    alice, bob = stack.add_user(messages=0), stack.add_user(messages=0)
    for user, mails in ((alice, ALICE), (bob, BOB)):
        labels = {"voyages": gmail.label_create(user["email"], "Voyages"),
                  "mine": gmail.label_create(user["email"], "My label")}
        user["ids"] = {}
        for name, (raw, label_ids) in mails.items():
            user["ids"][name] = import_message(stack, user["email"], raw,
                                               labels=label_ids.format(**labels))
        sync(stack, user)
        user["names"] = {v: k for k, v in user["ids"].items()}
    return alice, bob


def search(stack, user, q=None, **params):
    if q is not None:
        params["q"] = q
    started = time.monotonic()
    r = requests.get(stack.api + "/messages", params=params, timeout=30,
                     cookies={"session": user["session"]})
    took = time.monotonic() - started
    assert r.status_code < 500, (q, r.status_code, r.text)
    return r, took


def names(user, r):
    assert r.status_code == 200, r.text
    return [user["names"].get(m["id"], "?" + m["id"]) for m in r.json()["messages"]]


@pytest.mark.parametrize("q,want", TABLE, ids=[q or "(empty)" for q, _ in TABLE])
def test_the_query_table(stack, corpus, q, want):
    alice, _ = corpus
    r, took = search(stack, alice, q, limit=100)
    got = names(alice, r)
    assert set(got) == want, (q, sorted(got))
    assert len(got) == len(set(got))
    assert took < 1.0, (q, took)


def test_the_table_is_large_and_covers_every_operator():
    assert len(TABLE) >= 60
    text = " ".join(q for q, _ in TABLE)
    for op in ("from:", "to:", "cc:", "subject:", "label:", "has:attachment", "filename:",
               "is:unread", "is:starred", "in:inbox", "in:sent", "in:trash", "in:spam",
               "in:anywhere", "before:", "after:", "older_than:", "newer_than:", "larger:",
               "smaller:", " OR ", " -", '"'):
        assert op in text, op


def test_the_answer_shape_and_highlight(stack, corpus):
    alice, _ = corpus
    r, _ = search(stack, alice, "budget", limit=100)
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"messages", "next_cursor"} and body["next_cursor"] is None
    first = body["messages"][0]
    assert names(alice, r)[0] == "en_report"          # newest first
    assert set(first) == {"id", "thread_id", "date", "from", "subject", "snippet", "highlight",
                          "labels", "has_attachments", "unread", "starred"}
    assert first["date"] == "2024-03-10T09:00:00Z"
    assert first["from"] == {"name": "Bob Builder", "address": "bob@builder.example"}
    assert first["subject"] == "Quarterly report for Q3"
    assert sorted(first["labels"]) == ["INBOX", "UNREAD"]
    assert (first["has_attachments"], first["unread"], first["starred"]) == (True, True, False)
    assert "".join(s["text"] for s in first["highlight"]) == first["snippet"]
    assert [s["text"].lower() for s in first["highlight"] if s["match"]] == ["budget"]
    # labels by name; no query: no highlight
    r, _ = search(stack, alice, "", limit=100)
    by_name = {alice["names"][m["id"]]: m for m in r.json()["messages"]}
    assert sorted(by_name["mixed"]["labels"]) == ["INBOX", "My label"]
    assert all(m["highlight"] == [] for m in r.json()["messages"])
    assert by_name["zh_gb18030"]["from"] == {"name": "李娜", "address": "li.na@example.cn"}
    assert by_name["zh_gb18030"]["subject"] == "季度报告"
    r, _ = search(stack, alice, "会议")
    (m,) = r.json()["messages"]
    assert [s["text"] for s in m["highlight"] if s["match"]], m


def test_other_users_mail_is_never_returned(stack, corpus):
    alice, bob = corpus
    for q in ("budget", "会议纪要", "label:voyages", "in:anywhere", "", "from:bob", "larger:200K"):
        for who, other in ((alice, bob), (bob, alice)):
            r, _ = search(stack, who, q, limit=100)
            ids = {m["id"] for m in r.json()["messages"]}
            assert ids <= set(who["ids"].values()), q
            assert not ids & set(other["ids"].values()), q
    r, _ = search(stack, bob, "budget")
    assert names(bob, r) == ["b_report"]
    r = requests.get(stack.api + "/messages", timeout=30)
    assert r.status_code == 401 and r.headers["Content-Type"] == "application/problem+json"


def test_pages_follow_the_cursor(stack, corpus):
    alice, _ = corpus
    full = names(alice, search(stack, alice, "in:anywhere", limit=100)[0])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r, _ = search(stack, alice, "in:anywhere", **params)
        page = names(alice, r)
        assert len(page) <= 3
        seen += page
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        assert len(page) == 3
    assert seen == full and pages == (len(full) + 2) // 3
    # newest first: by date, then id
    r, _ = search(stack, alice, "in:anywhere", limit=100)
    keys = [(m["date"], m["id"]) for m in r.json()["messages"]]
    assert keys == sorted(keys, reverse=True)
    # default limit 50; the bounds
    assert len(search(stack, alice)[0].json()["messages"]) == len(DEFAULT)
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "abc"}, {"limit": "-1"},
                   {"cursor": "not-a-cursor"}, {"cursor": "MTp4OmE"}, {"cursor": "!!"}):
        r, _ = search(stack, alice, "budget", **params)
        assert r.status_code == 400, params
        assert r.headers["Content-Type"] == "application/problem+json"


def test_bad_queries_are_400_naming_the_problem(stack, corpus):
    alice, _ = corpus
    for q, says in (("foo:bar", "foo:"), ("is:important", "is:important"),
                    ("before:2023/02/30", "before:2023/02/30"), ("larger:5G", "larger:5G"),
                    ("older_than:3w", "older_than:3w"), ("label:", "label:")):
        r, _ = search(stack, alice, q)
        assert r.status_code == 400, q
        assert r.headers["Content-Type"] == "application/problem+json"
        assert says in r.json()["detail"], (q, r.json())


def raw_get(stack, user, query_string):
    """The query string sent as written (requests would re-quote a stray %)."""
    url = urllib.parse.urlsplit(stack.api)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    started = time.monotonic()
    try:
        conn.request("GET", url.path + "/messages?" + query_string,
                     headers={"Cookie": "session=" + user["session"]})
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - started
    finally:
        conn.close()


def test_hostile_queries_are_answered_or_refused_quickly(stack, corpus):
    alice, _ = corpus
    before = stack.query("SELECT count(*) FROM gmailsync.messages")[0][0]
    hostile = ["'; DROP TABLE gmailsync.messages; --", "\" OR 1=1 --", "from:\"') OR true --",
               "%s %d $1 \\ %% _", "label:' OR ''='", "a" * 10000, " ".join(["w"] * 1000),
               "(" * 500 + "x" + ")" * 500, "-" * 3000, "\"" * 2001, "OR " * 600,
               "subject:" + "é" * 900, "会" * 700]
    for q in hostile:
        r, took = search(stack, alice, q)
        # 10,000 characters are over httpd's LimitRequestLine (8190): its 414, before the module
        assert r.status_code in ((200, 400) if len(r.request.url) <= 8190 else (414,)), \
            (q[:40], r.status_code)
        assert took < 1.0, (q[:40], took)
    for qs in ("q=a%00b", "q=%FF%FE", "q=%C0%AF", "q=%ED%A0%80", "q=%", "q=%zz", "q=a&q=b",
               "q=" + "%41" * 2100):
        status, body, took = raw_get(stack, alice, qs)
        assert status == 400, (qs[:30], status, body)
        assert b"problem" in body and took < 1.0
    r, _ = search(stack, alice, "a" * 5000)
    assert r.status_code == 400 and "too long" in r.json()["detail"]
    r, _ = search(stack, alice, " ".join(["w"] * 1000))
    assert "too many terms" in r.json()["detail"]
    assert stack.query("SELECT count(*) FROM gmailsync.messages")[0][0] == before


def test_a_search_past_its_time_box_is_422(stack, corpus):
    """A lock held on the index makes the search wait: its statement_timeout (800 ms) ends it,
    whatever the machine's speed."""
    alice, _ = corpus
    conn = psycopg2.connect(stack.pg_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE gmailsync.message_search IN ACCESS EXCLUSIVE MODE")
            r, took = search(stack, alice, "budget")
        assert r.status_code == 422, r.text
        assert r.headers["Content-Type"] == "application/problem+json"
        assert "too expensive" in r.json()["detail"]
        assert 0.7 < took < 2.0, took
    finally:
        conn.rollback()
        conn.close()
    r, _ = search(stack, alice, "budget")
    assert r.status_code == 200


def test_labels_endpoint(stack, corpus):
    alice, bob = corpus
    r = requests.get(stack.api + "/labels", timeout=30, cookies={"session": alice["session"]})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    labels = {x["name"]: x for x in r.json()["labels"]}
    assert labels["Voyages"]["type"] == "user" and labels["Voyages"]["messages"] == 2
    assert labels["My label"]["messages"] == 1
    assert labels["INBOX"]["type"] == "system" and labels["INBOX"]["messages"] == len(INBOX)
    assert set(labels["Voyages"]) == {"id", "name", "type", "messages"}
    r = requests.get(stack.api + "/labels", timeout=30, cookies={"session": bob["session"]})
    assert {x["name"]: x for x in r.json()["labels"]}["Voyages"]["messages"] == 1


def test_label_changes_need_no_reindex(stack, corpus):
    alice, _ = corpus
    before = stack.query("SELECT gmail_id, indexed_at FROM gmailsync.message_search"
                         " WHERE user_id = %s ORDER BY gmail_id", (alice["user_id"],))
    mid = alice["ids"]["old"]
    stack.query("UPDATE gmailsync.messages SET label_ids = label_ids || '{STARRED}'"
                " WHERE user_id = %s AND gmail_id = %s RETURNING 1", (alice["user_id"], mid))
    try:
        r, _ = search(stack, alice, "is:starred budget")
        assert names(alice, r) == ["old"]
    finally:
        stack.query("UPDATE gmailsync.messages SET label_ids = array_remove(label_ids, 'STARRED')"
                    " WHERE user_id = %s AND gmail_id = %s RETURNING 1", (alice["user_id"], mid))
    assert stack.query("SELECT gmail_id, indexed_at FROM gmailsync.message_search"
                       " WHERE user_id = %s ORDER BY gmail_id", (alice["user_id"],)) == before


def test_the_index_is_capped_and_weighted(stack, corpus):
    alice, _ = corpus
    rows = stack.query("SELECT gmail_id, config::text, length(doc), pg_column_size(doc)"
                       " FROM gmailsync.message_search WHERE user_id = %s", (alice["user_id"],))
    assert len(rows) == len(ALICE)
    assert all(cfg == "simple" and 0 < size < 1024 * 1024 for _, cfg, _, size in rows)
    # the subject weighs A, people B, the body C
    got = stack.query("SELECT ts_rank(doc, plainto_tsquery('simple', 'quarterly'), 1)"
                      " > ts_rank(doc, plainto_tsquery('simple', 'numbers'), 1),"
                      " doc @@ to_tsquery('simple', 'quarterly:A'),"
                      " doc @@ to_tsquery('simple', 'builder:B'), doc @@ to_tsquery('simple', 'numbers:C')"
                      " FROM gmailsync.message_search WHERE user_id = %s AND gmail_id = %s",
                      (alice["user_id"], alice["ids"]["en_report"]))
    assert got == [(True, True, True, True)]


def test_many_query_shapes_each_a_statement_of_its_own(stack, corpus):
    """120 query shapes (a session prepares 64 of them, then runs the others unprepared, their
    values still parameters): a word said k times, negated k times, or with k from: operators,
    answers what the word says once."""
    alice, _ = corpus
    once = {
        "budget": set(names(alice, search(stack, alice, "budget", limit=100)[0])),
        "-budget": set(names(alice, search(stack, alice, "-budget", limit=100)[0])),
        "from:builder": set(names(alice, search(stack, alice, "from:builder", limit=100)[0])),
    }
    for k in range(1, 41):
        for q, want in once.items():
            r, _ = search(stack, alice, " ".join([q] * k), limit=100)
            assert set(names(alice, r)) == want, (q, k)
