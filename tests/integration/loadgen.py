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
import sys
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
        self.retried = 0           # requests sent again after httpd closed an idle keep-alive
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
        try:
            r = s.request(method, url, timeout=30, **kw)
        except requests.ConnectionError as e:
            # httpd may close a keep-alive connection the client is about to reuse (the event
            # MPM does so when it is busy): RFC 9112 9.3.1 lets a client send the request again
            # on a new connection, and every endpoint here is idempotent (a start included)
            if "RemoteDisconnected" not in repr(e) and "reset by peer" not in repr(e):
                raise
            with self.lock:
                self.retried += 1
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
        # longer than the stream's 15 s keep-alive comment: a quiet stream is not a dead one
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
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
    def run(self):
        self.deadline = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                   for i in range(self.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0, self.deadline - time.monotonic()) + 45)
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


def memory(parent, daemon, ps_out=None):
    """(httpd RSS: the parent and its children but the daemon, daemon RSS, in KiB; the number of
    httpd processes counted), from one `ps` call."""
    import subprocess
    out = ps_out if ps_out is not None else subprocess.run(
        ["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True, timeout=30).stdout
    httpd = daemon_rss = procs = 0
    for line in out.splitlines():
        pid, ppid, rss = (int(x) for x in line.split())
        if pid == daemon:
            daemon_rss = rss
        elif pid == parent or ppid == parent:
            httpd += rss
            procs += 1
    return httpd, daemon_rss, procs


class Sampler:
    """Samples, once a second in a process of its own (the clients' threads would starve a
    thread of this one), each host's memory and the users with two active tasks."""

    def __init__(self, dsn, user_ids, hosts, seconds):
        import subprocess
        import sys
        self.proc = subprocess.Popen([sys.executable, __file__, "sample"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.proc.stdin.write(json.dumps({"dsn": dsn, "user_ids": user_ids, "hosts": hosts,
                                          "seconds": seconds}))
        self.proc.stdin.close()
        self.proc.stdin = None     # so that communicate() does not touch it again

    def samples(self):
        out, _ = self.proc.communicate(timeout=120)
        return [json.loads(line) for line in out.splitlines()]


def _sample_main():
    import sys
    import psycopg2
    spec = json.load(sys.stdin)
    conn = psycopg2.connect(spec["dsn"])
    conn.autocommit = True
    t0 = time.monotonic()
    while time.monotonic() - t0 < spec["seconds"]:
        with conn.cursor() as cur:
            cur.execute("SELECT user_id FROM gmailsync.sync_tasks WHERE user_id = ANY(%s) AND"
                        " state IN ('CREATED', 'RUNNING') GROUP BY user_id HAVING count(*) > 1",
                        (spec["user_ids"],))
            doubles = [r[0] for r in cur.fetchall()]
        import subprocess
        ps = subprocess.run(["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True,
                            timeout=30).stdout
        print(json.dumps({"t": time.monotonic() - t0, "doubles": doubles,
                          "hosts": [memory(p, d, ps) for p, d in spec["hosts"]]}), flush=True)
        time.sleep(1)


if __name__ == "__main__" and sys.argv[1:] == ["sample"]:
    _sample_main()
