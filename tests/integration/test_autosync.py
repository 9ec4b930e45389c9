"""Scheduled syncs and change notifications (issue 16): GmailSyncAutoSync on two httpd hosts on
one database, the NOTIFY events on gmailsync_events, and cross-host pick-up through LISTEN."""
import json
import os
import select
import statistics
import time

import psycopg2
import pytest
from psycopg2.extras import execute_values
import requests

from conftest import OtherHttpd, wait_for
from gsworker import Gmail

AUTO_CONF = "GmailSyncAutoSync 3s\nGmailSyncAutoSyncBackoffMax 20s\nGmailSyncMaxWorkers 8\n"
FAILURES = r"event=task\.failed|error=(internal|auth_revoked)|auth_revoked|task\.succeeded"


@pytest.fixture(scope="module")
def auto(stack):
    # the scheduler syncs every linked account in the database: the accounts other test files
    # left behind (some with tokens made up for their purpose) are unlinked for this module and
    # linked again after it, so that the scheduler sees only this module's accounts
    parked = stack.query("UPDATE gmailsync.accounts a SET refresh_token = NULL, access_token ="
                         " NULL FROM gmailsync.accounts o WHERE a.user_id = o.user_id AND"
                         " o.refresh_token IS NOT NULL RETURNING a.user_id, o.refresh_token,"
                         " o.access_token")
    stack.base_conf = AUTO_CONF
    stack.reconfigure(None)
    yield stack
    stack.base_conf = ""
    stack.reconfigure(None)
    Gmail(stack.gmail_url).clear_faults()
    if parked:
        with stack.db() as conn, conn.cursor() as cur:
            execute_values(cur, "UPDATE gmailsync.accounts a SET refresh_token = p.r,"
                           " access_token = p.a FROM (VALUES %s) AS p (u, r, a)"
                           " WHERE a.user_id = p.u", parked)
        conn.close()


class Listener:
    """LISTEN gmailsync_events on its own connection; events() returns what arrived, parsed."""

    def __init__(self, stack):
        self.conn = stack.db()
        self.conn.cursor().execute("LISTEN gmailsync_events")
        self.seen = []

    def events(self, timeout=0.05):
        if select.select([self.conn], [], [], timeout)[0]:
            self.conn.poll()
            while self.conn.notifies:
                self.seen.append(json.loads(self.conn.notifies.pop(0).payload))
        return self.seen

    def close(self):
        self.conn.close()


def scheduled(stack, user_id):
    return stack.query("SELECT task_id::text, state, created_at, finished_at, error_code "
                       "FROM gmailsync.sync_tasks WHERE user_id = %s AND trigger = 'schedule' "
                       "ORDER BY created_at", (user_id,))


def test_twenty_accounts_two_hosts_exactly_once_never_too_often(auto):
    port = int(auto.base_url.rsplit(":", 1)[1]) + 5
    other = OtherHttpd(auto, "httpd-auto-b", port).start()
    try:
        users = [auto.add_user(messages=5) for _ in range(20)]
        ids = [u["user_id"] for u in users]

        def all_synced():
            rows = auto.query("SELECT count(DISTINCT user_id) FROM gmailsync.sync_tasks "
                              "WHERE user_id = ANY(%s) AND trigger = 'schedule' "
                              "AND state = 'SUCCEEDED'", (ids,))
            return rows[0][0] == 20
        wait_for("a SUCCEEDED scheduled task for each of 20 accounts", all_synced, 60)
        t_end = time.time() + 30
        while time.time() < t_end:
            worst = auto.query("SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM "
                               "gmailsync.sync_tasks WHERE user_id = ANY(%s) AND state IN "
                               "('CREATED', 'RUNNING', 'STUCK') GROUP BY user_id) x", (ids,))
            assert worst[0][0] <= 1
            time.sleep(0.1)
        for uid in ids:
            rows = scheduled(auto, uid)
            assert len(rows) >= 3, (uid, len(rows))
            for a, b in zip(rows, rows[1:]):
                # the next start waits for the interval after the previous end
                assert (b[2] - a[3]).total_seconds() >= 3.0, (uid, a, b)
        # a click during a scheduled sync gets that task back
        u = users[0]
        Gmail(auto.gmail_url).fault(method="messages.get", mode="latency", seconds=0.5,
                                    count=-1, email=u["email"])
        Gmail(auto.gmail_url).add(u["email"], 3)

        def running_scheduled():
            rows = auto.query("SELECT task_id::text FROM gmailsync.sync_tasks WHERE user_id=%s "
                              "AND trigger='schedule' AND state IN ('CREATED','RUNNING')",
                              (u["user_id"],))
            return rows[0][0] if rows else None
        tid = wait_for("a scheduled sync in progress", running_scheduled, 20)
        r = requests.post(auto.api + "/smart", json={}, cookies={"session": u["session"]},
                          timeout=30)
        assert r.status_code == 200 and r.json()["task_id"] == tid, r.text
        Gmail(auto.gmail_url).clear_faults()
    finally:
        assert other.stop() == []


