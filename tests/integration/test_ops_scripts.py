"""Operator scripts (issue 7): scripts/gmailsync-status and scripts/gmailsync-cleanup against the
real stack's PostgreSQL, with rows crafted by SQL and stand-in worker processes.

The daemon is paused (GmailSyncMaxWorkers 0), but it still runs its rescue every second, which
would race the cleanup script for the very rows these tests craft (it marks stale tasks STUCK,
fails its host's STUCK tasks and CREATED tasks older than an hour). So every test here also
freezes the daemon with SIGSTOP while it runs (`daemon_frozen`) and ends the tasks it crafted
before the daemon resumes.
"""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import uuid
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests

from conftest import ROOT, wait_for

pytestmark = pytest.mark.usefixtures("paused_daemon")

STATUS = os.path.join(ROOT, "scripts", "gmailsync-status")
CLEANUP = os.path.join(ROOT, "scripts", "gmailsync-cleanup")
HOST = socket.gethostname()
SUMMARY_ZERO = ("summary: marked_stuck=0 workers_killed=0 failed_stuck=0 failed_not_started=0 "
                "left_stuck=0 blobs_removed=0 blob_bytes_removed=0")


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return stat[stat.rfind(b")") + 2:][:1].decode()


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def run(stack, script, *args, env=None):
    """Runs an operator script with GS_PG_DSN in the environment; checks it prints no secret."""
    e = dict(os.environ, GS_PG_DSN=stack.pg_dsn)
    e.update(env or {})
    p = subprocess.run([script, *args], env=e, capture_output=True, text=True, timeout=120)
    password = urlsplit(stack.pg_dsn).password
    assert password and password not in p.stdout + p.stderr, "a script printed the DB password"
    return p


def status(stack, user_id, *args):
    return run(stack, STATUS, user_id, *args)


def status_json(stack, user_id):
    p = status(stack, user_id, "--json")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\n") == 1, "one JSON object on one line"
    return json.loads(p.stdout)


def fields(text):
    """The human-readable status as {label: value}."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        assert sep, line
        out[k] = v.strip()
    return out


def cleanup(stack, *args):
    return run(stack, CLEANUP, *args)


def actions(output, task_id):
    return [line.split(": ", 1)[1] for line in output.splitlines()
            if line.startswith(f"task {task_id} ")]


def task(stack, task_id):
    rows = stack.query("SELECT state, error_code, error_message, finished_at IS NOT NULL"
                       " FROM gmailsync.sync_tasks WHERE task_id = %s", (task_id,))
    return rows[0] if rows else None


def task_user(stack, task_id):
    return stack.query("SELECT user_id FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (task_id,))[0][0]


def snapshot(stack):
    return stack.query("SELECT task_id::text, state, error_code, error_message, updated_at,"
                       " finished_at, heartbeat_at FROM gmailsync.sync_tasks ORDER BY task_id")


def start(stack, user):
    return requests.post(stack.api + "/smart", json={"force_full": False},
                         cookies={"session": user["session"]}, timeout=30)


def current_daemon(stack):
    """The pid of this generation's daemon (the newest `event=daemon.ready` still alive)."""
    for pid in reversed([int(p) for p in re.findall(r"event=daemon\.ready pid=(\d+)",
                                                     stack.log_since(0))]):
        if proc_state(pid) not in (None, "Z"):
            return pid
    return None


class Frozen:
    def __init__(self, pid):
        self.pid = pid

    def thaw(self):
        if self.pid:
            os.kill(self.pid, signal.SIGCONT)
            self.pid = None


