"""Migrations stay backward compatible for one release (issue 12): every down file undoes its up
file exactly (pg_dump --schema-only before and after), a rerun is harmless, and the previous
release's code (module, daemon, worker) runs against the newest schema, so a code rollback never
needs a schema change."""
import glob
import os
import re
import shutil
import subprocess
import uuid

import psycopg2
import psycopg2.extensions
import pytest
import requests

from conftest import ROOT, RUN_DIR, OtherHttpd, wait_for
from gsworker import (EXIT_FAILED, EXIT_SUCCEEDED, Gmail, Worker, assert_table_equals_mailbox,
                      new_task, task)

pytestmark = pytest.mark.usefixtures("paused_daemon")

MIGRATE = os.path.join(ROOT, "scripts", "gmailsync-migrate")
ROTATE = os.path.join(ROOT, "scripts", "gmailsync-rotate-key")
UPS = sorted(glob.glob(os.path.join(ROOT, "sql", "[0-9][0-9][0-9]_*.up.sql")))
NEWEST = int(os.path.basename(UPS[-1])[:3])
PREVIOUS_PORT = int(os.environ.get("GS_TEST_HTTP_PORT", "19080")) + 8


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
    assert found, f"{name} not found"
    return found[-1]


def libpq_env(dsn):
    """The DSN as libpq environment variables: no password on a command line."""
    p = psycopg2.extensions.parse_dsn(dsn)
    env = dict(os.environ)
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                     ("password", "PGPASSWORD"), ("dbname", "PGDATABASE")):
        if p.get(key):
            env[var] = p[key]
    return env


