"""The connect flow (issue 13): GET oauth/start, GET oauth/callback, POST oauth/disconnect,
against the fake Gmail's authorization endpoint, code exchange (PKCE) and revocation.

The end-to-end "connect, then sync" test needs the worker to open sealed tokens (the "tokens at
rest" change); until that is merged it is expected to fail at the sync step.
"""
import base64
import hashlib
import os
import re
import subprocess
import urllib.parse

import pytest
import requests

from conftest import ROOT, RUN_DIR, wait_for

SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
# every httpd answer body a test here saw, for the leak scan at the end
BODIES = []


def seen(resp):
    BODIES.append(resp.text)
    return resp


def fake(stack, method, path, body=None):
    r = requests.request(method, stack.gmail_url + "/_control/" + path, json=body, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def new_user(stack, messages=5):
    """A web user with no account, and a fresh mailbox in the fake that is theirs to link."""
    u = stack.add_user(messages=0, no_account=True)
    u["mailbox"] = "box-" + u["user_id"] + "@example.test"
    fake(stack, "POST", "mailboxes", {"email": u["mailbox"], "messages": messages, "seed": 7})
    return u


def consent(stack, mode, email=None):
    fake(stack, "POST", "consent", {"mode": mode, "email": email})


def start(stack, session, **kw):
    return seen(requests.get(stack.api + "/oauth/start", cookies={"session": session},
                             allow_redirects=False, timeout=10, **kw))


def query_of(url):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def authorize(location):
    """The browser's visit to the authorization endpoint (auto consent): the callback URL."""
    r = requests.get(location, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def callback(stack, url, session, accept=None):
    headers = {"Accept": accept} if accept else {}
    return seen(requests.get(url, cookies={"session": session}, headers=headers,
                             allow_redirects=False, timeout=30))


def begin(stack, u, mode="allow"):
    """start → the fake's decision: the callback URL the browser would be sent to."""
    consent(stack, mode, u["mailbox"])
    r = start(stack, u["session"])
    assert r.status_code == 302, r.text
    return authorize(r.headers["Location"])


def account(stack, user_id):
    rows = stack.query("SELECT email, refresh_token, access_token, history_id, updated_at"
                       " FROM gmailsync.accounts WHERE user_id = %s", (user_id,))
    return rows[0] if rows else None


def states_of(stack, user_id):
    return stack.query("SELECT encode(state_sha256, 'hex'), code_verifier, "
                       "extract(epoch FROM expires_at - now()) FROM gmailsync.oauth_states "
                       "WHERE user_id = %s ORDER BY created_at", (user_id,))


def assert_problem(resp, status, slug):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.json()["type"] == "urn:gmailsync:problem:" + slug


def encodings(value):
    raw = value.encode()
    return {value, urllib.parse.quote(value, safe=""), base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()}


# ------------------------------------------------------------------ configuration

def connect_conf(tmp_path, redirect, key=True, client=True):
    from test_foundation import configtest
    lines = []
    if key:
        keyfile = tmp_path / "token_keys"
        keyfile.write_text(os.urandom(32).hex() + "\n")
        keyfile.chmod(0o600)
        lines.append(f'GmailSyncTokenKeyFile "{keyfile}"')
    if client:
        secret = tmp_path / "secret"
        secret.write_text("s3cret\n")
        secret.chmod(0o600)
        lines += ["GmailSyncClientId 123-abc.apps.googleusercontent.com",
                  f'GmailSyncClientSecretFile "{secret}"']
    lines += ["GmailSyncAuthURL https://accounts.example.test/o/oauth2/v2/auth",
              "GmailSyncRevokeURL https://oauth2.example.test/revoke",
              "# the redirect URI", f"GmailSyncRedirectURI {redirect}"]
    return configtest(tmp_path, "\n".join(lines), keys=False)   # the key file is this test's


@pytest.mark.parametrize("uri", ["https://app.example.test/api/gmail/sync/oauth/callback",
                                 "http://127.0.0.1:8080/api/gmail/sync/oauth/callback",
                                 "http://localhost/api/gmail/sync/oauth/callback"])
def test_configtest_accepts_a_redirect_uri_to_this_servers_callback(stack, tmp_path, uri):
    proc, _ = connect_conf(tmp_path, uri)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("uri,why", [
    ("http://app.example.test/api/gmail/sync/oauth/callback", "https"),
    ("/api/gmail/sync/oauth/callback", "absolute"),
    ("https://app.example.test/api/gmail/sync/oauth/callback?x=1", "query"),
    ("https://app.example.test/api/gmail/sync/oauth/callback#f", "fragment"),
])
def test_configtest_refuses_a_bad_redirect_uri_naming_the_line(stack, tmp_path, uri, why):
    proc, conf = connect_conf(tmp_path, uri)
    assert proc.returncode != 0
    line = conf.read_text().splitlines().index(f"GmailSyncRedirectURI {uri}") + 1
    assert f"line {line} of {conf}" in proc.stderr and "GmailSyncRedirectURI" in proc.stderr
    assert why in proc.stderr, proc.stderr


def test_configtest_refuses_a_redirect_uri_elsewhere_or_without_key_or_client(stack, tmp_path):
    proc, _ = connect_conf(tmp_path, "https://app.example.test/oauth/callback")
    assert proc.returncode != 0
    assert "must point at this server's callback /api/gmail/sync/oauth/callback" in proc.stderr
    proc, _ = connect_conf(tmp_path, "https://app.example.test/api/gmail/sync/oauth/callback", key=False)
    assert proc.returncode != 0 and "GmailSyncTokenKeyFile" in proc.stderr, proc.stderr
    proc, _ = connect_conf(tmp_path, "https://app.example.test/api/gmail/sync/oauth/callback",
                           client=False)
    assert proc.returncode != 0 and "GmailSyncClientId" in proc.stderr, proc.stderr


# ------------------------------------------------------------------ start

def test_start_redirects_to_consent_with_every_parameter(stack):
    u = new_user(stack)
    r = start(stack, u["session"])
    assert r.status_code == 302
    assert r.headers["Cache-Control"] == "no-store"
    assert r.content == b""
    loc = r.headers["Location"]
    assert loc.startswith(stack.gmail_url + "/o/oauth2/v2/auth?")
    q = query_of(loc)
    assert q.pop("client_id") == stack.env["GS_CLIENT_ID"]
    assert q.pop("redirect_uri") == stack.api + "/oauth/callback"
    state, challenge = q.pop("state"), q.pop("code_challenge")
    assert q == {"response_type": "code", "scope": SCOPE, "access_type": "offline",
                 "prompt": "consent", "code_challenge_method": "S256"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", state)        # 256 random bits
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)    # base64url(SHA-256)
    rows = states_of(stack, u["user_id"])
    assert len(rows) == 1
    digest, verifier, ttl = rows[0]
    assert digest == hashlib.sha256(state.encode()).hexdigest()   # stored hashed, never as is
    assert verifier.startswith("gs1:") and challenge not in verifier
    assert 590 < float(ttl) <= 600
    # a second start is another state; the first stays valid until used or expired
    assert start(stack, u["session"]).status_code == 302
    assert len(states_of(stack, u["user_id"])) == 2


def test_start_needs_a_session(stack):
    r = seen(requests.get(stack.api + "/oauth/start", allow_redirects=False, timeout=10))
    assert_problem(r, 401, "unauthenticated")
    r = seen(requests.post(stack.api + "/oauth/start", timeout=10))
    assert_problem(r, 405, "method-not-allowed")


# ------------------------------------------------------------------ callback

def test_connect_stores_the_account_with_sealed_tokens(stack):
    u = new_user(stack)
    r = callback(stack, begin(stack, u), u["session"])
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/?oauth=connected"
    assert r.headers["Cache-Control"] == "no-store"
    email, refresh, access, history_id, _ = account(stack, u["user_id"])
    assert email == u["mailbox"] and history_id is None
    assert refresh.startswith("gs1:") and access.startswith("gs1:")
    issued = fake(stack, "GET", "issued")
    for value in issued["refresh_tokens"] + issued["access_tokens"] + issued["codes"]:
        for form in encodings(value):
            assert form not in refresh and form not in access
    st = seen(requests.get(stack.api + "/status", cookies={"session": u["session"]}, timeout=10))
    assert st.json()["connected"] is True
    assert st.json()["account"] == {"email": u["mailbox"], "connected": True}
    assert states_of(stack, u["user_id"]) == []   # consumed


def test_a_replayed_state_is_400_and_changes_nothing(stack):
    u = new_user(stack)
    url = begin(stack, u)
    assert callback(stack, url, u["session"]).status_code == 303
    before = account(stack, u["user_id"])
    assert_problem(callback(stack, url, u["session"]), 400, "invalid-state")
    assert account(stack, u["user_id"]) == before


def test_a_state_from_another_session_is_400_and_stores_nothing(stack):
    a, b = new_user(stack), new_user(stack)
    url = begin(stack, a)
    assert_problem(callback(stack, url, b["session"]), 400, "invalid-state")
    assert account(stack, a["user_id"]) is None and account(stack, b["user_id"]) is None
    # the same user signed in twice: the state belongs to the session that started it
    other = stack.add_user(messages=0, no_account=True, user_id=a["user_id"] + "x")
    stack.query("UPDATE gmailsync.sessions SET user_id = %s WHERE user_id = %s",
                (a["user_id"], other["user_id"]))
    url = begin(stack, a)
    assert_problem(callback(stack, url, other["session"]), 400, "invalid-state")
    assert account(stack, a["user_id"]) is None


def test_an_expired_state_is_400_and_stores_nothing(stack):
    u = new_user(stack)
    url = begin(stack, u)
    stack.query("UPDATE gmailsync.oauth_states SET expires_at = now() - interval '1 second'"
                " WHERE user_id = %s", (u["user_id"],))
    assert_problem(callback(stack, url, u["session"]), 400, "invalid-state")
    assert account(stack, u["user_id"]) is None


def test_a_wrong_pkce_verifier_is_400_and_stores_nothing(stack):
    u = new_user(stack)
    consent(stack, "allow", u["mailbox"])
    first = start(stack, u["session"]).headers["Location"]
    assert start(stack, u["session"]).status_code == 302
    # the first state now carries the second one's verifier (same user: it opens, but it is
    # not the one the challenge was made from)
    (h1, v1, _), (h2, v2, _) = states_of(stack, u["user_id"])
    stack.query("UPDATE gmailsync.oauth_states SET code_verifier = %s"
                " WHERE state_sha256 = decode(%s, 'hex')", (v2, h1))
    r = callback(stack, authorize(first), u["session"])
    assert_problem(r, 400, "exchange-failed")
    assert account(stack, u["user_id"]) is None


def test_access_denied_redirects_to_the_page_with_the_error(stack):
    u = new_user(stack)
    url = begin(stack, u, mode="deny")
    assert query_of(url)["error"] == "access_denied"
    r = callback(stack, url, u["session"])
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/?oauth=access_denied"
    assert account(stack, u["user_id"]) is None and states_of(stack, u["user_id"]) == []


def test_bad_callbacks(stack):
    u = new_user(stack)
    cb = stack.api + "/oauth/callback"
    for query in ("", "?code=x", "?state=short&code=x", "?state=%zz", "?state=a&state=b",
                  "?state=" + "A" * 43 + "&code=x"):
        assert_problem(callback(stack, cb + query, u["session"]), 400, "invalid-state")
    # a browser (Accept: text/html) is sent to the page with the words instead
    r = callback(stack, cb + "?code=x", u["session"], accept="text/html,*/*;q=0.8")
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/?oauth=invalid_state"
    assert_problem(seen(requests.get(cb, timeout=10)), 401, "unauthenticated")
    assert account(stack, u["user_id"]) is None


# ------------------------------------------------------------------ disconnect

def disconnect(stack, session, **kw):
    return seen(requests.post(stack.api + "/oauth/disconnect", cookies={"session": session},
                              timeout=30, **kw))


def revocations(stack):
    return fake(stack, "GET", "revocations")["revocations"]


def test_disconnect_during_a_sync_cancels_revokes_and_the_next_start_is_409(stack):
    u = stack.add_user(messages=2000)
    fake(stack, "POST", "faults", {"method": "*", "mode": "latency", "seconds": 0.3, "count": -1,
                                   "email": u["email"]})
    before = len(revocations(stack))
    try:
        r = seen(requests.post(stack.api + "/smart", cookies={"session": u["session"]},
                               timeout=10))
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]
        wait_for("running", lambda: stack.query("SELECT state FROM gmailsync.sync_tasks"
                                                " WHERE task_id = %s", (tid,))[0][0] == "RUNNING", 10)
        d = disconnect(stack, u["session"], json={})
        assert d.status_code == 200, d.text
        assert d.json() == {"connected": False, "account_removed": True, "cancelled_task_id": tid,
                            "revoked": True, "messages_deleted": 0}
    finally:
        requests.delete(stack.gmail_url + "/_control/faults", timeout=10)
    assert stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (tid,))[0][0] == "CANCELLED"
    revs = revocations(stack)[before:]
    assert [(x["kind"], x["email"]) for x in revs] == [("refresh", u["email"])]
    assert account(stack, u["user_id"]) is None
    wait_for("worker gone", lambda: not subprocess.run(
        ["pgrep", "-f", f"gmailsync-worker --task {tid}"], capture_output=True).stdout, 15)
    again = seen(requests.post(stack.api + "/smart", cookies={"session": u["session"]},
                               timeout=10))
    assert_problem(again, 409, "account-not-linked")
    assert "no Gmail account connected" in again.json()["detail"]
    st = seen(requests.get(stack.api + "/status", cookies={"session": u["session"]}, timeout=10))
    assert st.json()["account"] is None and st.json()["connected"] is False
    assert st.json()["task"]["state"] == "CANCELLED"


