"""Security (issue 14): one user cannot reach another's tasks, task ids are random, a deleted or
expired session stops working within GmailSyncSessionCacheTTL, cross-origin POSTs are refused,
every API answer is no-store + nosniff, SQL metacharacters in every input are data, slow or huge
bodies and slow headers are cut off in bounded time, and streams that vanish free their threads.

test_hostile.py covers malformed framing (bad chunking, oversized lines, fields and bodies) and
the Origin rule in depth; test_progress.py the 404 for another user's progress; the final scan of
logs, answers and argv for secrets is test_zz_whole_run_scan.py.
"""
import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import RUN_DIR, wait_for
from gsworker import assert_table_equals_mailbox
from test_hostile import CANCEL, H, JSON_CT, SMART, assert_problem, exchange, port

ACTIVE = ("CREATED", "RUNNING")


def start(stack, user, api=None, **kw):
    return requests.post((api or stack.api) + "/smart", cookies={"session": user["session"]},
                         timeout=30, **kw)


def state(stack, tid):
    return stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (tid,))[0][0]


def cancel_all(stack, user):
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now()"
                " WHERE user_id = %s AND state IN ('CREATED', 'RUNNING')", (user["user_id"],))


# ------------------------------------------------------------------ isolation


def test_a_user_can_neither_read_stream_nor_cancel_anothers_task(stack, gmail):
    a, b = stack.add_user(messages=5), stack.add_user(messages=400)
    gmail.fault(method="messages.get", mode="latency", seconds=0.3, count=-1, email=b["email"])
    r = start(stack, b)
    assert r.status_code == 202, r.text
    tid = r.json()["task_id"]
    ca = {"session": a["session"]}
    unknown = str(uuid.uuid4())
    # read: the same 404 as for an id that does not exist
    mine = requests.get(stack.api + "/progress/" + tid, cookies=ca, timeout=10)
    none = requests.get(stack.api + "/progress/" + unknown, cookies=ca, timeout=10)
    assert mine.status_code == none.status_code == 404 and mine.json() == none.json()
    # stream: 404 too, never a stream
    sse = requests.get(stack.api + "/progress/" + tid, cookies=ca, timeout=10,
                       headers={"Accept": "text/event-stream"})
    assert sse.status_code == 404 and sse.headers["Content-Type"] == "application/problem+json"
    # cancel: 404, and B's task goes on
    c = requests.post(stack.api + "/cancel/" + tid, cookies=ca, timeout=10)
    c_none = requests.post(stack.api + "/cancel/" + unknown, cookies=ca, timeout=10)
    assert c.status_code == c_none.status_code == 404 and c.json() == c_none.json(), c.text
    assert state(stack, tid) in ACTIVE
    # A's status shows nothing of B's
    st = requests.get(stack.api + "/status", cookies=ca, timeout=10).json()
    assert tid not in json.dumps(st) and b["user_id"] not in json.dumps(st)
    # B still can
    assert requests.get(stack.api + "/progress/" + tid, cookies={"session": b["session"]},
                        timeout=10).status_code == 200
    gmail.clear_faults()
    assert requests.post(stack.api + "/cancel/" + tid, cookies={"session": b["session"]},
                         timeout=10).status_code in (202, 409)


def test_task_ids_are_random_v4_uuids(stack):
    user = stack.add_user(messages=0)
    ids = []
    for _ in range(40):
        r = start(stack, user)
        assert r.status_code in (200, 202), r.text
        ids.append(r.json()["task_id"])
        cancel_all(stack, user)
    assert len(set(ids)) == len(ids)
    for t in ids:
        u = uuid.UUID(t)
        assert str(u) == t and u.version == 4 and u.variant == uuid.RFC_4122, t
    # 122 random bits: every random hex digit takes many values over 40 ids, no counter
    digits = [t.replace("-", "") for t in ids]
    fixed = {12}     # the version nibble (the variant nibble at 16 still has 2 random bits)
    for pos in range(32):
        if pos not in fixed:
            assert len({d[pos] for d in digits}) >= (3 if pos == 16 else 6), (pos, digits[:3])
    ints = [uuid.UUID(t).int for t in ids]
    assert ints != sorted(ints) and ints != sorted(ints, reverse=True)


# ------------------------------------------------------------------ sessions

TTL = 5.0   # GmailSyncSessionCacheTTL's documented default (docs/install.md, Directives)


