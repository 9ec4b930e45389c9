"""gmailsync-admin against the real stack: sessions, linking an account from a refresh token on
stdin, the lists, a sync started and cancelled through the module's API, a user's status; the
database and the key file found in httpd's own configuration (no DSN given)."""
import json
import os
import secrets
import subprocess
import urllib.request

import psycopg2.extensions
import requests

from conftest import ROOT, wait_for

ADMIN = os.path.join(ROOT, "scripts", "gmailsync-admin")
TOKENS = os.path.join(os.environ.get("GS_TEST_BUILD_DIR", os.path.join(ROOT, "build")),
                      "gmailsync-tokens")


def admin(stack, *args, stdin=None, from_config=False, env_extra=None):
    """Runs gmailsync-admin. from_config: nothing but httpd's configuration names the database
    and the key file (GS_HTTPD/GS_HTTPD_CONF: the stack's httpd -d/-f instead of apachectl)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GS_", "PG"))}
    env.update(GS_DEFAULTS_FILE="/nonexistent", GS_TOKENS_BIN=TOKENS)
    if from_config:
        env.update(GS_HTTPD=stack.httpd_bin, GS_HTTPD_CONF=stack.httpd_conf,
                   GS_HTTPD_ROOT=os.path.dirname(stack.httpd_conf))
    else:
        env.update(GS_PG_DSN=stack.pg_dsn, GS_API_URL=stack.api)
    env.update(env_extra or {})
    return subprocess.run([ADMIN, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def mailbox(stack, messages, refresh_token):
    """A mailbox in the fake Gmail API whose refresh token is refresh_token; its address."""
    email = f"admin-{secrets.token_hex(4)}@example.test"
    body = json.dumps({"email": email, "messages": messages, "seed": 7,
                       "refresh_token": refresh_token}).encode()
    req = urllib.request.Request(stack.gmail_url + "/_control/mailboxes", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60):
        pass
    return email


def task_state(stack, task_id):
    return stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (task_id,))[0][0]


def test_session_create_and_revoke(stack):
    user = "adm-" + secrets.token_hex(4)
    p = admin(stack, "session", "create", user, "--hours", "1")
    assert p.returncode == 0, p.stderr
    cookie = p.stdout.strip()
    assert len(cookie) >= 40 and "\n" not in cookie
    r = requests.get(stack.api + "/status", cookies={"session": cookie}, timeout=10)
    assert r.status_code == 200 and r.json()["user_id"] == user
    # only the SHA-256 is stored
    assert stack.query("SELECT count(*) FROM gmailsync.sessions WHERE user_id = %s "
                       "AND encode(token_sha256, 'escape') LIKE %s", (user, "%" + cookie + "%"))[0][0] == 0

    p = admin(stack, "session", "revoke", user)
    assert p.returncode == 0 and "revoked 1 session" in p.stdout, p.stdout + p.stderr
    wait_for("the revoked session to be refused", lambda: requests.get(
        stack.api + "/status", cookies={"session": cookie}, timeout=10).status_code == 401, 15)
    p = admin(stack, "session", "revoke", user)
    assert p.returncode == 1 and "revoked 0 session" in p.stdout


def test_link_sync_cancel_and_status_from_httpds_configuration(stack):
    user = "adm-" + secrets.token_hex(4)
    token = "1//admin-" + secrets.token_urlsafe(24)
    email = mailbox(stack, 30, token)
    # no DSN, no key file, no API URL given: all from httpd's configuration
    p = admin(stack, "link", user, "--email", email, stdin=token + "\n", from_config=True)
    assert p.returncode == 0, p.stderr
    assert token not in p.stdout + p.stderr
    stored = stack.query("SELECT refresh_token, email FROM gmailsync.accounts WHERE user_id = %s",
                         (user,))[0]
    assert stored[0].startswith("gs1:") and token not in stored[0] and stored[1] == email

    p = admin(stack, "sync", "start", user, from_config=True)
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout)
    assert first["reused"] is False and first["state"] in ("CREATED", "RUNNING")
    wait_for("the sync to succeed", lambda: task_state(stack, first["task_id"]) == "SUCCEEDED", 60,
             diagnose=lambda: task_state(stack, first["task_id"]))
    # the temporary sessions of the calls are gone
    assert stack.query("SELECT count(*) FROM gmailsync.sessions WHERE user_id = %s", (user,))[0][0] == 0

    p = admin(stack, "status", user, "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["connected"] is True and st["task"]["task_id"] == first["task_id"]
    assert st["mailbox"]["messages"] == 30
    p = admin(stack, "status", user)
    assert p.returncode == 0 and "SUCCEEDED" in p.stdout and email in p.stdout

    p = admin(stack, "tasks", "--user", user, "--json")
    assert p.returncode == 0, p.stderr
    tasks = [json.loads(l) for l in p.stdout.splitlines()]
    assert [(t["task_id"], t["state"]) for t in tasks] == [(first["task_id"], "SUCCEEDED")]
    for listing in ("users", "accounts"):
        p = admin(stack, listing, "--user", user)
        assert p.returncode == 0 and user in p.stdout and email in p.stdout, p.stdout + p.stderr
    assert token not in admin(stack, "accounts", "--user", user, "--json").stdout

    # nothing active: a clear refusal
    p = admin(stack, "sync", "cancel", user)
    assert p.returncode == 1 and "no active task" in p.stderr


def test_start_is_idempotent_and_cancel_goes_through_the_api(stack, paused_daemon):
    user = stack.add_user(messages=5)["user_id"]
    a = admin(stack, "sync", "start", user)
    b = admin(stack, "sync", "start", user)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    a, b = json.loads(a.stdout), json.loads(b.stdout)
    assert a["reused"] is False and b["reused"] is True and a["task_id"] == b["task_id"]
    p = admin(stack, "sync", "cancel", user)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["state"] == "CANCELLED"
    assert task_state(stack, a["task_id"]) == "CANCELLED"
    p = admin(stack, "sync", "cancel", user, "--task", a["task_id"])
    assert p.returncode == 1 and "409" in p.stderr


def test_database_settings_never_on_argv(stack, tmp_path):
    loose = tmp_path / "dsn"
    loose.write_text(stack.pg_dsn + "\n")
    loose.chmod(0o644)
    p = admin(stack, "--dsn-file", str(loose), "users", env_extra={"GS_PG_DSN": ""})
    assert p.returncode == 1 and "chmod 600" in p.stderr
    loose.chmod(0o600)
    p = admin(stack, "--dsn-file", str(loose), "users", "--limit", "1")
    assert p.returncode == 0, p.stderr
    assert "--dsn" not in admin(stack, "--help").stdout.replace("--dsn-file", "")
    # a wrong password is reported without it
    bad = stack.pg_dsn.replace("@", "x@", 1) if "@" in stack.pg_dsn else stack.pg_dsn + " password=nope"
    p = admin(stack, "users", env_extra={"GS_PG_DSN": bad})
    assert p.returncode == 1 and "cannot connect" in p.stderr
    password = psycopg2.extensions.parse_dsn(bad).get("password")
    assert password and password not in p.stdout + p.stderr


def test_reindex_with_another_configuration(stack, paused_daemon):
    """After GmailSyncSearchConfig changes, `reindex` indexes again the messages made with
    another configuration (only those, unless --all), in batches; a bad configuration is an
    error that changes nothing."""
    from email.message import EmailMessage
    from test_message_content import import_message
    from test_message_view import sync
    user = stack.add_user(messages=0)
    for i in range(3):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.test", user["email"], "note %d" % i
        msg.set_content("The quarterly reports were running late")
        import_message(stack, user["email"], msg.as_bytes())
    sync(stack, user)

    def lexemes():
        return stack.query("SELECT config::text, tsvector_to_array(doc) FROM"
                           " gmailsync.message_search WHERE user_id = %s", (user["user_id"],))
    assert [c for c, _ in lexemes()] == ["simple"] * 3
    assert all({"the", "reports", "running"} <= set(words) for _, words in lexemes())

    p = admin(stack, "reindex", "--user", user["user_id"], "--config", "nosuchconfig")
    assert p.returncode == 1 and "no text-search configuration 'nosuchconfig'" in p.stderr, p.stderr
    assert [c for c, _ in lexemes()] == ["simple"] * 3

    p = admin(stack, "reindex", "--user", user["user_id"], "--config", "english", "--batch", "2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("reindexed 3 messages with english")
    assert "reindexed 2 of 3" in p.stderr and "reindexed 3 of 3" in p.stderr
    got = lexemes()
    assert [c for c, _ in got] == ["english"] * 3
    assert all({"report", "run"} <= set(words) and "the" not in words for _, words in got)
    # nothing left to do; --all does it again
    p = admin(stack, "reindex", "--user", user["user_id"], "--config", "english", "--quiet")
    assert p.returncode == 0 and p.stdout.startswith("reindexed 0 messages") and not p.stderr
    p = admin(stack, "reindex", "--user", user["user_id"], "--config", "english", "--all")
    assert p.returncode == 0 and p.stdout.startswith("reindexed 3 messages"), p.stdout
    # back to the stack's configuration
    p = admin(stack, "reindex", "--user", user["user_id"], "--config", "simple", "--quiet")
    assert p.returncode == 0 and [c for c, _ in lexemes()] == ["simple"] * 3


def test_link_to_another_address_starts_over_and_cancels_the_previous_sync(stack, paused_daemon):
    """As the module's own link: the cursor and a pending full sync belong to the mailbox. The
    same address again (in another case) keeps them; another address clears them and cancels
    the sync of the previous one, in one transaction."""
    from gsworker import new_task
    user = "adm-" + secrets.token_hex(4)
    token_a, token_b = ("1//admin-" + secrets.token_urlsafe(24) for _ in range(2))
    email_a, email_b = mailbox(stack, 3, token_a), mailbox(stack, 2, token_b)
    p = admin(stack, "link", user, "--email", email_a, stdin=token_a + "\n", from_config=True)
    assert p.returncode == 0, p.stderr
    stack.query("UPDATE gmailsync.accounts SET history_id = 1234, last_full_sync_at = now(),"
                " full_sync_task = gen_random_uuid(), full_sync_history_id = 1200,"
                " full_sync_started_at = now() WHERE user_id = %s RETURNING 1", (user,))
    task_id = new_task(stack, user)

    def cursor():
        return stack.query("SELECT history_id, last_full_sync_at IS NOT NULL, full_sync_task IS NOT"
                           " NULL, full_sync_history_id, full_sync_started_at IS NOT NULL FROM"
                           " gmailsync.accounts WHERE user_id = %s", (user,))[0]

    p = admin(stack, "link", user, "--email", email_a.upper(), stdin=token_a + "\n", from_config=True)
    assert p.returncode == 0 and "full one" not in p.stdout, p.stdout + p.stderr
    assert cursor() == (1234, True, True, 1200, True)
    assert task_state(stack, task_id) == "CREATED"

    p = admin(stack, "link", user, "--email", email_b, stdin=token_b + "\n", from_config=True)
    assert p.returncode == 0, p.stderr
    assert f"it was linked to {email_a.upper()}: the next sync is a full one; cancelled task {task_id}" \
        in p.stdout, p.stdout
    assert cursor() == (None, False, False, None, False)
    assert task_state(stack, task_id) == "CANCELLED"
    assert stack.query("SELECT email FROM gmailsync.accounts WHERE user_id = %s", (user,))[0][0] == email_b
