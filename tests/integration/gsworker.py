"""Helpers for the gmailsync-worker integration tests (tests/integration/test_worker_*.py).

The worker runs as a subprocess against the test stack's PostgreSQL and fake Gmail API, with its
configuration on stdin, the way the daemon starts it. Nothing here sleeps and hopes: every wait
polls a condition until a deadline.
"""
import json
import os
import subprocess
import time

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORKER_BIN = os.path.join(ROOT, os.environ.get(
    "GS_WORKER_BIN", os.path.join(os.environ.get("GS_TEST_BUILD_DIR", "build"), "gmailsync-worker")))
SANITIZE = os.environ.get("GS_SANITIZE") == "1"

# exit codes, documented in mod_gmailsync/worker/README.md
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE, EXIT_LOST, EXIT_NOSTART = 0, 1, 2, 3, 4


def wait_for(what, predicate, timeout=30.0, interval=0.05):
    """Polls predicate() until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Gmail:
    """The fake Gmail API's control side."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()

    def _call(self, method, path, body=None):
        r = self.http.request(method, self.url + "/_control" + path, json=body, timeout=60)
        assert r.status_code < 300, "%s %s -> %s %s" % (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def config(self, **kw):
        return self._call("POST", "/config", kw)

    def fault(self, **spec):
        return self._call("POST", "/faults", spec)["id"]

    def clear_faults(self):
        self._call("DELETE", "/faults")

    def stats(self):
        return self._call("GET", "/stats")

    def reset_stats(self):
        self._call("POST", "/stats/reset")

    def wait_quiet(self, timeout=10):
        """Until no client but the test has a connection open: a killed worker's last batch,
        which the fake read before the kill, is finished and counted."""
        r = self._call("GET", "/quiet?timeout=%g" % timeout)
        assert r["quiet"], "the fake still has %d API connections open" % r["api_connections"]

    def total_requests(self, method):
        """All requests of a method since the last reset (the outer batch has no mailbox)."""
        return self.stats()["requests"].get(method, 0)

    def requests_of(self, email, method):
        mb = self.stats()["per_mailbox"].get(email.lower(), {})
        return mb.get("requests", {}).get(method, 0)

    def total_status(self, status):
        """Answers with that status since the last reset (401s for dead tokens have no mailbox)."""
        return self.stats()["status_counts"].get(str(status), 0)

    def status_count(self, email, status):
        mb = self.stats()["per_mailbox"].get(email.lower(), {})
        return mb.get("status_counts", {}).get(str(status), 0)

    def ids(self, email):
        return self._call("GET", "/mailboxes/%s?ids=1" % email)["ids"]

    def mailbox(self, email):
        return self._call("GET", "/mailboxes/%s" % email)

    def add(self, email, count, labels=None):
        body = {"count": count}
        if labels is not None:
            body["labels"] = labels
        return self._call("POST", "/mailboxes/%s/messages" % email, body)["ids"]

    def delete(self, email, ids):
        return self._call("POST", "/mailboxes/%s/delete" % email, {"ids": list(ids)})["ids"]

    def relabel(self, email, ids, add=(), remove=()):
        return self._call("POST", "/mailboxes/%s/labels" % email,
                          {"ids": list(ids), "add": list(add), "remove": list(remove)})["ids"]

    def label_create(self, email, name, color=None):
        body = {"name": name}
        if color is not None:
            body["color"] = color
        return self._call("POST", "/mailboxes/%s/label-create" % email, body)["id"]

    def label_update(self, email, label_id, name=None, color=None):
        self._call("POST", "/mailboxes/%s/label-update" % email,
                   {"id": label_id, "name": name, "color": color})

    def label_delete(self, email, label_id):
        return self._call("POST", "/mailboxes/%s/label-delete" % email, {"id": label_id})

    def labels(self, email):
        """users.labels.list as Gmail serves it, with a fresh token."""
        token = self._call("POST", "/mailboxes/%s/token" % email)["access_token"]
        r = self.http.get(self.url + "/gmail/v1/users/me/labels", timeout=30,
                          headers={"Authorization": "Bearer " + token})
        assert r.status_code == 200, r.text
        return r.json()["labels"]

    def revoke(self, email):
        self._call("POST", "/mailboxes/%s/revoke" % email)

    def lockout(self, email, **spec):
        """Gmail's per-user lockout (the fake's README: seconds, penalty, status, after)."""
        return self._call("POST", "/mailboxes/%s/lockout" % email, spec)["lockout"]

    def expire_tokens(self, email):
        return self._call("POST", "/mailboxes/%s/expire-tokens" % email)

    def messages(self, email, ids):
        """The messages as Gmail serves them (format=metadata), fetched with a fresh token."""
        token = self._call("POST", "/mailboxes/%s/token" % email)["access_token"]
        out = {}
        hdr = {"Authorization": "Bearer " + token}
        for mid in ids:
            r = self.http.get(self.url + "/gmail/v1/users/me/messages/" + mid, headers=hdr, timeout=30,
                              params=[("format", "metadata"), ("metadataHeaders", "Subject"),
                                      ("metadataHeaders", "From"), ("metadataHeaders", "To"),
                                      ("prettyPrint", "false")])
            assert r.status_code == 200, r.text
            out[mid] = r.json()
        return out


def assert_utf8_log(err):
    """The worker's log is UTF-8 text: bytes that are not (read with surrogateescape) mean that
    something raw reached a log line (once: a reason read from a freed pool)."""
    for line in (err or "").splitlines():
        if any("\udc80" <= ch <= "\udcff" for ch in line):
            raise AssertionError("the worker logged bytes that are not UTF-8: %r"
                                 % line.encode("utf-8", "surrogateescape")[:600])


class Run:
    """A finished (or running) worker: exit code, stdout protocol lines, stderr log."""

    def __init__(self, proc, stdout, stderr):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout = stdout or ""
        self.stderr = stderr or ""

    def board(self):
        """The gs1 lines on stdout, parsed into dicts (event + key=value fields)."""
        out = []
        for line in self.stdout.splitlines():
            parts = line.split(" ")
            assert parts[0] == "gs1" and parts[1] in ("state", "progress", "calls", "retrying"), \
                "bad line %r" % line
            fields = dict(p.split("=", 1) for p in parts[2:])
            fields["event"] = parts[1]
            out.append(fields)
        return out

    def events(self, name):
        return [line for line in self.stderr.splitlines() if "event=%s " % name in line + " "]


class Worker:
    """Runs gmailsync-worker against the test stack."""

    def __init__(self, stack, binary=None, env=None, prefix=()):
        self.stack = stack
        self.binary = binary or WORKER_BIN
        self.prefix = list(prefix)   # e.g. valgrind and its options
        if env is None and SANITIZE:
            # reports to files that conftest's guard reads (stderr is the test's to check)
            d = stack.sanitizer_dir
            os.makedirs(d, exist_ok=True)
            env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:log_path=%s/worker" % d,
                       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=%s/worker-ubsan" % d)
        self.env = env
        with open(os.path.join(stack.env["GS_RUN_DIR"], "secrets", "client_secret")) as f:
            self.client_secret = f.read().strip()

    def config(self, **overrides):
        conf = {
            "db": self.stack.pg_dsn,
            "api_base": self.stack.gmail_url,
            "token_url": self.stack.gmail_url + "/token",
            "client_id": self.stack.env["GS_CLIENT_ID"],
            "client_secret": self.client_secret,
            # the keys of the stored tokens, as an operator running the worker by hand gives them
            # (the daemon passes token_key lines on stdin instead)
            "token_key_file": self.stack.env["GS_TOKEN_KEY_FILE"],
            "quota_units": "0",
            "progress_interval": "100ms",
            "heartbeat": "1s",
            "retries": "4",
            "backoff_base": "20ms",
            "backoff_max": "200ms",
            "timeout": "10s",
        }
        conf.update({k: None if v is None else str(v) for k, v in overrides.items()})  # None: drop
        return "".join("%s = %s\n" % kv for kv in conf.items() if kv[1] is not None)

    def start(self, task_id, lease=None, stdout=subprocess.PIPE, **conf):
        args = [*self.prefix, self.binary, "--task", task_id, "--config", "-"]
        if lease:
            args += ["--lease", lease]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE,
                                text=True, errors="surrogateescape", env=self.env)
        proc.stdin.write(self.config(**conf))
        proc.stdin.close()
        proc.stdin = None        # so that communicate() does not touch it again
        return proc

    def run(self, task_id, lease=None, wait=120, **conf):
        """Runs the worker to its end (at most `wait` seconds); conf overrides config keys."""
        proc = self.start(task_id, lease=lease, **conf)
        try:
            out, err = proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError("worker did not finish in %ss:\n%s" % (wait, err[-3000:]))
        assert_utf8_log(err)
        return Run(proc, out, err)


