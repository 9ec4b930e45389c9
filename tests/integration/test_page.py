"""The sync page's server side (issue 11): /status's account and last_success, the page served at
/gmailsync/ with its security headers, and the development login (GmailSyncDevLogin)."""
import os
import re
import subprocess
import textwrap

import requests

from conftest import HTTPD_BIN, PORTS, ROOT, wait_for
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
                        ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        a = http.get(stack.base_url + "/gmailsync/" + name, timeout=10)
        assert a.status_code == 200 and a.headers["Content-Type"].startswith(ctype), name
        assert a.headers["X-Content-Type-Options"] == "nosniff"
    r = http.get(stack.base_url + "/gmailsync", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"].endswith("/gmailsync/")


# --------------------------------------------------------------------------- dev login

def test_dev_login_sets_the_session_cookie_and_redirects_to_the_page(stack, http):
    user = stack.add_user(messages=1)
    r = http.get(stack.api + "/dev-login", params={"token": user["session"]},
                 allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/gmailsync/"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("session=" + user["session"] + ";")
    for attr in ("Path=/", "HttpOnly", "SameSite=Lax"):
        assert attr in cookie
    assert re.search(r"Max-Age=\d+", cookie)
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    # the cookie works
    assert http.get(stack.api + "/status", timeout=10).json()["user_id"] == user["user_id"]


def test_dev_login_refuses_unknown_tokens_missing_tokens_and_proxied_clients(stack, expect_log):
    expect_log(r"event=dev_login\.refused")
    user = stack.add_user(messages=1)
    r = requests.get(stack.api + "/dev-login", params={"token": "not-a-session"}, timeout=10,
                     allow_redirects=False)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    r = requests.get(stack.api + "/dev-login", timeout=10, allow_redirects=False)
    assert r.status_code == 400 and "Set-Cookie" not in r.headers
    r = requests.get(stack.api + "/dev-login?token=a&token=b", timeout=10, allow_redirects=False)
    assert r.status_code == 400
    for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                   {"Via": "1.1 proxy"}):
        r = requests.get(stack.api + "/dev-login", params={"token": user["session"]},
                         headers=header, timeout=10, allow_redirects=False)
        assert r.status_code == 403 and "Set-Cookie" not in r.headers, header
        assert r.headers["Content-Type"] == "application/problem+json"
    r = requests.post(stack.api + "/dev-login", params={"token": user["session"]}, timeout=10)
    assert r.status_code == 405


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
    assert names == ["app.js", "favicon.svg", "i18n.js", "index.html", "style.css"], names
    conf = [f for f in found if f.endswith(f"/mod_gmailsync/{version}/conf/gmailsync.conf")][0]
    text = open(conf).read()
    www_dir = os.path.dirname(www[0])[len(str(dest)):]
    assert f'Define GMAILSYNC_WWW "{www_dir}"' in text and "@GS_WWW_DIR@" not in text
