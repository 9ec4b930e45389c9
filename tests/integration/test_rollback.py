"""Versions side by side, incident toggles and the rollback script (issue 12), on a real Debian
layout: two versions of this tree (9.9.1 and 9.9.2) built and installed with `make install` into
a staged prefix, a scratch copy of /etc/apache2 that a2enmod and apache2ctl drive, and its httpd
on the test stack's PostgreSQL and fake Gmail. The stack's own daemon is paused for the module
(its tasks would otherwise be claimed by the wrong version).

Every figure that matters (switch times) is printed: run with -s to see them.
"""
import glob
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import ROOT, RUN_DIR, wait_for
from gsworker import Gmail, assert_table_equals_mailbox
from rbstack import DebianInstall, sh, summary

pytestmark = pytest.mark.usefixtures("paused_daemon")

V1, V2 = "9.9.1", "9.9.2"
PORT = int(os.environ.get("GS_TEST_HTTP_PORT", "19080")) + 7
ACTIVE_STATES = ("CREATED", "RUNNING", "STUCK")
BUNDLE_FILES = {"README.txt", "versions.txt", "health.json", "metrics.txt", "error_log.txt",
                "sync_tasks.csv", "schema.txt", "directives.conf", "configtest.txt"}
LOG_PROBLEM = re.compile(r"^\[[^\]]*\] \[([A-Za-z0-9_]+):(emerg|alert|crit|error|warn)\]")


@pytest.fixture(scope="module")
def deb(stack):
    d = DebianInstall(stack, "rollback", PORT)
    shutil.rmtree(d.root, ignore_errors=True)
    secret = os.path.join(stack.env["GS_RUN_DIR"], "secrets", "client_secret")
    d.make_tree(f"""# the site's gmailsync settings (what an admin adds beside mods-available)
ServerName 127.0.0.1
DBDriver pgsql
DBDParams "{stack.pg_dsn}?connect_timeout=5"
DBDMin 0
DBDKeep 4
DBDMax 10
<IfModule gmailsync_module>
    LogLevel warn gmailsync:info
    GmailSyncApiBase "{stack.gmail_url}"
    GmailSyncTokenURL "{stack.gmail_url}/token"
    GmailSyncClientId {stack.env['GS_CLIENT_ID']}
    GmailSyncClientSecretFile "{secret}"
    GmailSyncTokenKeyFile "{stack.env['GS_TOKEN_KEY_FILE']}"
    # about 200 messages/s per user: a sync of 600 messages lasts ~3 s, across switches
    GmailSyncQuotaUnits 1000
    GmailSyncProgressInterval 200ms
</IfModule>
""")
    for v in (V1, V2):
        d.build(v)
    d.installs = {V1: d.install(V1).stdout, V2: d.install(V2).stdout}
    d.a2("a2enmod", "gmailsync")
    d.a2("a2enconf", "gmailsync-site")
    d.start()
    d.log_start = 0
    yield d
    d.stop()
    # what the Debian httpd logged at [warn] and above, over the whole module
    with open(d.error_log, errors="replace") as f:
        bad = [line for line in f.read().splitlines() if LOG_PROBLEM.match(line)
               and not any(p.search(line) for p in d_expected)]
    assert not bad, "unexpected [warn]/[error] lines in the Debian httpd's log:\n" + "\n".join(bad)


d_expected = [re.compile(p) for p in (
    # the refusal test's throw-away configuration never reaches this log; graceful restarts
    # with workers running log nothing above notice
    r"AH00558",
)]


@pytest.fixture
def gmail(stack):
    g = Gmail(stack.gmail_url)
    g.clear_faults()
    g.config(quota_units_per_sec=0, quota_units_per_minute=0, max_concurrent_per_user=0,
             history_retention=0)
    return g


def start(deb, user, force_full=False):
    return requests.post(deb.api + "/smart", json={"force_full": force_full},
                         cookies={"session": user["session"]}, timeout=30)


def tasks_of(stack, user_ids):
    return stack.query("SELECT task_id::text, user_id, state, error_code, worker_version,"
                       " extract(epoch FROM created_at)::float8, extract(epoch FROM started_at)::float8,"
                       " mode FROM gmailsync.sync_tasks WHERE user_id = ANY(%s) ORDER BY created_at",
                       (list(user_ids),))


