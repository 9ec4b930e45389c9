#!/usr/bin/python3
"""Benchmark of gmailsync-worker: full syncs of generated mailboxes against the fake Gmail API and a
real PostgreSQL, printing per size: messages/s, the worker's peak RSS (VmHWM from /proc, and
ru_maxrss from wait4), progress writes, Gmail calls and quota units per message, and 429s.

    /usr/bin/python3 tests/bench/bench_worker.py [--sizes 2000,20000] [--parallel 2]
        [--latency 0.05 --quota 250]      # a paced run: wall time against the quota bound
        [--worker build/gmailsync-worker] [--keep]

It brings up its own stack with scripts/gmailsync-dev under run/bench-worker (ports 19380/19732/
19381, override with GS_BENCH_HTTP_PORT/GS_BENCH_PG_PORT/GS_BENCH_GMAIL_PORT), with the daemon
paused (GmailSyncMaxWorkers 0) since it runs the worker itself, and stops it at the end unless
--keep. Memory independent of mailbox size shows as (nearly) the same peak RSS for 2,000
and 20,000 messages.
"""
import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEV = os.path.join(ROOT, "scripts", "gmailsync-dev")


def dev(args, env):
    return subprocess.run([DEV] + args, env=env, check=True, capture_output=True, text=True).stdout


