"""Optional row-level security (issue 24, sql/optional/row_level_security.sql).

With the script applied by a superuser, a login role of the hosting application that is a
member of gmailsync_reader reads the mail tables and views, and sees only the rows of the user
named by the setting gmailsync.user_id: every table of the schema with a user_id column is
tried, for two users, without the setting and with an empty one. The module's own role (the
tables' owner) is not affected: a sync by the real worker and the message view work with the
policies on. The down migrations pass with the script applied, and the undo script removes it.
"""
import os
import re
import subprocess
import uuid

import psycopg2
import pytest
import requests

from gsworker import EXIT_SUCCEEDED, Gmail, Worker, daemon_paused, new_task, task  # noqa: F401
from test_message_content import MIME_DIR, import_message
from test_migrations import libpq_env, migrate, schema, scratch  # noqa: F401

from conftest import ROOT

APPLY = os.path.join(ROOT, "sql", "optional", "row_level_security.sql")
UNDO = os.path.join(ROOT, "sql", "optional", "row_level_security.undo.sql")
VIEWS = ("mailbox", "message_labels", "label_counts", "deleted_messages")


def on_db(dsn, name):
    out = re.sub(r"/[^/?]+(\?|$)", "/%s\\1" % name, dsn, count=1)
    assert out.split("?")[0].endswith("/" + name), out
    return out


def psql_file(dsn, path):
    """psql -f as the role of dsn (its password through the environment, not argv)."""
    p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", path],
                       env=libpq_env(dsn), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def admin_exec(stack, sql, db="gmailsync"):
    conn = psycopg2.connect(on_db(stack.pg_admin_dsn, db))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def sync(stack, user):
    tid = new_task(stack, user["user_id"])
    run = Worker(stack).run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    assert task(stack, tid)["state"] == "SUCCEEDED"


@pytest.fixture(scope="module")
def rls(stack):
    """The script applied to the stack's database and an application login role that is a
    member of gmailsync_reader; undone afterwards."""
    role = "gs_app_" + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    psql_file(on_db(stack.pg_admin_dsn, "gmailsync"), APPLY)
    psql_file(on_db(stack.pg_admin_dsn, "gmailsync"), APPLY)       # a second run is harmless
    admin_exec(stack, "CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT gmailsync_reader TO %s"
               % (role, password, role))
    p = psycopg2.extensions.parse_dsn(stack.pg_dsn)
    yield psycopg2.extensions.make_dsn(host=p["host"], port=p["port"], dbname=p["dbname"],
                                       user=role, password=password)
    psql_file(on_db(stack.pg_admin_dsn, "gmailsync"), UNDO)
    admin_exec(stack, "DROP ROLE %s" % role)


@pytest.fixture(scope="module")
def users(stack, rls):
    """Two users whose mail (generated messages, one with attachments) is synced by the worker
    with the policies on; one message of each is marked deleted."""
    Gmail(stack.gmail_url).clear_faults()
    out = []
    with open(os.path.join(MIME_DIR, "mixed_nested.eml"), "rb") as f:
        raw = f.read()
    for n in (4, 6):
        user = stack.add_user(messages=n)
        user["with_content"] = import_message(stack, user["email"], raw)
        sync(stack, user)
        # one message kept as deleted in Gmail (archive mode), for gmailsync.deleted_messages
        stack.query("UPDATE gmailsync.messages SET deleted_at = now() WHERE user_id = %s"
                    " AND gmail_id = (SELECT min(gmail_id) FROM gmailsync.messages"
                    " WHERE user_id = %s AND gmail_id <> %s)",
                    (user["user_id"], user["user_id"], user["with_content"]))
        out.append(user)
    return out


def user_tables(stack):
    """Every table and view of the schema with a user_id column."""
    return [r[0] for r in stack.query(
        "SELECT c.table_name FROM information_schema.columns c"
        " WHERE c.table_schema = 'gmailsync' AND c.column_name = 'user_id'"
        " ORDER BY c.table_name")]


