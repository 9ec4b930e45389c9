"""Integration test harness: one real stack (PostgreSQL, fake Gmail, httpd with the module) per
test session, brought up with scripts/gmailsync-dev under run/test-stack on its own ports.

Like httpd's own pytest suite, every test fails if it leaves an unexpected [warn] or [error] line
in the httpd error log; a test that provokes one on purpose declares it with `expect_log`.

GS_TEST_BUILD_DIR (default build/) names the build the stack runs (module, worker, tokens tool);
GS_SANITIZE=1 says that it is a sanitizer build (make B=build-asan SANITIZE=..., as
scripts/test's `sanitizers` suite makes it): every test then also fails on an AddressSanitizer,
LeakSanitizer or UBSan report in the error log (the daemon's workers write theirs to stderr) or in
a file under run/.../sanitizer/ (httpd's processes and the workers tests start by hand).
"""
import glob
import json
import contextlib
import os
import re
import shlex
import signal
import subprocess
import time

import psycopg2
import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEV = os.path.join(ROOT, "scripts", "gmailsync-dev")
RUN_DIR = os.environ.get("GS_TEST_RUN_DIR", os.path.join(ROOT, "run", "test-stack"))
PORTS = {
    "GS_HTTP_PORT": os.environ.get("GS_TEST_HTTP_PORT", "19080"),
    "GS_PG_PORT": os.environ.get("GS_TEST_PG_PORT", "19432"),
    "GS_GMAIL_PORT": os.environ.get("GS_TEST_GMAIL_PORT", "19081"),
}
# Every answer httpd gave the tests through requests (headers and body, bounded), for the final
# scan for secrets (test_zz_whole_run_scan.py). The fake Gmail API's answers are not kept: they
# carry tokens by design.
RESPONSES = []
RESPONSES_MAX = 64 << 20
_responses_size = [0]
_send = requests.Session.send


def _recording_send(self, request, **kw):
    resp = _send(self, request, **kw)
    if (not kw.get("stream") and f":{PORTS['GS_GMAIL_PORT']}/" not in request.url
            and _responses_size[0] < RESPONSES_MAX):
        text = "".join("%s: %s\n" % kv for kv in resp.headers.items()) + resp.text[:16384]
        _responses_size[0] += len(text)
        RESPONSES.append(text)
    return resp


requests.Session.send = _recording_send
BUILD_DIR = os.path.join(ROOT, os.environ.get("GS_TEST_BUILD_DIR", "build"))
SANITIZE = os.environ.get("GS_SANITIZE") == "1"

# what a database outage legitimately writes to the error log, on every side
OUTAGE_LOG = (r"\[dbd:|event=daemon\.(claim|rescue|reconcile|listen)_failed|event=daemon\.db_unavailable"
              r"|event=db\.waiting|event=task\.fail_deferred|event=(session\.lookup|progress\.db"
              r"|status\.db|health\.db|start|cancel\.db)_?\w*|event=task\.(failed|unrecorded)"
              r"|event=health\.\w+|terminating connection|server closed the connection"
              r"|event=worker\.(error|killed)|event=task\.stuck")

PG_DIR = os.path.join(RUN_DIR, "pg")


def pg_ctl(*args):
    """pg_ctl on the stack's PostgreSQL (restart, stop, start), as its owner."""
    pg_ctl_bin = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
    cmd = [pg_ctl_bin, "-D", os.path.join(PG_DIR, "data"), "-l",
           os.path.join(PG_DIR, "postgres.log"), "-w", "-t", "60", *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, check=True, timeout=90, capture_output=True)
SANITIZER_REPORTS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
# an httpd of a test's own (configtest, -X): the stack's wrapper that preloads libasan for a
# sanitizer build (scripts/gmailsync-dev writes it), else Debian's binary
HTTPD_BIN = os.path.join(RUN_DIR, "httpd", "sanitized", "apache2") if SANITIZE else "/usr/sbin/apache2"
LOG_LINE_LEVEL = re.compile(r"^\[[^\]]*\] \[([A-Za-z0-9_]+):(emerg|alert|crit|error|warn)\]")


