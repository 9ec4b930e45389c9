"""Hostile requests: whatever a client sends under /api/gmail/sync, the answer is an RFC 9457
problem (application/problem+json, no-store, nosniff) and never a 5xx but the documented 503.

Requests go through raw sockets, so that they can be as malformed as a client likes: bad request
lines and headers, bad framing, bodies cut short, TRACE; then strict JSON, the Origin rule and
the Accept rule.
"""
import json
import os
import socket

import pytest
import requests

pytestmark = pytest.mark.usefixtures("paused_daemon")

UUID = "00000000-0000-4000-8000-000000000000"
PROBLEM = "application/problem+json"


class Answer:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1."), raw[:300]
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        if "content-length" in self.headers:
            self.body = self.body[:int(self.headers["content-length"][0])]

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        assert len(values) <= 1, (name, values)
        return values[0] if values else None

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def port(stack):
    return int(stack.base_url.rsplit(":", 1)[1])


def exchange(stack, data, shut_write=False, timeout=15):
    """Sends data as is and reads the answer until httpd closes the connection."""
    with socket.create_connection(("127.0.0.1", port(stack)), timeout=timeout) as s:
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # httpd may refuse before reading everything; its answer is still there
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return Answer(out)


def assert_problem(answer, status):
    assert answer.status == status, (answer.status, answer.raw[:600])
    assert answer.header("Content-Type") == PROBLEM, answer.raw[:600]
    assert answer.header("X-Content-Type-Options") == "nosniff", answer.raw[:600]
    assert answer.header("Cache-Control") == "no-store", answer.raw[:600]
    problem = answer.json()
    assert problem["status"] == status, problem
    assert problem["type"].startswith("urn:gmailsync:problem:"), problem
    assert problem["title"] and isinstance(problem["title"], str), problem
    assert b"<html" not in answer.body.lower() and b"additionally" not in answer.body.lower()
    return problem


@pytest.fixture(scope="module")
def session(stack):
    return stack.add_user(messages=0)["session"]


H = b"Host: 127.0.0.1\r\nConnection: close\r\n"
CANCEL = b"POST /api/gmail/sync/cancel/" + UUID.encode() + b" HTTP/1.1\r\n"
SMART = b"POST /api/gmail/sync/smart HTTP/1.1\r\n"
HEALTH = b"GET /api/gmail/sync/health HTTP/1.1\r\n"
COOKIE = b"Cookie: session=@SESSION@\r\n"
JSON_CT = b"Content-Type: application/json\r\n"


# --------------------------------------------------------------------------- strict JSON

MALFORMED_JSON = [
    ("NaN", b'{"x":NaN}'),
    ("Infinity", b'{"x":Infinity}'),
    ("-Infinity", b'{"x":-Infinity}'),
    ("raw control character", b'{"x":"a\x01b"}'),
    ("raw tab", b'{"x":"a\tb"}'),
    ("invalid UTF-8", b'{"x":"\xff\xfe\xc0\xaf"}'),
    ("overlong slash", b'{"x":"\xc0\xaf"}'),
    ("overlong 3 bytes", b'{"x":"\xe0\x80\xaf"}'),
    ("overlong 4 bytes", b'{"x":"\xf0\x80\x80\xaf"}'),
    ("UTF-8 surrogate", b'{"x":"\xed\xa0\x80"}'),
    ("above U+10FFFF", b'{"x":"\xf4\x90\x80\x80"}'),
    ("truncated sequence", b'{"x":"\xe2\x82"}'),
    ("lone high surrogate escape", b'{"x":"\\ud800"}'),
    ("lone low surrogate escape", b'{"x":"\\udc00"}'),
    ("high surrogate then non-low", b'{"x":"\\ud800\\u0041"}'),
    ("reversed surrogates", b'{"x":"\\udc00\\ud800"}'),
    ("duplicate key, valid one last", b'{"force_full":1,"force_full":false}'),
    ("duplicate key, valid one first", b'{"force_full":false,"force_full":1}'),
    ("duplicate key through an escape", b'{"force_full":1,"force_ful\\u006c":false}'),
    ("key cut at U+0000 by json-c", b'{"force_full\\u0000x":1,"force_full":false}'),
    ("duplicate key nested", b'{"force_full":false,"x":{"a":1,"a":2}}'),
    ("leading zero", b'{"x":01}'),
    ("plus sign", b'{"x":+1}'),
    ("bare dot", b'{"x":1.}'),
    ("invalid escape", b'{"x":"\\x41"}'),
    ("byte order mark", b'\xef\xbb\xbf{"force_full":false}'),
    ("vertical tab after", b'{"force_full":false}\x0b'),
]


