#!/usr/bin/python3
"""Benchmark of gmailsync-worker: full syncs of generated mailboxes against the fake Gmail API and a
real PostgreSQL, printing per size: messages/s, the worker's peak RSS (VmHWM from /proc, and
ru_maxrss from wait4), progress writes, Gmail calls and quota units per message, and 429s.

    /usr/bin/python3 tests/bench/bench_worker.py [--sizes 2000,20000] [--parallel 2]
        [--latency 0.05 --quota 250]      # a paced run: wall time against the quota bound
        [--worker build/gmailsync-worker] [--keep]

It brings up its own stack with scripts/gmailsync-dev under $GS_BENCH_RUN_DIR or $GS_RUN_DIR
(default run/bench-worker), on the ports of GS_BENCH_HTTP_PORT/GS_BENCH_PG_PORT/GS_BENCH_GMAIL_PORT,
else GS_HTTP_PORT/GS_PG_PORT/GS_GMAIL_PORT, else 19380/19732/19381, with the daemon
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


def bench_env(environ, name, ports):
    """The bench stack's environment: GS_BENCH_* ports and run dir, else the dev stack's GS_*
    ones (GS_HTTP_PORT, GS_PG_PORT, GS_GMAIL_PORT, GS_RUN_DIR), else the bench's own defaults."""
    env = dict(environ)
    for key, default in zip(("HTTP_PORT", "PG_PORT", "GMAIL_PORT"), ports):
        env["GS_" + key] = environ.get("GS_BENCH_" + key) or environ.get("GS_" + key) or default
    env["GS_RUN_DIR"] = (environ.get("GS_BENCH_RUN_DIR") or environ.get("GS_RUN_DIR")
                         or os.path.join(ROOT, "run", name))
    return env


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


def seal(env, user, token):
    """The refresh token sealed under the stack's key (the worker refuses plaintext rows)."""
    p = subprocess.run([os.path.join(ROOT, "build", "gmailsync-tokens"), "seal", "--key-file",
                        env["GS_TOKEN_KEY_FILE"], "--user", user], input=token + "\n",
                       capture_output=True, text=True, check=True, timeout=60)
    return p.stdout.strip()


