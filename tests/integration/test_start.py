"""Idempotent start (issue 5): POST /api/gmail/sync/smart against a real httpd and PostgreSQL."""
import os
import re
import subprocess
import threading
import time

import psycopg2
import pytest
import requests

from conftest import OtherHttpd

pytestmark = pytest.mark.usefixtures("paused_daemon")

JSON = {"Content-Type": "application/json"}


def start(stack, session, body=b'{"force_full": false}', headers=None, base=None):
    h = dict(JSON)
    h.update(headers or {})
    return requests.post((base or stack.api) + "/smart", data=body,
                         headers=h, cookies={"session": session}, timeout=30)


def task_rows(stack, user_id):
    return stack.query("SELECT task_id::text, state FROM gmailsync.sync_tasks WHERE user_id=%s",
                       (user_id,))


def test_seed_2_double_click_gives_one_task(stack):
    u = stack.add_user(messages=5)
    first = start(stack, u["session"])
    second = start(stack, u["session"])
    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    a, b = first.json(), second.json()
    assert a["task_id"] == b["task_id"]
    assert a["reused"] is False and b["reused"] is True
    assert a["state"] == "CREATED"
    assert a["progress_url"] == "/api/gmail/sync/progress/" + a["task_id"]
    assert first.headers["Location"] == a["progress_url"]
    assert set(a) == {"task_id", "state", "reused", "progress_url"} == set(b)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        a["task_id"]), "task ids are random (v4) UUIDs"
    assert task_rows(stack, u["user_id"]) == [(a["task_id"], "CREATED")]


def test_seed_3_five_concurrent_requests_one_task(stack):
    u = stack.add_user(messages=5)
    barrier = threading.Barrier(5)
    results = []

    def go():
        barrier.wait()
        r = start(stack, u["session"])
        results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=go) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 5
    ids = {body["task_id"] for _, body in results}
    assert len(ids) == 1
    assert sorted(code for code, _ in results) == [200, 200, 200, 200, 202]
    assert sum(1 for _, body in results if not body["reused"]) == 1
    rows = task_rows(stack, u["user_id"])
    assert len(rows) == 1 and rows[0][0] in ids
    active = stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id=%s AND "
                         "state IN ('CREATED','RUNNING')", (u["user_id"],))[0][0]
    assert active == 1


def test_force_full_is_recorded(stack):
    u = stack.add_user(messages=1)
    r = start(stack, u["session"], body=b'{"force_full": true, "unknown": [1, {"x": 2}]}')
    assert r.status_code == 202, r.text
    assert stack.query("SELECT force_full FROM gmailsync.sync_tasks WHERE task_id=%s",
                       (r.json()["task_id"],)) == [(True,)]


def test_body_is_optional(stack):
    u = stack.add_user(messages=1)
    r = requests.post(stack.api + "/smart", cookies={"session": u["session"]}, timeout=30)
    assert r.status_code == 202, r.text
    assert stack.query("SELECT force_full FROM gmailsync.sync_tasks WHERE task_id=%s",
                       (r.json()["task_id"],)) == [(False,)]


def test_new_task_after_the_previous_one_finished(stack):
    u = stack.add_user(messages=1)
    first = start(stack, u["session"]).json()["task_id"]
    stack.query("UPDATE gmailsync.sync_tasks SET state='FAILED', error_code='test', "
                "finished_at=now() WHERE task_id=%s", (first,))
    r = start(stack, u["session"])
    assert r.status_code == 202 and r.json()["task_id"] != first


def test_user_without_linked_account_is_409(stack):
    u = stack.add_user(messages=0, no_account=True)
    r = start(stack, u["session"])
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/problem+json"
    assert task_rows(stack, u["user_id"]) == []


def test_start_logs_the_seed_events(stack):
    u = stack.add_user(messages=1)
    offset = stack.log_size()
    tid = start(stack, u["session"]).json()["task_id"]
    start(stack, u["session"])
    deadline = time.time() + 5
    while time.time() < deadline:
        text = stack.log_since(offset)
        if text.count("event=task.reused") >= 1:
            break
        time.sleep(0.05)
    user = u["user_id"]
    events = re.findall(r"event=(\S+) user=" + re.escape(user), text)
    assert events == ["start.requested", "active.check", "task.created",
                      "start.requested", "active.check", "task.reused"], text
    assert f"event=task.created user={user} task={tid}" in text
    assert u["session"] not in text


# --------------------------------------------------------------------------- bad requests

def expired_session(stack):
    return stack.add_user(messages=0, session_hours=-1)["session"]