@pytest.mark.parametrize("case", MALFORMED_JSON, ids=[c[0] for c in MALFORMED_JSON])
def test_malformed_json_is_400(stack, case):
    name, body = case
    u = stack.add_user(messages=0)
    r = requests.post(stack.api + "/smart", data=body, headers={"Content-Type": "application/json"},
                      cookies={"session": u["session"]}, timeout=30)
    assert r.status_code == 400, (name, r.status_code, r.text)
    assert r.headers["Content-Type"] == PROBLEM
    assert r.json()["type"] == "urn:gmailsync:problem:malformed-json", r.json()
    assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id=%s",
                       (u["user_id"],)) == [(0,)]


def test_strict_json_still_takes_valid_json(stack):
    u = stack.add_user(messages=0)
    body = '{"force_full": true, "note": "caf\u00e9 \U0001F600 \\ud83d\\ude00 \\u00e9 \\u0000", ' \
           '"n": [0, -0.5, 1e-3, 12345678901234567890], "o": {"a": null}, "A": 1, "a": 2}'
    r = requests.post(stack.api + "/smart", data=body.encode("utf-8"),
                      headers={"Content-Type": "application/json"},
                      cookies={"session": u["session"]}, timeout=30)
    assert r.status_code == 202, r.text
    assert stack.query("SELECT force_full FROM gmailsync.sync_tasks WHERE task_id=%s",
                       (r.json()["task_id"],)) == [(True,)]


# --------------------------------------------------------------------------- TRACE

@pytest.mark.parametrize("path,allow", [
    ("/smart", "POST"), ("/progress/" + UUID, "GET, HEAD"), ("/status", "GET, HEAD"),
    ("/cancel/" + UUID, "POST"), ("/health", "GET, HEAD"), ("/metrics", "GET, HEAD"),
    ("/oauth/start", "GET, HEAD"), ("/oauth/callback", "GET"), ("/oauth/disconnect", "POST"),
])
def test_trace_is_refused_under_the_prefix_without_echo(stack, path, allow):
    answer = exchange(stack, b"TRACE /api/gmail/sync" + path.encode() + b" HTTP/1.1\r\n" + H
                      + b"Cookie: session=secret-cookie\r\nMax-Forwards: 0\r\n\r\n")
    assert_problem(answer, 405)
    assert answer.header("Allow") == allow
    assert b"secret-cookie" not in answer.raw


def test_trace_is_off_server_wide_in_the_shipped_conf(stack):
    answer = exchange(stack, b"TRACE /elsewhere HTTP/1.1\r\n" + H + b"Cookie: a=secret\r\n\r\n")
    assert answer.status == 405 and b"secret" not in answer.raw


def test_trace_is_refused_even_with_trace_enable_on(stack, tmp_path):
    extra = tmp_path / "trace.conf"
    extra.write_text("TraceEnable on\n")
    try:
        stack.reconfigure(str(extra))
        # elsewhere, httpd now echoes TRACE ...
        echoed = exchange(stack, b"TRACE /elsewhere HTTP/1.1\r\n" + H + b"Cookie: a=b\r\n\r\n")
        assert echoed.status == 200 and echoed.header("Content-Type") == "message/http"
        # ... but not under the prefix
        answer = exchange(stack, b"TRACE /api/gmail/sync/smart HTTP/1.1\r\n" + H
                          + b"Cookie: session=secret-cookie\r\n\r\n")
        assert_problem(answer, 405)
        assert answer.header("Allow") == "POST" and b"secret-cookie" not in answer.raw
    finally:
        stack.reconfigure(None)


# --------------------------------------------------------------------------- httpd's own errors

