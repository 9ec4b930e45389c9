"""Gmail says "slow down" or "unavailable" mid-sync (issue 17, item 7 and 8): the retry budget is
a time without a successful answer, not a count of failed answers; while a worker waits, the task
JSON says so (`retrying`); a long Retry-After does not trip the stall watchdog or stuck detection;
a Gmail that never recovers fails the task within the budget with a clear code.

The stack runs its workers through tests/browser/lib/quick-backoff-worker (backoff 50-200 ms) and
the faults set short Retry-After values, so that a storm of 100 answers takes seconds, not
minutes; the production defaults are untouched.
"""
import json
import os
import re
import threading
import time

import pytest
import requests

from conftest import ROOT, wait_for
from gsworker import assert_table_equals_mailbox

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
QUICK_WORKER = os.path.join(ROOT, "tests", "browser", "lib", "quick-backoff-worker")


def reconfigure(stack, shared_tmp, text):
    path = os.path.join(shared_tmp, "retrying.conf")
    with open(path, "w") as f:
        f.write('GmailSyncWorker "%s"\n%s' % (QUICK_WORKER, text))
    os.chmod(path, 0o644)
    stack.reconfigure(path)


@pytest.fixture
def quick(stack, shared_tmp):
    """Workers with a short backoff; the test's own directives follow."""
    def apply(text=""):
        reconfigure(stack, shared_tmp, text)
    yield apply
    stack.reconfigure(None)


