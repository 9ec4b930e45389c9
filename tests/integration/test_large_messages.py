"""Large messages (issue 22): the worker's peak memory is bounded by the largest message, not by
the batch. Gmail's batch answer carries every message base64url-encoded inside JSON (4/3 of its
size); the worker spools an answer over 1 MB to an unlinked temporary file and takes its parts
one at a time, stores what it holds once it passes 16 MB, and shrinks the batch for the rest of
the run when answers are large (mod_gmailsync/worker/README.md, "Memory").

The mailbox: five 8 MB messages and one 25 MB message (each with one base64 attachment, the
common shape of a large mail) among small ones, all in one batch. The sync must succeed, store
every raw message byte for byte, and stay within 4 x the largest message + 32 MB of peak RSS
(ru_maxrss of the worker, from wait4).
"""
import base64
import hashlib
import os
import subprocess
import threading
import time

import requests

from gsworker import EXIT_SUCCEEDED, assert_utf8_log, daemon_paused, gmail, new_task, task, worker  # noqa: F401

MB = 1024 * 1024


def large_message(nbytes, tag):
    """A message of about nbytes: a short text part and a base64 attachment (CRLF lines)."""
    payload = hashlib.shake_256(b"gmailsync large %s" % tag).digest(nbytes * 3 // 4)
    return (b"From: big@example.com\r\nTo: user@example.test\r\nSubject: large " + tag + b"\r\n"
            b"Message-ID: <large-" + tag + b"@example.com>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
            b"see attached\r\n--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"" + tag + b".bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--B--\r\n")


def small_message(i):
    return (b"From: small@example.com\r\nTo: user@example.test\r\nSubject: small %d\r\n"
            b"Message-ID: <small-%d@example.com>\r\n\r\nhello %d\r\n" % (i, i, i))


def import_message(stack, email_addr, raw):
    r = requests.post("%s/_control/mailboxes/%s/import" % (stack.gmail_url, email_addr),
                      params={"labelIds": "INBOX"}, data=raw,
                      headers={"Content-Type": "message/rfc822"}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()["id"]


class Measured:
    def __init__(self, rc, out, err, maxrss_kb, seconds):
        self.rc, self.stdout, self.stderr = rc, out, err
        self.maxrss_mb = maxrss_kb / 1024.0
        self.seconds = seconds

    def events(self, name):
        return [line for line in self.stderr.splitlines() if "event=%s " % name in line + " "]


def run_measured(worker, task_id, env=None, wait=120, **conf):
    """Runs the worker to its end and reads its peak RSS (ru_maxrss of wait4: the kernel's
    high-water mark of the process, no sampling)."""
    saved = worker.env
    if env is not None:
        worker.env = env
    try:
        start = time.monotonic()
        proc = worker.start(task_id, **conf)
    finally:
        worker.env = saved
    out, err = [], []
    readers = [threading.Thread(target=lambda: out.append(proc.stdout.read())),
               threading.Thread(target=lambda: err.append(proc.stderr.read()))]
    for r in readers:
        r.start()
    deadline = time.monotonic() + wait
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    run = Measured(proc.returncode, "".join(out), "".join(err), usage.ru_maxrss, seconds)
    assert seconds <= wait, "worker did not finish in %ss:\n%s" % (wait, run.stderr[-3000:])
    assert_utf8_log(run.stderr)
    return run


def test_large_messages_in_one_batch_sync_within_the_memory_bound(stack, gmail, worker, tmp_path):
    user = stack.add_user(messages=0)
    mailbox = {}
    for i in range(5):
        raw = large_message(8 * MB, b"eight-%d" % i)
        mailbox[import_message(stack, user["email"], raw)] = raw
    raw = large_message(25 * MB, b"twentyfive")
    mailbox[import_message(stack, user["email"], raw)] = raw
    for i in range(6):
        raw = small_message(i)
        mailbox[import_message(stack, user["email"], raw)] = raw
    largest = max(len(r) for r in mailbox.values())
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    env = dict(worker.env or os.environ, TMPDIR=str(spool_dir))
    tid = new_task(stack, user["user_id"])
    # every message in one batch; a whole-request timeout that a loaded CI machine keeps
    run = run_measured(worker, tid, env=env, batch_size=50, timeout="60s")
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    assert task(stack, tid)["state"] == "SUCCEEDED"
    # every raw message stored exactly
    got = {mid: (size, bytes(sha)) for mid, size, sha in stack.query(
        "SELECT gmail_id, octet_length(raw), sha256(raw) FROM gmailsync.message_raw"
        " WHERE user_id = %s", (user["user_id"],))}
    assert set(got) == set(mailbox)
    for mid, raw in mailbox.items():
        assert got[mid] == (len(raw), hashlib.sha256(raw).digest()), mid
    # the attachment's bytes too (the largest one decoded from the largest message)
    n, = stack.query("SELECT count(*) FROM gmailsync.attachment_blobs WHERE user_id = %s",
                     (user["user_id"],))[0]
    assert n == 6
    # the answer went to disk, unlinked at once: nothing is left in the worker's TMPDIR
    assert os.listdir(spool_dir) == []
    end = run.events("task.succeeded")[0]
    assert "contents=%d " % len(mailbox) in end, end
    assert " spooled=" in end and " spooled=0 " not in end, end
    # the answers were large: the batch shrank for the rest of the run, and said so
    assert run.events("gmail.batch_shrunk"), run.stderr[-3000:]
    bound = 4 * largest / MB + 32
    print("\nlarge messages: %d messages, largest %.1f MB, peak RSS %.1f MB (bound %.1f MB), %.1f s"
          % (len(mailbox), largest / MB, run.maxrss_mb, bound, run.seconds))
    assert run.maxrss_mb <= bound, (run.maxrss_mb, bound)
