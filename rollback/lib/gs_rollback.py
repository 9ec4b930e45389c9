"""gmailsync-rollback: incident bundle, version switch, check, graceful restart, verification
(see ../gmailsync-rollback)."""
import argparse
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gs_ops  # noqa: E402
from gs_ops import Failure  # noqa: E402

PROG = "gmailsync-rollback"
LOG_TIME = re.compile(r"^\[(?:\w{3}) (\w{3}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? (\d{4})\]")
MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                      "Sep", "Oct", "Nov", "Dec"), 1)}
LOG_TAIL_BYTES = 64 << 20
TASK_COLUMNS = ("task_id, user_id, state, force_full, mode, processed, total, progress_percentage,"
                " error_code, error_message, worker_host, worker_pid, {worker_version}, created_at,"
                " started_at, heartbeat_at, finished_at, updated_at")


# ------------------------------------------------------------------ the database

def connect(dsn):
    try:
        import psycopg2
    except ImportError:
        raise Failure("python3-psycopg2 is missing: apt-get install python3-psycopg2")
    os.environ.setdefault("PGCONNECT_TIMEOUT", "10")
    try:
        conn = psycopg2.connect(dsn, application_name=PROG)
    except psycopg2.Error as e:
        return None, first_line(e, dsn)
    conn.set_session(isolation_level="READ COMMITTED", readonly=True, autocommit=True)
    return conn, None


def first_line(e, dsn):
    msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return gs_ops.redact(msg, [password_of(dsn)])


def password_of(dsn):
    try:
        import psycopg2.extensions
        return psycopg2.extensions.parse_dsn(dsn).get("password")
    except Exception:
        return None