def new_task(stack, user_id, force_full=False):
    return str(stack.query("INSERT INTO gmailsync.sync_tasks (user_id, force_full) VALUES (%s, %s)"
                           " RETURNING task_id", (user_id, force_full))[0][0])


def task(stack, task_id):
    rows = stack.query("SELECT state, mode, processed, total, progress_percentage, error_code,"
                       " error_message, lease::text, worker_host, worker_pid, heartbeat_at,"
                       " finished_at, updated_at FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (task_id,))
    keys = ("state", "mode", "processed", "total", "progress", "error_code", "error_message", "lease",
            "worker_host", "worker_pid", "heartbeat_at", "finished_at", "updated_at")
    return dict(zip(keys, rows[0]))


def stored(stack, user_id):
    """The user's messages as {gmail_id: row dict}: the mailbox, without rows that archive mode
    (GmailSyncDeletions keep) keeps for messages deleted in Gmail."""
    rows = stack.query("SELECT gmail_id, thread_id, history_id::text, "
                       " (extract(epoch FROM internal_date) * 1000)::bigint, label_ids, subject,"
                       " from_addr, to_addr, snippet, size_estimate"
                       " FROM gmailsync.messages WHERE user_id = %s AND deleted_at IS NULL",
                       (user_id,))
    keys = ("id", "thread_id", "history_id", "internal_date", "labels", "subject", "from", "to",
            "snippet", "size")
    return {r[0]: dict(zip(keys, r)) for r in rows}


def header(msg, name):
    for h in msg.get("payload", {}).get("headers", []):
        if h["name"].lower() == name.lower():
            return h["value"]
    return None


def assert_row_matches(row, msg):
    """A stored row has exactly the fields Gmail serves for the message."""
    assert row["thread_id"] == msg["threadId"]
    assert row["history_id"] == msg["historyId"]
    assert row["internal_date"] == int(msg["internalDate"])
    assert row["labels"] == msg.get("labelIds", []), (row["labels"], msg.get("labelIds"))
    assert row["subject"] == header(msg, "Subject"), (row["subject"], header(msg, "Subject"))
    assert row["from"] == header(msg, "From"), (row["from"], header(msg, "From"))
    assert row["to"] == header(msg, "To"), (row["to"], header(msg, "To"))
    assert row["snippet"] == msg["snippet"]
    assert row["size"] == msg["sizeEstimate"]


def assert_table_equals_mailbox(stack, gmail, user, check_fields=True, label_order=True):
    """The user's rows are exactly the mailbox's messages (and, optionally, field by field)."""
    ids = gmail.ids(user["email"])
    rows = stored(stack, user["user_id"])
    assert len(ids) == len(set(ids))
    missing = set(ids) - set(rows)
    extra = set(rows) - set(ids)
    assert not missing and not extra, "missing %d %s, extra %d %s" % (
        len(missing), sorted(missing)[:5], len(extra), sorted(extra)[:5])
    if check_fields:
        msgs = gmail.messages(user["email"], ids)
        for mid in ids:
            if label_order:
                assert_row_matches(rows[mid], msgs[mid])
            else:
                assert sorted(rows[mid]["labels"]) == sorted(msgs[mid].get("labelIds", [])), mid
    return rows


def cursor(stack, user_id):
    return stack.query("SELECT history_id::text, last_full_sync_at, full_sync_task::text,"
                       " full_sync_history_id::text FROM gmailsync.accounts WHERE user_id = %s",
                       (user_id,))[0]


def progress_values(run):
    return [float(f["pct"]) for f in run.board() if "pct" in f]


def dump(obj):
    return json.dumps(obj, default=str, indent=1)


# ------------------------------------------------------------------ fixtures (import them by name)
import pytest  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def daemon_paused(paused_daemon):
    """These tests run the worker themselves: the stack's daemon must not claim their tasks
    (conftest's paused_daemon: GmailSyncMaxWorkers 0 for the module)."""
    yield


@pytest.fixture
def gmail(stack):
    """The fake Gmail API, unthrottled and fault-free for the test (quota tests set their own)."""
    g = Gmail(stack.gmail_url)
    g.clear_faults()
    g.config(quota_units_per_sec=0, quota_units_per_minute=0, max_concurrent_per_user=0,
             history_retention=0, max_batch=100, shuffle_batch=True, api_disabled=False, gzip=True)
    yield g
    g.clear_faults()
    g.config(quota_units_per_sec=0, history_retention=0, shuffle_batch=False)


@pytest.fixture
def worker(stack):
    return Worker(stack)
