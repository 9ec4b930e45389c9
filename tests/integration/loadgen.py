"""A bounded load generator for the API (test_load.py, `scripts/soak load`): N client threads
across several httpd instances on one PostgreSQL, each looping on one of three roles until the
deadline:

* starter -- POST /smart, then polls /progress/{id} until the task ends, then starts again;
* poller  -- GET /status and /progress of its user's latest task;
* streamer -- opens the SSE stream (http.client) of its user's task, reads until the stream ends
  or 5 s passed, hangs up, and again.

Everything is on loopback, the thread count is the client count, every request has a timeout
and the run stops at its deadline. Each answer is recorded (endpoint, status, seconds).
"""
import http.client
import json
import random
import threading
import time
import urllib.parse

import requests

ROLES = ("starter", "starter", "poller", "poller", "streamer")   # 40 % / 40 % / 20 %


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


class Load:
    def __init__(self, apis, users, clients, seconds, think=0.05):
        self.apis, self.users, self.clients, self.seconds = apis, users, clients, seconds
        self.think = think
        self.lock = threading.Lock()
        self.samples = []          # (endpoint, status, seconds)
        self.unexpected = []       # (endpoint, status, body head)
        self.task_ids = set()      # every task id a 202 gave
        self.errors = []           # transport errors
        self.latest = {}           # user_id -> task id last seen
        self.deadline = None

    # -------------------------------------------------------------- recording
    def record(self, endpoint, status, took, body=b""):
        with self.lock:
            self.samples.append((endpoint, status, took))
            if status >= 500 and not self.expected_5xx(endpoint, status, body):
                self.unexpected.append((endpoint, status, body[:200]))

    @staticmethod
    def expected_5xx(endpoint, status, body):
        # the documented refusal of a stream beyond the host's cap (the page falls back to
        # polling); anything else 5xx is unexpected
        return endpoint == "sse" and status == 503

    # -------------------------------------------------------------- roles
    def client(self, i):
        user = self.users[i % len(self.users)]
        api = self.apis[i % len(self.apis)]
        role = ROLES[(i // len(self.users)) % len(ROLES)]   # every user gets every role
        rnd = random.Random(i)
        with requests.Session() as s:
            s.cookies.set("session", user["session"])
            while time.monotonic() < self.deadline:
                try:
                    getattr(self, role)(s, api, user, rnd)
                except requests.RequestException as e:
                    with self.lock:
                        self.errors.append(repr(e)[:200])
                time.sleep(self.think * (0.5 + rnd.random()))

    def timed(self, s, endpoint, method, url, **kw):
        t0 = time.monotonic()
        r = s.request(method, url, timeout=30, **kw)
        self.record(endpoint, r.status_code, time.monotonic() - t0, r.content)
        return r

    def starter(self, s, api, user, rnd):
        r = self.timed(s, "start", "POST", api + "/smart", json={"force_full": rnd.random() < 0.1})
        if r.status_code not in (200, 202):
            return
        tid = r.json()["task_id"]
        with self.lock:
            if r.status_code == 202:
                self.task_ids.add(tid)
            self.latest[user["user_id"]] = tid
        while time.monotonic() < self.deadline:
            p = self.timed(s, "progress", "GET", api + "/progress/" + tid)
            if p.status_code != 200 or p.json()["state"] not in ("CREATED", "RUNNING"):
                return
            time.sleep(self.think * (0.5 + rnd.random()))

    def poller(self, s, api, user, rnd):
        self.timed(s, "status", "GET", api + "/status")
        tid = self.latest.get(user["user_id"])
        if tid:
            self.timed(s, "progress", "GET", api + "/progress/" + tid)

    def streamer(self, s, api, user, rnd):
        tid = self.latest.get(user["user_id"])
        if not tid:
            st = self.timed(s, "status", "GET", api + "/status")
            task = st.json().get("task") if st.status_code == 200 else None
            if not task:
                return
            tid = task["task_id"]
        u = urllib.parse.urlsplit(api)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        t0 = time.monotonic()
        try:
            conn.request("GET", u.path + "/progress/" + tid,
                         headers={"Accept": "text/event-stream",
                                  "Cookie": "session=" + user["session"]})
            resp = conn.getresponse()
            if resp.status != 200:
                self.record("sse", resp.status, time.monotonic() - t0, resp.read(300))
                return
            first = None
            end = time.monotonic() + 5
            while time.monotonic() < min(end, self.deadline):
                line = resp.fp.readline()
                if not line:
                    break
                if line.startswith(b"data: "):
                    if first is None:
                        first = time.monotonic() - t0
                    if json.loads(line[6:])["state"] not in ("CREATED", "RUNNING"):
                        break
            self.record("sse", 200, first if first is not None else time.monotonic() - t0)
        except (OSError, http.client.HTTPException) as e:
            with self.lock:
                self.errors.append("sse " + repr(e)[:200])
        finally:
            conn.close()

    # -------------------------------------------------------------- run
    def run(self, on_tick=None, tick=1.0):
        self.deadline = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                   for i in range(self.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() < self.deadline:
            if on_tick:
                on_tick(time.monotonic() - t0)
            time.sleep(tick)
        for t in threads:
            t.join(45)
        self.elapsed = time.monotonic() - t0
        assert not any(t.is_alive() for t in threads), "client threads still running"
        return self

    def figures(self):
        out = {}
        for ep in sorted({s[0] for s in self.samples}):
            lat = [s[2] for s in self.samples if s[0] == ep]
            codes = {}
            for s in self.samples:
                if s[0] == ep:
                    codes[s[1]] = codes.get(s[1], 0) + 1
            out[ep] = {"requests": len(lat), "rps": len(lat) / self.elapsed,
                       "p50_ms": 1000 * percentile(lat, 50), "p99_ms": 1000 * percentile(lat, 99),
                       "codes": codes}
        return out

    def report(self):
        lines = ["%-9s %8s %8s %9s %9s  %s" % ("endpoint", "requests", "req/s", "p50 ms",
                                                 "p99 ms", "statuses")]
        for ep, f in self.figures().items():
            lines.append("%-9s %8d %8.1f %9.1f %9.1f  %s" % (
                ep, f["requests"], f["rps"], f["p50_ms"], f["p99_ms"],
                " ".join("%s:%d" % kv for kv in sorted(f["codes"].items()))))
        total = len(self.samples)
        lines.append("%-9s %8d %8.1f" % ("all", total, total / self.elapsed))
        return "\n".join(lines)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid):
    out = []
    import os
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return out


def memory(parent, daemon):
    """(httpd RSS: the parent and its children but the daemon, daemon RSS), in KiB."""
    httpd = rss_kib(parent) + sum(rss_kib(c) for c in children(parent) if c != daemon)
    return httpd, rss_kib(daemon) if daemon else 0
