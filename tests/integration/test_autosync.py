"""Scheduled syncs and change notifications (issue 16): GmailSyncAutoSync on two httpd hosts on
one database, the NOTIFY events on gmailsync_events, and cross-host pick-up through LISTEN."""
import concurrent.futures
import contextlib
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


def busy(stack):
    """The syncs queued, running or owed to a push (schema 13 on) of linked accounts."""
    return stack.query("SELECT t.user_id, t.state FROM gmailsync.sync_tasks t WHERE t.state IN"
                       " ('CREATED', 'RUNNING') UNION ALL SELECT a.user_id, 'push follow-up'"
                       " FROM gmailsync.accounts a WHERE a.refresh_token IS NOT NULL"
                       " AND to_jsonb(a) ->> 'push_pending_since' IS NOT NULL")


def park_linked(stack, timeout=60):
    """Unlinks every linked account (the scheduler then sees none of them); returns what
    unpark() needs to link them again. A worker that starts after the park finds no token and
    fails with auth_revoked, so the park waits until no sync is queued, running or owed to a
    push (an earlier test's follow-up). The park and a last look at the tasks share one
    transaction: its row locks wait for a scheduler's or a push pick's transaction, and if that
    made a task, the park is rolled back, never seen, and tried again. Past the deadline it
    parks anyway."""
    deadline = time.monotonic() + timeout
    while True:
        while busy(stack) and time.monotonic() < deadline:
            time.sleep(0.05)
        conn = stack.db()
        conn.autocommit = False
        try:
            with conn, conn.cursor() as cur:
                cur.execute("UPDATE gmailsync.accounts a SET refresh_token = NULL, access_token ="
                            " NULL FROM gmailsync.accounts o WHERE a.user_id = o.user_id AND"
                            " o.refresh_token IS NOT NULL RETURNING a.user_id, o.refresh_token,"
                            " o.access_token")
                parked = cur.fetchall()
                cur.execute("SELECT 1 FROM gmailsync.sync_tasks WHERE state IN ('CREATED', 'RUNNING')")
                if cur.fetchall() and time.monotonic() < deadline:
                    conn.rollback()
                    continue
            return parked
        finally:
            conn.close()


def unpark(stack, parked):
    if parked:
        with stack.db() as conn, conn.cursor() as cur:
            execute_values(cur, "UPDATE gmailsync.accounts a SET refresh_token = p.r,"
                           " access_token = p.a FROM (VALUES %s) AS p (u, r, a)"
                           " WHERE a.user_id = p.u", parked)
        conn.close()


@pytest.fixture(scope="module")
def auto(stack):
    # the scheduler syncs every linked account in the database: the accounts other test files
    # left behind (some with tokens made up for their purpose) are unlinked for this module and
    # linked again after it, so that the scheduler sees only this module's accounts
    parked = park_linked(stack)
    stack.base_conf = AUTO_CONF
    stack.reconfigure(None)
    yield stack
    stack.base_conf = ""
    stack.reconfigure(None)
    Gmail(stack.gmail_url).clear_faults()
    unpark(stack, parked)


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
            rows = auto.query("SELECT gmail_id, label_ids FROM gmailsync.messages WHERE user_id=%s",
                              (u["user_id"],))
            return (sorted(r[0] for r in rows) == sorted(gmail.ids(u["email"]))
                    and any(r[0] == ids[5] and "STARRED" in r[1] for r in rows))
        wait_for("the table to follow the mailbox", table_matches, 30)

        # the changes may arrive in one scheduled sync or be split over two (a round can fall
        # between the test's three changes): the events' counts add up either way
        def syncs():
            return [e for e in listener.events()[mark:]
                    if e.get("event") == "sync" and e["user_id"] == u["user_id"]]

        def totals():
            return (sum(e["added"] for e in syncs()), sum(e["deleted"] for e in syncs()),
                    sum(e["relabeled"] for e in syncs()))
        wait_for("the sync events to add up to the changes", lambda: totals() == (3, 2, 1), 15,
                 diagnose=syncs)
        assert all(e["trigger"] == "schedule" for e in syncs()), syncs()
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


# ------------------------------------------------------------------ throughput (issue 21 item 4)