def test_changes_between_syncs_arrive_with_the_counts(auto):
    gmail = Gmail(auto.gmail_url)
    listener = Listener(auto)
    try:
        u = auto.add_user(messages=10)
        wait_for("the first scheduled sync", lambda: any(
            e.get("event") == "sync" and e["user_id"] == u["user_id"]
            for e in listener.events()), 30)
        ids = gmail.ids(u["email"])
        mark = len(listener.seen)
        gmail.add(u["email"], 3)
        gmail.delete(u["email"], ids[:2])
        gmail.relabel(u["email"], ids[5:6], add=["STARRED"])

        def table_matches():
            listener.events()
            rows = auto.query("SELECT gmail_id FROM gmailsync.messages WHERE user_id=%s",
                              (u["user_id"],))
            return sorted(r[0] for r in rows) == sorted(gmail.ids(u["email"]))
        wait_for("the table to follow the mailbox", table_matches, 30)
        wait_for("the sync event of that sync", lambda: any(
            e.get("event") == "sync" and e["user_id"] == u["user_id"]
            for e in listener.events()[mark:]), 10)
        syncs = [e for e in listener.seen[mark:]
                 if e.get("event") == "sync" and e["user_id"] == u["user_id"]]
        assert (sum(e["added"] for e in syncs), sum(e["deleted"] for e in syncs),
                sum(e["relabeled"] for e in syncs)) == (3, 2, 1), syncs
        assert all(e["trigger"] == "schedule" for e in syncs)
        labels = auto.query("SELECT label_ids FROM gmailsync.messages WHERE user_id=%s AND "
                            "gmail_id=%s", (u["user_id"], ids[5]))
        assert "STARRED" in labels[0][0]
    finally:
        listener.close()


def test_listener_sees_each_state_in_order_and_nothing_rolled_back(auto):
    listener = Listener(auto)
    try:
        u = auto.add_user(messages=4)
        r = requests.post(auto.api + "/smart", json={}, cookies={"session": u["session"]},
                          timeout=30)
        assert r.status_code in (200, 202), r.text
        tid = r.json()["task_id"]

        def states():
            return [e["state"] for e in listener.events()
                    if e.get("event") == "task" and e["task_id"] == tid]
        wait_for("SUCCEEDED", lambda: "SUCCEEDED" in states(), 30)
        assert states() == ["CREATED", "RUNNING", "SUCCEEDED"]
        ev = [e for e in listener.seen if e.get("event") == "task" and e["task_id"] == tid]
        assert ev[-1]["processed"] == 4 and ev[-1]["user_id"] == u["user_id"]
        assert ev[-1]["error_code"] is None and ev[-1]["trigger"] in ("user", "schedule")
        # a start that fails inside its transaction sends nothing
        conn = psycopg2.connect(auto.pg_dsn)
        cur = conn.cursor()
        cur.execute("INSERT INTO gmailsync.sync_tasks (user_id) VALUES ('gone-user') "
                    "RETURNING task_id::text")
        ghost = cur.fetchone()[0]
        with pytest.raises(psycopg2.Error):
            cur.execute("SELECT 1 / 0")
        conn.rollback()
        cur.execute("SELECT pg_notify('gmailsync_events', '{\"event\": \"marker\"}')")
        conn.commit()
        conn.close()
        wait_for("the marker", lambda: any(e.get("event") == "marker"
                                           for e in listener.events()), 10)
        assert not [e for e in listener.seen if e.get("task_id") == ghost]
    finally:
        listener.close()


