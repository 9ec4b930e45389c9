"""Issue 17 items 3-6: what tells an operator that nothing runs, what keeps a repeated error from
flooding the log, a worker httpd's User cannot execute, and a daemon whose httpd was killed."""
import grp
import os
import re
import shutil
import signal
import subprocess
import time

import psycopg2
import pytest
import requests

from conftest import BUILD_DIR, wait_for
from test_daemon import alive, current_daemon, slow_down, start, state, task, worker_pids

THRESHOLD_S = 2
# a short GmailSyncQueuedAlertAfter, and the seed's alerts silenced: whatever earlier tests
# left in the metrics window, "ok" then means that nothing waits and the daemon's rounds succeed
LIVENESS_CONF = f"""GmailSyncQueuedAlertAfter {THRESHOLD_S}s
GmailSyncAlertSuccessRate 0%
GmailSyncAlertErrorRate 100%
GmailSyncAlertStuckTasks 1000000
GmailSyncAlertMeanDuration 30d
"""
OUR_ALERTS = {"oldest_queued_age_s", "daemon_claim_age_s", "daemon_rescue_age_s"}

# a trigger refuses every claim (CREATED -> RUNNING) with an error, as a database that fails the
# daemon's statement would; starts, progress, cancel and /health keep working
REFUSE = """
CREATE OR REPLACE FUNCTION public.gs_test_refuse_claims() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'gs test: claims refused'; END$$;
CREATE TRIGGER gs_test_refuse_claims BEFORE UPDATE ON gmailsync.sync_tasks FOR EACH ROW
  WHEN (OLD.state = 'CREATED' AND NEW.state = 'RUNNING')
  EXECUTE FUNCTION public.gs_test_refuse_claims();
"""
ALLOW = """
DROP TRIGGER IF EXISTS gs_test_refuse_claims ON gmailsync.sync_tasks;
DROP FUNCTION IF EXISTS public.gs_test_refuse_claims();
"""


def admin_sql(stack, sql):
    dsn = stack.pg_admin_dsn.rsplit("/", 1)[0] + "/gmailsync"
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def liveness_conf(stack):
    yield stack.reconfigure_text(LIVENESS_CONF, "liveness.conf")
    stack.reconfigure(None)


@pytest.fixture
def claims_refused(stack, liveness_conf):
    admin_sql(stack, REFUSE)
    try:
        yield
    finally:
        admin_sql(stack, ALLOW)