def test_disconnect_keeps_messages_unless_asked(stack):
    u = stack.add_user(messages=12)
    r = seen(requests.post(stack.api + "/smart", cookies={"session": u["session"]}, timeout=10))
    tid = r.json()["task_id"]
    wait_for("synced", lambda: stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id"
                                           " = %s", (tid,))[0][0] == "SUCCEEDED", 30)
    count = "SELECT count(*) FROM gmailsync.messages WHERE user_id = %s"
    assert stack.query(count, (u["user_id"],))[0][0] == 12
    d = disconnect(stack, u["session"])
    assert d.status_code == 200 and d.json()["messages_deleted"] == 0
    assert d.json()["cancelled_task_id"] is None
    assert stack.query(count, (u["user_id"],))[0][0] == 12
    # nothing left to disconnect; the messages can still go
    d = disconnect(stack, u["session"], json={"delete_messages": True})
    assert d.status_code == 200
    assert d.json() == {"connected": False, "account_removed": False, "cancelled_task_id": None,
                        "revoked": False, "messages_deleted": 12}
    assert stack.query(count, (u["user_id"],))[0][0] == 0


def test_disconnect_checks_origin_session_and_body(stack):
    u = stack.add_user(messages=1)
    r = disconnect(stack, u["session"], headers={"Origin": "https://evil.example"})
    assert_problem(r, 403, "cross-site-request")
    assert_problem(seen(requests.post(stack.api + "/oauth/disconnect", timeout=10)), 401,
                   "unauthenticated")
    assert_problem(disconnect(stack, u["session"], json={"delete_messages": 1}), 400,
                   "invalid-request")
    assert_problem(disconnect(stack, u["session"], data=b'{"delete_messages":true,'
                              b'"delete_messages":false}',
                              headers={"Content-Type": "application/json"}), 400, "malformed-json")
    assert_problem(disconnect(stack, u["session"], data=b"x", headers={"Content-Type": "text/plain"}),
                   415, "unsupported-media-type")
    assert_problem(disconnect(stack, u["session"], json={"pad": "x" * 5000}), 413, "body-too-large")
    assert_problem(seen(requests.get(stack.api + "/oauth/disconnect", timeout=10)), 405,
                   "method-not-allowed")
    assert account(stack, u["user_id"]) is not None   # none of those changed anything
    same_site = stack.base_url
    assert disconnect(stack, u["session"], headers={"Origin": same_site}).status_code == 200