def run_one(env, worker, messages, parallel, latency, quota, server_quota=None, concurrent=0):
    gmail, dsn = env["GS_GMAIL_URL"], env["GS_PG_DSN"]
    user = "bench-" + secrets.token_hex(4)
    email = user + "@example.test"
    refresh = "1//bench-" + secrets.token_urlsafe(16)
    t0 = time.monotonic()
    control(gmail, "/mailboxes", {"email": email, "messages": messages, "seed": 7,
                                  "refresh_token": refresh, "prerender": True})
    created = time.monotonic() - t0
    control(gmail, "/faults", method="DELETE")
    server_quota = quota if server_quota is None else server_quota
    control(gmail, "/config", {"quota_units_per_sec": server_quota or 0,
                               "max_concurrent_per_user": concurrent})
    if latency:
        control(gmail, "/faults", {"method": "*", "mode": "latency", "seconds": latency, "count": -1})
    sealed = seal(env, user, refresh)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO gmailsync.accounts (user_id, email, refresh_token) VALUES (%s, %s, %s)",
                    (user, email, sealed))
        cur.execute("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s) RETURNING task_id", (user,))
        task = str(cur.fetchone()[0])
    conn.close()
    with open(os.path.join(env["GS_RUN_DIR"], "secrets", "client_secret")) as f:
        secret = f.read().strip()
    conf = ("db = %s\napi_base = %s\ntoken_url = %s/token\nclient_id = %s\nclient_secret = %s\n"
            "token_key_file = %s\nquota_units = %d\nparallel = %d\nprogress_interval = 1s\n"
            % (dsn, gmail, gmail, env["GS_CLIENT_ID"], secret, env["GS_TOKEN_KEY_FILE"], quota or 0,
               parallel))
    control(gmail, "/stats/reset", {})
    start = time.monotonic()
    proc = subprocess.Popen([worker, "--task", task, "--config", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(conf)
    proc.stdin.close()
    hwm = 0
    stderr_chunks = []
    # VmHWM is the peak so far: the last reading before exit is the answer; poll until then
    def read_stderr():
        for line in proc.stderr:    # stamped with the seconds since the start, for the log
            stderr_chunks.append("%.3f %s" % (time.monotonic() - start, line))

    reader = threading.Thread(target=read_stderr)
    reader.start()
    early_429, late_429, polled = None, 0, 0.0
    while True:
        now = time.monotonic() - start
        if quota and now - polled >= 0.5:
            # 429s in the first 5 s (learning) and after (steady state), from the fake's counters
            polled = now
            n = control(gmail, "/stats")["per_mailbox"].get(email, {}).get("status_counts", {}).get("429", 0)
            if now < 5.0:
                early_429 = n
            else:
                late_429 = n
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
    if os.environ.get("GS_BENCH_WORKER_LOG"):   # the worker's log, to see what a run did
        with open(os.environ["GS_BENCH_WORKER_LOG"] + ".%d" % messages, "w") as f:
            f.write(err)
    stats = control(gmail, "/stats")
    control(gmail, "/faults", method="DELETE")
    control(gmail, "/config", {"quota_units_per_sec": 0, "max_concurrent_per_user": 0})
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
        "denied_rate": mb.get("denied", {}).get("rate", 0),
        "denied_concurrent": mb.get("denied", {}).get("concurrent", 0),
        "max_in_flight": mb.get("max_in_flight", 0),
        "retries": int(fields.get("retries", 0)),
        "parts_in_flight": int(fields.get("parts_in_flight", 0)),
        "mailbox_created_s": round(created, 1),
    }
    if state != "SUCCEEDED":
        out["stderr_tail"] = err.splitlines()[-5:]
    if quota:
        # the bound: the units Gmail charged at the lower of the two quotas
        bound = mb.get("quota_units", messages * 5) / min(quota, server_quota or quota)
        out["quota_bound_s"] = round(bound, 2)
        out["ratio_to_quota_bound"] = round(bound / elapsed, 3)
        late = late_429 - (early_429 or 0) if late_429 else 0
        out["429_after_5s"] = max(late, 0)
    control(gmail, "/mailboxes/" + email, method="DELETE")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.0, help="simulated latency per request (s)")
    ap.add_argument("--quota", type=int, default=0, help="units/s for the fake and the worker (0: off)")
    ap.add_argument("--server-quota", type=int, default=None,
                    help="units/s the fake grants, if not --quota (a misconfigured deployment)")
    ap.add_argument("--max-concurrent", type=int, default=0,
                    help="the fake's per-user concurrency limit (batch parts in flight; 0: off)")
    ap.add_argument("--paced", action="store_true",
                    help="the quota benchmark: --sizes 1000,5000 --latency 0.05 --quota 250 "
                         "--max-concurrent 25 unless given")
    ap.add_argument("--worker", default=os.path.join(ROOT, os.environ.get("GS_WORKER_BIN", "build/gmailsync-worker")))
    ap.add_argument("--keep", action="store_true", help="leave the bench stack running")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.paced:
        given = sys.argv[1:]
        if "--sizes" not in given:
            args.sizes = "1000,5000"
        if "--latency" not in given:
            args.latency = 0.05
        if "--quota" not in given:
            args.quota = 250
        if "--max-concurrent" not in given:
            args.max_concurrent = 25

    env = bench_env(os.environ, "bench-worker", ("19380", "19732", "19381"))
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
        results = [run_one(env, args.worker, int(n), args.parallel, args.latency, args.quota,
                           args.server_quota, args.max_concurrent)
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
        cols = ["messages", "state", "seconds", "quota_bound_s", "ratio_to_quota_bound", "answers_429",
                "429_after_5s", "denied_rate", "denied_concurrent", "retries", "max_in_flight",
                "parts_in_flight", "vmhwm_mb"]
    print("gmailsync-worker full sync (parallel=%d, latency=%ss, quota=%s units/s, server quota=%s, "
          "max concurrent=%s)" % (args.parallel, args.latency, args.quota or "off",
                                  args.server_quota if args.server_quota is not None else (args.quota or "off"),
                                  args.max_concurrent or "off"))
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