@contextlib.contextmanager
def fleet(stack, n, conf):
    """n new linked accounts (3 messages each) and only them, scheduled under `conf` (the base
    configuration meanwhile); the module's other accounts are unlinked meanwhile, and these after
    it. Yields their user ids."""
    parked = park_linked(stack)
    saved = stack.base_conf
    ids = []
    try:
        stack.base_conf = conf
        stack.reconfigure(None)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            ids = [u["user_id"] for u in pool.map(lambda _: stack.add_user(messages=3),
                                                   range(n))]
        yield ids
    finally:
        # nothing scheduled any more, the syncs under way end, then these accounts are unlinked
        # (a worker would fail auth_revoked on an account unlinked under it)
        stack.base_conf = ""
        stack.reconfigure(None)
        Gmail(stack.gmail_url).clear_faults()
        wait_for("the fleet's syncs to end", lambda: not stack.query(
            "SELECT 1 FROM gmailsync.sync_tasks WHERE user_id = ANY(%s) AND state IN"
            " ('CREATED', 'RUNNING')", (ids,)), 60, interval=0.2)
        stack.query("UPDATE gmailsync.accounts SET refresh_token = NULL, access_token = NULL"
                    " WHERE user_id = ANY(%s)", (ids,))
        stack.base_conf = saved
        stack.reconfigure(None)
        unpark(stack, parked)


def successes(stack, ids):
    """{user_id: seconds since its last SUCCEEDED task ended} (database clock)."""
    return dict(stack.query("SELECT user_id, extract(epoch FROM now() - max(finished_at))::float"
                            " FROM gmailsync.sync_tasks WHERE user_id = ANY(%s) AND"
                            " state = 'SUCCEEDED' GROUP BY user_id", (ids,)))


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values))) - 1))]


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def staleness(stack, ids, interval, seconds, every=3.0):
    """After a warm-up (every account synced once, then one interval more), the age of each
    account's last success every `every` seconds for `seconds`; and the duplicates: never two
    active tasks for one user, never a task created before the previous one of its user ended
    plus the interval (two tasks for one due moment). Returns (ages, report)."""
    wait_for("a first success of each of %d accounts" % len(ids),
             lambda: len(successes(stack, ids)) == len(ids), 60 + len(ids),
             interval=0.5, diagnose=lambda: "%d synced" % len(successes(stack, ids)))
    warm = time.time() + interval
    wait_for("the warm-up", lambda: time.time() >= warm, interval + 5, interval=0.5)
    ages, worst_active, t_end = [], 0, time.time() + seconds
    while time.time() < t_end:
        got = successes(stack, ids)
        assert len(got) == len(ids)
        ages += got.values()
        worst_active = max(worst_active, stack.query(
            "SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM gmailsync.sync_tasks"
            " WHERE user_id = ANY(%s) AND state IN ('CREATED', 'RUNNING', 'STUCK')"
            " GROUP BY user_id) x", (ids,))[0][0])
        time.sleep(every)  # the sampling period, not a wait for a condition
    early, failed, syncs, mean_ms = stack.query(
        "SELECT count(*) FILTER (WHERE n > 1 AND (prev_end IS NULL OR"
        "   created_at < prev_end + make_interval(secs => %s))),"
        " count(*) FILTER (WHERE state <> 'SUCCEEDED' AND finished_at IS NOT NULL), count(*),"
        " 1000 * avg(extract(epoch FROM finished_at - started_at))::float"
        " FROM (SELECT created_at, state, started_at, finished_at,"
        "   lag(finished_at) OVER w AS prev_end, row_number() OVER w AS n"
        "   FROM gmailsync.sync_tasks WHERE user_id = ANY(%s)"
        "   WINDOW w AS (PARTITION BY user_id ORDER BY created_at)) x", (interval, ids))[0]
    report = ("%d accounts every %ds, %d samples over %ds: age of the last success p50 %.1f s, "
              "p95 %.1f s, max %.1f s; %d syncs (mean %.0f ms), %d not SUCCEEDED; load %s"
              % (len(ids), interval, len(ages) // len(ids), seconds, percentile(ages, 0.5),
                 percentile(ages, 0.95), max(ages), syncs, mean_ms or 0, failed, load_average()))
    print("\n" + report)
    assert worst_active <= 1, report
    assert early == 0, "%d tasks created before their due moment: %s" % (early, report)
    assert failed == 0, report
    return ages, report, (mean_ms or 0) / 1000.0


def too_loaded_to_tell(n, interval, mean_s, workers=4):
    """Whether the machine was too loaded for the scheduler to show: the default workers could
    not give 1.25 times the starts the accounts need (on 2 shared cores a sync that takes 0.1 s
    idle takes 0.7 s at a load of 15, and then the CPU, not the scheduler, is the limit)."""
    return mean_s > 0 and workers / mean_s < 1.25 * n / interval


