"""The message view (issue 24): GET {prefix}/messages/{id} and
GET {prefix}/messages/{id}/attachments/{n}.

Real mail (the MIME corpus's mixed_nested.eml: text, HTML with an inline image, a PDF and a file
with an RFC 2231 Chinese-and-accented name, plus messages written here) is imported into the
fake Gmail, synced by gmailsync-worker into PostgreSQL, and read back through httpd. What the
endpoints give is compared with Python's `email` package reading the same bytes: the bodies,
the headers, the addresses, and each attachment's decoded bytes.
"""
import email
import hashlib
import os
import re
import urllib.parse
from email import policy

import pytest
import requests

from gsworker import EXIT_SUCCEEDED, Gmail, Worker, daemon_paused, new_task, task  # noqa: F401
from test_message_content import MIME_DIR, import_message, python_attachments, python_bodies

BODY_MAX = 1048576     # GS_MESSAGE_BODY_MAX (mod_gmailsync_message_view.c)
# every byte value, three times over 2 MB slices (GS_SLICE): the last slice is partial
BIG_ATTACHMENT = hashlib.shake_256(b"gmailsync attachment").digest(5 * 1024 * 1024 + 4321)


def corpus(name):
    with open(os.path.join(MIME_DIR, name), "rb") as f:
        return f.read()


def mime(parts, subject, body_type="multipart/mixed"):
    """A message built with Python's email package: parts is [(maintype, subtype, bytes or
    str, filename or None)], the first one the body."""
    from email.message import EmailMessage
    msg = EmailMessage()
    msg["From"] = "Zoë Sender <zoe@example.com>"
    msg["To"] = "alice@example.test, Bob <bob@example.org>"
    msg["Cc"] = "carol@example.net"
    msg["Subject"] = subject
    msg["Message-ID"] = "<%s@view.example>" % hashlib.sha1(subject.encode()).hexdigest()[:12]
    first = parts[0]
    msg.set_content(first[2], subtype=first[1])
    for maintype, subtype, data, filename in parts[1:]:
        if isinstance(data, str):
            msg.add_attachment(data, subtype=subtype, filename=filename)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=policy.SMTP)


# an HTML attachment whose RFC 2231 name holds a quote, CR LF, a header, backslashes and a path
HOSTILE_NAME = 'evil"\r\nX-Injected: 1\\..\\../x.html'
HTML_ATTACHMENT = (
    b"From: mallory@example.com\r\nTo: alice@example.test\r\nSubject: hostile attachment\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\n"
    b"Content-Type: text/plain\r\n\r\nan attachment that claims to be HTML\r\n--h\r\n"
    b"Content-Type: text/html\r\nContent-Disposition: attachment;"
    b" filename*=UTF-8''evil%22%0D%0AX-Injected%3A%201%5C..%5C..%2Fx.html\r\n\r\n"
    b"<script>alert(1)</script>\r\n--h--\r\n")
BIG = mime([("text", "plain", "a large attachment\n", None),
            ("application", "octet-stream", BIG_ATTACHMENT, "big.bin")], "big attachment")
LONG_TEXT = mime([("text", "plain", "x" * (BODY_MAX + 1000) + "\n", None)], "a long body")


def sync(stack, user, **conf):
    tid = new_task(stack, user["user_id"])
    run = Worker(stack).run(tid, **conf)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    assert task(stack, tid)["state"] == "SUCCEEDED"


@pytest.fixture(scope="module")
def mail(stack):
    """alice: the corpus message (with a user label, starred and unread), the hostile
    attachment, the big one, the long body; bob: one message; carol: the corpus message and the
    big one synced with GmailSyncAttachmentMaxSize 1K."""
    gmail = Gmail(stack.gmail_url)
    gmail.clear_faults()
    out = {}
    for name in ("alice", "bob", "carol"):
        out[name] = stack.add_user(messages=0)
    alice, bob, carol = out["alice"], out["bob"], out["carol"]
    label = gmail.label_create(alice["email"], "Reisen ✈")
    alice["ids"] = {
        "mixed": import_message(stack, alice["email"], corpus("mixed_nested.eml"),
                                labels="INBOX,UNREAD,STARRED," + label),
        "hostile": import_message(stack, alice["email"], HTML_ATTACHMENT),
        "big": import_message(stack, alice["email"], BIG),
        "long": import_message(stack, alice["email"], LONG_TEXT),
    }
    bob["ids"] = {"mixed": import_message(stack, bob["email"], corpus("mixed_nested.eml"))}
    carol["ids"] = {"mixed": import_message(stack, carol["email"], corpus("mixed_nested.eml")),
                    "big": import_message(stack, carol["email"], BIG)}
    sync(stack, alice)
    sync(stack, bob)
    sync(stack, carol, attachment_max_size="1K")
    return out


