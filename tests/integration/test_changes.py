"""The change feed (issue 23, sql/011): gmailsync.changes, numbered per user without a gap,
written by triggers in the transaction of the change, read in SQL and through GET
{prefix}/changes.

What must hold: a consumer that applies the feed to an empty copy, while syncs (full,
incremental, archive mode), worker kills and a PostgreSQL restart happen, ends with a copy
equal to the stored mailbox (ids and labels), seeing every seq exactly once, in order, with no
gap; the same through HTTP; a change rolled back never appears; a since older than what the
retention keeps is 410 Gone.
"""
import os
import signal

import psycopg2
import requests

from conftest import OUTAGE_LOG, pg_ctl
from gsworker import (EXIT_SUCCEEDED, assert_table_equals_mailbox, daemon_paused,  # noqa: F401
                      gmail, new_task, wait_for, worker)


class Copy:
    """An application's copy of one user's mailbox, built from the feed alone."""

    def __init__(self):
        self.labels, self.seen, self.last = {}, [], 0

    def apply(self, changes):
        for c in changes:
            seq, mid, kind = c["seq"], c["message_id"], c["kind"]
            assert seq == self.last + 1, "a gap or a repeat: %d after %d" % (seq, self.last)
            self.last = seq
            self.seen.append(seq)
            if kind == "added":
                self.labels[mid] = set(c["labels_added"] or [])
            elif kind == "deleted":
                self.labels.pop(mid, None)
            elif kind == "labels":
                assert mid in self.labels, (seq, mid, "labels of a message the feed never added")
                self.labels[mid] |= set(c["labels_added"] or [])
                self.labels[mid] -= set(c["labels_removed"] or [])
            else:
                assert kind == "content" and mid in self.labels, c


def read_sql(stack, uid, copy):
    while True:
        rows = stack.query("SELECT seq, gmail_id, kind, labels_added, labels_removed FROM"
                           " gmailsync.changes WHERE user_id = %s AND seq > %s ORDER BY seq"
                           " LIMIT 300", (uid, copy.last))
        if not rows:
            return
        copy.apply([{"seq": r[0], "message_id": r[1], "kind": r[2], "labels_added": r[3],
                     "labels_removed": r[4]} for r in rows])


