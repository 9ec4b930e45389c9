"""gs_ops -- what gmailsync-toggle and gmailsync-rollback share: where things are installed, how
to talk to httpd (apachectl with APACHE_CONFDIR, or httpd -d/-f), /health, the lock, atomic file
replacement, the effective gmailsync directives, secret redaction.

Debian's python3 (/usr/bin/python3); psycopg2 (python3-psycopg2) only for the incident bundle's
database part. Nothing here puts a secret on a command line or in a log line.
"""
import collections
import fcntl
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
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


# What a child process (apachectl, httpd -t, envvars, gmailsync-activate) gets of our
# environment: the search path, the locale, Debian's APACHE_* settings and the sanitizers'
# options. Nothing else: the caller's environment may hold GS_PG_DSN or PGPASSWORD with a
# password, which httpd would pass on to every CGI and worker and show in /proc/PID/environ.
CHILD_ENV_NAMES = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "HOME", "TERM",
                   "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_PRELOAD")


def child_env(**extra):
    """A child's environment: CHILD_ENV_NAMES, LC_* and APACHE_* of ours, then extra."""
    env = {k: v for k, v in os.environ.items()
           if k in CHILD_ENV_NAMES or k.startswith(("LC_", "APACHE_"))}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(extra)
    return env


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
    g.add_argument("--health-url", default=env.get("GS_HEALTH_URL", ""),
                   help="the /health of this httpd (default: found from the configuration: "
                        "GmailSyncPrefix on each Listen address, the first that mod_gmailsync "
                        "answers)")
    g.add_argument("--health-token-file", default=env.get("GS_HEALTH_TOKEN_FILE", ""),
                   help="file holding the bearer token of /health and /metrics (default: the "
                        "configuration's GmailSyncHealthTokenFile, if it sets one)")
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
    args.health_token = None   # resolve_health reads it (GmailSyncHealthTokenFile)
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
        self.env = child_env(APACHE_CONFDIR=args.confdir)
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
        entries, out, _ = self.include_entries()
        return [path for path, _ in entries], out

    def include_entries(self):
        """[(path, key)] of the configuration files in httpd's reading order (-t -D
        DUMP_INCLUDES), the output, and whether the configuration passed -t. key orders every
        line of every file as httpd reads it: position(key, line) (a file included at line N of
        its parent comes between that parent's lines N-1 and N+1)."""
        p = self.run("-t", "-D", "DUMP_INCLUDES")
        return include_tree(p.stdout), (p.stdout + p.stderr).strip(), p.returncode == 0

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


# ------------------------------------------------------------------ /health

# One answer of /health: status None when nothing answered; module: mod_gmailsync answered (its
# X-GmailSync-Version header, set even on a 503); version: the body's on a 200, else the header's.
Reading = collections.namedtuple("Reading", "status body version error module url")


def _open(url, token, timeout, accept):
    headers = {"Connection": "close", "Accept": accept}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, headers=headers)
    ctx = None
    if url.startswith("https://"):
        # this host's own httpd on loopback (a certificate for its public name, not 127.0.0.1)
        ctx = ssl._create_unverified_context() if _loopback(url) else None
    return urllib.request.urlopen(req, timeout=timeout, context=ctx)


def _loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def read_health(url, token=None, timeout=5.0):
    """GET /health on a fresh connection (an old generation's keep-alive connection never
    answers for the new one), with the bearer token if there is one."""
    try:
        with _open(url, token, timeout, "application/json") as resp:
            raw = resp.read(1 << 22)
            status, headers = resp.status, resp.headers
    except urllib.error.HTTPError as e:
        raw, status, headers = e.read(1 << 16), e.code, e.headers
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        return Reading(None, None, None, f"{url}: {reason}", False, url)
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = None
    hdr = headers.get("X-GmailSync-Version")
    # the module answers every error under its prefix as application/problem+json, also those
    # httpd raises before the handler (401/403 of an access check)
    module = bool(hdr) or (headers.get("Content-Type") or "").startswith("application/problem+json")
    version = (body or {}).get("version") if status == 200 else None
    err = None
    if status != 200:
        detail = (body or {}).get("type") or (body or {}).get("title") or ""
        detail = str(detail).rsplit("/", 1)[-1] if detail else ""
        err = f"{url}: HTTP {status}" + (f" ({detail})" if detail else "") + \
            ("" if module else ", not from mod_gmailsync")
    elif body is None or not isinstance(body.get("version"), str):
        err = f"{url}: HTTP 200 but not mod_gmailsync's /health (no JSON with a version)"
        module = False
    return Reading(status, body, version or hdr, err, module or not err, url)


def health(url, timeout=5.0, token=None):
    """(status, body dict or None, version or None, error text): see read_health."""
    r = read_health(url, token, timeout)
    return r.status, r.body, r.version, r.error


def fetch_text(url, timeout=10.0, token=None):
    try:
        with _open(url, token, timeout, "*/*") as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return f"# HTTP {e.code}\n" + e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"# {url}: {getattr(e, 'reason', e)}\n"