def read_as_app(dsn, table, user_id):
    """The user_ids of `table` the application role sees with gmailsync.user_id set to user_id
    (None: never set), or 'denied'."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            if user_id is not None:
                cur.execute("SELECT set_config('gmailsync.user_id', %s, true)", (user_id,))
            try:
                cur.execute("SELECT user_id FROM gmailsync.%s" % table)
            except psycopg2.errors.InsufficientPrivilege:
                return "denied"
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_the_application_role_sees_only_the_named_users_rows_in_every_table(stack, rls, users):
    alice, bob = users
    tables = user_tables(stack)
    mail = ("messages", "message_addresses", "message_bodies", "message_attachments",
            "attachment_blobs", "message_raw", "labels", "threads", "changes", "change_seq",
            "message_search")
    assert set(mail + VIEWS) <= set(tables), tables
    readable = set()
    for table in tables:
        owner = dict(stack.query("SELECT user_id, count(*) FROM gmailsync.%s"
                                 " WHERE user_id IN (%%s, %%s) GROUP BY user_id" % table,
                                 (alice["user_id"], bob["user_id"])))
        for who in (alice, bob):
            seen = read_as_app(rls, table, who["user_id"])
            if seen == "denied":
                continue
            readable.add(table)
            assert seen and set(seen) == {who["user_id"]}, (table, who["user_id"], set(seen))
            assert len(seen) == owner[who["user_id"]], table
        # nothing at all without the setting, with an empty one, or with an unknown user
        for setting in (None, "", "nobody"):
            seen = read_as_app(rls, table, setting)
            assert seen == "denied" or seen == [], (table, setting, len(seen))
    # the mail is readable (each of its tables had rows of both users), the rest is not
    assert readable == set(mail + VIEWS), sorted(readable)
    for table in ("sessions", "accounts", "sync_tasks", "oauth_states"):
        assert read_as_app(rls, table, alice["user_id"]) == "denied", table


def test_the_application_role_cannot_write_or_unset_the_policies(stack, rls, users):
    alice, _ = users
    conn = psycopg2.connect(rls)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('gmailsync.user_id', %s, false)", (alice["user_id"],))
            for sql in ("DELETE FROM gmailsync.messages",
                        "UPDATE gmailsync.labels SET name = 'x'",
                        "INSERT INTO gmailsync.changes (user_id, seq, gmail_id, kind)"
                        " VALUES ('x', 1, 'y', 'added')",
                        "ALTER TABLE gmailsync.messages DISABLE ROW LEVEL SECURITY",
                        "SET row_security = off; SELECT count(*) FROM gmailsync.messages"):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(sql)
    finally:
        conn.close()


def test_the_module_syncs_and_serves_with_the_policies_on(stack, rls, users):
    alice, _ = users
    before = stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s",
                         (alice["user_id"],))[0][0]
    Gmail(stack.gmail_url).add(alice["email"], 3)
    sync(stack, alice)
    after = stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s",
                        (alice["user_id"],))[0][0]
    assert after == before + 3
    assert len(read_as_app(rls, "messages", alice["user_id"])) == after
    r = requests.get("%s/messages/%s" % (stack.api, alice["with_content"]), timeout=30,
                     cookies={"session": alice["session"]})
    assert r.status_code == 200 and len(r.json()["attachments"]) == 3
    r = requests.get("%s/messages/%s/attachments/1" % (stack.api, alice["with_content"]),
                     timeout=30, cookies={"session": alice["session"]})
    assert r.status_code == 200 and r.content.startswith(b"%PDF")


def test_down_migrations_pass_with_the_policies_applied(stack, scratch):
    name = psycopg2.extensions.parse_dsn(scratch)["dbname"]
    admin = on_db(stack.pg_admin_dsn, name)
    sql_dir = os.path.join(ROOT, "sql")
    migrate(scratch, sql_dir, "up")
    bare = schema(scratch)
    psql_file(admin, APPLY)
    assert schema(scratch) != bare
    migrate(scratch, sql_dir, "down", "--all")
    migrate(scratch, sql_dir, "up")
    psql_file(admin, APPLY)
    psql_file(admin, UNDO)
    assert schema(scratch) == bare, "the undo script left something behind"
    psql_file(admin, UNDO)                                          # a second run is harmless