# (id, request bytes (@SESSION@ becomes a valid session), status, close our side after sending)
HOSTILE = [
    # request line
    ("request line over LimitRequestLine", b"GET /api/gmail/sync/progress/" + b"a" * 10000
     + b" HTTP/1.1\r\n" + H + b"\r\n", 414, False),
    ("query over LimitRequestLine", b"GET /api/gmail/sync/health?" + b"x" * 9000 + b" HTTP/1.1\r\n"
     + H + b"\r\n", 414, False),
    ("two spaces in the request line", b"GET  /api/gmail/sync/health HTTP/1.1\r\n" + H + b"\r\n",
     400, False),
    ("text after the protocol", b"GET /api/gmail/sync/health HTTP/1.1 x\r\n" + H + b"\r\n", 400,
     False),
    ("lower-case protocol", b"GET /api/gmail/sync/health http/1.1\r\n" + H + b"\r\n", 400, False),
    ("bare LF line ends", b"GET /api/gmail/sync/health HTTP/1.1\nHost: 127.0.0.1\n"
     b"Connection: close\n\n", 400, False),
    ("control character in the target", b"GET /api/gmail/sync/he\x01alth HTTP/1.1\r\n" + H
     + b"\r\n", 400, False),
    ("NUL in the request line", b"GET /api/gmail/sync/health\x00 HTTP/1.1\r\n" + H + b"\r\n", 400,
     False),
    ("bad character in the method", b"GE(T /api/gmail/sync/health HTTP/1.1\r\n" + H + b"\r\n", 400,
     False),
    ("tab as separator", b"GET\t/api/gmail/sync/health HTTP/1.1\r\n" + H + b"\r\n", 400, False),
    ("ftp scheme in absolute form", b"GET ftp://127.0.0.1/api/gmail/sync/health HTTP/1.1\r\n" + H
     + b"\r\n", 400, False),
    # path encoding
    ("%2F in the path", b"GET /api/gmail/sync/progress%2F" + UUID.encode() + b" HTTP/1.1\r\n" + H
     + b"\r\n", 404, False),
    ("%2f in a POST path", b"POST /api/gmail/sync/cancel%2f" + UUID.encode() + b" HTTP/1.1\r\n" + H
     + b"Content-Length: 0\r\n\r\n", 404, False),
    ("%00 in the path", b"GET /api/gmail/sync/health%00 HTTP/1.1\r\n" + H + b"\r\n", 404, False),
    ("encoded traversal", b"GET /api/gmail/sync/..%2f..%2fetc/passwd HTTP/1.1\r\n" + H + b"\r\n",
     404, False),
    ("invalid percent escape", b"GET /api/gmail/sync/%zz HTTP/1.1\r\n" + H + b"\r\n", 400, False),
    # header fields
    ("no Host", HEALTH + b"Connection: close\r\n\r\n", 400, False),
    ("two Host fields", HEALTH + b"Host: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400, False),
    ("space in Host", HEALTH + b"Host: a b\r\nConnection: close\r\n\r\n", 400, False),
    ("unclosed IPv6 Host", HEALTH + b"Host: [::1\r\nConnection: close\r\n\r\n", 400, False),
    ("field without a colon", HEALTH + H + b"NoColonHere\r\n\r\n", 400, False),
    ("space in a field name", HEALTH + H + b"Bad Header: x\r\n\r\n", 400, False),
    ("empty field name", HEALTH + H + b": x\r\n\r\n", 400, False),
    ("NUL in a field value", HEALTH + H + b"X-A: a\x00b\r\n\r\n", 400, False),
    ("field over LimitRequestFieldSize", HEALTH + H + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", 400,
     False),
    ("cookie over LimitRequestFieldSize", b"GET /api/gmail/sync/status HTTP/1.1\r\n" + H
     + b"Cookie: session=" + b"a" * 9000 + b"\r\n\r\n", 400, False),
    ("more fields than LimitRequestFields", HEALTH + H
     + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", 400, False),
    ("headers cut short", HEALTH + b"Host: 127.0.0.1\r\nX-A: b", 400, True),
    ("Expect: 200-ok", HEALTH + H + b"Expect: 200-ok\r\n\r\n", 417, False),
    ("unknown expectation on a POST", SMART + H + b"Expect: x-y\r\nContent-Length: 2\r\n\r\n{}",
     417, False),
    # body framing
    ("Content-Length: abc", SMART + H + b"Content-Length: abc\r\n\r\n", 400, False),
    ("Content-Length: -1", SMART + H + b"Content-Length: -1\r\n\r\n", 400, False),
    ("Content-Length: +2", SMART + H + b"Content-Length: +2\r\n\r\n{}", 400, False),
    ("Content-Length: 1, 2", SMART + H + b"Content-Length: 1, 2\r\n\r\nx", 400, False),
    ("two Content-Lengths", SMART + H + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400,
     False),
    ("Content-Length overflow", SMART + H + b"Content-Length: 99999999999999999999999\r\n\r\n{}",
     400, False),
    ("Content-Length over 4 KiB", SMART + H + COOKIE + JSON_CT + b"Content-Length: 5000\r\n\r\n"
     + b" " * 5000, 413, False),
    ("Transfer-Encoding: gzip", SMART + H + b"Transfer-Encoding: gzip\r\n\r\n", 400, False),
    ("Transfer-Encoding: chunked, gzip", SMART + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
     400, False),
    ("Transfer-Encoding: identity", SMART + H + b"Transfer-Encoding: identity\r\n\r\n", 400,
     False),
    ("both Content-Length and chunked", CANCEL + H + COOKIE + b"Content-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 404, False),
    ("bad chunk size on /smart", SMART + H + COOKIE + JSON_CT + b"Transfer-Encoding: chunked\r\n\r\n"
     b"zz\r\n{}\r\n0\r\n\r\n", 400, False),
    ("bad chunk size on /cancel", CANCEL + H + COOKIE + b"Transfer-Encoding: chunked\r\n\r\n"
     b"zz\r\n{}\r\n0\r\n\r\n", 400, False),
    ("negative chunk size", CANCEL + H + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
     400, False),
    ("chunk size overflow", CANCEL + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", 413, False),
    ("chunk without CRLF", CANCEL + H + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", 400,
     False),
    ("bad chunk on a GET", HEALTH + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, False),
    ("chunked body over 4 KiB", SMART + H + COOKIE + JSON_CT + b"Transfer-Encoding: chunked\r\n\r\n"
     + b"1400\r\n" + b" " * 5120 + b"\r\n0\r\n\r\n", 413, False),
    ("Content-Length body cut short on /cancel", CANCEL + b"Host: 127.0.0.1\r\n" + COOKIE
     + b"Content-Length: 100\r\n\r\nabc", 400, True),
    ("Content-Length body cut short on /smart", SMART + b"Host: 127.0.0.1\r\n" + COOKIE + JSON_CT
     + b"Content-Length: 100\r\n\r\n{\"a\"", 400, True),
    ("chunked body cut short", CANCEL + b"Host: 127.0.0.1\r\n" + COOKIE
     + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", 400, True),
    ("body cut short, no session", SMART + b"Host: 127.0.0.1\r\n" + JSON_CT
     + b"Content-Length: 100\r\n\r\n{", 401, True),
    # methods
    ("TRACE", b"TRACE /api/gmail/sync/smart HTTP/1.1\r\n" + H + b"Cookie: session=secret\r\n\r\n",
     405, False),
    ("TRACE with a body", b"TRACE /api/gmail/sync/status HTTP/1.1\r\n" + H
     + b"Content-Length: 2\r\n\r\nab", 405, False),
    ("unknown method", b"FOO /api/gmail/sync/smart HTTP/1.1\r\n" + H + b"\r\n", 405, False),
    ("CONNECT with a path", b"CONNECT /api/gmail/sync/smart HTTP/1.1\r\n" + H + b"\r\n", 400,
     False),
    ("OPTIONS", b"OPTIONS /api/gmail/sync/smart HTTP/1.1\r\n" + H + b"\r\n", 405, False),
    ("PATCH", b"PATCH /api/gmail/sync/smart HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 405,
     False),
    ("DELETE with a body", b"DELETE /api/gmail/sync/status HTTP/1.1\r\n" + H
     + b"Content-Length: 2\r\n\r\n{}", 405, False),
    ("unknown endpoint", b"GET /api/gmail/sync/nope HTTP/1.1\r\n" + H + b"\r\n", 404, False),
    ("HEAD on an unknown endpoint", b"HEAD /api/gmail/sync/nope HTTP/1.1\r\n" + H + b"\r\n", 404,
     False),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_request_gets_a_problem(stack, session, expect_log, case):
    name, data, status, shut_write = case
    if name == "invalid percent escape":
        expect_log(r"AH10244: invalid URI path")
    answer = exchange(stack, data.replace(b"@SESSION@", session.encode()), shut_write)
    if data.startswith(b"HEAD "):
        assert answer.status == status and answer.header("Content-Type") == PROBLEM
        assert answer.header("X-Content-Type-Options") == "nosniff"
        assert answer.header("Cache-Control") == "no-store"
        return
    assert_problem(answer, status)
    if status == 405:
        assert answer.header("Allow"), answer.raw[:400]
    assert b"secret" not in answer.body


def test_the_list_is_broad():
    assert len(HOSTILE) >= 40


def test_requests_elsewhere_keep_httpd_pages(stack, expect_log):
    """Only the API's answers change: the rest of the site keeps httpd's own error pages."""
    expect_log(r"AH01630: client denied by server configuration: .*/api$")
    answer = exchange(stack, b"GET /elsewhere HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n")
    assert answer.status == 400 and answer.header("Content-Type").startswith("text/html")
    answer = exchange(stack, b"GET /elsewhere/" + b"a" * 10000 + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert answer.status == 414 and answer.header("Content-Type").startswith("text/html")
    answer = exchange(stack, b"GET /api/gmail/synchronise HTTP/1.1\r\n" + H + b"\r\n")
    assert answer.header("Content-Type").startswith("text/html")


def test_a_site_error_document_does_not_replace_the_problem(stack, shared_tmp):
    """The site's ErrorDocuments (a local page, a text) still leave the API's errors problems,
    whether httpd finds the error before reading the headers through (400, 417) or after (404),
    while the rest of the site gets them."""
    os.makedirs(os.path.join(shared_tmp, "errors"))
    for code in (400, 404):
        with open(os.path.join(shared_tmp, "errors", f"{code}.html"), "w") as f:
            f.write(f"<html>site page {code}</html>\n")
    os.chmod(os.path.join(shared_tmp, "errors"), 0o755)
    extra = os.path.join(shared_tmp, "errordoc.conf")
    with open(extra, "w") as f:
        f.write(f"""
Alias /errors/ "{shared_tmp}/errors/"
<Directory "{shared_tmp}/errors">
    Require all granted
</Directory>
ErrorDocument 400 /errors/400.html
ErrorDocument 404 /errors/404.html
ErrorDocument 417 "<html>site text 417</html>"
""")
    try:
        stack.reconfigure(extra)
        elsewhere = exchange(stack, b"GET /elsewhere%2Fx HTTP/1.1\r\n" + H + b"\r\n")
        assert elsewhere.status == 404 and b"site page 404" in elsewhere.body, elsewhere.raw
        elsewhere = exchange(stack, b"GET /elsewhere HTTP/1.1\r\n" + H + b"Content-Length: x\r\n\r\n")
        assert elsewhere.status == 400 and b"site page 400" in elsewhere.body, elsewhere.raw
        # before the headers are through: a local page, a text
        assert_problem(exchange(stack, HEALTH + H + b"Content-Length: abc\r\n\r\n"), 400)
        assert_problem(exchange(stack, HEALTH + H + b"Expect: 200-ok\r\n\r\n"), 417)
        # after: the per-request custom response wins over the site's page
        assert_problem(exchange(stack, b"GET /api/gmail/sync/%2F HTTP/1.1\r\n" + H + b"\r\n"), 404)
        assert_problem(exchange(stack, HEALTH + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
                       400)
    finally:
        stack.reconfigure(None)


def test_sse_and_metrics_answers_say_nosniff(stack):
    r = requests.get(stack.api + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    u = stack.add_user(messages=0)
    tid = requests.post(stack.api + "/smart", cookies={"session": u["session"]},
                        timeout=30).json()["task_id"]
    with requests.get(f"{stack.api}/progress/{tid}", cookies={"session": u["session"]},
                      headers={"Accept": "text/event-stream"}, stream=True, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["X-Content-Type-Options"] == "nosniff"


# --------------------------------------------------------------------------- Origin

def post_start(stack, session, origin=None, host=None, path="/smart"):
    h = {"Content-Type": "application/json"}
    if origin is not None:
        h["Origin"] = origin
    if host is not None:
        h["Host"] = host
    return requests.post(stack.api + path, data=b"{}", headers=h,
                         cookies={"session": session}, timeout=30)


def test_spoofed_host_does_not_make_an_origin_same_site(stack):
    u = stack.add_user(messages=0)
    for origin, host in [("http://evil.example", "evil.example"),
                         ("http://evil.example:%d" % port(stack), "evil.example:%d" % port(stack)),
                         ("https://evil.example", "evil.example")]:
        r = post_start(stack, u["session"], origin=origin, host=host)
        assert r.status_code == 403, (origin, r.status_code, r.text)
        assert r.headers["Content-Type"] == PROBLEM
        assert r.json()["type"] == "urn:gmailsync:problem:cross-site-request"
    r = post_start(stack, u["session"], origin="http://evil.example", host="evil.example",
                   path="/cancel/" + UUID)
    assert r.status_code == 403
    assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id=%s",
                       (u["user_id"],)) == [(0,)]


@pytest.mark.parametrize("origin", [
    "null", "http://127.0.0.1", "https://127.0.0.1:{port}", "http://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/x", "http://127.0.0.1:{port}, http://127.0.0.1:{port}",
    "http://user@127.0.0.1:{port}", "http://127.0.0.1:{port}.evil.example", "http://localhost:{port}",
    "ftp://127.0.0.1:{port}", "",
])
def test_origins_that_are_not_this_server(stack, session, origin):
    r = post_start(stack, session, origin=origin.format(port=port(stack)))
    assert r.status_code == 403, (origin, r.text)


def test_this_servers_origin_passes_whatever_the_host(stack):
    for origin, host in [(stack.base_url, None), (stack.base_url.upper(), None),
                         (stack.base_url, "evil.example"), (None, "evil.example"), (None, None)]:
        u = stack.add_user(messages=0)
        r = post_start(stack, u["session"], origin=origin, host=host)
        assert r.status_code == 202, (origin, host, r.text)


def test_server_aliases_and_wildcards(stack, tmp_path):
    p = port(stack)
    extra = tmp_path / "alias.conf"
    extra.write_text(f"<VirtualHost 127.0.0.1:{p}>\n"
                     f"    ServerName 127.0.0.1:{p}\n"
                     f"    ServerAlias app.gmailsync.test *.apps.gmailsync.test\n"
                     f"</VirtualHost>\n")
    try:
        stack.reconfigure(str(extra))
        for origin, status in [(f"http://app.gmailsync.test:{p}", 202),
                               (f"http://x.apps.gmailsync.test:{p}", 202),
                               (f"http://127.0.0.1:{p}", 202),
                               (f"http://a.b.apps.gmailsync.test:{p}", 403),
                               (f"http://apps.gmailsync.test:{p}", 403),
                               (f"http://x.apps.gmailsync.test.evil.example:{p}", 403),
                               ("http://app.gmailsync.test", 403),
                               (f"https://app.gmailsync.test:{p}", 403)]:
            u = stack.add_user(messages=0)
            r = post_start(stack, u["session"], origin=origin, host="evil.example")
            assert r.status_code == status, (origin, r.status_code, r.text)
    finally:
        stack.reconfigure(None)


# --------------------------------------------------------------------------- Accept

@pytest.fixture(scope="module")
def task(stack):
    u = stack.add_user(messages=0)
    r = requests.post(stack.api + "/smart", cookies={"session": u["session"]}, timeout=30)
    assert r.status_code == 202, r.text
    return u["session"], r.json()["task_id"]


@pytest.mark.parametrize("accept", [
    None, "*/*", "text/*", "application/json", "text/event-streamx", "text/event-stream-x",
    "xtext/event-stream", "text/event-stream;q=0", "text/event-stream; q=0.0",
    "text/event-stream;q=0.5, application/json", "text/event-stream;q=0.5, */*",
    "application/json, text/event-stream;q=0.9", "text/event-stream;q=2", "text/html",
    "text/plain; x=\"text/event-stream\"",
])
def test_accept_without_a_real_event_stream_preference_gets_json(stack, task, accept):
    session, tid = task
    h = {"Accept": accept} if accept is not None else {}
    # stream=True: a wrongly chosen event stream would otherwise be read until the task ends
    with requests.get(f"{stack.api}/progress/{tid}", headers=h, cookies={"session": session},
                      stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json", r.headers
        assert r.json()["task_id"] == tid


@pytest.mark.parametrize("accept", [
    "text/event-stream", "Text/Event-Stream", "text/event-stream;q=0.5",
    "application/json;q=0.5, text/event-stream", "text/event-stream, */*;q=0.1",
])
def test_accept_naming_the_event_stream_gets_the_stream(stack, accept):
    # a user of its own each: a stream's place under the per-user cap is freed only once the
    # server notices the client left, a moment after the last case closed it
    u = stack.add_user(messages=0)
    r = requests.post(stack.api + "/smart", cookies={"session": u["session"]}, timeout=30)
    assert r.status_code == 202, r.text
    session, tid = u["session"], r.json()["task_id"]
    with requests.get(f"{stack.api}/progress/{tid}", headers={"Accept": accept},
                      cookies={"session": session}, stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")


# ------------------------------------------------------------------ the callback's query (issue 21, 9)

def test_the_callbacks_query_never_reaches_the_access_log(stack, expect_log):
    """A code and a state on the callback path stay out of the access log whatever the answer:
    405 (POST, HEAD), 404 (a path the handler does not serve), 400 (a request httpd refuses
    while reading it), 503 (GmailSync Off) -- not only when the handler takes them."""
    import urllib.parse
    from conftest import wait_for
    expect_log(r"AH00561|AH02430|size of a request header field")
    code = "4/0AcodeSECRET" + os.urandom(8).hex()
    state = "stateSECRET" + os.urandom(8).hex()
    query = "state=%s&code=%s&scope=x" % (state, urllib.parse.quote(code, safe=""))
    cb = "/api/gmail/sync/oauth/callback"
    # the request line as Debian's default formats log it (%r, query included); the dev stack's
    # own access log leaves queries out altogether
    from conftest import RUN_DIR
    log = os.path.join(RUN_DIR, "tmp", "access_r.log")
    fmt = 'CustomLog "{}" "%h %t \\"%r\\" %>s"\n'.format(log)
    stack.reconfigure_text(fmt, "access_r.conf")
    start = os.path.getsize(log)
    answers = [
        exchange(stack, b"POST %s?%s HTTP/1.1\r\n%sContent-Length: 0\r\n\r\n"
                 % (cb.encode(), query.encode(), H)).status,
        exchange(stack, b"HEAD %s?%s HTTP/1.1\r\n%s\r\n" % (cb.encode(), query.encode(), H)).status,
        exchange(stack, b"GET %s/?%s HTTP/1.1\r\n%s\r\n" % (cb.encode(), query.encode(), H)).status,
        exchange(stack, b"GET /api/gmail/sync/oauth/%%63allback/?%s HTTP/1.1\r\n%s\r\n"
                 % (query.encode(), H)).status,
        exchange(stack, b"GET %s?%s HTTP/1.1\r\n%sX-Big: %s\r\n\r\n"
                 % (cb.encode(), query.encode(), H, b"x" * 9000)).status,
    ]
    assert answers == [405, 405, 404, 404, 400], answers
    stack.reconfigure_text(fmt + "GmailSync Off\n", "off.conf")
    try:
        answers.append(exchange(stack, b"GET %s?%s HTTP/1.1\r\n%s\r\n"
                                % (cb.encode(), query.encode(), H)).status)
    finally:
        stack.reconfigure(None)
    assert answers[-1] == 503

    def lines():
        with open(log, encoding="utf-8", errors="replace") as f:
            f.seek(start)
            found = [l for l in f.read().splitlines() if "oauth/" in l]
        return found if len(found) >= len(answers) else None
    found = wait_for("the access log's lines", lines, 10)
    text = "\n".join(found)
    for secret in (code, state, urllib.parse.quote(code, safe="")):
        assert secret not in text, text
    assert "SECRET" not in text, text
    assert all("?(redacted)" in l for l in found), text
