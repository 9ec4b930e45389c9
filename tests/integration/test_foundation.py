"""The foundation: the module loads into a real httpd, its directives are validated at startup,
the schema is in a real PostgreSQL, and the local stack behaves as documented."""
import glob
import hashlib
import os
import re
import subprocess
import textwrap
import uuid

import psycopg2
import pytest

from conftest import BUILD_DIR, HTTPD_BIN, ROOT, run_dev

pytestmark = pytest.mark.usefixtures("paused_daemon")

VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()
MODULES = "/usr/lib/apache2/modules"
LATEST_MIGRATION = max(int(os.path.basename(p)[:3])
                       for p in glob.glob(os.path.join(ROOT, "sql", "[0-9][0-9][0-9]_*.up.sql")))


def test_health_reports_version_and_schema(stack, http):
    r = http.get(stack.api + "/health", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    # other tests' failed syncs may fire the seed's alerts: then, and only then, "degraded"
    assert body["status"] == ("degraded" if body["alerts"] else "ok"), body
    assert body["version"] == VERSION
    assert body["database"]["ok"] is True
    assert body["database"]["schema_version"] == LATEST_MIGRATION
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["database"]["now"])


def test_module_is_loaded_by_httpd(stack):
    out = subprocess.run([stack.httpd_bin, "-f", stack.httpd_conf, "-M"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\s*gmailsync_module \(shared\)$", out.stdout, re.M), out.stdout


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_problem_with_allow(stack, http, method):
    r = http.request(method, stack.api + "/health", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.headers["Content-Type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 405 and problem["title"] == "Method Not Allowed"
    assert problem["type"].startswith("urn:gmailsync:problem:")


@pytest.mark.parametrize("path", ["/nope", "/health/x", "/", "", "/HEALTH", "/smart/x", "/progress"])
def test_unknown_paths_are_404_problem(stack, http, path):
    r = http.get(stack.api + path, timeout=10)
    assert r.status_code == 404, (path, r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == 404


def test_head_health_has_no_body(stack, http):
    r = http.head(stack.api + "/health", timeout=10)
    assert r.status_code == 200 and r.content == b""


# --------------------------------------------------------------------------- configuration checks

def key_file(tmp_path, name="token.keys", mode=0o600, text=None):
    """A key file for GmailSyncTokenKeyFile (a fresh key unless text is given)."""
    path = tmp_path / name
    if text is None:
        text = subprocess.run([os.path.join(BUILD_DIR, "gmailsync-tokens"), "generate"],
                              capture_output=True, text=True, check=True).stdout
    path.write_text(text)
    os.chmod(path, mode)
    return path


def configtest(tmp_path, directives, include_snippet=True, keys=True):
    """Runs `apache2 -t` on a minimal server that includes conf/gmailsync.conf and, with keys,
    names a fresh GmailSyncTokenKeyFile (GmailSync On requires one)."""
    conf = tmp_path / "httpd.conf"
    (tmp_path / "logs").mkdir(exist_ok=True)
    include = f'Include "{ROOT}/conf/gmailsync.conf"' if include_snippet else ""
    if keys:
        directives = f'GmailSyncTokenKeyFile "{key_file(tmp_path)}"\n' + directives
    conf.write_text(textwrap.dedent(f"""\
        ServerRoot "{tmp_path}"
        ServerName 127.0.0.1
        Listen 127.0.0.1:1
        PidFile "{tmp_path}/httpd.pid"
        ErrorLog "{tmp_path}/logs/error_log"
        LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
        LoadModule authz_core_module {MODULES}/mod_authz_core.so
        LoadModule authz_host_module {MODULES}/mod_authz_host.so
        LoadModule dbd_module {MODULES}/mod_dbd.so
        LoadModule gmailsync_module "{BUILD_DIR}/mod_gmailsync.so"
        DBDriver pgsql
        DBDParams "host=127.0.0.1 dbname=gmailsync"
        {include}
        """) + directives + "\n")
    proc = subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-t"],
                          capture_output=True, text=True, timeout=15)
    return proc, conf


def test_shipped_snippet_passes_configtest(stack, tmp_path):
    proc, _ = configtest(tmp_path, "")
    assert proc.returncode == 0, proc.stderr
    assert "Syntax OK" in proc.stderr


def test_all_directives_accept_good_values(stack, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    proc, _ = configtest(tmp_path, textwrap.dedent(f"""\
        GmailSync Off
        GmailSyncPrefix /sync/api
        GmailSyncMode full
        GmailSyncWorker "{BUILD_DIR}/gmailsync-worker"
        GmailSyncMaxWorkers 0
        GmailSyncHeartbeat 250ms
        GmailSyncStuckAfter 3s
        GmailSyncProgressInterval 100ms
        GmailSyncMetricsWindow 2h
        GmailSyncApiBase http://127.0.0.1:9/
        GmailSyncTokenURL https://oauth2.example.test/token
        GmailSyncClientId 123-abc.apps.googleusercontent.com
        GmailSyncClientSecretFile "{secret}"
        GmailSyncUserFrom remote-user
        GmailSyncSessionCookie APPSESSID
        GmailSyncAllowOrigin https://app.example.test http://127.0.0.1:3000
        GmailSyncBatchSize 100
        GmailSyncQuotaUnits 25000
        GmailSyncRetryBudget 90s
        GmailSyncAlertSuccessRate 99.5%
        GmailSyncAlertMeanDuration 10m
        GmailSyncAlertStuckTasks 2
        GmailSyncAlertErrorRate 1
        GmailSyncRegistrySize 4096
        GmailSyncSessionCacheTTL 0
        GmailSyncAutoSyncLateAlertAfter 2m
        GmailSyncContent metadata
        GmailSyncAttachments metadata
        GmailSyncAttachmentMaxSize 512K
        GmailSyncStoreRaw Off
        GmailSyncDeletions keep
        GmailSyncChangeRetention 30d
        GmailSyncSearchConfig pg_catalog.english
        """))
    assert proc.returncode == 0, proc.stderr


BAD_DIRECTIVES = [
    ("GmailSync Maybe", "GmailSync"),
    ("GmailSyncMode turbo", "GmailSyncMode"),
    ("GmailSyncHeartbeat abc", "GmailSyncHeartbeat"),
    ("GmailSyncHeartbeat -5s", "GmailSyncHeartbeat"),
    ("GmailSyncHeartbeat 10ms", "GmailSyncHeartbeat"),
    ("GmailSyncStuckAfter 1.5m", "GmailSyncStuckAfter"),
    ("GmailSyncStuckAfter 99d", "GmailSyncStuckAfter"),
    ("GmailSyncProgressInterval 5x", "GmailSyncProgressInterval"),
    ("GmailSyncMetricsWindow 1s", "GmailSyncMetricsWindow"),
    ("GmailSyncMaxWorkers -1", "GmailSyncMaxWorkers"),
    ("GmailSyncMaxWorkers many", "GmailSyncMaxWorkers"),
    ("GmailSyncMaxWorkers 100000", "GmailSyncMaxWorkers"),
    ("GmailSyncBatchSize 0", "GmailSyncBatchSize"),
    ("GmailSyncBatchSize 101", "GmailSyncBatchSize"),
    ("GmailSyncQuotaUnits 0", "GmailSyncQuotaUnits"),
    ("GmailSyncRetryBudget 500ms", "GmailSyncRetryBudget"),
    ("GmailSyncRetryBudget 2d", "GmailSyncRetryBudget"),
    ("GmailSyncApiBase ftp://example.com", "GmailSyncApiBase"),
    ("GmailSyncApiBase not-a-url", "GmailSyncApiBase"),
    ("GmailSyncTokenURL https://user:pw@example.com/token", "GmailSyncTokenURL"),
    ("GmailSyncWorker relative/worker", "GmailSyncWorker"),
    ("GmailSyncWorker /nonexistent/gmailsync-worker", "GmailSyncWorker"),
    ("GmailSyncWorker /etc/passwd", "GmailSyncWorker"),
    ("GmailSyncClientSecretFile /nonexistent/secret", "GmailSyncClientSecretFile"),
    ("GmailSyncUserFrom cookie", "GmailSyncUserFrom"),
    ("GmailSyncSessionCookie a;b", "GmailSyncSessionCookie"),
    ("GmailSyncAllowOrigin https://app.example.test/path", "GmailSyncAllowOrigin"),
    ("GmailSyncAllowOrigin *", "GmailSyncAllowOrigin"),
    ("GmailSyncAlertSuccessRate 120%", "GmailSyncAlertSuccessRate"),
    ("GmailSyncAlertErrorRate lots", "GmailSyncAlertErrorRate"),
    ("GmailSyncAlertMeanDuration 0", "GmailSyncAlertMeanDuration"),
    ("GmailSyncAlertStuckTasks -3", "GmailSyncAlertStuckTasks"),
    ("GmailSyncPrefix api/sync", "GmailSyncPrefix"),
    ("GmailSyncRegistrySize 2", "GmailSyncRegistrySize"),
    ("GmailSyncSessionCacheTTL 1h", "GmailSyncSessionCacheTTL"),
    ("GmailSyncPrefix /api/sync/", "GmailSyncPrefix"),
    ("GmailSyncAutoSyncLateAlertAfter 500ms", "GmailSyncAutoSyncLateAlertAfter"),
    ("GmailSyncAutoSyncLateAlertAfter soon", "GmailSyncAutoSyncLateAlertAfter"),
    ("GmailSyncContent everything", "GmailSyncContent"),
    ("GmailSyncAttachments keep", "GmailSyncAttachments"),
    ("GmailSyncAttachmentMaxSize 25G", "GmailSyncAttachmentMaxSize"),
    ("GmailSyncAttachmentMaxSize 2048M", "GmailSyncAttachmentMaxSize"),
    ("GmailSyncAttachmentMaxSize -1", "GmailSyncAttachmentMaxSize"),
    ("GmailSyncAttachmentMaxSize 1.5M", "GmailSyncAttachmentMaxSize"),
    ("GmailSyncStoreRaw Maybe", "GmailSyncStoreRaw"),
    ("GmailSyncDeletions archive", "GmailSyncDeletions"),
    ("GmailSyncChangeRetention 10s", "GmailSyncChangeRetention"),
    ("GmailSyncChangeRetention 31d", "GmailSyncChangeRetention"),
    ("GmailSyncSearchConfig english;drop", "GmailSyncSearchConfig"),
    ("GmailSyncSearchConfig a.b.c", "GmailSyncSearchConfig"),
    ("GmailSyncSearchConfig 1simple", "GmailSyncSearchConfig"),
]


@pytest.mark.parametrize("line,directive", BAD_DIRECTIVES, ids=[b[0] for b in BAD_DIRECTIVES])
def test_bad_directive_is_a_clear_startup_error(stack, tmp_path, line, directive):
    proc, conf = configtest(tmp_path, "# the bad line follows\n" + line)
    assert proc.returncode != 0, f"accepted: {line}"
    lineno = conf.read_text().splitlines().index(line) + 1
    assert f"line {lineno} of {conf}" in proc.stderr, proc.stderr
    assert directive in proc.stderr, proc.stderr
    assert "Segmentation" not in proc.stderr


def secret_file_cases(tmp_path):
    """(name, make) pairs: each make() returns a path that breaks a rule of secret files."""
    good = "s3cret\n"

    def fifo():
        path = tmp_path / "fifo"
        os.mkfifo(path, 0o600)
        return path

    def owned_by_nobody():
        path = tmp_path / "nobody"
        path.write_text(good)
        path.chmod(0o600)
        os.chown(path, 65534, 65534)
        return path

    def mode(bits):
        def make():
            path = tmp_path / ("mode%o" % bits)
            path.write_text(good)
            path.chmod(bits)
            return path
        return make

    def symlink():
        target = tmp_path / "target"
        target.write_text(good)
        target.chmod(0o600)
        (tmp_path / "link").symlink_to(target)
        return tmp_path / "link"

    return {"fifo": (fifo, "not a regular file (a FIFO)"),
            "owner": (owned_by_nobody, "is owned by uid 65534: it must be owned by root"),
            "group_readable": (mode(0o640), "has mode 0640: it must not be open to its group"),
            "world_readable": (mode(0o604), "has mode 0604"),
            "symlink": (symlink, "is a symbolic link: name the file itself"),
            "directory": (lambda: tmp_path, "not a regular file (a directory)")}


@pytest.mark.parametrize("directive", ["GmailSyncTokenKeyFile", "GmailSyncClientSecretFile"])
@pytest.mark.parametrize("case", ["fifo", "owner", "group_readable", "world_readable", "symlink",
                                  "directory"])
def test_secret_files_are_opened_with_care_and_checked(stack, tmp_path, directive, case):
    """A FIFO as GmailSyncTokenKeyFile hung `apachectl -t`; the key file's owner and the client
    secret file's mode were not checked. One set of rules for both, named by configtest."""
    make, why = secret_file_cases(tmp_path)[case]
    path = make()
    line = f'{directive} "{path}"'
    try:
        proc, conf = configtest(tmp_path, "# the secret file\n" + line,
                                keys=directive != "GmailSyncTokenKeyFile")
    except subprocess.TimeoutExpired:
        pytest.fail(f"apachectl -t hangs on {case} as {directive}")
    assert proc.returncode != 0, f"accepted: {case} as {directive}"
    lineno = conf.read_text().splitlines().index(line) + 1
    assert f"line {lineno} of {conf}" in proc.stderr, proc.stderr
    assert directive in proc.stderr and str(path) in proc.stderr, proc.stderr
    assert why in proc.stderr, proc.stderr


def test_stuck_after_must_exceed_two_heartbeats(stack, tmp_path):
    proc, _ = configtest(tmp_path, "GmailSyncHeartbeat 5s\nGmailSyncStuckAfter 8s")
    assert proc.returncode != 0
    assert "GmailSyncStuckAfter" in proc.stderr and "GmailSyncHeartbeat" in proc.stderr


def test_module_without_mod_dbd_is_refused_at_start(stack, tmp_path):
    conf = tmp_path / "nodbd.conf"
    (tmp_path / "logs").mkdir()
    conf.write_text(textwrap.dedent(f"""\
        ServerRoot "{tmp_path}"
        ServerName 127.0.0.1
        Listen 127.0.0.1:1
        PidFile "{tmp_path}/httpd.pid"
        ErrorLog "{tmp_path}/logs/error_log"
        LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
        LoadModule authz_core_module {MODULES}/mod_authz_core.so
        LoadModule gmailsync_module "{BUILD_DIR}/mod_gmailsync.so"
        GmailSyncTokenKeyFile "{key_file(tmp_path)}"
        """))
    proc = subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-X"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    log_file = tmp_path / "logs" / "error_log"
    log = (log_file.read_text() if log_file.exists() else "") + proc.stderr
    assert "needs mod_dbd" in log


def test_health_is_503_problem_when_database_is_unreachable(stack, tmp_path, http):
    """A second httpd whose DBDParams point at a closed port answers 503 with Retry-After."""
    port = int(stack.base_url.rsplit(":", 1)[1]) + 9      # beside the stack's (+4..+8 are taken)
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
        LoadModule gmailsync_module "{BUILD_DIR}/mod_gmailsync.so"
        DBDriver pgsql
        DBDParams "host=127.0.0.1 port=1 dbname=gmailsync connect_timeout=2"
        Include "{ROOT}/conf/gmailsync.conf"
        GmailSyncTokenKeyFile "{key_file(tmp_path)}"
        """) + user)
    os.chmod(tmp_path, 0o755)
    subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-k", "start"],
                   check=True, timeout=30)
    try:
        r = None
        for _ in range(100):
            try:
                r = http.get(f"http://127.0.0.1:{port}/api/gmail/sync/health", timeout=10)
                break
            except Exception:
                import time
                time.sleep(0.1)
        assert r is not None, "second httpd did not answer"
        assert r.status_code == 503
        assert r.headers["Retry-After"].isdigit()
        assert r.headers["Content-Type"] == "application/problem+json"
        assert r.json()["status"] == 503
    finally:
        subprocess.run([HTTPD_BIN, "-d", str(tmp_path), "-f", str(conf), "-k", "stop"],
                       timeout=30)


# --------------------------------------------------------------------------- schema

def test_schema_objects_exist(stack):
    rows = stack.query("""SELECT table_name FROM information_schema.tables
                          WHERE table_schema = 'gmailsync' ORDER BY 1""")
    names = {r[0] for r in rows}
    assert {"sessions", "accounts", "sync_tasks", "messages", "user_sync_status",
            "schema_migrations"} <= names


def test_one_active_task_per_user_is_enforced_by_the_database(stack):
    user = "u-" + uuid.uuid4().hex[:8]
    stack.query("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s)", (user,))
    with pytest.raises(psycopg2.errors.UniqueViolation):
        stack.query("INSERT INTO gmailsync.sync_tasks (user_id, state, started_at) "
                    "VALUES (%s, 'RUNNING', now())", (user,))
    # finished tasks do not count
    stack.query("UPDATE gmailsync.sync_tasks SET state='SUCCEEDED', progress_percentage=100, "
                "finished_at=now() WHERE user_id=%s", (user,))
    stack.query("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s)", (user,))
    assert stack.query("SELECT count(*) FROM gmailsync.sync_tasks WHERE user_id=%s", (user,))[0][0] == 2


def test_progress_100_only_when_succeeded(stack):
    user = "u-" + uuid.uuid4().hex[:8]
    stack.query("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s)", (user,))
    with pytest.raises(psycopg2.errors.CheckViolation):
        stack.query("UPDATE gmailsync.sync_tasks SET progress_percentage = 100 WHERE user_id=%s",
                    (user,))
    with pytest.raises(psycopg2.errors.CheckViolation):
        stack.query("UPDATE gmailsync.sync_tasks SET state = 'FAILED', finished_at = now() "
                    "WHERE user_id=%s", (user,))  # FAILED needs an error code


def test_user_sync_status_view_follows_tasks(stack):
    user = stack.add_user(messages=3)["user_id"]
    row = stack.query("SELECT task_id, is_syncing FROM gmailsync.user_sync_status "
                      "WHERE user_id=%s", (user,))
    assert row == [(None, False)]
    tid = stack.query("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s) RETURNING task_id",
                      (user,))[0][0]
    row = stack.query("SELECT task_id, is_syncing, progress_percentage FROM "
                      "gmailsync.user_sync_status WHERE user_id=%s", (user,))
    assert [(str(r[0]), r[1], float(r[2])) for r in row] == [(tid, True, 0.0)]
    stack.query("UPDATE gmailsync.sync_tasks SET state='FAILED', error_code='test', "
                "finished_at=now() WHERE task_id=%s", (tid,))
    assert stack.query("SELECT is_syncing FROM gmailsync.user_sync_status WHERE user_id=%s",
                       (user,)) == [(False,)]


def test_migrations_up_down_are_idempotent_and_transactional(stack):
    db = "scratch_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(stack.pg_admin_dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {db}")
    dsn = stack.pg_admin_dsn.rsplit("/", 1)[0] + "/" + db
    migrate = os.path.join(ROOT, "scripts", "gmailsync-migrate")
    env = dict(os.environ, GS_PG_DSN=dsn)   # the password never on a command line
    try:
        status = subprocess.run([migrate, "status"], capture_output=True, text=True,
                                check=True, env=env).stdout
        assert "pending" in status and "applied" not in status
        # three concurrent runs: the advisory lock queues them, each migration applies once
        procs = [subprocess.Popen([migrate, "up"], stdout=subprocess.PIPE, env=env,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        assert sum(o[0].count(": applied") for o in outs) == LATEST_MIGRATION
        conn = psycopg2.connect(dsn)
        cur = conn.cursor()
        cur.execute("SELECT count(*), max(version) FROM gmailsync.schema_migrations")
        assert cur.fetchone() == (LATEST_MIGRATION, LATEST_MIGRATION)
        conn.close()
        subprocess.run([migrate, "down", "--all"], check=True, capture_output=True, env=env)
        conn = psycopg2.connect(dsn)
        cur = conn.cursor()
        cur.execute("SELECT to_regnamespace('gmailsync')")
        assert cur.fetchone() == (None,)
        conn.close()
        subprocess.run([migrate, "up"], check=True, capture_output=True, env=env)
        again = subprocess.run([migrate, "up"], check=True, capture_output=True,
                               text=True, env=env).stdout
        assert "already applied" in again
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


def test_broken_migration_leaves_nothing_behind(stack, tmp_path):
    db = "scratch_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(stack.pg_admin_dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {db}")
    dsn = stack.pg_admin_dsn.rsplit("/", 1)[0] + "/" + db
    for f in glob.glob(os.path.join(ROOT, "sql", "*.sql")):
        (tmp_path / os.path.basename(f)).write_text(open(f).read())
    (tmp_path / "999_broken.up.sql").write_text(
        "CREATE TABLE gmailsync.half_done (x int);\nSELECT no_such_function();\n")
    (tmp_path / "999_broken.down.sql").write_text("DROP TABLE gmailsync.half_done;\n")
    try:
        proc = subprocess.run([os.path.join(ROOT, "scripts", "gmailsync-migrate"),
                               "--sql-dir", str(tmp_path), "up"], capture_output=True, text=True,
                              env=dict(os.environ, GS_PG_DSN=dsn))
        assert proc.returncode != 0
        conn = psycopg2.connect(dsn)
        cur = conn.cursor()
        cur.execute("SELECT to_regclass('gmailsync.half_done'), max(version) "
                    "FROM gmailsync.schema_migrations")
        assert cur.fetchone() == (None, LATEST_MIGRATION)
        conn.close()
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


# --------------------------------------------------------------------------- the dev stack

def test_up_twice_is_harmless(stack, http):
    pid_before = open(os.path.join(stack.env["GS_RUN_DIR"], "httpd", "httpd.pid")).read()
    proc = stack.up()
    assert proc.returncode == 0
    pid_after = open(os.path.join(stack.env["GS_RUN_DIR"], "httpd", "httpd.pid")).read()
    assert pid_before == pid_after
    assert http.get(stack.api + "/health", timeout=10).status_code == 200


def test_env_prints_shell_assignments(stack):
    out = run_dev("env").stdout
    for name in ("GS_BASE_URL", "GS_PG_DSN", "GS_GMAIL_URL"):
        assert re.search(rf"^{name}='[^']+'$", out, re.M), out
    assert "127.0.0.1" in out and "localhost" not in out


def test_add_user_creates_session_account_and_mailbox(stack, http):
    u = stack.add_user(messages=25)
    assert set(u) == {"user_id", "session", "email"}
    digest = hashlib.sha256(u["session"].encode()).digest()
    rows = stack.query("SELECT user_id, expires_at > now() FROM gmailsync.sessions "
                       "WHERE token_sha256 = %s", (psycopg2.Binary(digest),))
    assert rows == [(u["user_id"], True)]
    acct = stack.query("SELECT email, refresh_token IS NOT NULL FROM gmailsync.accounts "
                       "WHERE user_id=%s", (u["user_id"],))
    assert acct == [(u["email"], True)]
    mb = http.get(f"{stack.gmail_url}/_control/mailboxes/{u['email']}", timeout=10)
    assert mb.status_code == 200, mb.text
    assert mb.json()["messages_total"] == 25


def test_extra_conf_is_appended_and_applied(stack, tmp_path, http):
    extra = tmp_path / "extra.conf"
    extra.write_text("GmailSyncMode full\n")
    try:
        stack.reconfigure(str(extra))
        assert "GmailSyncMode full" in open(stack.httpd_conf).read()
        assert http.get(stack.api + "/health", timeout=10).json()["mode"] == "full"
    finally:
        stack.reconfigure(None)
    assert http.get(stack.api + "/health", timeout=10).json()["mode"] == "smart"