@pytest.mark.parametrize("how", ["deleted", "expired"])
def test_a_dead_session_is_refused_within_the_session_cache_ttl(stack, how):
    user = stack.add_user(messages=0)
    cookies = {"session": user["session"]}
    assert requests.get(stack.api + "/status", cookies=cookies, timeout=10).status_code == 200
    digest = hashlib.sha256(user["session"].encode()).digest()
    if how == "deleted":
        stack.query("DELETE FROM gmailsync.sessions WHERE token_sha256 = %s", (digest,))
    else:
        stack.query("UPDATE gmailsync.sessions SET expires_at = now() - interval '1 second'"
                    " WHERE token_sha256 = %s", (digest,))
    t0 = time.monotonic()
    wait_for("the session refused", lambda: requests.get(
        stack.api + "/status", cookies=cookies, timeout=10).status_code == 401, TTL + 2,
        interval=0.1)
    took = time.monotonic() - t0
    assert took <= TTL + 1, took
    # and a start with it creates nothing
    r = start(stack, user)
    assert r.status_code == 401, r.text
    assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = %s",
                       (user["user_id"],))[0][0] == 0
    print("%s session refused after %.2f s (TTL %.0f s)" % (how, took, TTL))


def test_a_dead_session_is_refused_at_once_without_the_cache(stack):
    stack.reconfigure_text("GmailSyncSessionCacheTTL 0\n")
    try:
        user = stack.add_user(messages=0)
        cookies = {"session": user["session"]}
        assert requests.get(stack.api + "/status", cookies=cookies, timeout=10).status_code == 200
        stack.query("DELETE FROM gmailsync.sessions WHERE user_id = %s", (user["user_id"],))
        assert requests.get(stack.api + "/status", cookies=cookies, timeout=10).status_code == 401
    finally:
        stack.reconfigure(None)


# ------------------------------------------------------------------ cross-origin


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1",
                                    "http://127.0.0.1.evil.example"])
def test_cross_origin_posts_are_refused_and_change_nothing(stack, origin):
    user = stack.add_user(messages=50)
    hdr = {"Origin": origin, "Content-Type": "application/json"}
    c = {"session": user["session"]}
    r = requests.post(stack.api + "/smart", data=b"{}", headers=hdr, cookies=c, timeout=10)
    assert r.status_code == 403, r.text
    assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = %s",
                       (user["user_id"],))[0][0] == 0
    tid = start(stack, user).json()["task_id"]
    r = requests.post(stack.api + "/cancel/" + tid, headers=hdr, cookies=c, timeout=10)
    assert r.status_code == 403, r.text
    r = requests.post(stack.api + "/oauth/disconnect", data=b"{}", headers=hdr, cookies=c,
                      timeout=10)
    assert r.status_code == 403, r.text
    assert stack.query("SELECT count(*) FROM gmailsync.accounts WHERE user_id = %s",
                       (user["user_id"],))[0][0] == 1
    assert state(stack, tid) in ACTIVE + ("SUCCEEDED",)


# ------------------------------------------------------------------ headers on every answer


def test_every_api_answer_is_no_store_and_nosniff(stack):
    user = stack.add_user(messages=20)
    c = {"session": user["session"]}
    api = stack.api
    first = start(stack, user)
    tid = first.json()["task_id"]
    answers = [first, start(stack, user)]
    for method, path, kw in (
            ("GET", "/progress/" + tid, {}), ("GET", "/status", {}), ("GET", "/health", {}),
            ("GET", "/metrics", {}), ("POST", "/cancel/" + tid, {}),
            ("POST", "/cancel/" + tid, {}),                  # 409 once it ended
            ("GET", "/progress/" + str(uuid.uuid4()), {}),   # 404
            ("GET", "/status", {"cookies": {"session": "nope"}}),   # 401
            ("POST", "/smart", {"data": b"{", "headers": {"Content-Type": "application/json"}}),
            ("POST", "/smart", {"data": b"x" * 5000}),           # 413
            ("DELETE", "/status", {}),                           # 405
            ("GET", "/nope", {}),                                # 404
            ("GET", "/oauth/start", {"allow_redirects": False}),   # 302 to consent
            ("GET", "/oauth/callback?state=x&code=y", {}),        # 400
            ("POST", "/oauth/disconnect", {"data": b"[]",
                                           "headers": {"Content-Type": "application/json"}})):
        kw.setdefault("cookies", c)
        answers.append(requests.request(method, api + path, timeout=10, **kw))
    statuses = set()
    for r in answers:
        statuses.add(r.status_code)
        assert r.headers.get("Cache-Control") == "no-store", (r.request.method, r.url,
                                                              r.status_code, r.headers)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (r.request.method, r.url,
                                                                      r.status_code)
    assert {200, 202, 302, 400, 401, 404, 405, 413} <= statuses, statuses