def control(gmail, path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gmail + "/_control" + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_one(env, worker, messages, parallel, latency, quota):
    gmail, dsn = env["GS_GMAIL_URL"], env["GS_PG_DSN"]
    user = "bench-" + secrets.token_hex(4)
    email = user + "@example.test"
    refresh = "1//bench-" + secrets.token_urlsafe(16)
    t0 = time.monotonic()
    control(gmail, "/mailboxes", {"email": email, "messages": messages, "seed": 7,
                                  "refresh_token": refresh, "prerender": True})
    created = time.monotonic() - t0
    control(gmail, "/faults", method="DELETE")
    control(gmail, "/config", {"quota_units_per_sec": quota or 0})
    if latency:
        control(gmail, "/faults", {"method": "*", "mode": "latency", "seconds": latency, "count": -1})
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO gmailsync.accounts (user_id, email, refresh_token) VALUES (%s, %s, %s)",
                    (user, email, refresh))
        cur.execute("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s) RETURNING task_id", (user,))
        task = str(cur.fetchone()[0])
    conn.close()
    with open(os.path.join(env["GS_RUN_DIR"], "secrets", "client_secret")) as f:
        secret = f.read().strip()
    conf = ("db = %s\napi_base = %s\ntoken_url = %s/token\nclient_id = %s\nclient_secret = %s\n"
            "quota_units = %d\nparallel = %d\nprogress_interval = 1s\n"
            % (dsn, gmail, gmail, env["GS_CLIENT_ID"], secret, quota or 0, parallel))
    control(gmail, "/stats/reset", {})
    start = time.monotonic()
    proc = subprocess.Popen([worker, "--task", task, "--config", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(conf)
    proc.stdin.close()
    hwm = 0
    stderr_chunks = []
    # VmHWM is the peak so far: the last reading before exit is the answer; poll until then
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))
    reader.start()
    while True:
        value = vm_hwm_kb(proc.pid)
        if value:
            hwm = max(hwm, value)
        try:
            wpid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            break
        if wpid:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = "".join(stderr_chunks)
    stats = control(gmail, "/stats")
    control(gmail, "/faults", method="DELETE")
    control(gmail, "/config", {"quota_units_per_sec": 0})
    end = [l for l in err.splitlines() if "event=task.succeeded" in l or "event=task.failed" in l]
    fields = dict(f.split("=", 1) for f in (end[-1].split() if end else []) if "=" in f)
    mb = stats["per_mailbox"].get(email, {})
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s", (user,))
        stored = cur.fetchone()[0]
        cur.execute("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (task,))
        state = cur.fetchone()[0]
        cur.execute("DELETE FROM gmailsync.messages WHERE user_id = %s", (user,))
    conn.close()
    calls = sum(mb.get("requests", {}).values()) + stats["requests"].get("batch", 0)
    http_requests = calls - mb.get("requests", {}).get("messages.get", 0)
    out = {
        "messages": messages, "state": state, "exit": proc.returncode, "stored": stored,
        "seconds": round(elapsed, 2), "messages_per_s": round(messages / elapsed, 1),
        "vmhwm_mb": round(hwm / 1024, 1),
        "progress_writes": int(fields.get("progress_writes", 0)),
        "progress_writes_per_s": round(int(fields.get("progress_writes", 0)) / elapsed, 2),
        "gmail_calls_per_message": round(calls / max(messages, 1), 3),
        "http_requests_per_message": round(http_requests / max(messages, 1), 4),
        "quota_units_per_message": round(mb.get("quota_units", 0) / max(messages, 1), 2),
        "answers_429": mb.get("status_counts", {}).get("429", 0),
        "mailbox_created_s": round(created, 1),
    }
    if state != "SUCCEEDED":
        out["stderr_tail"] = err.splitlines()[-5:]
    if quota:
        bound = messages * 5 / quota
        out["quota_bound_s"] = round(bound, 1)
        out["ratio_to_quota_bound"] = round(bound / elapsed, 3)
    control(gmail, "/mailboxes/" + email, method="DELETE")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.0, help="simulated latency per request (s)")
    ap.add_argument("--quota", type=int, default=0, help="units/s for the fake and the worker (0: off)")
    ap.add_argument("--worker", default=os.path.join(ROOT, os.environ.get("GS_WORKER_BIN", "build/gmailsync-worker")))
    ap.add_argument("--keep", action="store_true", help="leave the bench stack running")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    env = dict(os.environ, GS_RUN_DIR=os.path.join(ROOT, "run", "bench-worker"),
               GS_HTTP_PORT=os.environ.get("GS_BENCH_HTTP_PORT", "19380"),
               GS_PG_PORT=os.environ.get("GS_BENCH_PG_PORT", "19732"),
               GS_GMAIL_PORT=os.environ.get("GS_BENCH_GMAIL_PORT", "19381"))
    # the bench runs the worker itself: the stack's daemon must not claim its tasks
    os.makedirs(env["GS_RUN_DIR"], exist_ok=True)
    extra = os.path.join(env["GS_RUN_DIR"], "bench-worker.conf")
    with open(extra, "w") as f:
        f.write("GmailSyncMaxWorkers 0\n")
    env["GS_EXTRA_CONF"] = extra
    dev(["up"], env)
    try:
        for line in dev(["env"], env).splitlines():
            k, _, v = shlex.split(line)[0].partition("=")
            env[k] = v
        results = [run_one(env, args.worker, int(n), args.parallel, args.latency, args.quota)
                   for n in args.sizes.split(",")]
    finally:
        if not args.keep:
            dev(["down"], env)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return
    cols = ["messages", "state", "seconds", "messages_per_s", "vmhwm_mb", "progress_writes",
            "gmail_calls_per_message", "http_requests_per_message", "quota_units_per_message",
            "answers_429"]
    if args.quota:
        cols += ["quota_bound_s", "ratio_to_quota_bound"]
    print("gmailsync-worker full sync (parallel=%d, latency=%ss, quota=%s units/s)"
          % (args.parallel, args.latency, args.quota or "off"))
    print("  ".join("%s" % c for c in cols))
    for r in results:
        print("  ".join(str(r[c]).rjust(len(c)) for c in cols))
    for r in results:
        for line in r.get("stderr_tail", []):
            print("  worker(%d): %s" % (r["messages"], line))
    if len(results) >= 2:
        base, top = results[0]["vmhwm_mb"], results[-1]["vmhwm_mb"]
        print("peak RSS %s MB at %d messages vs %s MB at %d: %+.0f %%"
              % (top, results[-1]["messages"], base, results[0]["messages"], (top - base) / base * 100))
    sys.exit(0 if all(r["state"] == "SUCCEEDED" and r["stored"] == r["messages"] for r in results) else 1)


if __name__ == "__main__":
    main()
