"""gs_ops -- what gmailsync-toggle and gmailsync-rollback share: where things are installed, how
to talk to httpd (apachectl with APACHE_CONFDIR, or httpd -d/-f), /health, the lock, atomic file
replacement, the effective gmailsync directives, secret redaction.

Debian's python3 (/usr/bin/python3); psycopg2 (python3-psycopg2) only for the incident bundle's
database part. Nothing here puts a secret on a command line or in a log line.
"""
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)          # rollback/ (installed: DATADIR/VERSION/rollback/)

DEBIAN = {
    "libexec_root": "/usr/libexec/mod_gmailsync",
    "data_root": "/usr/share/mod_gmailsync",
    "apache_confdir": "/etc/apache2",
    "httpd_modules": "/usr/lib/apache2/modules",
}
GS_DIRECTIVES = ("GmailSync", "GmailSyncMode", "GmailSyncMaxWorkers", "GmailSyncAutoSync")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")
DURATION_RE = re.compile(r"^([0-9]+)(ms|s|m|h|d|)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Failure(Exception):
    """An error to report in one line and exit 1 with."""


def say(prog, msg, err=False):
    print(f"{prog}: {msg}", file=sys.stderr if err else sys.stdout, flush=True)


def duration(text):
    m = DURATION_RE.match(text or "")
    if not m:
        raise ValueError(f"bad duration {text!r}: a whole number with ms, s, m, h or d (e.g. 1h)")
    v = int(m.group(1))
    return v / 1000 if m.group(2) == "ms" else float(v * UNITS[m.group(2)])


def version_key(v):
    """Orders versions like `sort -V`: digit runs as numbers, the rest as text."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[^\d.]+", v)]


# ------------------------------------------------------------------ layout

def read_layout():
    """The layout make install recorded beside the scripts (rollback/layout), else Debian's."""
    layout = dict(DEBIAN)
    path = os.path.join(TOOLS, "layout")
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep and not k.startswith("#"):
                    layout[k] = v
    except FileNotFoundError:
        pass
    return layout


def add_common_options(ap):
    layout = read_layout()
    env = os.environ
    g = ap.add_argument_group("where things are (defaults: what make install recorded, else Debian's)")
    g.add_argument("--confdir", default=env.get("APACHE_CONFDIR", layout["apache_confdir"]),
                   help="Apache configuration directory, as APACHE_CONFDIR (default %(default)s)")
    g.add_argument("--apachectl", default=env.get("GS_APACHECTL", "/usr/sbin/apachectl"),
                   help="apachectl (Debian's honours APACHE_CONFDIR; default %(default)s)")
    g.add_argument("--httpd", default=env.get("GS_HTTPD", ""),
                   help="drive this httpd binary with -d/-f instead of apachectl")
    g.add_argument("--server-root", default=env.get("GS_HTTPD_ROOT", ""),
                   help="with --httpd: its -d (default: --confdir)")
    g.add_argument("--httpd-conf", default=env.get("GS_HTTPD_CONF", ""),
                   help="with --httpd: its -f")
    g.add_argument("--health-url", default=env.get("GS_HEALTH_URL",
                                                   "http://127.0.0.1/api/gmail/sync/health"),
                   help="the /health of this httpd (default %(default)s)")
    g.add_argument("--prefix", default=env.get("GS_PREFIX", ""),
                   help="install prefix: versions in PREFIX/libexec/mod_gmailsync and "
                        "PREFIX/share/mod_gmailsync")
    g.add_argument("--libexec-root", default=env.get("GS_LIBEXEC_ROOT", layout["libexec_root"]),
                   help="directory of the versions' module and worker (default %(default)s)")
    g.add_argument("--data-root", default=env.get("GS_DATA_ROOT", layout["data_root"]),
                   help="directory of the versions' page, SQL and conf (default %(default)s)")
    g.add_argument("--modules", default=env.get("GS_HTTPD_MODULES", layout["httpd_modules"]),
                   help="httpd module directory with the mod_gmailsync.so link, or none")
    g.add_argument("--timeout", type=duration, default=duration("30s"), metavar="DURATION",
                   help="how long to wait for /health after the graceful restart (default 30s)")


def finish_common_options(args):
    if args.prefix:
        args.libexec_root = os.path.join(args.prefix, "libexec", "mod_gmailsync")
        args.data_root = os.path.join(args.prefix, "share", "mod_gmailsync")
    args.gsdir = os.path.join(args.confdir, "gmailsync")
    args.active_file = os.path.join(args.gsdir, "active-version.conf")
    args.toggles_file = os.path.join(args.gsdir, "toggles.conf")
    return args


class Version:
    def __init__(self, args, v):
        self.v = v
        self.libexec = os.path.join(args.libexec_root, v)
        self.data = os.path.join(args.data_root, v)
        self.so = os.path.join(self.libexec, "mod_gmailsync.so")
        self.worker = os.path.join(self.libexec, "gmailsync-worker")
        self.www = os.path.join(self.data, "www")
        self.sql = os.path.join(self.data, "sql")
        self.conf = os.path.join(self.data, "conf")

    def newest_migration(self):
        nums = [int(n[:3]) for n in os.listdir(self.sql) if re.match(r"^\d{3}_.*\.up\.sql$", n)]
        return max(nums) if nums else 0


def installed_versions(args):
    found = set()
    for root in (args.libexec_root, args.data_root):
        try:
            found.update(n for n in os.listdir(root)
                         if VERSION_RE.match(n) and os.path.isdir(os.path.join(root, n)))
        except FileNotFoundError:
            pass
    return sorted(found, key=version_key)


def active_version(args):
    """The version named by the active-version file, or None."""
    try:
        with open(args.active_file) as f:
            for line in f:
                m = re.match(r"^\s*Define\s+GMAILSYNC_VERSION\s+(\S+)\s*$", line)
                if m:
                    return m.group(1)
    except FileNotFoundError:
        return None
    raise Failure(f"{args.active_file} names no version (no 'Define GMAILSYNC_VERSION' line)")


# ------------------------------------------------------------------ httpd

class Httpd:
    """apachectl with APACHE_CONFDIR (Debian), or an httpd binary with -d and -f."""

    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ, APACHE_CONFDIR=args.confdir)
        if args.httpd:
            root = args.server_root or args.confdir
            self.base = [args.httpd, "-d", root] + (["-f", args.httpd_conf]
                                                    if args.httpd_conf else [])
        else:
            self.base = [args.apachectl]

    def run(self, *argv, timeout=120):
        try:
            return subprocess.run(self.base + list(argv), env=self.env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError as e:
            raise Failure(f"cannot run {self.base[0]}: {e.strerror}")
        except subprocess.TimeoutExpired:
            raise Failure(f"{' '.join(self.base + list(argv))} did not finish in {timeout} s")

    def configtest(self):
        p = self.run("-t")
        return p.returncode == 0, (p.stdout + p.stderr).strip()

    def graceful(self):
        p = self.run("-k", "graceful")
        return p.returncode == 0, (p.stdout + p.stderr).strip()

    def included_files(self):
        p = self.run("-t", "-D", "DUMP_INCLUDES")
        files = [m.group(1) for m in re.finditer(r"^\s*\((?:\*|\d+)\)\s+(\S.*?)\s*$", p.stdout,
                                                 re.M)]
        return files, (p.stdout + p.stderr).strip()

    def run_cfg(self):
        p = self.run("-t", "-D", "DUMP_RUN_CFG")
        out = p.stdout + p.stderr
        cfg = {"text": out.strip()}
        m = re.search(r'^Main ErrorLog: "(.*)"\s*$', out, re.M)
        cfg["error_log"] = m.group(1) if m else None
        cfg["defines"] = dict(re.findall(r"^Define: ([A-Za-z0-9_]+)(?:=(.*))?$", out, re.M))
        return cfg

    def envvars(self):
        """The environment apachectl gives httpd (Debian's envvars), for ${VAR} in directives."""
        path = os.environ.get("APACHE_ENVVARS") or os.path.join(self.args.confdir, "envvars")
        env = dict(os.environ)
        if os.path.isfile(path):
            p = subprocess.run(["sh", "-c", '. "$1" >/dev/null 2>&1; env -0', "sh", path],
                               env=self.env, capture_output=True, timeout=30)
            if p.returncode == 0:
                env = dict(kv.split("=", 1) for kv in p.stdout.decode("utf-8", "replace")
                           .split("\0") if "=" in kv)
        return env

    def binary(self):
        """The httpd binary itself (for testing a module in a throw-away configuration)."""
        if self.args.httpd:
            return self.args.httpd
        return self.envvars().get("APACHE_HTTPD", "/usr/sbin/apache2").split()[0]


def health(url, timeout=5.0):
    """(status, body dict or None, version or None, error text). A fresh connection each time,
    so that an old generation's keep-alive connection never answers for the new one."""
    req = urllib.request.Request(url, headers={"Connection": "close", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status, hdr = resp.status, resp.headers.get("X-GmailSync-Version")
    except urllib.error.HTTPError as e:
        raw, status, hdr = e.read(), e.code, e.headers.get("X-GmailSync-Version")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, None, None, f"{url}: {getattr(e, 'reason', e)}"
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        body = None
    version = (body or {}).get("version") if status == 200 else None
    return status, body, version or hdr, None if status == 200 else f"{url}: HTTP {status}"


def fetch_text(url, timeout=10.0):
    req = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return f"# HTTP {e.code}\n" + e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"# {url}: {getattr(e, 'reason', e)}\n"


def wait_health(url, predicate, timeout):
    """Polls /health until predicate(status, body, version) holds; returns (ok, last)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = health(url, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
        if predicate(*last[:3]):
            return True, last
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(0.1)


# ------------------------------------------------------------------ files

class Lock:
    """One toggle or rollback at a time per Apache configuration (flock, released on exit)."""

    def __init__(self, gsdir, prog):
        confdir = os.path.dirname(gsdir)
        if not os.path.isfile(os.path.join(confdir, "apache2.conf")) and \
                not os.path.isdir(os.path.join(confdir, "mods-available")):
            raise Failure(f"{confdir} is not an Apache configuration directory (--confdir, "
                          "APACHE_CONFDIR)")
        os.makedirs(gsdir, exist_ok=True)
        self.path = os.path.join(gsdir, ".lock")
        old = os.umask(0o077)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        finally:
            os.umask(old)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(prog, f"waiting for another gmailsync-toggle/-rollback ({self.path})", err=True)
            fcntl.flock(self.fd, fcntl.LOCK_EX)


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def replace_file(path, data, mode=0o644):
    """Writes data beside path and renames it over path (atomic); data None removes path."""
    if data is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    d = os.path.dirname(path)
    old = os.umask(0o077)
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    finally:
        os.umask(old)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_link(path):
    try:
        return os.readlink(path)
    except (FileNotFoundError, OSError):
        return None


def replace_link(path, target):
    """Points the symlink path at target (a new link renamed over it); None removes it."""
    if target is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.rename(tmp, path)


# ------------------------------------------------------------------ configuration text

DIRECTIVE_RE = re.compile(
    r"^\s*((?:GmailSync\w*|DBD\w+)\s.*|LoadModule\s+(?:gmailsync|dbd)_module\s.*"
    r"|Define\s+GMAILSYNC_\w+.*|(?:Include|IncludeOptional)\s+\S*gmailsync\S*.*"
    r"|Alias\s+/gmailsync/.*)$", re.I)


def effective_directives(files):
    """The gmailsync-related lines of the included files, in the order httpd reads them
    (a later one wins), each with file:line."""
    out = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    if DIRECTIVE_RE.match(line):
                        out.append(f"{path}:{n}: {line.strip()}")
        except OSError as e:
            out.append(f"{path}: cannot read: {e.strerror}")
    return out


def last_directive(files, name, env):
    """The value of the last `name` directive in the files, ${VAR} expanded, quotes removed."""
    value = None
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.match(r"^\s*" + name + r"\s+(.*?)\s*$", line, re.I)
                    if m:
                        value = m.group(1)
        except OSError:
            pass
    if value is None:
        return None
    value = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: env.get(m.group(1), m.group(0)), value)
    try:
        parts = shlex.split(value)
        return parts[0] if len(parts) == 1 else value
    except ValueError:
        return value


def loaded_modules(files, env):
    """{module name: path} of the LoadModule lines of the included files (${VAR} expanded)."""
    mods = {}
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.match(r"^\s*LoadModule\s+(\S+)\s+(.*?)\s*$", line, re.I)
                    if m:
                        v = re.sub(r"\$\{([A-Za-z0-9_]+)\}",
                                   lambda x: env.get(x.group(1), x.group(0)), m.group(2))
                        mods[m.group(1)] = v.strip('"')
        except OSError:
            pass
    return mods


REDACTIONS = (
    (re.compile(r"(password\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s\"']+)", re.I), r"\1***"),
    (re.compile(r"(://[^:/@\s\"']+:)[^@\s\"']+@"), r"\1***@"),
    (re.compile(r"(client_secret\s*[=:]\s*)\S+", re.I), r"\1***"),
    (re.compile(r"((?:access|refresh)_token[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9._/+-]{8,}", re.I),
     r"\1***"),
    (re.compile(r"(Bearer\s+)\S+", re.I), r"\1***"),
)


def redact(text, secrets=()):
    for rx, rep in REDACTIONS:
        text = rx.sub(rep, text)
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text
