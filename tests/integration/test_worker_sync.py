"""gmailsync-worker: full and incremental syncs against the fake Gmail API and real PostgreSQL.

Each test creates its own user and mailbox, inserts the task row itself and runs the worker as the
daemon will: `gmailsync-worker --task UUID [--lease L] --config -` with the configuration on stdin.
"""
import subprocess
import time

from gsworker import (EXIT_FAILED, EXIT_LOST, EXIT_NOSTART, EXIT_SUCCEEDED, EXIT_USAGE, WORKER_BIN,
                      assert_table_equals_mailbox, cursor, daemon_paused, gmail, new_task,
                      progress_values, stored, task, worker)  # noqa: F401  (fixtures)


def test_full_sync_stores_every_message_once_with_gmails_fields(stack, gmail, worker):
    user = stack.add_user(messages=1200)
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    t = task(stack, tid)
    assert (t["state"], t["mode"], float(t["progress"])) == ("SUCCEEDED", "full", 100.0)
    assert t["processed"] == t["total"] == 1200
    assert t["finished_at"] is not None and t["worker_pid"] == run.proc.pid and t["worker_host"]
    # one messages.get per message, no refetches, in batches of 50 after a first one of 25 (the
    # parts in flight start at 25, Gmail's safe level, and double while nothing is refused)
    assert gmail.requests_of(user["email"], "messages.get") == 1200
    assert gmail.total_requests("batch") == 25
    assert_table_equals_mailbox(stack, gmail, user)
    # the cursor is the historyId recorded before listing; no full sync is pending any more
    hid, last_full, pending, _ = cursor(stack, user["user_id"])
    assert hid == gmail.mailbox(user["email"])["history_id"] and last_full and pending is None
    # the log tells the story, without secrets
    assert run.events("worker.started") and run.events("task.succeeded")
    assert worker.client_secret not in run.stderr + run.stdout
    assert "ya29." not in run.stderr + run.stdout and "1//" not in run.stderr + run.stdout


def test_stdout_protocol_progress_never_decreases_and_ends_at_100(stack, gmail, worker):
    user = stack.add_user(messages=600)
    tid = new_task(stack, user["user_id"])
    gmail.fault(method="batch", mode="latency", seconds=0.03, count=-1)
    run = worker.run(tid, batch_size=20, progress_interval="50ms", parallel=1)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    board = run.board()
    assert board[0] == {"event": "state", "task": tid, "state": "RUNNING", "pid": str(run.proc.pid)}
    assert board[-1]["event"] == "state" and board[-1]["state"] == "SUCCEEDED"
    assert board[-1]["pct"] == "100.00" and board[-1]["processed"] == "600"
    calls = [f for f in board if f["event"] == "calls"]
    assert len(calls) == 1 and board[-2] is calls[0] and int(calls[0]["2xx"]) > 600
    assert calls[0]["5xx"] == calls[0]["429"] == calls[0]["error"] == "0"
    progress = [f for f in board if f["event"] == "progress"]
    assert len(progress) >= 2 and all(f["task"] == tid and f["mode"] == "full" for f in progress)
    pcts = progress_values(run)
    assert pcts == sorted(pcts) and pcts[-1] == 100.0 and max(pcts[:-1]) <= 99.0
    processed = [int(f["processed"]) for f in progress]
    assert processed == sorted(processed)


def test_progress_in_the_database_never_decreases_and_is_100_only_when_succeeded(stack, gmail,
                                                                                 worker):
    user = stack.add_user(messages=500)
    tid = new_task(stack, user["user_id"])
    gmail.fault(method="batch", mode="latency", seconds=0.05, count=-1)
    proc = worker.start(tid, batch_size=10, parallel=1, progress_interval="300ms")
    seen = []
    while proc.poll() is None:
        t = task(stack, tid)
        seen.append((t["state"], float(t["progress"]), t["processed"]))
        time.sleep(0.02)
    _, err = proc.communicate()
    t = task(stack, tid)
    seen.append((t["state"], float(t["progress"]), t["processed"]))
    assert proc.returncode == EXIT_SUCCEEDED, err
    pcts = [p for _, p, _ in seen]
    assert pcts == sorted(pcts)
    assert len(set(pcts)) >= 4, "progress was not written as it went: %s" % sorted(set(pcts))
    assert all(p < 100 for s, p, _ in seen if s != "SUCCEEDED")
    assert seen[-1][:2] == ("SUCCEEDED", 100.0)
    # throttled: at most one progress write per interval (plus the first), whatever the batches
    end = [line for line in err.splitlines() if "event=task.succeeded" in line][0]
    fields = dict(f.split("=", 1) for f in end.split() if "=" in f)
    writes, ms = int(fields["progress_writes"]), int(fields["duration_ms"])
    assert 2 <= writes <= ms / 300 + 2, (writes, ms)