def get(stack, user, path, method="GET", **kw):
    return requests.request(method, stack.api + "/messages/" + path, timeout=60,
                            cookies={"session": user["session"]} if user else None, **kw)


def view(stack, user, gmail_id):
    r = get(stack, user, gmail_id)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    return r.json()


def addresses(header):
    return [{"name": a.display_name, "address": a.addr_spec.lower()} for a in header.addresses]


def test_the_view_is_what_pythons_email_reads(stack, mail):
    alice = mail["alice"]
    raw = corpus("mixed_nested.eml")
    msg = email.message_from_bytes(raw, policy=policy.default)
    v = view(stack, alice, alice["ids"]["mixed"])
    assert v["id"] == alice["ids"]["mixed"] and v["thread_id"]
    text, html = python_bodies(msg)
    assert (v["text_body"], v["html_body"]) == (text, html)
    assert (v["text_length"], v["html_length"]) == (len(text), len(html))
    assert v["subject"] == str(msg["subject"]) and v["message_id"] == "mixed-nested@corpus.example"
    assert v["envelope"]["from"] == addresses(msg["from"])
    assert v["envelope"]["to"] == addresses(msg["to"])
    assert v["envelope"]["cc"] == [] and v["envelope"]["bcc"] == []
    assert v["as_written"]["from"] == "Alice Example <alice@example.com>"
    # every header in order (this message has no folded or encoded one)
    assert v["headers"] == [[k, value.strip()] for k, value in
                            email.message_from_bytes(raw, policy=policy.compat32).raw_items()]
    assert len(v["headers"]) == 7
    assert v["date_header"] == "2026-12-07T08:15:00.000Z"
    # labels by name: the user label's name, system labels by id, in label_ids order
    assert sorted(v["labels"]) == sorted(["INBOX", "UNREAD", "STARRED", "Reisen ✈"])
    assert v["unread"] is True and v["starred"] is True
    assert v["content_state"] == "complete" and v["raw_stored"] is True
    assert v["truncated"] == {k: False for k in ("text", "html", "subject", "headers",
                                                  "envelope", "attachments")}
    # the attachments: the inline image of the HTML, the PDF, the named text file
    got = sorted(((a["filename"], a["mime_type"], a["size"], a["sha256"]) for a in v["attachments"]),
                 key=repr)
    assert got == python_attachments(msg)
    assert [a["n"] for a in v["attachments"]] == [0, 1, 2]
    assert [a["filename"] for a in v["attachments"]] == ["logo.png", "report.pdf", "会议纪要 été.txt"]
    logo = v["attachments"][0]
    assert logo["inline"] and logo["related"] and logo["content_id"] == "logo@corpus"
    assert all(a["stored"] for a in v["attachments"])


def python_parts(msg):
    """{filename: decoded bytes} of every part with a file name."""
    return {p.get_filename(): p.get_payload(decode=True) for p in msg.walk()
            if p.get_filename()}


def test_attachment_bytes_are_the_source_parts(stack, mail):
    alice = mail["alice"]
    gmail_id = alice["ids"]["mixed"]
    parts = python_parts(email.message_from_bytes(corpus("mixed_nested.eml"), policy=policy.default))
    for a in view(stack, alice, gmail_id)["attachments"]:
        r = get(stack, alice, "%s/attachments/%d" % (gmail_id, a["n"]))
        assert r.status_code == 200, r.text
        assert r.content == parts[a["filename"]]
        assert hashlib.sha256(r.content).hexdigest() == a["sha256"]
        assert r.headers["Content-Length"] == str(len(r.content))
        assert r.headers["Content-Type"] == a["mime_type"]          # png, pdf, text: safe
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Security-Policy"] == "sandbox"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Content-Disposition"].startswith("attachment; ")


def test_a_non_ascii_file_name_is_rfc_6266(stack, mail):
    alice = mail["alice"]
    r = get(stack, alice, "%s/attachments/2" % alice["ids"]["mixed"])
    cd = r.headers["Content-Disposition"]
    # httpd writes the header as bytes; it must be ASCII, with the name in filename*
    cd.encode("ascii")
    m = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', cd)
    assert m, cd
    assert urllib.parse.unquote(m.group(2), errors="strict") == "会议纪要 été.txt"
    assert m.group(1).endswith(".txt") and m.group(1).isascii()


