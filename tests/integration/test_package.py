"""The Debian package (debian/, issue 25), built from the tree and installed into a scratch root:
a mount namespace whose /etc, /usr and /var are overlays of the machine's (writes go to a
temporary directory; the machine's own apache2 installation, dpkg database and /run are never
touched) and whose /run is empty. In it: lintian, install (a2enmod through dh_apache2, the
conffiles, the commands and their man pages), Debian's own apache2 started with the package on
the stack's port, a sync started with gmailsync-admin reaching SUCCEEDED, an upgrade (VERSION
bumped) while a sync runs (graceful reload: the task succeeds), the old release kept and
`gmailsync-rollback --to` it, then purge leaving nothing of the package behind.

Builds at nice 19 (two .debs, a few minutes on a busy machine). Skipped, saying why, when not
root or when dpkg-buildpackage, lintian or unshare is missing."""
import glob
import json
import os
import re
import shutil
import subprocess
import time

import pytest
import requests

from conftest import ROOT, run_dev, wait_for

PKG = "libapache2-mod-gmailsync"
COMMANDS = ("gmailsync-migrate", "gmailsync-status", "gmailsync-cleanup", "gmailsync-toggle",
            "gmailsync-rollback", "gmailsync-activate", "gmailsync-rotate-key", "gmailsync-admin")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
       "DEBIAN_FRONTEND": "noninteractive"}

if os.geteuid() != 0:
    pytest.skip("the package test installs into a mount namespace: it needs root",
                allow_module_level=True)
for tool in ("dpkg-buildpackage", "lintian", "unshare", "nsenter"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is missing (apt-get install dpkg-dev lintian util-linux)",
                    allow_module_level=True)


def tree_version():
    with open(os.path.join(ROOT, "VERSION")) as f:
        return f.read().strip()