def test_incremental_sync_applies_adds_deletes_and_label_changes(stack, gmail, worker):
    user = stack.add_user(messages=300)
    email = user["email"]
    assert worker.run(new_task(stack, user["user_id"])).rc == EXIT_SUCCEEDED
    ids = gmail.ids(email)
    added = gmail.add(email, 25)
    gmail.delete(email, ids[:10] + added[:3])                      # old and brand-new ones
    gmail.relabel(email, ids[10:40], add=["STARRED", "Label_2"], remove=["INBOX"])
    gmail.relabel(email, ids[20:30], add=["INBOX"], remove=["STARRED"])   # later change wins
    gmail.relabel(email, added[5:8], add=["IMPORTANT"])
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    t = task(stack, tid)
    assert (t["state"], t["mode"], float(t["progress"])) == ("SUCCEEDED", "incremental", 100.0)
    # only the 22 surviving new messages were fetched; nothing was listed
    assert gmail.requests_of(email, "messages.get") == 22
    assert gmail.requests_of(email, "messages.list") == 0
    assert_table_equals_mailbox(stack, gmail, user)
    assert cursor(stack, user["user_id"])[0] == gmail.mailbox(email)["history_id"]
    # a sync with nothing new is incremental, fetches nothing and still ends at 100
    gmail.reset_stats()
    tid = new_task(stack, user["user_id"])
    assert worker.run(tid).rc == EXIT_SUCCEEDED
    assert (task(stack, tid)["mode"], float(task(stack, tid)["progress"])) == ("incremental", 100.0)
    assert gmail.requests_of(email, "messages.get") == 0


def test_force_full_and_mode_full_resync_and_remove_rows_gone_from_gmail(stack, gmail, worker):
    user = stack.add_user(messages=200)
    assert worker.run(new_task(stack, user["user_id"])).rc == EXIT_SUCCEEDED
    stack.query("INSERT INTO gmailsync.messages (user_id, gmail_id, subject) VALUES (%s, 'ffff0000', 'stale')",
                (user["user_id"],))
    stack.query("UPDATE gmailsync.messages SET subject = 'tampered' WHERE user_id = %s", (user["user_id"],))
    tid = new_task(stack, user["user_id"], force_full=True)
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert task(stack, tid)["mode"] == "full"
    assert "reason=force_full" in run.stderr
    assert_table_equals_mailbox(stack, gmail, user)                  # stale row gone, fields refetched
    assert "removed=1 " in run.events("task.succeeded")[0]
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, mode="full")
    assert run.rc == EXIT_SUCCEEDED and task(stack, tid)["mode"] == "full" and "reason=mode_full" in run.stderr


def test_stale_history_cursor_falls_back_to_a_repair(stack, gmail, worker):
    user = stack.add_user(messages=150)
    email = user["email"]
    assert worker.run(new_task(stack, user["user_id"])).rc == EXIT_SUCCEEDED
    gmail.config(history_retention=5)
    ids = gmail.ids(email)
    gmail.relabel(email, ids[:20], add=["STARRED"])      # 20 records: the cursor falls off the log
    gmail.delete(email, ids[20:23])
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid)
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    assert task(stack, tid)["mode"] == "full"      # the task row's mode for a repair
    assert run.events("sync.fallback") and "reason=history_expired" in run.events("sync.fallback")[0]
    assert "to=repair" in run.events("sync.fallback")[0]
    assert "mode=repair" in run.events("sync.mode")[1]
    # ids and label sets (the repair lists labels, it does not refetch: a relabeled row keeps
    # the history_id it was fetched with); nothing fetched again (test_repair.py for the rest)
    assert_table_equals_mailbox(stack, gmail, user, label_order=False)


