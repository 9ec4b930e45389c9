"""Progress watchers at scale (issue 10): Server-Sent Events streams hold no database connection
while they wait, are capped per user (429) and per host (503), end on STUCK, and free everything
when they go. The tasks are made RUNNING or CREATED in the database (the daemon is paused), so
every stream takes the costlier path: a database read per second instead of the shared board."""
import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests
from psycopg2.extras import execute_values

from conftest import healthy, wait_for

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module", autouse=True)
def paused(paused_daemon):
    yield


def make_users(stack, n, state="CREATED", sessions_per_user=1):
    """n users, each with an account, `sessions_per_user` sessions and one task in `state`,
    straight into the database. Returns [(user_id, [session...], task_id)]."""
    tag = secrets.token_hex(4)
    users, sess_rows, acc_rows, task_rows = [], [], [], []
    for i in range(n):
        uid = "stream-%s-%d" % (tag, i)
        tid = str(uuid.uuid4())
        sessions = [secrets.token_urlsafe(24) for _ in range(sessions_per_user)]
        for s in sessions:
            sess_rows.append((hashlib.sha256(s.encode()).digest(), uid))
        acc_rows.append((uid, uid + "@example.test", "1//unused"))
        task_rows.append((tid, uid, state))
        users.append((uid, sessions, tid))
    with stack.db() as conn, conn.cursor() as cur:
        execute_values(cur, "INSERT INTO gmailsync.sessions (token_sha256, user_id, expires_at)"
                       " VALUES %s", sess_rows, template="(%s, %s, now() + interval '1 hour')")
        execute_values(cur, "INSERT INTO gmailsync.accounts (user_id, email, refresh_token)"
                       " VALUES %s", acc_rows)
        execute_values(cur, "INSERT INTO gmailsync.sync_tasks (task_id, user_id, state, lease,"
                       " started_at, heartbeat_at) VALUES %s", task_rows,
                       template="(%s::uuid, %s, %s, gen_random_uuid(), now(), now())")
    conn.close()
    return users


def end_tasks(stack, users):
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now()"
                " WHERE task_id = ANY(%s::uuid[]) AND state IN ('CREATED', 'RUNNING', 'STUCK')",
                ([t for _, _, t in users],))


class Stream:
    """One raw SSE request; reads the head and what arrived with it."""

    def __init__(self, stack, session, task_id):
        host, port = re.match(r"http://([^:/]+):(\d+)", stack.base_url).groups()
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        req = ("GET /api/gmail/sync/progress/%s HTTP/1.1\r\nHost: %s:%s\r\n"
               "Accept: text/event-stream\r\nCookie: session=%s\r\n\r\n"
               % (task_id, host, port, session))
        self.sock.sendall(req.encode())
        self.buf = b""
        self.status = None
        self.headers = {}

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        return self

    def read_until_closed(self, timeout):
        self.sock.settimeout(timeout)
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return self.buf.decode()
            self.buf += chunk

    def close(self):
        self.sock.close()


def metric(stack, name):
    text = requests.get(stack.api + "/metrics", timeout=10).text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1))


def p99_ms(stack, session, task_id, n=200):
    """Latency of ordinary requests (status and plain-JSON progress) while streams are open."""
    times = []
    with requests.Session() as s:
        s.cookies.set("session", session)
        for i in range(n):
            t0 = time.monotonic()
            r = s.get(stack.api + ("/status" if i % 2 else "/progress/" + task_id), timeout=10)
            times.append((time.monotonic() - t0) * 1000)
            assert r.status_code == 200, r.text
    times.sort()
    return times[int(len(times) * 0.99) - 1], times[len(times) // 2]


def test_300_streams_on_one_running_task_the_user_cap_refuses_the_rest(stack):
    (uid, sessions, tid), = make_users(stack, 1, state="RUNNING", sessions_per_user=300)
    other = make_users(stack, 1, state="CREATED")
    streams = []
    try:
        for s in sessions:
            streams.append(Stream(stack, s, tid))
        for st in streams:
            st.read_head()
        codes = [st.status for st in streams]
        assert codes.count(200) == 4 and codes.count(429) == 296, sorted(set(codes))
        refused = next(st for st in streams if st.status == 429)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers.get("retry-after")
        assert metric(stack, "gmailsync_progress_streams") == 4
        p99, p50 = p99_ms(stack, other[0][1][0], other[0][2])
        print("ordinary requests with 4 streams open and 296 refused: p50 %.1f ms, p99 %.1f ms"
              % (p50, p99))
        # waiting for a connection would put the median at hundreds of ms (a stream reads once a
        # second); the tail is the machine's scheduling, measured 133 ms at a load of 8 on 2 cores
        assert p50 < 50 and p99 < 1000, (p50, p99)
    finally:
        for st in streams:
            st.close()
        end_tasks(stack, [(uid, sessions, tid)] + other)
    wait_for("every stream to leave", lambda: metric(stack, "gmailsync_progress_streams") == 0, 5)


def test_streams_beyond_the_host_cap_get_503_and_hold_no_database_connection(stack):
    users = make_users(stack, 300, state="CREATED")
    other = make_users(stack, 1, state="CREATED")
    limit = metric(stack, "gmailsync_progress_streams_limit")
    assert 0 < limit < 300
    streams = []
    try:
        for _, sess, tid in users:
            streams.append(Stream(stack, sess[0], tid))
        for st in streams:
            st.read_head()
        codes = [st.status for st in streams]
        assert codes.count(200) == limit and codes.count(503) == 300 - limit, sorted(set(codes))
        busy = next(st for st in streams if st.status == 503)
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.headers.get("retry-after")
        # each open stream reads its task from PostgreSQL once a second, yet ordinary requests
        # do not wait for a connection: no stream keeps one between its reads
        p99, p50 = p99_ms(stack, other[0][1][0], other[0][2])
        print("ordinary requests with %d streams open: p50 %.1f ms, p99 %.1f ms"
              % (limit, p50, p99))
        # waiting for a connection would put the median at hundreds of ms (a stream reads once a
        # second); the tail is the machine's scheduling, measured 133 ms at a load of 8 on 2 cores
        assert p50 < 50 and p99 < 1000, (p50, p99)
        held = stack.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'gmailsync'"
                           " AND state = 'active' AND query NOT ILIKE '%%pg_stat_activity%%'")[0][0]
        assert held < limit / 4, held
    finally:
        for st in streams:
            st.close()
    # dropping them frees everything: the count, and room for as many again
    wait_for("every stream to leave", lambda: metric(stack, "gmailsync_progress_streams") == 0, 5)
    again = [Stream(stack, sess[0], tid) for _, sess, tid in users[:20]]
    try:
        assert [st.read_head().status for st in again] == [200] * 20
    finally:
        for st in again:
            st.close()
        end_tasks(stack, users + other)
    wait_for("every stream to leave", lambda: metric(stack, "gmailsync_progress_streams") == 0, 5)