def wait_health(url, predicate, timeout, token=None):
    """Polls /health until predicate(status, body, version) holds; returns (ok, last), last a
    Reading."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = read_health(url, token, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
        if predicate(last.status, last.body, last.version):
            return True, last
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(0.1)


def describe(reading):
    """What a /health answer was, in words, for an error message."""
    if reading.error:
        return reading.error
    b = reading.body or {}
    return (f"HTTP 200 version={b.get('version')} enabled={str(b.get('enabled')).lower()} "
            f"mode={b.get('mode')} max_workers={b.get('max_workers')}")


def expand(value, env):
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: env.get(m.group(1), m.group(0)), value)


LISTEN_RE = re.compile(r"^\s*Listen\s+(\S+)(?:\s+(\S+))?\s*$", re.I)


def health_candidates(files, env):
    """The /health URLs the configuration can answer on: GmailSyncPrefix on each Listen address
    (a wildcard address through loopback), plain http first."""
    prefix = last_directive(files, "GmailSyncPrefix", env) or "/api/gmail/sync"
    prefix = "/" + prefix.strip("/")
    plain, tls = [], []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = LISTEN_RE.match(line)
            if not m:
                continue
            addr, proto = expand(m.group(1), env).strip('"'), (m.group(2) or "").lower()
            host, _, port = addr.rpartition(":")
            if not port.isdigit():
                continue
            host = host.strip("[]")
            if host in ("", "*", "0.0.0.0"):
                host = "127.0.0.1"
            elif host == "::":
                host = "::1"
            if ":" in host:
                host = f"[{host}]"
            https = proto == "https" or (not proto and port == "443")
            url = f"{'https' if https else 'http'}://{host}:{port}{prefix}/health"
            lst = tls if https else plain
            if url not in lst:
                lst.append(url)
    return plain + tls


def read_token_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read(4096).strip()
    except OSError as e:
        raise Failure(f"cannot read the /health token file {path} (GmailSyncHealthTokenFile): "
                      f"{e.strerror}")
    if not token or any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7e for c in token):
        raise Failure(f"the /health token file {path} holds no usable token (one line of "
                      "printable characters)")
    return token


def resolve_health(args, httpd, files=None, env=None):
    """Sets args.health_url (when not given: derived from the configuration) and
    args.health_token (GmailSyncHealthTokenFile), and returns the first Reading. The Reading has
    error set when /health could not be read."""
    if files is None:
        files, _ = httpd.included_files()
    if env is None:
        env = httpd.envvars()
        env.update(httpd.run_cfg()["defines"])
    token_file = args.health_token_file or last_directive(files, "GmailSyncHealthTokenFile", env)
    if token_file and not os.path.isabs(token_file):
        token_file = os.path.join(args.server_root or args.confdir, token_file)
    args.health_token = read_token_file(token_file) if token_file else None
    if args.health_url:
        return read_health(args.health_url, args.health_token)
    tried = []
    for url in health_candidates(files, env):
        r = read_health(url, args.health_token)
        if r.module:
            args.health_url = url
            return r
        tried.append(r.error)
    args.health_url = "http://127.0.0.1/api/gmail/sync/health"
    why = "; ".join(tried) if tried else "the configuration names no Listen address"
    return Reading(None, None, None, f"no Listen address of the configuration answers /health "
                   f"from mod_gmailsync ({why}); give --health-url (GS_HEALTH_URL)", False, None)


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


def include_tree(dump):
    """[(path, key)] from the output of -t -D DUMP_INCLUDES, which indents each included file
    below its parent and names the parent's line that includes it: "(*) root", "(146) file"."""
    entries, stack, seen = [], [], {}
    for m in re.finditer(r"^( +)\((\*|\d+)\) (\S.*?)\s*$", dump, re.M):
        indent, line, path = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ()
        if line == "*":
            key = ()
        else:
            n = int(line)
            seq = seen[(parent, n)] = seen.get((parent, n), 0) + 1
            key = parent + ((n, seq),)
        stack.append((indent, key))
        entries.append((path, key))
    return entries


def position(key, line):
    """Where line `line` of the file with `key` comes in httpd's reading order."""
    return key + ((line, 0),)


def settings_after(entries, after_path, name):
    """[(path, line number, text)] of each `name` directive httpd reads after the whole of
    after_path (its last inclusion). None when after_path is not included at all."""
    real = os.path.realpath(after_path)
    keys = [k for p, k in entries if os.path.realpath(p) == real]
    if not keys:
        return None
    end = position(keys[-1], 1 << 60)
    rx = re.compile(r"^\s*" + re.escape(name) + r"\s+\S", re.I)
    found = []
    for path, key in entries:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for n, text in enumerate(lines, 1):
            if rx.match(text) and position(key, n) > end:
                found.append((path, n, text.strip()))
    return found


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
    value = expand(value, env)
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