def state(stack, task_id):
    return stack.query("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (task_id,))[0][0]


def wait_state(stack, task_id, states, timeout=60):
    return wait_for(f"task {task_id} in {states}",
                    lambda: state(stack, task_id) in states and state(stack, task_id), timeout)


def rollback(deb, *args, version=V1):
    return deb.run_script(version, "gmailsync-rollback", *args)


def toggle(deb, *args, version=V1):
    p = deb.run_script(version, "gmailsync-toggle", *args)
    return p


def file_state(path):
    st = os.stat(path)
    return open(path, "rb").read(), st.st_mtime_ns, st.st_ino


# ------------------------------------------------------------------ install layout

def test_versions_installed_side_by_side_and_the_first_is_active(deb):
    for v in (V1, V2):
        assert os.access(os.path.join(deb.libexec_root, v, "gmailsync-worker"), os.X_OK)
        assert os.path.isfile(os.path.join(deb.libexec_root, v, "mod_gmailsync.so"))
        for sub in ("sql", "conf", "www", "bin", "rollback"):
            assert os.path.isdir(os.path.join(deb.data_root, v, sub)), (v, sub)
        for script in ("gmailsync-rollback", "gmailsync-toggle", "gmailsync-activate"):
            assert os.access(deb.script(v, script), os.X_OK)
        layout = open(os.path.join(deb.data_root, v, "rollback", "layout")).read()
        assert f"version={v}\n" in layout and f"apache_confdir={deb.confdir}\n" in layout
        assert glob.glob(os.path.join(deb.data_root, v, "sql", "003_*.down.sql"))
        # the key tool beside the worker, found by the installed gmailsync-rotate-key
        assert os.access(os.path.join(deb.libexec_root, v, "gmailsync-tokens"), os.X_OK)
        rotate_key = os.path.join(deb.data_root, v, "bin", "gmailsync-rotate-key")
        p = sh([rotate_key, "--generate"], env={k: x for k, x in os.environ.items()
                                                if k != "GS_TOKENS_BIN"})
        assert re.fullmatch(r"[0-9a-f]{64}\n", p.stdout), p.stdout
    # the second install did not activate itself
    assert deb.active() == V1
    assert "not activating 9.9.2" in deb.installs[V2]
    assert os.readlink(os.path.join(deb.modules, "mod_gmailsync.so")) == \
        os.path.join(deb.libexec_root, V1, "mod_gmailsync.so")
    # Debian: mods-available files; a2enmod enabled the module and its dependency dbd
    for n in ("gmailsync.load", "gmailsync.conf", "dbd.load"):
        assert os.path.islink(os.path.join(deb.confdir, "mods-enabled", n)), n
    load = open(os.path.join(deb.confdir, "mods-available", "gmailsync.load")).read()
    assert "# Depends: dbd" in load and "Include gmailsync/active-version.conf" in load
    assert os.path.isfile(deb.toggles_file)
    active = open(deb.active_file).read()
    for path in (f"{deb.libexec_root}/{V1}/mod_gmailsync.so",
                 f"{deb.libexec_root}/{V1}/gmailsync-worker", f"{deb.data_root}/{V1}/www"):
        assert path in active
    p = deb.ctl("-t")
    assert "Syntax OK" in p.stderr
    h = deb.health()
    assert h["version"] == V1
    text = requests.get(deb.api + "/metrics", timeout=10).text
    assert f'gmailsync_build_info{{version="{V1}"}} 1' in text
    p = rollback(deb, "--list")
    assert p.returncode == 0, p.stderr
    assert re.search(rf"^\* {re.escape(V1)}\s+active running$", p.stdout, re.M), p.stdout
    assert re.search(rf"^  {re.escape(V2)}\s*$", p.stdout, re.M), p.stdout


def test_a2dismod_and_a2enmod_on_the_scratch_tree(deb):
    deb.a2("a2dismod", "-q", "gmailsync")
    try:
        assert not os.path.lexists(os.path.join(deb.confdir, "mods-enabled", "gmailsync.load"))
        assert "Syntax OK" in deb.ctl("-t").stderr   # gmailsync.conf is all <IfModule>
    finally:
        deb.a2("a2enmod", "-q", "gmailsync")
    assert "Syntax OK" in deb.ctl("-t").stderr
    p = deb.ctl("-M")
    assert re.search(r"^\s*gmailsync_module \(shared\)$", p.stdout, re.M)


def test_staged_install_with_destdir_touches_nothing_outside(deb, tmp_path):
    before = file_state(deb.active_file)
    stage = str(tmp_path / "root")
    out = deb.install(V2, destdir=stage).stdout   # the first version there: it activates
    conf = stage + deb.confdir
    assert "9.9.2 is the active version" in out
    active = open(conf + "/gmailsync/active-version.conf").read()
    assert f'LoadModule gmailsync_module "{deb.libexec_root}/{V2}/mod_gmailsync.so"' in active
    assert stage not in active, "paths in the staged files name the final locations"
    assert os.readlink(stage + deb.modules + "/mod_gmailsync.so") == \
        f"{deb.libexec_root}/{V2}/mod_gmailsync.so"
    for p in (f"{deb.libexec_root}/{V2}/gmailsync-worker", f"{deb.data_root}/{V2}/www",
              f"{deb.data_root}/{V2}/rollback/gmailsync-rollback",
              deb.confdir + "/mods-available/gmailsync.load",
              deb.confdir + "/mods-available/gmailsync.conf", deb.confdir + "/gmailsync/toggles.conf"):
        assert os.path.exists(stage + p), p
    # a second version does not take over; ACTIVATE=1 does; the toggles file is kept
    with open(conf + "/gmailsync/toggles.conf", "a") as f:
        f.write("GmailSyncMode full\n")
    deb.install(V1, destdir=stage)
    assert "GMAILSYNC_VERSION 9.9.2\n" in open(conf + "/gmailsync/active-version.conf").read()
    deb.install(V1, destdir=stage, activate=1)
    assert "GMAILSYNC_VERSION 9.9.1\n" in open(conf + "/gmailsync/active-version.conf").read()
    assert open(conf + "/gmailsync/toggles.conf").read().endswith("GmailSyncMode full\n")
    empty = str(tmp_path / "empty")
    deb.install(V1, destdir=empty, activate=0)
    assert not os.path.exists(empty + deb.confdir + "/gmailsync/active-version.conf")
    # the live installation did not notice
    assert file_state(deb.active_file) == before


# ------------------------------------------------------------------ switching while syncs run

def test_roll_forward_and_back_three_times_while_syncs_run(stack, deb, gmail, capsys):
    # mailboxes of different sizes (~3 to 9 s a full sync, each batch answered in 1 s: longer
    # than a rollback takes on a loaded machine): tasks start and end all along
    users = [stack.add_user(messages=n) for n in (300, 500, 700, 900)]
    for u in users:
        gmail.fault(method="messages.get", mode="latency", seconds=1.0, count=-1,
                    email=u["email"])
    ids = [u["user_id"] for u in users]
    created = []          # task ids answered 202
    switches = []         # (target, seconds, tasks running, time health reported it)

    def ensure_running(current):
        """Every idle user starts a sync; returns once one runs under the current version."""
        def running():
            for u in users:
                r = start(deb, u, force_full=True)
                assert r.status_code in (200, 202), r.text
                if r.status_code == 202:
                    created.append(r.json()["task_id"])
            h = deb.health()   # the version of running tasks' workers, from /health
            return h and h["running"]["worker_versions"].get(current, 0) >= 1
        wait_for(f"a sync running under {current}", running, 30, interval=0.2)

    n = 0
    for rnd in range(3):
        for target in (V2, V1):
            n += 1
            gmail.add(users[rnd]["email"], 3)
            gmail.delete(users[rnd + 1]["email"], gmail.ids(users[rnd + 1]["email"])[-2:])
            ensure_running(V1 if target == V2 else V2)
            p = rollback(deb, "--to", target, "--wait-tasks", "60" if n == 6 else "0",
                         version=V1 if target == V2 else V2)
            assert p.returncode == 0, p.stdout + p.stderr
            s = summary(p.stdout)
            done = time.time()
            assert (s["from"], s["to"]) == ((V1, V2) if target == V2 else (V2, V1))
            assert float(s["switch_s"]) <= 10, s
            assert int(s["running"]) >= 1, s
            h = deb.health()
            assert h["version"] == target and deb.active() == target
            # (the running tasks' ids are shown only with ?detail=1 and the health token)
            assert set(h["running"]["worker_versions"]) <= {V1, V2}, h["running"]
            assert "tasks" not in h["running"]
            text = requests.get(deb.api + "/metrics", timeout=10).text
            assert f'gmailsync_build_info{{version="{target}"}} 1' in text
            if n == 6:   # it waited for them: how each ended, by the version that ran it
                ended = re.findall(r"^  task \S+ user=\S+ worker=(\S+) host=\S+: (\w+)",
                                   p.stdout, re.M)
                assert len(ended) == int(s["running"]) and ended, p.stdout
                assert all(st == "SUCCEEDED" for _, st in ended), p.stdout
                assert int(s["succeeded"]) == int(s["running"])
            switches.append((target, float(s["switch_s"]), int(s["running"]), done,
                             float(s["total_s"])))

    def all_ended():
        return all(r[2] not in ACTIVE_STATES for r in tasks_of(stack, ids))
    wait_for("every task to end", all_ended, 120)
    rows = tasks_of(stack, ids)
    assert sorted(r[0] for r in rows) == sorted(created), "a task was lost or appeared"
    assert all(r[2] in ("SUCCEEDED", "FAILED") for r in rows), [r[2] for r in rows]
    # one more sync per user, after the last change of the mailboxes: it must succeed (and so
    # must the rerun of a user whose last task FAILED)
    for u in users:
        r = start(deb, u)
        assert r.status_code == 202, r.text
        assert wait_state(stack, r.json()["task_id"], ("SUCCEEDED", "FAILED")) == "SUCCEEDED"
    # which version ran what: a task claimed well after a switch ran the target's worker
    for r in rows:
        assert r[4] in (V1, V2), r
        started = r[6]
        for i, (target, _, _, done, _) in enumerate(switches):
            nxt = switches[i + 1][3] - switches[i + 1][4] if i + 1 < len(switches) else 1e12
            if done + 0.5 < started < nxt:
                assert r[4] == target, (r, switches)
    with capsys.disabled():
        print("\n  rollback switches (target, switch s, tasks running, whole script s):")
        for target, sec, running, _, total in switches:
            print(f"    -> {target}: {sec:.2f} s with {running} running (script {total:.2f} s)")
        print(f"  tasks: {len(rows)}, " + ", ".join(
            f"{st}={sum(1 for r in rows if r[2] == st)}" for st in ("SUCCEEDED", "FAILED"))
            + "; by worker version: " + ", ".join(
                f"{v}={sum(1 for r in rows if r[4] == v)}" for v in (V1, V2)))
    for u in users:
        assert_table_equals_mailbox(stack, gmail, u, check_fields=False)
    assert_table_equals_mailbox(stack, gmail, users[0], check_fields=True)


def test_broken_targets_are_refused_and_nothing_switches(deb):
    bad = "9.9.3"
    deb.build(bad)
    deb.install(bad, activate=0)
    current = deb.active()
    before = file_state(deb.active_file)
    link = os.readlink(os.path.join(deb.modules, "mod_gmailsync.so"))
    gens = deb.generations()
    lib, data = os.path.join(deb.libexec_root, bad), os.path.join(deb.data_root, bad)
    pristine = os.path.join(deb.root, "pristine-" + bad)
    shutil.copytree(lib, pristine + "/lib")
    shutil.copytree(data, pristine + "/data")

    def breaks(what):
        so, worker = os.path.join(lib, "mod_gmailsync.so"), os.path.join(lib, "gmailsync-worker")
        if what == "missing .so":
            os.unlink(so)
        elif what == "worker not executable":
            os.chmod(worker, 0o644)
        elif what == "missing worker":
            os.unlink(worker)
        elif what == "garbage .so":
            with open(so, "wb") as f:
                f.write(b"not a module\n")
        elif what == "unloadable .so":
            with open(so, "r+b") as f:   # an ELF header, then nothing that loads
                f.truncate(4096)
        elif what == "missing page":
            shutil.rmtree(os.path.join(data, "www"))

    cases = [("missing .so", "module missing"),
             ("worker not executable", "worker is not executable"),
             ("missing worker", "worker missing"),
             ("garbage .so", "module is not a shared object"),
             ("unloadable .so", "the module does not load"),
             ("missing page", "page directory missing")]
    try:
        for what, expect in cases:
            breaks(what)
            p = rollback(deb, "--to", bad, "--wait-tasks", "0")
            assert p.returncode == 1, (what, p.stdout, p.stderr)
            assert "refusing to switch to 9.9.3" in p.stderr and expect in p.stderr, \
                (what, p.stderr)
            assert file_state(deb.active_file) == before, what
            assert os.readlink(os.path.join(deb.modules, "mod_gmailsync.so")) == link
            assert deb.generations() == gens, f"{what}: httpd was restarted"
            assert deb.health()["version"] == current, what
            shutil.rmtree(lib)
            shutil.rmtree(data)
            shutil.copytree(pristine + "/lib", lib)
            shutil.copytree(pristine + "/data", data)
        # unbroken, the same version passes every check (dry run: nothing switches either)
        p = rollback(deb, "--to", bad, "--dry-run")
        assert p.returncode == 0, p.stderr
        assert summary(p.stdout)["dry_run"] == "1"
        assert file_state(deb.active_file) == before and deb.generations() == gens
    finally:
        shutil.rmtree(lib, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(pristine, ignore_errors=True)


def test_a_failing_configtest_reverts_the_switch(deb):
    current = deb.active()
    other = V2 if current == V1 else V1
    before = file_state(deb.active_file)[0]
    gens = deb.generations()
    # a site file that only breaks with the target active (it includes a file of the active
    # version's data directory, which only the target has): apachectl -t fails after the switch
    site = os.path.join(deb.confdir, "conf-enabled", "zz-per-version.conf")
    trap = os.path.join(deb.data_root, other, "site-test.conf")
    with open(site, "w") as f:
        f.write('IncludeOptional "${GMAILSYNC_WWW}/../site-test.conf"\n')
    with open(trap, "w") as f:
        f.write("GmailSyncHeartbeat bogus\n")
    try:
        assert "Syntax OK" in deb.ctl("-t").stderr
        p = rollback(deb, "--to", other, "--wait-tasks", "0")
    finally:
        os.unlink(site)
        os.unlink(trap)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "apachectl -t failed" in p.stderr and "GmailSyncHeartbeat" in p.stderr, p.stderr
    assert "reverted" in p.stderr
    assert file_state(deb.active_file)[0] == before
    assert deb.generations() == gens
    assert deb.health()["version"] == current


# ------------------------------------------------------------------ toggles

def test_kill_switch_off_then_on(stack, deb):
    busy, idle = stack.add_user(messages=600), stack.add_user(messages=20)
    r = start(deb, busy)
    assert r.status_code == 202, r.text
    running = r.json()["task_id"]
    wait_state(stack, running, ("RUNNING",), 30)
    p = toggle(deb, "off")
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        assert "GmailSync Off: applied and verified" in p.stdout
        h = deb.health()
        assert h["enabled"] is False
        for u in (idle, busy):
            r = start(deb, u)
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"].isdigit()
            assert r.headers["Content-Type"] == "application/problem+json"
        assert [t[0] for t in tasks_of(stack, [idle["user_id"]])] == []
        assert wait_state(stack, running, ("SUCCEEDED", "FAILED"), 60) == "SUCCEEDED"
        st = toggle(deb, "status")
        assert st.returncode == 0 and "GmailSync            Off" in st.stdout
    finally:
        p = toggle(deb, "on")
    assert p.returncode == 0, p.stdout + p.stderr
    assert deb.health()["enabled"] is True
    r = start(deb, idle)
    assert r.status_code == 202, r.text
    assert wait_state(stack, r.json()["task_id"], ("SUCCEEDED", "FAILED")) == "SUCCEEDED"


def test_pause_keeps_tasks_created_and_resume_runs_them_in_order(stack, deb):
    users = [stack.add_user(messages=30) for _ in range(3)]
    p = toggle(deb, "workers", "0")
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        assert deb.health()["max_workers"] == 0
        ids = []
        for u in users:
            r = start(deb, u)
            assert r.status_code == 202, r.text
            ids.append(r.json()["task_id"])
        # at least two claim rounds of the daemon (one a second, and one per wake-up)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert [state(stack, t) for t in ids] == ["CREATED"] * 3
            time.sleep(0.1)
    finally:
        p = toggle(deb, "workers", "4")
    assert p.returncode == 0, p.stdout + p.stderr
    for t in ids:
        assert wait_state(stack, t, ("SUCCEEDED", "FAILED"), 60) == "SUCCEEDED"
    rows = stack.query("SELECT task_id::text FROM gmailsync.sync_tasks WHERE task_id = ANY(%s::uuid[])"
                       " ORDER BY started_at, task_id", (ids,))
    assert [r[0] for r in rows] == ids, "resumed tasks ran oldest first"


def test_kill_switch_also_keeps_queued_tasks_waiting(stack, deb):
    u = stack.add_user(messages=20)
    assert toggle(deb, "workers", "0").returncode == 0
    try:
        r = start(deb, u)
        assert r.status_code == 202, r.text
        tid = r.json()["task_id"]
        assert toggle(deb, "off").returncode == 0
        assert toggle(deb, "workers", "4").returncode == 0
        deadline = time.monotonic() + 2.5   # Off: the daemon launches nothing
        while time.monotonic() < deadline:
            assert state(stack, tid) == "CREATED"
            time.sleep(0.1)
    finally:
        toggle(deb, "workers", "4")
        p = toggle(deb, "on")
    assert p.returncode == 0, p.stdout + p.stderr
    assert wait_state(stack, tid, ("SUCCEEDED", "FAILED"), 60) == "SUCCEEDED"


def test_mode_full_toggle_forces_full_syncs(stack, deb):
    u = stack.add_user(messages=20)
    r = start(deb, u)
    assert wait_state(stack, r.json()["task_id"], ("SUCCEEDED", "FAILED")) == "SUCCEEDED"
    p = toggle(deb, "mode", "full")
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        assert deb.health()["mode"] == "full"
        r = start(deb, u)
        tid = r.json()["task_id"]
        assert wait_state(stack, tid, ("SUCCEEDED", "FAILED")) == "SUCCEEDED"
        assert stack.query("SELECT mode FROM gmailsync.sync_tasks WHERE task_id = %s",
                           (tid,))[0][0] == "full"
    finally:
        p = toggle(deb, "mode", "smart")
    assert p.returncode == 0
    r = start(deb, u)
    tid = r.json()["task_id"]
    assert wait_state(stack, tid, ("SUCCEEDED", "FAILED")) == "SUCCEEDED"
    assert stack.query("SELECT mode FROM gmailsync.sync_tasks WHERE task_id = %s",
                       (tid,))[0][0] == "incremental"


def test_a_toggle_that_fails_the_configtest_is_put_back(deb):
    before = file_state(deb.toggles_file)[0]
    gens = deb.generations()
    broken = os.path.join(deb.confdir, "conf-enabled", "zz-broken.conf")
    with open(broken, "w") as f:
        f.write("GmailSyncHeartbeat bogus\n")
    try:
        p = toggle(deb, "off")
    finally:
        os.unlink(broken)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "apachectl -t failed" in p.stderr and "previous toggles file is back" in p.stderr
    assert file_state(deb.toggles_file)[0] == before
    assert deb.generations() == gens and deb.health()["enabled"] is True
    p = toggle(deb, "workers", "300")
    assert p.returncode == 2


# ------------------------------------------------------------------ the incident bundle

def test_incident_bundle_holds_the_files_and_no_secret(stack, deb):
    u = stack.add_user(messages=20)
    r = start(deb, u)
    assert wait_state(stack, r.json()["task_id"], ("SUCCEEDED", "FAILED")) == "SUCCEEDED"
    current = deb.active()
    other = V2 if current == V1 else V1
    before = file_state(deb.active_file)
    p = rollback(deb, "--to", other, "--dry-run", "--window", "30m")
    assert p.returncode == 0, p.stdout + p.stderr
    bundle = summary(p.stdout)["bundle"]
    assert file_state(deb.active_file) == before
    name = os.path.basename(bundle)
    assert re.fullmatch(rf"gmailsync-incident-\d{{8}}T\d{{6}}Z-{current}-to-{other}\.tar\.gz", name)
    assert os.path.dirname(bundle) == os.path.join(deb.state_dir, "incidents")
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o600
    with tarfile.open(bundle) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()
                   for m in tar.getmembers() if m.isfile()}
    assert set(members) == BUNDLE_FILES
    for n, text in members.items():
        assert text.strip() and text.strip() != "(empty)", n
    assert f"9.9.1" in members["versions.txt"] and "9.9.2" in members["versions.txt"]
    assert re.search(rf"^active:\s+{current}", members["versions.txt"], re.M)
    assert '"version": "%s"' % current in members["health.json"]
    assert '"worker_versions"' in members["health.json"]
    assert f'gmailsync_build_info{{version="{current}"}} 1' in members["metrics.txt"]
    assert "event=" in members["error_log.txt"]
    assert "worker_version" in members["sync_tasks.csv"].splitlines()[0]
    assert r.json()["task_id"] in members["sync_tasks.csv"]
    assert "003 worker_version" in members["schema.txt"]
    assert "GmailSyncClientSecretFile" in members["directives.conf"]
    assert "password" not in members["directives.conf"] or "***" in members["directives.conf"]
    assert "Syntax OK" in members["configtest.txt"]
    # no secret anywhere: the client secret, the database passwords, any OAuth token
    secrets_dir = os.path.join(stack.env["GS_RUN_DIR"], "secrets")
    secrets = [open(os.path.join(secrets_dir, n)).read().strip() for n in os.listdir(secrets_dir)]
    secrets.append(urlsplit(stack.pg_dsn).password)
    for refresh, access in stack.query("SELECT refresh_token, access_token FROM gmailsync.accounts"):
        secrets += [t for t in (refresh, access) if t]
    assert len(secrets) > 5
    for n, text in members.items():
        for s in secrets:
            assert s not in text, f"a secret is in {n}"
    raw = open(bundle, "rb").read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar.getmembers():
            assert m.mode & 0o077 == 0, m.name


def test_rollback_without_target_goes_to_the_previous_version(deb):
    if deb.active() == V1:
        p = rollback(deb, "--to", V2, "--wait-tasks", "0")
        assert p.returncode == 0, p.stderr
    p = rollback(deb, version=V2)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (summary(p.stdout)["from"], summary(p.stdout)["to"]) == (V2, V1)
    p = rollback(deb)
    assert p.returncode == 1 and "no installed version older than the active 9.9.1" in p.stderr
    assert deb.health()["version"] == V1


# ------------------------------------------------------------------ issue 21: uninstall, install

def tree(root):
    """{relative path: (kind, size, mtime)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


def make(deb, *args, destdir=None):
    argv = ["make", "-s", *args, f"prefix={deb.prefix}", f"APACHE_CONFDIR={deb.confdir}",
            f"HTTPD_LIBEXECDIR={deb.modules}"] + ([f"DESTDIR={destdir}"] if destdir else [])
    return sh(argv, env=deb.env, check=False)


def test_uninstall_refuses_an_empty_missing_unknown_active_or_running_version(deb, tmp_path):
    stage = str(tmp_path / "root")
    deb.install(V1, destdir=stage)          # the first there: active in the stage
    deb.install(V2, destdir=stage)
    before = tree(stage)
    assert os.path.relpath(f"{stage}{deb.libexec_root}/{V2}/gmailsync-worker", stage) in before
    for args, why in ((["VERSION="], "VERSION is empty"),      # an unset shell variable
                      ([], "name the version to remove"),       # none given
                      (["VERSION=9.9.7"], "9.9.7 is not installed"),
                      (["VERSION=.."], "bad VERSION"),
                      ([f"VERSION={V1}/.."], "bad VERSION"),
                      ([f"VERSION={V1}"], "is the active version")):
        p = make(deb, "uninstall", *args, destdir=stage)
        assert p.returncode != 0, (args, p.stdout, p.stderr)
        assert why in p.stderr, (args, p.stderr)
        assert tree(stage) == before, f"make uninstall {args} removed or changed files"
    # the version httpd runs, while the active-version file already names the other one (an
    # activation not yet applied): refused, as the process scan and /health both tell
    running = deb.health()["version"]
    other = V2 if running == V1 else V1
    saved = open(deb.active_file, "rb").read()
    link = os.path.join(deb.modules, "mod_gmailsync.so")
    saved_link = os.readlink(link)
    live = tree(os.path.join(deb.libexec_root, running)), tree(os.path.join(deb.data_root, running))
    sh([os.path.join(deb.data_root, other, "rollback", "gmailsync-activate"), "--confdir",
        deb.confdir, "--libexec-root", deb.libexec_root, "--data-root", deb.data_root,
        "--modules", deb.modules, other], env=deb.env)
    try:
        p = make(deb, "uninstall", f"VERSION={running}")
    finally:
        with open(deb.active_file, "wb") as f:
            f.write(saved)
        os.unlink(link)
        os.symlink(saved_link, link)
    assert p.returncode != 0, p.stdout + p.stderr
    assert f"mod_gmailsync {running} is in use by running processes" in p.stderr, p.stderr
    assert (tree(os.path.join(deb.libexec_root, running)),
            tree(os.path.join(deb.data_root, running))) == live
    assert deb.health()["version"] == running
    # a version nothing uses goes, and only its two directories
    p = make(deb, "uninstall", f"VERSION={V2}", destdir=stage)
    assert p.returncode == 0, p.stdout + p.stderr
    gone = {k for k in before if f"/mod_gmailsync/{V2}/" in f"/{k}/"}
    assert gone and set(tree(stage)) == set(before) - gone


def test_install_never_installs_binaries_built_for_another_version(deb, tmp_path):
    # a build directory holding V1's binaries, installed as another version without rebuilding
    # by hand: the binaries are rebuilt for it (their compiled-in version and worker path)
    b = str(tmp_path / "b")
    shutil.copytree(os.path.join(deb.root, "build-" + V1), b, symlinks=True)
    stage = str(tmp_path / "root")
    p = make(deb, "-j2", "install", "VERSION=9.9.4", f"B={b}", "ACTIVATE=0", destdir=stage)
    assert p.returncode == 0, p.stdout + p.stderr
    lib = stage + os.path.join(deb.libexec_root, "9.9.4")
    said = sh([os.path.join(lib, "gmailsync-worker"), "--version"]).stdout.strip()
    assert said == "gmailsync-worker 9.9.4", said
    so = open(os.path.join(lib, "mod_gmailsync.so"), "rb").read()
    assert f"{deb.libexec_root}/9.9.4/gmailsync-worker\0".encode() in so
    assert f"{deb.libexec_root}/{V1}/gmailsync-worker\0".encode() not in so
    # binaries that claim to be current but are not (a stale record of what was compiled in):
    # refused, nothing installed
    stamp = os.path.join(b, "compiled-values")
    with open(stamp, "w") as f:
        f.write(f"version=9.9.6 worker={deb.libexec_root}/9.9.6/gmailsync-worker\n")
    os.utime(stamp, (1e9, 1e9))
    p = make(deb, "install", "VERSION=9.9.6", f"B={b}", "ACTIVATE=0", destdir=stage)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "refusing to install it as 9.9.6" in p.stderr, p.stderr
    assert not os.path.exists(stage + os.path.join(deb.libexec_root, "9.9.6"))


# ------------------------------------------------------------------ issue 21: /health of the scripts

class FakeHealth:
    """A small HTTP server on loopback standing in for /health: answer(handler) returns
    (status, headers, body bytes); every request's path and headers are kept."""

    def __init__(self, port, answer):
        import http.server
        import threading
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, dict(self.headers)))
                status, headers, body = answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}/api/gmail/sync/health"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def forward(deb, handler):
    """Relays a request to the Debian httpd, Authorization included."""
    import urllib.error
    import urllib.request
    hdrs = {k: v for k, v in handler.headers.items() if k.lower() in ("authorization", "accept")}
    req = urllib.request.Request(deb.base + handler.path, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k: v for k, v in r.headers.items()
                              if k.lower() in ("content-type", "x-gmailsync-version")}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k: v for k, v in e.headers.items()
                        if k.lower() in ("content-type", "x-gmailsync-version")}, e.read()