def query(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '30s'")
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else []


def has_worker_version(conn):
    return bool(query(conn, "SELECT 1 FROM information_schema.columns WHERE table_schema ="
                            " 'gmailsync' AND table_name = 'sync_tasks'"
                            " AND column_name = 'worker_version'"))


def running_tasks(conn):
    col = "worker_version" if has_worker_version(conn) else "NULL::text"
    return query(conn, f"SELECT task_id::text, user_id, {col}, worker_host"
                       " FROM gmailsync.sync_tasks WHERE state = 'RUNNING' ORDER BY started_at")


# ------------------------------------------------------------------ the incident bundle

def log_lines_since(path, since):
    """The error log lines written at or after `since` (epoch seconds, the log's local time);
    a line without a timestamp goes with the line before it."""
    out, keep = [], False
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > LOG_TAIL_BYTES:
            f.seek(size - LOG_TAIL_BYTES)
            f.readline()
        for raw in f:
            line = raw.decode("utf-8", "replace")
            m = LOG_TIME.match(line)
            if m:
                mon, day, hh, mm, ss, year = m.groups()
                try:
                    t = time.mktime((int(year), MONTHS.get(mon, 1), int(day), int(hh), int(mm),
                                     int(ss), 0, 0, -1))
                except (OverflowError, ValueError):
                    t = since
                keep = t >= since - 1
            if keep:
                out.append(line if line.endswith("\n") else line + "\n")
    return out


class Bundle:
    """Files collected in memory, then packed as one .tar.gz (mode 0600) in the state dir."""

    def __init__(self, name, secrets):
        self.name = name
        self.secrets = [s for s in secrets if s]
        self.files = []

    def add(self, path, text):
        text = gs_ops.redact(text if text.strip() else "(empty)\n", self.secrets)
        self.files.append((path, text.encode("utf-8")))

    def write(self, directory):
        old = os.umask(0o077)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            final = os.path.join(directory, self.name + ".tar.gz")
            fd, tmp = tempfile.mkstemp(prefix="." + self.name, dir=directory)
        finally:
            os.umask(old)
        try:
            with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
                now = time.time()
                d = tarfile.TarInfo(self.name)
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o700, now
                tar.addfile(d)
                for path, data in self.files:
                    info = tarfile.TarInfo(f"{self.name}/{path}")
                    info.size, info.mode, info.mtime = len(data), 0o600, now
                    tar.addfile(info, io.BytesIO(data))
            os.rename(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return final


README = """\
mod_gmailsync incident bundle
=============================

Saved by gmailsync-rollback on {host} at {when} (UTC), before {action}.
Incident window: the last {window} ({since} .. {when}).
Active version: {active}; running version (/health): {running}; target: {target}.
Secrets are redacted: the database password, the OAuth client secret and tokens never appear.

Files
  README.txt         this file
  versions.txt       installed versions (module, worker, page present?), the active one, the target
  health.json        GET /health: version, enabled/mode/max_workers (the toggles), task counts,
                     the stuck count, alerts, and the versions of the RUNNING tasks' workers (the
                     task ids only with ?detail=1 and GmailSyncHealthTokenFile's token)
  metrics.txt        GET /metrics (Prometheus text): gmailsync_build_info{{version}}, starts,
                     Gmail answers by status class, task durations, running tasks by worker version
  error_log.txt      the httpd error log lines of the window (source: {error_log});
                     events are `event=...` key=value lines, workers' lines start with `worker:`
  sync_tasks.csv     the sync_tasks rows of the window (created, updated or still active), with
                     state, error_code/error_message, worker_host/pid and worker_version: which
                     version ran what
  schema.txt         applied migrations (gmailsync.schema_migrations)
  directives.conf    the effective gmailsync directives (file:line, in the order httpd reads them;
                     a later line wins), the active-version and toggles files
  configtest.txt     apachectl -t before the switch

Reading it
  - What failed: sync_tasks.csv, error_code per state; error_log.txt, event=task.failed lines.
  - Which version: worker_version of the failing rows vs. versions.txt; health.json "running".
  - Stuck: health.json "stuck_tasks" and "metrics"; sync_tasks.csv, state STUCK; error_log.txt
    event=task.stuck / worker.killed.
  - Gmail trouble: metrics.txt gmailsync_gmail_calls_total{{status="429"|"5xx"|"error"}};
    error_log.txt event=gmail.retry.
  - Toggles in force: health.json enabled/mode/max_workers; directives.conf (toggles file).
"""


def collect(args, httpd, conn, db_error, active, running, target, action, since, secrets,
            files, configtest):
    now = time.time()
    utc = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    name = f"gmailsync-incident-{utc}-{active or 'none'}-to-{target}"
    b = Bundle(name, secrets)
    cfg = httpd.run_cfg()
    b.add("README.txt", README.format(
        host=socket.gethostname(), when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)), window=args.window_text,
        action=action, active=active, running=running, target=target,
        error_log=cfg["error_log"]))

    lines = [f"active:  {active}   ({args.active_file})", f"running: {running}   (/health)",
             f"target:  {target}", "", "installed:"]
    for v in gs_ops.installed_versions(args):
        ver = gs_ops.Version(args, v)
        have = [n for n, p in (("module", ver.so), ("worker", ver.worker), ("page", ver.www),
                               ("sql", ver.sql)) if os.path.exists(p)]
        mark = "*" if v == active else " "
        lines.append(f" {mark} {v:<16} {' '.join(have):<26} {ver.libexec}  {ver.data}")
    b.add("versions.txt", "\n".join(lines) + "\n")

    st, body, _, err = gs_ops.health(args.health_url, timeout=10, token=args.health_token)
    b.add("health.json", json.dumps(body, indent=2, sort_keys=True) + "\n" if body is not None
          else f"# /health did not answer: {err}\n")
    b.add("metrics.txt", gs_ops.fetch_text(metrics_url(args.health_url),
                                           token=args.health_token))

    log = cfg["error_log"]
    if log and not log.startswith("|") and os.path.isfile(log):
        try:
            text = "".join(log_lines_since(log, since))
        except OSError as e:
            text = ""
            log = f"{log} (unreadable: {e.strerror})"
        b.add("error_log.txt", f"# {log}: lines since "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}\n" + text)
    else:
        b.add("error_log.txt", f"# the error log is not a readable file: {log!r}\n")

    if conn is None:
        b.add("sync_tasks.csv", f"# the database could not be reached: {db_error}\n")
        b.add("schema.txt", f"# the database could not be reached: {db_error}\n")
    else:
        try:
            database_part(b, conn, since)
        except Exception as e:   # psycopg2.Error: the rest of the bundle still matters
            b.add("sync_tasks.csv", f"# database error: {first_line(e, '')}\n")
            b.add("schema.txt", f"# database error: {first_line(e, '')}\n")

    text = "# effective gmailsync directives (file:line; a later line wins)\n"
    text += "\n".join(gs_ops.effective_directives(files)) + "\n"
    for label, path in (("active-version file", args.active_file),
                        ("toggles file", args.toggles_file)):
        data = gs_ops.read_bytes(path)
        text += f"\n# ---- {label}: {path}\n" + (data.decode("utf-8", "replace") if data
                                                     is not None else "(absent)\n")
    b.add("directives.conf", text)
    b.add("configtest.txt", configtest + "\n")
    return b.write(os.path.join(args.state_dir, "incidents"))