class Crafted:
    """Tasks and stand-in processes a test makes; whatever is left is ended afterwards."""

    def __init__(self, stack):
        self.stack = stack
        self.task_ids = []
        self.procs = []

    def task(self, user_id=None, state="RUNNING", heartbeat_age="0 s", created_age="1 min",
             host="elsewhere.invalid", pid=None, task_id=None, **columns):
        task_id = task_id or str(uuid.uuid4())
        user_id = user_id or "ops-" + uuid.uuid4().hex[:12]
        running = state in ("RUNNING", "STUCK")
        finished = state in ("SUCCEEDED", "FAILED", "CANCELLED")
        cols = {"task_id": task_id, "user_id": user_id, "state": state,
                "worker_host": host if running else None, "worker_pid": pid}
        cols.update(columns)
        names = list(cols) + ["created_at", "lease", "started_at", "heartbeat_at", "finished_at"]
        values = ["%s"] * len(cols) + [
            "now() - %s::interval",
            "gen_random_uuid()" if running else "NULL",
            "now() - %s::interval" if state != "CREATED" else "NULL",
            "now() - %s::interval" if state != "CREATED" else "NULL",
            "now()" if finished else "NULL"]
        args = list(cols.values()) + [created_age]
        if state != "CREATED":
            args += [created_age, heartbeat_age]
        self.stack.query(f"INSERT INTO gmailsync.sync_tasks ({', '.join(names)})"
                         f" VALUES ({', '.join(values)})", args)
        self.task_ids.append(task_id)
        return task_id

    def process(self, argv0, program=("sleep", "300"), frozen=True):
        """A harmless process whose command line starts with argv0 (bash's `exec -a`)."""
        p = subprocess.Popen(["bash", "-c", 'exec -a "$0" "$@"', argv0, *program],
                             start_new_session=True)
        self.procs.append(p)
        wait_for("exec of the stand-in", lambda: cmdline(p.pid).startswith(argv0 + " "), 5)
        if frozen:   # a frozen worker: SIGKILL must still end it
            os.kill(p.pid, signal.SIGSTOP)
            wait_for("stand-in stopped", lambda: proc_state(p.pid) == "T", 5)
        return p

    def close(self):
        if self.task_ids:
            self.stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED',"
                             " finished_at = now(), updated_at = now()"
                             " WHERE task_id = ANY(%s::uuid[])"
                             " AND state IN ('CREATED', 'RUNNING', 'STUCK')", (self.task_ids,))
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


@pytest.fixture
def daemon_frozen(stack):
    pid = wait_for("the daemon", lambda: current_daemon(stack), 10)
    os.kill(pid, signal.SIGSTOP)
    frozen = Frozen(pid)
    try:
        wait_for("daemon stopped", lambda: proc_state(pid) == "T", 5)
        yield frozen
    finally:
        frozen.thaw()


@pytest.fixture
def crafted(stack, daemon_frozen):
    c = Crafted(stack)
    yield c
    c.close()   # before the daemon resumes (fixtures end in reverse order)


# ------------------------------------------------------------------ gmailsync-status

def test_status_user_without_task(stack):
    u = stack.add_user(messages=1)
    p = status(stack, u["user_id"])
    assert p.returncode == 0, p.stderr
    f = fields(p.stdout)
    for label in ("task_id", "is_syncing", "progress", "started_at", "updated_at", "state",
                  "mode", "processed", "error", "heartbeat_age"):
        assert label in f, p.stdout
    assert f["user_id"] == u["user_id"]
    assert f["task_id"].startswith("-")
    assert f["is_syncing"] == "false"
    assert f["progress"] == "0.00%"
    assert f["started_at"] == "-" and f["state"] == "-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", f["updated_at"])
    j = status_json(stack, u["user_id"])
    assert j["user_id"] == u["user_id"]
    assert j["task_id"] is None and j["is_syncing"] is False and j["state"] is None
    assert j["progress_percentage"] == 0 and j["error"] is None


def test_status_of_a_task_queued_over_http(stack):
    u = stack.add_user(messages=1)
    r = start(stack, u)
    assert r.status_code == 202, r.text
    tid = r.json()["task_id"]
    f = fields(status(stack, u["user_id"]).stdout)
    assert f["task_id"] == tid
    assert f["is_syncing"] == "true"
    assert f["state"] == "CREATED"
    assert f["error"] == "none"
    j = status_json(stack, u["user_id"])
    assert (j["task_id"], j["is_syncing"], j["state"]) == (tid, True, "CREATED")


def test_status_of_a_running_task_shows_progress_and_heartbeat(stack, crafted):
    tid = crafted.task(state="RUNNING", heartbeat_age="3 s", created_age="2 min", mode="full",
                       processed=250, total=1000, progress_percentage=25)
    user = task_user(stack, tid)
    p = status(stack, user)
    assert p.returncode == 0, p.stderr
    f = fields(p.stdout)
    assert f["task_id"] == tid
    assert f["is_syncing"] == "true"
    assert f["progress"] == "25.00%"
    assert f["state"] == "RUNNING" and f["mode"] == "full"
    assert f["processed"] == "250/1000"
    assert re.fullmatch(r"\d+s", f["heartbeat_age"]) and 2 <= int(f["heartbeat_age"][:-1]) < 60
    assert f["started_at"] != "-"
    j = status_json(stack, user)
    assert j["is_syncing"] is True and j["state"] == "RUNNING"
    assert j["progress_percentage"] == 25 and (j["processed"], j["total"]) == (250, 1000)
    assert 2 <= j["heartbeat_age_s"] < 60
    assert j["error"] is None