FAKE_PORT = PORT + 4    # GS_TEST_HTTP_PORT + 11: +4..+10 belong to other tests


def env_without_health_url(deb, **extra):
    env = {k: v for k, v in deb.env.items() if k != "GS_HEALTH_URL"}
    env.update(extra)
    return env


def run_with(deb, name, *args, env, version=V1):
    t0 = time.monotonic()
    p = subprocess.run([deb.script(version, name), *args], env=env, capture_output=True,
                       text=True, timeout=180)
    p.seconds = time.monotonic() - t0
    return p


def test_scripts_find_health_from_the_configuration(deb):
    # no --health-url, no GS_HEALTH_URL: the Listen address of ports.conf and GmailSyncPrefix
    env = env_without_health_url(deb)
    p = run_with(deb, "gmailsync-toggle", "status", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"health: {deb.health_url} " in p.stdout, p.stdout
    p = run_with(deb, "gmailsync-toggle", "mode", "full", "--timeout", "10s", env=env)
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        assert "applied and verified" in p.stdout
        assert deb.health()["mode"] == "full"
    finally:
        p = run_with(deb, "gmailsync-toggle", "mode", "smart", "--timeout", "10s", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    current = deb.active()
    other = V2 if current == V1 else V1
    for target in (other, current):
        p = run_with(deb, "gmailsync-rollback", "--to", target, "--wait-tasks", "0",
                     "--timeout", "10s", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        assert deb.health()["version"] == target and deb.active() == target
    p = run_with(deb, "gmailsync-rollback", "--list", env=env)
    assert re.search(rf"^\* {re.escape(current)}\s+active running$", p.stdout, re.M), p.stdout


def test_unreadable_or_unverified_health_switches_nothing(deb):
    current = deb.active()
    other = V2 if current == V1 else V1
    toggles, active = file_state(deb.toggles_file)[0], file_state(deb.active_file)[0]
    # nothing answers there: refused before anything changes, naming the URL and why
    closed = f"http://127.0.0.1:{FAKE_PORT}/api/gmail/sync/health"
    env = env_without_health_url(deb, GS_HEALTH_URL=closed)
    gens = deb.generations()
    for name, args, what in (("gmailsync-toggle", ("workers", "3"), "nothing was changed"),
                             ("gmailsync-rollback", ("--to", other, "--wait-tasks", "0"),
                              "refusing to switch")):
        p = run_with(deb, name, *args, "--timeout", "5s", env=env)
        assert p.returncode == 1, (name, p.stdout, p.stderr)
        assert "cannot read /health" in p.stderr and closed in p.stderr, p.stderr
        assert what in p.stderr and "Connection refused" in p.stderr, p.stderr
    assert deb.generations() == gens, "httpd was restarted"
    assert file_state(deb.toggles_file)[0] == toggles and file_state(deb.active_file)[0] == active
    # an answer that is not a verification (a 503 that carries the target's version header):
    # the switch is reverted, naming the answer
    fake = FakeHealth(FAKE_PORT, lambda h: (503, {"Content-Type": "application/problem+json",
                                                  "X-GmailSync-Version": other},
                                            b'{"type": "database-unavailable"}'))
    try:
        p = run_with(deb, "gmailsync-rollback", "--to", other, "--wait-tasks", "0",
                     "--timeout", "2s", env=env_without_health_url(deb, GS_HEALTH_URL=fake.url))
    finally:
        fake.close()
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"/health did not report {other} with a 200" in p.stderr, p.stderr
    assert "HTTP 503 (database-unavailable)" in p.stderr and "reverted" in p.stderr, p.stderr
    assert file_state(deb.active_file)[0] == active
    wait_for("the Debian httpd back on " + current,
             lambda: (deb.health() or {}).get("version") == current, 30)


def test_a_toggle_overridden_by_a_later_file_is_refused_naming_it(deb):
    before = file_state(deb.toggles_file)[0]
    gens = deb.generations()
    # Debian reads conf-enabled/ after mods-enabled/gmailsync.conf (and its toggles include)
    later = os.path.join(deb.confdir, "conf-enabled", "zz-local-workers.conf")
    with open(later, "w") as f:
        f.write("<IfModule gmailsync_module>\n    GmailSyncMaxWorkers 2\n</IfModule>\n")
    try:
        p = toggle(deb, "workers", "3", "--timeout", "60s")
    finally:
        os.unlink(later)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{later}:2: GmailSyncMaxWorkers 2" in p.stderr, p.stderr
    assert "previous toggles file is back" in p.stderr
    assert p.seconds < 30, p.seconds        # found before the restart, not timed out
    # a line of gmailsync.conf itself below its IncludeOptional of the toggles file
    conf = os.path.join(deb.confdir, "mods-available", "gmailsync.conf")
    saved = open(conf).read()
    with open(conf, "a") as f:
        f.write("GmailSyncMode smart\n")
    try:
        p = toggle(deb, "mode", "full", "--timeout", "60s")
    finally:
        with open(conf, "w") as f:
            f.write(saved)
    assert p.returncode == 1, p.stdout + p.stderr
    n = saved.count("\n") + 1
    assert re.search(rf"{re.escape(deb.confdir)}/mods-\w+/gmailsync\.conf:{n}: GmailSyncMode smart",
                     p.stderr), p.stderr
    assert p.seconds < 30, p.seconds
    assert file_state(deb.toggles_file)[0] == before
    assert deb.generations() == gens and deb.health()["max_workers"] == 4


def token_conf(deb, token, directive_known):
    """A token file (root-readable only) and a site file setting GmailSyncHealthTokenFile
    (inside <IfDirective> when the module does not know the directive yet)."""
    path = os.path.join(deb.root, "health-token")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(token + "\n")
    site = os.path.join(deb.confdir, "conf-enabled", "zz-health-token.conf")
    line = f'GmailSyncHealthTokenFile "{path}"\n'
    with open(site, "w") as f:
        f.write(line if directive_known else
                f"<IfDirective GmailSyncHealthTokenFile>\n    {line}</IfDirective>\n")
    return site


def test_scripts_send_the_health_token_of_the_configuration(deb):
    # /health behind a proxy that demands the bearer token (the module's own check is
    # test_scripts_use_the_real_health_token_directive): every request the scripts make to
    # /health and /metrics must carry it, and no bundle file may hold it
    token = "t0k-" + os.urandom(12).hex()

    def answer(h):
        if h.headers.get("Authorization") != f"Bearer {token}":
            return 401, {"Content-Type": "application/problem+json",
                         "WWW-Authenticate": "Bearer"}, b'{"type": "unauthorized"}'
        return forward(deb, h)

    fake = FakeHealth(FAKE_PORT, answer)
    env = env_without_health_url(deb, GS_HEALTH_URL=fake.url)
    current = deb.active()
    other = V2 if current == V1 else V1
    try:
        p = run_with(deb, "gmailsync-toggle", "status", env=env)
        assert p.returncode == 1 and "HTTP 401" in p.stdout, p.stdout + p.stderr
        site = token_conf(deb, token, directive_known=False)
        try:
            assert "Syntax OK" in deb.ctl("-t").stderr
            p = run_with(deb, "gmailsync-toggle", "status", env=env)
            assert p.returncode == 0, p.stdout + p.stderr
            p = run_with(deb, "gmailsync-toggle", "mode", "full", "--timeout", "10s", env=env)
            assert p.returncode == 0, p.stdout + p.stderr
            p = run_with(deb, "gmailsync-toggle", "mode", "smart", "--timeout", "10s", env=env)
            assert p.returncode == 0, p.stdout + p.stderr
            p = run_with(deb, "gmailsync-rollback", "--to", other, "--dry-run", env=env)
            assert p.returncode == 0, p.stdout + p.stderr
        finally:
            os.unlink(site)
    finally:
        fake.close()
    assert token not in p.stdout + p.stderr
    paths = [path for path, _ in fake.seen]
    assert any(x.endswith("/metrics") for x in paths) and any(x.endswith("/health") for x in paths)
    unauthorised = [path for path, h in fake.seen[1:] if h.get("Authorization") != f"Bearer {token}"]
    assert not unauthorised, unauthorised
    with tarfile.open(summary(p.stdout)["bundle"]) as tar:
        for m in tar.getmembers():
            if m.isfile():
                text = tar.extractfile(m).read().decode()
                assert token not in text, m.name
        health = next(tar.extractfile(m).read().decode() for m in tar.getmembers()
                      if m.name.endswith("/health.json"))
    assert f'"version": "{current}"' in health


def module_knows(directive):
    """Whether this tree's module (what the fixture builds) defines the directive."""
    src = os.path.join(ROOT, "mod_gmailsync", "httpd")
    return any(f'"{directive}"' in open(os.path.join(src, n), errors="replace").read()
               for n in os.listdir(src) if n.endswith((".c", ".h")))


@pytest.mark.skipif(not module_knows("GmailSyncHealthTokenFile"),
                    reason="the module has no GmailSyncHealthTokenFile yet (issue 21 item 7)")
def test_scripts_use_the_real_health_token_directive(deb):
    token = "t0k-" + os.urandom(12).hex()
    site = token_conf(deb, token, directive_known=True)
    env = env_without_health_url(deb)    # found from the configuration, token included
    current = deb.active()
    other = V2 if current == V1 else V1
    try:
        assert "Syntax OK" in deb.ctl("-t").stderr
        deb.ctl("graceful")
        wait_for("/health to demand the token", lambda: requests.get(
            deb.health_url, timeout=5, headers={"Connection": "close"}).status_code in (401, 403),
            30)
        p = run_with(deb, "gmailsync-toggle", "status", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        p = run_with(deb, "gmailsync-toggle", "mode", "full", "--timeout", "10s", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        p = run_with(deb, "gmailsync-toggle", "mode", "smart", "--timeout", "10s", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        for target in (other, current):
            p = run_with(deb, "gmailsync-rollback", "--to", target, "--wait-tasks", "0",
                         "--timeout", "10s", env=env)
            assert p.returncode == 0, p.stdout + p.stderr
            assert token not in p.stdout + p.stderr
            with tarfile.open(summary(p.stdout)["bundle"]) as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        assert token not in tar.extractfile(m).read().decode(), m.name
    finally:
        os.unlink(site)
        deb.ctl("graceful")
        wait_for("/health without the token", deb.health, 30)
    assert deb.health()["version"] == current