def database_part(b, conn, since):
    col = "worker_version" if has_worker_version(conn) else "NULL::text AS worker_version"
    sql = (f"COPY (SELECT {TASK_COLUMNS.format(worker_version=col)} FROM gmailsync.sync_tasks"
           " WHERE created_at >= to_timestamp(%s) OR updated_at >= to_timestamp(%s)"
           "    OR state IN ('CREATED', 'RUNNING', 'STUCK')"
           " ORDER BY created_at LIMIT 100000) TO STDOUT WITH (FORMAT csv, HEADER)")
    out = io.StringIO()
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '60s'")
        cur.copy_expert(cur.mogrify(sql, (since, since)).decode(), out)
    b.add("sync_tasks.csv", out.getvalue())
    rows = query(conn, "SELECT version, name, applied_at::text"
                       " FROM gmailsync.schema_migrations ORDER BY version")
    b.add("schema.txt", "".join(f"{v:03d} {n:<32} {a}\n" for v, n, a in rows))


def metrics_url(health_url):
    return re.sub(r"/health/?$", "/metrics", health_url) if re.search(r"/health/?$", health_url) \
        else health_url.rstrip("/") + "/../metrics"


# ------------------------------------------------------------------ checks

def check_target(args, httpd, target, schema_version, live_modules):
    """Refuses a target that cannot run, before anything is touched. Returns a list of problems."""
    v = gs_ops.Version(args, target)
    problems = []

    def need_file(path, what, exe=False):
        if not os.path.exists(path):
            problems.append(f"{what} missing: {path}")
            return False
        if not os.path.isfile(path):
            problems.append(f"{what} is not a regular file: {path}")
            return False
        if not os.access(path, os.R_OK):
            problems.append(f"{what} is not readable: {path}")
            return False
        if exe and not (os.stat(path).st_mode & 0o111 and os.access(path, os.X_OK)):
            problems.append(f"{what} is not executable: {path}")
            return False
        return True

    so_ok = need_file(v.so, "module")
    if so_ok:
        with open(v.so, "rb") as f:
            if f.read(4) != b"\x7fELF":
                problems.append(f"module is not a shared object (no ELF header): {v.so}")
                so_ok = False
    worker_ok = need_file(v.worker, "worker", exe=True)
    if worker_ok:
        try:
            p = subprocess.run([v.worker, "--version"], capture_output=True, text=True,
                               timeout=10, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
            said = p.stdout.strip()
            if p.returncode != 0 or said != f"gmailsync-worker {target}":
                problems.append(f"worker {v.worker} --version said {said!r} (exit {p.returncode}),"
                                f" expected 'gmailsync-worker {target}'")
                worker_ok = False
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append(f"worker {v.worker} does not run: {e}")
            worker_ok = False
    for path, what in ((v.www, "page directory"), (v.sql, "migrations directory"),
                       (v.conf, "conf directory")):
        if not os.path.isdir(path):
            problems.append(f"{what} missing: {path}")
    if os.path.isdir(v.sql):
        need = v.newest_migration()
        if schema_version is not None and need > schema_version:
            problems.append(f"{target} needs schema migration {need:03d} but the database is at "
                            f"{schema_version:03d}: run {v.data}/bin/gmailsync-migrate up first")
    if so_ok:
        ok, out = load_test(httpd, v, live_modules, worker_ok)
        if not ok:
            problems.append(f"the module does not load (httpd -t on a test configuration):\n{out}")
    return problems


def load_test(httpd, v, live, with_worker):
    """httpd -t on a throw-away configuration that loads the live configuration's MPM and
    mod_dbd, then the target's module, and names its worker: a broken or incompatible .so fails
    here, not in the live configuration."""
    default = "/usr/lib/apache2/modules"
    mpm = next((n for n in live if n.startswith("mpm_")), "mpm_event_module")
    lines = [f'LoadModule {mpm} "{live.get(mpm, default + "/mod_" + mpm[:-7] + ".so")}"',
             f'LoadModule dbd_module "{live.get("dbd_module", default + "/mod_dbd.so")}"']
    with tempfile.TemporaryDirectory(prefix="gmailsync-loadtest.") as d:
        conf = os.path.join(d, "httpd.conf")
        with open(conf, "w") as f:
            f.write(f'ServerRoot "{d}"\nServerName 127.0.0.1\nListen 127.0.0.1:1\n'
                    f'PidFile "{d}/pid"\nErrorLog "{d}/error_log"\nDefaultRuntimeDir "{d}"\n'
                    + "\n".join(lines) + "\n"
                    f'LoadModule gmailsync_module "{v.so}"\n'
                    f'DBDriver pgsql\nDBDParams "host=127.0.0.1 dbname=gmailsync"\n'
                    # a load test only: Off needs no GmailSyncTokenKeyFile (the live
                    # configuration's own checks are apachectl -t after the switch)
                    'GmailSync Off\n'
                    + (f'GmailSyncWorker "{v.worker}"\n' if with_worker else ""))
        try:
            p = subprocess.run([httpd.binary(), "-d", d, "-f", conf, "-t"], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL,
                               env=gs_ops.child_env())
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, str(e)
        return p.returncode == 0, (p.stdout + p.stderr).strip()


# ------------------------------------------------------------------ the switch

def activate(args, target, previous):
    cmd = [os.path.join(gs_ops.TOOLS, "gmailsync-activate"), "--confdir", args.confdir,
           "--libexec-root", args.libexec_root, "--data-root", args.data_root,
           "--modules", args.modules or "none"]
    if previous:
        cmd += ["--previous", previous]
    p = subprocess.run(cmd + [target], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=gs_ops.child_env())
    if p.returncode != 0:
        raise Failure(f"activation failed: {(p.stdout + p.stderr).strip()}")


def list_versions(args):
    active = gs_ops.active_version(args)
    r = gs_ops.resolve_health(args, gs_ops.Httpd(args))
    running, err = (r.version if r.status == 200 else None), r.error
    for v in gs_ops.installed_versions(args):
        ver = gs_ops.Version(args, v)
        flags = ["active"] if v == active else []
        if v == running:
            flags.append("running")
        if not os.path.isfile(ver.so) or not os.access(ver.worker, os.X_OK):
            flags.append("incomplete")
        print(f"{'*' if v == active else ' '} {v:<16} {' '.join(flags)}")
    print(f"active: {active or 'none'} ({args.active_file}); running: "
          f"{running or 'unknown (' + str(err) + ')'}")
    return 0


def rollback(args):
    lock = gs_ops.Lock(args.gsdir, PROG)  # noqa: F841 (held until exit)
    t_start = time.monotonic()
    httpd = gs_ops.Httpd(args)
    active = gs_ops.active_version(args)
    installed = gs_ops.installed_versions(args)
    if args.to:
        target = args.to
        if target not in installed:
            raise Failure(f"{target} is not installed (installed: {', '.join(installed) or 'none'})")
    else:
        if not active:
            raise Failure("no active version: name one with --to")
        older = [v for v in installed if gs_ops.version_key(v) < gs_ops.version_key(active)]
        if not older:
            raise Failure(f"no installed version older than the active {active}: name one with --to")
        target = older[-1]
    # what the incident needs saved, whatever happens next
    files, _ = httpd.included_files()
    env = httpd.envvars()
    env.update(httpd.run_cfg()["defines"])
    # /health verifies the switch: it must answer (from mod_gmailsync) before anything changes
    pre = gs_ops.resolve_health(args, httpd, files, env)
    st, body = pre.status, pre.body
    running = pre.version if pre.module else None
    schema = (body or {}).get("database", {}).get("schema_version") if st == 200 else None
    dsn = args.dsn or os.environ.get("GS_PG_DSN") or gs_ops.last_directive(files, "DBDParams", env)
    secret_file = gs_ops.last_directive(files, "GmailSyncClientSecretFile", env)
    secrets = [dsn, password_of(dsn) if dsn else None, args.health_token]
    if secret_file:
        try:
            with open(secret_file) as f:
                secrets.append(f.read().strip())
        except OSError:
            pass
    conn, db_error = connect(dsn) if dsn else (None, "no DSN (--dsn, GS_PG_DSN or DBDParams)")
    ok, configtest = httpd.configtest()
    action = (f"a dry run of the switch {active} -> {target}" if args.dry_run
              else f"the switch {active} -> {target}")
    bundle = collect(args, httpd, conn, db_error, active, running, target, action,
                     time.time() - args.window, secrets, files, configtest)
    gs_ops.say(PROG, f"incident bundle: {bundle}")

    if target == active and running == target:
        gs_ops.say(PROG, f"{target} is already the active and running version: nothing to switch")
        return 0
    problems = check_target(args, httpd, target, schema, gs_ops.loaded_modules(files, env))
    if not pre.module:
        problems.append(f"cannot read /health, so the switch could not be verified: {pre.error}")
    elif pre.error:
        gs_ops.say(PROG, f"note: /health answers {pre.error}; the switch is verified by a 200 "
                         f"from {target}", err=True)
    if not ok:
        problems.append(f"the current configuration does not pass apachectl -t:\n{configtest}")
    if problems:
        raise Failure(f"refusing to switch to {target} (nothing was changed):\n  - "
                      + "\n  - ".join(problems))
    if args.dry_run:
        gs_ops.say(PROG, f"dry run: {active} -> {target} would pass every check; nothing switched")
        print(f"summary: dry_run=1 from={active} to={target} bundle={bundle}", flush=True)
        return 0

    during = running_tasks(conn) if conn else []
    old_file = gs_ops.read_bytes(args.active_file)
    link = os.path.join(args.modules, "mod_gmailsync.so") if args.modules != "none" else None
    old_link = gs_ops.read_link(link) if link else None

    def revert(why, restart):
        gs_ops.replace_file(args.active_file, old_file)
        if link:
            gs_ops.replace_link(link, old_link)
        msg = f"{why}\n{PROG}: reverted: {active} is the active version again"
        if restart:
            ok, out = httpd.graceful()
            if ok:
                back, last = gs_ops.wait_health(
                    args.health_url, lambda s, b, v: s == 200 and b and b.get("version") == active,
                    args.timeout, args.health_token)
                msg += " and serves again (/health reports it)" if back else \
                    f", but /health does not report {active} ({gs_ops.describe(last)})"
            else:
                msg += f", but the graceful restart failed: {out}"
        raise Failure(msg)

    t0 = time.monotonic()
    activate(args, target, active)
    ok, out = httpd.configtest()
    if not ok:
        revert(f"apachectl -t failed with {target}:\n{out}", False)
    ok, out = httpd.graceful()
    if not ok:
        revert(f"the graceful restart failed:\n{out}", False)
    ok, last = gs_ops.wait_health(
        args.health_url, lambda s, b, v: s == 200 and b and b.get("version") == target,
        args.timeout, args.health_token)
    if not ok:
        revert(f"/health did not report {target} with a 200 within {args.timeout:g} s (last: "
               f"{gs_ops.describe(last)})", True)
    switch_s = time.monotonic() - t0
    gs_ops.say(PROG, f"switched {active} -> {target} in {switch_s:.2f} s (/health reports "
                     f"{target})")

    ended = {}
    if during and conn:
        ids = [t[0] for t in during]
        deadline = time.monotonic() + args.wait_tasks
        while True:
            rows = query(conn, "SELECT task_id::text, state, error_code FROM gmailsync.sync_tasks"
                               " WHERE task_id = ANY(%s::uuid[])", (ids,))
            ended = {r[0]: (r[1], r[2]) for r in rows}
            if all(s not in ("RUNNING", "CREATED") for s, _ in ended.values()) \
                    or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    print(f"{PROG}: tasks running during the switch: {len(during)}", flush=True)
    for task_id, user, wv, host in during:
        state, code = ended.get(task_id, ("?", None))
        how = state + (f" ({code})" if code else "") + (" (still running)" if state == "RUNNING"
                                                        else "")
        print(f"  task {task_id} user={user} worker={wv or 'unknown'} host={host}: {how}",
              flush=True)
    states = [ended.get(t[0], ("?", None))[0] for t in during]
    print(f"summary: from={active} to={target} switch_s={switch_s:.2f} "
          f"total_s={time.monotonic() - t_start:.2f} running={len(during)} "
          f"succeeded={states.count('SUCCEEDED')} failed={states.count('FAILED')} "
          f"still_running={states.count('RUNNING')} bundle={bundle}", flush=True)
    return 0


def main(argv):
    ap = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Save an incident bundle, then switch the active mod_gmailsync version "
                    "(default: the newest installed one older than the active), check the "
                    "configuration, restart httpd gracefully and wait for /health to report the "
                    "target; revert on any failure.",
        epilog="Exit status: 0 switched (or dry run passed, or --list); 1 refused or failed "
               "(reverted); 2 usage error.")
    ap.add_argument("--to", metavar="VERSION", help="the version to switch to")
    ap.add_argument("--list", action="store_true", help="list installed versions and exit")
    ap.add_argument("--dry-run", action="store_true",
                    help="every check and the bundle; switch nothing")
    ap.add_argument("--window", default="1h", metavar="DURATION",
                    help="incident window of the bundle's log lines and tasks (default 1h)")
    ap.add_argument("--state-dir", default=os.environ.get("GS_STATE_DIR", "/var/lib/gmailsync"),
                    help="bundles go to STATE_DIR/incidents/ (default %(default)s)")
    ap.add_argument("--dsn", default="",
                    help="database for the bundle (default: $GS_PG_DSN, else httpd's DBDParams)")
    ap.add_argument("--wait-tasks", type=gs_ops.duration, default=gs_ops.duration("60s"),
                    metavar="DURATION",
                    help="wait this long for the tasks running during the switch to end, "
                         "for the summary (default 60s; 0: do not wait)")
    gs_ops.add_common_options(ap)
    args = gs_ops.finish_common_options(ap.parse_args(argv))
    try:
        args.window = gs_ops.duration(args.window)
        args.window_text = ap.parse_args(argv).window
    except ValueError as e:
        ap.error(str(e))
    if args.to and not gs_ops.VERSION_RE.match(args.to):
        ap.error(f"bad version {args.to!r}")
    try:
        return list_versions(args) if args.list else rollback(args)
    except Failure as e:
        gs_ops.say(PROG, str(e), err=True)
        return 1
    except OSError as e:
        gs_ops.say(PROG, f"{e.filename or ''}: {e.strerror}", err=True)
        return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
