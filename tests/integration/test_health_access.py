"""Issue 21 item 7: /health and /metrics only read, bounded in time, tell no user data unless
asked with the operator's token, and GmailSyncHealthTokenFile protects them where `Require ip
127.0.0.1` cannot (behind a reverse proxy on the same host every client is loopback).

- /health reports a RUNNING task whose heartbeat is older than GmailSyncStuckAfter as stuck
  without writing it (the daemon's rescue marks it), and fails no unclaimed task either;
- a transaction holding a RUNNING task's row lock (a frozen worker) does not delay it: a SELECT
  never waits on row locks; a table lock makes it answer 503 within seconds instead of hanging;
- counts and alerts by default; task and user ids only with ?detail=1 and the bearer token;
- with GmailSyncHealthTokenFile both answer 401 problem+json unless `Authorization: Bearer
  <token>` matches; the file is checked by the configuration test.
"""
import os
import secrets
import signal
import stat
import time

import psycopg2
import pytest
import requests

from conftest import RUN_DIR, wait_for
from test_daemon import current_daemon
from test_foundation import configtest

TOKEN = secrets.token_hex(32)
AUTH = {"Authorization": "Bearer " + TOKEN}
STUCK_AFTER_S = 3
# a short stuck threshold; the other alerts silenced: whatever earlier tests left in the window
CONF = f"""GmailSyncHeartbeat 500ms
GmailSyncStuckAfter {STUCK_AFTER_S}s
GmailSyncAlertSuccessRate 0%
GmailSyncAlertErrorRate 100%
GmailSyncAlertMeanDuration 30d
GmailSyncQueuedAlertAfter 30d
"""


