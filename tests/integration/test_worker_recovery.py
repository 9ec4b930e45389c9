"""gmailsync-worker under interruption: kill -9 and rerun, a lease taken away mid-run, a frozen
process, heartbeats through slow answers and backoffs, and the client-side quota bucket."""
import os
import signal
import time

from gsworker import (EXIT_LOST, EXIT_SUCCEEDED, assert_table_equals_mailbox, cursor,
                      daemon_paused, gmail, new_task, stored, task, wait_for, worker)  # noqa: F401  (fixtures)


def count(stack, user_id):
    return stack.query("SELECT count(*), count(DISTINCT gmail_id) FROM gmailsync.messages"
                       " WHERE user_id = %s", (user_id,))[0]


def test_kill_9_mid_full_sync_then_rerun_fetches_only_what_is_missing_and_loses_nothing(
        stack, gmail, worker):
    n = 3000
    user = stack.add_user(messages=n)
    email, uid = user["email"], user["user_id"]
    gmail.fault(method="batch", mode="latency", seconds=0.05, count=-1)
    first = new_task(stack, uid)
    proc = worker.start(first, parallel=1)
    wait_for("800 stored messages", lambda: count(stack, uid)[0] >= 800, timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    # a COMMIT the worker sent just before its death is done once its backend has gone
    wait_for("the killed worker's database session to end", lambda: not stack.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = %s",
        ("gmailsync-worker " + first,)), timeout=30)
    before = count(stack, uid)[0]
    assert 800 <= before < n
    assert cursor(stack, uid)[2] == first                        # a full sync is pending
    # what the daemon does with a dead worker
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'worker_crashed',"
                " error_message = 'killed', finished_at = now() WHERE task_id = %s", (first,))
    # the mailbox changes meanwhile: stored and unstored messages deleted, new ones, relabels
    have = set(stored(stack, uid))
    ids = gmail.ids(email)
    stored_ids = [i for i in ids if i in have]
    unstored_ids = [i for i in ids if i not in have]
    gmail.delete(email, stored_ids[:5] + unstored_ids[:5])
    gmail.add(email, 7)
    gmail.relabel(email, stored_ids[10:20], add=["STARRED"], remove=["INBOX", "UNREAD"])
    gmail.clear_faults()
    gmail.wait_quiet()                 # the killed worker's last batch is counted before the reset
    gmail.reset_stats()

    second = new_task(stack, uid)
    run = worker.run(second)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert "resumed=1" in run.events("sync.mode")[0]
    # only what the killed run had not stored: mailbox (n - 10 + 7) minus (before - 5) kept rows
    assert gmail.requests_of(email, "messages.get") == n - before + 2
    assert count(stack, uid)[0] == count(stack, uid)[1] == n - 3
    # GmailSyncContent full (the default): every row has its content, none was fetched twice
    assert stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s AND"
                       " content_state IN ('complete', 'parse_error')", (uid,))[0][0] == n - 3
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
    # the cursor is the first attempt's: the next incremental sync replays the relabels it skipped
    assert cursor(stack, uid)[2] is None
    third = new_task(stack, uid)
    run = worker.run(third)
    assert run.rc == EXIT_SUCCEEDED and task(stack, third)["mode"] == "incremental"
    assert_table_equals_mailbox(stack, gmail, user)


def test_a_lease_taken_away_mid_run_stops_the_worker_without_another_write(stack, gmail, worker):
    user = stack.add_user(messages=2000)
    uid = user["user_id"]
    gmail.fault(method="batch", mode="latency", seconds=0.1, count=-1)
    tid = new_task(stack, uid)
    proc = worker.start(tid, parallel=1, heartbeat="200ms")
    wait_for("some progress", lambda: count(stack, uid)[0] >= 200, timeout=60)
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now(),"
                " error_code = 'cancelled', error_message = 'cancelled by the user'"
                " WHERE task_id = %s", (tid,))
    at_cancel = count(stack, uid)[0]
    row_at_cancel = task(stack, tid)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == EXIT_LOST, err
    assert out.splitlines()[-1] == "gs1 state task=%s state=LOST" % tid
    assert "event=task.lost" in err
    assert count(stack, uid)[0] == at_cancel < 2000               # no row after the cancel
    assert task(stack, tid) == row_at_cancel                      # the task row untouched


def test_heartbeat_keeps_beating_through_a_slow_answer_and_a_backoff(stack, gmail, worker):
    user = stack.add_user(messages=20)
    tid = new_task(stack, user["user_id"])
    gmail.fault(method="getProfile", mode="latency", seconds=2.0, count=1)
    gmail.fault(method="messages.list", status=429, count=1)        # Retry-After: 1 s
    proc = worker.start(tid, heartbeat="200ms", timeout="10s")
    beats = set()
    while proc.poll() is None:
        row = task(stack, tid)
        if row["state"] == "RUNNING":
            beats.add(row["heartbeat_at"])
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == EXIT_SUCCEEDED, err
    # ~3 s of waiting (2 s answer + 1 s Retry-After) at a 200 ms heartbeat
    assert len(beats) >= 8, sorted(beats)