def health(stack):
    r = requests.get(stack.api + "/health", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def metrics(stack):
    r = requests.get(stack.api + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return dict(re.findall(r"^(gmailsync_[a-z_]+(?:\{[^}]*\})?) ([0-9.eE+-]+)$", r.text, re.M))


def test_health_is_degraded_while_the_daemon_cannot_claim_and_ok_again_after(
        stack, liveness_conf, expect_log):
    expect_log(r"event=daemon\.claim_failed|event=log\.repeated")
    # the daemon of the generation liveness_conf started has had its first rounds
    h = wait_for("the daemon's first rounds", lambda: (lambda b: b if b["daemon"]["last_claim_at"]
                 and b["daemon"]["last_rescue_at"] else None)(health(stack)), 5)
    assert h["status"] == "ok" and h["alerts"] == [], h
    assert h["metrics"]["oldest_queued_age_s"] == {"value": None, "threshold": THRESHOLD_S,
                                                   "alert": False}
    assert h["daemon"]["pid"] == current_daemon(stack), h["daemon"]
    u = stack.add_user(messages=20)
    admin_sql(stack, REFUSE)
    try:
        tid = start(stack, u)
        # the reason: the task waits and the daemon's claims fail; its rescues still succeed
        h = wait_for("degraded, for both reasons", lambda: (lambda b: b if {
            "oldest_queued_age_s", "daemon_claim_age_s"} <= set(b["alerts"]) else None)(
                health(stack)), THRESHOLD_S + 5)
        assert h["status"] == "degraded", h
        assert "daemon_rescue_age_s" not in h["alerts"], h
        assert h["metrics"]["oldest_queued_age_s"]["value"] > THRESHOLD_S
        assert h["metrics"]["oldest_queued_age_s"]["alert"] is True
        assert h["metrics"]["daemon_claim_age_s"]["value"] > THRESHOLD_S
        assert h["daemon"]["claim_failures"] >= THRESHOLD_S
        assert h["database"]["ok"] is True and h["tasks"]["CREATED"] >= 1
        m = metrics(stack)
        assert float(m["gmailsync_oldest_queued_age_seconds"]) > THRESHOLD_S
        assert float(m["gmailsync_daemon_last_claim_age_seconds"]) > THRESHOLD_S
        assert float(m['gmailsync_daemon_failing_rounds{round="claim"}']) >= THRESHOLD_S
        assert float(m["gmailsync_queued_alert_after_seconds"]) == THRESHOLD_S
        assert state(stack, tid) == "CREATED"
    finally:
        admin_sql(stack, ALLOW)
    # recovery: the task runs, the alerts clear by themselves
    wait_for("the queued task to finish", lambda: state(stack, tid) == "SUCCEEDED", 15)
    h = wait_for("ok again", lambda: (lambda b: b if b["status"] == "ok" else None)(
        health(stack)), 5)
    assert h["alerts"] == [] and h["daemon"]["claim_failures"] == 0, h
    assert h["metrics"]["daemon_claim_age_s"]["value"] < THRESHOLD_S
    m = metrics(stack)
    assert float(m["gmailsync_oldest_queued_age_seconds"]) == 0
    assert float(m['gmailsync_daemon_failing_rounds{round="claim"}']) == 0


def test_a_repeated_error_is_logged_once_then_summarised(stack, claims_refused, expect_log):
    expect_log(r"event=daemon\.claim_failed|event=log\.repeated")
    u = stack.add_user(messages=5)
    offset = stack.log_size()
    tid = start(stack, u)

    def failures():
        return health(stack)["daemon"]["claim_failures"]
    # the claim fails once a second (and at once on the start's wake-up): 8 failures
    wait_for("8 failed claims", lambda: failures() >= 8, 15, interval=0.2)
    text = stack.log_since(offset)
    lines = [l for l in text.splitlines() if "claim_failed" in l]
    # one line for the whole run of failures (a summary comes at most once a minute, and none
    # in these seconds), however often the daemon retried: a wake-up per new task, the 1 s poll
    assert len(lines) == 1, lines
    admin_sql(stack, ALLOW)
    wait_for("the task to finish", lambda: state(stack, tid) == "SUCCEEDED", 15)
    summary = wait_for("the summary", lambda: re.search(
        r"\[gmailsync:error\].*event=log\.repeated count=(\d+) total=(\d+) first=(\S+) last=(\S+) "
        r"ended=yes message=event=daemon\.claim_failed reason=\"[^\n]*claims refused",
        stack.log_since(offset)), 5)
    assert int(summary.group(2)) == int(summary.group(1)) + 1 >= 8, summary.group(0)
    assert summary.group(3) <= summary.group(4)
    assert len([l for l in stack.log_since(offset).splitlines() if "claim_failed" in l]) == 2


# ------------------------------------------------------------------ the worker binary


def configtest(stack, conf_text, tmpdir):
    conf = os.path.join(tmpdir, "httpd.conf")
    with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(conf_text)
    return subprocess.run([stack.httpd_bin, "-d", os.path.dirname(stack.httpd_conf), "-f", conf,
                           "-t"], capture_output=True, text=True, timeout=30)


@pytest.fixture
def as_root(stack):
    if os.geteuid() != 0:
        pytest.skip("httpd changes to its User only when started as root")
    conf = open(stack.httpd_conf).read()
    assert re.search(r"^User www-data$", conf, re.M), "the stack's httpd runs as www-data"
    return conf


def test_configtest_fails_for_a_worker_httpds_user_cannot_execute(stack, as_root, shared_tmp):
    base = as_root
    worker = os.path.join(shared_tmp, "gmailsync-worker")
    shutil.copy(os.path.join(BUILD_DIR, "gmailsync-worker"), worker)
    os.chown(worker, 0, 0)
    os.chmod(worker, 0o700)
    text = base + f'\nGmailSyncWorker "{worker}"\n'
    line = text.count("\n", 0, text.index(f'GmailSyncWorker "{worker}"')) + 1
    proc = configtest(stack, text, shared_tmp)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert f"GmailSyncWorker {worker} ({shared_tmp}/httpd.conf:{line})" in out, out
    assert "User www-data" in out and "cannot execute" in out and "mode 0700" in out, out

    # User and Group read after the directive: still checked for them
    moved = re.sub(r"^(User|Group) www-data\n", "", text, flags=re.M) + "User www-data\nGroup www-data\n"
    proc = configtest(stack, moved, shared_tmp)
    assert proc.returncode != 0 and "GmailSyncWorker" in proc.stderr + proc.stdout

    # executable by its group, which is httpd's Group: fine
    os.chown(worker, 0, grp.getgrnam("www-data").gr_gid)
    os.chmod(worker, 0o750)
    proc = configtest(stack, text, shared_tmp)
    assert proc.returncode == 0 and "Syntax OK" in proc.stdout + proc.stderr, proc.stderr

    # a directory above it that User cannot search
    os.chmod(shared_tmp, 0o700)
    try:
        proc = configtest(stack, text, shared_tmp)
    finally:
        os.chmod(shared_tmp, 0o755)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"cannot search {shared_tmp}: mode 0700" in out, out


def test_a_worker_that_cannot_be_executed_is_logged_on_one_clean_line(
        stack, as_root, liveness_conf, shared_tmp, expect_log):
    # and, when the child is gone before the daemon wrote its configuration, a broken pipe
    expect_log(r"worker: event=worker\.exec_failed|\(32\)Broken pipe: event=worker\.config_failed")
    # executable by its mode bits (configtest passes), but exec fails: no such interpreter
    worker = os.path.join(shared_tmp, "no-interpreter")
    with open(worker, "w") as f:
        f.write("#!/nonexistent/interpreter\n")
    os.chmod(worker, 0o755)
    extra = os.path.join(shared_tmp, "worker.conf")
    with open(extra, "w") as f:
        f.write(LIVENESS_CONF + f'GmailSyncWorker "{worker}"\n')
    os.chmod(extra, 0o644)
    stack.reconfigure(extra)
    try:
        u = stack.add_user(messages=5)
        offset = stack.log_size()
        tid = start(stack, u)
        wait_for("the task to fail", lambda: state(stack, tid) == "FAILED", 10)
        assert task(stack, tid)[4] == "worker_crashed"
        line = wait_for("the exec failure", lambda: [
            l for l in stack.log_since(offset).splitlines() if "exec_failed" in l], 5)
        assert len(line) == 1, line
        assert re.match(r"^\[[^\]]+\] \[gmailsync:error\] \[pid \d+(:tid \d+)?\] worker: "
                        rf"event=worker\.exec_failed task={tid} reason=\"No such file or "
                        r"directory\" detail=\"[^\"]*no-interpreter[^\"]*\"$", line[0]), line[0]
        assert line[0].count("[gmailsync:") == 1, line[0]
    finally:
        stack.reconfigure(liveness_conf)


# ------------------------------------------------------------------ httpd killed


def test_kill_9_of_httpd_stops_the_daemon_and_its_workers_and_a_new_stack_starts(
        stack, liveness_conf, expect_log):
    expect_log(r"event=daemon\.parent_gone")
    u = stack.add_user(messages=800)
    slow_down(stack, seconds=0.3, email=u["email"])
    try:
        tid = start(stack, u)
        pid = wait_for("worker", lambda: worker_pids(tid), 3)[0]
        wait_for("RUNNING", lambda: state(stack, tid) == "RUNNING", 5)
        daemon = current_daemon(stack)
        with open(os.path.join(os.path.dirname(stack.httpd_conf), "httpd.pid")) as f:
            parent = int(f.read())
        os.kill(parent, signal.SIGKILL)
        killed = time.time()
        wait_for("the daemon to exit", lambda: not alive(daemon), 2)
        assert time.time() - killed <= 2
        # it left as on a stop: no worker, its task FAILED (shutdown), never RUNNING
        wait_for("the worker to be gone", lambda: not alive(pid), 1)
        st, _, _, _, code, msg, _, _ = task(stack, tid)
        assert (st, code) == ("FAILED", "shutdown"), (st, code, msg)
        assert re.search(rf"event=daemon\.parent_gone parent={parent}", stack.log_since(0))
    finally:
        requests.delete(stack.gmail_url + "/_control/faults", timeout=10)
    proc = stack.up()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "leftovers of this stack's httpd" in proc.stderr, proc.stderr
    assert "Address already in use" not in proc.stderr
    assert health(stack)["status"] == "ok"
    u2 = stack.add_user(messages=20)
    t2 = start(stack, u2)
    wait_for("a sync on the new stack", lambda: state(stack, t2) == "SUCCEEDED", 15)
