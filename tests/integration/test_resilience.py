"""What a deployment sees every week (issue 10): PostgreSQL restarted or stopped mid-sync, a
click right after a cancel, a task another process marked STUCK, a worker that is alive but goes
nowhere. No outage, no ghost task, the mailbox exact."""
import contextlib
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import OUTAGE_LOG, SANITIZE, OtherHttpd, pg_ctl, wait_for
from gsworker import assert_table_equals_mailbox

def start(stack, user, force_full=False):
    return requests.post(stack.api + "/smart", json={"force_full": force_full},
                         cookies={"session": user["session"]}, timeout=30)


def row(stack, task_id):
    return stack.query("SELECT state, processed, error_code FROM gmailsync.sync_tasks"
                       " WHERE task_id = %s", (task_id,))[0]


def answers(stack, user, task_id):
    """Status codes of start (repeat), progress, status and health, in that order."""
    c = {"session": user["session"]}
    out = []
    for method, url in (("POST", stack.api + "/smart"), ("GET", stack.api + "/progress/" + task_id),
                        ("GET", stack.api + "/status"), ("GET", stack.api + "/health")):
        try:
            out.append(requests.request(method, url, cookies=c, timeout=10).status_code)
        except requests.RequestException as e:
            out.append(f"{url}: {type(e).__name__}")
    return out


def all_2xx(codes):
    return all(isinstance(c, int) and 200 <= c < 300 for c in codes)


def test_postgres_restarted_mid_sync_three_times(stack, gmail, expect_log):
    expect_log(OUTAGE_LOG)
    n = 3000
    user = stack.add_user(messages=n)
    # 60 batches of 50 at 0.15 s each: the sync runs long enough for three restarts
    gmail.fault(method="messages.get", mode="latency", seconds=0.15, count=-1, email=user["email"])
    r = start(stack, user, force_full=True)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    recoveries = []
    for i in range(3):
        seen = row(stack, task_id)[1]
        wait_for("the sync to move on", lambda: row(stack, task_id)[1] > seen
                 or row(stack, task_id)[0] != "RUNNING", 30)
        pg_ctl("restart", "-m", "fast")
        back = time.monotonic()
        codes = wait_for("2xx from start, progress, status and health",
                         lambda: (lambda c: c if all_2xx(c) else None)(answers(stack, user, task_id)),
                         10)
        recoveries.append(time.monotonic() - back)
        assert all_2xx(codes)
    gmail.clear_faults()
    # the interrupted task ends, never left RUNNING
    # the worker waits for the database (db_wait) and carries on: the same task succeeds
    final = wait_for("the task to end", lambda: (lambda s: s if s[0] in ("SUCCEEDED", "FAILED")
                                                  else None)(row(stack, task_id)), 90)
    assert final[0] == "SUCCEEDED", final
    # the next sync completes too, and the mailbox is exact: same ids, no duplicates
    r = start(stack, user)
    assert r.status_code == 202, r.text
    wait_for("the next sync", lambda: row(stack, r.json()["task_id"])[0] == "SUCCEEDED", 60)
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
    print("recovery after each restart (s):", ["%.2f" % s for s in recoveries])


