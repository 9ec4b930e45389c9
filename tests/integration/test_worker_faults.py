"""gmailsync-worker against a misbehaving Gmail: transient faults end SUCCEEDED with the table equal
to the mailbox; permanent ones end FAILED with the documented error_code; nothing crashes.

Backoff is shortened through the worker configuration (backoff_base/backoff_max) so that the fault
matrix runs in seconds; Retry-After (1 s from the fake) is still honoured.
"""
import contextlib
import os
import pwd
import re
import subprocess
import tempfile
import time

import pytest

from gsworker import (EXIT_FAILED, EXIT_SUCCEEDED, ROOT, assert_table_equals_mailbox, daemon_paused,
                      gmail, new_task, stored, task, worker)  # noqa: F401  (fixtures)

TRANSIENT = [
    ("500 burst on batches", dict(method="batch", status=500, count=3)),
    ("502 HTML page on list", dict(method="messages.list", status=502, count=2)),
    ("503 with Retry-After on profile", dict(method="getProfile", status=503, count=1)),
    ("429 on batches", dict(method="batch", status=429, count=2)),
    ("403 userRateLimitExceeded on list", dict(method="messages.list", status=403, count=2)),
    ("403 rateLimitExceeded (modern body)",
     dict(method="messages.list", status=403, reason="rateLimitExceeded", count=1)),
    ("connection reset on batch", dict(method="batch", mode="reset", count=2)),
    ("connection reset on token endpoint", dict(method="token", mode="reset", count=1)),
    ("truncated batch answer", dict(method="batch", mode="truncate", count=1)),
    ("malformed batch answer", dict(method="batch", mode="malformed", count=1)),
    ("malformed list answer", dict(method="messages.list", mode="malformed", count=1)),
    ("truncated profile answer", dict(method="getProfile", mode="truncate", count=1)),
    ("malformed batch parts", dict(method="messages.get", mode="malformed", count=3)),
    ("token endpoint 500", dict(method="token", status=500, count=2)),
    ("stall beyond the timeout", dict(method="messages.list", mode="stall", seconds=5, count=1)),
    ("body stalls mid-way", dict(method="batch", mode="stall_body", seconds=5, count=1)),
]


@pytest.mark.parametrize("name, spec", TRANSIENT, ids=[t[0] for t in TRANSIENT])
def test_transient_faults_end_succeeded_with_the_table_equal_to_the_mailbox(stack, gmail, worker,
                                                                            name, spec):
    user = stack.add_user(messages=240)
    gmail.fault(**spec)
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, wait=60, timeout="1500ms", low_speed_time="1s")
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert gmail.stats() and not [f for f in gmail._call("GET", "/faults")["faults"]], "fault never fired"
    assert task(stack, tid)["state"] == "SUCCEEDED"
    assert run.events("gmail.retry"), "a retry should have been logged"
    assert_table_equals_mailbox(stack, gmail, user)


def test_per_part_404_is_skipped_and_not_asked_again(stack, gmail, worker):
    user = stack.add_user(messages=120)
    ids = gmail.ids(user["email"])
    gone = ids[5:8]
    gmail.fault(method="messages.get", batch_part_status=404, ids=gone, count=-1)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert gmail.requests_of(user["email"], "messages.get") == 120
    assert set(stored(stack, user["user_id"])) == set(ids) - set(gone)
    t = task(stack, tid)
    assert t["processed"] == 120 and float(t["progress"]) == 100.0
    assert "gone=3 " in run.events("task.succeeded")[0]


def test_per_part_429_and_5xx_are_retried_for_just_those_ids(stack, gmail, worker):
    user = stack.add_user(messages=300)
    ids = gmail.ids(user["email"])
    gmail.fault(method="messages.get", batch_part_status=429, ids=ids[0:4], count=4)
    gmail.fault(method="messages.get", batch_part_status=503, ids=ids[120:123], count=3)
    gmail.fault(method="messages.get", batch_part_status=500, ids=ids[250:251], count=1)
    gmail.fault(method="messages.get", batch_part_status=403, ids=ids[260:261], count=1)  # rate limit
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    # each failed part asked once more, alone: 300 + 9 messages.get, no whole batch repeated
    assert gmail.requests_of(user["email"], "messages.get") == 309
    assert gmail.total_requests("batch") <= 300 // 50 + 4
    retries = run.events("gmail.retry")
    assert retries and all("method=messages.get" in r for r in retries)
    assert_table_equals_mailbox(stack, gmail, user)