def test_60_accounts_every_10s_stay_fresh_with_the_default_workers(auto):
    """The scheduler starts a round when a worker's slot frees and accounts are due, not one
    round a second (at most GmailSyncMaxWorkers starts a second: 4/s, so every account waited
    ~15 s): 60 accounts every 10 s need ~6 starts a second, which the 4 default workers give
    even on a loaded machine (a sync takes 0.1-0.7 s here). The issue's 300 accounts every 30 s
    for 5 minutes is the soak form below."""
    with fleet(auto, 60, "GmailSyncAutoSync 10s\n") as ids:
        ages, report, mean_s = staleness(auto, ids, 10, 90)
        if percentile(ages, 0.95) > 12.0 and too_loaded_to_tell(60, 10, mean_s):
            pytest.skip("the machine is too loaded to measure the scheduler: " + report)
        assert percentile(ages, 0.95) <= 12.0, report


@pytest.mark.skipif(os.environ.get("GS_SOAK_AUTOSYNC") != "1",
                    reason="5 minutes: scripts/soak autosync runs it (GS_SOAK_AUTOSYNC=1)")
def test_300_accounts_every_30s_stay_fresh_with_the_default_workers(auto):
    """Issue 21's acceptance as stated: 300 accounts, GmailSyncAutoSync 30s, the default
    workers, 5 minutes: p95 of the age of the last success <= 36 s, no duplicate task."""
    with fleet(auto, 300, "GmailSyncAutoSync 30s\n") as ids:
        ages, report, _ = staleness(auto, ids, 30, 300, every=5.0)
        assert percentile(ages, 0.95) <= 36.0, report


def late_alert(stack):
    """(/health's autosync_late_s metric, its auto_sync object, whether it is among the alerts)"""
    h = requests.get(stack.api + "/health", timeout=10).json()
    return h["metrics"]["autosync_late_s"], h["auto_sync"], "autosync_late_s" in h["alerts"]


def metric_value(stack, name):
    text = requests.get(stack.api + "/metrics", timeout=10).text
    return float([line for line in text.splitlines() if line.startswith(name + " ")][0].split()[1])


def test_the_late_alert_fires_while_the_backlog_grows_and_clears_once_it_is_worked_off(auto):
    """Undersized on purpose: one worker, every Gmail answer 1 s late (a sync ~3 s), 12 accounts
    due at once. The most overdue account's lateness passes GmailSyncAutoSyncLateAlertAfter:
    /health alerts (status degraded) and /metrics says so; with the workers back the backlog is
    worked off and the alert clears."""
    tail = "GmailSyncAutoSync 60s\nGmailSyncAutoSyncLateAlertAfter 3s\n"
    gmail = Gmail(auto.gmail_url)
    gmail.fault(method="*", mode="latency", seconds=1.0, count=-1)
    with fleet(auto, 12, tail + "GmailSyncMaxWorkers 1\n") as ids:
        metric, sched, alerting = wait_for("the late alert", lambda: (
            lambda m: m if m[2] else None)(late_alert(auto)), 60, interval=0.5)
        assert metric["value"] > 3.0 and metric["threshold"] == 3.0 and metric["alert"], metric
        assert sched["due"] >= 1 and sched["late_s"] > 3.0, sched
        assert requests.get(auto.api + "/health", timeout=10).json()["status"] == "degraded"
        assert metric_value(auto, "gmailsync_autosync_late_seconds") > 3.0
        assert metric_value(auto, "gmailsync_autosync_late_alert_after_seconds") == 3.0
        assert metric_value(auto, 'gmailsync_autosync_accounts{state="due"}') >= 1
        # accounts are due and the one worker is busy: no busy loop, a round a second that needs
        # no query (no room) and one when the worker's slot frees
        rounds0, t0 = metric_value(auto, "gmailsync_autosync_rounds_total"), time.time()
        ended0 = auto.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = ANY(%s)"
                            " AND finished_at IS NOT NULL", (ids,))[0][0]
        time.sleep(6)  # a measuring window, not a wait for a condition
        rounds = metric_value(auto, "gmailsync_autosync_rounds_total") - rounds0
        ended = auto.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = ANY(%s)"
                           " AND finished_at IS NOT NULL", (ids,))[0][0] - ended0
        assert rounds <= 2 * ended + (time.time() - t0) + 3, (rounds, ended)
        gmail.clear_faults()
        auto.base_conf = tail
        auto.reconfigure(None)
        metric, sched, alerting = wait_for("the alert to clear", lambda: (
            lambda m: m if not m[2] and m[1]["due"] == 0 else None)(late_alert(auto)), 60,
            interval=0.5)
        assert metric["value"] == 0 and not metric["alert"], metric
        assert metric_value(auto, "gmailsync_autosync_late_seconds") == 0