@pytest.mark.parametrize("run", range(3))
def test_a_brief_postgres_restart_mid_sync_the_same_worker_finishes(stack, gmail, expect_log, run):
    """A restart of a fraction of a second: the worker that was running is the one that ends the
    task SUCCEEDED (no respawn, no FAILED), and the mailbox is exact."""
    expect_log(OUTAGE_LOG)
    user = stack.add_user(messages=1000)
    gmail.fault(method="messages.get", mode="latency", seconds=0.1, count=-1, email=user["email"])
    task_id = start(stack, user, force_full=True).json()["task_id"]
    wait_for("a first batch stored", lambda: row(stack, task_id)[1] >= 100, 30)
    pid = stack.query("SELECT worker_pid FROM gmailsync.sync_tasks WHERE task_id = %s",
                      (task_id,))[0][0]
    assert pid
    t0 = time.monotonic()
    pg_ctl("restart", "-m", "fast")
    took = time.monotonic() - t0
    gmail.clear_faults()
    final = wait_for("the task to end", lambda: (lambda s: s if s[0] in ("SUCCEEDED", "FAILED")
                                                  else None)(row(stack, task_id)), 90)
    assert final[0] == "SUCCEEDED", final
    assert stack.query("SELECT worker_pid FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (task_id,))[0][0] == pid
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
    print("restart %d took %.2f s" % (run, took))


def test_a_transaction_cut_by_a_restart_runs_again_and_the_sync_succeeds(stack, gmail,
                                                                          expect_log):
    """The worker's final transaction (SUCCEEDED, the cursor, the removal of what Gmail no
    longer has) is held on a row lock when PostgreSQL restarts under it: the same worker runs the
    transaction again on a new connection and the task SUCCEEDS, instead of failing
    db_unavailable."""
    expect_log(OUTAGE_LOG)
    user = stack.add_user(messages=300)
    # a row Gmail does not have: only the final transaction touches it (to delete it)
    stack.query("INSERT INTO gmailsync.messages (user_id, gmail_id) VALUES (%s, 'gone-from-gmail')",
                (user["user_id"],))
    locker = stack.db()
    locker.autocommit = False    # the lock lasts until this connection dies in the restart
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT 1 FROM gmailsync.messages WHERE user_id = %s AND gmail_id ="
                        " 'gone-from-gmail' FOR UPDATE", (user["user_id"],))
        task_id = start(stack, user, force_full=True).json()["task_id"]
        wait_for("the final transaction waiting on the lock", lambda: stack.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event_type ="
            " 'Lock' AND xact_start IS NOT NULL", ("gmailsync-worker " + task_id,)), 60,
            diagnose=lambda: (row(stack, task_id), stack.query(
                "SELECT application_name, state, wait_event_type, left(query, 60) FROM"
                " pg_stat_activity WHERE datname = current_database()")))
        pid = stack.query("SELECT worker_pid FROM gmailsync.sync_tasks WHERE task_id = %s",
                          (task_id,))[0][0]
        log_start = stack.log_size()
        pg_ctl("restart", "-m", "fast")
    finally:
        locker.close()
    final = wait_for("the task to end", lambda: (lambda s: s if s[0] in ("SUCCEEDED", "FAILED")
                                                  else None)(row(stack, task_id)), 60)
    assert final[0] == "SUCCEEDED", final
    assert stack.query("SELECT worker_pid FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (task_id,))[0][0] == pid
    wait_for("the replay in the log", lambda: "event=db.transaction_replayed task=" + task_id
             in stack.log_since(log_start), 5)
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)


class Traffic:
    """Requests flowing through httpd's pooled connections while PostgreSQL restarts."""

    def __init__(self, stack, user):
        self.stack, self.cookies = stack, {"session": user["session"]}
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(4)]

    def loop(self):
        deadline = time.monotonic() + 300   # bounded, whatever happens to the test
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            for url in ("/status", "/health"):
                try:
                    requests.get(self.stack.api + url, cookies=self.cookies, timeout=5)
                except requests.RequestException:
                    pass

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)


@pytest.mark.parametrize("traffic", ["flowing", "idle"])
def test_after_each_of_five_restarts_a_new_start_runs_within_seconds(stack, gmail, expect_log,
                                                                    traffic):
    """PostgreSQL restarted five times in a row, with requests flowing through httpd's pooled
    connections or with every connection idle (and the daemon between its ticks): each time the
    API answers 2xx within 10 s and a start made right after the restart is RUNNING (or done)
    within 5 s of its answer (8 s under the sanitizers), claimed by a daemon whose connection
    died under it."""
    expect_log(OUTAGE_LOG)
    # a slot for every start: with the default 4, the earlier rounds' syncs (slowed by the
    # restarts) could all still run when the fifth start comes, and it would wait for a slot
    # rather than for the daemon (CI, under ASan: not claimed in 8 s)
    stack.reconfigure_text("GmailSyncMaxWorkers 8\n", "five-restarts.conf")
    try:
        five_restarts(stack, gmail, traffic)
    finally:
        stack.reconfigure(None)