def test_a_stream_ends_when_its_task_is_stuck(stack):
    users = make_users(stack, 1, state="RUNNING")
    (uid, sessions, tid), = users
    st = Stream(stack, sessions[0], tid).read_head()
    try:
        assert st.status == 200
        assert st.headers.get("x-content-type-options") == "nosniff"
        time.sleep(0.3)
        stack.query("UPDATE gmailsync.sync_tasks SET state = 'STUCK' WHERE task_id = %s", (tid,))
        body = st.read_until_closed(timeout=5)    # the server closes it: no wait for FAILED
        assert '"state":"STUCK"' in body
    finally:
        st.close()
        stack.query("UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'stuck',"
                    " finished_at = now() WHERE task_id = %s", (tid,))
    wait_for("the stream to leave", lambda: metric(stack, "gmailsync_progress_streams") == 0, 5)


def test_a_finished_task_gets_its_last_event_without_taking_a_place(stack):
    users = make_users(stack, 1, state="RUNNING", sessions_per_user=1)
    (uid, sessions, tid), = users
    held = [Stream(stack, sessions[0], tid).read_head() for _ in range(4)]
    try:
        assert [s.status for s in held] == [200] * 4
        assert Stream(stack, sessions[0], tid).read_head().status == 429
        end_tasks(stack, users)
        # the task ended: one more watcher still gets its final event, the cap does not apply
        late = Stream(stack, sessions[0], tid).read_head()
        assert late.status == 200
        assert '"state":"CANCELLED"' in late.read_until_closed(timeout=5)
    finally:
        for s in held:
            s.close()
    wait_for("every stream to leave", lambda: metric(stack, "gmailsync_progress_streams") == 0, 5)


def test_streams_held_by_a_crashed_child_do_not_count_against_anyone(stack, expect_log):
    """httpd children killed (SIGKILL: no cleanup runs) while they hold a user's every stream:
    their places are reaped, so the user can watch again and the gauge says what is open."""
    expect_log(r"AH10392: children are killed successively")
    users = make_users(stack, 1, state="RUNNING")
    uid, (session,), tid = users[0]
    cap = 4  # GmailSyncMaxStreamsPerUser's default
    held = [Stream(stack, session, tid).read_head() for _ in range(cap)]
    try:
        assert [s.status for s in held] == [200] * cap
        refused = Stream(stack, session, tid).read_head()
        assert refused.status == 429
        refused.close()
        parent = int(open(os.path.join(os.path.dirname(stack.httpd_conf), "httpd.pid")).read())
        daemon = requests.get(stack.api + "/health", timeout=10).json()["daemon"]["pid"]
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(parent)],
                                                   capture_output=True, text=True).stdout.split()]
        killed = [p for p in children if p != daemon]
        assert killed and daemon in children
        for p in killed:
            os.kill(p, signal.SIGKILL)
        wait_for("the killed children gone", lambda: not any(
            os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z"
            for p in killed), 10)
    finally:
        for s in held:
            s.close()
    wait_for("new children", lambda: healthy(stack.api), 20)
    # the dead children's places are reaped: the gauge reads 0, and the user is admitted again
    assert wait_for("the gauge back to 0", lambda: metric(stack, "gmailsync_progress_streams") == 0
                    or None, 10) is not None
    again = [Stream(stack, session, tid).read_head() for _ in range(cap)]
    try:
        assert [s.status for s in again] == [200] * cap
    finally:
        for s in again:
            s.close()
        end_tasks(stack, users)