# ------------------------------------------------------------------ end to end

def worker_opens_sealed_tokens():
    with open(os.path.join(ROOT, "mod_gmailsync", "core", "gs_worker_conf.c")) as f:
        return "token_key" in f.read()


@pytest.mark.skipif(not worker_opens_sealed_tokens(),
                    reason="the worker cannot open sealed tokens yet (tokens-at-rest change)")
def test_connect_then_sync_reads_the_mailbox(stack):
    """A fresh user links a mailbox and syncs it: the worker opens the sealed tokens."""
    u = new_user(stack, messages=25)
    assert callback(stack, begin(stack, u), u["session"]).status_code == 303
    r = seen(requests.post(stack.api + "/smart", cookies={"session": u["session"]}, timeout=10))
    assert r.status_code == 202, r.text
    tid = r.json()["task_id"]

    def ended():
        s = stack.query("SELECT state, error_code FROM gmailsync.sync_tasks WHERE task_id = %s",
                        (tid,))[0]
        return s if s[0] in ("SUCCEEDED", "FAILED", "CANCELLED") else None
    assert wait_for("the sync", ended, 60) == ("SUCCEEDED", None)
    assert stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s",
                       (u["user_id"],))[0][0] == 25


# ------------------------------------------------------------------ hostile answers (issue 21, 9)