# ------------------------------------------------------------------ SQL metacharacters

SQLI = ["'; DROP TABLE gmailsync.sync_tasks; --", "' OR '1'='1", "\" OR 1=1 --",
        "x'); DELETE FROM gmailsync.messages; --", "$$; SELECT pg_sleep(5); $$", "\\'; --",
        "1; UPDATE gmailsync.accounts SET email = 'pwned'", "%27%3B--", "' UNION SELECT * FROM"
        " gmailsync.sessions --", "\u2019; --", "x\x00y"]


def counts(stack):
    return stack.query("SELECT (SELECT count(*) FROM gmailsync.sync_tasks),"
                       " (SELECT count(*) FROM gmailsync.accounts),"
                       " (SELECT count(*) FROM gmailsync.sessions),"
                       " (SELECT count(*) FROM gmailsync.messages),"
                       " (SELECT count(*) FROM gmailsync.accounts WHERE email = 'pwned')")[0]


def pg_log_size():
    return os.path.getsize(os.path.join(RUN_DIR, "pg", "postgres.log"))


def test_sql_metacharacters_in_every_input_are_stored_or_rejected_never_executed(stack, gmail):
    pg_start = pg_log_size()
    before = counts(stack)
    user = stack.add_user(messages=5)
    c = {"session": user["session"]}
    slow = []
    for p in SQLI:
        q = urllib.parse.quote(p, safe="")
        t0 = time.monotonic()
        # session cookie: an unknown session (or a cookie httpd will not parse)
        r = requests.get(stack.api + "/status", headers={"Cookie": "session=" + q}, timeout=10)
        assert r.status_code in (400, 401), (p, r.status_code, r.text)
        # task id in the path
        for method in ("GET", "POST"):
            r = requests.request(method, stack.api + ("/progress/" if method == "GET" else
                                                      "/cancel/") + q, cookies=c, timeout=10)
            assert r.status_code in (400, 404), (p, method, r.status_code, r.text)
        # JSON fields: a value of the wrong type is 400, an unknown field is ignored
        r = requests.post(stack.api + "/smart", json={"force_full": p}, cookies=c, timeout=10)
        assert r.status_code == 400, (p, r.status_code, r.text)
        r = requests.post(stack.api + "/oauth/disconnect", json={"delete_messages": p},
                          cookies=c, timeout=10)
        assert r.status_code == 400, (p, r.status_code, r.text)
        r = requests.post(stack.api + "/smart", json={p: True}, cookies=c, timeout=10)
        assert r.status_code in ((400,) if "\x00" in p else (200, 202)), (p, r.status_code, r.text)
        # OAuth callback parameters
        r = requests.get(stack.api + "/oauth/callback", params={"state": p, "code": p,
                                                                  "error": p, "scope": p},
                         cookies=c, timeout=10, allow_redirects=False)
        assert r.status_code in (302, 303, 400), (p, r.status_code, r.text)
        slow.append(time.monotonic() - t0)
    assert max(slow) < 3, "something slept: %.1f s" % max(slow)   # pg_sleep(5) did not run
    cancel_all(stack, user)
    # user ids (and addresses) made of metacharacters are stored as they are and sync
    tricky = []
    for i, p in enumerate(SQLI[:6]):
        uid = ("sqli-%d-" % i) + p
        u = stack.add_user(messages=7, user_id=uid, email="sqli-%d-%s@example.test"
                           % (i, uuid.uuid4().hex[:6]))
        assert u["user_id"] == uid
        tricky.append(u)
    for u in tricky:
        r = start(stack, u)
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]
        wait_for("the sync of %r" % u["user_id"], lambda: state(stack, tid) == "SUCCEEDED", 30)
        assert requests.get(stack.api + "/status", cookies={"session": u["session"]},
                            timeout=10).json()["task"]["task_id"] == tid
        assert_table_equals_mailbox(stack, gmail, u, check_fields=False)
        assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id = %s",
                           (u["user_id"],))[0][0] == 1
    after = counts(stack)
    assert after[4] == 0
    assert after[0] >= before[0] and after[1] == before[1] + 1 + len(tricky), (before, after)
    assert after[3] >= before[3] + 7 * len(tricky)
    # PostgreSQL never saw any of it as SQL text
    with open(os.path.join(RUN_DIR, "pg", "postgres.log"), errors="replace") as f:
        f.seek(pg_start)
        log = f.read()
    assert "syntax error" not in log and "DROP" not in log, log[-2000:]


# ------------------------------------------------------------------ slow and huge requests


