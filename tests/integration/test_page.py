"""The sync page's server side (issue 11): /status's account and last_success, the page served at
/gmailsync/ with its security headers, and the development login (GmailSyncDevLogin)."""
import concurrent.futures
import hashlib
import os
import re
import subprocess
import textwrap
import threading
import urllib.parse

import requests

from conftest import HTTPD_BIN, PORTS, ROOT, RUN_DIR, run_dev, wait_for
from test_foundation import MODULES, configtest, key_file

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def status(stack, user):
    r = requests.get(stack.api + "/status", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def sync_to_end(stack, user):
    r = requests.post(stack.api + "/smart", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code in (200, 202), r.text
    tid = r.json()["task_id"]

    def ended():
        rows = stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (tid,))
        return rows[0][0] if rows[0][0] in ("SUCCEEDED", "FAILED", "CANCELLED") else None
    assert wait_for("the sync to end", ended, 60) == "SUCCEEDED"
    return tid


# --------------------------------------------------------------------------- /status

def test_status_has_the_account_and_no_last_success_before_the_first_sync(stack):
    user = stack.add_user(messages=3)
    s = status(stack, user)
    assert s["account"] == {"email": user["email"], "connected": True}
    assert s["last_success"] is None
    assert s["task"] is None and s["is_syncing"] is False
    # the fields of before are all still there
    assert {"user_id", "is_syncing", "task_id", "progress_percentage", "started_at",
            "updated_at", "task"} <= set(s)


def test_status_without_a_linked_account_says_null(stack):
    user = stack.add_user(no_account=True)
    s = status(stack, user)
    assert s["account"] is None and s["last_success"] is None and s["task"] is None


def test_status_last_success_is_the_newest_succeeded_task_and_survives_a_failure(stack,
                                                                                 expect_log):
    user = stack.add_user(messages=25)
    tid = sync_to_end(stack, user)
    s = status(stack, user)
    last = s["last_success"]
    assert set(last) == {"task_id", "finished_at", "processed", "duration_s"}
    assert last["task_id"] == tid and last["processed"] == 25
    assert RFC3339.match(last["finished_at"])
    assert last["finished_at"] == s["task"]["finished_at"]
    assert isinstance(last["duration_s"], (int, float)) and 0 <= last["duration_s"] < 60
    row = stack.query("SELECT extract(epoch FROM finished_at - started_at)::float8"
                      " FROM gmailsync.sync_tasks WHERE task_id = %s", (tid,))[0][0]
    assert abs(last["duration_s"] - row) < 0.002
    # a later FAILED task is the latest task; the last success stays
    stack.query("INSERT INTO gmailsync.sync_tasks (user_id, state, error_code, error_message,"
                " started_at, finished_at) VALUES (%s, 'FAILED', 'gmail_unavailable', 'x',"
                " now(), now())", (user["user_id"],))
    s = status(stack, user)
    assert s["task"]["state"] == "FAILED" and s["task"]["error"]["code"] == "gmail_unavailable"
    assert s["last_success"]["task_id"] == tid


def test_status_still_needs_a_session(stack):
    r = requests.get(stack.api + "/status", timeout=30)
    assert r.status_code == 401 and "account" not in r.text


# --------------------------------------------------------------------------- the page

def test_the_page_is_served_with_its_security_headers(stack, http):
    r = http.get(stack.base_url + "/gmailsync/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    for part in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                 "connect-src 'self'", "frame-ancestors 'none'"):
        assert part in csp
    assert "unsafe" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert "<script" in r.text and "<script>" not in r.text and " style=" not in r.text
    for name, ctype in (("app.js", "text/javascript"), ("i18n.js", "text/javascript"),
                        ("message.js", "text/javascript"), ("mailbox.js", "text/javascript"),
                        ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        a = http.get(stack.base_url + "/gmailsync/" + name, timeout=10)
        assert a.status_code == 200 and a.headers["Content-Type"].startswith(ctype), name
        assert a.headers["X-Content-Type-Options"] == "nosniff"
    r = http.get(stack.base_url + "/gmailsync", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"].endswith("/gmailsync/")


# --------------------------------------------------------------------------- dev login

def login_url(stack, user=None, user_id=None):
    """A one-time link of the development login (gmailsync-dev login-url; the session on stdin)."""
    if user_id is not None:
        return run_dev("login-url", "--user-id", user_id).stdout.strip()
    return run_dev("login-url", stdin_text=user["session"] + "\n").stdout.strip()


def nonce_of(url):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert list(q) == ["nonce"] and len(q["nonce"]) == 1, url
    return q["nonce"][0]


def session_cookie(r):
    m = re.match(r"session=([^;]*);", r.headers.get("Set-Cookie", ""))
    return m and m.group(1)


def test_dev_login_signs_in_once_with_a_short_lived_nonce_never_with_the_session(stack, http):
    """Issue 21 item 6: the link carries a one-time nonce (2 minutes, used up atomically),
    never the session; the stack's logs are their owner's alone and hold no nonce."""
    user = stack.add_user(messages=1)
    url = login_url(stack, user)
    nonce = nonce_of(url)
    assert url.startswith(stack.api + "/dev-login?nonce=") and user["session"] not in url
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce) and nonce != user["session"]
    # stored as its SHA-256 only, bound to the session, for two minutes
    rows = stack.query("SELECT encode(session_sha256, 'hex'),"
                       " extract(epoch FROM expires_at - now())::float8"
                       " FROM gmailsync.dev_login_nonces WHERE nonce_sha256 = %s",
                       (hashlib.sha256(nonce.encode()).digest(),))
    assert len(rows) == 1 and rows[0][0] == hashlib.sha256(user["session"].encode()).hexdigest()
    assert 100 < rows[0][1] <= 120, rows
    # a HEAD (a prefetch) does not use it up
    r = requests.head(url, timeout=10, allow_redirects=False)
    assert r.status_code == 405 and "Set-Cookie" not in r.headers
    # the first GET signs in, with a new session of the same user (the URL never had one)
    r = http.get(url, headers={"Sec-Fetch-Site": "none"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/", r.text
    cookie = r.headers["Set-Cookie"]
    new_session = session_cookie(r)
    assert new_session and new_session != user["session"] and new_session != nonce
    for attr in ("Path=/", "HttpOnly", "SameSite=Lax"):
        assert attr in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))
    assert 24 * 3600 - 120 <= max_age <= 24 * 3600, cookie   # what is left of the session
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert http.get(stack.api + "/status", timeout=10).json()["user_id"] == user["user_id"]
    # used up: the same link again, by anyone
    for _ in range(2):
        r = requests.get(url, timeout=10, allow_redirects=False)
        assert r.status_code == 401 and "Set-Cookie" not in r.headers, r.text
        assert r.json()["type"].endswith(":dev-login-link-invalid")
    # the session itself is no login link, in either parameter
    r = requests.get(stack.api + "/dev-login", params={"nonce": user["session"]}, timeout=10,
                     allow_redirects=False)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    for query in ({"token": user["session"]}, {}, {"nonce": "short"}):
        r = requests.get(stack.api + "/dev-login", params=query, timeout=10,
                         allow_redirects=False)
        assert r.status_code == 400 and "Set-Cookie" not in r.headers, query
    r = requests.get(f"{stack.api}/dev-login?nonce={nonce}&nonce={nonce}", timeout=10,
                     allow_redirects=False)
    assert r.status_code == 400
    # expired: refused, and used up too
    late = login_url(stack, user_id=user["user_id"])   # the user's newest session
    stack.query("UPDATE gmailsync.dev_login_nonces SET expires_at = now() - interval '1 second'"
                " WHERE nonce_sha256 = %s", (hashlib.sha256(nonce_of(late).encode()).digest(),))
    assert requests.get(late, timeout=10, allow_redirects=False).status_code == 401
    assert stack.query("SELECT count(*) FROM gmailsync.dev_login_nonces WHERE nonce_sha256 = %s",
                       (hashlib.sha256(nonce_of(late).encode()).digest(),)) == [(0,)]
    # its session gone: refused
    other = stack.add_user(messages=1)
    orphan = login_url(stack, other)
    stack.query("DELETE FROM gmailsync.sessions WHERE token_sha256 = %s",
                (hashlib.sha256(other["session"].encode()).digest(),))
    assert requests.get(orphan, timeout=10, allow_redirects=False).status_code == 401
    # eight browsers at once on one link: exactly one is signed in
    race = login_url(stack, user)
    barrier = threading.Barrier(8)

    def one():
        barrier.wait()
        return requests.get(race, timeout=10, allow_redirects=False)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: one(), range(8)))
    assert sorted(a.status_code for a in answers) == [303] + [401] * 7
    # no nonce and no session in the access log; the stack's logs are not world-readable
    logs = os.path.dirname(stack.error_log)
    access = open(os.path.join(logs, "access_log")).read()
    assert "/api/gmail/sync/dev-login " in access
    for secret in (nonce, nonce_of(late), nonce_of(orphan), nonce_of(race), user["session"],
                   new_session):
        assert secret not in access and secret not in stack.log_since(0)
    for path in (logs, stack.error_log, os.path.join(logs, "access_log"),
                 os.path.join(RUN_DIR, "fake_gmail"),
                 os.path.join(RUN_DIR, "fake_gmail", "fake_gmail.log")):
        assert os.stat(path).st_mode & 0o077 == 0, (path, oct(os.stat(path).st_mode))


def test_dev_login_refuses_cross_site_navigations_proxies_and_foreign_hosts(stack, expect_log):
    """Issue 21 item 6: a page on another site cannot sign a browser in (Sec-Fetch-Site), and
    neither a proxy that adds a header nor a TCP relay for another host's visitors (their Host)
    reaches it; a refusal leaves the link unused."""
    expect_log(r"event=dev_login\.refused")
    user = stack.add_user(messages=1)
    url = login_url(stack, user)
    refusals = [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}]
    refusals += [{h: v} for h, v in (
        ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Host", "app.example.test"),
        ("X-Forwarded-Proto", "https"), ("X-Real-IP", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"), ("Via", "1.1 proxy"), ("True-Client-IP", "203.0.113.9"),
        ("X-Client-IP", "203.0.113.9"), ("CF-Connecting-IP", "203.0.113.9"))]
    port = PORTS["GS_HTTP_PORT"]
    refusals += [{"Host": h} for h in (f"dev.example.test:{port}", f"127.0.0.1.nip.io:{port}",
                                       f"127.attacker.example:{port}", "192.0.2.7")]
    for headers in refusals:
        r = requests.get(url, headers=headers, timeout=10, allow_redirects=False)
        assert r.status_code == 403 and "Set-Cookie" not in r.headers, (headers, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"
        want = "cross-site" if "Sec-Fetch-Site" in headers else "loopback-only"
        assert r.json()["type"].endswith(":dev-login-" + want), (headers, r.text)
    assert requests.post(url, timeout=10, allow_redirects=False).status_code == 405
    # the link is still good, once; loopback names are fine
    for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        fresh = login_url(stack, user)
        r = requests.get(fresh, headers={"Host": host, "Sec-Fetch-Site": "same-origin"},
                         timeout=10, allow_redirects=False)
        assert r.status_code == 303 and session_cookie(r), (host, r.text)
    r = requests.get(url, headers={"Sec-Fetch-Site": "none"}, timeout=10, allow_redirects=False)
    assert r.status_code == 303 and session_cookie(r)


def test_dev_login_is_off_by_default_and_in_the_shipped_conf(stack, tmp_path):
    text = open(os.path.join(ROOT, "conf", "gmailsync.conf")).read()
    assert re.search(r"^\s*GmailSyncDevLogin Off\s*$", text, re.M)
    assert not re.search(r"^\s*GmailSyncDevLogin On", text, re.M | re.I)
    # a server with the shipped configuration answers 404, like any unknown endpoint
    port = int(PORTS["GS_HTTP_PORT"]) + 8
    conf = tmp_path / "httpd.conf"
    (tmp_path / "logs").mkdir()
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    conf.write_text(textwrap.dedent(f"""\
        ServerRoot "{tmp_path}"
        ServerName 127.0.0.1:{port}
        Listen 127.0.0.1:{port}
        PidFile "{tmp_path}/httpd.pid"
        DefaultRuntimeDir "{tmp_path}"
        ErrorLog "{tmp_path}/logs/error_log"
        LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
        LoadModule authz_core_module {MODULES}/mod_authz_core.so
        LoadModule authz_host_module {MODULES}/mod_authz_host.so
        LoadModule dbd_module {MODULES}/mod_dbd.so
        LoadModule gmailsync_module "{ROOT}/build/mod_gmailsync.so"
        DBDriver pgsql
        DBDParams "host=127.0.0.1 port=1 dbname=gmailsync connect_timeout=2"
        Include "{ROOT}/conf/gmailsync.conf"
        GmailSyncTokenKeyFile "{key_file(tmp_path)}"
        """) + user)
    os.chmod(tmp_path, 0o755)
    subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-k", "start"],
                   check=True, timeout=30)
    try:
        def answer():
            try:
                return [requests.get(f"http://127.0.0.1:{port}/api/gmail/sync/dev-login?token=x",
                                     timeout=5)]   # a list: a 404 Response is falsy
            except requests.RequestException:
                return None
        r = wait_for("the second httpd", answer, 30, interval=0.1)[0]
        assert r.status_code == 404 and r.json()["type"].endswith(":not-found")
    finally:
        subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-k", "stop"],
                       timeout=30)