def test_right_after_a_restart_requests_do_not_queue_behind_the_connection_pool(stack,
                                                                                 expect_log):
    """Requests that flow through a PostgreSQL restart shrink each child's mod_dbd pool (a
    connection that cannot be reset is dropped); APR then opens DBDMin connections while it
    holds the child's pool lock, and every request of that child waits. With DBDMin 16 the
    starts right after a restart took 6-11 s under ASan at a load of 10-14 (one in CI beyond
    its 10 s client timeout); with DBDMin 4, at most 1.4 s."""
    expect_log(OUTAGE_LOG)
    watcher = stack.add_user(messages=5)
    users = [stack.add_user(messages=5) for _ in range(3)]
    worst = []
    with Traffic(stack, watcher):
        for u in users:
            pg_ctl("restart", "-m", "fast")
            slowest, deadline = 0.0, time.monotonic() + 6
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    requests.post(stack.api + "/smart", cookies={"session": u["session"]},
                                  timeout=30)
                except requests.RequestException:
                    pass
                slowest = max(slowest, time.monotonic() - t0)
            worst.append(round(slowest, 2))
    print("slowest start after each restart (s):", worst)
    assert max(worst) < 5, worst


def five_restarts(stack, gmail, traffic):
    watcher = stack.add_user(messages=5)
    users = [stack.add_user(messages=200) for _ in range(5)]
    for u in users:   # slow enough that RUNNING is observable, short enough to finish
        gmail.fault(method="messages.get", mode="latency", seconds=0.05, count=-1,
                    email=u["email"])
    figures = []
    with (Traffic(stack, watcher) if traffic == "flowing" else contextlib.nullcontext()):
        for u in users:
            if traffic == "idle":
                # nothing touches the database for a while: pooled connections sit idle and
                # the daemon is between ticks when the restart lands
                time.sleep(1.2)
            pg_ctl("restart", "-m", "fast")
            back = time.monotonic()
            resp = wait_for("a 2xx start after the restart", lambda: (
                lambda r: r if r is not None and r.status_code in (200, 202) else None)(
                    try_start(stack, u)), 10)
            answered = time.monotonic()
            tid = resp.json()["task_id"]
            # (measured: 0.4-0.9 s, ASan included; 3 s was missed in CI because the fifth start
            # found the four earlier syncs still running, the default cap: it waited for a slot)
            wait_for("the new task claimed", lambda: row(stack, tid)[0] in
                     ("RUNNING", "SUCCEEDED"), 8 if SANITIZE else 5,
                     diagnose=lambda: stack.query("SELECT task_id, state, processed, total,"
                                                  " worker_pid FROM gmailsync.sync_tasks WHERE"
                                                  " state IN ('CREATED', 'RUNNING')"))
            claimed = time.monotonic()
            codes = answers(stack, u, tid)
            assert all_2xx(codes), codes
            figures.append((answered - back, claimed - answered))
    for u in users:
        tid = stack.query("SELECT task_id FROM gmailsync.sync_tasks WHERE user_id = %s"
                          " ORDER BY created_at DESC LIMIT 1", (u["user_id"],))[0][0]
        wait_for("every task to succeed", lambda: row(stack, str(tid))[0] == "SUCCEEDED", 60,
                 diagnose=lambda: stack.query("SELECT task_id, state, processed, total,"
                                              " error_code, error_message, worker_pid FROM"
                                              " gmailsync.sync_tasks WHERE task_id = %s", (tid,)))
    gmail.clear_faults()
    print("answer after restart / claim after answer (s):",
          ["%.2f/%.2f" % f for f in figures])


def try_start(stack, user):
    try:
        return start(stack, user)
    except requests.RequestException:
        return None