def slow_send(stack, head, pieces, every, budget):
    """Sends head, then one of pieces every `every` seconds until httpd answers or closes;
    returns (answer bytes, seconds from the head to the answer). Bounded by `budget` seconds."""
    s = socket.create_connection(("127.0.0.1", port(stack)), timeout=budget)
    s.sendall(head)
    t0 = time.monotonic()
    out = b""
    try:
        s.settimeout(every)
        for piece in pieces:
            if time.monotonic() - t0 > budget:
                break
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    break
            except socket.timeout:
                pass
            try:
                s.sendall(piece)
            except OSError:
                break
        s.settimeout(5)
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out, time.monotonic() - t0


@pytest.fixture
def no_reqtimeout(stack):
    """mod_reqtimeout's body limit off: the module's own deadline is what is measured."""
    stack.reconfigure_text("RequestReadTimeout header=20-40,MinRate=500 body=0\n",
                           "no-reqtimeout.conf")
    yield
    stack.reconfigure(None)


@pytest.mark.parametrize("where", ["smart", "cancel"])
def test_a_slow_body_is_cut_off_by_the_module_within_its_deadline(stack, no_reqtimeout, where):
    """One byte every 0.5 s of a 4000-byte body: without a deadline of its own the module would
    wait for it 33 minutes (and an unread 1 GiB body on /cancel longer), each byte restarting
    httpd's Timeout. It answers 408 within GS_BODY_DEADLINE (10 s)."""
    user = stack.add_user(messages=0)
    line = SMART if where == "smart" else CANCEL
    head = (line + b"Host: 127.0.0.1\r\nCookie: session=" + user["session"].encode() + b"\r\n"
            + JSON_CT + b"Content-Length: 4000\r\n\r\n")
    raw, took = slow_send(stack, head, [b" "] * 4000, 0.5, 30)
    from test_hostile import Answer
    assert_problem(Answer(raw), 408)
    assert 9 <= took <= 13, took
    # the thread is free again: an ordinary request is fast
    t0 = time.monotonic()
    assert requests.get(stack.api + "/health", timeout=5).status_code == 200
    assert time.monotonic() - t0 < 1
    print("slow body on /%s cut off after %.1f s" % (where, took))


def test_a_huge_body_on_a_route_that_reads_none_is_refused_without_reading_it(stack):
    user = stack.add_user(messages=0)
    t0 = time.monotonic()
    answer = exchange(stack, CANCEL + H + b"Cookie: session=" + user["session"].encode()
                      + b"\r\nContent-Length: 1000000000\r\n\r\n" + b" " * 65536)
    assert_problem(answer, 413)
    assert time.monotonic() - t0 < 2


