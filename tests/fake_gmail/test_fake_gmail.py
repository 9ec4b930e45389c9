"""Tests of the fake Gmail API: real HTTP against a running fake_gmail.py.

Run: /usr/bin/python3 -m pytest -q tests/fake_gmail
"""

import atexit
import base64
import calendar
import email
import email.policy
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_gmail.py")
CLIENT_ID = "test-client.apps.example"
CLIENT_SECRET = "test-secret"
DEFAULTS = {"quota_units_per_sec": 0, "quota_units_per_minute": 0, "max_concurrent_per_user": 0,
            "max_batch": 100, "history_retention": 0, "shuffle_batch": False, "token_ttl": 3600,
            "minute_quota_style": "legacy", "api_disabled": False, "gzip": True}
AUTH_401 = {"error": {"code": 401, "message": (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."),
    "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
                "location": "Authorization", "locationType": "header"}], "status": "UNAUTHENTICATED"}}
NOT_FOUND_404 = {"error": {"code": 404, "message": "Requested entity was not found.", "errors": [
    {"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}],
    "status": "NOT_FOUND"}}


SECRET_DIR = tempfile.mkdtemp(prefix="fake-gmail-test-")
SECRET_FILE = os.path.join(SECRET_DIR, "client_secret")
with open(os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as _fh:
    _fh.write(CLIENT_SECRET + "\n")
atexit.register(shutil.rmtree, SECRET_DIR, True)


def start_server(*extra, pidfile=None):
    cmd = ["/usr/bin/python3", SERVER, "--port", "0", "--client-id", CLIENT_ID,
           "--client-secret-file", SECRET_FILE]
    if pidfile:
        cmd += ["--pidfile", pidfile]
    proc = subprocess.Popen(cmd + list(extra), stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, "fake_gmail did not start"
    return proc, json.loads(line)


class Fake:
    def __init__(self, base):
        self.base = base
        self.http = requests.Session()

    def ctl(self, method, path, body=None, expect=None):
        resp = self.http.request(method, self.base + "/_control/" + path, json=body)
        if expect is not None:
            assert resp.status_code == expect, resp.text
        return resp.json()

    def mailbox(self, mail, messages=50, seed=1, **kw):
        body = dict({"email": mail, "messages": messages, "seed": seed}, **kw)
        return self.ctl("POST", "mailboxes", body, expect=201)

    def token(self, refresh_token):
        resp = self.http.post(self.base + "/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def get(self, path, token, **params):
        return self.http.get(self.base + "/gmail/v1/users/me/" + path, params=params,
                             headers={"Authorization": "Bearer " + token})

    def batch(self, token, requests_, boundary="test_boundary_1", auth=True):
        body = []
        for cid, target, extra in requests_:
            body.append("--%s\r\nContent-Type: application/http\r\nContent-ID: <%s>\r\n\r\n"
                        "GET %s HTTP/1.1\r\n%s\r\n" % (boundary, cid, target, extra))
        body.append("--%s--\r\n" % boundary)
        headers = {"Content-Type": "multipart/mixed; boundary=" + boundary}
        if auth:
            headers["Authorization"] = "Bearer " + token
        return self.http.post(self.base + "/batch/gmail/v1", data="".join(body).encode(), headers=headers)


def parse_batch_response(resp):
    """[(content-id, status, inner headers, body bytes)] in answer order."""
    ctype = resp.headers["Content-Type"]
    assert ctype.startswith("multipart/mixed; boundary=batch_"), ctype
    boundary = ctype.split("boundary=", 1)[1].encode()
    out = []
    for chunk in resp.content.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, rest = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        part_headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        status_and_headers, _, body = rest.partition(b"\r\n\r\n")
        lines = status_and_headers.split(b"\r\n")
        status = int(lines[0].split()[1])
        inner = {}
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            inner[name.decode().lower()] = value.decode()
        if body.endswith(b"\r\n"):
            body = body[:-2]
        out.append((part_headers.get(b"Content-ID", b"").decode(), status, inner, body))
    return out


@pytest.fixture(scope="module")
def server():
    proc, ready = start_server("--quota-units-per-sec", "0")
    yield Fake(ready["url"])
    proc.terminate()
    proc.wait(10)


@pytest.fixture(autouse=True)
def clean(server):
    server.ctl("DELETE", "faults", expect=200)
    server.ctl("POST", "config", DEFAULTS, expect=200)
    server.ctl("POST", "stats/reset", expect=200)
    yield


@pytest.fixture
def box(server, request):
    mail = "%s@example.com" % request.node.name.replace("[", "-").replace("]", "").lower()[:50]
    info = server.mailbox(mail, messages=60, seed=3)
    return mail, info, server.token(info["refresh_token"])


def all_ids(server, token, **params):
    ids, pages, page = [], [], None
    while True:
        query = dict(params)
        if page:
            query["pageToken"] = page
        doc = server.get("messages", token, **query).json()
        pages.append(doc)
        ids += [m["id"] for m in doc.get("messages", [])]
        page = doc.get("nextPageToken")
        if not page:
            return ids, pages


# --- basics ----------------------------------------------------------------------------------

def test_health_profile_and_email_in_place_of_me(server, box):
    mail, info, token = box
    assert server.ctl("GET", "health") == {"ok": True}
    prof = server.get("profile", token).json()
    assert prof["emailAddress"] == mail and prof["messagesTotal"] == 60
    assert prof["historyId"] == info["history_id"] and isinstance(prof["historyId"], str)
    assert 0 < prof["threadsTotal"] < 60
    by_email = server.http.get(server.base + "/gmail/v1/users/%s/profile" % mail,
                               headers={"Authorization": "Bearer " + token})
    assert by_email.json() == prof
    other = server.http.get(server.base + "/gmail/v1/users/someone@else.com/profile",
                            headers={"Authorization": "Bearer " + token})
    assert other.status_code == 403 and other.json()["error"]["errors"][0]["reason"] == "forbidden"


def test_every_response_has_content_length_and_keep_alive(server, box):
    mail, info, token = box
    conn = http.client.HTTPConnection(server.base.split("//")[1])
    for _ in range(5):   # five requests on one connection
        conn.request("GET", "/gmail/v1/users/me/profile", headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and int(resp.getheader("Content-Length")) == len(body)
        assert resp.getheader("Connection") != "close"
    conn.close()


def test_unknown_parameters_ids_and_formats_are_rejected_like_gmail(server, box):
    mail, info, token = box
    mid = server.get("messages", token, maxResults=1).json()["messages"][0]["id"]
    resp = server.get("messages/" + mid, token, format="metadata", metadataHeader="Subject")
    assert resp.status_code == 400 and 'Unknown name "metadataHeader"' in resp.json()["error"]["message"]
    assert server.get("messages/" + mid, token, format="bogus").status_code == 400
    assert server.get("messages/not-hex!", token).json()["error"]["message"] == "Invalid id value"
    assert server.get("messages/0123456789abcdef", token).json() == NOT_FOUND_404
    compact = server.get("messages/" + mid, token, format="minimal", prettyPrint="false")
    assert b"\n" not in compact.content and compact.json()["id"] == mid
    pretty = server.get("messages/" + mid, token, format="minimal")
    assert pretty.content.startswith(b'{\n  "id": ') and pretty.json() == compact.json()
    part = server.get("messages/" + mid, token, format="full", fields="id,payload/headers")
    assert set(part.json()) == {"id", "payload"} and set(part.json()["payload"]) == {"headers"}


# --- listing ---------------------------------------------------------------------------------

def test_paging_covers_every_id_once_newest_first(server):
    info = server.mailbox("pager@example.com", messages=1234, seed=9)
    token = server.token(info["refresh_token"])
    truth = server.ctl("GET", "mailboxes/pager@example.com?ids=1")["ids"]
    for size in (None, 7, 500, 100000):
        ids, pages = all_ids(server, token, **({"maxResults": size} if size else {}))
        assert ids == truth and len(set(ids)) == 1234
        per_page = min(size or 100, 500)
        assert all(len(p["messages"]) == per_page for p in pages[:-1])
        assert all(p["resultSizeEstimate"] == 201 for p in pages[:-1])   # Gmail's saturated estimate
        assert pages[-1]["resultSizeEstimate"] == 1234 and "nextPageToken" not in pages[-1]
        tokens = [p["nextPageToken"] for p in pages[:-1]]
        assert all(len(t) == 20 and t.isdigit() for t in tokens)     # opaque, Gmail-like, may exceed int64
    # internalDate strictly descending in list order (checked through a metadata batch)
    resp = server.batch(token, [(str(i), "/gmail/v1/users/me/messages/%s?format=minimal" % mid, "")
                                for i, mid in enumerate(truth[:100])])
    dates = {int(cid[len("<response-"):-1]): int(json.loads(body)["internalDate"])
             for cid, status, _, body in parse_batch_response(resp)}
    assert [dates[i] for i in range(100)] == sorted(dates.values(), reverse=True)
    bad = server.get("messages", token, pageToken="100")
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Invalid pageToken"
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_list_filters_and_empty_mailbox(server):
    info = server.mailbox("empty@example.com", messages=0)
    token = server.token(info["refresh_token"])
    assert server.get("messages", token).json() == {"resultSizeEstimate": 0}
    info = server.mailbox("spam@example.com", messages=80, seed=4, spam_trash=10)
    token = server.token(info["refresh_token"])
    visible, _ = all_ids(server, token)
    everything, _ = all_ids(server, token, includeSpamTrash="true")
    assert len(visible) == 70 and len(everything) == 80
    assert server.get("profile", token).json()["messagesTotal"] == 80   # counts spam and trash too
    inbox, _ = all_ids(server, token, labelIds="INBOX", q="is:anything ignored")
    summary = server.ctl("GET", "mailboxes/spam@example.com")
    assert len(inbox) == summary["label_counts"]["INBOX"]


# --- messages.get ----------------------------------------------------------------------------

def test_formats_and_metadata_headers(server, box):
    mail, info, token = box
    mid = server.get("messages", token, maxResults=1).json()["messages"][0]["id"]
    minimal = server.get("messages/" + mid, token, format="minimal").json()
    assert set(minimal) <= {"id", "threadId", "labelIds", "snippet", "sizeEstimate", "historyId", "internalDate"}
    meta = server.get("messages/" + mid, token, format="metadata",
                      metadataHeaders=["subject", "From", "X-Nope"]).json()
    assert [h["name"] for h in meta["payload"]["headers"]] in (["Subject", "From"], ["From", "Subject"])
    assert meta["payload"]["mimeType"].startswith(("text/", "multipart/"))
    allh = server.get("messages/" + mid, token, format="metadata").json()["payload"]["headers"]
    assert {"Date", "Message-ID", "Subject", "From", "To"} <= {h["name"] for h in allh}
    full = server.get("messages/" + mid, token).json()     # default format is full
    assert full["payload"]["partId"] == "" and full["payload"]["headers"] == allh
    raw = base64.urlsafe_b64decode(server.get("messages/" + mid, token, format="raw").json()["raw"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == [h["value"] for h in allh if h["name"] == "Message-ID"][0]
    for doc in (minimal, meta, full):
        assert doc["historyId"].isdigit() and doc["internalDate"].isdigit()
        assert isinstance(doc["sizeEstimate"], int)
    assert abs(len(raw) - full["sizeEstimate"]) <= 0.06 * len(raw)


def test_full_format_and_attachments(server):
    info = server.mailbox("att@example.com", messages=300, seed=5)
    token = server.token(info["refresh_token"])
    sample = server.ctl("GET", "mailboxes/att@example.com")["samples"]["attachment"]
    full = server.get("messages/" + sample, token, format="full").json()
    assert full["payload"]["mimeType"] == "multipart/mixed"
    att = full["payload"]["parts"][-1]
    assert att["filename"] and att["partId"] == "1" and set(att["body"]) == {"attachmentId", "size"}
    text = full["payload"]["parts"][0]
    text = text["parts"][0] if "parts" in text else text
    assert base64.urlsafe_b64decode(text["body"]["data"]).decode("utf-8")
    got = server.get("messages/%s/attachments/%s" % (sample, att["body"]["attachmentId"]), token).json()
    assert got["size"] == att["body"]["size"] == len(base64.urlsafe_b64decode(got["data"]))


def test_non_ascii_and_long_subjects_round_trip_as_utf8(server):
    info = server.mailbox("utf8@example.com", messages=200, seed=11)
    token = server.token(info["refresh_token"])
    samples = server.ctl("GET", "mailboxes/utf8@example.com")["samples"]
    seen = {}
    for kind in ("cjk", "emoji", "accents", "long", "long_non_ascii", "html_chars"):
        mid = samples[kind]
        resp = server.get("messages/" + mid, token, format="metadata", metadataHeaders="Subject")
        subject = resp.json()["payload"]["headers"][0]["value"]
        if kind != "html_chars":
            assert subject.encode("utf-8") in resp.content          # raw UTF-8, not \u escapes
        raw = base64.urlsafe_b64decode(server.get("messages/" + mid, token, format="raw").json()["raw"])
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998   # RFC 5322 line limit (folded)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert str(parsed["Subject"]) == subject
        seen[kind] = subject
    assert any("\u4e00" <= c <= "\u9fff" for c in seen["cjk"]) or any("\uac00" <= c for c in seen["cjk"])
    assert any(ord(c) > 0xFFFF or c in "✈❤" for c in seen["emoji"])
    assert len(seen["long"]) > 1000 and len(seen["long_non_ascii"]) > 1000
    html = server.get("messages/" + samples["html_chars"], token, format="metadata", metadataHeaders="Subject")
    assert b"\\u003c" in html.content or b"\\u0026" in html.content   # Google escapes <>&=' in JSON


def test_wide_text_draws_words_of_every_frequency(server):
    """{"text": "wide"}: bodies and subjects from the ~4,000-word vocabulary, Chinese in every
    third body, the sizeEstimate still within 1 % of the raw bytes; an unknown kind is a 400."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fg_content
    vocab = set(fg_content.WIDE_WORDS)
    info = server.mailbox("wide@example.com", messages=90, seed=5, text="wide")
    token = server.token(info["refresh_token"])
    ids, _ = all_ids(server, token)
    words, chinese = set(), 0
    for mid in ids:
        doc = server.get("messages/" + mid, token, format="raw").json()
        raw = base64.urlsafe_b64decode(doc["raw"])
        assert abs(len(raw) - doc["sizeEstimate"]) <= 0.01 * len(raw) + 40
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        subject = str(parsed["Subject"]).removeprefix("Re: ").split()
        assert subject and set(subject) <= vocab
        body = parsed.get_body(("plain",)).get_content().split()
        latin = [w for w in body if w.isascii()]
        assert len(latin) >= 120 and set(latin) <= vocab
        han = [w for w in body if not w.isascii()]
        assert all(set(w) <= set(fg_content.HAN) for w in han)
        chinese += bool(han)
        words |= set(latin)
    assert 20 <= chinese <= 40                       # every third message
    assert len(words) > 1000                          # not the 130 words of the default text
    bad = server.http.post(server.base + "/_control/mailboxes",
                           json={"email": "w2@example.com", "text": "poems"})
    assert bad.status_code == 400 and "text must be one of" in bad.text


def test_large_message_has_megabytes(server):
    info = server.mailbox("large@example.com", messages=40, seed=2)
    token = server.token(info["refresh_token"])
    mid = server.ctl("GET", "mailboxes/large@example.com")["samples"]["large"]
    meta = server.get("messages/" + mid, token, format="metadata").json()
    assert meta["sizeEstimate"] > 1000000
    raw = server.get("messages/" + mid, token, format="raw").json()["raw"]
    assert abs(len(base64.urlsafe_b64decode(raw)) - meta["sizeEstimate"]) < 0.01 * meta["sizeEstimate"]


def test_same_seed_same_bytes(server):
    def snapshot(seed, prerender=False):
        info = server.mailbox("det@example.com", messages=120, seed=seed, prerender=prerender)
        token = server.token(info["refresh_token"])
        ids, _ = all_ids(server, token)
        bodies = [server.get("messages/" + mid, token, format=fmt).content
                  for mid in ids[:15] for fmt in ("metadata", "raw", "full")]
        return info["history_id"], ids, bodies
    first, second, other = snapshot(77), snapshot(77, prerender=True), snapshot(78)
    assert first == second          # prerendering changes speed, never bytes
    assert other[1] != first[1]
    assert all(len(i) == 16 and int(i, 16) for i in first[1])


# --- history ---------------------------------------------------------------------------------

def history_pages(server, token, start, **params):
    records, pages, page = [], [], None
    while True:
        query = dict(params, startHistoryId=start)
        if page:
            query["pageToken"] = page
        resp = server.get("history", token, **query)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        pages.append(doc)
        records += doc.get("history", [])
        page = doc.get("nextPageToken")
        if not page:
            return records, pages


def test_history_replays_adds_deletes_and_label_changes_in_order(server, box):
    mail, info, token = box
    start = server.get("profile", token).json()["historyId"]
    added = server.ctl("POST", "mailboxes/%s/messages" % mail, {"count": 3, "labels": ["INBOX", "UNREAD"]})
    old = server.get("messages", token).json()["messages"][-1]["id"]
    deleted = server.ctl("POST", "mailboxes/%s/delete" % mail, {"ids": [added["ids"][0]]})
    relabeled = server.ctl("POST", "mailboxes/%s/labels" % mail,
                           {"ids": [old, added["ids"][1]], "add": ["Label_8", "Label_9"], "remove": ["INBOX"]})
    records, pages = history_pages(server, token, start, maxResults=2)
    assert len(pages) > 1
    assert pages[-1]["historyId"] == relabeled["history_id"]
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(ids) and ids[0] > int(start) and len(set(ids)) == len(ids)
    kinds = [[k for k in r if k not in ("id", "messages")] for r in records]
    assert [k[0] for k in kinds[:4]] == ["messagesAdded"] * 3 + ["messagesDeleted"]
    assert [r["messagesAdded"][0]["message"]["id"] for r in records[:3]] == added["ids"]
    assert records[3]["messagesDeleted"][0]["message"]["id"] == added["ids"][0]
    label_records = records[4:]
    assert [r["messages"][0]["id"] for r in label_records] == [old, added["ids"][1]]
    for rec in label_records:
        assert rec["labelsAdded"][0]["labelIds"] == ["Label_8", "Label_9"]
        assert "Label_9" in rec["labelsAdded"][0]["message"]["labelIds"]
    assert "labelsRemoved" in label_records[1]          # the new message had INBOX
    got = server.get("messages/" + old, token, format="minimal").json()
    assert got["historyId"] == label_records[0]["id"] and "Label_8" in got["labelIds"]
    assert server.get("messages/" + added["ids"][0], token).status_code == 404
    # filtered by type: pages may be empty yet carry nextPageToken, as in Gmail
    only_deleted, pages = history_pages(server, token, start, maxResults=1, historyTypes="messageDeleted")
    assert [list(r)[-1] for r in only_deleted] == ["messagesDeleted"]
    assert any("history" not in p and "nextPageToken" in p for p in pages)
    nothing_new = server.get("history", token, startHistoryId=relabeled["history_id"]).json()
    assert nothing_new == {"historyId": relabeled["history_id"]}


def test_history_too_old_start_is_404_and_missing_start_is_400(server, box):
    mail, info, token = box
    server.ctl("POST", "config", {"history_retention": 3}, expect=200)
    start = server.get("profile", token).json()["historyId"]
    server.ctl("POST", "mailboxes/%s/messages" % mail, {"count": 6})
    resp = server.get("history", token, startHistoryId=start)
    assert resp.status_code == 404 and resp.json() == NOT_FOUND_404
    assert server.get("history", token, startHistoryId=str(int(start) - 1000)).status_code == 404
    summary = server.ctl("GET", "mailboxes/" + mail)
    assert summary["history_records"] == 3
    ok = server.get("history", token, startHistoryId=summary["history_floor"])
    assert ok.status_code == 200 and len(ok.json()["history"]) == 3
    missing = server.get("history", token)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == 400
    assert server.get("history", token, startHistoryId="abc").status_code == 400


# --- batch -----------------------------------------------------------------------------------

def test_batch_over_the_limit_is_400(server, box):
    mail, info, token = box
    server.ctl("POST", "config", {"max_batch": 5}, expect=200)
    parts = [(str(i), "/gmail/v1/users/me/profile", "") for i in range(6)]
    resp = server.batch(token, parts)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "Inner request count exceeds the limit. Limit: 5"
    assert resp.json()["error"]["code"] == 400
    assert server.batch(token, parts[:5]).status_code == 200


def test_batch_per_part_errors_matched_by_content_id_when_shuffled(server, box):
    mail, info, token = box
    server.ctl("POST", "config", {"shuffle_batch": True}, expect=200)
    ids = server.get("messages", token, maxResults=50).json()["messages"]
    ids = [m["id"] for m in ids]
    server.ctl("POST", "faults", {"method": "messages.get", "batch_part_status": 500, "ids": [ids[5]]}, expect=201)
    parts = [("item-%d" % i, "/gmail/v1/users/me/messages/%s?format=metadata&metadataHeaders=Subject" % mid, "")
             for i, mid in enumerate(ids)]
    parts.append(("missing", "/gmail/v1/users/me/messages/0000000000000001?format=minimal", ""))
    parts.append(("badformat", "/gmail/v1/users/me/messages/%s?format=nope" % ids[0], ""))
    parts.append(("other-token", "/gmail/v1/users/me/profile", "Authorization: Bearer nope\r\n"))
    resp = server.batch(token, parts)
    assert resp.status_code == 200
    answers = parse_batch_response(resp)
    assert len(answers) == len(parts)
    order = [cid for cid, _, _, _ in answers]
    assert order != ["<response-%s>" % p[0] for p in parts]            # shuffled
    by_cid = {cid: (status, inner, body) for cid, status, inner, body in answers}
    for i, mid in enumerate(ids):
        status, inner, body = by_cid["<response-item-%d>" % i]
        if i == 5:
            assert status == 500 and json.loads(body)["error"]["errors"][0]["reason"] == "backendError"
        else:
            assert status == 200 and json.loads(body)["id"] == mid
            assert inner["content-type"] == "application/json; charset=UTF-8"
    assert by_cid["<response-missing>"][0] == 404 and json.loads(by_cid["<response-missing>"][2]) == NOT_FOUND_404
    assert by_cid["<response-badformat>"][0] == 400
    assert by_cid["<response-other-token>"][0] == 401


def test_batch_auth_inherited_and_outer_401(server, box):
    mail, info, token = box
    ok = server.batch(token, [("a", "/gmail/v1/users/me/profile", "")])
    assert parse_batch_response(ok)[0][1] == 200
    bad = server.batch("nope", [("a", "/gmail/v1/users/me/profile", "")])
    assert bad.status_code == 401 and bad.json() == AUTH_401
    own = server.batch(None, [("a", "/gmail/v1/users/me/profile", "Authorization: Bearer %s\r\n" % token),
                              ("b", "/gmail/v1/users/me/profile", "")], auth=False)
    assert [s for _, s, _, _ in parse_batch_response(own)] == [200, 401]


# --- quotas ----------------------------------------------------------------------------------

def test_per_second_quota_gives_429_and_per_part_429(server, box):
    mail, info, token = box
    mid = server.get("messages", token, maxResults=1).json()["messages"][0]["id"]
    server.ctl("POST", "config", {"quota_units_per_sec": 10}, expect=200)
    for _ in range(7):   # 5 units each: at most 4 fit in two adjacent 1-s windows
        resp = server.get("messages/" + mid, token, format="minimal")
        if resp.status_code == 429:
            break
    assert resp.status_code == 429
    err = resp.json()["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED" and err["errors"][0]["reason"] == "rateLimitExceeded"
    assert resp.headers["Retry-After"] == "1"
    server.ctl("POST", "config", {"quota_units_per_sec": 25}, expect=200)
    answers = parse_batch_response(server.batch(token, [(str(i), "/gmail/v1/users/me/messages/%s" % mid, "")
                                                        for i in range(20)]))
    statuses = [s for _, s, _, _ in answers]
    assert statuses.count(429) >= 10 and set(statuses) <= {200, 429}
    limited = [a for a in answers if a[1] == 429][0]
    assert json.loads(limited[3])["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert limited[2]["retry-after"] == "1"
    stats = server.ctl("GET", "stats")
    assert stats["status_counts"]["429"] >= 11 and stats["quota_units"] > 0


def test_minute_quota_gives_403_user_rate_limit(server, box):
    mail, info, token = box
    server.ctl("POST", "config", {"quota_units_per_minute": 10}, expect=200)
    for _ in range(6):
        resp = server.get("profile", token)
        if resp.status_code == 403:
            break
        resp = server.get("messages", token, maxResults=1)
        if resp.status_code == 403:
            break
    assert resp.status_code == 403
    assert resp.json() == {"error": {"code": 403, "message": "User Rate Limit Exceeded", "errors": [
        {"message": "User Rate Limit Exceeded", "domain": "usageLimits", "reason": "userRateLimitExceeded"}],
        "status": "PERMISSION_DENIED"}}


def _lockout_end_of(message):
    prefix = "User-rate limit exceeded.  Retry after "
    assert message.startswith(prefix), message
    stamp = message[len(prefix):]
    assert len(stamp) == 24 and stamp[19] == "." and stamp.endswith("Z"), stamp
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + int(stamp[20:23]) / 1000.0


def _lockout_end(resp):
    err = resp.json()["error"]
    assert err["message"] == err["errors"][0]["message"]
    return _lockout_end_of(err["message"])


@pytest.mark.parametrize("status, reason", [(429, "rateLimitExceeded"), (403, "userRateLimitExceeded")])
def test_lockout_names_its_end_only_in_the_message_and_early_calls_lengthen_it(server, box, status,
                                                                              reason):
    mail, info, token = box
    server.ctl("POST", "mailboxes/%s/lockout" % mail,
               {"seconds": 1.5, "penalty": 1, "status": status, "after": 1}, expect=200)
    assert server.get("profile", token).status_code == 200          # after=1: one call through
    t0 = time.time()
    first = server.get("profile", token)
    assert first.status_code == status and "Retry-After" not in first.headers
    err = first.json()["error"]
    assert err["errors"][0]["reason"] == reason and err["errors"][0]["domain"] == "usageLimits"
    end = _lockout_end(first)
    assert t0 + 1.4 <= end <= time.time() + 1.6
    # an early call is refused and pushes the end one penalty later; batch parts count once
    again = server.get("messages", token, maxResults=1)
    assert again.status_code == status and _lockout_end(again) == pytest.approx(end + 1, abs=0.002)
    answers = parse_batch_response(server.batch(token, [(str(i), "/gmail/v1/users/me/profile", "")
                                                        for i in range(3)]))
    assert [a[1] for a in answers] == [status] * 3 and "retry-after" not in answers[0][2]
    part = json.loads(answers[0][3])["error"]
    assert part["code"] == status and part["errors"][0]["reason"] == reason
    end += 2
    assert _lockout_end_of(part["message"]) == pytest.approx(end, abs=0.002)
    lock = server.ctl("GET", "mailboxes/" + mail)["lockout"]
    assert (lock["refused"], lock["lengthened"], lock["over"]) == (5, 2, False)
    # who waits for the named end is served again, and the lockout is over
    time.sleep(max(0.0, end - time.time()) + 0.05)
    assert server.get("profile", token).status_code == 200
    lock = server.ctl("GET", "mailboxes/" + mail)["lockout"]
    assert lock["over"] and lock["refused"] == 5
    assert server.ctl("GET", "stats")["per_mailbox"][mail]["denied"] == {"lockout": 5}
    server.ctl("POST", "mailboxes/%s/lockout" % mail, {"seconds": 0}, expect=200)
    assert server.ctl("GET", "mailboxes/" + mail)["lockout"] is None


def test_answers_are_gzipped_only_for_a_user_agent_that_says_gzip(server, box):
    mail, info, token = box
    hdr = {"Authorization": "Bearer " + token, "Accept-Encoding": "gzip"}
    plain = server.http.get(server.base + "/gmail/v1/users/me/messages", headers=hdr)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers   # requests' UA
    for ua, compressed in (("my-app/1.0 (gzip)", True), ("my-app/1.0", False)):
        conn = http.client.HTTPConnection(server.base.split("//")[1])
        conn.request("GET", "/gmail/v1/users/me/messages", headers=dict(hdr, **{"User-Agent": ua}))
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 200 and (resp.getheader("Content-Encoding") == "gzip") == compressed, ua
        if compressed:
            assert int(resp.getheader("Content-Length")) == len(body) < len(plain.content)
            assert gzip.decompress(body) == plain.content
    z = server.ctl("GET", "stats")["gzip"]
    assert z["answers"] == 1 and z["bytes"] == len(plain.content) > z["gzip_bytes"] > 0


def test_api_disabled_answers_403_access_not_configured(server, box):
    mail, info, token = box
    server.ctl("POST", "config", {"api_disabled": True}, expect=200)
    resp = server.get("profile", token)
    err = resp.json()["error"]
    assert resp.status_code == 403 and err["status"] == "PERMISSION_DENIED"
    assert err["errors"][0]["reason"] == "accessNotConfigured" and err["errors"][0]["domain"] == "usageLimits"
    assert err["message"].startswith("Gmail API has not been used in project ") and "console.developers" in err["message"]
    assert err["details"][0]["reason"] == "SERVICE_DISABLED"
    answers = parse_batch_response(server.batch(token, [("1", "/gmail/v1/users/me/profile", "")]))
    assert answers[0][1] == 403 and b"accessNotConfigured" in answers[0][3]
    assert server.token(info["refresh_token"])          # the token endpoint is not the Gmail API
    server.ctl("POST", "config", {"api_disabled": False}, expect=200)
    assert server.get("profile", token).status_code == 200


def test_concurrent_requests_limit_gives_429_per_part(server, box):
    mail, info, token = box
    server.ctl("POST", "config", {"max_concurrent_per_user": 3}, expect=200)
    answers = parse_batch_response(server.batch(token, [(str(i), "/gmail/v1/users/me/profile", "")
                                                        for i in range(5)]))
    assert [s for _, s, _, _ in answers] == [200, 200, 200, 429, 429]
    assert json.loads(answers[3][3])["error"]["message"] == "Too many concurrent requests for user."
    assert server.ctl("GET", "stats")["per_mailbox"][mail]["max_in_flight"] == 3


# --- auth ------------------------------------------------------------------------------------

def test_unknown_expired_and_missing_tokens_get_401(server, box):
    mail, info, token = box
    resp = server.get("profile", "ya29.unknown")
    assert resp.status_code == 401 and resp.json() == AUTH_401
    assert "WWW-Authenticate" in resp.headers
    assert server.get("profile", token).status_code == 200
    assert server.ctl("POST", "mailboxes/%s/expire-tokens" % mail, expect=200)["expired"] >= 1
    resp = server.get("profile", token)
    assert resp.status_code == 401 and resp.json() == AUTH_401
    fresh = server.token(info["refresh_token"])
    assert server.get("profile", fresh).status_code == 200
    missing = server.http.get(server.base + "/gmail/v1/users/me/profile")
    assert missing.status_code == 401 and missing.json()["error"]["errors"][0]["reason"] == "required"


def test_token_endpoint(server, box):
    mail, info, token = box
    server.ctl("POST", "stats/reset", expect=200)
    url = server.base + "/token"
    good = {"grant_type": "refresh_token", "refresh_token": info["refresh_token"], "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}
    resp = server.http.post(url, data=good)
    doc = resp.json()
    assert resp.status_code == 200 and set(doc) == {"access_token", "expires_in", "scope", "token_type"}
    assert doc["token_type"] == "Bearer" and doc["scope"] == "https://www.googleapis.com/auth/gmail.readonly"
    second = server.http.post(url, data=good).json()["access_token"]
    assert second != doc["access_token"]
    assert server.get("profile", doc["access_token"]).status_code == 200       # old ones stay valid
    basic = server.http.post(url, data={"grant_type": "refresh_token", "refresh_token": info["refresh_token"]},
                             auth=(CLIENT_ID, CLIENT_SECRET))
    assert basic.status_code == 200
    wrong = server.http.post(url, data=dict(good, client_secret="nope"))
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    assert server.http.post(url, data=dict(good, grant_type="password")).json()["error"] == "unsupported_grant_type"
    unknown = server.http.post(url, data=dict(good, refresh_token="1//nope"))
    assert unknown.status_code == 400 and unknown.json() == {
        "error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    server.ctl("POST", "mailboxes/%s/revoke" % mail, expect=200)
    revoked = server.http.post(url, data=good)
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"
    assert server.get("profile", second).status_code == 401
    stats = server.ctl("GET", "stats")
    assert stats["requests"]["token"] == 7


# --- faults ----------------------------------------------------------------------------------

def test_status_faults_fire_in_order_with_after_and_count(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "getProfile", "status": 503, "after": 1, "count": 2}, expect=201)
    server.ctl("POST", "faults", {"method": "*", "status": 500}, expect=201)
    codes = [server.get("profile", token).status_code for _ in range(5)]
    # request 1: the 503 fault is still skipping ("after"), so the next armed fault (any method) fires
    assert codes == [500, 503, 503, 200, 200]
    server.ctl("POST", "faults", {"method": "getProfile", "status": 503}, expect=201)
    resp = server.get("profile", token)
    assert resp.json()["error"] == {"code": 503, "message": "The service is currently unavailable.", "errors": [
        {"message": "The service is currently unavailable.", "domain": "global", "reason": "backendError"}],
        "status": "UNAVAILABLE"}
    server.ctl("POST", "faults", {"method": "messages.list", "status": 500}, expect=201)
    assert server.get("messages", token).json()["error"]["message"] == "Backend Error"
    server.ctl("POST", "faults", {"method": "batch", "status": 502}, expect=201)
    resp = server.batch(token, [("a", "/gmail/v1/users/me/profile", "")])
    assert resp.status_code == 502 and resp.headers["Content-Type"].startswith("text/html")
    server.ctl("POST", "faults", {"method": "token", "status": 500}, expect=201)
    assert server.http.post(server.base + "/token", data={}).status_code == 500
    assert server.ctl("GET", "faults")["faults"] == []


def test_batch_fault_with_email_fires_only_for_that_mailboxs_batches(server, box):
    mail, info, token = box
    other = "other-batch@example.com"
    other_token = server.token(server.mailbox(other, messages=5, seed=2)["refresh_token"])
    fid = server.ctl("POST", "faults", {"method": "batch", "status": 429, "email": mail.upper(),
                                        "count": -1}, expect=201)["id"]
    profile = [("a", "/gmail/v1/users/me/profile", "")]
    # the other mailbox's batches pass, by the outer token or by an inner one
    assert server.batch(other_token, profile).status_code == 200
    inner_auth = [("a", "/gmail/v1/users/me/profile", "Authorization: Bearer %s\r\n" % other_token)]
    assert server.batch(None, inner_auth, auth=False).status_code == 200
    # this mailbox's batch is known by its outer token, its inner token, or its address
    resp = server.batch(token, profile)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert resp.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    inner_auth = [("a", "/gmail/v1/users/me/profile", "Authorization: Bearer %s\r\n" % token)]
    assert server.batch(None, inner_auth, auth=False).status_code == 429
    by_address = [("a", "/gmail/v1/users/%s/profile" % mail, "")]
    assert server.batch(None, by_address, auth=False).status_code == 429
    faults = server.ctl("GET", "faults")["faults"]
    assert [(f["id"], f["email"], f["fired"]) for f in faults] == [(fid, mail, 3)]
    # a batch that names no mailbox at all is not this mailbox's
    anonymous = [("a", "/gmail/v1/users/me/profile", "")]
    assert server.batch(None, anonymous, auth=False).status_code == 200
    assert server.ctl("GET", "faults")["faults"][0]["fired"] == 3


def test_fault_retry_after_can_be_set_or_left_out(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "getProfile", "status": 429, "retry_after": 0}, expect=201)
    server.ctl("POST", "faults", {"method": "getProfile", "status": 429, "retry_after": None}, expect=201)
    server.ctl("POST", "faults", {"method": "getProfile", "status": 403, "retry_after": 3}, expect=201)
    server.ctl("POST", "faults", {"method": "getProfile", "status": 403}, expect=201)
    answers = [server.get("profile", token) for _ in range(4)]
    assert [r.status_code for r in answers] == [429, 429, 403, 403]
    assert [r.headers.get("Retry-After") for r in answers] == ["0", None, "3", None]
    assert answers[3].json()["error"]["errors"][0]["reason"] == "userRateLimitExceeded"
    mid = server.get("messages", token, maxResults=1).json()["messages"][0]["id"]
    server.ctl("POST", "faults", {"method": "messages.get", "batch_part_status": 429, "retry_after": 0},
               expect=201)
    part = parse_batch_response(server.batch(token, [("a", "/gmail/v1/users/me/messages/" + mid, "")]))[0]
    assert part[1] == 429 and part[2]["retry-after"] == "0"
    server.ctl("POST", "faults", {"method": "batch", "status": 503, "retry_after": 2}, expect=201)
    resp = server.batch(token, [("a", "/gmail/v1/users/me/messages/" + mid, "")])
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "2"
    for bad in (-1, 1.5, "1", True):
        assert server.http.post(server.base + "/_control/faults",
                                json={"status": 429, "retry_after": bad}).status_code == 400


def test_reset_fault_aborts_the_connection(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "getProfile", "mode": "reset"}, expect=201)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.base + "/gmail/v1/users/me/profile", headers={"Authorization": "Bearer " + token})
    assert server.get("profile", token).status_code == 200


def test_truncate_fault_sends_short_body(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "messages.list", "mode": "truncate"}, expect=201)
    host, port = server.base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("GET", "/gmail/v1/users/me/messages", headers={"Authorization": "Bearer " + token})
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()


def test_malformed_fault_sends_invalid_json_with_200(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "getProfile", "mode": "malformed"}, expect=201)
    resp = server.get("profile", token)
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        json.loads(resp.content)
    mid = server.get("messages", token, maxResults=1).json()["messages"][0]["id"]
    server.ctl("POST", "faults", {"method": "messages.get", "mode": "malformed"}, expect=201)
    answers = parse_batch_response(server.batch(token, [("a", "/gmail/v1/users/me/messages/" + mid, ""),
                                                        ("b", "/gmail/v1/users/me/messages/" + mid, "")]))
    assert answers[0][1] == 200 and answers[1][1] == 200
    with pytest.raises(ValueError):
        json.loads(answers[0][3])
    assert json.loads(answers[1][3])["id"] == mid


def test_stall_does_not_block_other_clients(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "messages.list", "mode": "stall", "seconds": 2.5}, expect=201)
    done = {}

    def stalled():
        t0 = time.monotonic()
        done["status"] = requests.get(server.base + "/gmail/v1/users/me/messages",
                                      headers={"Authorization": "Bearer " + token}, timeout=30).status_code
        done["took"] = time.monotonic() - t0

    thread = threading.Thread(target=stalled)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.ctl("GET", "faults")["faults"] == [] and time.monotonic() < deadline:
        time.sleep(0.01)          # wait until the stalled request has taken the fault
    t0 = time.monotonic()
    assert requests.get(server.base + "/gmail/v1/users/me/profile",
                        headers={"Authorization": "Bearer " + token}, timeout=5).status_code == 200
    assert time.monotonic() - t0 < 1.0 and "took" not in done
    thread.join(10)
    assert done["status"] == 200 and done["took"] >= 2.4


def test_latency_fault_and_stats(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "getProfile", "mode": "latency", "seconds": 0.3}, expect=201)
    t0 = time.monotonic()
    assert server.get("profile", token).status_code == 200
    assert time.monotonic() - t0 >= 0.29
    ids = [m["id"] for m in server.get("messages", token, maxResults=3).json()["messages"]]
    server.batch(token, [(i, "/gmail/v1/users/me/messages/" + i, "") for i in ids])
    stats = server.ctl("GET", "stats")
    assert stats["requests"]["getProfile"] == 1 and stats["requests"]["messages.list"] == 1
    assert stats["requests"]["messages.get"] == 3 and stats["requests"]["batch"] == 1
    assert stats["quota_units"] == 1 + 5 + 15
    assert stats["per_mailbox"][mail]["quota_units"] == 21


def test_control_api_validation(server):
    assert server.http.post(server.base + "/_control/mailboxes", json={"messages": 3}).status_code == 400
    assert server.http.post(server.base + "/_control/faults", json={"mode": "explode"}).status_code == 400
    assert server.http.post(server.base + "/_control/config", json={"max_batch": 0}).status_code == 400
    assert server.http.get(server.base + "/_control/mailboxes/nobody@example.com").status_code == 404
    server.mailbox("gone@example.com", messages=5)
    assert server.http.delete(server.base + "/_control/mailboxes/gone@example.com").status_code == 200
    assert server.http.get(server.base + "/_control/mailboxes/gone@example.com").status_code == 404


def test_sigterm_exits_cleanly_and_removes_pidfile(tmp_path):
    pidfile = str(tmp_path / "fake.pid")
    proc, ready = start_server(pidfile=pidfile)
    assert int(open(pidfile).read()) == proc.pid
    # a keep-alive client connected while we stop the server must not keep it alive
    sock = socket.create_connection(("127.0.0.1", ready["port"]))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    sock.close()
    assert not os.path.exists(pidfile)


def test_client_secret_comes_from_a_file_never_the_command_line(tmp_path):
    proc, ready = start_server()
    try:
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            argv = f.read().split(b"\0")
        assert CLIENT_SECRET.encode() not in b" ".join(argv)
        assert b"--client-secret-file" in argv
        # (test_token_endpoint checks the secret read from the file, its trailing newline dropped)
    finally:
        proc.terminate()
        proc.wait(10)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (str(tmp_path / "missing"), str(empty)):
        run = subprocess.run(["/usr/bin/python3", SERVER, "--port", "0", "--client-id", CLIENT_ID,
                              "--client-secret-file", path], capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 2 and "--client-secret-file" in run.stderr, run.stderr
    run = subprocess.run(["/usr/bin/python3", SERVER, "--port", "0", "--client-id", CLIENT_ID,
                          "--client-secret-file", SECRET_FILE, "--client-secret", CLIENT_SECRET],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "unrecognized arguments: --client-secret" in run.stderr, \
        "--client-secret is gone: a secret has no place in argv"


def test_stall_body_sends_headers_then_waits(server, box):
    mail, info, token = box
    server.ctl("POST", "faults", {"method": "getProfile", "mode": "stall_body", "seconds": 0.6}, expect=201)
    host, port = server.base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    t0 = time.monotonic()
    conn.request("GET", "/gmail/v1/users/me/profile", headers={"Authorization": "Bearer " + token})
    resp = conn.getresponse()                 # headers arrive at once
    headers_at = time.monotonic() - t0
    body = resp.read()
    assert headers_at < 0.5 <= time.monotonic() - t0
    assert json.loads(body)["emailAddress"] == mail
    conn.close()


def test_labels_list(server, box):
    mail, info, token = box
    labels = {l["id"]: l for l in server.get("labels", token).json()["labels"]}
    assert labels["INBOX"]["type"] == "system" and labels["Label_4"]["type"] == "user"
    assert labels["Label_4"]["name"] == "家庭"


def test_labels_created_renamed_recoloured_and_deleted_like_gmail(server, box):
    mail, info, token = box
    color = {"textColor": "#ffffff", "backgroundColor": "#16a765"}
    lid = server.ctl("POST", "mailboxes/%s/label-create" % mail, {"name": "Invoices", "color": color},
                     expect=200)["id"]
    assert server.ctl("POST", "mailboxes/%s/label-create" % mail, {"name": "invoices"})["error"]
    assert server.ctl("POST", "mailboxes/%s/label-create" % mail, {"name": "Inbox"})["error"]
    labels = {l["id"]: l for l in server.get("labels", token).json()["labels"]}
    assert labels[lid]["name"] == "Invoices" and labels[lid]["color"] == color
    assert "color" not in labels["INBOX"]
    ids = all_ids(server, token)[0][:3]
    server.ctl("POST", "mailboxes/%s/labels" % mail, {"ids": ids, "add": [lid]}, expect=200)
    server.ctl("POST", "mailboxes/%s/label-update" % mail,
               {"id": lid, "name": "Rechnungen", "color": {}}, expect=200)
    labels = {l["id"]: l for l in server.get("labels", token).json()["labels"]}
    assert labels[lid]["name"] == "Rechnungen" and "color" not in labels[lid]
    start = server.get("profile", token).json()["historyId"]
    gone = server.ctl("POST", "mailboxes/%s/label-delete" % mail, {"id": lid}, expect=200)
    assert sorted(gone["removed_from"]) == sorted(ids)
    assert lid not in {l["id"] for l in server.get("labels", token).json()["labels"]}
    # Gmail takes a deleted label off its messages: the history says so, message by message
    records, _ = history_pages(server, token, start)
    removed = [r["labelsRemoved"][0] for r in records if "labelsRemoved" in r]
    assert sorted(x["message"]["id"] for x in removed) == sorted(ids)
    assert all(lid in x["labelIds"] for x in removed)
    for mid in ids:
        assert lid not in server.get("messages/" + mid, token, format="minimal").json().get("labelIds", [])
    server.ctl("POST", "mailboxes/%s/label-delete" % mail, {"id": lid}, expect=404)


# --- real mail: the import control API ----------------------------------------------------

# CRLF headers, an 8-bit ISO-8859-1 body with a bare LF inside, an 8-bit header, a folded
# encoded-word subject, two Received headers, a nested multipart/alternative and an RFC 2231
# attachment: every byte must come back as it was given.
EIGHT_BIT = (
    b"Received: from a.example (a.example [192.0.2.1])\r\n        by b.example; Tue, 5 Mar 2024 09:59:00 +0100\r\n"
    b"Received: from c.example by a.example; Tue, 5 Mar 2024 09:58:00 +0100\r\n"
    b"From: =?UTF-8?B?Sm9zw6kgTcO8bGxlcg==?= <jose@example.de>\r\n"
    b"To: \"Doe, John\" <john@example.com>\r\n"
    b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus?=\r\n =?UTF-8?B?IE3DvG5jaGVu?=\r\n"
    b"X-Raw-8bit: caf\xc3\xa9 \xff\r\n"
    b"Message-ID: <root-1@example.de>\r\n"
    b"Date: Tue, 05 Mar 2024 10:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xfc\xdfe & <tsch\xfc\xdf>\nbare LF line\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=UTF-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"<p>Gr=C3=BC=C3=9Fe</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf; name=\"r=?UTF-8?Q?=C3=A9?=sum=?UTF-8?Q?=C3=A9?=.pdf\"\r\n"
    b"Content-Disposition: attachment;\r\n filename*0*=UTF-8''r%C3%A9;\r\n filename*1*=sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQKJcfsj6IK\r\n"
    b"--outer--\r\n")


def import_eml(server, mail, raw, expect=201, **params):
    resp = server.http.post(server.base + "/_control/mailboxes/%s/import" % mail, data=raw, params=params,
                            headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == expect, resp.text
    return resp.json()


def simple_eml(msgid, subject, body=b"Hello.\r\n", extra=b""):
    return (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: " + subject.encode() + b"\r\n"
            b"Message-ID: " + msgid.encode() + b"\r\nDate: Wed, 06 Mar 2024 12:00:00 +0000\r\n" + extra +
            b"\r\n" + body)


def test_import_is_served_byte_exact_as_raw_with_the_raw_size(server, box):
    mail, info, token = box
    got = import_eml(server, mail, EIGHT_BIT)
    assert set(got) == {"id", "threadId", "historyId"} and got["threadId"] == got["id"]
    assert len(got["id"]) == 16 and int(got["id"], 16) >> 20 == 1709629200000   # from the Date header
    doc = server.get("messages/" + got["id"], token, format="raw").json()
    assert "payload" not in doc
    assert doc["sizeEstimate"] == len(EIGHT_BIT)
    assert doc["internalDate"] == "1709629200000" and doc["labelIds"] == ["INBOX"]
    assert doc["historyId"] == got["historyId"]
    # base64url with padding, as Gmail's raw (its clients decode with urlsafe_b64decode as is)
    assert "+" not in doc["raw"] and "/" not in doc["raw"] and len(doc["raw"]) % 4 == 0
    assert doc["raw"] == base64.urlsafe_b64encode(EIGHT_BIT).decode()
    assert base64.urlsafe_b64decode(doc["raw"]) == EIGHT_BIT
    assert doc["snippet"] == "Grüße &amp; &lt;tschüß&gt; bare LF line"
    control = server.http.get(server.base + "/_control/mailboxes/%s/raw/%s" % (mail, got["id"]))
    assert control.status_code == 200 and control.content == EIGHT_BIT
    # bare LF throughout, no trailing newline, no MIME at all
    bare = b"From: x@example.com\nSubject: bare\n\nline one\nline two \xe9"
    doc = server.get("messages/" + import_eml(server, mail, bare)["id"], token, format="raw").json()
    assert base64.urlsafe_b64decode(doc["raw"]) == bare and doc["sizeEstimate"] == len(bare)


def test_import_labels_date_list_and_history(server, box):
    mail, info, token = box
    start = server.get("profile", token).json()["historyId"]
    older = import_eml(server, mail, simple_eml("<o@x>", "older"), labelIds="STARRED,Label_2",
                       internalDate="1500000000000")
    newer = import_eml(server, mail, simple_eml("<n@x>", "no date").replace(b"Date:", b"X-Date:"),
                       labelIds="INBOX,UNREAD")
    assert int(newer["id"], 16) >> 20 > 1700000000000          # no Date header: now
    first = server.get("messages", token, maxResults=1).json()["messages"][0]
    assert first == {"id": newer["id"], "threadId": newer["threadId"]}
    ids, _ = all_ids(server, token)
    assert ids[-1] == older["id"] and len(ids) == 62
    assert older["id"] in all_ids(server, token, labelIds="STARRED")[0]
    assert older["id"] not in all_ids(server, token, labelIds="INBOX")[0]
    assert newer["id"] in all_ids(server, token, labelIds="UNREAD")[0]
    minimal = server.get("messages/" + older["id"], token, format="minimal").json()
    assert minimal["labelIds"] == ["STARRED", "Label_2"] and minimal["internalDate"] == "1500000000000"
    records, _ = history_pages(server, token, start)
    assert [r["messagesAdded"][0]["message"] for r in records] == [
        {"id": older["id"], "threadId": older["threadId"], "labelIds": ["STARRED", "Label_2"]},
        {"id": newer["id"], "threadId": newer["threadId"], "labelIds": ["INBOX", "UNREAD"]}]
    assert records[-1]["id"] == newer["historyId"] == server.get("profile", token).json()["historyId"]
    assert server.get("profile", token).json()["messagesTotal"] == 62


def test_import_metadata_shows_the_real_headers_decoded(server, box):
    mail, info, token = box
    mid = import_eml(server, mail, EIGHT_BIT)["id"]
    meta = server.get("messages/" + mid, token, format="metadata").json()
    headers = meta["payload"]["headers"]
    assert meta["payload"]["mimeType"] == "multipart/mixed"
    assert [h["name"] for h in headers] == ["Received", "Received", "From", "To", "Subject", "X-Raw-8bit",
                                            "Message-ID", "Date", "MIME-Version", "Content-Type"]
    values = {h["name"]: h["value"] for h in headers}
    assert values["Subject"] == "Grüße aus Münchenn"[:-1]
    assert values["From"] == "José Müller <jose@example.de>"
    assert values["To"] == '"Doe, John" <john@example.com>'
    assert values["X-Raw-8bit"] == "café \ufffd"
    assert headers[0]["value"] == ("from a.example (a.example [192.0.2.1])        by b.example; "
                                   "Tue, 5 Mar 2024 09:59:00 +0100")
    picked = server.get("messages/" + mid, token, format="metadata",
                        metadataHeaders=["received", "Subject", "X-None"]).json()["payload"]["headers"]
    assert [h["name"] for h in picked] == ["Received", "Received", "Subject"]
    # the JSON is Google's: '<' escaped
    text = server.get("messages/" + mid, token, format="metadata", metadataHeaders="Message-ID").text
    assert "\\u003croot-1@example.de\\u003e" in text


def test_import_full_format_is_the_mime_tree_like_gmail(server, box):
    mail, info, token = box
    mid = import_eml(server, mail, EIGHT_BIT)["id"]
    full = server.get("messages/" + mid, token, format="full").json()
    root = full["payload"]
    assert (root["partId"], root["mimeType"], root["filename"], root["body"]) == ("", "multipart/mixed", "", {"size": 0})
    assert root["headers"] == server.get("messages/" + mid, token, format="metadata").json()["payload"]["headers"]
    alt, att = root["parts"]
    assert (alt["partId"], alt["mimeType"]) == ("0", "multipart/alternative")
    plain, html = alt["parts"]
    assert (plain["partId"], plain["mimeType"], html["partId"], html["mimeType"]) == \
        ("0.0", "text/plain", "0.1", "text/html")
    assert base64.urlsafe_b64decode(plain["body"]["data"]) == b"Gr\xfc\xdfe & <tsch\xfc\xdf>\nbare LF line"
    assert plain["body"]["size"] == len(b"Gr\xfc\xdfe & <tsch\xfc\xdf>\nbare LF line")
    assert base64.urlsafe_b64decode(html["body"]["data"]) == "<p>Grüße</p>".encode()   # the CRLF before a boundary is the boundary's
    assert plain["headers"] == [{"name": "Content-Type", "value": "text/plain; charset=ISO-8859-1"},
                                {"name": "Content-Transfer-Encoding", "value": "8bit"}]
    assert (att["partId"], att["mimeType"], att["filename"]) == ("1", "application/pdf", "résumé.pdf")
    assert set(att["body"]) == {"attachmentId", "size"} and att["body"]["size"] == 15
    got = server.get("messages/%s/attachments/%s" % (mid, att["body"]["attachmentId"]), token).json()
    assert base64.urlsafe_b64decode(got["data"]) == b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n" and got["size"] == 15
    # a single-part message is its own payload, its bytes inline
    one = import_eml(server, mail, simple_eml("<s@x>", "single", b"just text\r\n"))["id"]
    payload = server.get("messages/" + one, token).json()["payload"]
    assert payload["partId"] == "" and payload["mimeType"] == "text/plain" and "parts" not in payload
    assert base64.urlsafe_b64decode(payload["body"]["data"]) == b"just text\r\n"


def test_import_threads_by_in_reply_to_and_references(server, box):
    mail, info, token = box
    root = import_eml(server, mail, simple_eml("<t1@x>", "plan"))
    reply = import_eml(server, mail, simple_eml("<t2@x>", "Re: plan", extra=b"In-Reply-To: <t1@x>\r\n"))
    deep = import_eml(server, mail, simple_eml("<t3@x>", "Re: plan",
                                               extra=b"References: <t1@x>\r\n <t2@x>\r\n"))
    stranger = import_eml(server, mail, simple_eml("<t4@x>", "other", extra=b"In-Reply-To: <unknown@x>\r\n"))
    assert reply["threadId"] == deep["threadId"] == root["id"] == root["threadId"]
    assert stranger["threadId"] == stranger["id"] != root["id"]
    assert server.get("profile", token).json()["threadsTotal"] == \
        server.ctl("GET", "mailboxes/" + mail)["threads_total"]
    assert server.get("messages/" + deep["id"], token, format="minimal").json()["threadId"] == root["id"]


def test_import_mbox_unquotes_from_lines_and_keeps_each_message_exact(server, box):
    mail, info, token = box
    one = simple_eml("<m1@x>", "first", b"From the start\r\n>From here, quoted\r\nend\r\n")
    two = b"From: b@example.com\nSubject: second\n\nbody line\nFrom nobody, a body line\n>From mboxrd\n"
    three = EIGHT_BIT
    # mboxrd: ">From " in the body gains one more '>', "From " lines get their '>'
    mbox = (b"From a@example.com Wed Mar  6 12:00:00 2024\n"
            b"From: a@example.com\r\nTo: b@example.com\r\nSubject: first\r\nMessage-ID: <m1@x>\r\n"
            b"Date: Wed, 06 Mar 2024 12:00:00 +0000\r\n\r\n>From the start\r\n>>From here, quoted\r\nend\r\n"
            b"\n"
            b"From b@example.com Wed Mar  6 12:00:01 2024\n"
            b"From: b@example.com\nSubject: second\n\nbody line\n>From nobody, a body line\n>>From mboxrd\n"
            b"\n"
            b"From MAILER-DAEMON Thu Mar  7 00:00:00 2024\n" + three + b"\n")
    resp = server.http.post(server.base + "/_control/mailboxes/%s/import-mbox" % mail, data=mbox,
                            params={"labelIds": "INBOX"}, headers={"Content-Type": "application/mbox"})
    assert resp.status_code == 201, resp.text
    ids = resp.json()["ids"]
    assert list(resp.json()) == ["ids"] and len(ids) == 3 and len(set(ids)) == 3
    for mid, want in zip(ids, (one, two, three)):
        doc = server.get("messages/" + mid, token, format="raw").json()
        assert base64.urlsafe_b64decode(doc["raw"]) == want
        assert doc["sizeEstimate"] == len(want)
    assert server.get("profile", token).json()["messagesTotal"] == 63


def test_generated_raw_is_the_control_raw_and_its_size_is_close(server, box):
    mail, info, token = box
    for mid in all_ids(server, token)[0][:20]:
        doc = server.get("messages/" + mid, token, format="raw").json()
        raw = base64.urlsafe_b64decode(doc["raw"])
        assert server.http.get(server.base + "/_control/mailboxes/%s/raw/%s" % (mail, mid)).content == raw
        assert abs(len(raw) - doc["sizeEstimate"]) <= 0.06 * len(raw)
        assert "payload" not in doc and len(doc["raw"]) % 4 == 0


def test_import_refusals(server, box):
    mail, info, token = box
    base = server.base + "/_control/mailboxes/"
    assert server.http.post(base + "nobody@example.com/import", data=EIGHT_BIT).status_code == 404
    assert server.http.post(base + mail + "/import", data=b"").status_code == 400
    assert server.http.post(base + mail + "/import", data=b"\r\n \r\n").status_code == 400
    assert server.http.post(base + mail + "/import?internalDate=soon", data=EIGHT_BIT).status_code == 400
    assert server.http.post(base + mail + "/import?labelIds=NOPE", data=EIGHT_BIT).status_code == 400
    assert server.http.post(base + mail + "/import?colour=red", data=EIGHT_BIT).status_code == 400
    assert server.http.get(base + mail + "/import").status_code == 405
    assert server.http.post(base + mail + "/import-mbox", data=b"not an mbox\n").status_code == 400
    assert server.http.post(base + mail + "/import-mbox", data=b"").status_code == 400
    assert server.get("profile", token).json()["messagesTotal"] == 60


def test_import_large_message_round_trips(server, box):
    mail, info, token = box
    payload = os.urandom(3 * 1024 * 1024)
    raw = (b"From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
           base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--B--\r\n")
    mid = import_eml(server, mail, raw)["id"]
    doc = server.get("messages/" + mid, token, format="raw").json()
    assert base64.urlsafe_b64decode(doc["raw"]) == raw and doc["sizeEstimate"] == len(raw)
    att = server.get("messages/" + mid, token, format="full").json()["payload"]["parts"][1]
    assert att["filename"] == "" and att["body"]["size"] == len(payload)
    got = server.get("messages/%s/attachments/%s" % (mid, att["body"]["attachmentId"]), token).json()
    assert base64.urlsafe_b64decode(got["data"]) == payload


# --- push notifications (issue 26) ----------------------------------------------------------

def test_push_jwks_tokens_watch_stop_and_the_simulator(server, box):
    import base64
    import http.server
    import json
    import threading
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    mail, info, token = box
    server.ctl("POST", "push/reset", expect=200)
    certs = server.http.get(server.base + "/oauth2/v3/certs")
    assert certs.status_code == 200 and certs.headers["Cache-Control"].startswith("public, max-age=")
    keys = certs.json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["kid"] for k in keys)

    def b64d(s):
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    def verify(tok, jwk):
        head, claims, sig = tok.split(".")
        pub = rsa.RSAPublicNumbers(int.from_bytes(b64d(jwk["e"]), "big"),
                                   int.from_bytes(b64d(jwk["n"]), "big")).public_key()
        pub.verify(b64d(sig), (head + "." + claims).encode(), padding.PKCS1v15(), hashes.SHA256())
        return json.loads(b64d(head)), json.loads(b64d(claims))

    server.ctl("POST", "push/config", {"audience": "aud-1", "service_account": "sa@p.iam.gserviceaccount.com"},
               expect=200)
    tok = server.ctl("POST", "push/token", {}, expect=200)["token"]
    hdr, claims = verify(tok, keys[-1])
    assert hdr["alg"] == "RS256" and hdr["kid"] == keys[-1]["kid"]
    assert claims["iss"] == "https://accounts.google.com" and claims["aud"] == "aud-1"
    assert claims["email"] == "sa@p.iam.gserviceaccount.com" and claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 3600
    # rotation: the new key signs, the old one may stay published
    new_kid = server.ctl("POST", "push/rotate", {"keep_old": True}, expect=200)["kid"]
    kids = [k["kid"] for k in server.http.get(server.base + "/oauth2/v3/certs").json()["keys"]]
    assert kids[-1] == new_kid and keys[-1]["kid"] in kids

    # users.watch / users.stop: recorded; a bad topic is 400; GET is not a method
    url = server.base + "/gmail/v1/users/me/"
    auth = {"Authorization": "Bearer " + token}
    bad = server.http.post(url + "watch", json={"topicName": "gmail"}, headers=auth)
    assert bad.status_code == 400
    w = server.http.post(url + "watch", json={"topicName": "projects/p/topics/t", "labelIds": ["INBOX"]},
                         headers=auth)
    assert w.status_code == 200 and int(w.json()["expiration"]) > time.time() * 1000
    assert w.json()["historyId"] == server.ctl("GET", "mailboxes/" + mail)["history_id"]
    assert server.http.get(url + "watch", headers=auth).status_code == 404
    state = server.ctl("GET", "push/state", expect=200)
    assert state["watches"][mail]["topic"] == "projects/p/topics/t"

    # the simulator: a change of a watched mailbox is POSTed, signed, to the endpoint; a 503 is
    # retried; a duplicate has the same messageId
    got = []

    class Endpoint(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.headers["Authorization"], body))
            self.send_response(503 if len(got) == 1 else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass
    ep = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=ep.serve_forever, daemon=True).start()
    try:
        server.ctl("POST", "push/config", {"endpoint": "http://127.0.0.1:%d/push" % ep.server_address[1],
                                          "enabled": True, "require_watch": True, "duplicate": 1.0},
                   expect=200)
        added = server.ctl("POST", "mailboxes/%s/messages" % mail, {"count": 1}, expect=200)
        deadline = time.time() + 20
        while len(got) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert len(got) >= 3, got          # one 503, its retry, the duplicate
        auth_header, body = got[-1]
        data = json.loads(base64.b64decode(body["message"]["data"]))
        assert data == {"emailAddress": mail, "historyId": int(added["history_id"])}
        assert len({b["message"]["messageId"] for _, b in got}) == 1
        verify(auth_header[len("Bearer "):], server.http.get(server.base + "/oauth2/v3/certs").json()["keys"][-1])
        deliveries = server.ctl("GET", "push/state", expect=200)["deliveries"]
        assert [d["status"] for d in deliveries][:1] == [503]
        # stop: no more notifications for the mailbox
        assert server.http.post(url + "stop", headers=auth).status_code == 204
        n = len(got)
        server.ctl("POST", "mailboxes/%s/messages" % mail, {"count": 1}, expect=200)
        assert server.ctl("GET", "push/state", expect=200)["published"] == 1 and len(got) == n
    finally:
        server.ctl("POST", "push/config", {"enabled": False, "duplicate": 0.0}, expect=200)
        ep.shutdown()