def test_postgres_down_for_seconds_503s_then_recovers_and_the_sync_finishes(stack, gmail,
                                                                            expect_log):
    expect_log(OUTAGE_LOG)
    user = stack.add_user(messages=1500)
    gmail.fault(method="messages.get", mode="latency", seconds=0.15, count=-1, email=user["email"])
    r = start(stack, user, force_full=True)
    task_id = r.json()["task_id"]
    wait_for("a first batch stored", lambda: row(stack, task_id)[1] >= 100, 30)
    pg_ctl("stop", "-m", "fast")
    try:
        # while it is down: only the documented 503, with Retry-After, as a JSON problem
        for method, url in (("POST", "/smart"), ("GET", "/status"), ("GET", "/progress/" + task_id),
                            ("GET", "/health")):
            resp = requests.request(method, stack.api + url, cookies={"session": user["session"]},
                                    timeout=10)
            if resp.status_code != 200:   # progress may come from this host's board
                assert resp.status_code == 503, (url, resp.status_code, resp.text)
                assert resp.headers.get("Retry-After")
                assert resp.headers["Content-Type"].startswith("application/problem+json")
        time.sleep(3)    # an outage of a few seconds, well within the worker's wait
    finally:
        stack.up()       # starts PostgreSQL again (and nothing else changes)
    wait_for("2xx again", lambda: all_2xx(answers(stack, user, task_id)), 10)
    gmail.clear_faults()
    # the worker waited for the database and carried on: the same task succeeds
    wait_for("the task to succeed", lambda: row(stack, task_id)[0] == "SUCCEEDED", 90)
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)


def test_a_worker_that_dies_during_an_outage_is_failed_once_the_database_is_back(
        stack, gmail, expect_log):
    expect_log(OUTAGE_LOG)
    user = stack.add_user(messages=1500)
    gmail.fault(method="messages.get", mode="latency", seconds=0.3, count=-1, email=user["email"])
    task_id = start(stack, user, force_full=True).json()["task_id"]
    wait_for("the worker", lambda: row(stack, task_id)[0] == "RUNNING", 10)
    pids = wait_for("the worker pid", lambda: subprocess.run(
        ["pgrep", "-f", "gmailsync-worker --task " + task_id], capture_output=True,
        text=True).stdout.split(), 10)
    pg_ctl("stop", "-m", "fast")
    try:
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass   # it ended by itself meanwhile: the daemon must record that end too
        time.sleep(1.5)  # the daemon reaps it while the database is away
    finally:
        stack.up()
    state = wait_for("the task FAILED worker_crashed",
                     lambda: (lambda s: s if s[0] != "RUNNING" else None)(row(stack, task_id)), 15)
    assert state[0] == "FAILED" and state[2] == "worker_crashed", state
    gmail.clear_faults()
    r = start(stack, user)
    assert r.status_code == 202, r.text


def test_start_cancel_start_never_returns_the_cancelled_task(stack, gmail):
    user = stack.add_user(messages=300)
    gmail.fault(method="messages.get", mode="latency", seconds=0.05, count=-1, email=user["email"])
    cookies = {"session": user["session"]}
    reused_cancelled = 0
    for _ in range(200):
        first = start(stack, user)
        assert first.status_code in (200, 202), first.text
        tid = first.json()["task_id"]
        c = requests.post(stack.api + "/cancel/" + tid, cookies=cookies, timeout=10)
        assert c.status_code in (202, 409), c.text
        second = start(stack, user)
        assert second.status_code in (200, 202), second.text
        if second.json()["task_id"] == tid and c.status_code == 202:
            reused_cancelled += 1
        # leave nothing running for the next round
        requests.post(stack.api + "/cancel/" + second.json()["task_id"], cookies=cookies,
                      timeout=10)
    assert reused_cancelled == 0
    assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = %s AND state"
                       " IN ('CREATED', 'RUNNING')", (user["user_id"],))[0][0] == 0


def test_a_start_while_the_running_task_is_stuck_creates_a_new_task(stack, gmail, expect_log):
    # the daemon finishes off a STUCK task of its own host: it kills the worker and fails it
    expect_log(r"event=worker\.killed .*reason=stuck|event=task\.failed .*error=stuck")
    user = stack.add_user(messages=2000)
    gmail.fault(method="messages.get", mode="latency", seconds=0.5, count=-1, email=user["email"])
    for _ in range(10):
        r = start(stack, user)
        assert r.status_code == 202, r.text
        stuck = r.json()["task_id"]
        wait_for("RUNNING on this host's board", lambda: requests.get(
            stack.api + "/progress/" + stuck, cookies={"session": user["session"]},
            timeout=5).json()["state"] == "RUNNING", 10)
        # another host's daemon (or the cleanup script) finds it stale
        stack.query("UPDATE gmailsync.sync_tasks SET state = 'STUCK', updated_at = now()"
                    " WHERE task_id = %s", (stuck,))
        again = start(stack, user)
        assert again.status_code == 202, again.text
        assert again.json()["task_id"] != stuck
        requests.post(stack.api + "/cancel/" + again.json()["task_id"],
                      cookies={"session": user["session"]}, timeout=10)
        stack.query("UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'stuck',"
                    " finished_at = now() WHERE task_id = %s AND state = 'STUCK'", (stuck,))


