"""Secrets at the edges (issue 10): the OAuth client secret, the database passwords, the token keys
and the OAuth tokens (issue 13) never appear on a command line (`ps` shows every process's argv to
every local user) nor in the environment of the stack's processes, and the generated files that
hold them are private."""
import os
import secrets as pysecrets
import stat
import subprocess
import time

import requests

from conftest import ROOT, RUN_DIR, wait_for

SECRET_FILES = ("client_secret", "pg_app_password", "pg_admin_password", "token_key")


def secrets():
    out = {}
    for name in SECRET_FILES:
        with open(os.path.join(RUN_DIR, "secrets", name)) as f:
            out[name] = f.read().strip()
        assert len(out[name]) >= 16, name
    return out


def read_proc(pid, what):
    try:
        with open("/proc/%s/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:          # gone meanwhile, or not ours to read
        return None


def ended(pid):
    """Gone, or exiting (a zombie, or dead and not yet reaped): its environment is unreadable."""
    stat = read_proc(pid, "stat")
    return stat is None or stat.rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X")


def parents():
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        data = read_proc(pid, "stat")
        if data:
            out[int(pid)] = int(data.rsplit(b")", 1)[1].split()[1])
    return out


def stack_pids(stack):
    """httpd (with its daemon and workers), the fake Gmail API and PostgreSQL, with descendants."""
    roots = set()
    for path in (os.path.join(os.path.dirname(stack.httpd_conf), "httpd.pid"),
                 os.path.join(RUN_DIR, "fake_gmail", "pid"),
                 os.path.join(RUN_DIR, "pg", "data", "postmaster.pid")):
        with open(path) as f:
            roots.add(int(f.readline()))
    ppid = parents()
    pids, grew = set(roots), True
    while grew:
        new = {p for p, pp in ppid.items() if pp in pids} - pids
        pids |= new
        grew = bool(new)
    return pids


def test_no_secret_on_any_command_line_nor_in_the_stack_environment(stack):
    values = secrets()
    # the key file's key, as the daemon writes it on a worker's stdin, and the user's token
    values["token_key"] = values["token_key"].splitlines()[0]
    values["refresh_token"] = "1//0" + pysecrets.token_urlsafe(48)
    u = stack.add_user(messages=300, refresh_token=values["refresh_token"])
    r = requests.post(stack.gmail_url + "/_control/faults", json={
        "method": "messages.get", "mode": "latency", "seconds": 0.2, "count": 1000,
        "email": u["email"]}, timeout=10)
    assert r.status_code == 201, r.text
    try:
        tid = requests.post(stack.api + "/smart", json={}, cookies={"session": u["session"]},
                            timeout=30).json()["task_id"]
        # a worker is running: it got the secret, the keys and the DSN through its stdin, and
        # holds the opened refresh token and a fresh access token
        wait_for("a worker", lambda: subprocess.run(
            ["pgrep", "-f", "gmailsync-worker --task " + tid], capture_output=True).stdout, 5)
        wait_for("the worker's access token", lambda: stack.query(
            "SELECT access_token FROM gmailsync.accounts WHERE user_id = %s",
            (u["user_id"],))[0][0], 10)
        mine = stack_pids(stack)
        kinds = dict.fromkeys((os.path.basename(stack.httpd_bin), "gmailsync-worker",
                               "fake_gmail.py", "postgres"), False)
        leaks = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            argv = read_proc(pid, "cmdline")
            if argv is None:
                continue
            where = [("cmdline", argv)]
            if int(pid) in mine:
                for k in kinds:
                    kinds[k] |= k.encode() in argv
                env = read_proc(pid, "environ")
                for _ in range(10):   # unreadable for a moment while it forks or execs
                    if env is not None or ended(pid):
                        break
                    time.sleep(0.02)
                    env = read_proc(pid, "environ")
                if env is None and ended(pid):
                    continue    # it ended between the two reads (a short-lived process)
                assert env is not None, "cannot read the environment of %s" % pid
                where.append(("environ", env))
            for what, data in where:
                for name, value in values.items():
                    if value.encode() in data:
                        leaks.append("%s of pid %s (%s) holds %s" % (
                            what, pid, argv.replace(b"\0", b" ")[:120].decode(errors="replace"),
                            name))
        assert not leaks, "\n".join(leaks)
        assert all(kinds.values()), kinds     # every kind of process of the stack was looked at
    finally:
        requests.delete(stack.gmail_url + "/_control/faults", timeout=10)
    wait_for("the sync's end", lambda: stack.query(
        "SELECT state FROM gmailsync.sync_tasks WHERE task_id=%s", (tid,))[0][0]
        in ("SUCCEEDED", "FAILED"), 60)


def test_generated_files_holding_secrets_are_private(stack):
    values = secrets()
    mode = stat.S_IMODE(os.stat(stack.httpd_conf).st_mode)
    assert mode & 0o077 == 0, "httpd.conf (DBDParams holds the password) is %o" % mode
    with open(stack.httpd_conf) as f:
        assert values["pg_app_password"] in f.read()   # the file this test is about
    for name in SECRET_FILES:
        st = os.stat(os.path.join(RUN_DIR, "secrets", name))
        allowed = 0o040 if name == "client_secret" else 0   # group: httpd's User, when root
        assert stat.S_IMODE(st.st_mode) & ~allowed & 0o077 == 0, (name, oct(st.st_mode))
    # nothing under run/ that others can reach and read holds a secret
    exposed = []
    for top, dirs, files in os.walk(RUN_DIR):
        dirs[:] = [d for d in dirs if os.stat(os.path.join(top, d)).st_mode & 0o001]
        for name in files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o004:
                continue
            with open(path, "rb") as f:
                data = f.read()
            exposed += ["%s holds %s" % (path, k) for k, v in values.items() if v.encode() in data]
    assert not exposed, "\n".join(exposed)


def test_migrate_passes_the_password_outside_psqls_command_line(stack, tmp_path):
    # a psql that records what it was given: its arguments, its environment and the password
    # file it is pointed at (PGPASSFILE, a private one of the run: issue 21, 9)
    fake = tmp_path / "psql"
    fake.write_text(r"""#!/bin/sh
printf "%s\n" "$@" >"$0.argv"
env >"$0.env"
stat -c %a "$PGPASSFILE" >"$0.mode"
sed 's/^[*]:[*]:[*]:[*]://; s/\\\(.\)/\1/g' "$PGPASSFILE" >"$0.pw"
cat >/dev/null
""")
    fake.chmod(0o700)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ["PATH"]))
    for dsn, password in ((stack.pg_dsn, secrets()["pg_app_password"]),
                          ("postgresql://u:p%40ss%2Fw@127.0.0.1:1/db", "p@ss/w"),
                          ("host=127.0.0.1 password='a b' dbname=db", "a b")):
        env["GS_PG_DSN"] = dsn
        subprocess.run([os.path.join(ROOT, "scripts", "gmailsync-migrate"), "status"], env=env,
                       check=True, capture_output=True, timeout=30)
        argv = (tmp_path / "psql.argv").read_text()
        assert password not in argv and "password" not in argv, argv
        assert password not in (tmp_path / "psql.env").read_text()
        assert (tmp_path / "psql.mode").read_text().strip() == "600"
        assert (tmp_path / "psql.pw").read_text() == password + "\n"
    # and the real thing still connects with it
    proc = subprocess.run([os.path.join(ROOT, "scripts", "gmailsync-migrate"), "status"],
                          env=dict(os.environ, GS_PG_DSN=stack.pg_dsn), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and "applied" in proc.stdout, proc.stdout + proc.stderr
