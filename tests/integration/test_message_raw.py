"""GET {prefix}/messages/{id}/raw (issue 22): the owner's stored raw message as an .eml download.

The worker's content sync is not in this branch: the rows are written here in SQL, the way the
worker stores them (sql/010: gmailsync.messages + gmailsync.message_raw). The mailboxes come from
real mail imported into the fake Gmail by `gmailsync-dev add-user --mbox/--eml`, so the bytes
stored are the bytes the fake's format=raw serves.
"""
import base64
import hashlib
import json
import os

import psycopg2
import pytest
import requests

from conftest import run_dev

# CRLF and bare LF line ends, 8-bit bytes in a header and in the body, NUL-free but every other
# byte value in the body: what a download must give back unchanged.
EIGHT_BIT = (b"From: =?UTF-8?B?Sm9zw6kgTcO8bGxlcg==?= <jose@example.de>\r\n"
             b"To: user@example.test\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n"
             b"Message-ID: <raw-1@example.de>\r\nDate: Tue, 05 Mar 2024 10:00:00 +0100\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\n"
             b"Gr\xfc\xdfe\nbare LF\r\nCRLF\r\n" + bytes(range(1, 256)) + b"\r\n")
REPLY = (b"From: user@example.test\nTo: jose@example.de\nSubject: Re: hi\n"
         b"In-Reply-To: <raw-1@example.de>\nMessage-ID: <raw-2@example.test>\n\nthanks\n")