def test_the_board_drops_a_task_cancelled_elsewhere_and_its_worker_stops(stack, gmail):
    user = stack.add_user(messages=2000)
    gmail.fault(method="messages.get", mode="latency", seconds=0.5, count=-1, email=user["email"])
    tid = start(stack, user).json()["task_id"]
    wait_for("the worker", lambda: row(stack, tid)[0] == "RUNNING", 10)
    # another host cancels it: the database changes, this host's shared memory does not know
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now()"
                " WHERE task_id = %s", (tid,))
    wait_for("progress to say CANCELLED", lambda: requests.get(
        stack.api + "/progress/" + tid, cookies={"session": user["session"]},
        timeout=5).json()["state"] == "CANCELLED", 5)
    wait_for("the worker to stop", lambda: not subprocess.run(
        ["pgrep", "-f", "gmailsync-worker --task " + tid], capture_output=True).stdout, 5)


def test_a_worker_that_is_alive_but_goes_nowhere_stops_beating_and_ends_stuck(
        stack, gmail, tmp_path, expect_log):
    expect_log(r"event=worker\.stalled|event=task\.stuck|event=worker\.killed"
               r"|event=task\.failed .*error=stuck")
    extra = tmp_path / "stall.conf"
    extra.write_text("GmailSyncHeartbeat 1s\nGmailSyncStuckAfter 4s\n")
    stack.reconfigure(str(extra))
    try:
        user = stack.add_user(messages=500)
        # Gmail accepts the request and never answers: no progress, no error, for 25 s
        gmail.fault(method="messages.get", mode="stall", seconds=25, count=-1, email=user["email"])
        tid = start(stack, user).json()["task_id"]
        wait_for("RUNNING", lambda: row(stack, tid)[0] == "RUNNING", 10)
        t0 = time.monotonic()
        # the worker stops vouching for itself after 2 s without a step; the rescue finds the
        # heartbeat 4 s old, kills the local worker and fails the task
        final = wait_for("FAILED stuck", lambda: (lambda s: s if s[0] == "FAILED" else None)(
            row(stack, tid)), 15)
        assert final[2] == "stuck", final
        assert time.monotonic() - t0 < 12
        wait_for("the worker gone", lambda: not subprocess.run(
            ["pgrep", "-f", "gmailsync-worker --task " + tid], capture_output=True).stdout, 5)
        gmail.clear_faults()
        r = start(stack, user)
        assert r.status_code == 202, r.text
        wait_for("the next sync", lambda: row(stack, r.json()["task_id"])[0] == "SUCCEEDED", 60)
    finally:
        gmail.clear_faults()
        stack.reconfigure(None)


def test_a_cancel_on_another_host_is_seen_by_the_next_start_here(stack, gmail):
    """Two hosts on one PostgreSQL: a task running on either is cancelled through host B; the
    very next start through host A gets a new task, never the cancelled one."""
    other = OtherHttpd(stack, "httpd-b", int(stack.base_url.rsplit(":", 1)[1]) + 4).start()
    try:
        user = stack.add_user(messages=1000)
        gmail.fault(method="messages.get", mode="latency", seconds=0.2, count=-1,
                    email=user["email"])
        cookies = {"session": user["session"]}
        for _ in range(30):
            first = start(stack, user)
            assert first.status_code in (200, 202), first.text
            tid = first.json()["task_id"]
            wait_for("running", lambda: row(stack, tid)[0] == "RUNNING", 10)
            c = requests.post(other.api + "/cancel/" + tid, cookies=cookies, timeout=10)
            assert c.status_code == 202, c.text
            again = start(stack, user)
            assert again.status_code == 202, again.text
            assert again.json()["task_id"] != tid
            requests.post(other.api + "/cancel/" + again.json()["task_id"], cookies=cookies,
                          timeout=10)
    finally:
        gmail.clear_faults()
        errors = other.stop()
    assert not errors, "host B logged:\n" + "\n".join(errors)