def test_status_after_failure_shows_the_error(stack, crafted):
    message = "Gmail answered 403 userRateLimitExceeded"
    tid = crafted.task(state="FAILED", heartbeat_age="1 min", created_age="5 min",
                       error_code="gmail_api", error_message=message, processed=7, total=50)
    user = task_user(stack, tid)
    f = fields(status(stack, user).stdout)
    assert f["task_id"] == tid
    assert f["is_syncing"] == "false"
    assert f["state"] == "FAILED"
    assert f["error"] == "gmail_api: " + message
    assert f["processed"] == "7/50"
    assert f["heartbeat_age"] == "-", "a finished task has no heartbeat age"
    assert f["finished_at"] != "-"
    j = status_json(stack, user)
    assert j["error"] == {"code": "gmail_api", "message": message}
    assert j["is_syncing"] is False and j["state"] == "FAILED"


def test_status_unknown_user_exits_1(stack):
    p = status(stack, "no-such-user-" + uuid.uuid4().hex)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "unknown user" in p.stderr
    p = status(stack, "no-such-user", "--json")
    assert p.returncode == 1 and p.stdout == ""


def test_status_usage_and_database_errors(stack):
    assert status(stack, "--help").returncode == 0
    p = run(stack, STATUS)
    assert p.returncode == 2 and "USER" in p.stderr
    p = run(stack, STATUS, "someone", "--bogus")
    assert p.returncode == 2
    p = run(stack, STATUS, "someone", env={"GS_PG_DSN": ""})
    assert p.returncode == 2 and "GS_PG_DSN" in p.stderr
    wrong = stack.pg_dsn.replace(urlsplit(stack.pg_dsn).password, "wrong-secret-0123")
    p = run(stack, STATUS, "someone", env={"GS_PG_DSN": wrong})
    assert p.returncode == 1 and "cannot connect" in p.stderr
    assert "wrong-secret-0123" not in p.stdout + p.stderr


# ------------------------------------------------------------------ gmailsync-cleanup

def test_cleanup_fails_a_stale_running_task_and_leaves_a_fresh_one_alone(stack, crafted):
    stale = crafted.task(state="RUNNING", heartbeat_age="10 minutes", created_age="20 minutes")
    fresh = crafted.task(state="RUNNING", heartbeat_age="2 s", created_age="20 minutes")
    p = cleanup(stack)
    assert p.returncode == 0, p.stdout + p.stderr
    acts = actions(p.stdout, stale)
    assert re.fullmatch(r"RUNNING -> STUCK \(no heartbeat for 6\d\d s\)", acts[0]), acts
    assert "not this host" in acts[1], acts
    assert acts[2] == "STUCK -> FAILED (stuck)", acts
    state, code, message, finished = task(stack, stale)
    assert (state, code, finished) == ("FAILED", "stuck", True)
    assert re.search(r"no heartbeat for 6\d\d s", message)
    assert "finalised by gmailsync-cleanup" in message
    assert actions(p.stdout, fresh) == []
    assert task(stack, fresh)[:2] == ("RUNNING", None)
    assert re.search(r"^summary: marked_stuck=\d+ workers_killed=\d+ failed_stuck=\d+ "
                     r"failed_not_started=\d+ left_stuck=0 blobs_removed=\d+ "
                     r"blob_bytes_removed=\d+$", p.stdout, re.M)


def test_cleanup_finalises_a_task_already_stuck(stack, crafted):
    # marked STUCK by a daemon, on a host whose daemon is gone
    tid = crafted.task(state="STUCK", heartbeat_age="6 minutes", created_age="9 minutes",
                       host="gone.invalid", pid=4242)
    p = cleanup(stack)
    assert p.returncode == 0, p.stdout + p.stderr
    assert actions(p.stdout, tid) == [
        "worker on host gone.invalid: not this host (%s), nothing stopped" % HOST,
        "STUCK -> FAILED (stuck)"]
    assert task(stack, tid)[:2] == ("FAILED", "stuck")


