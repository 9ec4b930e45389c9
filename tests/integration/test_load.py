"""Load across two hosts (issue 14): concurrent clients -- starts, progress polling and SSE streams
-- through two httpd instances on one PostgreSQL, with syncs really running. Whatever the load:
zero unexpected 5xx, zero users with two active tasks, zero lost tasks, every mailbox exact.

The fast form (100 clients x 15 s) runs in `scripts/test`; `scripts/soak load` runs 500 clients x
60 s (GS_LOAD_CLIENTS, GS_LOAD_SECONDS) and also holds httpd's and the daemons' RSS flat after
warm-up. Figures (req/s, p50/p99 per endpoint, RSS) are printed (pytest -s shows them).
"""
import os
import re

import pytest
import requests

from conftest import OtherHttpd, wait_for
from gsworker import assert_table_equals_mailbox
from loadgen import Load, Sampler
from test_fault_matrix import ghosts

CLIENTS = int(os.environ.get("GS_LOAD_CLIENTS", "100"))
SECONDS = float(os.environ.get("GS_LOAD_SECONDS", "15"))
STRICT_RSS = os.environ.get("GS_LOAD_STRICT_RSS") == "1"    # scripts/soak load


def daemon_of(log_text):
    pids = re.findall(r"event=daemon\.ready pid=(\d+)", log_text)
    return int(pids[-1]) if pids else None


@pytest.fixture
def host_b(stack):
    other = OtherHttpd(stack, "httpd-load", int(stack.base_url.rsplit(":", 1)[1]) + 4).start()
    yield other
    errors = other.stop()
    assert not errors, "host B logged:\n" + "\n".join(errors)


def test_load_on_two_hosts_loses_nothing(stack, gmail, host_b):
    n_users = max(4, CLIENTS // 5)
    users = [stack.add_user(messages=150) for _ in range(n_users)]
    # syncs that really take a while: each batch answer waits a little
    for u in users:
        gmail.fault(method="messages.get", mode="latency", seconds=0.05, count=-1, email=u["email"])
    user_ids = [u["user_id"] for u in users]
    a_parent = int(open(os.path.join(os.path.dirname(stack.httpd_conf), "httpd.pid")).read())
    b_parent = int(open(os.path.join(host_b.dir, "httpd.pid")).read())
    a_daemon = daemon_of(stack.log_since(0))
    b_daemon = wait_for("host B's daemon", lambda: daemon_of(open(host_b.log).read()), 10)
    warmup = SECONDS * 0.25
    sampler = Sampler(stack.pg_dsn, user_ids, [(a_parent, a_daemon), (b_parent, b_daemon)],
                      SECONDS)
    load = Load([stack.api, host_b.api], users, CLIENTS, SECONDS).run()
    samples = sampler.samples()
    doubles = [u for s in samples for u in s["doubles"]]
    # after warm-up: the first sample past a quarter of the run; the end: the last one
    after = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    rss = {"start": after[0]["hosts"], "end": after[-1]["hosts"]}
    gmail.clear_faults()
    print("\nload: %d clients for %.0f s on 2 hosts, %d users, %d tasks started; RSS sampled"
          " at %.0f s and %.0f s" % (CLIENTS, load.elapsed, n_users, len(load.task_ids),
                                     after[0]["t"], after[-1]["t"]))
    print(load.report())
    for name, i in (("A", 0), ("B", 1)):
        (h0, d0, p0), (h1, d1, p1) = rss["start"][i], rss["end"][i]
        print("host %s RSS KiB after warm-up -> end: httpd %d -> %d (%d -> %d processes, %d -> %d"
              " per process), daemon %d -> %d" % (name, h0, h1, p0, p1, h0 // p0, h1 // p1, d0, d1))

    # every task a start created exists and ends; none is left without a worker
    wait_for("every task to end", lambda: not stack.query(
        "SELECT 1 FROM gmailsync.sync_tasks WHERE user_id = ANY(%s) AND state IN"
        " ('CREATED','RUNNING','STUCK')", (user_ids,)), 180, interval=0.5)
    known = {r[0]: r[1] for r in stack.query(
        "SELECT task_id::text, state FROM gmailsync.sync_tasks WHERE user_id = ANY(%s)",
        (user_ids,))}
    lost = [t for t in load.task_ids if t not in known]
    failed = [t for t in load.task_ids if known.get(t) == "FAILED"]
    wait_for("no ghost task", lambda: not ghosts(stack), 15, interval=0.2)
    # every mailbox exact after one more sync each
    for u in users:
        r = load_start(stack, u)
        wait_for("the final sync of " + u["user_id"], lambda: stack.query(
            "SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (r,))[0][0]
            in ("SUCCEEDED", "FAILED"), 120, interval=0.2)
    inexact = []
    for u in users:
        try:
            assert_table_equals_mailbox(stack, gmail, u, check_fields=False)
        except AssertionError as e:
            inexact.append((u["user_id"], str(e)[:200]))
    print("zero counts: unexpected 5xx %d, transport errors %d, users with two active tasks %d,"
          " lost tasks %d, failed tasks %d, inexact mailboxes %d (requests sent again after an"
          " idle keep-alive close: %d)"
          % (len(load.unexpected), len(load.errors), len(doubles), len(lost), len(failed),
             len(inexact), load.retried))
    assert not load.unexpected, load.unexpected[:5]
    assert not load.errors, load.errors[:5]
    assert not doubles, doubles[:5]
    assert not lost, lost[:5]
    assert not failed, failed[:5]
    assert not inexact, inexact[:5]
    assert len(load.task_ids) >= n_users, "the syncs did not really run"
    if STRICT_RSS:
        # flat: per httpd process (the event MPM may still start a child after warm-up) and
        # for the daemon, within a quarter
        for i in (0, 1):
            (h0, d0, p0), (h1, d1, p1) = rss["start"][i], rss["end"][i]
            assert h1 / p1 <= 1.25 * h0 / p0, ("httpd RSS per process grew", i, h0 / p0, h1 / p1)
            assert d1 <= 1.25 * d0, ("daemon RSS grew", i, d0, d1)

def load_start(stack, user):
    r = requests.post(stack.api + "/smart", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code in (200, 202), r.text
    return r.json()["task_id"]