def test_slow_headers_are_cut_off_by_reqtimeout(stack):
    """Slowloris: header lines dribbled one byte a second. The stack loads mod_reqtimeout with
    Debian's default (header=20-40,MinRate=500); here a shorter one keeps the test short."""
    stack.reconfigure_text("RequestReadTimeout header=3-6,MinRate=500 body=10,MinRate=500\n",
                           "reqtimeout.conf")
    try:
        out, took = slow_send(stack, b"GET /api/gmail/sync/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                              [b"X-Slow-%d: a\r\n" % i for i in range(30)], 1, 15)
        assert took < 10, took
        assert out == b"" or out.startswith(b"HTTP/1.1 408"), out[:200]
    finally:
        stack.reconfigure(None)


# ------------------------------------------------------------------ streams that vanish


def metric(stack, name):
    text = requests.get(stack.api + "/metrics", timeout=10).text
    return int(re.search(r"^%s (\d+)$" % re.escape(name), text, re.M).group(1))


def test_300_sse_clients_that_vanish_free_their_threads(stack, gmail):
    users = [stack.add_user(messages=500) for _ in range(75)]
    for u in users:
        gmail.fault(method="messages.get", mode="latency", seconds=1, count=-1, email=u["email"])
    tids = [start(stack, u).json()["task_id"] for u in users]
    socks = []
    limit = metric(stack, "gmailsync_progress_streams_limit")
    try:
        for i in range(300):
            u, tid = users[i % len(users)], tids[i % len(users)]
            s = socket.create_connection(("127.0.0.1", port(stack)), timeout=10)
            s.sendall(("GET /api/gmail/sync/progress/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Accept: text/event-stream\r\nCookie: session=%s\r\n\r\n"
                       % (tid, u["session"])).encode())
            socks.append(s)
        heads = []
        for s in socks:
            s.settimeout(10)
            heads.append(s.recv(4096)[:12])
        ok = sum(h.startswith(b"HTTP/1.1 200") for h in heads)
        busy = sum(h.startswith(b"HTTP/1.1 503") for h in heads)
        # the host's cap is full (a task that already ended answers its last event without
        # taking a place), the rest is the documented 503
        assert ok + busy == 300 and ok >= limit, (ok, busy, limit, set(heads))
        # at most the cap (fewer once a watched task ends and its streams close)
        assert 0 < metric(stack, "gmailsync_progress_streams") <= limit
    finally:
        # vanish: no FIN handshake courtesy, just an RST
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    t0 = time.monotonic()
    wait_for("the stream gauge back to 0",
             lambda: metric(stack, "gmailsync_progress_streams") == 0, 10)
    freed = time.monotonic() - t0
    # ordinary requests are fast again
    lat = []
    with requests.Session() as s:
        s.cookies.set("session", users[0]["session"])
        for _ in range(100):
            t = time.monotonic()
            assert s.get(stack.api + "/status", timeout=5).status_code == 200
            lat.append(time.monotonic() - t)
    lat.sort()
    print("300 vanished streams freed in %.2f s; then /status p50 %.1f ms p99 %.1f ms"
          % (freed, 1000 * lat[50], 1000 * lat[98]))
    # a thread still tied up by a vanished client would show as seconds; the tail alone is the
    # machine's scheduling (296 ms measured at a load of 8 on 2 cores)
    assert lat[50] < 0.1 and lat[98] < 1.0, (lat[50], lat[98])
    gmail.clear_faults()
    for u in users:
        cancel_all(stack, u)
    wait_for("the workers to leave", lambda: not stack.query(
        "SELECT 1 FROM gmailsync.sync_tasks WHERE state = 'RUNNING' AND user_id = ANY(%s)",
        ([u["user_id"] for u in users],)), 30)
    # host-wide: the event MPM gives the threads back (a new stream is served at once)
    u, tid = users[0], start(stack, users[0]).json()["task_id"]
    conn = http.client.HTTPConnection("127.0.0.1", port(stack), timeout=10)
    conn.request("GET", "/api/gmail/sync/progress/" + tid,
                 headers={"Accept": "text/event-stream", "Cookie": "session=" + u["session"]})
    assert conn.getresponse().status == 200
    conn.close()


# ------------------------------------------------------------------ remote-user names (issue 21, 9)

def test_remote_user_names_with_spaces_stay_one_log_field_and_bad_utf8_is_401(stack, shared_tmp):
    """A REMOTE_USER with spaces broke every key=value log line it was in; one with invalid
    UTF-8 was answered 503 (the database refused it) instead of 401."""
    import subprocess
    suffix = os.urandom(3).hex()
    name = "Jane Doe " + suffix
    bad = b"bad\xff" + suffix.encode()
    stack.add_user(messages=3, user_id=name)
    users = os.path.join(shared_tmp, "htpasswd")
    subprocess.run(["htpasswd", "-bc", users, name, "pw"], check=True, capture_output=True)
    subprocess.run([b"htpasswd", b"-b", users.encode(), bad, b"pw"], check=True,
                   capture_output=True)
    os.chmod(users, 0o644)
    extra = os.path.join(shared_tmp, "ru.conf")
    with open(extra, "w") as f:
        f.write(f"""
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
GmailSyncUserFrom remote-user
<LocationMatch "^/api/gmail/sync/(smart|status|oauth/start)$">
    AuthType Basic
    AuthName "gmailsync"
    AuthBasicProvider file
    AuthUserFile "{users}"
    Require valid-user
</LocationMatch>
""")
    try:
        stack.reconfigure(extra)
        offset = stack.log_size()
        r = requests.post(stack.api + "/smart", auth=(name, "pw"), timeout=30)
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]
        wait_for("the sync", lambda: state(stack, tid) in ("SUCCEEDED", "FAILED"), 60)
        assert state(stack, tid) == "SUCCEEDED"
        for method, path in (("POST", "/smart"), ("GET", "/status"), ("GET", "/oauth/start")):
            r = requests.request(method, stack.api + path, auth=(bad, "pw"), timeout=30,
                                 allow_redirects=False)
            assert_problem_json(r, 401)
        wait_for("the task's end in the log",
                 lambda: "event=task.succeeded task=%s" % tid in stack.log_since(offset), 10)
        text = stack.log_since(offset)
        mine = [l for l in text.splitlines() if suffix in l]
        assert len(mine) >= 4, text        # start.requested, task.created, worker.*, task.*
        for line in mine:
            assert 'user="%s"' % name in line, line
    finally:
        stack.reconfigure(None)


def assert_problem_json(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/problem+json"