def test_cleanup_dry_run_changes_nothing(stack, crafted):
    stale_id = str(uuid.uuid4())
    worker = crafted.process(f"gmailsync-worker --task {stale_id}")
    stale = crafted.task(task_id=stale_id, state="RUNNING", heartbeat_age="10 minutes",
                         created_age="20 minutes", host=HOST, pid=worker.pid)
    stuck = crafted.task(state="STUCK", heartbeat_age="7 minutes", created_age="20 minutes")
    old = crafted.task(state="CREATED", created_age="2 hours")
    before = snapshot(stack)
    p = cleanup(stack, "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    acts = actions(p.stdout, stale)
    assert re.fullmatch(r"would move RUNNING -> STUCK \(no heartbeat for 60[0-9] s\)", acts[0])
    assert acts[1:] == [f"would kill worker pid {worker.pid} (SIGKILL)",
                        "would move STUCK -> FAILED (stuck)"]
    assert actions(p.stdout, stuck)[-1] == "would move STUCK -> FAILED (stuck)"
    assert re.fullmatch(r"would move CREATED -> FAILED \(not_started; created 72[01][0-9] s ago\)",
                        actions(p.stdout, old)[0])
    assert re.search(r"^dry run, nothing changed: would do marked_stuck=\d+ workers_killed=1 ",
                     p.stdout, re.M)
    assert snapshot(stack) == before
    assert worker.poll() is None and proc_state(worker.pid) == "T", "dry run killed the worker"
    # and the real run does what the dry run announced
    p = cleanup(stack)
    assert p.returncode == 0, p.stdout + p.stderr
    assert worker.wait(timeout=10) == -signal.SIGKILL
    assert task(stack, stale)[:2] == ("FAILED", "stuck")
    assert task(stack, stuck)[:2] == ("FAILED", "stuck")
    assert task(stack, old)[:2] == ("FAILED", "not_started")


def test_cleanup_second_run_is_a_noop(stack, crafted):
    stale = crafted.task(state="RUNNING", heartbeat_age="10 minutes", created_age="20 minutes")
    old = crafted.task(state="CREATED", created_age="3 hours")
    first = cleanup(stack)
    assert first.returncode == 0, first.stdout + first.stderr
    assert actions(first.stdout, stale) and actions(first.stdout, old)
    before = snapshot(stack)
    second = cleanup(stack)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout == SUMMARY_ZERO + "\n"
    assert snapshot(stack) == before
    dry = cleanup(stack, "--dry-run")
    assert dry.returncode == 0
    assert "task " not in dry.stdout


@pytest.mark.parametrize("shape", ["exec-a", "worker-argv"])
def test_cleanup_kills_a_frozen_local_worker(stack, crafted, shape):
    tid = str(uuid.uuid4())
    if shape == "exec-a":
        worker = crafted.process(f"gmailsync-worker --task {tid}")
    else:   # the daemon's argv: BINARY --task T --lease L --config -
        worker = crafted.process("/usr/libexec/mod_gmailsync/9.9/gmailsync-worker",
                                 ("perl", "-e", "sleep 300", "--", "--task", tid,
                                  "--lease", str(uuid.uuid4()), "--config", "-"))
    crafted.task(task_id=tid, state="RUNNING", heartbeat_age="10 minutes",
                 created_age="15 minutes", host=HOST, pid=worker.pid)
    p = cleanup(stack)
    assert p.returncode == 0, p.stdout + p.stderr
    acts = actions(p.stdout, tid)
    assert acts[1:] == [f"killed worker pid {worker.pid} (SIGKILL)", "STUCK -> FAILED (stuck)"]
    assert worker.wait(timeout=10) == -signal.SIGKILL
    state, code, message, _ = task(stack, tid)
    assert (state, code) == ("FAILED", "stuck")
    assert f"worker pid {worker.pid} killed" in message
    assert re.search(r"^summary: .*workers_killed=1 ", p.stdout, re.M)


def test_cleanup_never_kills_a_process_that_is_not_the_tasks_worker(stack, crafted):
    cases = {}
    # a pid recorded for the task, but running something else
    other = crafted.process("sleep", ("sleep", "300"), frozen=False)
    cases["other program"] = (crafted.task(state="RUNNING", heartbeat_age="10 minutes",
                                           created_age="20 minutes", host=HOST, pid=other.pid),
                              other)
    # a worker, but of another task
    foreign = crafted.process(f"gmailsync-worker --task {uuid.uuid4()}")
    cases["another task's worker"] = (crafted.task(state="STUCK", heartbeat_age="10 minutes",
                                                   created_age="20 minutes", host=HOST,
                                                   pid=foreign.pid), foreign)
    # the task id in the command line, but not the worker binary
    tid = str(uuid.uuid4())
    lookalike = crafted.process(f"not-gmailsync-worker --task {tid}")
    cases["another binary"] = (crafted.task(task_id=tid, state="RUNNING",
                                            heartbeat_age="10 minutes", created_age="20 minutes",
                                            host=HOST, pid=lookalike.pid), lookalike)
    # the right worker command line, but the task ran on another host
    tid = str(uuid.uuid4())
    remote = crafted.process(f"gmailsync-worker --task {tid}")
    cases["another host"] = (crafted.task(task_id=tid, state="RUNNING",
                                          heartbeat_age="10 minutes", created_age="20 minutes",
                                          host="remote.invalid", pid=remote.pid), remote)
    p = cleanup(stack)
    assert p.returncode == 0, p.stdout + p.stderr
    for what, (task_id, proc) in cases.items():
        assert proc.poll() is None and proc_state(proc.pid) in ("S", "T"), \
            f"{what}: pid {proc.pid} was killed"
        acts = actions(p.stdout, task_id)
        assert not any(a.startswith("killed") for a in acts), (what, acts)
        assert acts[-1] == "STUCK -> FAILED (stuck)", (what, acts)
        assert task(stack, task_id)[:2] == ("FAILED", "stuck"), what
    assert f"pid {other.pid} is not a gmailsync-worker of this task: left alone" in \
        actions(p.stdout, cases["other program"][0])
    assert re.search(r"^summary: .*workers_killed=0 ", p.stdout, re.M)


def test_cleanup_fails_created_tasks_older_than_an_hour(stack, crafted):
    old = crafted.task(state="CREATED", created_age="2 hours")
    young = crafted.task(state="CREATED", created_age="30 minutes")
    # --older-than larger than an hour raises the bar for CREATED tasks too
    p = cleanup(stack, "--older-than", "3h")
    assert p.returncode == 0, p.stdout + p.stderr
    assert actions(p.stdout, old) == [] and task(stack, old)[0] == "CREATED"
    p = cleanup(stack, "--older-than", "10m")
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(actions(p.stdout, old)) == 1
    assert re.fullmatch(r"CREATED -> FAILED \(not_started; created 72[01][0-9] s ago\)",
                        actions(p.stdout, old)[0])
    state, code, message, finished = task(stack, old)
    assert (state, code, finished) == ("FAILED", "not_started", True)
    assert "gmailsync-cleanup" in message
    assert actions(p.stdout, young) == [] and task(stack, young)[:2] == ("CREATED", None)


def test_user_can_sync_again_after_cleanup(stack, crafted, daemon_frozen):
    u = stack.add_user(messages=1)
    r = start(stack, u)
    assert r.status_code == 202, r.text
    tid = r.json()["task_id"]
    crafted.task_ids.append(tid)
    # its worker (on another host) stopped beating ten minutes ago
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'RUNNING', lease = gen_random_uuid(),"
                " worker_host = 'dead.invalid', worker_pid = 99999, started_at = now() - "
                "interval '11 minutes', heartbeat_at = now() - interval '10 minutes'"
                " WHERE task_id = %s", (tid,))
    r = start(stack, u)
    assert (r.status_code, r.json()["task_id"], r.json()["reused"]) == (200, tid, True)
    p = cleanup(stack)
    assert p.returncode == 0, p.stdout + p.stderr
    assert actions(p.stdout, tid)[-1] == "STUCK -> FAILED (stuck)"
    assert status_json(stack, u["user_id"])["is_syncing"] is False
    daemon_frozen.thaw()
    r = start(stack, u)
    assert r.status_code == 202, r.text
    new = r.json()
    crafted.task_ids.append(new["task_id"])
    assert new["task_id"] != tid and new["reused"] is False
    j = status_json(stack, u["user_id"])
    assert (j["task_id"], j["is_syncing"]) == (new["task_id"], True)