@pytest.fixture(scope="module")
def scratch(stack):
    name = "gs_migtest_" + uuid.uuid4().hex[:10]
    admin = psycopg2.connect(stack.pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} OWNER gmailsync")
    dsn = re.sub(r"/gmailsync(\?|$)", f"/{name}\\1", stack.pg_dsn)
    assert name in dsn
    yield dsn
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def migrate(dsn, sql_dir, *args):
    p = subprocess.run([MIGRATE, "--sql-dir", sql_dir, *args], env=dict(os.environ, GS_PG_DSN=dsn),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def schema(dsn):
    p = subprocess.run([pg_bin("pg_dump"), "--schema-only", "--no-owner", "--no-privileges"],
                       env=libpq_env(dsn), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # drop what differs between two dumps of one schema: the header and the random \restrict key
    return "\n".join(line for line in p.stdout.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict", "-- Dumped")))


def test_every_migration_has_a_down_file():
    for up in UPS:
        assert os.path.isfile(up.replace(".up.sql", ".down.sql")), up
    assert [int(os.path.basename(u)[:3]) for u in UPS] == list(range(1, NEWEST + 1))


def test_each_down_undoes_its_up_and_reruns_are_harmless(scratch, tmp_path):
    before = [schema(scratch)]            # before[i]: the schema with migrations 1..i
    for i, up in enumerate(UPS, 1):
        d = tmp_path / f"upto{i:03d}"
        d.mkdir()
        for f in UPS[:i]:
            shutil.copy(f, d)
            shutil.copy(f.replace(".up.sql", ".down.sql"), d)
        name = os.path.basename(up)[:-len(".up.sql")]
        out = migrate(scratch, str(d), "up")
        assert f"{i} {name[4:]}: applied" in out, out
        after = schema(scratch)
        assert after != before[-1], f"{name} changed nothing"
        out = migrate(scratch, str(d), "down")
        assert f"{i} {name[4:]}: reverted" in out, out
        assert schema(scratch) == before[-1], f"{name}: down did not restore the schema"
        migrate(scratch, str(d), "up")
        assert schema(scratch) == after, f"{name}: up after down differs"
        assert f"{name[4:]}: already applied" in migrate(scratch, str(d), "up")
        assert schema(scratch) == after
        before.append(after)
    migrate(scratch, os.path.join(ROOT, "sql"), "down", "--all")
    assert schema(scratch) == before[0], "down --all left something behind"


def test_newest_migration_only_expands(scratch):
    """What the previous release's code needs stays: the newest up file adds, never drops or
    renames (expand now, contract in a later release)."""
    text = open(UPS[-1]).read()
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    # a CHECK replaced under its own name in the same file (DROP CONSTRAINT c; ADD CONSTRAINT c
    # CHECK ...) is how PostgreSQL widens one (sql/013: trigger 'push'); the new one must accept
    # every value the old one did, which test_each_down_undoes_its_up_and_reruns_are_harmless
    # and the previous release's tests exercise
    readded = set(re.findall(r"\bADD\s+CONSTRAINT\s+(\w+)\s+CHECK\b", code, re.I))
    code = re.sub(r"\bDROP\s+CONSTRAINT\s+(\w+)",
                  lambda m: "" if m.group(1) in readded else m.group(0), code, flags=re.I)
    assert not re.search(r"\b(DROP|RENAME)\b", code, re.I), "the newest migration contracts"
    assert not re.search(r"\bSET\s+NOT\s+NULL\b", code, re.I)


# ------------------------------------------------------------------ the previous release

PREVIOUS_RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "previous-release")


def previous_release():
    """The release this one must stay compatible with: the commit named in previous-release (the
    last one that landed; a release that lands moves it forward). Its code runs against this
    release's newest schema, as it does during a rollback."""
    with open(PREVIOUS_RELEASE) as f:
        rev = f.read().split()[0]
    p = subprocess.run(["git", "cat-file", "-e", rev + "^{commit}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        top = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=ROOT, capture_output=True,
                             timeout=30)
        if top.returncode != 0:
            pytest.skip("not a git checkout: no previous release to build")
        pytest.skip("a shallow clone: the previous release %s is not here" % rev[:12])
    return rev


@pytest.fixture(scope="module")
def old_build():
    rev = previous_release()
    d = os.path.join(RUN_DIR, "previous-release")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, timeout=60)
    assert archive.returncode == 0, archive.stderr
    subprocess.run(["tar", "-x", "-C", d], input=archive.stdout, check=True, timeout=60)
    for cmd in (["./configure", "-q"], ["make", "-s", "-j2"]):
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
    return d


def seals_tokens(build):
    """Whether a release reads sealed tokens itself (006 and later)."""
    return os.path.exists(os.path.join(build, "mod_gmailsync", "core", "gs_tokenbox.c"))


def test_the_previous_release_runs_against_the_newest_schema(stack, old_build):
    old_version = open(os.path.join(old_build, "VERSION")).read().strip()

    def with_old_code(conf):
        conf = conf.replace(f'"{ROOT}/build/mod_gmailsync.so"', f'"{old_build}/build/mod_gmailsync.so"')
        conf = conf.replace(f'"{ROOT}/conf/gmailsync.conf"', f'"{old_build}/conf/gmailsync.conf"')
        conf = conf.replace(f'"{ROOT}/build/gmailsync-worker"', f'"{old_build}/build/gmailsync-worker"')
        assert old_build + "/build/gmailsync-worker" in conf
        # directives newer than the previous release: those its source does not name
        known = set(re.findall(r'"(GmailSync\w+)"', open(os.path.join(
            old_build, "mod_gmailsync", "httpd", "mod_gmailsync.h")).read()))
        conf = re.sub(r"(?m)^\s*(GmailSync\w+)\b.*$",
                      lambda m: m.group(0) if m.group(1) in known else "", conf)
        return conf + "\n# the previous release runs the syncs\nGmailSyncMaxWorkers 2\n"

    old = OtherHttpd(stack, "previous-httpd", PREVIOUS_PORT, with_old_code).start()
    try:
        h = requests.get(old.api + "/health", timeout=10).json()
        assert h["version"] == old_version
        assert h["database"]["schema_version"] == NEWEST
        assert requests.get(old.api + "/metrics", timeout=10).status_code == 200
        # a release before 006 reads plaintext tokens only: a row written before gmailsync-rotate-key
        # sealed it (what it does with a sealed one: the test below); a later one, a sealed row
        u = stack.add_user(messages=120, plaintext=not seals_tokens(old_build))
        r = requests.post(old.api + "/smart", json={"force_full": False},
                          cookies={"session": u["session"]}, timeout=30)
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]

        def ended():
            rows = stack.query("SELECT state, error_code, worker_version FROM gmailsync.sync_tasks"
                               " WHERE task_id = %s", (tid,))
            return rows[0] if rows[0][0] in ("SUCCEEDED", "FAILED", "CANCELLED") else None
        state, code, worker_version = wait_for("the old worker's sync", ended, 60)
        assert (state, code) == ("SUCCEEDED", None)
        # what the previous release writes of its own (worker_version since 003), or nothing
        assert worker_version in (None, old_version), worker_version
        g = Gmail(stack.gmail_url)
        assert_table_equals_mailbox(stack, g, u, check_fields=False)
        # and the new code reads what the old one wrote
        st = requests.get(stack.api + "/status", cookies={"session": u["session"]}, timeout=10)
        assert st.status_code == 200 and st.json()["task"]["state"] == "SUCCEEDED"
        r = requests.post(old.api + "/smart", json={"force_full": False},
                          cookies={"session": u["session"]}, timeout=30)
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]
        assert wait_for("the old worker's incremental sync", ended, 60)[0] == "SUCCEEDED"
    finally:
        problems = old.stop()
    assert not problems, "\n".join(problems)


