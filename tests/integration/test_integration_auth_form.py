"""docs/integration.md's example, run as written: GmailSyncUserFrom remote-user behind Apache's
own form login (mod_auth_form, mod_session, an encrypted cookie). The configuration is read from
the document's ```apache block, with only the two file paths and the cookie's Secure attribute
(this stack is plain http on loopback) changed, so the guide cannot drift from what works."""
import os
import re
import subprocess

import pytest
import requests


ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = ["macro", "request", "session", "session_cookie", "session_crypto", "auth_form",
           "authn_core", "authn_file", "authz_user"]


def documented_config():
    with open(os.path.join(ROOT, "docs", "integration.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```apache\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/integration.md must hold one ```apache block"
    return blocks[0]


@pytest.fixture
def form_login(stack, shared_tmp):
    user = stack.add_user(messages=3, user_id="carol-" + os.urandom(3).hex())
    users = os.path.join(shared_tmp, "gmailsync-users")
    subprocess.run(["htpasswd", "-bcB", users, user["user_id"], "s3cret pass"], check=True,
                   capture_output=True)
    os.chmod(users, 0o644)
    passphrase = os.path.join(shared_tmp, "session-passphrase")
    with open(passphrase, "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    os.chmod(passphrase, 0o600)
    conf = documented_config()
    for old, new in (("/etc/apache2/gmailsync-users", users),
                     ("/etc/apache2/session-passphrase", passphrase),
                     (";Secure;", ";")):
        assert old in conf, old
        conf = conf.replace(old, new)
    loads = "".join("LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n" % (m, m) for m in MODULES)
    stack.reconfigure_text(loads + conf, name="auth_form.conf")
    try:
        yield user
    finally:
        stack.reconfigure(None)


def login(stack, user, password):
    s = requests.Session()
    r = s.post(stack.base_url + "/login", data={"httpd_username": user["user_id"],
                                                "httpd_password": password},
               allow_redirects=False, timeout=30)
    return s, r


def test_the_guides_form_login_is_the_users_identity(stack, form_login, expect_log):
    user = form_login
    expect_log(r"AH01807: user '%s': authentication failure for \"/login\": password Mismatch"
               % re.escape(user["user_id"]))
    api = stack.api
    # no login: the API is 401, the page sends the browser to the form, health stays open
    assert requests.get(api + "/status", timeout=30).status_code == 401
    r = requests.get(stack.base_url + "/gmailsync/", allow_redirects=False, timeout=30)
    assert r.status_code in (302, 303) and r.headers["Location"].endswith("/login.html"), r.headers
    assert requests.get(api + "/health", timeout=30).status_code in (200, 503)
    # a wrong password sets no login
    s, r = login(stack, user, "wrong")
    assert r.status_code in (302, 303) and "failed" in r.headers["Location"], (r.status_code, r.headers)
    assert s.get(api + "/status", timeout=30).status_code == 401
    # signed in: the page loads, a start creates the task of that user, /status answers for it
    s, r = login(stack, user, "s3cret pass")
    assert r.status_code in (302, 303) and r.headers["Location"].endswith("/gmailsync/"), r.headers
    cookie = s.cookies.get("appsession")
    assert cookie and user["user_id"] not in cookie and "s3cret" not in cookie, cookie
    assert s.get(stack.base_url + "/gmailsync/", timeout=30).status_code == 200
    r = s.post(api + "/smart", json={}, headers={"Origin": stack.base_url}, timeout=30)
    assert r.status_code in (200, 202), r.text
    tid = r.json()["task_id"]
    assert stack.query("SELECT user_id FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (tid,)) == [(user["user_id"],)]
    st = s.get(api + "/status", timeout=30)
    assert st.status_code == 200, st.text
    # the module's own session cookie means nothing in this mode
    assert requests.get(api + "/status", cookies={"session": user["session"]},
                        timeout=30).status_code == 401
    # signed out: 401 again
    s.get(stack.base_url + "/logout", allow_redirects=False, timeout=30)
    assert s.get(api + "/status", timeout=30).status_code == 401