def test_cleanup_usage_and_database_errors(stack):
    p = cleanup(stack, "--help")
    assert p.returncode == 0 and "--dry-run" in p.stdout
    for bad in (["--older-than", "5x"], ["--older-than", "0s"], ["--older-than", "31d"],
                ["--older-than", "-5m"], ["--older-than", "250ms"], ["--bogus"], ["extra"],
                ["--blob-batch", "0"], ["--blob-batch", "10001"], ["--blob-batch", "x"]):
        p = cleanup(stack, *bad)
        assert p.returncode == 2, (bad, p.stderr)
        assert p.stdout == ""
    p = run(stack, CLEANUP, env={"GS_PG_DSN": ""})
    assert p.returncode == 2 and "GS_PG_DSN" in p.stderr
    wrong = stack.pg_dsn.replace(urlsplit(stack.pg_dsn).password, "wrong-secret-0123")
    p = run(stack, CLEANUP, env={"GS_PG_DSN": wrong})
    assert p.returncode == 1 and "cannot connect" in p.stderr
    assert "wrong-secret-0123" not in p.stdout + p.stderr
    for ok in ("1500ms", "5s", "5m", "1h", "2d", "30"):
        p = cleanup(stack, "--dry-run", "--older-than", ok)
        assert p.returncode == 0, (ok, p.stderr)


