#!/usr/bin/python3
"""Benchmark of Gmail push notifications (issue 26) on a local stack of its own (run/bench-push-stack,
ports 19380/19732/19381 unless GS_BENCH_* or GS_* say otherwise): GmailSyncPushTopic on,
GmailSyncAutoSync off, the fake's push simulator on with require_watch (only the mailboxes the
daemon watched are notified, as at Gmail). Prints: how long the daemon took to watch every
account; over GS_BENCH_PUSH_ARRIVALS (200) arrivals across GS_BENCH_PUSH_USERS (20) accounts,
p50/p99/max seconds from the message's arrival in the fake to its row in gmailsync.messages;
a burst of 50 pushes for one account: how many syncs started and whether the mailbox ended
exact. Never fails on speed; only on errors."""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import threading
import time

import psycopg2
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_worker import bench_env  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEV = os.path.join(ROOT, "scripts", "gmailsync-dev")
ENV = bench_env(os.environ, "bench-push-stack", ("19380", "19732", "19381"))
ENV.pop("GS_EXTRA_CONF", None)
USERS = int(os.environ.get("GS_BENCH_PUSH_USERS", "20"))
ARRIVALS = int(os.environ.get("GS_BENCH_PUSH_ARRIVALS", "200"))
RATE = float(os.environ.get("GS_BENCH_PUSH_RATE", "5"))      # arrivals a second
BURST = 50
TOPIC = "projects/bench-project/topics/gmail-push"
SA = "gmail-push@bench-project.iam.gserviceaccount.com"
AUD = "https://push.bench.test/api/gmail/sync/push"


def dev(*args):
    return subprocess.run([DEV, *args], env=ENV, check=True, capture_output=True, text=True).stdout


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wait(what, predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit("bench push: timed out waiting for %s" % what)


class Bench:
    def __init__(self, env):
        self.gmail = env["GS_GMAIL_URL"]
        self.api = "http://127.0.0.1:%s/api/gmail/sync" % env["GS_HTTP_PORT"]
        self.conn = psycopg2.connect(env["GS_PG_DSN"])
        self.conn.autocommit = True
        self.http = requests.Session()

    def query(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def control(self, method, path, body=None):
        r = self.http.request(method, self.gmail + "/_control/" + path, json=body, timeout=60)
        if r.status_code >= 300:
            raise SystemExit("bench push: fake %s %s -> %s %s" % (method, path, r.status_code, r.text))
        return r.json() if r.content else None

    def idle(self, user_id):
        return not self.query("SELECT 1 FROM gmailsync.sync_tasks WHERE user_id = %s"
                              " AND state IN ('CREATED', 'RUNNING')", (user_id,))

    def ids(self, user_id):
        return sorted(r[0] for r in self.query("SELECT gmail_id FROM gmailsync.messages WHERE user_id = %s",
                                               (user_id,)))

    def tasks(self, user_id):
        return self.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = %s", (user_id,))[0][0]


def arrivals(b, users):
    """ARRIVALS messages added across the users at RATE a second; a poller notes when each
    message's row appears. Returns the latencies (s)."""
    added, seen, lock, done = {}, {}, threading.Lock(), threading.Event()

    def poll():
        while not done.is_set():
            with lock:
                pending = [i for i in added if i not in seen]
            if pending:
                for (gid,) in b.query("SELECT gmail_id FROM gmailsync.messages WHERE gmail_id = ANY(%s)",
                                      (pending,)):
                    seen.setdefault(gid, time.time())
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.monotonic()
    for i in range(ARRIVALS):
        delay = t0 + i / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        user = users[i % len(users)]
        at = time.time()
        gid = b.control("POST", "mailboxes/%s/messages" % user["email"], {"count": 1})["ids"][0]
        with lock:
            added[gid] = at
    try:
        wait("every arrival in gmailsync.messages", lambda: len(seen) >= len(added), 120)
    finally:
        done.set()
        poller.join()
    return [seen[g] - added[g] for g in added]


def burst(b, user):
    """BURST pushes for one account naming one new history id, 16 at a time (the simulator off
    meanwhile, so that only these reach the module): syncs started, mailbox exact."""
    b.control("POST", "push/config", {"enabled": False})
    before = b.tasks(user["user_id"])
    b.control("POST", "mailboxes/%s/messages" % user["email"], {"count": 2})
    hid = int(b.control("GET", "mailboxes/%s" % user["email"])["history_id"])
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: b.control("POST", "push/send", {
            "email": user["email"], "history_id": hid, "message_id": "burst-%d-%d" % (hid, i)})["status"],
            range(BURST)))
    wait("the burst's syncs", lambda: b.idle(user["user_id"]), 60)
    mailbox = b.control("GET", "mailboxes/%s?ids=1" % user["email"])["ids"]
    return codes, b.tasks(user["user_id"]) - before, b.ids(user["user_id"]) == sorted(mailbox)


