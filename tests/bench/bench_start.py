#!/usr/bin/python3
"""Benchmark of POST /api/gmail/sync/smart on a local stack (its own ports, run/bench-stack):
latency of a new start and of a repeat start (served by the session cache, then PostgreSQL),
the wall time of 200 concurrent starts for one user, and the CREATED -> RUNNING latency of
the daemon's hand-off (database clock: started_at - created_at). Prints figures; fails only on
errors."""
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time

import psycopg2
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEV = os.path.join(ROOT, "scripts", "gmailsync-dev")
ENV = dict(os.environ, GS_RUN_DIR=os.path.join(ROOT, "run", "bench-stack"),
           GS_HTTP_PORT="19280", GS_PG_PORT="19632", GS_GMAIL_PORT="19281")
ENV.pop("GS_EXTRA_CONF", None)
USERS = int(os.environ.get("GS_BENCH_USERS", "200"))
BURST = int(os.environ.get("GS_BENCH_N", "200"))


def dev(*args):
    return subprocess.run([DEV, *args], env=ENV, check=True, capture_output=True, text=True).stdout


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    dev("down", "--purge")  # a fresh stack: no queue left over from an earlier run
    dev("up")
    env = {k: v for k, _, v in (shlex.split(l)[0].partition("=") for l in dev("env").splitlines())}
    api = env["GS_BASE_URL"] + "/api/gmail/sync"
    users = [json.loads(dev("add-user", "--messages", "0")) for _ in range(USERS)]
    s = requests.Session()
    created, reused = [], []
    for u in users:
        for bucket, code in ((created, 202), (reused, 200)):
            t0 = time.perf_counter()
            r = s.post(api + "/smart", cookies={"session": u["session"]}, timeout=30)
            bucket.append((time.perf_counter() - t0) * 1000)
            if r.status_code != code:
                print("unexpected", r.status_code, r.text, file=sys.stderr)
                return 1
    for name, vals in (("new task (202)", created), ("repeat start (200)", reused)):
        print(f"{name:20s} n={len(vals)}  p50={statistics.median(vals):6.2f} ms  "
              f"p99={pct(vals, 99):6.2f} ms  max={max(vals):6.2f} ms")

    u = json.loads(dev("add-user", "--messages", "0"))
    barrier = threading.Barrier(BURST + 1)
    codes = []

    def go():
        c = requests.Session()
        barrier.wait()
        codes.append(c.post(api + "/smart", cookies={"session": u["session"]}, timeout=60).status_code)

    threads = [threading.Thread(target=go) for _ in range(BURST)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    print(f"burst of {BURST} concurrent starts for one user: {wall * 1000:.0f} ms wall, "
          f"{BURST / wall:.0f} req/s, codes={sorted(set(codes))} created={codes.count(202)}")
    ok = codes.count(202) == 1

    # CREATED -> RUNNING: one sync at a time, so the figure is the hand-off, not a queue
    conn = psycopg2.connect(env["GS_PG_DSN"])
    conn.autocommit = True
    cur = conn.cursor()
    deadline = time.time() + 120  # let the syncs started above finish first
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM gmailsync.sync_tasks WHERE state IN ('CREATED', 'RUNNING')")
        if cur.fetchone()[0] == 0:
            break
        time.sleep(0.1)
    latencies = []
    for _ in range(int(os.environ.get("GS_BENCH_LATENCY_N", "100"))):
        u = json.loads(dev("add-user", "--messages", "20"))
        tid = s.post(api + "/smart", cookies={"session": u["session"]}, timeout=30).json()["task_id"]
        deadline = time.time() + 10
        while time.time() < deadline:
            cur.execute("SELECT state, extract(epoch FROM started_at - created_at) * 1000 "
                        "FROM gmailsync.sync_tasks WHERE task_id = %s", (tid,))
            st, ms = cur.fetchone()
            if st in ("SUCCEEDED", "FAILED"):
                break
            time.sleep(0.005)
        if st != "SUCCEEDED" or ms is None:
            print("sync did not succeed:", tid, st, file=sys.stderr)
            ok = False
            break
        latencies.append(float(ms))
    conn.close()
    if latencies:
        print(f"CREATED -> RUNNING     n={len(latencies)}  p50={statistics.median(latencies):6.2f} ms  "
              f"p99={pct(latencies, 99):6.2f} ms  max={max(latencies):6.2f} ms  (target p99 <= 250 ms)")
    dev("down")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