# ------------------------------------------------------------------ gmailsync-cleanup: blobs

def worker_sql(label):
    """The worker's statement `label` as gs_sql.c has it (its C string pieces joined), with
    psycopg2's placeholders: the tests below run exactly what a sync runs."""
    src = open(os.path.join(ROOT, "mod_gmailsync", "core", "gs_sql.c")).read()
    body = re.search(r"\{ %s,\s*(?:/\*.*?\*/\s*)?((?:\"(?:[^\"\\]|\\.)*\"\s*)+)\}" % label,
                     src, re.S).group(1)
    text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body)).replace('\\"', '"')
    return text.replace("%pDb", "%s")


def blob(stack, user_id, data):
    """An attachment blob of the user's; returns its SHA-256 (hex)."""
    sha = hashlib.sha256(data).hexdigest()
    stack.query("INSERT INTO gmailsync.attachment_blobs (user_id, sha256, size, bytes)"
                " VALUES (%s, decode(%s, 'hex'), %s, %s)", (user_id, sha, len(data), data))
    return sha


def name_blob(cur, user_id, gmail_id, sha, stored=True):
    """A message with one attachment row naming the blob, as a sync stores it."""
    cur.execute("INSERT INTO gmailsync.messages (user_id, gmail_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING", (user_id, gmail_id))
    cur.execute("INSERT INTO gmailsync.message_attachments (user_id, gmail_id, part_id,"
                " mime_type, size, is_inline, sha256, stored) VALUES (%s, %s, %s,"
                " 'application/pdf', 1, false, decode(%s, 'hex'), %s)",
                (user_id, gmail_id, str(1 + len(sha) % 7), sha, stored))


def blobs_of(stack, user_id):
    return {h for (h,) in stack.query("SELECT encode(sha256, 'hex') FROM"
                                      " gmailsync.attachment_blobs WHERE user_id = %s",
                                      (user_id,))}


def blob_lines(output, user_id):
    return [line for line in output.splitlines() if line.startswith(f"blobs user={user_id}:")]