def test_expired_token_is_refreshed_once_on_401_and_cached_tokens_are_reused(stack, gmail, worker):
    user = stack.add_user(messages=40)
    assert worker.run(new_task(stack, user["user_id"])).rc == EXIT_SUCCEEDED
    gmail.reset_stats()
    assert worker.run(new_task(stack, user["user_id"])).rc == EXIT_SUCCEEDED
    assert gmail.total_requests("token") == 0                    # the cached token was still good
    assert gmail.expire_tokens(user["email"])["expired"] >= 1
    gmail.add(user["email"], 3)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert gmail.total_requests("token") == 1
    assert gmail.total_status(401) >= 1
    assert_table_equals_mailbox(stack, gmail, user)


def test_a_401_after_a_fresh_token_fails_with_auth_revoked(stack, gmail, worker):
    user = stack.add_user(messages=10)
    gmail.fault(method="getProfile", status=401, count=-1)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_FAILED
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "auth_revoked")
    assert gmail.total_requests("token") == 2                   # the first token, one refresh, no more
    assert gmail.total_requests("getProfile") == 2


def test_invalid_grant_fails_with_auth_revoked_and_no_secret_in_sight(stack, gmail, worker):
    user = stack.add_user(messages=10)
    assert worker.run(new_task(stack, user["user_id"])).rc == EXIT_SUCCEEDED
    refresh = stack.query("SELECT refresh_token, access_token FROM gmailsync.accounts WHERE user_id = %s",
                          (user["user_id"],))[0]
    gmail.revoke(user["email"])
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_FAILED
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "auth_revoked")
    assert "invalid_grant" in t["error_message"] and "link the Gmail account" in t["error_message"]
    for secret in list(refresh) + [worker.client_secret]:
        assert secret not in t["error_message"] and secret not in run.stderr + run.stdout
    assert run.board()[-1] == {"event": "state", "task": tid, "state": "FAILED", "code": "auth_revoked"}


def test_a_rejected_client_fails_as_internal(stack, gmail, worker):
    user = stack.add_user(messages=5)
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, client_secret="not-the-secret")
    assert run.rc == EXIT_FAILED
    t = task(stack, tid)
    assert t["error_code"] == "internal" and "invalid_client" in t["error_message"]
    assert "not-the-secret" not in t["error_message"] + run.stderr


@pytest.mark.parametrize("status, reason, code", [
    (500, None, "gmail_unavailable"),
    (429, None, "quota_exhausted"),
    (403, "userRateLimitExceeded", "quota_exhausted"),
])
def test_persistent_errors_fail_after_the_retry_budget_and_a_rerun_recovers(stack, gmail, worker,
                                                                            status, reason, code):
    user = stack.add_user(messages=80)
    spec = dict(method="messages.list", status=status, count=-1)
    if reason:
        spec["reason"] = reason
    gmail.fault(**spec)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, retries=2)
    assert run.rc == EXIT_FAILED, run.stderr
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", code)
    assert str(status) in t["error_message"] and "after 2 retries" in t["error_message"]
    assert float(t["progress"]) < 100 and t["finished_at"] is not None
    assert gmail.total_requests("messages.list") == 3            # first try + the budget of 2
    assert len(run.events("gmail.retry")) == 2
    gmail.clear_faults()
    tid = new_task(stack, user["user_id"])
    assert worker.run(tid).rc == EXIT_SUCCEEDED
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)


def test_a_part_that_keeps_failing_fails_the_task(stack, gmail, worker):
    user = stack.add_user(messages=60)
    bad = gmail.ids(user["email"])[7]
    gmail.fault(method="messages.get", batch_part_status=500, ids=[bad], count=-1)
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, retries=3)
    assert run.rc == EXIT_FAILED
    t = task(stack, tid)
    assert t["error_code"] == "gmail_unavailable" and "messages.get" in t["error_message"]
    assert len(stored(stack, user["user_id"])) == 59              # everything else was kept


def test_gmail_unreachable_fails_with_gmail_unavailable(stack, gmail, worker):
    user = stack.add_user(messages=5)
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, api_base="http://127.0.0.1:9", token_url="http://127.0.0.1:9/token",
                     retries=1)
    assert run.rc == EXIT_FAILED
    t = task(stack, tid)
    assert t["error_code"] == "gmail_unavailable" and "token" in t["error_message"]