class TokenEndpoint:
    """A token endpoint and Gmail profile that answer what a test says (the fake is honest):
    records the headers of every request it gets."""

    def __init__(self):
        import http.server
        import json as _json
        import threading
        self.access_token = "ya29.ok"
        self.email = "nobody@example.test"
        self.seen = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, obj):
                body = _json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.seen.append(("POST", self.path, dict(self.headers)))
                self.answer({"access_token": outer.access_token, "expires_in": 3599,
                             "refresh_token": "1//refresh-" + os.urandom(8).hex(),
                             "token_type": "Bearer"})

            def do_GET(self):
                outer.seen.append(("GET", self.path, dict(self.headers)))
                self.answer({"emailAddress": outer.email, "messagesTotal": 0,
                             "historyId": "1"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def state_of(resp):
    assert resp.status_code == 302, resp.text
    return query_of(resp.headers["Location"])["state"]


def test_an_access_token_that_is_not_a_bearer_token_is_refused(stack, tmp_path, expect_log):
    """A CR LF in the token endpoint's access token injected a header into the profile request;
    20 MB were accepted. Neither is used now: the connect flow answers 400 and stores nothing,
    the worker's refresh fails the task at once, and no request carries the token."""
    from gsworker import Worker, new_task, task
    expect_log(r"event=oauth\.exchange_refused .*unusable access token")
    ep = TokenEndpoint()
    conf = tmp_path / "hostile.conf"
    conf.write_text(f"GmailSyncTokenURL {ep.url}/token\nGmailSyncApiBase {ep.url}\n"
                    "GmailSyncMaxWorkers 0\n")
    conf.chmod(0o644)
    try:
        stack.reconfigure(str(conf))
        for token in ("ya29.a\r\nX-Injected: yes", "ya29." + "A" * (20 << 20)):
            ep.access_token = token
            u = new_user(stack)
            state = state_of(start(stack, u["session"]))
            r = callback(stack, f"{stack.api}/oauth/callback?state={state}&code=4%2Fcode",
                         u["session"])
            assert_problem(r, 400, "exchange-failed")
            assert "not a valid bearer token" in r.json()["detail"]
            assert account(stack, u["user_id"]) is None
        assert [m for m, path, _ in ep.seen if m == "GET"] == []       # no profile request
        # the worker's refresh
        w = stack.add_user(messages=3)
        ep.access_token = "ya29.b\r\nX-Injected: yes"
        tid = new_task(stack, w["user_id"])
        run = Worker(stack).run(tid, token_url=ep.url + "/token", api_base=ep.url)
        t = task(stack, tid)
        assert t["state"] == "FAILED" and t["error_code"] == "internal", (t, run.stderr[-2000:])
        assert "unusable access token (a control character" in t["error_message"]
        assert "X-Injected" not in t["error_message"] and "ya29" not in t["error_message"]
        assert [m for m, path, _ in ep.seen if m == "GET"] == []       # no Gmail call
        assert not any("X-Injected" in h for _, _, h in ep.seen)
    finally:
        stack.reconfigure(None)
        ep.close()


@pytest.mark.parametrize("address", ["box\u202e{id}@example.test",       # RIGHT-TO-LEFT OVERRIDE
                                     "box{id}\u200b@example.test",       # ZERO WIDTH SPACE
                                     "box\x07{id}@example.test",         # BEL
                                     "box {id}@example.test",
                                     "box{id}@example.test\r\nX: y"])
def test_a_profile_address_with_control_or_bidi_characters_is_refused(stack, address,
                                                                      expect_log):
    expect_log(r"event=oauth\.profile_refused .*unacceptable emailAddress")
    u = stack.add_user(messages=0, no_account=True)
    u["mailbox"] = address.format(id=u["user_id"])
    fake(stack, "POST", "mailboxes", {"email": u["mailbox"], "messages": 1, "seed": 7})
    r = callback(stack, begin(stack, u), u["session"])
    assert_problem(r, 400, "gmail-address-refused")
    assert "nothing was stored" in r.json()["detail"]
    assert u["mailbox"] not in r.text
    assert account(stack, u["user_id"]) is None
    assert stack.query("SELECT count(*) FROM gmailsync.accounts WHERE email = %s",
                       (u["mailbox"],)) == [(0,)]


def test_one_user_keeps_at_most_ten_pending_states(stack):
    u = new_user(stack)
    consent(stack, "allow", u["mailbox"])
    first = start(stack, u["session"]).headers["Location"]
    for _ in range(14):
        assert start(stack, u["session"]).status_code == 302
    last = start(stack, u["session"]).headers["Location"]
    assert len(states_of(stack, u["user_id"])) == 10
    # the oldest went with the surplus; the newest works
    assert_problem(callback(stack, authorize(first), u["session"]), 400, "invalid-state")
    r = callback(stack, authorize(last), u["session"])
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/?oauth=connected"
    # another user's states are not touched by this one's starts
    other = new_user(stack)
    assert start(stack, other["session"]).status_code == 302
    for _ in range(12):
        assert start(stack, u["session"]).status_code == 302
    assert len(states_of(stack, other["user_id"])) == 1


def test_head_of_the_callback_is_405_and_exchanges_nothing(stack):
    u = new_user(stack)
    url = begin(stack, u)
    before = fake(stack, "GET", "stats")["requests"].get("token", 0)
    r = seen(requests.head(url, cookies={"session": u["session"]}, allow_redirects=False,
                           timeout=30))
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert fake(stack, "GET", "stats")["requests"].get("token", 0) == before
    assert account(stack, u["user_id"]) is None
    assert len(states_of(stack, u["user_id"])) == 1           # not consumed
    r = callback(stack, url, u["session"])                     # the GET still works
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/?oauth=connected"


# ------------------------------------------------------------------ nothing leaks

def test_no_log_response_or_argv_holds_a_code_verifier_token_or_state(stack):
    """Runs last in this file: every value the fake issued or saw, in every form, against the
    stack's logs, the answers the tests here received, and every process's command line."""
    issued = fake(stack, "GET", "issued")
    values = set()
    for kind in ("codes", "refresh_tokens", "access_tokens", "states", "verifiers"):
        values.update(v for v in issued[kind] if len(v) >= 16)
    assert issued["states"] and issued["codes"] and issued["verifiers"]
    texts = {}
    for top in ("httpd/logs", "fake_gmail", "pg"):
        for dirpath, _, files in os.walk(os.path.join(RUN_DIR, top)):
            for name in files:
                if name.endswith(".log") or name in ("error_log", "access_log"):
                    path = os.path.join(dirpath, name)
                    with open(path, encoding="utf-8", errors="replace") as f:
                        texts[path] = f.read()
    assert any(p.endswith("access_log") for p in texts) and any(p.endswith("error_log") for p in texts)
    texts["responses"] = "\n".join(BODIES)
    texts["argv"] = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    leaks = [(where, value[:12] + "...") for value in values for form in encodings(value)
             for where, text in texts.items() if form in text]
    assert not leaks, leaks
