"""Large messages (issue 22): the worker's peak memory is bounded by the largest message, not by
the batch. Gmail's batch answer carries every message base64url-encoded inside JSON (4/3 of its
size); the worker spools an answer over 1 MB to an unlinked temporary file and takes its parts
one at a time, stores what it holds once it passes 8 MB, and shrinks the batch for the rest of
the run when answers are large (mod_gmailsync/worker/README.md, "Memory").

The mailbox: five 8 MB messages and one 25 MB message (each with one base64 attachment, the
common shape of a large mail) among small ones, all in one batch. The sync must succeed, store
every raw message byte for byte, and stay within 4 x the largest message + 32 MB of peak RSS
(VmHWM, which the worker reports in its end line).
"""
import base64
import hashlib
import os
import time

import requests

from gsworker import SANITIZE, EXIT_SUCCEEDED, daemon_paused, gmail, new_task, task, worker  # noqa: F401

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


def peak_rss_mb(run):
    """The worker's peak RSS from its end line (peak_rss_kb: VmHWM of /proc/self/status read by
    the worker as it ends). Not ru_maxrss from wait4: Linux carries the hiwater mark of the
    process a child was forked (here vforked) from over its exec, so that figure includes this
    test's own memory, the mailbox it holds among it."""
    end = (run.events("task.succeeded") or run.events("task.failed"))[0]
    kb = int(end.split(" peak_rss_kb=")[1].split()[0])
    assert kb > 0, end
    return kb / 1024.0


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
    worker.env = dict(worker.env or os.environ, TMPDIR=str(spool_dir))
    tid = new_task(stack, user["user_id"])
    # every message in one batch, uncompressed (the fake's gzip of 88 MB would take seconds of
    # CI time and change nothing here: libcurl inflates into the same writes); a whole-request
    # timeout that a loaded CI machine keeps
    gmail.config(gzip=False)
    try:
        started = time.monotonic()
        run = worker.run(tid, batch_size=50, timeout="60s")
        seconds = time.monotonic() - started
    finally:
        gmail.config(gzip=True)
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
    # ... each the attachment's bytes, whole and in order (over 4 MB a blob and a raw message
    # go to PostgreSQL in pieces, appended): keyed by their SHA-256, which they hash to
    payloads = [hashlib.shake_256(b"gmailsync large %s" % tag).digest(nbytes * 3 // 4)
                for nbytes, tag in [(8 * MB, b"eight-%d" % i) for i in range(5)]
                + [(25 * MB, b"twentyfive")]]
    blobs = {bytes(key): (size, bytes(sha)) for key, size, sha in stack.query(
        "SELECT sha256, octet_length(bytes), sha256(bytes) FROM gmailsync.attachment_blobs"
        " WHERE user_id = %s", (user["user_id"],))}
    assert blobs == {hashlib.sha256(p).digest(): (len(p), hashlib.sha256(p).digest())
                     for p in payloads}
    # the answer went to disk, unlinked at once: nothing is left in the worker's TMPDIR
    assert os.listdir(spool_dir) == []
    end = run.events("task.succeeded")[0]
    assert "contents=%d " % len(mailbox) in end, end
    assert " spooled=" in end and " spooled=0 " not in end, end
    # the answers were large: the batch shrank for the rest of the run, and said so
    assert run.events("gmail.batch_shrunk"), run.stderr[-3000:]
    bound = 4 * largest / MB + 32
    peak = peak_rss_mb(run)
    print("\nlarge messages: %d messages, largest %.1f MB, peak RSS %.1f MB (bound %.1f MB), %.1f s"
          % (len(mailbox), largest / MB, peak, bound, seconds))
    if not SANITIZE:     # ASan's shadow memory and quarantine are not the worker's
        assert peak <= bound, (peak, bound)


def test_a_spooled_answer_of_many_small_parts_is_taken_part_by_part(stack, gmail, worker):
    """A batch answer just over the 1 MB spool threshold, made of many parts in a shuffled order
    (the gmail fixture), their raw fields padded ('=' written as \\u003d): every message is
    stored exactly, as from an answer in memory."""
    user = stack.add_user(messages=0)
    mailbox = {}
    for i in range(40):
        raw = large_message(40 * 1024 + i, b"forty-%d" % i)
        mailbox[import_message(stack, user["email"], raw)] = raw
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, batch_size=50)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    end = run.events("task.succeeded")[0]
    assert " spooled=1 " in end and "contents=40 " in end, end
    assert not run.events("gmail.batch_shrunk")
    got = {mid: bytes(raw) for mid, raw in stack.query(
        "SELECT gmail_id, raw FROM gmailsync.message_raw WHERE user_id = %s", (user["user_id"],))}
    assert got == mailbox