def test_the_previous_release_fails_a_sealed_row_cleanly_and_unseal_rolls_back(stack, old_build):
    """After gmailsync-rotate-key sealed the tokens, the previous release's worker sends the sealed
    text as its refresh token: the token endpoint answers invalid_grant, the task FAILS
    auth_revoked and the row is left as it was (nothing overwritten, nothing decrypted).
    `gmailsync-rotate-key --unseal` is the way back for such a rollback; sealing again after it
    returns the row to this release."""
    if seals_tokens(old_build):
        pytest.skip("the previous release reads sealed tokens itself (006 is older than it)")
    old_worker = Worker(stack, binary=os.path.join(old_build, "build", "gmailsync-worker"))
    new_worker = Worker(stack)
    u = stack.add_user(messages=15)
    before = stack.query("SELECT refresh_token, access_token FROM gmailsync.accounts"
                         " WHERE user_id = %s", (u["user_id"],))[0]
    assert before[0].startswith("gs1:")
    tid = new_task(stack, u["user_id"])
    run = old_worker.run(tid, token_key_file=None)
    assert run.rc == EXIT_FAILED, run.stderr
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "auth_revoked"), t
    assert stack.query("SELECT refresh_token, access_token FROM gmailsync.accounts"
                       " WHERE user_id = %s", (u["user_id"],))[0] == before

    env = dict(os.environ, GS_PG_DSN=stack.pg_dsn)
    keys = stack.env["GS_TOKEN_KEY_FILE"]
    p = subprocess.run([ROTATE, "--key-file", keys, "--user", u["user_id"], "--unseal"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "unsealed=1" in p.stdout, p.stdout + p.stderr
    tid = new_task(stack, u["user_id"])
    assert old_worker.run(tid, token_key_file=None).rc == EXIT_SUCCEEDED
    # the way forward again: seal, and this release syncs the row
    p = subprocess.run([ROTATE, "--key-file", keys, "--user", u["user_id"]],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "sealed=2" in p.stdout, p.stdout + p.stderr
    tid = new_task(stack, u["user_id"])
    assert new_worker.run(tid).rc == EXIT_SUCCEEDED
