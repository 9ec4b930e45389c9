"""OAuth tokens encrypted at rest (issue 13): what gmailsync.accounts holds is useless without the
key file (GmailSyncTokenKeyFile), syncs work with sealed tokens, gmailsync-rotate-key moves every
row to a new key online and idempotently, a row that does not open fails its task with
token_undecryptable, and configtest refuses a missing or careless key file."""
import base64
import binascii
import http.server
import os
import re
import secrets
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request

import pytest
import requests

from conftest import BUILD_DIR, ROOT, RUN_DIR, wait_for
from gsworker import EXIT_FAILED, EXIT_SUCCEEDED, Worker, new_task, task
from test_foundation import configtest, key_file

ROTATE = os.path.join(ROOT, "scripts", "gmailsync-rotate-key")
TOKENS = os.path.join(BUILD_DIR, "gmailsync-tokens")
SEALED = re.compile(r"^gs1:([0-9a-f]{8}):[A-Za-z0-9+/]+=*$")


def rotate(stack, *args, check_rc=0):
    p = subprocess.run([ROTATE, *args], env=dict(os.environ, GS_PG_DSN=stack.pg_dsn),
                       capture_output=True, text=True, timeout=120)
    if check_rc is not None:
        assert p.returncode == check_rc, p.stdout + p.stderr
    return p


def summary(out):
    line = next(l for l in out.splitlines() if l.startswith("summary: "))
    return {k: int(v) for k, v in (kv.split("=") for kv in line[len("summary: "):].split())}


def current_key_id(stack):
    out = subprocess.run([TOKENS, "check", "--key-file", stack.env["GS_TOKEN_KEY_FILE"]],
                         env=dict(os.environ, GS_PG_DSN=stack.pg_dsn), capture_output=True,
                         text=True, timeout=60).stdout
    return re.search(r"^keys: \d+, current ([0-9a-f]{8})", out, re.M).group(1)


def account(stack, user_id):
    return stack.query("SELECT refresh_token, access_token, refresh_token_key, access_token_key"
                       " FROM gmailsync.accounts WHERE user_id = %s", (user_id,))[0]