def build(dest, version=None):
    """A copy of the tree's files (git ls-files: tracked and new, not ignored), built with
    dpkg-buildpackage at nice 19; the path of the .deb (version: a bumped VERSION file)."""
    src = os.path.join(dest, "src")
    os.makedirs(src)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    for f in files:
        f = f.decode()
        if not f or f.startswith("run/") or not os.path.isfile(os.path.join(ROOT, f)):
            continue
        os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(src, f))
    for f in ("Makefile", "config.status", "config.log"):
        if os.path.exists(os.path.join(src, f)):
            os.unlink(os.path.join(src, f))
    if version:
        with open(os.path.join(src, "VERSION"), "w") as f:
            f.write(version + "\n")
    env = dict(ENV, DEB_BUILD_OPTIONS="nocheck" if version else "")
    p = subprocess.run(["nice", "-n", "19", "dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                       env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, (p.stdout + p.stderr)[-6000:]
    debs = glob.glob(os.path.join(dest, f"{PKG}_{version or tree_version()}_amd64.deb"))
    assert len(debs) == 1, os.listdir(dest)
    return debs[0]


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    # GS_TEST_DEB_DIR: keep the two builds there and reuse them (only while iterating on this
    # test: they are not rebuilt when the tree changes)
    base = os.environ.get("GS_TEST_DEB_DIR") or str(tmp_path_factory.mktemp("deb"))
    new_version = tree_version() + "+pkgtest1"
    found = [glob.glob(os.path.join(base, d, f"{PKG}_{v}_amd64.deb"))
             for d, v in (("old", tree_version()), ("new", new_version))]
    if all(len(f) == 1 for f in found):
        old, new = found[0][0], found[1][0]
    else:
        shutil.rmtree(os.path.join(base, "old"), ignore_errors=True)
        shutil.rmtree(os.path.join(base, "new"), ignore_errors=True)
        old = build(os.path.join(base, "old"))
        new = build(os.path.join(base, "new"), new_version)
    return {"old": old, "new": new, "old_version": tree_version(), "new_version": new_version}


class Root:
    """The scratch root: a process holding a mount namespace with the overlays; commands enter
    it with nsenter."""

    def __init__(self, path):
        self.path = path
        for d in ("etc", "usr", "var"):
            os.makedirs(os.path.join(path, "upper", d))
            os.makedirs(os.path.join(path, "work", d))
        ready = os.path.join(path, "ready")
        script = "set -e\n" + "".join(
            f"mount -t overlay overlay -o lowerdir=/{d},upperdir={path}/upper/{d},"
            f"workdir={path}/work/{d} /{d}\n" for d in ("etc", "usr", "var")) + \
            f"mount -t tmpfs -o mode=0755 tmpfs /run\nmkdir -m 1777 /run/lock\ntouch {ready}\nexec sleep 3600\n"
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sh", "-c", script], env=ENV)
        wait_for("the scratch root", lambda: os.path.exists(ready) or self.holder.poll() is not None,
                 30)
        assert self.holder.poll() is None, "unshare/overlay failed (see stderr)"

    def run(self, *argv, check=True, stdin=None, timeout=300):
        p = subprocess.run(["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--", *argv],
                           env=ENV, capture_output=True, text=True, input=stdin, timeout=timeout)
        if check:
            assert p.returncode == 0, f"{argv}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def sh(self, script, **kw):
        return self.run("sh", "-c", script, **kw)

    def exists(self, path):
        return self.run("test", "-e", path, check=False).returncode == 0

    def close(self):
        self.run("sh", "-c", "[ ! -f /run/apache2/apache2.pid ] || apache2ctl stop", check=False)
        self.holder.kill()
        self.holder.wait(10)


@pytest.fixture
def root(tmp_path):
    r = Root(str(tmp_path / "root"))
    yield r
    r.close()


def test_lintian_is_clean(debs):
    for deb in (debs["old"], debs["new"]):
        p = subprocess.run(["lintian", "--fail-on", "error,warning", deb], capture_output=True,
                           text=True, timeout=600)
        tags = [l for l in p.stdout.splitlines() if l[:2] in ("E:", "W:")]
        assert p.returncode == 0 and not tags, p.stdout + p.stderr


def site_conf(stack):
    """The site's settings for Debian's apache2 in the scratch root: the stack's database, fake
    Gmail and secrets, on the stack's port (its own httpd is stopped meanwhile)."""
    secrets_dir = os.path.join(os.path.dirname(os.path.dirname(stack.httpd_conf)), "secrets")
    gmail = stack.gmail_url
    port = stack.base_url.rsplit(":", 1)[1]
    return port, f"""DBDriver pgsql
DBDParams "{stack.pg_dsn}?connect_timeout=5"
DBDMin 1
<IfModule gmailsync_module>
GmailSyncApiBase "{gmail}"
GmailSyncTokenURL "{gmail}/token"
GmailSyncClientId gmailsync-dev-client
GmailSyncClientSecretFile "{secrets_dir}/client_secret"
GmailSyncTokenKeyFile "{secrets_dir}/token_key"
</IfModule>
"""


def health(base):
    try:
        r = requests.get(base + "/api/gmail/sync/health", timeout=3)
        return r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def admin(root, *args, stdin=None):
    p = root.run("gmailsync-admin", *args, stdin=stdin, check=False, timeout=120)
    assert p.returncode == 0, f"gmailsync-admin {args}: {p.stdout}{p.stderr}"
    return p.stdout


def test_install_sync_upgrade_rollback_purge(stack, debs, root):
    old_v, new_v = debs["old_version"], debs["new_version"]
    port, conf = site_conf(stack)
    base = f"http://127.0.0.1:{port}"
    # the scratch root's Apache: the site's database settings first (the package enables the
    # module only when DBDParams is there), the stack's port, no default site, and a policy-rc.d
    # that records what the maintainer scripts ask of the service and allows only reload
    root.sh(f"""set -e
        cat >/etc/apache2/conf-available/gmailsync-site.conf <<'EOF'
{conf}EOF
        a2enconf -q gmailsync-site
        a2dissite -q 000-default
        echo 'Listen 127.0.0.1:{port}' >/etc/apache2/ports.conf
        cat >/usr/sbin/policy-rc.d <<'EOF'
#!/bin/sh
echo "$@" >>/var/log/policy-rc.d.log
case "$2" in reload|"(reload)") exit 0 ;; *) exit 101 ;; esac
EOF
        chmod 0755 /usr/sbin/policy-rc.d""")

    # ---- install the old release
    p = root.run("dpkg", "-i", debs["old"], timeout=600)
    assert root.exists("/etc/apache2/mods-enabled/gmailsync.load"), p.stdout + p.stderr
    for dep in ("dbd", "headers"):
        assert root.exists(f"/etc/apache2/mods-enabled/{dep}.load")
    conffiles = root.run("dpkg-query", "-W", "-f=${Conffiles}", PKG).stdout
    for c in ("/etc/apache2/mods-available/gmailsync.conf", "/etc/apache2/mods-available/gmailsync.load",
              "/etc/default/gmailsync"):
        assert c in conffiles
    for c in COMMANDS:
        assert root.exists(f"/usr/sbin/{c}")
        page = root.run("man", "-P", "cat", "8", c, timeout=60).stdout
        assert c in page and "SYNOPSIS" in page
        helped = root.run(c, "--help", check=False).stdout
        # every option --help describes (at the start of a line) or its usage line names is in
        # the man page
        opts = set(re.findall(r"(?m)^\s*(?:-\w, )?(--[a-z][a-z0-9-]*)", helped))
        opts |= set(re.findall(r"\[(--[a-z][a-z0-9-]*)", helped))
        assert opts, (c, helped)
        for opt in opts - {"--help"}:
            assert opt in page.replace("\u2010", "-"), (c, opt)
    active = root.run("cat", "/etc/apache2/gmailsync/active-version.conf").stdout
    assert f"Define GMAILSYNC_VERSION {old_v}" in active
    assert "Syntax OK" in root.run("apache2ctl", "-t").stderr

    # ---- Debian's apache2 with the package, on the stack's port
    httpd_dir = os.path.dirname(stack.httpd_conf)
    subprocess.run([stack.httpd_bin, "-d", httpd_dir, "-f", stack.httpd_conf, "-k", "stop"],
                   check=True, timeout=60)
    try:
        wait_for("the stack's httpd to stop", lambda: requests_refused(base), 30)
        root.run("apache2ctl", "start")
        wait_for("the packaged module's /health", lambda: (health(base) or {}).get("version") == old_v,
                 30, diagnose=lambda: health(base))

        user, token = "pkg-user", "1//pkg-" + os.urandom(8).hex()
        email = make_mailbox(stack, token, 3000)
        admin(root, "link", user, "--email", email, stdin=token + "\n")
        # Gmail answers this mailbox's batches slowly: the sync is still running when the
        # upgrade reloads httpd
        fault = requests.post(stack.gmail_url + "/_control/faults", timeout=10, json={
            "method": "batch", "mode": "latency", "seconds": 0.3, "count": -1, "email": email})
        assert fault.status_code == 201, fault.text
        task = json.loads(admin(root, "sync", "start", user))["task_id"]
        wait_for("the task to run", lambda: state(stack, task) == "RUNNING", 30)

        # ---- the upgrade while it runs
        root.run("dpkg", "-i", debs["new"], timeout=600)
        asked = root.run("cat", "/var/log/policy-rc.d.log").stdout
        assert "reload" in asked and "restart" not in asked and "stop" not in asked, asked
        wait_for("the new release's /health", lambda: (health(base) or {}).get("version") == new_v,
                 60, diagnose=lambda: health(base))
        assert state(stack, task) == "RUNNING"      # the reload did not stop it
        requests.delete(stack.gmail_url + "/_control/faults/" + fault.json()["id"], timeout=10)
        wait_for("the task started before the upgrade to succeed",
                 lambda: state(stack, task) in ("SUCCEEDED", "FAILED", "CANCELLED", "STUCK"), 180)
        assert state(stack, task) == "SUCCEEDED"
        for d in ("/usr/libexec/mod_gmailsync", "/usr/share/mod_gmailsync"):
            assert root.exists(f"{d}/{old_v}") and root.exists(f"{d}/{new_v}")
        listed = root.run("gmailsync-rollback", "--list").stdout
        assert old_v in listed and new_v in listed

        # ---- rollback to the old release, without its .deb
        p = root.run("gmailsync-rollback", "--to", old_v, "--wait-tasks", "0", check=False,
                     timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert (health(base) or {}).get("version") == old_v
        again = json.loads(admin(root, "sync", "start", user))
        wait_for("a sync after the rollback", lambda: state(stack, again["task_id"]) == "SUCCEEDED", 120)
        root.run("apache2ctl", "stop")
        wait_for("the packaged httpd to stop", lambda: requests_refused(base), 30)
    finally:
        root.run("sh", "-c", "[ ! -f /run/apache2/apache2.pid ] || apache2ctl stop", check=False)
        run_dev("up", extra_conf=stack.extra_path)

    # ---- purge: nothing of the package is left
    root.run("dpkg", "--purge", PKG, timeout=600)
    # /var/cache/man: the cat pages `man` above wrote (man-db's cache, not the package's)
    left = root.sh("find /etc /usr /var \\( -path /var/log -o -path /var/cache/man \\) -prune -o "
                   "-name '*gmailsync*' -print "
                   # the site's settings and a2enconf's record of them are the test's own
                   "| grep -Ev '^/etc/apache2/conf-.*/gmailsync-site.conf$|"
                   "^/var/lib/apache2/conf/enabled_by_admin/gmailsync-site$' || true").stdout.split()
    assert left == [], left
    assert not root.exists("/usr/lib/apache2/modules/mod_gmailsync.so")


def requests_refused(base):
    try:
        requests.get(base + "/", timeout=2)
        return False
    except requests.ConnectionError:
        return True


def make_mailbox(stack, token, messages):
    email = f"pkg-{os.urandom(4).hex()}@example.test"
    r = requests.post(stack.gmail_url + "/_control/mailboxes", timeout=120, json={
        "email": email, "messages": messages, "seed": 11, "refresh_token": token,
        "prerender": True})
    assert r.status_code in (200, 201), r.text
    return email


def state(stack, task):
    return stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (task,))[0][0]


def test_fresh_site_keep_versions_and_remove(debs, root):
    """Without DBDParams the module is installed, not enabled (httpd would refuse to start);
    an upgrade keeps the last GS_KEEP_VERSIONS releases the package installed; remove takes them
    away and keeps the conffiles."""
    old_v, new_v = debs["old_version"], debs["new_version"]
    p = root.run("dpkg", "-i", debs["old"], timeout=600)
    assert "installed, not enabled" in p.stdout + p.stderr
    assert not root.exists("/etc/apache2/mods-enabled/gmailsync.load")
    # two older releases the package had installed before
    root.sh("set -e; for v in 0.0.1 0.0.2; do mkdir -p /usr/libexec/mod_gmailsync/$v "
            "/usr/share/mod_gmailsync/$v; done; "
            f"printf '0.0.1\\n0.0.2\\n{old_v}\\n' >/var/lib/gmailsync/package-releases")
    root.run("dpkg", "-i", debs["new"], timeout=600)
    kept = root.run("cat", "/var/lib/gmailsync/package-releases").stdout.split()
    assert kept == ["0.0.2", old_v, new_v]
    for d in ("/usr/libexec/mod_gmailsync", "/usr/share/mod_gmailsync"):
        assert not root.exists(f"{d}/0.0.1")
        for v in ("0.0.2", old_v, new_v):
            assert root.exists(f"{d}/{v}")
    assert f"Define GMAILSYNC_VERSION {new_v}" in root.run(
        "cat", "/etc/apache2/gmailsync/active-version.conf").stdout

    root.run("dpkg", "--remove", PKG, timeout=600)
    for v in ("0.0.2", old_v, new_v):
        for d in ("/usr/libexec/mod_gmailsync", "/usr/share/mod_gmailsync"):
            assert not root.exists(f"{d}/{v}"), (d, v)
    for path in ("/usr/lib/mod_gmailsync", "/usr/sbin/gmailsync-admin",
                 "/usr/lib/apache2/modules/mod_gmailsync.so"):
        assert not root.exists(path), path
    for conffile in ("/etc/apache2/mods-available/gmailsync.conf", "/etc/default/gmailsync"):
        assert root.exists(conffile)
