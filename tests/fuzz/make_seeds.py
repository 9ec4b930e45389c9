#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<harness>/ (committed; run again to refresh).

Gmail, batch and OAuth seeds are real answers of the fake Gmail API (tests/fake_gmail), started
here on a free loopback port with a small mailbox; the other seeds are the shapes the module and
the worker write or receive (hand-off messages, gs1 lines, Origin and Accept headers, worker
configurations, key files and sealed tokens). Files are named by content hash, so a refresh
adds rather than renames.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
EMAIL = "seed@example.com"


def put(harness, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def status_byte(table, status):
    return bytes([table.index(status) if status in table else 0])


GMAIL_STATUSES = [200, 200, 200, 200, 400, 401, 403, 404, 408, 429, 500, 503]   # fuzz_gmail.c
OAUTH_STATUSES = [200, 200, 200, 0, 400, 401, 403, 429, 500, 503]               # fuzz_oauth.c


def fake_gmail_seeds():
    tmp = tempfile.mkdtemp()
    secret = os.path.join(tmp, "client_secret")
    with open(secret, "w") as f:
        f.write("seed-secret\n")
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "fake_gmail", "fake_gmail.py"),
                             "--port", "0", "--port-file", port_file, "--client-id", "seed-client",
                             "--client-secret-file", secret, "--quota-units-per-sec", "100000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        base = "http://127.0.0.1:%s" % open(port_file).read().strip()
        s, _, b = http("POST", base + "/_control/mailboxes", json.dumps(
            {"email": EMAIL, "messages": 30, "seed": 7}).encode(), {"Content-Type": "application/json"})
        refresh = json.loads(b)["refresh_token"] if b"refresh_token" in b else None
        # the token endpoint: a refresh, a bad grant, a bad client
        form = {"grant_type": "refresh_token", "client_id": "seed-client", "client_secret": "seed-secret",
                "refresh_token": refresh or "x"}
        for f in (form, dict(form, refresh_token="revoked"), dict(form, client_secret="wrong")):
            s, ct, b = http("POST", base + "/token", urllib.parse.urlencode(f).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})
            # the shape, not the fake's random tokens
            b = re.sub(rb'"(access_token|refresh_token|id_token)": "[^"]*"', rb'"\1": "seed-\1"', b)
            put("oauth", status_byte(OAUTH_STATUSES, s) + ct.encode() + b"\n" + b)
        s, _, b = http("POST", base + "/_control/mailboxes/%s/token" % EMAIL, b"{}",
                       {"Content-Type": "application/json"})
        auth = {"Authorization": "Bearer " + json.loads(b)["access_token"]}
        api = base + "/gmail/v1/users/me"
        s, ct, profile = http("GET", api + "/profile", headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + profile)
        put("oauth", status_byte(OAUTH_STATUSES, s) + ct.encode() + b"\n" + profile)
        http("POST", base + "/_control/mailboxes/%s/label-create" % EMAIL,
             json.dumps({"name": "Rechnungen", "color": {"textColor": "#ffffff",
                                                        "backgroundColor": "#16a765"}}).encode(),
             {"Content-Type": "application/json"})
        s, _, b = http("GET", api + "/labels", headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        s, _, b = http("GET", api + "/messages?maxResults=5", headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        ids = [m["id"] for m in json.loads(b)["messages"]]
        s, _, b = http("GET", api + "/messages?maxResults=5&pageToken=" + json.loads(b).get("nextPageToken", ""),
                       headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        q = "format=metadata&metadataHeaders=Subject&metadataHeaders=From&metadataHeaders=To"
        for mid in ids[:3]:
            s, _, b = http("GET", api + "/messages/%s?%s" % (mid, q), headers=auth)
            put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        s, _, b = http("GET", api + "/messages/ffffffffffffffff?" + q, headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        start = json.loads(profile)["historyId"]
        http("POST", base + "/_control/mailboxes/%s/messages" % EMAIL, b'{"count": 2}',
             {"Content-Type": "application/json"})
        http("POST", base + "/_control/mailboxes/%s/delete" % EMAIL, json.dumps({"ids": ids[:1]}).encode(),
             {"Content-Type": "application/json"})
        http("POST", base + "/_control/mailboxes/%s/labels" % EMAIL,
             json.dumps({"ids": ids[1:2], "add": ["STARRED"], "remove": ["UNREAD"]}).encode(),
             {"Content-Type": "application/json"})
        s, _, b = http("GET", api + "/history?startHistoryId=%s" % start, headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        s, _, b = http("GET", api + "/history?startHistoryId=1", headers=auth)
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        s, _, b = http("GET", api + "/profile", headers={"Authorization": "Bearer nope"})
        put("gmail", status_byte(GMAIL_STATUSES, s) + b)
        # a batch of gets, one of them missing
        boundary = "batch_seed"
        parts = "".join("--%s\r\nContent-Type: application/http\r\nContent-ID: <gs-%d>\r\n\r\n"
                        "GET /gmail/v1/users/me/messages/%s?%s\r\n\r\n" % (boundary, i, mid, q)
                        for i, mid in enumerate(ids[1:4] + ["ffffffffffffffff"]))
        s, ct, b = http("POST", base + "/batch/gmail/v1", (parts + "--%s--\r\n" % boundary).encode(),
                        dict(auth, **{"Content-Type": "multipart/mixed; boundary=" + boundary}))
        put("batch", bytes([4]) + ct.encode() + b"\n" + b)
        put("batch", bytes([2]) + ct.encode() + b"\n" + b)
    finally:
        proc.terminate()
        proc.wait(10)


def shaped_seeds():
    task = "6f1c0d2e-0000-4000-8000-000000000001"
    # users.labels.list as Gmail documents it (the fake's own answer is a gmail seed too)
    put("gmail", bytes([0]) + json.dumps({"labels": [
        {"id": "INBOX", "name": "INBOX", "messageListVisibility": "hide",
         "labelListVisibility": "labelShow", "type": "system"},
        {"id": "Label_12", "name": "家庭/账单", "type": "user", "messageListVisibility": "show",
         "labelListVisibility": "labelShowIfUnread",
         "color": {"textColor": "#000000", "backgroundColor": "#fad165"}}]},
        ensure_ascii=False).encode())
    # start request bodies and JSON edge cases
    for body in ('{}', '{"force_full":true}', '{"force_full":false}', '{"force_full":1}',
                 '{"a":[1,2.5e3,-0.5,"\\u00e9\\ud83d\\ude00",null,true],"b":{"c":{}}}', '[]', 'null',
                 '{"force_full":true,"force_full":false}', '"\\u0000"', '{"x":"\xc3\xa9"}'):
        put("json", body)
    put("handoff", "gs1 start task=%s user=user-1\n" % task)
    put("handoff", "gs1 start user=u task=%s future=1\n" % task)
    for line in ("gs1 state task=%s state=RUNNING pid=4242" % task,
                 "gs1 progress task=%s mode=full processed=1234 total=5000 pct=24.68" % task,
                 "gs1 state task=%s state=SUCCEEDED processed=5000 total=5000 pct=100.00" % task,
                 "gs1 state task=%s state=FAILED code=quota_exhausted" % task,
                 "gs1 state task=%s state=LOST" % task,
                 "gs1 retrying task=%s reason=rate_limited wait_ms=1500 attempt=3" % task,
                 "gs1 retrying task=%s reason=none" % task,
                 "gs1 calls task=%s 2xx=10 4xx=1 429=2 5xx=3 error=0" % task):
        put("board", line + "\n")
    for origin, other in (("http://127.0.0.1:18080", "127.0.0.1"), ("https://Example.COM", "*.example.com"),
                          ("https://[::1]:8443", "[::1]"), ("null", "example.com"),
                          ("http://xn--bcher-kva.example:80", "*.example")):
        put("origin", origin + "\n" + other)
    for query, snippet in (("report", "The Report and reports"), ("\"made schedule\" -all", "made made schedule all"),
                           ("会议纪要 OR 会", "请看会议纪要和会议"), ("from:bob label:\"My label\" has:attachment", "x"),
                           ("(a OR -b) before:2024/02/29 larger:10K older_than:7d in:anywhere", "a b"),
                           ("'; DROP TABLE x; --", "DROP"), ("foo:bar", "")):
        put("query", query + "\n" + snippet)
    for accept, cookie in (("application/json", "0123456789abcdefABCDEF_-0123456789abcdefghi"),
                           ("text/event-stream", "session-token"),
                           ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "a;b"),
                           ("application/json;q=0, text/*;q=0.5", "\"quoted\""), ("*/*", "")):
        put("headers", accept + "\n" + cookie)
    for name, mime_type in (("report.pdf", "application/pdf"), ("会议纪要 été.txt", "text/plain"),
                            ('evil"\r\nX: 1\\..\\../x.html', "text/html"), ("", "image/SVG+xml"),
                            ("😀" * 100, "IMAGE/PNG")):
        put("download", name + "\n" + mime_type)
    put("download", b"bad \xff\xfe\xc3(\xed\xa0\x80.bin\napplication/octet-stream")
    put("worker_conf", "db = postgresql://gmailsync:pw@127.0.0.1:5432/gmailsync\n"
                       "api_base = http://127.0.0.1:18081\ntoken_url = http://127.0.0.1:18081/token\n"
                       "client_id = cid\nclient_secret = secret\n"
                       "token_key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                       "mode = smart\nbatch_size = 50\nquota_units = 15000\nheartbeat = 5s\n"
                       "progress_interval = 500ms\nstall_limit = 60s\nretry_budget = 10m\nhost = vm\n")
    put("worker_conf", "# comment\n\nretries = 4\nbackoff_base = 20ms\nbackoff_max = 200ms\ntimeout = 10s\n"
                       "log_level = debug\nunknown = 1\n")
    # Gmail's per-user lockout: its end only in the message (gs_gmail_lockout_until)
    for status, reason in ((429, "rateLimitExceeded"), (403, "userRateLimitExceeded")):
        msg = "User-rate limit exceeded.  Retry after 2026-12-06T20:15:00.123Z"
        put("gmail", status_byte(GMAIL_STATUSES, status) + json.dumps(
            {"error": {"code": status, "message": msg, "errors": [
                {"message": msg, "domain": "usageLimits", "reason": reason}]}}, indent=2).encode())
    put("tokenbox", "refresh_token:user-1\n"
                    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                    "# old key\n0101010101010101010101010101010101010101010101010101010101010101\n")
    put("tokenbox", "ctx\ngs1:deadbeef:c2VhbGVkIGJ1dCBub3QgcmVhbGx5")


def mime_seeds():
    """fuzz_mime: every message of the MIME test corpus (tests/data/mime), and hostile shapes."""
    d = os.path.join(ROOT, "tests", "data", "mime")
    for name in sorted(os.listdir(d)):
        if name.endswith(".eml"):
            with open(os.path.join(d, name), "rb") as f:
                put("mime", f.read())
    deep = "Subject: deep\r\n" + "".join("Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                                         for i in range(60)) + "Content-Type: text/plain\r\n\r\nx\r\n"
    put("mime", deep)
    put("mime", "Content-Type: multipart/mixed; boundary=z\r\n\r\n"
        + "--z\r\nContent-Type: text/plain; charset=gb18030\r\n\r\n\xd6\xd0\r\n" * 50 + "--z--\r\n")
    put("mime", "Content-Type: text/html; charset=iso-2022-jp\r\n\r\n<p>\x1b$B$3$s\x1b(B&amp;<script>x")
    put("mime", b"Subject: =?utf-8?q?bad=ZZ?= =?gb2312?b?!!?=\nFrom: \xff\xfe <@>\n\n\x00\x00")


def content_seeds():
    """fuzz_content: every message of the MIME corpus as raw bytes and as the batch part the
    worker takes it from (format=raw: base64url without padding, as Gmail sends it)."""
    d = os.path.join(ROOT, "tests", "data", "mime")
    for i, name in enumerate(sorted(n for n in os.listdir(d) if n.endswith(".eml"))):
        with open(os.path.join(d, name), "rb") as f:
            raw = f.read()
        put("content", raw)
        put("content", json.dumps({
            "id": "18e4ff40c8862f%02x" % i, "threadId": "18e4ff40c8862f00",
            "labelIds": ["INBOX", "UNREAD"], "snippet": name, "historyId": "4242",
            "internalDate": "1733000000000", "sizeEstimate": len(raw),
            "raw": base64.urlsafe_b64encode(raw).decode().rstrip("=")}))


SEEDERS = {"gmail": fake_gmail_seeds, "shaped": shaped_seeds, "mime": mime_seeds,
           "content": content_seeds}

if __name__ == "__main__":
    # make_seeds.py [gmail|shaped|mime|content ...]: only those (default: all)
    for seeder in sys.argv[1:] or SEEDERS:
        SEEDERS[seeder]()
    for h in sorted(os.listdir(CORPUS)):
        print("%-12s %d seeds" % (h, len(os.listdir(os.path.join(CORPUS, h)))))