BAD = [
    # (id, method, headers, body, cookie (None = valid session; "" = none), status)
    ("no cookie", "POST", JSON, b"{}", "", 401),
    ("unknown session", "POST", JSON, b"{}", "not-a-session", 401),
    ("expired session", "POST", JSON, b"{}", "EXPIRED", 401),
    ("sql in cookie", "POST", JSON, b"{}", "x' OR '1'='1", 401),
    ("very long cookie", "POST", JSON, b"{}", "a" * 4000, 401),
    ("cookie with non-ASCII bytes", "POST", JSON, b"{}", "caf\u00e9\u00ff", 401),
    ("GET", "GET", {}, None, None, 405),
    ("PUT", "PUT", JSON, b"{}", None, 405),
    ("DELETE", "DELETE", {}, None, None, 405),
    ("text/plain", "POST", {"Content-Type": "text/plain"}, b'{"force_full": false}', None, 415),
    ("form", "POST", {"Content-Type": "application/x-www-form-urlencoded"}, b"force_full=1", None, 415),
    ("no content type", "POST", {"Content-Type": ""}, b'{"force_full": false}', None, 415),
    ("json lookalike type", "POST", {"Content-Type": "application/jsonx"}, b"{}", None, 415),
    ("malformed json", "POST", JSON, b'{"force_full": ', None, 400),
    ("trailing garbage", "POST", JSON, b'{"force_full": false} x', None, 400),
    ("single quotes", "POST", JSON, b"{'force_full': false}", None, 400),
    ("array body", "POST", JSON, b"[]", None, 400),
    ("string body", "POST", JSON, b'"force_full"', None, 400),
    ("null body", "POST", JSON, b"null", None, 400),
    ("force_full string", "POST", JSON, b'{"force_full": "yes"}', None, 400),
    ("force_full number", "POST", JSON, b'{"force_full": 1}', None, 400),
    ("force_full null", "POST", JSON, b'{"force_full": null}', None, 400),
    ("deep nesting", "POST", JSON, b'{"a":' * 100 + b"1" + b"}" * 100, None, 400),
    ("sql in body", "POST", JSON, b"{\"force_full\": false, \"x\": \"'); DROP TABLE gmailsync.sync_tasks; --\"}", None, "ok"),
    ("5 KiB body", "POST", JSON, b'{"pad": "' + b"x" * 5120 + b'"}', None, 413),
    ("foreign origin", "POST", dict(JSON, Origin="https://evil.example"), b"{}", None, 403),
    ("null origin", "POST", dict(JSON, Origin="null"), b"{}", None, 403),
    ("origin lookalike", "POST", dict(JSON, Origin="http://127.0.0.1.evil.example"), b"{}", None, 403),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_request_is_documented_problem_and_creates_nothing(stack, case):
    name, method, headers, body, cookie, status = case
    u = stack.add_user(messages=0)
    if cookie is None:
        cookie = u["session"]
    elif cookie == "EXPIRED":
        cookie = expired_session(stack)
    h = {"Cookie": f"session={cookie}"} if cookie else {}
    h.update(headers)
    h = {k: v for k, v in h.items() if v != ""}
    session = requests.Session()
    req = requests.Request(method, stack.api + "/smart", data=body, headers=h).prepare()
    if headers.get("Content-Type") == "":
        req.headers.pop("Content-Type", None)
    r = session.send(req, timeout=30)
    if status == "ok":
        assert r.status_code == 202, r.text
        assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks")[0][0] > 0
        return
    assert r.status_code == status, (name, r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/problem+json", r.headers
    problem = r.json()
    assert problem["status"] == status and problem["title"] and problem["type"]
    if status == 405:
        assert r.headers["Allow"] == "POST"
    assert task_rows(stack, u["user_id"]) == []


def test_chunked_oversized_body_is_413(stack):
    u = stack.add_user(messages=0)

    def gen():
        yield b'{"pad": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}'

    r = requests.post(stack.api + "/smart", data=gen(), headers=JSON,
                      cookies={"session": u["session"]}, timeout=30)
    assert r.status_code == 413
    assert task_rows(stack, u["user_id"]) == []


def test_allowed_cross_origin_and_same_origin_pass(stack, tmp_path):
    u = stack.add_user(messages=1)
    same = stack.base_url  # http://127.0.0.1:PORT equals the Host header requests sends
    r = start(stack, u["session"], headers={"Origin": same})
    assert r.status_code == 202, r.text
    extra = tmp_path / "origin.conf"
    extra.write_text("GmailSyncAllowOrigin https://app.example.test\n")
    try:
        stack.reconfigure(str(extra))
        u2 = stack.add_user(messages=1)
        r = start(stack, u2["session"], headers={"Origin": "https://app.example.test"})
        assert r.status_code == 202, r.text
    finally:
        stack.reconfigure(None)


def test_gmailsync_off_answers_503_and_creates_nothing(stack, tmp_path):
    u = stack.add_user(messages=1)
    extra = tmp_path / "off.conf"
    extra.write_text("GmailSync Off\n")
    try:
        stack.reconfigure(str(extra))
        r = start(stack, u["session"])
        assert r.status_code == 503
        assert r.headers["Retry-After"].isdigit()
        assert r.headers["Content-Type"] == "application/problem+json"
        assert task_rows(stack, u["user_id"]) == []
        assert requests.get(stack.api + "/health", timeout=10).json()["enabled"] is False
    finally:
        stack.reconfigure(None)
    assert start(stack, u["session"]).status_code == 202


def test_remote_user_identity(stack, shared_tmp):
    """With GmailSyncUserFrom remote-user the user comes from another auth module (here Basic)."""
    u = stack.add_user(messages=1, user_id="alice-" + os.urandom(3).hex())
    users = os.path.join(shared_tmp, "htpasswd")
    subprocess.run(["htpasswd", "-bc", users, u["user_id"], "pw"], check=True,
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
<Location "/api/gmail/sync/smart">
    AuthType Basic
    AuthName "gmailsync"
    AuthBasicProvider file
    AuthUserFile "{users}"
    Require valid-user
</Location>
""")
    try:
        stack.reconfigure(extra)
        r = requests.post(stack.api + "/smart", auth=(u["user_id"], "pw"), timeout=30)
        assert r.status_code == 202, r.text
        assert task_rows(stack, u["user_id"]) == [(r.json()["task_id"], "CREATED")]
        # the session cookie is not consulted in this mode
        r = requests.post(stack.api + "/smart", cookies={"session": u["session"]}, timeout=30)
        assert r.status_code == 401
    finally:
        stack.reconfigure(None)


# --------------------------------------------------------------------------- two hosts, 200 callers

@pytest.fixture(scope="module")
def second_httpd(stack):
    """A second httpd (own ServerRoot, own shm, own port) on the same PostgreSQL."""
    other = OtherHttpd(stack, "httpd2", int(stack.base_url.rsplit(":", 1)[1]) + 2).start()
    yield other.api, other.log
    errors = other.stop()
    assert not errors, "second httpd logged:\n" + "\n".join(errors)


def burst(stack, bases, session, n):
    """n requests released at once, spread round-robin over the hosts."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        s = requests.Session()
        barrier.wait()
        try:
            r = s.post(bases[i % len(bases)] + "/smart", data=b'{"force_full": false}',
                       headers=JSON, cookies={"session": session}, timeout=120)
            results[i] = (r.status_code, r.json())
        except Exception as e:  # recorded, asserted below
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return results


def assert_one_task_per_user(stack, bases, users, n):
    for u in users:
        results = burst(stack, bases, u["session"], n)
        codes = [r[0] for r in results]
        assert all(c in (200, 202) for c in codes), codes
        ids = {r[1]["task_id"] for r in results}
        assert len(ids) == 1, f"{u['user_id']}: {len(ids)} different task ids"
        assert codes.count(202) == 1, codes
        rows = task_rows(stack, u["user_id"])
        assert len(rows) == 1 and rows[0][0] in ids, rows


def test_200_callers_on_two_hosts_for_20_users(stack, second_httpd):
    bases = [stack.api, second_httpd[0]]
    users = [stack.add_user(messages=0) for _ in range(20)]
    assert_one_task_per_user(stack, bases, users, 200)


def test_200_callers_on_two_hosts_under_repeatable_read_default(stack, second_httpd):
    """Even when the server's default isolation is REPEATABLE READ, the start forces READ
    COMMITTED: otherwise the check after the lock would miss the row just committed."""
    admin = psycopg2.connect(stack.pg_admin_dsn)
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("ALTER SYSTEM SET default_transaction_isolation = 'repeatable read'")
    cur.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.time() + 10
        while True:
            c = psycopg2.connect(stack.pg_dsn)
            level = c.cursor()
            level.execute("SHOW default_transaction_isolation")
            got = level.fetchone()[0]
            c.close()
            if got == "repeatable read":
                break
            assert time.time() < deadline, got
            time.sleep(0.1)
        users = [stack.add_user(messages=0) for _ in range(20)]
        assert_one_task_per_user(stack, [stack.api, second_httpd[0]], users, 200)
    finally:
        cur.execute("ALTER SYSTEM RESET default_transaction_isolation")
        cur.execute("SELECT pg_reload_conf()")
        admin.close()