def test_dev_login_on_is_refused_unless_httpd_listens_on_loopback_only(stack, tmp_path):
    # loopback only: accepted
    proc, _ = configtest(tmp_path, "GmailSyncDevLogin On")
    assert proc.returncode == 0, proc.stderr
    # a wildcard or a non-loopback address: a startup error naming the directive (-t binds nothing)
    for listen in ("Listen 19097", "Listen 0.0.0.0:19097", "Listen [::]:19097",
                   "Listen 192.0.2.10:19097"):
        proc, _ = configtest(tmp_path, f"{listen}\nGmailSyncDevLogin On")
        assert proc.returncode != 0, listen
        assert "GmailSyncDevLogin On is for a local development server only" in proc.stderr, \
            proc.stderr
    proc, _ = configtest(tmp_path, "Listen 127.0.0.2:19097\nGmailSyncDevLogin On")
    assert proc.returncode == 0, proc.stderr
    proc, _ = configtest(tmp_path, "GmailSyncDevLogin maybe")
    assert proc.returncode != 0 and "GmailSyncDevLogin" in proc.stderr


def test_the_page_section_needs_mod_headers_when_mod_alias_is_loaded(stack, tmp_path):
    proc, _ = configtest(tmp_path, "")
    assert proc.returncode == 0, proc.stderr     # neither: no page, nothing to check
    conf = tmp_path / "httpd.conf"
    text = conf.read_text().replace(
        "LoadModule dbd_module", f"LoadModule alias_module {MODULES}/mod_alias.so\nLoadModule dbd_module")
    conf.write_text(text)
    proc = subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-t"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "needs mod_headers" in proc.stderr
    conf.write_text(text.replace(
        "LoadModule dbd_module", f"LoadModule headers_module {MODULES}/mod_headers.so\nLoadModule dbd_module"))
    proc = subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-t"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_make_install_ships_the_page_and_points_the_conf_at_it(stack, tmp_path):
    dest = tmp_path / "stage"
    subprocess.run(["make", "-s", "install", f"DESTDIR={dest}"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    version = open(os.path.join(ROOT, "VERSION")).read().strip()
    found = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    www = [f for f in found if f"/mod_gmailsync/{version}/www/" in f]
    names = sorted(os.path.basename(f) for f in www)
    assert names == ["app.js", "favicon.svg", "i18n.js", "index.html", "mailbox.js", "message.js",
                     "style.css"], names
    conf = [f for f in found if f.endswith(f"/mod_gmailsync/{version}/conf/gmailsync.conf")][0]
    text = open(conf).read()
    www_dir = os.path.dirname(www[0])[len(str(dest)):]
    assert f'Define GMAILSYNC_WWW "{www_dir}"' in text and "@GS_WWW_DIR@" not in text