def big_message(nbytes):
    """A message of about nbytes with a base64 attachment (CRLF lines)."""
    payload = hashlib.shake_256(b"gmailsync raw %d" % nbytes).digest(nbytes * 3 // 4)
    return (b"From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
            b"see attached\r\n--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--B--\r\n")


def add_user_with_mail(stack, tmp_path, name, *files):
    """gmailsync-dev add-user with --mbox/--eml files [(kind, bytes)]; returns its JSON."""
    args = ["add-user"]
    for i, (kind, data) in enumerate(files):
        path = tmp_path / ("%s-%d.%s" % (name, i, kind))
        path.write_bytes(data)
        args += ["--" + kind, str(path)]
    return json.loads(run_dev(*args).stdout)


def fake_raw(stack, user, gmail_id):
    resp = requests.get("%s/_control/mailboxes/%s/raw/%s" % (stack.gmail_url, user["email"], gmail_id),
                        timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.content


def store(stack, user, gmail_id, raw):
    """The rows the worker writes for a message with content (raw None: metadata only)."""
    with stack.db() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO gmailsync.messages (user_id, gmail_id, subject, content_state,"
                    " raw_sha256, raw_size) VALUES (%s, %s, 'x', %s, %s, %s)",
                    (user["user_id"], gmail_id, "complete" if raw is not None else "metadata_only",
                     psycopg2.Binary(hashlib.sha256(raw).digest()) if raw is not None else None,
                     len(raw) if raw is not None else None))
        if raw is not None:
            cur.execute("INSERT INTO gmailsync.message_raw (user_id, gmail_id, raw) VALUES (%s, %s, %s)",
                        (user["user_id"], gmail_id, psycopg2.Binary(raw)))
    conn.close()


def get_raw(stack, user, gmail_id, method="GET", **kw):
    return requests.request(method, "%s/messages/%s/raw" % (stack.api, gmail_id),
                            cookies={"session": user["session"]} if user else None, timeout=60, **kw)


@pytest.fixture(scope="module")
def users(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("raw")
    mbox = (b"From jose@example.de Tue Mar  5 10:00:00 2024\n" + EIGHT_BIT + b"\n"
            b"From user@example.test Tue Mar  5 11:00:00 2024\n" + REPLY + b"\n")
    alice = add_user_with_mail(stack, tmp, "alice", ("mbox", mbox), ("eml", big_message(5 * 1024 * 1024 + 12345)))
    bob = add_user_with_mail(stack, tmp, "bob", ("eml", b"From: b@example.com\r\nSubject: bob's\r\n\r\nmine\r\n"))
    for user in (alice, bob):
        for gmail_id in user["imported"]:
            store(stack, user, gmail_id, fake_raw(stack, user, gmail_id))
    store(stack, alice, "00000000000000aa", None)               # metadata only: no raw stored
    store(stack, alice, "00000000000000bb", b"")                # an empty raw message
    return alice, bob


def test_add_user_imports_mbox_and_eml_into_the_fake_mailbox_exactly(stack, users):
    alice, bob = users
    assert len(alice["imported"]) == 3 and len(bob["imported"]) == 1
    first, reply, big = alice["imported"]
    assert fake_raw(stack, alice, first) == EIGHT_BIT and fake_raw(stack, alice, reply) == REPLY
    summary = requests.get("%s/_control/mailboxes/%s" % (stack.gmail_url, alice["email"]), timeout=30).json()
    assert summary["messages_total"] == 3 and summary["threads_total"] == 2   # the reply joined its thread


def test_download_is_the_stored_bytes_with_the_eml_headers(stack, users):
    alice, _ = users
    gmail_id = alice["imported"][0]
    resp = get_raw(stack, alice, gmail_id)
    assert resp.status_code == 200, resp.text
    assert resp.content == EIGHT_BIT
    assert resp.headers["Content-Type"] == "message/rfc822"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="%s.eml"' % gmail_id
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Content-Length"] == str(len(EIGHT_BIT))
    assert "Content-Encoding" not in resp.headers
    # no ranges: a Range is ignored (httpd could honour one only for a message of one slice)
    ranged = get_raw(stack, alice, gmail_id, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 200 and ranged.content == EIGHT_BIT
    assert ranged.headers["Accept-Ranges"] == "none"
    assert get_raw(stack, alice, alice["imported"][1]).content == REPLY


def test_a_multi_megabyte_message_streams_byte_identical(stack, users):
    alice, _ = users
    gmail_id = alice["imported"][2]
    want = fake_raw(stack, alice, gmail_id)
    assert len(want) > 5 * 1024 * 1024                      # three slices, the last one partial
    resp = get_raw(stack, alice, gmail_id, stream=True)
    assert resp.status_code == 200 and resp.headers["Content-Length"] == str(len(want))
    got = b"".join(resp.iter_content(256 * 1024))
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()
    stored = stack.query("SELECT raw_sha256 FROM gmailsync.messages WHERE user_id = %s AND gmail_id = %s",
                         (alice["user_id"], gmail_id))[0][0]
    assert bytes(stored) == hashlib.sha256(got).digest()


def test_an_empty_raw_message_is_an_empty_download(stack, users):
    alice, _ = users
    resp = get_raw(stack, alice, "00000000000000bb")
    assert resp.status_code == 200 and resp.content == b"" and resp.headers["Content-Length"] == "0"


def test_other_users_unknown_and_malformed_ids_are_the_same_404(stack, users):
    alice, bob = users
    bobs = bob["imported"][0]
    assert get_raw(stack, bob, bobs).content == fake_raw(stack, bob, bobs)
    answers = [get_raw(stack, alice, bobs), get_raw(stack, alice, "ffffffffffffffff"),
               get_raw(stack, alice, "not%20an%20id"), get_raw(stack, alice, "x" * 200),
               get_raw(stack, alice, "abc%27%3B--"), get_raw(stack, bob, alice["imported"][0])]
    for resp in answers:
        assert resp.status_code == 404, resp.text
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.content == answers[0].content
    problem = answers[0].json()
    endpoint = requests.get(stack.api + "/no-such-thing", cookies={"session": alice["session"]}, timeout=30)
    assert endpoint.status_code == 404
    assert {k: endpoint.json()[k] for k in ("type", "title", "status")} == \
        {k: problem[k] for k in ("type", "title", "status")}
    assert problem["detail"] == "no such message" and bobs not in answers[0].text


def test_a_message_without_stored_raw_is_a_404_that_says_so(stack, users):
    alice, _ = users
    resp = get_raw(stack, alice, "00000000000000aa")
    assert resp.status_code == 404
    problem = resp.json()
    assert problem["type"] == "urn:gmailsync:problem:not-found" and problem["status"] == 404
    assert "no raw message is stored" in problem["detail"]


def test_head_methods_paths_and_authentication(stack, users):
    alice, _ = users
    gmail_id = alice["imported"][0]
    head = get_raw(stack, alice, gmail_id, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(EIGHT_BIT))
    assert head.headers["Content-Disposition"] == 'attachment; filename="%s.eml"' % gmail_id
    for method in ("POST", "PUT", "DELETE"):
        resp = get_raw(stack, alice, gmail_id, method=method)
        assert resp.status_code == 405 and resp.headers["Allow"] == "GET, HEAD", method
    assert get_raw(stack, None, gmail_id).status_code == 401
    assert get_raw(stack, {"session": "nope"}, gmail_id).status_code == 401
    # (/messages/{id} itself is the message view: test_message_view.py)
    for path in ("/messages/%s/raw/x" % gmail_id, "/messages//raw",
                 "/messages/%s/raws" % gmail_id, "/messages/raw"):
        resp = requests.get(stack.api + path, cookies={"session": alice["session"]}, timeout=30)
        assert resp.status_code == 404, path
