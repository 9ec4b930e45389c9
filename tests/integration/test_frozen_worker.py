"""A worker frozen inside its transaction (issue 21, item 1). SIGSTOP, a stalled disk, a debugger:
whatever stops a worker between two statements of a transaction leaves its session idle in that
transaction, holding the task's row. Nothing else may wait on that lock without bound: not the
daemon's rescue (every other task of the host waits behind it), not /health, not a start.

The freeze is made deterministic: the test holds a lock on a message row that only the worker's
final transaction touches (the full sync deletes rows it did not list, after it marked the task
SUCCEEDED in the same transaction), so the worker waits inside that transaction; it is stopped
there, and the test lets go of the lock."""
import os
import signal
import subprocess
import threading
import time

import requests

from conftest import wait_for

STUCK_AFTER = 4  # GmailSyncStuckAfter (s): the worker's idle-in-transaction limit is 1 s


def start(stack, user):
    return requests.post(stack.api + "/smart", json={"force_full": False},
                         cookies={"session": user["session"]}, timeout=10)


def task_row(stack, task_id):
    return stack.query("SELECT state, error_code, worker_pid FROM gmailsync.sync_tasks"
                       " WHERE task_id = %s", (task_id,))[0]


def worker_backend(stack, task_id):
    rows = stack.query("SELECT state, wait_event_type FROM pg_stat_activity"
                       " WHERE application_name = %s", ("gmailsync-worker " + task_id,))
    return rows[0] if rows else None


class Watch(threading.Thread):
    """Polls /health (1 s timeout) and the longest lock wait in the cluster until stopped."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack, self.stop_at = stack, None
        self.health = []      # (status or exception name, seconds)
        self.max_lock_wait = 0.0
        self.done = threading.Event()

    def run(self):
        conn = self.stack.db()
        conn.autocommit = True
        try:
            while not self.done.is_set():
                t0 = time.monotonic()
                try:
                    code = requests.get(self.stack.api + "/health", timeout=1).status_code
                except requests.RequestException as e:
                    code = type(e).__name__
                self.health.append((code, time.monotonic() - t0))
                with conn.cursor() as cur:
                    cur.execute("SELECT COALESCE(max(extract(epoch FROM now() - state_change)), 0)"
                                " FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                " AND datname = current_database()")
                    self.max_lock_wait = max(self.max_lock_wait, float(cur.fetchone()[0]))
                self.done.wait(0.2)
        finally:
            conn.close()


def freeze_one(stack):
    """Starts a full sync of a new user and freezes its worker inside the final transaction.
    Returns (user, task_id, worker pid, the time of the freeze)."""
    user = stack.add_user(messages=40)
    # a row the mailbox no longer has: the full sync's final transaction deletes it
    stack.query("INSERT INTO gmailsync.messages (user_id, gmail_id, thread_id, history_id,"
                " internal_date, label_ids) VALUES (%s, 'zz-gone', 'zz-gone', 1, now(), '{}')"
                " RETURNING 1", (user["user_id"],))
    holder = stack.db()
    holder.autocommit = False   # the lock is held until the rollback below
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM gmailsync.messages WHERE user_id = %s AND gmail_id ="
                        " 'zz-gone' FOR UPDATE", (user["user_id"],))
        r = start(stack, user)
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]
        wait_for("the worker to wait inside its final transaction",
                 lambda: (worker_backend(stack, tid) or (None, None))[1] == "Lock", 30,
                 diagnose=lambda: (task_row(stack, tid), worker_backend(stack, tid)))
        pid = task_row(stack, tid)[2]
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
    finally:
        holder.rollback()
        holder.close()
    # the statement it waited for completes; the worker, stopped, never sends the next one
    wait_for("the worker's session idle in its transaction",
             lambda: (worker_backend(stack, tid) or (None,))[0] in (
                 "idle in transaction", None), 5)
    return user, tid, pid, frozen_at


def test_a_worker_frozen_inside_its_transaction_five_times_wedges_nothing(stack, gmail, tmp_path,
                                                                          expect_log):
    expect_log(r"event=task\.stuck|event=worker\.killed|event=task\.failed .*error=stuck"
               r"|event=worker\.stalled|terminating connection because of idle-in-transaction"
               r"|idle-in-transaction timeout")
    extra = tmp_path / "frozen.conf"
    extra.write_text(f"GmailSyncHeartbeat 1s\nGmailSyncStuckAfter {STUCK_AFTER}s\n")
    stack.reconfigure(str(extra))
    watch = Watch(stack)
    watch.start()
    pids = []
    try:
        for _ in range(5):
            user, tid, pid, frozen_at = freeze_one(stack)
            pids.append(pid)
            # other users' syncs are claimed and finish while the worker stays frozen
            others = [stack.add_user(messages=5) for _ in range(2)]
            other_tids = [start(stack, o).json()["task_id"] for o in others]
            for o in other_tids:
                wait_for("another user's sync to finish", lambda: task_row(stack, o)[0]
                         == "SUCCEEDED", 15, diagnose=lambda: task_row(stack, o))
            # the frozen task leaves RUNNING within the stuck threshold + 5 s
            wait_for("the frozen task to leave RUNNING", lambda: task_row(stack, tid)[0]
                     not in ("RUNNING",), STUCK_AFTER + 5, diagnose=lambda: task_row(stack, tid))
            assert time.monotonic() - frozen_at <= STUCK_AFTER + 5
            final = wait_for("the frozen task to end FAILED", lambda: (lambda r: r if r[0] ==
                             "FAILED" else None)(task_row(stack, tid)), 10)
            assert final[1] == "stuck", final
            # and its user can start again: a new task, which succeeds
            r = start(stack, user)
            assert r.status_code == 202 and r.json()["task_id"] != tid, r.text
            new = r.json()["task_id"]
            wait_for("the user's next sync", lambda: task_row(stack, new)[0] == "SUCCEEDED", 30,
                     diagnose=lambda: task_row(stack, new))
            assert not stack.query("SELECT 1 FROM gmailsync.messages WHERE user_id = %s AND"
                                   " gmail_id = 'zz-gone'", (user["user_id"],))
    finally:
        watch.done.set()
        watch.join(10)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stack.reconfigure(None)
    slow = [h for h in watch.health if h[0] != 200 or h[1] > 1.0]
    assert watch.health and not slow, (slow[:5], len(watch.health))
    assert watch.max_lock_wait < 3.0, watch.max_lock_wait
    # the daemon killed each frozen worker (SIGKILL reaches a stopped process)
    for pid in pids:
        wait_for("the frozen worker gone", lambda: not os.path.exists(f"/proc/{pid}") or open(
            f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z", 10)