def main():
    dev("down", "--purge")             # a fresh stack: no accounts left over (the run dir goes)
    os.makedirs(ENV["GS_RUN_DIR"], exist_ok=True)
    extra = os.path.join(ENV["GS_RUN_DIR"], "bench-push.conf")
    with open(extra, "w") as f:
        f.write("GmailSyncPushTopic %s\nGmailSyncPushServiceAccount %s\nGmailSyncPushAudience %s\n"
                "GmailSyncPushJWKS http://127.0.0.1:%s/oauth2/v3/certs\n"
                % (TOPIC, SA, AUD, ENV["GS_GMAIL_PORT"]))
    ENV["GS_EXTRA_CONF"] = extra
    dev("up")
    try:
        for line in dev("env").splitlines():
            k, _, v = shlex.split(line)[0].partition("=")
            ENV.setdefault(k, v)
            if k in ("GS_PG_DSN", "GS_GMAIL_URL"):
                ENV[k] = v
        b = Bench(ENV)
        b.control("POST", "push/reset")
        b.control("POST", "push/config", {"endpoint": b.api + "/push", "audience": AUD, "service_account": SA,
                                          "enabled": True, "require_watch": True, "drop": 0.0,
                                          "duplicate": 0.0, "reorder": 0})
        t0 = time.monotonic()
        users = [json.loads(dev("add-user", "--messages", "2")) for _ in range(USERS)]
        emails = {u["email"].lower() for u in users}
        wait("every account watched", lambda: emails <= set(b.control("GET", "push/state")["watches"]), 120)
        print("watches: %d accounts watched %.1f s after the first was linked" % (USERS, time.monotonic() - t0))
        for u in users:       # a first (full) sync each, as a click would start it
            r = b.http.post(b.api + "/smart", cookies={"session": u["session"]}, timeout=30)
            if r.status_code >= 300:
                raise SystemExit("bench push: /smart -> %s %s" % (r.status_code, r.text))
        wait("the first syncs", lambda: all(b.idle(u["user_id"]) for u in users), 120)
        lat = arrivals(b, users)
        print("arrival -> gmailsync.messages over %d arrivals across %d accounts (%.0f/s): "
              "p50 %.3f s, p99 %.3f s, max %.3f s"
              % (len(lat), USERS, RATE, pct(lat, 50), pct(lat, 99), max(lat)))
        wait("the arrivals' syncs", lambda: all(b.idle(u["user_id"]) for u in users), 60)
        codes, started, exact = burst(b, users[0])
        print("burst of %d pushes for one account: answers %s, syncs started %d, mailbox exact %s"
              % (BURST, sorted(set(codes)), started, exact))
        state = b.control("GET", "push/state")
        print("push simulator: %d published, %d delivered; watch calls %d"
              % (state["published"], len(state["deliveries"]), len(state["watch_calls"])))
    finally:
        dev("down")


if __name__ == "__main__":
    main()
