"""Gmail watch renewal for push notifications (issue 26, sql/014): with GmailSyncPushTopic set the
daemon calls users.watch for every linked account (the topic, no label filter), records the
expiration and history id Gmail answered, renews each watch before it lapses (here with a short
expiration granted by the fake), retries a refused watch with a growing backoff and logs it once,
stops the watch on disconnect; without push no watch is called; /health and /metrics count the
watches."""
import re
import time

import pytest
import requests

from conftest import wait_for
from gsworker import Gmail
from test_autosync import park_linked, unpark

TOPIC = "projects/fake-project/topics/gmail-push"
SA = "gmail-push@fake-project.iam.gserviceaccount.com"
AUD = "https://push.example.test/api/gmail/sync/push"
WEEK = 7 * 24 * 3600
FAILED = r"event=push\.watch_failed"


def push_state(stack):
    r = requests.get(stack.gmail_url + "/_control/push/state", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def push_config(stack, **kw):
    r = requests.post(stack.gmail_url + "/_control/push/config", json=kw, timeout=30)
    assert r.status_code == 200, r.text


def calls(stack, email, op=None):
    """The fake's record of users.watch / users.stop calls of one mailbox (refused ones too)."""
    return [c for c in push_state(stack)["watch_calls"]
            if c["email"] == email.lower() and (op is None or c["op"] == op)]


def granted(stack, email):
    """The watches the fake granted to one mailbox, in order."""
    return [w for w in push_state(stack)["watch_log"] if w["email"] == email.lower() and w["op"] == "watch"]


def account(stack, user_id):
    rows = stack.query("SELECT (extract(epoch FROM watch_expires_at) * 1000)::bigint, watch_history_id::text,"
                       " watch_error, watch_failures FROM gmailsync.accounts WHERE user_id = %s", (user_id,))
    return rows[0] if rows else None


def test_without_push_no_watch_is_called(stack):
    # first in the file, before the module's push fixture: push is off
    user = stack.add_user(messages=2)
    r = requests.post(stack.api + "/smart", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code in (200, 201, 202), r.text
    # the daemon's loop went round several times (it claimed and finished this sync)
    wait_for("the sync", lambda: stack.query(
        "SELECT 1 FROM gmailsync.sync_tasks WHERE user_id = %s AND state = 'SUCCEEDED'",
        (user["user_id"],)), 60)
    assert calls(stack, user["email"]) == []
    assert account(stack, user["user_id"])[0] is None
    assert requests.get(stack.api + "/health", timeout=30).json()["push"] is None


@pytest.fixture(scope="module")
def watching(stack):
    # the daemon watches every linked account in the database: the accounts other test files left
    # behind (some with made-up tokens) are unlinked for this module, as test_autosync does
    parked = park_linked(stack)
    requests.post(stack.gmail_url + "/_control/push/reset", json={}, timeout=30)
    # a short expiration: renewed at half its lifetime, several times within a test
    push_config(stack, enabled=False, require_watch=True, watch_ttl=6)
    stack.base_conf = ("GmailSyncPushTopic %s\nGmailSyncPushServiceAccount %s\nGmailSyncPushAudience %s\n"
                       "GmailSyncPushJWKS %s/oauth2/v3/certs\n" % (TOPIC, SA, AUD, stack.gmail_url))
    stack.reconfigure(None)
    yield stack
    stack.base_conf = ""
    stack.reconfigure(None)
    push_config(stack, watch_ttl=WEEK, require_watch=True)   # the fake's defaults
    Gmail(stack.gmail_url).clear_faults()
    unpark(stack, parked)


def test_every_linked_account_is_watched_and_renewed_before_it_lapses(watching):
    stack = watching
    users = [stack.add_user(messages=2) for _ in range(3)]
    for user in users:
        wait_for("three watches of %s" % user["email"], lambda: len(granted(stack, user["email"])) >= 3, 30)
    for user in users:
        ws = granted(stack, user["email"])
        assert all(w["topic"] == TOPIC and w["label_ids"] is None for w in ws)
        for earlier, later in zip(ws, ws[1:]):
            # renewed before the earlier watch lapsed, not in a loop: about half its lifetime
            assert later["at"] * 1000 < earlier["expiration"], (earlier, later)
            assert later["at"] - earlier["at"] > 1.5, (earlier, later)
        # the expiration and history id Gmail answered are recorded (the latest watch)
        wait_for("the latest watch recorded", lambda: account(stack, user["user_id"])[0]
                 == granted(stack, user["email"])[-1]["expiration"], 10)
        expires, history_id, error, failures = account(stack, user["user_id"])
        assert int(history_id) == int(Gmail(stack.gmail_url).mailbox(user["email"])["history_id"])
        assert error is None and failures == 0


def test_an_account_linked_to_another_address_is_watched_again_at_once(watching):
    stack = watching
    push_config(stack, watch_ttl=3600)        # nothing is due by its time meanwhile
    user = stack.add_user(messages=1)
    wait_for("the watch", lambda: account(stack, user["user_id"])[0] is not None, 30)
    n = len(calls(stack, user["email"], "watch"))
    # the account's address changes (a link again to another mailbox; here the same one in
    # capitals, which the fake's tokens still open)
    stack.query("UPDATE gmailsync.accounts SET email = upper(email) WHERE user_id = %s RETURNING 1",
                (user["user_id"],))
    wait_for("a new watch", lambda: len(calls(stack, user["email"], "watch")) == n + 1, 30)
    wait_for("the address recorded", lambda: stack.query(
        "SELECT watch_email = email FROM gmailsync.accounts WHERE user_id = %s", (user["user_id"],))[0][0], 10)


def test_a_refused_watch_is_retried_with_backoff_and_logged_once(watching, expect_log):
    stack = watching
    expect_log(FAILED)
    push_config(stack, watch_ttl=3600)        # the other accounts are not due meanwhile
    gmail = Gmail(stack.gmail_url)
    email = "refused-watch-%d@example.com" % time.time_ns()
    gmail.fault(method="watch", mode="status", status=503, email=email, count=3)
    start = stack.log_size()
    user = stack.add_user(messages=1, email=email)
    wait_for("the watch granted after the refusals", lambda: len(granted(stack, email)) == 1, 60)
    attempts = [c["at"] for c in calls(stack, email, "watch")]
    assert len(attempts) == 4, attempts                  # three refused, then granted
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    # 2 s, 4 s, 8 s (a round every second: up to 1 s later)
    assert gaps[0] >= 1.9 and gaps[1] >= 3.9 and gaps[2] >= 7.9, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    log = stack.log_since(start)
    failed = [line for line in log.splitlines() if re.search(FAILED, line) and user["user_id"] in line]
    warned = [line for line in failed if "[gmailsync:warn" in line]
    assert len(warned) == 1, failed                       # once, not once per attempt
    assert re.search(r"event=push\.watch user=%s renewal=false .*after_failures=3" % re.escape(user["user_id"]),
                     log), log[-3000:]
    assert account(stack, user["user_id"])[2:] == (None, 0)


def test_an_unanswered_watch_times_out_and_is_retried(watching, expect_log):
    # Gmail hangs: the daemon's request gives up after its 5 s timeout, the account (and the
    # daemon's next rounds) wait the backoff, then the watch is asked again and granted
    stack = watching
    expect_log(FAILED)
    push_config(stack, watch_ttl=3600)
    gmail = Gmail(stack.gmail_url)
    email = "stalled-watch-%d@example.com" % time.time_ns()
    gmail.fault(method="watch", mode="stall", seconds=30, email=email, count=1)
    start = stack.log_size()
    user = stack.add_user(messages=1, email=email)
    # (the fake granted the first one, but its answer never came: asked again)
    wait_for("the watch asked again and recorded", lambda: len(calls(stack, email, "watch")) == 2
             and account(stack, user["user_id"])[0] == granted(stack, email)[-1]["expiration"], 60)
    attempts = [c["at"] for c in calls(stack, email, "watch")]
    assert len(attempts) == 2 and len(granted(stack, email)) == 2, attempts
    assert 5 + 2 - 0.5 <= attempts[1] - attempts[0] < 5 + 2 + 3, attempts     # timeout + backoff
    failed = [line for line in stack.log_since(start).splitlines()
              if re.search(FAILED, line) and user["user_id"] in line]
    assert len(failed) == 1 and "[gmailsync:warn" in failed[0], failed
    assert account(stack, user["user_id"])[2:] == (None, 0)


def test_disconnect_stops_the_watch(watching):
    stack = watching
    push_config(stack, watch_ttl=3600)
    user = stack.add_user(messages=1)
    wait_for("the watch", lambda: len(granted(stack, user["email"])) == 1, 30)
    start = stack.log_size()
    r = requests.post(stack.api + "/oauth/disconnect", cookies={"session": user["session"]}, timeout=30)
    assert r.status_code == 200 and r.json()["account_removed"] is True, r.text
    assert len(calls(stack, user["email"], "stop")) == 1
    assert user["email"].lower() not in push_state(stack)["watches"]
    assert re.search(r"event=push\.stop user=%s" % re.escape(user["user_id"]), stack.log_since(start))


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    assert m, (name, labels)
    return float(m.group(1))


def test_health_and_metrics_count_the_watches(watching):
    stack = watching
    push_config(stack, watch_ttl=3600)
    users = [stack.add_user(messages=1) for _ in range(3)]
    for user in users:
        wait_for("the watch of %s" % user["email"], lambda: account(stack, user["user_id"])[0] is not None, 30)
    # one lapsed watch and one failing account, both held back from the daemon (a far retry time)
    stack.query("UPDATE gmailsync.accounts SET watch_expires_at = now() - interval '1 second',"
                " watch_renewed_at = now() - interval '1 hour', watch_retry_at = now() + interval '1 hour'"
                " WHERE user_id = %s RETURNING 1", (users[0]["user_id"],))
    stack.query("UPDATE gmailsync.accounts SET watch_error = 'watch answered 403', watch_failures = 2,"
                " watch_retry_at = now() + interval '1 hour' WHERE user_id = %s RETURNING 1",
                (users[1]["user_id"],))
    linked = stack.query("SELECT count(*) FROM gmailsync.accounts WHERE refresh_token IS NOT NULL")[0][0]
    health = requests.get(stack.api + "/health", timeout=30).json()["push"]["watches"]
    assert health["lapsed"] == 1 and health["due"] >= 1 and health["failing"] == 1, health
    assert health["max_failures"] == 2 and health["watched"] + health["lapsed"] + health["unwatched"] == linked
    assert health["granted"] >= 3
    text = requests.get(stack.api + "/metrics", timeout=30).text
    for state in ("watched", "due", "lapsed", "unwatched", "failing"):
        assert metric(text, "gmailsync_push_watches", '{state="%s"}' % state) == health[state], state
    assert metric(text, "gmailsync_push_watch_calls_total", '{outcome="granted"}') == health["granted"]
    assert metric(text, "gmailsync_push_to_sync_seconds_count") >= 0
    assert "# TYPE gmailsync_push_to_sync_seconds histogram" in text


def test_health_alerts_when_push_runs_on_a_schema_without_it(watching):
    """The module runs on schema 12 and up; push needs 013 and 014. Push configured on an older
    schema is an alert, push_schema, and /health says degraded (the migrations' records of 014
    and later hidden for the test, the tables left as they are)."""
    stack = watching

    def health():
        r = requests.get(stack.api + "/health", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()
    assert "push_schema" not in health()["alerts"]
    stack.query("CREATE TABLE gmailsync.schema_migrations_hidden AS SELECT * FROM"
                " gmailsync.schema_migrations WHERE version >= 14")
    try:
        stack.query("DELETE FROM gmailsync.schema_migrations WHERE version >= 14")
        body = health()
        assert body["database"]["schema_version"] == 13
        assert body["status"] == "degraded" and "push_schema" in body["alerts"], body["alerts"]
        assert body["push"]["watches"] is None
    finally:
        stack.query("INSERT INTO gmailsync.schema_migrations SELECT * FROM"
                    " gmailsync.schema_migrations_hidden")
        stack.query("DROP TABLE gmailsync.schema_migrations_hidden")
    assert "push_schema" not in health()["alerts"]