def test_adopting_a_task_the_daemon_claimed(stack, gmail, worker):
    user = stack.add_user(messages=30)
    tid = new_task(stack, user["user_id"])
    lease = str(stack.query("UPDATE gmailsync.sync_tasks SET state = 'RUNNING', lease = gen_random_uuid(),"
                            " started_at = now(), heartbeat_at = now(), worker_host = 'daemon-host'"
                            " WHERE task_id = %s RETURNING lease", (tid,))[0][0])
    wrong = worker.run(tid, lease="00000000-0000-4000-8000-000000000000")
    assert wrong.rc == EXIT_LOST and task(stack, tid)["state"] == "RUNNING"
    claim = worker.run(tid)                          # a RUNNING task cannot be claimed again
    assert claim.rc == EXIT_LOST
    run = worker.run(tid, lease=lease, host="adopter")
    assert run.rc == EXIT_SUCCEEDED, run.stderr
    t = task(stack, tid)
    assert t["state"] == "SUCCEEDED" and t["lease"] == lease
    assert t["worker_pid"] == run.proc.pid and t["worker_host"] == "adopter"
    assert "how=adopted" in run.events("worker.started")[0]
    assert len(stored(stack, user["user_id"])) == 30


def test_a_closed_stdout_does_not_kill_the_worker(stack, gmail, worker):
    user = stack.add_user(messages=400)
    tid = new_task(stack, user["user_id"])
    proc = worker.start(tid, batch_size=10, parallel=1, progress_interval="10ms")
    proc.stdout.close()                              # the daemon went away: EPIPE on the next line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_SUCCEEDED, err
    assert task(stack, tid)["state"] == "SUCCEEDED"
    assert len(stored(stack, user["user_id"])) == 400


def test_usage_and_startup_errors_have_their_exit_codes(stack, gmail, worker):
    r = subprocess.run([WORKER_BIN], capture_output=True, text=True)
    assert r.returncode == EXIT_USAGE and "--task" in r.stderr
    r = subprocess.run([WORKER_BIN, "--task", "nope"], capture_output=True, text=True)
    assert r.returncode == EXIT_USAGE
    r = subprocess.run([WORKER_BIN, "--task", "00000000-0000-4000-8000-000000000000", "--config", "-"],
                       input="db = x\nbogus = 1\n", capture_output=True, text=True)
    assert r.returncode == EXIT_NOSTART and "unknown key 'bogus'" in r.stderr
    # db_wait: an unreachable database is waited for (a restart); here it never comes
    secret_conf = worker.config(db="postgresql://gmailsync:WRONGPASSWORD@127.0.0.1:1/gmailsync",
                                db_wait="1s")
    r = subprocess.run([WORKER_BIN, "--task", "00000000-0000-4000-8000-000000000000", "--config", "-"],
                       input=secret_conf, capture_output=True, text=True)
    assert r.returncode == EXIT_NOSTART and "WRONGPASSWORD" not in r.stderr
    assert worker.client_secret not in r.stderr
    r = worker.run("00000000-0000-4000-8000-000000000000")   # no such task
    assert r.rc == EXIT_LOST
    user = stack.add_user(messages=5)
    tid = new_task(stack, user["user_id"])
    assert worker.run(tid).rc == EXIT_SUCCEEDED
    assert worker.run(tid).rc == EXIT_LOST                # finished tasks are not claimable


def test_user_without_account_fails_with_auth_revoked(stack, gmail, worker):
    tid = new_task(stack, "user-without-account")
    run = worker.run(tid)
    assert run.rc == EXIT_FAILED
    t = task(stack, tid)
    assert (t["state"], t["error_code"]) == ("FAILED", "auth_revoked")
    assert "link the Gmail account" in t["error_message"]