def wait_for(what, predicate, timeout, interval=0.02, diagnose=None):
    """Polls predicate() until it returns something truthy; fails naming `what` at the deadline
    (and what diagnose() returns then, if given)."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            seen = f"; found {diagnose()!r}" if diagnose else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{seen}")
        time.sleep(interval)


def healthy(api):
    """Whether /health under api answers 200 now."""
    try:
        return requests.get(api + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def dev_env(extra_conf=None):
    env = dict(os.environ, GS_RUN_DIR=RUN_DIR, GS_BUILD_DIR=BUILD_DIR, **PORTS)
    env.pop("GS_EXTRA_CONF", None)
    if extra_conf:
        env["GS_EXTRA_CONF"] = extra_conf
    return env


def run_dev(*args, extra_conf=None, check=True, timeout=300, stdin_text=None):
    return subprocess.run([DEV, *args], env=dev_env(extra_conf), check=check, timeout=timeout,
                          capture_output=True, text=True, input=stdin_text)


class Stack:
    """The running stack and what the tests need to reach it."""

    def __init__(self):
        self.env = {}
        self.base_conf = ""   # directives every reconfigure keeps (e.g. a paused daemon)
        self.extra_path = None
        self.refresh_env()

    def refresh_env(self):
        out = run_dev("env").stdout
        self.env = {k: v for k, _, v in (shlex.split(line)[0].partition("=")
                                         for line in out.splitlines() if line)}
        self.base_url = self.env["GS_BASE_URL"]
        self.api = self.base_url + "/api/gmail/sync"
        self.pg_dsn = self.env["GS_PG_DSN"]
        self.pg_admin_dsn = self.env["GS_PG_ADMIN_DSN"]
        self.gmail_url = self.env["GS_GMAIL_URL"]
        self.error_log = self.env["GS_ERROR_LOG"]
        self.httpd_conf = self.env["GS_HTTPD_CONF"]
        self.httpd_bin = self.env["GS_HTTPD_BIN"]
        self.sanitizer_dir = self.env["GS_SANITIZER_DIR"]

    def sanitizer_files(self):
        """{path: size} of the sanitizer report files so far (GS_SANITIZE=1)."""
        try:
            names = os.listdir(self.sanitizer_dir)
        except FileNotFoundError:
            return {}
        return {os.path.join(self.sanitizer_dir, n): os.path.getsize(os.path.join(self.sanitizer_dir, n))
                for n in names}

    def db(self):
        conn = psycopg2.connect(self.pg_dsn)
        conn.autocommit = True
        return conn

    def query(self, sql, args=()):
        with self.db() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def add_user(self, messages=10, refresh_token=None, **kw):
        """A user with a mailbox (gmailsync-dev add-user; keywords are its options). The refresh
        token is random unless given (it then reaches add-user on stdin, not argv)."""
        args = ["add-user", "--messages", str(messages)]
        if refresh_token is not None:
            args.append("--refresh-token-stdin")
        for k, v in kw.items():
            if v is True:
                args.append("--" + k.replace("_", "-"))
            elif v is not False and v is not None:
                args += ["--" + k.replace("_", "-"), str(v)]
        return json.loads(run_dev(*args, stdin_text=refresh_token and refresh_token + "\n").stdout)

    def log_size(self):
        try:
            return os.path.getsize(self.error_log)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.error_log, "r", encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            return f.read()

    def reconfigure(self, extra_conf=None):
        """Applies base_conf plus the directives in the file extra_conf (None: base_conf only)
        with a graceful restart; returns when the new generation answers."""
        text = self.base_conf
        if extra_conf:
            with open(extra_conf) as f:
                text += "\n" + f.read()
        path = None
        if text.strip():
            os.makedirs(os.path.join(RUN_DIR, "tmp"), exist_ok=True)
            path = os.path.join(RUN_DIR, "tmp", "extra.conf")
            with open(path, "w") as f:
                f.write(text + "\n")
            os.chmod(path, 0o644)
        self.extra_path = path
        run_dev("up", extra_conf=path)

    def reconfigure_text(self, text, name="directives.conf"):
        """reconfigure() with these directives, written to a file httpd's user can read (its
        path is returned: reconfigure(path) applies them again)."""
        path = os.path.join(RUN_DIR, "tmp", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        self.reconfigure(path)
        return path

    def up(self):
        """`gmailsync-dev up` with the configuration currently applied."""
        return run_dev("up", extra_conf=self.extra_path)


@pytest.fixture(scope="session")
def stack():
    # a fresh stack per session: the fake Gmail API keeps mailboxes in memory only, and tasks
    # left queued by an earlier session would sit in front of this session's
    run_dev("down", "--purge", check=False)
    proc = run_dev("up", check=False)
    if proc.returncode != 0:
        pytest.fail("scripts/gmailsync-dev up failed:\n" + proc.stdout + proc.stderr)
    s = Stack()
    yield s
    proc = run_dev("down", check=False)
    assert proc.returncode == 0, "gmailsync-dev down failed:\n" + proc.stdout + proc.stderr


class LogExpectations:
    def __init__(self):
        self.patterns = []

    def __call__(self, pattern):
        self.patterns.append(re.compile(pattern))


@pytest.fixture
def expect_log():
    """Declares error-log lines (regexes) that the test provokes on purpose."""
    return LogExpectations()


def sanitizer_findings(stack, log_text, files_before):
    """Sanitizer reports since the test started: lines of the error log, new report files."""
    found = [line for line in log_text.splitlines() if any(w in line for w in SANITIZER_REPORTS)]
    for path, size in sorted(stack.sanitizer_files().items()):
        if size > files_before.get(path, 0):
            with open(path, errors="replace") as f:
                f.seek(files_before.get(path, 0))
                found.append("%s:\n%s" % (path, f.read()[:6000]))
    return found


@pytest.fixture(autouse=True)
def error_log_guard(request, stack, expect_log):
    start = stack.log_size()
    files_before = stack.sanitizer_files() if SANITIZE else {}
    yield
    # give httpd a moment to flush lines for requests that just completed
    deadline = time.time() + 0.5
    text = stack.log_since(start)
    while time.time() < deadline and not text.endswith("\n") and text:
        time.sleep(0.05)
        text = stack.log_since(start)
    if SANITIZE:
        found = sanitizer_findings(stack, text, files_before)
        if found:
            pytest.fail("sanitizer reports (GS_SANITIZE=1):\n" + "\n".join(found))
    unexpected = [line for line in text.splitlines()
                  if LOG_LINE_LEVEL.match(line)
                  and not any(p.search(line) for p in expect_log.patterns)]
    if unexpected:
        pytest.fail("unexpected [warn]/[error] lines in the httpd error log:\n" + "\n".join(unexpected))


class OtherHttpd:
    """Another httpd on the stack's PostgreSQL: its own ServerRoot, shared memory and port,
    from the stack's configuration passed through `transform` (e.g. another MPM)."""

    def __init__(self, stack, name, port, transform=None):
        first_dir = os.path.dirname(stack.httpd_conf)
        self.stack = stack
        self.dir = os.path.join(RUN_DIR, name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "runtime"), exist_ok=True)
        conf = open(stack.httpd_conf).read().replace(first_dir, self.dir)
        conf = re.sub(r"127\.0\.0\.1:\d+\n", f"127.0.0.1:{port}\n", conf)
        if transform:
            conf = transform(conf)
        self.conf = os.path.join(self.dir, "httpd.conf")
        # it holds the database password, like the stack's: readable by its owner only
        with open(os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o600)
        self.log = os.path.join(self.dir, "logs", "error_log")
        self.log_start = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.api = f"http://127.0.0.1:{port}/api/gmail/sync"

    def strays(self):
        """The processes of an httpd of this configuration still running: one left by an
        interrupted run (its test never reached stop()). Its pid file may be gone (a start that
        failed on the busy port removes it), so they are found by their command line."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if self.conf.encode() in args and b"-d" in args:
                found.append(int(pid))
        return found

    def start(self):
        strays = self.strays()
        if strays:
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            wait_for("an earlier run's httpd of %s to stop" % self.dir, lambda: not self.strays(), 30)
        subprocess.run([self.stack.httpd_bin, "-d", self.dir, "-f", self.conf, "-k", "start"],
                       check=True, timeout=30)

        wait_for("the other httpd", lambda: healthy(self.api), 30)
        return self

    def stop(self):
        """Stops it and returns the [warn]/[error] lines it logged."""
        pid = int(open(os.path.join(self.dir, "httpd.pid")).read())
        subprocess.run([self.stack.httpd_bin, "-d", self.dir, "-f", self.conf, "-k", "stop"],
                       check=True, timeout=30)

        def gone():
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True
        wait_for("the other httpd to stop", gone, 30)
        with open(self.log) as f:
            f.seek(self.log_start)
            return [l for l in f.read().splitlines()
                    if re.search(r"\[[a-z_0-9]+:(error|warn|crit|alert|emerg)\]", l)]


@pytest.fixture(scope="module")
def paused_daemon(stack):
    """GmailSyncMaxWorkers 0 for a module: tasks stay CREATED, so tests of the start path see
    the active task they created instead of racing a worker that already finished it."""
    with daemon_paused_for(stack):
        yield


@pytest.fixture
def quiet_daemon(stack):
    """The same for one test that runs the worker itself on a task it inserted: the daemon
    LISTENs for new tasks and would claim it first."""
    with daemon_paused_for(stack):
        yield


@contextlib.contextmanager
def daemon_paused_for(stack):
    stack.base_conf = "GmailSyncMaxWorkers 0\n"
    stack.reconfigure(None)
    try:
        yield
    finally:
        # the queued tasks are test artefacts: end them before workers may run again
        stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now() "
                    "WHERE state = 'CREATED'")
        stack.base_conf = ""
        stack.reconfigure(None)


@pytest.fixture
def shared_tmp(tmp_path):
    """A scratch directory that httpd's children (www-data when started as root) can read."""
    import shutil
    import uuid
    d = os.path.join(RUN_DIR, "tmp", uuid.uuid4().hex[:12])
    os.makedirs(d, mode=0o755)
    os.chmod(os.path.dirname(d), 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def gmail(stack):
    """The fake Gmail API's control side (gsworker.Gmail), no fault armed before or after the
    test. The worker tests (gsworker) and test_rollback have their own."""
    from gsworker import Gmail
    g = Gmail(stack.gmail_url)
    g.clear_faults()
    yield g
    g.clear_faults()


@pytest.fixture
def http():
    with requests.Session() as s:
        yield s