@pytest.mark.parametrize("status, after, parallel", [(429, 1, 2), (403, 2, 1)],
                         ids=["429 on the listing", "403 on batch parts"])
def test_a_lockout_is_waited_out_until_the_time_gmail_names(stack, gmail, worker, status, after,
                                                            parallel):
    """Gmail's per-user lockout names its end only in the message ("User-rate limit exceeded.
    Retry after 2026-...Z"), without Retry-After, and every early call lengthens it: the worker
    waits until that time, once, and the sync ends SUCCEEDED."""
    user = stack.add_user(messages=240)
    # getProfile (and the listing) go through, then 2 s of lockout; each early call adds 2 s
    gmail.lockout(user["email"], seconds=2, penalty=2, status=status, after=after)
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, wait=60, retries=0, retry_budget="15s", parallel=parallel)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    lock = gmail.mailbox(user["email"])["lockout"]
    assert lock["over"] and lock["lengthened"] == 0 and lock["refused"] >= 1, lock
    retries = run.events("gmail.retry")
    assert len(retries) == 1 and "locked_until=%s " % lock["until"] in retries[0] + " ", retries
    wait_ms = int(retries[0].split("wait_ms=")[1].split()[0])
    assert 2000 <= wait_ms <= 3500, retries[0]      # the lockout, plus a margin for the clocks
    assert_table_equals_mailbox(stack, gmail, user)


def test_a_lockout_past_the_retry_budget_fails_at_once_naming_its_end(stack, gmail, worker):
    user = stack.add_user(messages=60)
    gmail.lockout(user["email"], seconds=600, penalty=60, status=429, after=1)
    tid = new_task(stack, user["user_id"])
    t0 = time.monotonic()
    run = worker.run(tid, wait=60, retries=0, retry_budget="20s")
    took = time.monotonic() - t0
    assert run.rc == EXIT_FAILED, run.stderr[-3000:]
    lock = gmail.mailbox(user["email"])["lockout"]
    assert (lock["refused"], lock["lengthened"]) == (1, 0), lock    # asked once, not again
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "quota_exhausted")
    assert lock["until"] in t["error_message"], t["error_message"]
    assert took < 10, "gave up after %.1f s, not at once" % took
    assert not run.events("gmail.retry") and len(run.events("gmail.give_up")) == 1


