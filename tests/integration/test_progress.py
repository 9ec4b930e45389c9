"""Progress, status, health and metrics (issue 7): what users and operators see."""
import json
import os
import re
import secrets
import subprocess
import threading
import time

import psycopg2
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, SANITIZE, OtherHttpd, wait_for

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TASK_FIELDS = {"task_id", "state", "mode", "progress_percentage", "processed", "total", "error",
               "created_at", "started_at", "heartbeat_at", "finished_at", "retrying"}


def start(stack, user):
    r = requests.post(stack.api + "/smart", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code in (200, 202), r.text
    return r.json()["task_id"]


def progress(stack, user, task_id, **kw):
    return requests.get(f"{stack.api}/progress/{task_id}", cookies={"session": user["session"]},
                        timeout=30, **kw)


def db_state(stack, task_id):
    return stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id=%s", (task_id,))[0][0]


@pytest.fixture
def throttled(stack, tmp_path):
    """Syncs at about 200 messages/s, so that progress can be watched."""
    extra = tmp_path / "throttle.conf"
    extra.write_text("GmailSyncQuotaUnits 1000\nGmailSyncProgressInterval 250ms\n")
    stack.reconfigure(str(extra))
    requests.post(stack.gmail_url + "/_control/config", json={"quota_units_per_sec": 1200},
                  timeout=10)
    yield
    requests.post(stack.gmail_url + "/_control/config", json={"quota_units_per_sec": 20000},
                  timeout=10)
    stack.reconfigure(None)


def check_task_json(task):
    assert set(task) == TASK_FIELDS, task
    assert UUID_RE.match(task["task_id"])
    assert task["state"] in ("CREATED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "STUCK")
    assert task["mode"] in (None, "full", "incremental")
    assert 0 <= task["progress_percentage"] <= 100
    assert task["progress_percentage"] < 100 or task["state"] == "SUCCEEDED"
    if task["total"] is not None:
        assert 0 <= task["processed"] <= task["total"]
    for k in ("created_at", "started_at", "heartbeat_at", "finished_at"):
        assert task[k] is None or RFC3339.match(task[k]), (k, task[k])
    # null unless a RUNNING task's worker waits to ask Gmail again (test_retrying.py)
    retrying = task["retrying"]
    assert retrying is None or (task["state"] == "RUNNING" and set(retrying) == {
        "reason", "until", "attempt"} and retrying["reason"] in ("rate_limited", "unavailable")
        and RFC3339.match(retrying["until"]) and retrying["attempt"] >= 1), task


def test_progress_sampled_every_50ms_only_moves_forward(stack, throttled):
    u = stack.add_user(messages=2000)
    tid = start(stack, u)
    samples = []
    deadline = time.time() + 120
    while time.time() < deadline:
        r = progress(stack, u, tid)
        assert r.status_code == 200, r.text
        task = r.json()
        check_task_json(task)
        samples.append(task)
        if task["state"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.05)
    assert samples[-1]["state"] == "SUCCEEDED", samples[-1]
    pcts = [s["progress_percentage"] for s in samples]
    assert all(b >= a for a, b in zip(pcts, pcts[1:])), pcts
    assert [s for s in samples if s["progress_percentage"] == 100] == \
        [s for s in samples if s["state"] == "SUCCEEDED"]
    assert len(set(pcts)) >= 10, sorted(set(pcts))
    assert samples[-1]["processed"] == samples[-1]["total"] == 2000
    assert samples[-1]["error"] is None and samples[-1]["finished_at"]


def test_other_users_task_is_the_same_404_as_an_unknown_one(stack):
    owner, other = stack.add_user(messages=5), stack.add_user(messages=5)
    tid = start(stack, owner)
    assert progress(stack, owner, tid).status_code == 200
    theirs = progress(stack, other, tid)
    unknown = progress(stack, other, "00000000-0000-4000-8000-000000000000")
    garbage = progress(stack, other, "not-a-uuid'--")
    for r in (theirs, unknown, garbage):
        assert r.status_code == 404
        assert r.headers["Content-Type"] == "application/problem+json"
    assert theirs.json() == unknown.json() == garbage.json()
    assert requests.get(f"{stack.api}/progress/{tid}", timeout=10).status_code == 401


def test_status_and_cancel(stack, throttled):
    u = stack.add_user(messages=1500)
    r = requests.get(stack.api + "/status", cookies={"session": u["session"]}, timeout=10)
    assert r.status_code == 200 and r.json()["is_syncing"] is False and r.json()["task"] is None
    tid = start(stack, u)
    wait_for("running", lambda: db_state(stack, tid) == "RUNNING", 5)
    st = requests.get(stack.api + "/status", cookies={"session": u["session"]}, timeout=10).json()
    assert st["is_syncing"] is True and st["task_id"] == tid
    check_task_json(st["task"])
    r = requests.post(f"{stack.api}/cancel/{tid}", cookies={"session": u["session"]}, timeout=10)
    assert r.status_code == 202 and r.json()["state"] == "CANCELLED"
    again = requests.post(f"{stack.api}/cancel/{tid}", cookies={"session": u["session"]}, timeout=10)
    assert again.status_code == 409
    # the worker notices and stops; the user may start again at once
    wait_for("worker gone", lambda: not subprocess.run(
        ["pgrep", "-f", f"gmailsync-worker --task {tid}"], capture_output=True).stdout, 10)
    assert db_state(stack, tid) == "CANCELLED"
    new = start(stack, u)
    assert new != tid


def sse_events(stack, user, task_id, out, timeout=120):
    with requests.get(f"{stack.api}/progress/{task_id}", cookies={"session": user["session"]},
                      headers={"Accept": "text/event-stream"}, stream=True,
                      timeout=timeout) as r:
        out.append(("status", r.status_code, r.headers.get("Content-Type")))
        event = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
    out.append(("closed",))


def test_sse_stream_increases_and_closes_at_succeeded(stack, throttled):
    u = stack.add_user(messages=1500)
    tid = start(stack, u)
    out = []
    sse_events(stack, u, tid, out)
    assert out[0][1] == 200 and out[0][2].startswith("text/event-stream")
    events = [e[1] for e in out if e[0] == "progress"]
    assert out[-1] == ("closed",)
    assert events[-1]["state"] == "SUCCEEDED" and events[-1]["progress_percentage"] == 100
    pcts = [e["progress_percentage"] for e in events]
    assert all(b >= a for a, b in zip(pcts, pcts[1:])) and len(set(pcts)) >= 3, pcts
    for e in events:
        check_task_json(e)


def task_queries(admin):
    cur = admin.cursor()
    cur.execute("SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements "
                "WHERE query LIKE '%%FROM gmailsync.sync_tasks t%%' AND query NOT LIKE '%%pg_stat%%'")
    return int(cur.fetchone()[0])


def test_200_sse_watchers_cost_no_more_queries_than_one(stack, tmp_path):
    # 200 tabs of one user: above the default per-user cap of 4 streams, raised here so that the
    # board's cost (none) is measured, not the cap
    extra = tmp_path / "watchers.conf"
    extra.write_text("GmailSyncQuotaUnits 1000\nGmailSyncProgressInterval 250ms\n"
                     "GmailSyncMaxStreamsPerUser 250\n")
    stack.reconfigure(str(extra))
    requests.post(stack.gmail_url + "/_control/config", json={"quota_units_per_sec": 1200},
                  timeout=10)
    try:
        watchers_cost_no_more_queries_than_one(stack)
    finally:
        requests.post(stack.gmail_url + "/_control/config", json={"quota_units_per_sec": 20000},
                      timeout=10)
        stack.reconfigure(None)


def watchers_cost_no_more_queries_than_one(stack):
    admin = psycopg2.connect(stack.pg_admin_dsn.rsplit("/", 1)[0] + "/gmailsync")
    admin.autocommit = True

    def watch(n):
        u = stack.add_user(messages=1500)
        tid = start(stack, u)
        wait_for("running", lambda: db_state(stack, tid) == "RUNNING", 5)
        admin.cursor().execute("SELECT pg_stat_statements_reset()")
        outs = [[] for _ in range(n)]
        threads = [threading.Thread(target=sse_events, args=(stack, u, tid, outs[i]))
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for o in outs:
            assert o[-1] == ("closed",) and o[-2][1]["state"] == "SUCCEEDED", o[-3:]
        return task_queries(admin)

    one = watch(1)
    many = watch(200)
    admin.close()
    assert many <= one, (one, many)


def gmail_calls(stack):
    text = requests.get(stack.api + "/metrics", timeout=10).text
    return {s.labels["status"]: s.value for f in text_string_to_metric_families(text)
            if f.name == "gmailsync_gmail_calls" for s in f.samples}


def test_health_error_rate_and_metrics_agree_with_the_database(stack, tmp_path, expect_log):
    expect_log(r"event=task\.failed .*error=auth_revoked")
    # age every earlier task out of the metrics window: this test owns the window
    stack.query("UPDATE gmailsync.sync_tasks SET created_at = created_at - interval '2 days', "
                "started_at = started_at - interval '2 days', "
                "finished_at = finished_at - interval '2 days' WHERE finished_at IS NOT NULL")
    users = [stack.add_user(messages=20) for _ in range(10)]
    calls_before = gmail_calls(stack)
    requests.post(stack.gmail_url + "/_control/stats/reset", timeout=10)
    for u in users[:2]:
        requests.post(f"{stack.gmail_url}/_control/mailboxes/{u['email']}/revoke", timeout=10)
    ids = [start(stack, u) for u in users]
    wait_for("all done", lambda: all(db_state(stack, t) in ("SUCCEEDED", "FAILED") for t in ids), 60)
    assert sorted(db_state(stack, t) for t in ids) == ["FAILED"] * 2 + ["SUCCEEDED"] * 8
    h = requests.get(stack.api + "/health", timeout=10).json()
    assert h["metrics"]["error_rate"]["value"] == pytest.approx(20.0)
    assert h["metrics"]["error_rate"]["alert"] is True
    assert h["metrics"]["success_rate"]["value"] == pytest.approx(80.0)
    assert "error_rate" in h["alerts"] and h["status"] == "degraded"

    text = requests.get(stack.api + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    finished = {s.labels["state"]: s.value for s in families["gmailsync_tasks_finished"].samples
                if s.name == "gmailsync_tasks_finished_total"}
    db = dict(stack.query("SELECT state, count(*) FROM gmailsync.sync_tasks "
                          "WHERE state IN ('SUCCEEDED','FAILED','CANCELLED') GROUP BY state"))
    assert finished == {k: float(db.get(k, 0)) for k in ("SUCCEEDED", "FAILED", "CANCELLED")}
    # Gmail's answers, counted by the workers, reported through the daemon, agree with the fake's
    stats = requests.get(stack.gmail_url + "/_control/stats", timeout=10).json()
    token_ok = stats["method_status_counts"].get("token", {}).get("200", 0)
    fake_ok = stats["status_counts"].get("200", 0) - token_ok   # OAuth is not a Gmail call
    assert fake_ok > 0
    wait_for("gmail call counters",
             lambda: gmail_calls(stack)["2xx"] - calls_before["2xx"] == fake_ok, 5)
    starts = {s.labels["result"]: s.value for s in families["gmailsync_starts"].samples}
    assert starts["created"] >= 10
    assert "gmailsync_task_duration_seconds" in families
    assert "gmailsync_queue_latency_seconds" in families
    assert "gmailsync_start_latency_seconds" in families


def test_seed_6_stuck_task_is_reported_cleaned_up_and_the_user_syncs_again(stack, tmp_path,
                                                                           expect_log):
    expect_log(r"event=task\.stuck")
    token = secrets.token_hex(32)
    token_path = tmp_path / "health_token"
    token_path.write_text(token + "\n")
    os.chmod(token_path, 0o600)
    auth = {"Authorization": "Bearer " + token}
    extra = tmp_path / "stuck.conf"
    # isolate the stuck alert: the other thresholds are not what this test is about; the ids
    # of stuck tasks are shown only with ?detail=1 to a caller with the health token
    extra.write_text("GmailSyncHeartbeat 500ms\nGmailSyncStuckAfter 3s\n"
                     "GmailSyncAlertSuccessRate 0\nGmailSyncAlertErrorRate 100\n"
                     f'GmailSyncHealthTokenFile "{token_path}"\n')
    stack.reconfigure(str(extra))
    try:
        u = stack.add_user(messages=10)
        # a task whose worker ran on a host that vanished: nobody beats for it any more
        tid = stack.query(
            "INSERT INTO gmailsync.sync_tasks (user_id, state, lease, worker_host, worker_pid, "
            "started_at, heartbeat_at) VALUES (%s, 'RUNNING', gen_random_uuid(), 'host-gone', 4242, "
            "now() - interval '10 seconds', now() - interval '4 seconds') RETURNING task_id::text",
            (u["user_id"],))[0][0]
        h = requests.get(stack.api + "/health?detail=1", headers=auth, timeout=10).json()
        assert h["status"] == "degraded" and "stuck_tasks" in h["alerts"], h
        assert [s["task_id"] for s in h["stuck"]] == [tid]
        assert h["stuck"][0]["heartbeat_age_s"] >= 3
        # /health only reports; the daemon's rescue marks it STUCK, which frees the user
        wait_for("the daemon's rescue", lambda: db_state(stack, tid) == "STUCK", 5)
        cleanup = subprocess.run([os.path.join(ROOT, "scripts", "gmailsync-cleanup")],
                                 env=dict(os.environ, GS_PG_DSN=stack.pg_dsn),
                                 capture_output=True, text=True, timeout=60)
        assert cleanup.returncode == 0, cleanup.stderr
        row = stack.query("SELECT state, error_code FROM gmailsync.sync_tasks WHERE task_id=%s",
                          (tid,))
        assert row == [("FAILED", "stuck")]
        h = requests.get(stack.api + "/health?detail=1", headers=auth, timeout=10).json()
        assert h["status"] == "ok" and h["stuck"] == [], h
        again = start(stack, u)
        wait_for("sync", lambda: db_state(stack, again) == "SUCCEEDED", 30)
    finally:
        stack.reconfigure(None)


def test_one_sync_logs_every_event_in_order_without_secrets(stack):
    u = stack.add_user(messages=120)
    offset = stack.log_size()
    tid = start(stack, u)
    wait_for("done", lambda: db_state(stack, tid) == "SUCCEEDED", 30)
    wait_for("log", lambda: "event=task.succeeded" in stack.log_since(offset), 5)
    text = stack.log_since(offset)
    lines = [l for l in text.splitlines() if tid in l or f"user={u['user_id']}" in l]
    order = []
    for line in lines:
        m = re.search(r"event=([a-z_.]+)", line)
        if m and m.group(1) not in order:
            order.append(m.group(1))
    expected = ["start.requested", "active.check", "task.created", "worker.spawned",
                "worker.started", "progress", "task.succeeded"]
    assert [e for e in order if e in expected] == expected, order
    for event in ("task.created", "worker.spawned", "worker.started", "task.succeeded"):
        line = next(l for l in lines if f"event={event}" in l)
        assert f"task={tid}" in line and f"user={u['user_id']}" in line, line
    secret = open(os.path.join(stack.env["GS_RUN_DIR"], "secrets", "client_secret")).read().strip()
    refresh = stack.query("SELECT refresh_token, access_token FROM gmailsync.accounts "
                          "WHERE user_id=%s", (u["user_id"],))[0]
    for s in (secret, u["session"], *[x for x in refresh if x]):
        assert s not in text


def test_start_counters_are_per_host_not_per_process_under_prefork(stack):
    """The shm counters behind /metrics add up across processes: prefork serves these starts
    from several processes, one connection each, and the counters still see every one."""
    def prefork(conf):
        return re.sub(r"LoadModule mpm_event_module\s+(\S+)/mod_mpm_event\.so",
                      r"LoadModule mpm_prefork_module \1/mod_mpm_prefork.so", conf)

    other = OtherHttpd(stack, "httpd-prefork", int(stack.base_url.rsplit(":", 1)[1]) + 3,
                       prefork).start()
    try:
        users = [stack.add_user(messages=0) for _ in range(30)]
        for u in users:
            r = requests.post(other.api + "/smart", cookies={"session": u["session"]},
                              headers={"Connection": "close"}, timeout=30)
            assert r.status_code == 202, r.text
        for u in users[:10]:
            r = requests.post(other.api + "/smart", cookies={"session": u["session"]},
                              headers={"Connection": "close"}, timeout=30)
            assert r.status_code in (200, 202), r.text
        children = subprocess.run(["pgrep", "-f", other.conf], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 3, children   # parent, daemon, several prefork children
        text = requests.get(other.api + "/metrics", timeout=10).text
        starts = {s.labels["result"]: s.value for f in text_string_to_metric_families(text)
                  if f.name == "gmailsync_starts" for s in f.samples}
        assert starts["created"] + starts["reused"] == 40, starts
        assert starts["created"] >= 30, starts
        latency = {s.name: s.value for f in text_string_to_metric_families(text)
                   if f.name == "gmailsync_start_latency_seconds" for s in f.samples}
        assert latency["gmailsync_start_latency_seconds_count"] == 40
    finally:
        errors = other.stop()
    if SANITIZE:
        # under ASan (leak checks off for httpd) a prefork child's exit, with its pools and its
        # shadow memory, can outlast httpd's first wait at stop on a loaded machine (AH00045, then
        # SIGTERM; seen once at a load of 10): slow, not stuck. Reports still fail the stage.
        errors = [e for e in errors if "AH00045" not in e]
    assert not errors, errors
