"""A Debian-style installation for the rollback tests: versions of this tree built with their own
VERSION, installed side by side with `make install` into a staged prefix, and a scratch copy of
Debian's /etc/apache2 (APACHE_CONFDIR) that a2enmod/apache2ctl really drive. Its httpd runs on the
test stack's PostgreSQL and fake Gmail, on its own port; the rollback scripts switch it.

Nothing outside the run directory is written: make install gets prefix, APACHE_CONFDIR and
HTTPD_LIBEXECDIR under it, a2enmod gets APACHE_STATE_DIRECTORY, apache2ctl the scratch envvars.
"""
import json
import os
import pwd
import re
import shutil
import subprocess
import time

import requests

from conftest import ROOT, RUN_DIR, wait_for

HTTPD_BIN = "/usr/sbin/apache2"


def sh(args, env=None, cwd=ROOT, timeout=300, check=True):
    p = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


class DebianInstall:
    def __init__(self, stack, name, port):
        self.stack = stack
        self.root = os.path.join(RUN_DIR, name)
        self.prefix = os.path.join(self.root, "stage", "usr")
        self.libexec_root = os.path.join(self.prefix, "libexec", "mod_gmailsync")
        self.data_root = os.path.join(self.prefix, "share", "mod_gmailsync")
        self.modules = os.path.join(self.prefix, "lib", "apache2", "modules")
        self.confdir = os.path.join(self.root, "etc", "apache2")
        self.state_dir = os.path.join(self.root, "state")
        self.log_dir = os.path.join(self.root, "log")
        self.run_dir = os.path.join(self.root, "run")
        self.error_log = os.path.join(self.log_dir, "error.log")
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.api = self.base + "/api/gmail/sync"
        self.health_url = self.api + "/health"
        self.active_file = os.path.join(self.confdir, "gmailsync", "active-version.conf")
        self.toggles_file = os.path.join(self.confdir, "gmailsync", "toggles.conf")
        self.env = dict(os.environ, APACHE_CONFDIR=self.confdir,
                        APACHE_STATE_DIRECTORY=os.path.join(self.root, "apache2-state"),
                        GS_STATE_DIR=self.state_dir, GS_HEALTH_URL=self.health_url)
        self.env.pop("GS_PG_DSN", None)   # the scripts must find the database through DBDParams

    # ---------------------------------------------------------------- build and install
    def build(self, version):
        b = os.path.join(self.root, "build-" + version)
        mk = os.path.join(ROOT, "Makefile")
        if not os.path.exists(mk) or os.path.getmtime(mk) < os.path.getmtime(mk + ".in"):
            sh(["./configure", "-q"], env=self.env)
        sh(["make", "-s", "-j2", f"VERSION={version}", f"B={b}", f"prefix={self.prefix}",
            "WERROR=-Werror"], env=self.env)
        return b

    def install(self, version, activate=None, destdir=None):
        args = ["make", "-s", "install", f"VERSION={version}",
                f"B={os.path.join(self.root, 'build-' + version)}", f"prefix={self.prefix}",
                f"APACHE_CONFDIR={self.confdir}", f"HTTPD_LIBEXECDIR={self.modules}"]
        if activate is not None:
            args.append(f"ACTIVATE={activate}")
        if destdir:
            args.append(f"DESTDIR={destdir}")
        return sh(args, env=self.env)

    # ---------------------------------------------------------------- the scratch /etc/apache2
    def make_tree(self, site_conf):
        for d in (self.log_dir, self.run_dir, os.path.join(self.root, "lock"), self.state_dir):
            os.makedirs(d, exist_ok=True)
        shutil.copytree("/etc/apache2", self.confdir, symlinks=True, dirs_exist_ok=True)
        for n in os.listdir(os.path.join(self.confdir, "sites-enabled")):
            os.unlink(os.path.join(self.confdir, "sites-enabled", n))
        with open(os.path.join(self.confdir, "ports.conf"), "w") as f:
            f.write(f"Listen 127.0.0.1:{self.port}\n")
        user = "www-data" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        with open(os.path.join(self.confdir, "envvars"), "a") as f:
            f.write(f"""
# scratch copy for the rollback tests: everything under {self.root}
export APACHE_RUN_USER={user}
export APACHE_RUN_GROUP={user if user != 'www-data' else 'www-data'}
export APACHE_PID_FILE={self.run_dir}/apache2.pid
export APACHE_RUN_DIR={self.run_dir}
export APACHE_LOCK_DIR={self.root}/lock
export APACHE_LOG_DIR={self.log_dir}
export APACHE_STATE_DIRECTORY={self.root}/apache2-state
""")
        # DBDParams holds the database password: readable by its owner only (httpd reads its
        # configuration before it drops privileges)
        site = os.path.join(self.confdir, "conf-available", "gmailsync-site.conf")
        with open(os.open(site, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(site_conf)

    def a2(self, *args):
        return sh(list(args), env=self.env)

    def ctl(self, *args, check=True):
        return sh(["/usr/sbin/apache2ctl", *args], env=self.env, check=check, timeout=60)

    # ---------------------------------------------------------------- httpd
    def health(self):
        try:
            r = requests.get(self.health_url, timeout=5, headers={"Connection": "close"})
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def start(self):
        self.ctl("start")
        return wait_for("the Debian httpd", self.health, 30)

    def stop(self):
        pidfile = os.path.join(self.run_dir, "apache2.pid")
        if not os.path.exists(pidfile):
            return
        pid = int(open(pidfile).read())
        self.ctl("stop", check=False)

        def gone():
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True
        wait_for("the Debian httpd to stop", gone, 30)

    def generations(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read().count("resuming normal operations")
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.error_log, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def log_size(self):
        return os.path.getsize(self.error_log) if os.path.exists(self.error_log) else 0

    # ---------------------------------------------------------------- the scripts
    def script(self, version, name):
        return os.path.join(self.data_root, version, "rollback", name)

    def run_script(self, version, name, *args, timeout=180):
        t0 = time.monotonic()
        p = subprocess.run([self.script(version, name), *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        p.seconds = time.monotonic() - t0
        return p

    def active(self):
        with open(self.active_file) as f:
            return re.search(r"^Define GMAILSYNC_VERSION (\S+)$", f.read(), re.M).group(1)


def summary(stdout):
    """The `summary: k=v ...` line of gmailsync-rollback as a dict."""
    for line in stdout.splitlines():
        if line.startswith("summary: "):
            return dict(kv.split("=", 1) for kv in line[len("summary: "):].split())
    raise AssertionError("no summary line in:\n" + stdout)


def dump(obj):
    return json.dumps(obj, indent=1, default=str)