def test_cleanup_removes_the_blobs_no_attachment_names_in_batches(stack, daemon_frozen):
    a, b = "blobs-" + uuid.uuid4().hex[:10], "blobs-" + uuid.uuid4().hex[:10]
    named = blob(stack, a, b"named")
    metadata_only = blob(stack, a, b"named by a row that keeps its hash only")
    orphans = {blob(stack, a, b"orphan %d" % i) for i in range(5)}
    other = blob(stack, b, b"named")        # the same bytes, another user's: nobody names it
    with stack.db() as conn, conn.cursor() as cur:
        name_blob(cur, a, "m1", named)
        name_blob(cur, a, "m2", metadata_only, stored=False)
    conn.close()
    before = blobs_of(stack, a) | blobs_of(stack, b)
    dry = cleanup(stack, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert blob_lines(dry.stdout, a) == [
        f"blobs user={a}: would remove 5 attachment blobs (40 bytes) no attachment names"]
    assert blob_lines(dry.stdout, b) == [
        f"blobs user={b}: would remove 1 attachment blob (5 bytes) no attachment names"]
    assert blobs_of(stack, a) | blobs_of(stack, b) == before
    p = cleanup(stack, "--blob-batch", "2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert blob_lines(p.stdout, a) == [
        f"blobs user={a}: removed 5 attachment blobs (40 bytes) no attachment names"]
    assert blob_lines(p.stdout, b) == [
        f"blobs user={b}: removed 1 attachment blob (5 bytes) no attachment names"]
    assert re.search(r"^summary: .* blobs_removed=([6-9]|\d\d+) blob_bytes_removed=\d+$",
                     p.stdout, re.M), p.stdout
    assert blobs_of(stack, a) == {named, metadata_only} and not orphans & blobs_of(stack, a)
    assert blobs_of(stack, b) == set() and other not in blobs_of(stack, b)
    again = cleanup(stack)
    assert again.returncode == 0 and blob_lines(again.stdout, a) == [], again.stdout
    assert blobs_of(stack, a) == {named, metadata_only}
    # the message goes (deleted from Gmail): its blob is garbage at the next run
    stack.query("DELETE FROM gmailsync.messages WHERE user_id = %s AND gmail_id = 'm1'", (a,))
    p = cleanup(stack)
    assert blob_lines(p.stdout, a) == [
        f"blobs user={a}: removed 1 attachment blob (5 bytes) no attachment names"]
    assert blobs_of(stack, a) == {metadata_only}
    stack.query("DELETE FROM gmailsync.messages WHERE user_id = ANY(%s)", ([a, b],))
    assert cleanup(stack).returncode == 0 and blobs_of(stack, a) == set()


def cleanup_between_its_lock_and_its_delete(stack):
    """Starts gmailsync-cleanup and holds it after it has locked its candidate blobs (FOR UPDATE)
    and before the statement that deletes them: a SHARE lock on the table lets the locking
    SELECT through (ROW SHARE) and holds the DELETE (ROW EXCLUSIVE). Returns the process and
    the connection holding the lock (commit it to let the cleanup go on)."""
    gate = stack.db()
    gate.autocommit = False
    with gate.cursor() as cur:
        cur.execute("LOCK TABLE gmailsync.attachment_blobs IN SHARE MODE")
    proc = subprocess.Popen([CLEANUP], env=dict(os.environ, GS_PG_DSN=stack.pg_dsn),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for("the cleanup waiting to delete", lambda: stack.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gmailsync-cleanup'"
        " AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM gmailsync.attachment_blobs%%'"
    )[0][0] == 1, 30)
    return proc, gate


def test_a_sync_naming_a_blob_while_the_cleanup_removes_it_keeps_its_bytes(stack,
                                                                           daemon_frozen):
    """The race of a sync that stores an attachment whose bytes the user has, as an orphan,
    with a cleanup removing that orphan, in the three orders it can take (the worker's own
    statements, from gs_sql.c)."""
    known, put = worker_sql("GS_SQL_W_BLOB_KNOWN"), worker_sql("GS_SQL_W_BLOB_PUT")
    assert "FOR KEY SHARE" in known and "FOR KEY SHARE" in put
    user = "blobs-" + uuid.uuid4().hex[:10]

    # 1. the sync holds the blobs first (a large one through gs_w_blob_known, a small one
    #    through gs_w_blob_put, its transaction still open): the cleanup skips them without
    #    waiting, and after the commit they are named. (Without the locks the cleanup removed
    #    both here: the rows naming them were not committed yet.)
    first, small = blob(stack, user, b"x" * 70000), blob(stack, user, b"small")
    sync = stack.db()
    sync.autocommit = False
    with sync.cursor() as cur:
        cur.execute(known, (user, first))
        assert cur.fetchall() == [(1,)]
        cur.execute(put, (user, small, 5, psycopg2.Binary(b"small")))
        assert cur.rowcount == 0       # stored already: not sent again
        name_blob(cur, user, "m1", first)
        name_blob(cur, user, "m0", small)
        p = cleanup(stack)
        assert p.returncode == 0 and blob_lines(p.stdout, user) == [], p.stdout
    sync.commit()
    assert blob_lines(cleanup(stack).stdout, user) == []
    assert {first, small} <= blobs_of(stack, user)

    # 2. the cleanup locks first; the sync's gs_w_blob_put waits for it, finds the blob gone
    #    and inserts it again: its attachment row names bytes that are there
    second = blob(stack, user, b"second")
    proc, gate = cleanup_between_its_lock_and_its_delete(stack)
    done = {}

    def a_sync():
        with sync.cursor() as cur:
            cur.execute(put, (user, second, 6, psycopg2.Binary(b"second")))
            done["inserted"] = cur.rowcount
            name_blob(cur, user, "m2", second)
        sync.commit()

    t = threading.Thread(target=a_sync)
    t.start()
    wait_for("the sync waiting", lambda: stack.query(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE %s", ("WITH k AS (SELECT '%s'::text%%" % user,))[0][0] == 1, 30)
    gate.commit()
    out, err = proc.communicate(timeout=60)
    t.join(30)
    assert proc.returncode == 0, out + err
    assert blob_lines(out, user) == [
        f"blobs user={user}: removed 1 attachment blob (6 bytes) no attachment names"], out
    assert done == {"inserted": 1}
    assert bytes(stack.query("SELECT bytes FROM gmailsync.attachment_blobs WHERE user_id = %s"
                             " AND sha256 = decode(%s, 'hex')", (user, second))[0][0]) == b"second"

    # 3. a row naming the blob commits after the cleanup locked it and before its delete: the
    #    delete checks again and keeps it
    third = blob(stack, user, b"third")
    proc, gate = cleanup_between_its_lock_and_its_delete(stack)
    with stack.db() as conn, conn.cursor() as cur:
        name_blob(cur, user, "m3", third)
    conn.close()
    gate.commit()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and blob_lines(out, user) == [], out + err
    assert blobs_of(stack, user) == {first, small, second, third}
    sync.close()
    gate.close()
    stack.query("DELETE FROM gmailsync.messages WHERE user_id = %s", (user,))
    assert cleanup(stack).returncode == 0 and blobs_of(stack, user) == set()


# ------------------------------------------------------------------ the connection string (issue 21, 9)

MIGRATE = os.path.join(ROOT, "scripts", "gmailsync-migrate")
ROTATE = os.path.join(ROOT, "scripts", "gmailsync-rotate-key")


def test_a_password_on_the_command_line_is_refused_and_a_dsn_file_or_pgpass_works(stack,
                                                                                tmp_path):
    """The README and the scripts showed --dsn with the password in it, which `ps` shows to
    every local user. Every script refuses that now; --dsn-file (or GS_PG_DSN_FILE), a
    password-free --dsn with PGPASSFILE, and GS_PG_DSN work."""
    import psycopg2.extensions
    u = stack.add_user(messages=0)
    password = urlsplit(stack.pg_dsn).password
    keys = stack.env["GS_TOKEN_KEY_FILE"]
    scripts = ((STATUS, [u["user_id"]], (0,)), (CLEANUP, ["--dry-run"], (0,)),
               (MIGRATE, ["status"], (0,)), (ROTATE, ["--check", "--key-file", keys], (0, 1)))
    key_value = " ".join("%s=%s" % kv for kv in psycopg2.extensions.parse_dsn(stack.pg_dsn).items())
    no_env = {"GS_PG_DSN": ""}
    for script, args, ok in scripts:
        for dsn in (stack.pg_dsn, key_value):
            p = run(stack, script, *args, "--dsn", dsn, env=no_env)
            assert p.returncode == 2, (script, dsn == key_value, p.returncode, p.stdout, p.stderr)
            assert "--dsn holds a password" in p.stderr and "--dsn-file" in p.stderr, p.stderr
    # the connection string from a file of its owner's
    f = tmp_path / "dsn"
    f.write_text("# the gmailsync database\n" + stack.pg_dsn + "\n")
    f.chmod(0o600)
    for script, args, ok in scripts:
        p = run(stack, script, *args, "--dsn-file", str(f), env=no_env)
        assert p.returncode in ok, (script, p.stdout, p.stderr)
    p = run(stack, STATUS, u["user_id"], env={"GS_PG_DSN": "", "GS_PG_DSN_FILE": str(f)})
    assert p.returncode == 0, p.stderr
    f.chmod(0o644)                         # a password others can read: refused
    for script, args, ok in scripts:
        p = run(stack, script, *args, "--dsn-file", str(f), env=no_env)
        assert p.returncode not in (0, 2) and "chmod 600" in p.stderr, (script, p.stderr)
    # a password-free --dsn: libpq takes the password from PGPASSFILE
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("*:*:*:*:%s\n" % password)
    pgpass.chmod(0o600)
    bare = stack.pg_dsn.replace(":%s@" % password, "@")
    assert password not in bare
    for script, args, ok in scripts:
        p = run(stack, script, *args, "--dsn", bare, env={"GS_PG_DSN": "", "PGPASSFILE": str(pgpass)})
        assert p.returncode in ok, (script, p.stdout, p.stderr)
    # the README no longer shows a password on a command line
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert not re.search(r"--dsn '?postgres(ql)?://[^ ']*:[^ '@]*@", readme)