def synced_once(auto, expect_log):
    """A new account after its first scheduled success; the failures that follow are wanted."""
    expect_log(FAILURES)
    u = auto.add_user(messages=3)
    wait_for("a first scheduled success", lambda: any(
        r[1] == "SUCCEEDED" for r in scheduled(auto, u["user_id"])), 30)
    return Gmail(auto.gmail_url), u


def test_revoked_account_waits_for_a_new_link(auto, expect_log):
    gmail, u = synced_once(auto, expect_log)
    gmail.revoke(u["email"])
    wait_for("a failed scheduled sync", lambda: any(
        r[4] == "auth_revoked" for r in scheduled(auto, u["user_id"])), 30)
    n = len(scheduled(auto, u["user_id"]))
    time.sleep(8)  # observing an absence: more than two intervals with nothing scheduled
    assert len(scheduled(auto, u["user_id"])) == n
    start = auto.log_size()
    auto.query("UPDATE gmailsync.accounts SET updated_at = now() WHERE user_id = %s",
               (u["user_id"],))
    wait_for("a scheduled sync after the new link",
             lambda: len(scheduled(auto, u["user_id"])) > n, 15)
    # the token is still revoked at the fake: that sync fails too; its log line belongs to this
    # test, not to the next one (which expects no [warn])
    wait_for("the failure of the sync after the new link in the log",
             lambda: "user=%s " % u["user_id"] in auto.log_since(start)
             and "error=auth_revoked" in auto.log_since(start), 30)


def test_flaky_account_backs_off(auto, expect_log):
    gmail, u = synced_once(auto, expect_log)
    gmail.fault(status=400, count=-1, email=u["email"])
    try:
        def failures():
            return [r for r in scheduled(auto, u["user_id"]) if r[1] == "FAILED"]
        wait_for("three failed scheduled syncs", lambda: len(failures()) >= 3, 60)
        rows = failures()
        gaps = [(b[2] - a[3]).total_seconds() for a, b in zip(rows, rows[1:])]
        assert gaps[0] >= 6.0 and gaps[1] >= 12.0 and gaps[1] > gaps[0], gaps
    finally:
        gmail.clear_faults()


def pickup_times(stack, tries):
    """A task created while this host's daemon is paused, RUNNING on the other host: ms."""
    port = int(stack.base_url.rsplit(":", 1)[1]) + 6
    stack.base_conf = ""                          # no schedule: every task comes from a click
    stack.reconfigure(None)
    other = OtherHttpd(stack, "httpd-pickup-b", port).start()
    stack.base_conf = "GmailSyncMaxWorkers 0\n"  # host A paused
    stack.reconfigure(None)
    times = []
    try:
        users = [stack.add_user(messages=1) for _ in range(tries)]
        for u in users:
            r = requests.post(stack.api + "/smart", json={}, cookies={"session": u["session"]},
                              timeout=30)
            assert r.status_code == 202, r.text
            t0 = time.monotonic()
            tid = r.json()["task_id"]
            wait_for("RUNNING on host B", lambda: stack.query(
                "SELECT state FROM gmailsync.sync_tasks WHERE task_id=%s",
                (tid,))[0][0] != "CREATED", 10, interval=0.002)
            times.append((time.monotonic() - t0) * 1000)
    finally:
        assert other.stop() == []
    return times


def test_cross_host_pickup_through_listen(stack):
    tries = int(os.environ.get("GS_PICKUP_TRIES", "5"))
    times = pickup_times(stack, tries)
    try:
        p50 = statistics.median(times)
        p95 = sorted(times)[max(0, int(round(0.95 * len(times))) - 1)]
        print(f"\ncross-host pick-up over {len(times)} tries: p50 {p50:.1f} ms, "
              f"p95 {p95:.1f} ms, max {max(times):.1f} ms")
        assert p50 < 500, times   # generous: the poll alone would give ~500 ms on average
    finally:
        stack.base_conf = ""
        stack.reconfigure(None)