def test_a_hostile_attachment_is_a_harmless_download(stack, mail):
    alice = mail["alice"]
    gmail_id = alice["ids"]["hostile"]
    v = view(stack, alice, gmail_id)
    [a] = v["attachments"]
    [part] = [p for p in email.message_from_bytes(HTML_ATTACHMENT, policy=policy.default).walk()
              if p.get_filename()]
    assert part.get_filename() == HOSTILE_NAME
    assert a["mime_type"] == "text/html" and a["filename"] == HOSTILE_NAME
    r = get(stack, alice, "%s/attachments/0" % gmail_id)
    assert r.status_code == 200 and r.content == part.get_payload(decode=True)
    assert r.headers["Content-Type"] == "application/octet-stream"     # not on the safe list
    assert "X-Injected" not in r.headers
    cd = r.headers["Content-Disposition"]
    assert "\r" not in cd and "\n" not in cd and "\\" not in cd.split(";")[1]
    m = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', cd)
    assert m, cd
    assert "/" not in m.group(1) and "\\" not in m.group(1)
    assert "/" not in urllib.parse.unquote(m.group(2))


def test_a_large_attachment_streams_byte_identical(stack, mail):
    alice = mail["alice"]
    gmail_id = alice["ids"]["big"]
    [a] = [a for a in view(stack, alice, gmail_id)["attachments"] if a["filename"] == "big.bin"]
    assert a["size"] == len(BIG_ATTACHMENT) and a["stored"]
    r = get(stack, alice, "%s/attachments/%d" % (gmail_id, a["n"]), stream=True)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(BIG_ATTACHMENT))
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == 'attachment; filename="big.bin"'
    got = b"".join(r.iter_content(256 * 1024))
    assert got == BIG_ATTACHMENT
    # a Range is ignored, as for /raw
    ranged = get(stack, alice, "%s/attachments/%d" % (gmail_id, a["n"]), headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 200 and len(ranged.content) == len(BIG_ATTACHMENT)
    assert ranged.headers["Accept-Ranges"] == "none"


def test_an_attachment_with_only_its_metadata_is_a_distinct_404(stack, mail):
    carol = mail["carol"]
    [a] = [a for a in view(stack, carol, carol["ids"]["big"])["attachments"]
           if a["filename"] == "big.bin"]
    assert a["stored"] is False and a["size"] == len(BIG_ATTACHMENT)
    assert a["sha256"] == hashlib.sha256(BIG_ATTACHMENT).hexdigest()
    r = get(stack, carol, "%s/attachments/%d" % (carol["ids"]["big"], a["n"]))
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    assert "metadata" in r.json()["detail"] and "GmailSyncAttachmentMaxSize" in r.json()["detail"]
    # the small ones of the same sync were stored
    small = get(stack, carol, "%s/attachments/1" % carol["ids"]["mixed"])
    assert small.status_code == 200 and small.content.startswith(b"%PDF")


def test_a_long_body_is_cut_and_says_so(stack, mail):
    alice = mail["alice"]
    v = view(stack, alice, alice["ids"]["long"])
    assert v["text_length"] == BODY_MAX + 1001
    assert v["text_body"] == "x" * BODY_MAX
    assert v["truncated"]["text"] is True and v["truncated"]["html"] is False
    assert v["html_body"] is None and v["attachments"] == []


def test_a_message_without_content_has_its_envelope_only(stack, mail):
    alice = mail["alice"]
    stack.query("INSERT INTO gmailsync.messages (user_id, gmail_id, subject, from_addr,"
                " content_state, label_ids) VALUES (%s, '00000000000000ab', 'metadata only',"
                " 'Meta <meta@example.com>', 'metadata_only', '{INBOX}')", (alice["user_id"],))
    v = view(stack, alice, "00000000000000ab")
    assert v["content_state"] == "metadata_only" and v["subject"] == "metadata only"
    assert v["text_body"] is None and v["html_body"] is None and v["headers"] is None
    assert v["attachments"] == [] and v["envelope"]["from"] == []
    assert v["as_written"]["from"] == "Meta <meta@example.com>" and v["raw_stored"] is False
    r = get(stack, alice, "00000000000000ab/attachments/0")
    assert r.status_code == 404 and r.json()["detail"] == "no such attachment"


def test_other_users_unknown_and_malformed_ids_are_the_raw_404(stack, mail):
    alice, bob = mail["alice"], mail["bob"]
    bobs = bob["ids"]["mixed"]
    assert get(stack, bob, bobs).status_code == 200
    assert get(stack, bob, bobs + "/attachments/1").status_code == 200
    same = get(stack, alice, bobs + "/raw")
    assert same.status_code == 404
    for path in (bobs, bobs + "/attachments/0", bobs + "/attachments/1", "ffffffffffffffff",
                 "ffffffffffffffff/attachments/0", "not%20an%20id", "not%20an%20id/attachments/0",
                 "abc%27%3B--", "x" * 200, "x" * 200 + "/attachments/0"):
        r = get(stack, alice, path)
        assert r.status_code == 404, (path, r.text)
        assert r.content == same.content, path
        assert r.headers["Content-Type"] == "application/problem+json"
        assert r.headers["Cache-Control"] == "no-store"
    assert get(stack, bob, alice["ids"]["mixed"]).status_code == 404
    # no session: 401, not a 404 that tells nothing
    assert get(stack, None, bobs).status_code == 401
    assert get(stack, None, bobs + "/attachments/0").status_code == 401


def test_n_out_of_range_or_malformed_is_no_such_attachment(stack, mail):
    alice = mail["alice"]
    gmail_id = alice["ids"]["mixed"]
    for n in ("3", "999999", "1000000", "-1", "1e0", "0x1", "%2B1", "%20", "1%00"):
        r = get(stack, alice, "%s/attachments/%s" % (gmail_id, n))
        assert r.status_code == 404, (n, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"


def test_hostile_paths_are_4xx_never_5xx(stack, mail, expect_log):
    # a path segment longer than a file name may be (255 bytes) is refused by httpd itself
    # while it maps the URI to the file system, before any handler: 403, as a problem
    expect_log(r"AH00127: Cannot map GET /api/gmail/sync/messages/")
    expect_log(r"AH01630: client denied by server configuration: \S*/etc\b")
    alice = mail["alice"]
    gmail_id = alice["ids"]["mixed"]
    for path in ("%00", gmail_id + "%00", "..%2F" + gmail_id, gmail_id + "%2Fattachments%2F0",
                 gmail_id + "/attachments/..%2F0", gmail_id + "/attachments/0/",
                 gmail_id + "/", "%C3%28", "%FF%FE", "%E4%B8%AD%E6%96%87", "a" * 5000,
                 gmail_id + "/attachments/" + "9" * 5000, "x" * 9000):
        r = requests.get(stack.api + "/messages/" + path, cookies={"session": alice["session"]},
                         timeout=30, allow_redirects=False)
        assert r.status_code in (400, 404, 414) or (r.status_code == 403 and len(path) > 255), \
            (path[:60], r.status_code, r.text[:200])
        assert r.headers["Content-Type"] == "application/problem+json", path[:60]
    # dot segments are resolved before routing: ../ names another endpoint or none, never a
    # file of the server
    up = requests.get(stack.api + "/messages/" + gmail_id + "/attachments/../raw",
                      cookies={"session": alice["session"]}, timeout=30)
    assert up.status_code == 200 and up.headers["Content-Type"] == "message/rfc822"
    out = requests.get(stack.api + "/messages/../../../../etc/passwd",
                       cookies={"session": alice["session"]}, timeout=30)
    assert out.status_code in (403, 404) and b"root:" not in out.content


def test_head_answers_the_get_headers_without_a_body(stack, mail):
    alice = mail["alice"]
    gmail_id = alice["ids"]["mixed"]
    for path in (gmail_id, gmail_id + "/attachments/1"):
        g, h = get(stack, alice, path), get(stack, alice, path, method="HEAD")
        assert h.status_code == 200 and h.content == b""
        assert h.headers["Content-Length"] == g.headers["Content-Length"] == str(len(g.content))
        assert h.headers["Content-Type"] == g.headers["Content-Type"]


def test_other_methods_are_405_with_allow(stack, mail):
    alice = mail["alice"]
    gmail_id = alice["ids"]["mixed"]
    for path in (gmail_id, gmail_id + "/attachments/0"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = get(stack, alice, path, method=method)
            assert r.status_code == 405, (path, method)
            assert r.headers["Allow"] == "GET, HEAD"
            assert r.headers["Content-Type"] == "application/problem+json"