def start(stack, user):
    r = requests.post(stack.api + "/smart", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code in (200, 202), r.text
    return r.json()["task_id"]


def db_task(stack, tid):
    row = stack.query("SELECT state, error_code, error_message, retry_reason, retry_attempt,"
                      " extract(epoch FROM finished_at - started_at)::float8"
                      " FROM gmailsync.sync_tasks WHERE task_id = %s", (tid,))[0]
    return dict(zip(("state", "error_code", "error_message", "retry_reason", "retry_attempt",
                     "duration_s"), row))


class Watcher:
    """Polls /progress (board), /status (PostgreSQL) and reads the SSE stream of one task until
    it ends, keeping every distinct `retrying` it saw."""

    def __init__(self, stack, user, tid):
        self.stack, self.user, self.tid = stack, user, tid
        self.polled, self.status, self.streamed, self.final = [], [], [], None
        self.stream_error = None
        self.thread = threading.Thread(target=self._stream, daemon=True)
        self.thread.start()

    def _stream(self):
        try:
            with requests.get("%s/progress/%s" % (self.stack.api, self.tid), stream=True,
                              timeout=60, cookies={"session": self.user["session"]},
                              headers={"Accept": "text/event-stream"}) as r:
                for line in r.iter_lines(decode_unicode=True):
                    if line and line.startswith("data: "):
                        task = json.loads(line[6:])
                        if task.get("retrying"):
                            self.streamed.append(task["retrying"])
                        if task["state"] not in ("CREATED", "RUNNING"):
                            return
        except requests.RequestException as e:    # reported by the test if it matters
            self.stream_error = e

    def run(self, timeout):
        cookies = {"session": self.user["session"]}
        deadline = time.time() + timeout
        while time.time() < deadline:
            task = requests.get("%s/progress/%s" % (self.stack.api, self.tid), cookies=cookies,
                                timeout=10).json()
            if task["retrying"]:
                self.polled.append(task["retrying"])
            st = requests.get(self.stack.api + "/status", cookies=cookies, timeout=10).json()
            if st["task"] and st["task"]["task_id"] == self.tid and st["task"]["retrying"]:
                self.status.append(st["task"]["retrying"])
            if task["state"] not in ("CREATED", "RUNNING"):
                self.final = task
                self.thread.join(10)
                return task
            time.sleep(0.05)
        raise AssertionError("task %s did not end in %ss" % (self.tid, timeout))


def check_retrying(seen, reason):
    assert seen, "no retrying state was shown"
    for r in seen:
        assert set(r) == {"reason", "until", "attempt"}, r
        assert RFC3339.match(r["until"]) and r["attempt"] >= 1, r
    assert reason in {r["reason"] for r in seen}, seen


def test_a_storm_of_100_rate_limit_answers_mid_sync_ends_succeeded(stack, gmail, quick):
    quick("")
    user = stack.add_user(messages=700)
    mb = user["email"]
    # 100 answers, as Gmail gives them, after the first batches went through: whole batches
    # refused with 429 (two with Retry-After: 2, the rest with 0) and 403 userRateLimitExceeded
    # (no Retry-After, as Gmail), per-part 429s inside 200 batches, and the modern 403
    # rateLimitExceeded on the second listing page
    storm = [
        dict(method="batch", status=429, retry_after=2, count=2, after=2),
        dict(method="batch", status=403, reason="userRateLimitExceeded", count=28, after=2),
        dict(method="messages.get", batch_part_status=429, retry_after=0, count=30, after=150),
        dict(method="messages.list", status=403, reason="rateLimitExceeded", count=20, after=1),
        dict(method="batch", status=429, retry_after=0, count=20, after=2),
    ]
    assert sum(f["count"] for f in storm) == 100
    for f in storm:
        gmail.fault(email=mb, **f)
    gmail.reset_stats()
    t0 = time.time()
    tid = start(stack, user)
    watcher = Watcher(stack, user, tid)
    final = watcher.run(180)
    took = time.time() - t0
    t = db_task(stack, tid)
    assert final["state"] == "SUCCEEDED", (final, t)
    assert final["retrying"] is None and t["retry_reason"] is None and t["retry_attempt"] is None
    assert gmail._call("GET", "/faults")["faults"] == [], "part of the storm never fired"
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
    check_retrying(watcher.polled, "rate_limited")      # this host's board
    check_retrying(watcher.status, "rate_limited")      # PostgreSQL (what other hosts answer)
    check_retrying(watcher.streamed, "rate_limited")    # the event stream
    print("storm of 100: SUCCEEDED in %.1f s (task %.1f s), %d retrying samples"
          % (took, t["duration_s"], len(watcher.polled)))


def test_a_persistent_503_fails_within_the_budget_and_only_that_mailbox(stack, gmail, quick,
                                                                        expect_log):
    expect_log(r"event=task\.failed .*error=gmail_unavailable")
    quick("GmailSyncRetryBudget 3s\n")
    bad, good = stack.add_user(messages=300), stack.add_user(messages=300)
    # the email filter applies to the outer batch: only `bad`'s batches fail, for good
    gmail.fault(method="batch", status=503, count=-1, after=1, email=bad["email"])
    tid_bad = start(stack, bad)
    tid_good = start(stack, good)
    watcher = Watcher(stack, bad, tid_bad)
    final = watcher.run(60)
    t = db_task(stack, tid_bad)
    assert (final["state"], final["error"]["code"]) == ("FAILED", "gmail_unavailable"), final
    assert "503" in t["error_message"] and "without a successful answer" in t["error_message"]
    assert "retry budget 3 s" in t["error_message"]
    # the budget counts from the last successful answer (the first batch): the whole task,
    # listing included, ends within budget plus a little
    assert t["duration_s"] < 3 + 2.5, t
    assert final["retrying"] is None and t["retry_reason"] is None
    check_retrying(watcher.polled, "unavailable")
    check_retrying(watcher.status, "unavailable")
    wait_for("the other mailbox's sync", lambda: db_task(stack, tid_good)["state"] == "SUCCEEDED", 60)
    assert_table_equals_mailbox(stack, gmail, good, check_fields=False)


def test_a_long_retry_after_keeps_the_heartbeat_past_the_stuck_threshold(stack, gmail, quick):
    # stall_limit is half of StuckAfter (1 s): a 4 s Retry-After without any answer from Gmail
    # must neither stop the heartbeat nor let the rescue mark the task STUCK
    quick("GmailSyncStuckAfter 2s\nGmailSyncHeartbeat 250ms\n")
    user = stack.add_user(messages=200)
    gmail.fault(method="batch", status=429, retry_after=4, count=1, after=1, email=user["email"])
    tid = start(stack, user)
    watcher = Watcher(stack, user, tid)
    final = watcher.run(60)
    t = db_task(stack, tid)
    assert final["state"] == "SUCCEEDED", (final, t)
    assert t["duration_s"] >= 4, t
    assert gmail._call("GET", "/faults")["faults"] == []
    check_retrying(watcher.polled, "rate_limited")
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