def test_a_frozen_worker_stops_beating_and_resumes_when_thawed(stack, gmail, worker):
    user = stack.add_user(messages=300)
    tid = new_task(stack, user["user_id"])
    gmail.fault(method="batch", mode="latency", seconds=0.5, count=-1)
    proc = worker.start(tid, heartbeat="100ms", batch_size=10, parallel=1)
    first = wait_for("a heartbeat", lambda: task(stack, tid)["heartbeat_at"])
    wait_for("the next heartbeat", lambda: task(stack, tid)["heartbeat_at"] != first)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        frozen = task(stack, tid)["heartbeat_at"]
        deadline = time.monotonic() + 1.0                # 10 heartbeat intervals
        while time.monotonic() < deadline:
            assert task(stack, tid)["heartbeat_at"] == frozen
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_for("a heartbeat after thawing", lambda: task(stack, tid)["heartbeat_at"] != frozen)
    gmail.clear_faults()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_SUCCEEDED, err


def test_the_quota_bucket_keeps_429s_rare(stack, gmail, worker):
    gmail.config(quota_units_per_sec=500)
    user = stack.add_user(messages=500)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    started = time.monotonic()
    run = worker.run(tid, quota_units=500)
    elapsed = time.monotonic() - started
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    st = gmail.stats()["per_mailbox"][user["email"]]
    calls = sum(st["requests"].values())
    limited = st["status_counts"].get("429", 0)
    assert limited <= 0.01 * calls, (limited, calls)
    # ~2,500 units at 500/s with a one-second burst: at least ~4 s, so the bucket held the
    # worker back; the pace it kept at the end is the one allowed (not lowered: no 429 made it
    # back off). How long beyond that is the machine's CPU, a benchmark's business
    # (scripts/bench quota), not this test's: 14 s was seen at a load average of 9.
    pace = float(run.events("task.succeeded")[0].split(" pace_units=")[1].split()[0])
    assert pace >= 450, run.events("task.succeeded")[0]
    assert elapsed >= 3.5, elapsed
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)


def test_a_long_content_transaction_beats_again_before_it_commits(stack, gmail, worker):
    # a batch's messages are parsed and stored in one transaction that holds the task row; one
    # that runs longer than GmailSyncStuckAfter (large or hostile mail, a loaded machine) must
    # not commit a beat as old as itself, or the daemon finds the task STUCK the moment it
    # commits. A deferred trigger notes, at each commit, how old the task's beat is; the user's
    # bodies are made slow to store (0.2 s each, 20 in one batch: a 4 s transaction).
    user = stack.add_user(messages=20)
    uid = user["user_id"]
    stack.query("CREATE TABLE public.beat_at_commit (task_id uuid, age double precision)")
    stack.query("CREATE FUNCTION public.note_beat() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO public.beat_at_commit SELECT t.task_id,"
                " extract(epoch FROM clock_timestamp() - t.heartbeat_at)"
                " FROM gmailsync.sync_tasks t WHERE t.task_id = NEW.task_id; RETURN NULL; END $$")
    stack.query("CREATE CONSTRAINT TRIGGER beat_at_commit AFTER UPDATE ON gmailsync.sync_tasks"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.note_beat()")
    stack.query("CREATE FUNCTION public.slow_body() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$")
    stack.query("CREATE TRIGGER slow_body BEFORE INSERT ON gmailsync.message_bodies FOR EACH ROW"
                " WHEN (NEW.user_id = %s) EXECUTE FUNCTION public.slow_body()", (uid,))
    try:
        tid = new_task(stack, uid)
        run = worker.run(tid, batch_size=50, parallel=1)
        assert run.rc == EXIT_SUCCEEDED, run.stderr
        ages = [a for (a,) in stack.query("SELECT age FROM public.beat_at_commit WHERE task_id = %s",
                                          (tid,))]
        assert ages, "no commit was seen"
        assert max(ages) < 1.5, sorted(ages)
    finally:
        stack.query("DROP TRIGGER IF EXISTS slow_body ON gmailsync.message_bodies")
        stack.query("DROP TRIGGER IF EXISTS beat_at_commit ON gmailsync.sync_tasks")
        stack.query("DROP FUNCTION IF EXISTS public.slow_body(), public.note_beat()")
        stack.query("DROP TABLE IF EXISTS public.beat_at_commit")
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)


def test_a_dropped_database_connection_is_reopened_and_the_sync_goes_on(stack, gmail, worker):
    user = stack.add_user(messages=1500)
    uid = user["user_id"]
    gmail.fault(method="batch", mode="latency", seconds=0.05, count=-1)
    tid = new_task(stack, uid)
    proc = worker.start(tid, parallel=1)
    wait_for("some progress", lambda: count(stack, uid)[0] >= 200, timeout=60)
    # the worker names its connection after the task (pg_stat_activity.application_name)
    killed = stack.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = %s", ("gmailsync-worker " + tid,))
    assert killed == [(True,)]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_SUCCEEDED, err
    assert "event=db.reconnected" in err
    assert task(stack, tid)["state"] == "SUCCEEDED"
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