def page_strings(lang):
    """key -> text of one language's table in the page's i18n.js."""
    with open(os.path.join(ROOT, "mod_gmailsync", "www", "i18n.js"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n  %s: {" % (lang if lang == "en" else "'%s'" % lang))
    table = text[start:text.index("\n  }", start)]
    return dict(re.findall(r"^    (\w+): '((?:[^'\\]|\\.)*)',?$", table, re.M))


def test_the_gmail_api_disabled_in_the_cloud_project_fails_api_disabled_not_auth_revoked(
        stack, gmail, worker):
    """403 accessNotConfigured is the operator's Cloud project, not the user's grant: its own
    code and words, and nobody is told to link the account again."""
    user = stack.add_user(messages=30)
    gmail.config(api_disabled=True)
    try:
        tid = new_task(stack, user["user_id"])
        run = worker.run(tid)
    finally:
        gmail.config(api_disabled=False)
    assert run.rc == EXIT_FAILED, run.stderr[-3000:]
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "api_disabled"), t
    msg = t["error_message"]
    assert "Gmail API is disabled" in msg and "accessNotConfigured" in msg and "operator" in msg, msg
    assert "need not be linked again" in msg
    assert run.board()[-1] == {"event": "state", "task": tid, "state": "FAILED", "code": "api_disabled"}
    failed = run.events("task.failed")
    assert len(failed) == 1 and "error=api_disabled " in failed[0]
    for lang, relink in (("en", "link it again"), ("zh-CN", "重新关联")):
        strings = page_strings(lang)
        assert strings.get("err_api_disabled") and strings.get("do_api_disabled"), lang
        assert relink in strings["do_api_disabled"]           # "... need not link it again"
        assert strings["do_api_disabled"] != strings["do_auth_revoked"]
    # once an operator enables the API, the next sync simply works: no new link was needed
    tid = new_task(stack, user["user_id"])
    assert worker.run(tid).rc == EXIT_SUCCEEDED
    assert_table_equals_mailbox(stack, gmail, user)


def test_gmail_answers_come_gzip_compressed_and_are_parsed(stack, gmail, worker):
    """Google compresses only for clients that accept gzip and say "gzip" in their User-Agent."""
    user = stack.add_user(messages=300)
    gmail.config(gzip=True)
    gmail.reset_stats()
    run = worker.run(new_task(stack, user["user_id"]))
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    stats = gmail.stats()
    calls = sum(stats["requests"].get(m, 0) for m in ("getProfile", "labels.list", "messages.list",
                                                     "history.list", "batch"))
    z = stats["gzip"]
    assert calls >= 3 and z["answers"] == calls, (z, stats["requests"])    # every answer compressed
    assert z["gzip_bytes"] * 3 < z["bytes"], z
    assert_table_equals_mailbox(stack, gmail, user)                          # and read exactly
    print("gzip: %d answers, %d bytes sent for %d" % (z["answers"], z["gzip_bytes"], z["bytes"]))


@contextlib.contextmanager
def messages_on_a_small_disk(stack, room_kb):
    """gmailsync.messages moved to a tablespace on a tmpfs of its own with `room_kb` to spare:
    a full disk as PostgreSQL really meets it (ERROR 53100 "could not extend file ...: No space
    left on device"). Needs root (mount); afterwards the table is moved back."""
    import psycopg2
    import psycopg2.extensions
    db = stack.query("SELECT current_database()")[0][0]
    size_kb = stack.query("SELECT pg_table_size('gmailsync.messages')")[0][0] // 1024 + room_kb
    mnt = tempfile.mkdtemp(prefix="gs-small-disk-")
    try:
        os.chmod(mnt, 0o755)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,uid=%d,mode=0700"
                            % (size_kb, pwd.getpwnam("postgres").pw_uid), "tmpfs", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip("cannot mount a small filesystem here (%s): the test needs root"
                        % r.stderr.strip())
        try:
            admin = psycopg2.connect(psycopg2.extensions.make_dsn(stack.pg_admin_dsn, dbname=db))
            admin.autocommit = True
            try:
                cur = admin.cursor()
                cur.execute("CREATE TABLESPACE gs_small_disk LOCATION %s", (mnt,))
                try:
                    cur.execute("ALTER TABLE gmailsync.messages SET TABLESPACE gs_small_disk")
                    yield
                finally:
                    cur.execute("ALTER TABLE gmailsync.messages SET TABLESPACE pg_default")
                    cur.execute("CHECKPOINT")
                    cur.execute("DROP TABLESPACE gs_small_disk")
            finally:
                admin.close()
        finally:
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mnt], check=True)
    finally:
        os.rmdir(mnt)


def test_a_full_disk_fails_storage_full_keeps_what_was_stored_and_the_next_sync_resumes(
        stack, gmail, worker):
    """PostgreSQL's disk_full (SQLSTATE 53100) is a storage error, not a bug: storage_full, every
    row committed before it stays, only the batch that did not fit is missing, and once space is
    freed the next sync resumes and fetches only what is missing."""
    n = 1500
    user = stack.add_user(messages=n)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    with messages_on_a_small_disk(stack, room_kb=256):
        run = worker.run(tid, wait=120)
        rows = len(stored(stack, user["user_id"]))
    assert run.rc == EXIT_FAILED, run.stderr[-3000:]
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "storage_full"), t
    assert "out of disk space" in t["error_message"] and "53100" in t["error_message"], t
    assert "No space left on device" in t["error_message"]
    failed = run.events("task.failed")
    assert len(failed) == 1 and "error=storage_full " in failed[0]
    fetched = int(failed[0].split(" fetched=")[1].split()[0])
    asked = gmail.requests_of(user["email"], "messages.get")
    # every row the worker stored is there; what Gmail sent and was not stored is at most the
    # one batch round that did not fit (batch_size x parallel = 100)
    assert 0 < rows == fetched < n, (rows, fetched)
    assert asked - rows <= 100, (asked, rows)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    again = worker.run(tid)
    assert again.rc == EXIT_SUCCEEDED, again.stderr[-3000:]
    assert "resumed=1" in again.events("sync.mode")[0]
    assert gmail.requests_of(user["email"], "messages.get") == n - rows   # only what was missing
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
    print("disk full after %d of %d rows (%d fetched from Gmail); the next sync fetched %d"
          % (rows, n, asked, n - rows))