def token_file(text, mode=0o600, name="health_token"):
    path = os.path.join(RUN_DIR, "tmp", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@pytest.fixture(scope="module")
def with_token(stack):
    path = token_file(TOKEN + "\n")
    stack.reconfigure_text(CONF + f'GmailSyncHealthTokenFile "{path}"\n', "health_token.conf")
    yield
    stack.reconfigure(None)


def health(stack, query="", headers=AUTH, timeout=10):
    r = requests.get(stack.api + "/health" + query, headers=headers, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def stale_running_task(stack, user, heartbeat_age_s=10):
    """A RUNNING task whose worker ran on a host that vanished: nobody beats for it any more."""
    return stack.query(
        "INSERT INTO gmailsync.sync_tasks (user_id, state, lease, worker_host, worker_pid,"
        " started_at, heartbeat_at, updated_at) VALUES (%s, 'RUNNING', gen_random_uuid(),"
        " 'host-gone', 4242, now() - interval '1 minute', now() - make_interval(secs => %s),"
        " now() - interval '1 minute') RETURNING task_id::text",
        (user["user_id"], heartbeat_age_s))[0][0]


def end_task(stack, tid):
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now()"
                " WHERE task_id = %s AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')",
                (tid,))


def test_health_token_file_guards_health_and_metrics_and_ids_need_it(stack, tmp_path):
    # without the directive: counts only, and no way to the ids
    h = health(stack, headers={})
    assert h["detail"] is False and "stuck" not in h and "tasks" not in h["running"]
    r = requests.get(stack.api + "/health?detail=1", timeout=10)
    assert r.status_code == 403 and r.json()["type"].endswith(":health-detail-needs-token")
    # the configuration test checks the file: missing, open to everyone, not a regular file
    # (a FIFO must not hang it), empty, a token too short or with a space
    good = tmp_path / "ok"
    good.write_text(TOKEN + "\n")
    os.chmod(good, 0o640)
    proc, _ = configtest(tmp_path, f'GmailSyncHealthTokenFile "{good}"')
    assert proc.returncode == 0, proc.stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    bad = {"missing": (tmp_path / "nope", None, "no such file"),
           "world": (tmp_path / "world", (TOKEN, 0o644), "open to every user"),
           "fifo": (fifo, None, "not a regular file"),
           "empty": (tmp_path / "empty", ("", 0o600), "empty"),
           "short": (tmp_path / "short", ("abc123\n", 0o600), "16 to 1024"),
           "space": (tmp_path / "space", ("a" * 20 + " " + "b" * 20, 0o600), "one line")}
    for name, (path, content, why) in bad.items():
        if content:
            path.write_text(content[0])
            os.chmod(path, content[1])
        proc, _ = configtest(tmp_path, f'GmailSyncHealthTokenFile "{path}"')
        assert proc.returncode != 0, name
        assert "GmailSyncHealthTokenFile" in proc.stderr and why in proc.stderr, (name, proc.stderr)
        if content:
            assert content[0].strip() not in proc.stderr or not content[0].strip()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_health_reports_a_stale_running_task_as_stuck_without_writing_it(stack, with_token):
    """Read-only: with the daemon frozen (its rescue would mark the task), /health reports the
    stale RUNNING task as stuck and leaves it, and an unclaimed CREATED task, untouched."""
    user, queued_user = stack.add_user(messages=1), stack.add_user(messages=1)
    daemon = current_daemon(stack)
    assert daemon, "no daemon"
    tid = qid = None
    os.kill(daemon, signal.SIGSTOP)
    try:
        tid = stale_running_task(stack, user)
        # queued two hours ago: past the claim timeout (an hour), which the daemon fails
        qid = stack.query("INSERT INTO gmailsync.sync_tasks (user_id, created_at, updated_at)"
                          " VALUES (%s, now() - interval '2 hours', now() - interval '2 hours')"
                          " RETURNING task_id::text", (queued_user["user_id"],))[0][0]
        before = stack.query("SELECT task_id::text, state, updated_at, xmin::text"
                             " FROM gmailsync.sync_tasks WHERE task_id IN (%s, %s)"
                             " ORDER BY task_id", (tid, qid))
        for _ in range(3):
            h = health(stack)
            d = health(stack, "?detail=1")
            after = stack.query("SELECT task_id::text, state, updated_at, xmin::text"
                                " FROM gmailsync.sync_tasks WHERE task_id IN (%s, %s)"
                                " ORDER BY task_id", (tid, qid))
            assert after == before   # not one write: same state, same row version
            assert h["metrics"]["stuck_tasks"]["value"] >= 1, h
            assert h["metrics"]["stuck_tasks"]["alert"] is True and "stuck_tasks" in h["alerts"]
            assert h["status"] == "degraded" and h["detail"] is False
            # no ids by default: counts and alerts
            assert "stuck" not in h and "tasks" not in h["running"], h
            text = requests.get(stack.api + "/health", headers=AUTH, timeout=10).text
            for secret in (tid, qid, user["user_id"], queued_user["user_id"]):
                assert secret not in text
            assert d["detail"] is True
            mine = [s for s in d["stuck"] if s["task_id"] == tid]
            assert mine and mine[0]["state"] == "RUNNING" and mine[0]["user_id"] == user["user_id"]
            assert mine[0]["heartbeat_age_s"] >= 9, mine
            assert tid in [t["task_id"] for t in d["running"]["tasks"]]
            assert requests.get(stack.api + "/metrics", headers=AUTH, timeout=10).status_code == 200
        assert {r[0]: r[1] for r in after} == {tid: "RUNNING", qid: "CREATED"}
    finally:
        # the tasks are test artefacts: ended before the daemon wakes up
        for t in (tid, qid):
            if t:
                end_task(stack, t)
        os.kill(daemon, signal.SIGCONT)


def test_health_answers_within_a_second_while_a_task_row_is_locked(stack, with_token, expect_log):
    """A frozen worker holding its task row's lock (SELECT ... FOR UPDATE in an open
    transaction) delays neither /health nor /metrics; the stale task is reported stuck."""
    # the daemon's rescue waits for the same row (or gives up on a lock timeout)
    expect_log(r"event=daemon\.rescue_failed|event=log\.repeated")
    user = stack.add_user(messages=1)
    daemon = current_daemon(stack)
    assert daemon, "no daemon"
    conn = psycopg2.connect(stack.pg_dsn)
    tid = None
    try:
        cur = conn.cursor()
        # the lock is taken before the daemon's rescue can mark the stale task: the "worker"
        # froze holding it (the daemon then waits for it, or gives up on a lock timeout)
        os.kill(daemon, signal.SIGSTOP)
        try:
            tid = stale_running_task(stack, user)
            cur.execute("SELECT task_id FROM gmailsync.sync_tasks WHERE task_id = %s"
                        " FOR UPDATE", (tid,))
            assert cur.fetchall()
        finally:
            os.kill(daemon, signal.SIGCONT)
        for i in range(5):
            t0 = time.monotonic()
            h = health(stack, "?detail=1" if i % 2 else "", timeout=1)
            took = time.monotonic() - t0
            assert took < 1, took
            assert h["metrics"]["stuck_tasks"]["value"] >= 1, h
            if i % 2:
                assert tid in [s["task_id"] for s in h["stuck"] if s["state"] == "RUNNING"]
            t0 = time.monotonic()
            r = requests.get(stack.api + "/metrics", headers=AUTH, timeout=1)
            assert r.status_code == 200 and time.monotonic() - t0 < 1
        # the "worker" ends its task in its own transaction: the rescue has nothing to mark
        cur.execute("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now()"
                    " WHERE task_id = %s", (tid,))
        conn.commit()
    finally:
        conn.rollback()
        conn.close()
        if tid:
            end_task(stack, tid)


def test_a_table_lock_makes_health_and_metrics_answer_503_in_seconds_not_hang(stack, with_token,
                                                                              expect_log):
    """Every statement of /health and /metrics has a lock and a statement timeout: a lock on
    the whole table (a migration, a VACUUM FULL) is a quick 503 with Retry-After."""
    expect_log(r"event=health\.db_error|event=daemon\.\w+_failed|event=log\.repeated"
               r"|event=autosync\.round_failed")
    conn = psycopg2.connect(stack.pg_dsn)
    try:
        cur = conn.cursor()
        cur.execute("LOCK TABLE gmailsync.sync_tasks IN ACCESS EXCLUSIVE MODE")
        for path in ("/health", "/metrics", "/health?detail=1"):
            t0 = time.monotonic()
            r = requests.get(stack.api + path, headers=AUTH, timeout=6)
            took = time.monotonic() - t0
            assert r.status_code == 503 and r.headers["Retry-After"], (path, r.text)
            assert r.headers["Content-Type"] == "application/problem+json"
            assert took < 4, (path, took)
    finally:
        conn.rollback()
        conn.close()
    wait_for("/health again", lambda: requests.get(stack.api + "/health", headers=AUTH,
                                                   timeout=5).status_code == 200, 10)


def test_with_the_token_file_health_and_metrics_answer_only_the_bearer(stack, with_token):
    for path in ("/health", "/metrics", "/health?detail=1"):
        for headers in ({}, {"Authorization": "Bearer " + TOKEN[:-1]},
                        {"Authorization": "Bearer " + TOKEN.upper()},
                        {"Authorization": "Basic " + TOKEN}, {"Authorization": TOKEN},
                        {"Authorization": "Bearer"}, {"X-Forwarded-For": "127.0.0.1"}):
            r = requests.get(stack.api + path, headers=headers, timeout=10)
            assert r.status_code == 401, (path, headers, r.text)
            assert r.headers["Content-Type"] == "application/problem+json"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert r.json()["type"].endswith(":unauthorized")
            assert "X-GmailSync-Version" not in r.headers and "version" not in r.json()
        for auth in ("Bearer " + TOKEN, "bearer  " + TOKEN):
            r = requests.get(stack.api + path, headers={"Authorization": auth}, timeout=10)
            assert r.status_code == 200, (path, r.text)
    r = requests.head(stack.api + "/health", headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.headers["X-GmailSync-Version"]
    d = health(stack, "?detail=1")
    assert d["detail"] is True and isinstance(d["stuck"], list)
    assert isinstance(d["running"]["tasks"], list)
    # the token is in no log
    assert TOKEN not in stack.log_since(0)