def encodings(token):
    """The ways a token could sit in a column without being encrypted."""
    raw = token.encode()
    forms = {raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
             base64.urlsafe_b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"="),
             base64.b64encode(raw).rstrip(b"="), urllib.parse.quote(token, safe="").encode(),
             urllib.parse.quote_plus(token).encode(), binascii.b2a_qp(raw)}
    # a recognisable part, in case of a cut or an offset encoding: the middle third, raw
    forms.add(raw[len(raw) // 3: 2 * len(raw) // 3])
    return forms


def sync_via_api(stack, user, timeout=60):
    r = requests.post(stack.api + "/smart", json={}, cookies={"session": user["session"]},
                      timeout=30)
    assert r.status_code == 202, r.text
    tid = r.json()["task_id"]

    def ended():
        rows = stack.query("SELECT state, error_code, error_message FROM gmailsync.sync_tasks"
                           " WHERE task_id = %s", (tid,))
        return rows[0] if rows[0][0] in ("SUCCEEDED", "FAILED", "CANCELLED") else None
    return (tid,) + wait_for("the sync of " + user["user_id"], ended, timeout)


class TokenProxy:
    """The token endpoint in front of the fake's: records the refresh tokens the worker sends and
    the access tokens it gets, so that the test knows the plaintext it must not find stored."""

    def __init__(self, upstream):
        self.seen = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.seen += urllib.parse.parse_qs(body.decode()).get("refresh_token", [])
                req = urllib.request.Request(upstream, data=body, method="POST", headers={
                    "Content-Type": self.headers.get("Content-Type", "")})
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, data = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                m = re.search(rb'"access_token":\s*"([^"]+)"', data)
                if m:
                    proxy.seen.append(m.group(1).decode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/token" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ nothing readable at rest

def test_stored_tokens_hold_no_token_bytes_in_any_encoding(stack, quiet_daemon):
    refresh = "1//0" + secrets.token_urlsafe(60)
    u = stack.add_user(messages=20, refresh_token=refresh)
    proxy = TokenProxy(stack.gmail_url + "/token")
    try:
        tid = new_task(stack, u["user_id"])
        run = Worker(stack).run(tid, token_url=proxy.url)
    finally:
        proxy.close()
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert refresh in proxy.seen and len(proxy.seen) >= 2, "the worker sent the token it opened"
    tokens = set(proxy.seen)
    kid = current_key_id(stack)
    stored_refresh, stored_access, refresh_key, access_key = account(stack, u["user_id"])
    for value in (stored_refresh, stored_access):
        assert SEALED.match(value) and SEALED.match(value).group(1) == kid, value[:16]
    assert (refresh_key, access_key) == (kid, kid)
    # the whole row, every column as text, holds none of the tokens in any encoding
    row = stack.query("SELECT a::text FROM gmailsync.accounts a WHERE user_id = %s",
                      (u["user_id"],))[0][0].encode()
    for t in tokens:
        for form in encodings(t):
            assert form not in row, "a token is in gmailsync.accounts (%r...)" % form[:12]
    # nor does anything the worker logged or announced
    for t in tokens:
        assert t not in run.stderr + run.stdout


def test_a_sync_through_the_daemon_works_with_sealed_tokens(stack):
    u = stack.add_user(messages=40)
    assert account(stack, u["user_id"])[0].startswith("gs1:")
    tid, state, code, msg = sync_via_api(stack, u)
    assert (state, code) == ("SUCCEEDED", None), msg
    stored = stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s",
                         (u["user_id"],))[0][0]
    assert stored == 40
    # the access token the daemon's worker cached is sealed under the current key
    assert account(stack, u["user_id"])[3] == current_key_id(stack)
    # and the next sync uses it
    assert sync_via_api(stack, u)[1] == "SUCCEEDED"


# ------------------------------------------------------------------ rows that do not open

@pytest.mark.parametrize("kind", ["tampered", "unknown_key", "plaintext", "other_row"])
def test_an_undecryptable_row_fails_the_task_with_token_undecryptable(stack, expect_log, kind,
                                                                      tmp_path):
    expect_log(r"event=token\.undecryptable")
    expect_log(r"event=task\.failed .*error=token_undecryptable")
    u = stack.add_user(messages=5, plaintext=(kind == "plaintext"))
    refresh = account(stack, u["user_id"])[0]
    key_named = "none"
    if kind == "tampered":
        head, body = refresh.rsplit(":", 1)
        flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
        stack.query("UPDATE gmailsync.accounts SET refresh_token = %s WHERE user_id = %s",
                    (head + ":" + flipped, u["user_id"]))
        key_named = current_key_id(stack)
    elif kind == "unknown_key":
        other = key_file(tmp_path, "other.keys")
        sealed = subprocess.run([TOKENS, "seal", "--key-file", str(other), "--user",
                                 u["user_id"]], input="1//0whatever\n", capture_output=True,
                                text=True, check=True).stdout.strip()
        key_named = sealed.split(":")[1]
        stack.query("UPDATE gmailsync.accounts SET refresh_token = %s WHERE user_id = %s",
                    (sealed, u["user_id"]))
    elif kind == "other_row":
        v = stack.add_user(messages=1)
        stack.query("UPDATE gmailsync.accounts SET refresh_token = (SELECT refresh_token FROM"
                    " gmailsync.accounts WHERE user_id = %s) WHERE user_id = %s",
                    (v["user_id"], u["user_id"]))
        key_named = current_key_id(stack)
    log_start = stack.log_size()
    try:
        tid, state, code, msg = sync_via_api(stack, u)
        assert (state, code) == ("FAILED", "token_undecryptable"), (state, code, msg)
        assert "refresh_token" in msg and "cannot be decrypted" in msg, msg
        if key_named != "none":
            assert key_named in msg, msg
        hint = {"unknown_key": "put that key back", "plaintext": "gmailsync-rotate-key"}.get(
            kind, "link the Gmail account again")
        assert hint in msg, msg
        log = stack.log_since(log_start)
        line = next(l for l in log.splitlines() if "event=token.undecryptable" in l)
        assert f"task={tid}" in line and f"key={key_named}" in line and "column=refresh_token" \
            in line, line
        # the value is never echoed
        stored = account(stack, u["user_id"])[0]
        assert stored not in log and stored not in msg
        # gmailsync-rotate-key cannot open it either and says so (plaintext it can seal)
        p = rotate(stack, "--key-file", stack.env["GS_TOKEN_KEY_FILE"], "--user", u["user_id"],
                   "--dry-run", check_rc=None)
        if kind == "plaintext":
            assert p.returncode == 0 and summary(p.stdout)["sealed"] == 1, p.stdout
        else:
            assert p.returncode == 1 and summary(p.stdout)["failed"] == 1, p.stdout
            assert f"failed user={u['user_id']} column=refresh_token key={key_named}" in p.stdout
            assert stored not in p.stdout + p.stderr
    finally:
        # a row no key opens would fail every later rotation: the test's own artefact goes
        stack.query("DELETE FROM gmailsync.accounts WHERE user_id = %s", (u["user_id"],))


# ------------------------------------------------------------------ rotation

def test_rotate_key_moves_every_row_to_the_new_key_online_and_idempotently(stack):
    keys = stack.env["GS_TOKEN_KEY_FILE"]
    old_text = open(keys).read()
    old_id = current_key_id(stack)
    synced = stack.add_user(messages=30)
    assert sync_via_api(stack, synced)[1] == "SUCCEEDED"        # refresh and access sealed
    plain = stack.add_user(messages=10, plaintext=True)        # a row from before migration 006
    assert account(stack, plain["user_id"])[2] == "plaintext"
    assert account(stack, synced["user_id"])[2:] == (old_id, old_id)

    # 1. the new key goes first, the old one stays below; graceful restart
    new_line = subprocess.run([ROTATE, "--generate"], capture_output=True, text=True,
                              check=True).stdout
    assert re.fullmatch(r"[0-9a-f]{64}\n", new_line)
    tmp = keys + ".new"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(new_line + old_text)
    os.replace(tmp, keys)
    stack.up()
    new_id = current_key_id(stack)
    assert new_id != old_id
    # rows under the old key still sync meanwhile (the ring opens them), new writes are sealed new
    assert sync_via_api(stack, synced)[1] == "SUCCEEDED"

    # 2. rotate: every row, while a sync runs
    busy = stack.add_user(messages=600)
    r = requests.post(stack.api + "/smart", json={}, cookies={"session": busy["session"]},
                      timeout=30)
    assert r.status_code == 202
    p = rotate(stack, "--key-file", keys)
    first = summary(p.stdout)
    assert first["failed"] == 0 and first["sealed"] >= 1 and first["resealed"] >= 1, p.stdout
    assert "1//" not in p.stdout + p.stderr and new_line.strip() not in p.stdout + p.stderr
    wait_for("the busy sync", lambda: stack.query(
        "SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s",
        (r.json()["task_id"],))[0][0] in ("SUCCEEDED", "FAILED"), 90)
    # what a worker still running under the old ring wrote is picked up by a rerun
    rotate(stack, "--key-file", keys)

    # 3. a rerun changes nothing; check finds nothing under the old key or in plaintext
    again = summary(rotate(stack, "--key-file", keys).stdout)
    assert (again["written"], again["sealed"], again["resealed"], again["failed"]) == (0, 0, 0, 0)
    assert again["current"] > 0
    check = rotate(stack, "--check", "--key-file", keys)
    assert summary(check.stdout)["older"] == 0 and summary(check.stdout)["plaintext"] == 0
    assert f"key={new_id} status=current" in check.stdout
    left = stack.query("SELECT count(*) FROM gmailsync.accounts WHERE refresh_token_key IN (%s,"
                       " 'plaintext') OR access_token_key IN (%s, 'plaintext')", (old_id, old_id))
    assert left[0][0] == 0

    # 4. the old line goes; graceful again; syncs work, the plaintext row included
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(new_line)
    os.replace(tmp, keys)
    stack.up()
    for u in (synced, plain, busy):
        tid, state, code, msg = sync_via_api(stack, u)
        assert (state, code) == ("SUCCEEDED", None), (u["user_id"], msg)
        assert account(stack, u["user_id"])[2:] == (new_id, new_id)


def test_rotate_key_never_overwrites_a_token_a_worker_wrote_meanwhile(stack):
    """The write names the values it read. Here a "worker" holds the row (its token write not yet
    committed) while rotate-key writes: the write waits, finds the row changed when the worker
    commits, reads it again and seals what is there now: the worker's token survives."""
    u = stack.add_user(messages=1, plaintext=True)
    keys = stack.env["GS_TOKEN_KEY_FILE"]
    kid = current_key_id(stack)
    worker_token = subprocess.run([TOKENS, "seal", "--key-file", keys, "--user", u["user_id"],
                                   "--column", "access_token"], input="ya29.fresh\n",
                                  capture_output=True, text=True, check=True).stdout.strip()
    conn = stack.db()
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE gmailsync.accounts SET access_token = %s, access_token_expires_at"
                        " = now() + interval '1 hour' WHERE user_id = %s",
                        (worker_token, u["user_id"]))
        proc = subprocess.Popen([ROTATE, "--key-file", keys, "--user", u["user_id"]],
                                env=dict(os.environ, GS_PG_DSN=stack.pg_dsn),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for("rotate-key waiting on the row", lambda: stack.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'gmailsync-tokens'"
            " AND wait_event_type = 'Lock'"), 20)
        conn.commit()
    finally:
        conn.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    s = summary(out)
    # the first decision (refresh plaintext, no access token) lost; the second saw the worker's
    assert (s["rows"], s["written"], s["sealed"], s["current"], s["failed"]) == (1, 1, 1, 1, 0), out
    refresh, access, refresh_key, access_key = account(stack, u["user_id"])
    assert access == worker_token, "rotate-key overwrote the worker's token"
    assert (refresh_key, access_key) == (kid, kid)


# ------------------------------------------------------------------ the key file at configtest

def test_configtest_requires_the_key_file_while_gmailsync_is_on(stack, tmp_path):
    proc, _ = configtest(tmp_path, "", keys=False)
    assert proc.returncode != 0
    assert "GmailSyncTokenKeyFile" in proc.stderr and "--generate" in proc.stderr, proc.stderr
    proc, _ = configtest(tmp_path, "GmailSync Off", keys=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("case", ["missing", "group_readable", "world_readable", "wrong_length",
                                  "not_hex", "empty", "directory"])
def test_configtest_rejects_a_bad_key_file_naming_the_directive(stack, tmp_path, case):
    good = key_file(tmp_path, "good.keys").read_text()
    path = {
        "missing": lambda: tmp_path / "nonexistent.keys",
        "group_readable": lambda: key_file(tmp_path, "g.keys", 0o640, good),
        "world_readable": lambda: key_file(tmp_path, "w.keys", 0o604, good),
        "wrong_length": lambda: key_file(tmp_path, "l.keys", 0o600, good.strip()[:62] + "\n"),
        "not_hex": lambda: key_file(tmp_path, "h.keys", 0o600, "zz" + good.strip()[2:] + "\n"),
        "empty": lambda: key_file(tmp_path, "e.keys", 0o600, ""),
        "directory": lambda: tmp_path,
    }[case]()
    line = f'GmailSyncTokenKeyFile "{path}"'
    proc, conf = configtest(tmp_path, line, keys=False)
    assert proc.returncode != 0, f"accepted: {case}"
    assert "GmailSyncTokenKeyFile" in proc.stderr, proc.stderr
    lineno = conf.read_text().splitlines().index(line) + 1
    assert f"line {lineno} of {conf}" in proc.stderr, proc.stderr
    assert good.strip() not in proc.stderr and good.strip()[:16] not in proc.stderr
    want = {"group_readable": "other users", "world_readable": "other users",
            "wrong_length": "64 hex digits", "not_hex": "hex digits only"}.get(case)
    if want:
        assert want in proc.stderr, proc.stderr


def test_a_virtual_host_cannot_name_another_key_file(stack, tmp_path):
    other = key_file(tmp_path, "vhost.keys")
    proc, _ = configtest(tmp_path, f'<VirtualHost 127.0.0.1:1>\n    GmailSyncTokenKeyFile "{other}"'
                         "\n</VirtualHost>")
    assert proc.returncode != 0
    assert "GmailSyncTokenKeyFile" in proc.stderr and "main server" in proc.stderr, proc.stderr


def test_rotate_key_usage_and_generate(stack, tmp_path):
    lines = {subprocess.run([ROTATE, "--generate"], capture_output=True, text=True,
                            check=True).stdout for _ in range(3)}
    assert len(lines) == 3 and all(re.fullmatch(r"[0-9a-f]{64}\n", l) for l in lines)
    p = subprocess.run([ROTATE], env=dict(os.environ, GS_PG_DSN=stack.pg_dsn),
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--key-file" in p.stderr
    loose = key_file(tmp_path, "loose.keys", 0o644)
    p = rotate(stack, "--key-file", str(loose), check_rc=4)
    assert "other users" in p.stderr
    # the connection string reaches the tool on stdin: not in its argv nor its environment
    spy = tmp_path / "spy"
    spy.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >"$0.argv"\nenv >"$0.env"\ncat >"$0.stdin"\n')
    spy.chmod(0o700)
    subprocess.run([ROTATE, "--key-file", stack.env["GS_TOKEN_KEY_FILE"]], env=dict(
        os.environ, GS_PG_DSN=stack.pg_dsn, GS_TOKENS_BIN=str(spy)), check=True, timeout=30)
    password = urllib.parse.urlsplit(stack.pg_dsn).password
    assert password not in (tmp_path / "spy.argv").read_text()
    assert password not in (tmp_path / "spy.env").read_text()
    assert (tmp_path / "spy.stdin").read_text() == "db = %s\n" % stack.pg_dsn