def read_http(stack, user, copy, limit=250):
    while True:
        r = requests.get(stack.api + "/changes", params={"since": copy.last, "limit": limit},
                         cookies={"session": user["session"]}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store"
        body = r.json()
        copy.apply(body["changes"])
        assert body["next"] == copy.last
        if not body["has_more"]:
            return body


def assert_copy_is_the_mailbox(stack, uid, copy):
    stored = {r[0]: set(r[1]) for r in stack.query(
        "SELECT gmail_id, label_ids FROM gmailsync.mailbox WHERE user_id = %s", (uid,))}
    assert set(copy.labels) == set(stored), (len(copy.labels), len(stored))
    bad = [m for m in stored if copy.labels[m] != stored[m]]
    assert not bad, [(m, copy.labels[m], stored[m]) for m in bad[:5]]


def sync(stack, worker, user, **conf):
    tid = new_task(stack, user["user_id"], force_full=conf.pop("force_full", False))
    run = worker.run(tid, **conf)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    return run


def test_a_consumer_rebuilds_the_mailbox_from_the_feed_through_kills_and_a_restart(stack, gmail,
                                                                                   worker,
                                                                                   expect_log):
    expect_log(OUTAGE_LOG)
    user = stack.add_user(messages=600)
    email, uid = user["email"], user["user_id"]
    by_sql, by_http = Copy(), Copy()

    # a first full sync, killed part way: what it committed is fed, the rest never is
    gmail.fault(method="batch", mode="latency", seconds=0.05, count=-1)
    proc = worker.start(new_task(stack, uid), parallel=1)
    wait_for("200 stored", lambda: stack.query(
        "SELECT count(*) FROM gmailsync.messages WHERE user_id = %s", (uid,))[0][0] >= 200, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    wait_for("the killed worker's session to end", lambda: not stack.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'gmailsync-worker%%'"), 30)
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'worker_crashed',"
                " error_message = 'killed', finished_at = now() WHERE user_id = %s"
                " AND state = 'RUNNING'", (uid,))
    gmail.clear_faults()
    read_sql(stack, uid, by_sql)
    read_http(stack, user, by_http)
    assert by_sql.last == by_http.last > 0

    # the resumed full sync, then changes in Gmail and an incremental sync across a restart
    sync(stack, worker, user)
    ids = gmail.ids(email)
    gmail.add(email, 30)
    gmail.delete(email, ids[:12])
    gmail.relabel(email, ids[20:80], add=["STARRED", "Label_2"], remove=["INBOX"])
    gmail.relabel(email, ids[40:50], remove=["STARRED"])
    read_sql(stack, uid, by_sql)                 # part way, as a live consumer does
    pg_ctl("restart", "-m", "fast")
    sync(stack, worker, user)
    read_http(stack, user, by_http)
    # archive mode, and a content backfill after a metadata sync
    gmail.delete(email, gmail.ids(email)[:5])
    sync(stack, worker, user, deletions="keep")
    gmail.add(email, 8)
    sync(stack, worker, user, content="metadata")
    run = sync(stack, worker, user)
    assert "backfilled=8 " in run.events("task.succeeded")[0]
    # a forced full sync changes nothing that is not changed: no change at all
    read_sql(stack, uid, by_sql)
    before = by_sql.last
    sync(stack, worker, user, force_full=True, deletions="keep")
    read_sql(stack, uid, by_sql)
    assert by_sql.last == before, "a full sync of an unchanged mailbox fed changes"

    read_http(stack, user, by_http)
    for copy in (by_sql, by_http):
        assert copy.seen == list(range(1, copy.last + 1))
        assert_copy_is_the_mailbox(stack, uid, copy)
    assert by_sql.last == by_http.last == stack.query(
        "SELECT last_seq FROM gmailsync.change_seq WHERE user_id = %s", (uid,))[0][0]
    kinds = dict(stack.query("SELECT kind, count(*) FROM gmailsync.changes WHERE user_id = %s"
                             " GROUP BY kind", (uid,)))
    assert set(kinds) == {"added", "deleted", "labels", "content"}, kinds
    assert_table_equals_mailbox(stack, gmail, user)


def test_a_change_rolled_back_never_appears_and_numbers_stay_gap_free(stack, gmail, worker):
    user = stack.add_user(messages=20)
    uid = user["user_id"]
    sync(stack, worker, user)
    last = stack.query("SELECT last_seq FROM gmailsync.change_seq WHERE user_id = %s", (uid,))[0][0]
    assert last == 20
    conn = stack.db()
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO gmailsync.messages (user_id, gmail_id) VALUES (%s, 'abc0')",
                        (uid,))
            cur.execute("UPDATE gmailsync.messages SET label_ids = label_ids || '{X}'"
                        " WHERE user_id = %s", (uid,))
        conn.rollback()
        with conn.cursor() as cur:                       # a statement that fails half way
            try:
                cur.execute("INSERT INTO gmailsync.messages (user_id, gmail_id) VALUES"
                            " (%s, 'abc1'), (%s, '')", (uid, uid))
            except psycopg2.Error:
                pass
        conn.rollback()
    finally:
        conn.close()
    assert stack.query("SELECT last_seq FROM gmailsync.change_seq WHERE user_id = %s",
                       (uid,))[0][0] == 20
    assert stack.query("SELECT max(seq), count(*) FROM gmailsync.changes WHERE user_id = %s",
                       (uid,))[0] == (20, 20)
    # the next change takes 21
    stack.query("UPDATE gmailsync.messages SET label_ids = label_ids || '{Y}' WHERE user_id = %s"
                " AND gmail_id = (SELECT min(gmail_id) FROM gmailsync.messages WHERE user_id = %s)",
                (uid, uid))
    assert stack.query("SELECT seq, kind, labels_added FROM gmailsync.changes WHERE user_id = %s"
                       " AND seq > 20", (uid,)) == [(21, "labels", ["Y"])]


def test_http_feed_pages_refuses_bad_input_and_says_gone_past_the_retention(stack, gmail, worker):
    user = stack.add_user(messages=40)
    other = stack.add_user(messages=3)
    uid = user["user_id"]
    sync(stack, worker, user)
    sync(stack, worker, other)
    cookies = {"session": user["session"]}
    r = requests.get(stack.api + "/changes", params={"limit": 15}, cookies=cookies, timeout=30)
    body = r.json()
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert [c["seq"] for c in body["changes"]] == list(range(1, 16))
    assert body["has_more"] and body["next"] == 15 and body["newest"] == 40
    c = body["changes"][0]
    assert set(c) == {"seq", "message_id", "kind", "labels_added", "labels_removed",
                      "history_id", "at"} and c["kind"] == "added"
    # only the owner's changes: the other user's feed starts at 1 too, with its own ids
    theirs = requests.get(stack.api + "/changes", cookies={"session": other["session"]},
                          timeout=30).json()
    assert [x["seq"] for x in theirs["changes"]] == [1, 2, 3]
    assert not {x["message_id"] for x in theirs["changes"]} & set(
        r[0] for r in stack.query("SELECT gmail_id FROM gmailsync.messages WHERE user_id = %s",
                                  (uid,)))
    # bad input: 400 problems; no session: 401
    for params in ({"since": "-1"}, {"since": "abc"}, {"since": "1e3"}, {"limit": "0"},
                   {"limit": "1001"}, {"limit": ""}, {"since": "9" * 30}, {"since": "+5"},
                   {"since": " 5"}, {"limit": "5 "}, {"since": "0x10"}):
        r = requests.get(stack.api + "/changes", params=params, cookies=cookies, timeout=30)
        assert r.status_code == 400, (params, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    assert requests.get(stack.api + "/changes", timeout=30).status_code == 401
    assert requests.post(stack.api + "/changes", cookies=cookies, timeout=30).status_code == 405
    # past the retention: the daemon's purge (as it runs it) makes an old cursor 410 Gone
    stack.query("UPDATE gmailsync.changes SET created_at = now() - interval '8 days'"
                " WHERE user_id = %s AND seq <= 30", (uid,))
    purged = wait_for("the daemon's purge", lambda: stack.query(
        "SELECT purged_through FROM gmailsync.change_seq WHERE user_id = %s", (uid,))[0][0] == 30,
        timeout=30)
    assert purged
    r = requests.get(stack.api + "/changes", params={"since": 10}, cookies=cookies, timeout=30)
    assert r.status_code == 410 and r.headers["Content-Type"].startswith("application/problem+json")
    assert "40" in r.json()["detail"]
    r = requests.get(stack.api + "/changes", params={"since": 30}, cookies=cookies, timeout=30)
    assert r.status_code == 200 and [c["seq"] for c in r.json()["changes"]] == list(range(31, 41))
