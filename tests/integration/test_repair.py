"""The quota-cheap repair after Gmail's history expired (issue 23).

When history.list answers 404 for the cursor, the worker no longer refetches every message: it
lists every id (5 units per 500), fetches only the ids it does not store, removes (or, under
GmailSyncDeletions keep, marks) the rows Gmail no longer lists, and rebuilds every message's
labels from per-label listings (messages.list?labelIds=X&includeSpamTrash=true). What must hold:
ids and every message's label set equal Gmail's; only the new messages are fetched; the quota
spent is a few per cent of a full refetch; the change feed carries exactly the changes made,
without a gap; a worker killed mid-repair and run again ends exact; where the repair cannot be
exact (a label listing refused) the worker says why and refetches everything.
"""
import os
import random
import signal
import time

from gsworker import (EXIT_SUCCEEDED, assert_table_equals_mailbox, cursor,  # noqa: F401
                      daemon_paused, gmail, new_task, progress_values, task, wait_for, worker)


def sync(stack, worker, user, **conf):
    tid = new_task(stack, user["user_id"])
    run = worker.run(tid, wait=conf.pop("wait", 300), **conf)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    run.task_id = tid
    return run


def stored_labels(stack, uid):
    return {r[0]: set(r[1] or []) for r in stack.query(
        "SELECT gmail_id, label_ids FROM gmailsync.messages WHERE user_id = %s"
        " AND deleted_at IS NULL", (uid,))}


def last_seq(stack, uid):
    rows = stack.query("SELECT last_seq FROM gmailsync.change_seq WHERE user_id = %s", (uid,))
    return rows[0][0] if rows else 0


def changes_since(stack, uid, seq):
    return stack.query("SELECT seq, gmail_id, kind, labels_added, labels_removed FROM"
                       " gmailsync.changes WHERE user_id = %s AND seq > %s ORDER BY seq",
                       (uid, seq))


def usage(gmail, email):
    mb = gmail.stats()["per_mailbox"].get(email.lower(), {})
    req = mb.get("requests", {})
    return mb.get("quota_units", 0), sum(req.values()), dict(req)


def expire_history(gmail, stack, user):
    """Gmail keeps 5 history records: the changes that follow push the cursor off the log."""
    gmail.config(history_retention=5)


def assert_expired(gmail, stack, user):
    floor = int(gmail.mailbox(user["email"])["history_floor"])
    assert int(cursor(stack, user["user_id"])[0]) < floor


def repair_line(run):
    """The repair's sync.mode line (after the incremental sync's, whose cursor had expired)."""
    lines = run.events("sync.mode")
    assert len(lines) == 2 and "mode=incremental" in lines[0] and "mode=repair" in lines[1], lines
    return lines[1]


def end_fields(run):
    line = run.events("task.succeeded")[0]
    return dict(f.split("=", 1) for f in line.split() if "=" in f and not f.startswith('"'))


def mutate(gmail, email, rng, ids, deleted, added, relabeled):
    """Deletes, adds and relabels (to no label, into TRASH and SPAM, starred, a new label).
    Returns (deleted ids, new ids, ids whose label set Gmail changed)."""
    gone = rng.sample(ids, deleted)
    rest = [i for i in ids if i not in set(gone)]
    rel = rng.sample(rest, relabeled)
    k = max(1, relabeled // 5)
    every = [l["id"] for l in gmail.labels(email)]
    new_label = gmail.label_create(email, "Repair %d" % rng.randrange(10 ** 6))
    changed = set()
    changed |= set(gmail.relabel(email, rel[:k], remove=every))                   # no label
    changed |= set(gmail.relabel(email, rel[k:2 * k], add=["TRASH"], remove=["INBOX"]))
    changed |= set(gmail.relabel(email, rel[2 * k:3 * k], add=["SPAM"], remove=["INBOX"]))
    changed |= set(gmail.relabel(email, rel[3 * k:4 * k], add=["STARRED"], remove=["UNREAD"]))
    changed |= set(gmail.relabel(email, rel[4 * k:], add=[new_label]))
    gmail.delete(email, gone)
    new = gmail.add(email, added)
    return gone, new, changed


def gmail_label_sets(gmail, email, ids):
    return {m: set(v.get("labelIds", [])) for m, v in gmail.messages(email, ids).items()}


def expected_labels(gmail, email, before, gone, changed, new):
    """Gmail's label sets: what was stored before, without the deleted messages, with those the
    test changed or added as the fake serves them now."""
    expect = {m: v for m, v in before.items() if m not in set(gone)}
    expect.update(gmail_label_sets(gmail, email, list(changed) + list(new)))
    return expect


def assert_feed(stack, uid, before_seq, before, after, new, gone):
    """The feed after a repair: one `added` per new message, one `deleted` per gone one, one
    `labels` per message whose set changed (with that difference), seq without a gap."""
    rows = changes_since(stack, uid, before_seq)
    assert [r[0] for r in rows] == list(range(before_seq + 1, before_seq + 1 + len(rows)))
    kinds = {}
    for _, mid, kind, added, removed in rows:
        kinds.setdefault(kind, []).append(mid)
        if kind == "labels":
            assert set(added or []) == after[mid] - before[mid], mid
            assert set(removed or []) == before[mid] - after[mid], mid
    relabeled = {m for m in before if m in after and before[m] != after[m]}
    assert sorted(kinds.get("added", [])) == sorted(new)
    assert sorted(kinds.get("deleted", [])) == sorted(gone)
    assert sorted(kinds.get("labels", [])) == sorted(relabeled)
    assert set(kinds) <= {"added", "deleted", "labels", "content"}
    return kinds


def test_repair_of_20000_messages_fetches_only_new_ones_and_costs_under_5_percent(
        stack, gmail, worker):
    n = 20000
    t0 = time.monotonic()
    user = stack.add_user(messages=n)
    email, uid = user["email"], user["user_id"]
    gmail.reset_stats()
    t1 = time.monotonic()
    # GmailSyncContent metadata: the same calls and units as full, a third of the wall time (the
    # fake renders and the worker parses no raw message); content with the repair is the
    # smaller tests' (only the new messages' content fetched)
    first = sync(stack, worker, user, wait=600, content="metadata")
    full_units, full_calls, full_req = usage(gmail, email)
    t2 = time.monotonic()
    before = stored_labels(stack, uid)
    assert len(before) == n
    seq0 = last_seq(stack, uid)

    expire_history(gmail, stack, user)
    rng = random.Random(23)
    gone, new, changed = mutate(gmail, email, rng, gmail.ids(email), 20, 50, 300)
    assert_expired(gmail, stack, user)
    gmail.reset_stats()
    t3 = time.monotonic()
    run = sync(stack, worker, user, content="metadata")
    t4 = time.monotonic()
    units, calls, req = usage(gmail, email)
    print("\nfull sync of %d messages (what the fallback cost before): units=%d calls=%d %s %.1fs"
          % (n, full_units, full_calls, full_req, t2 - t1))
    print("repair after 50 added, 20 deleted, 300 relabeled: units=%d calls=%d %s %.1fs"
          " (%.2f %% of the full refetch's units; worker: %s)"
          % (units, calls, req, t4 - t3, 100.0 * units / full_units,
             {k: end_fields(run)[k] for k in ("quota_units", "gmail_calls", "fetched", "relabeled",
                                              "removed", "duration_ms")}))
    print("mailbox set-up %.1fs; %s" % (t1 - t0, run.events("sync.repair")[0].split("] ", 2)[-1]))
    assert task(stack, run.task_id)["mode"] == "full"
    mode = repair_line(run)
    assert "reason=history_expired" in mode, mode
    assert not [e for e in run.events("sync.fallback") if "from=repair" in e]
    assert req.get("messages.get") == 50                 # content only for the new messages
    assert units <= 0.05 * n * 5, units
    fields = end_fields(run)
    assert fields["mode"] == "repair" and int(fields["quota_units"]) == units
    assert int(fields["fetched"]) == 50 and int(fields["removed"]) == 20
    pct = progress_values(run)
    assert pct == sorted(pct) and pct[-1] == 100.0
    # ids and label sets: Gmail's (what the test changed asked of the fake, the rest unchanged;
    # a sample of the unchanged ones asked too)
    after = stored_labels(stack, uid)
    assert set(after) == set(gmail.ids(email))
    expect = expected_labels(gmail, email, before, gone, changed, new)
    sample = rng.sample([m for m in expect if m not in changed and m not in new], 200)
    expect.update(gmail_label_sets(gmail, email, sample))
    assert after == expect, [(m, after.get(m), expect.get(m)) for m in set(after) ^ set(expect)
                             or [m for m in expect if after[m] != expect[m]]][:5]
    assert len([m for m in changed if before[m] != after[m]]) == len(changed)
    kinds = assert_feed(stack, uid, seq0, before, after, new, gone)
    assert len(kinds["labels"]) == len(changed)
    assert cursor(stack, uid)[0] is not None and cursor(stack, uid)[2] is None
    # the next sync is incremental again and fetches nothing
    gmail.reset_stats()
    nxt = sync(stack, worker, user, content="metadata")
    assert task(stack, nxt.task_id)["mode"] == "incremental"
    assert usage(gmail, email)[2].get("messages.get", 0) == 0
    assert stored_labels(stack, uid) == after
    assert first.rc == EXIT_SUCCEEDED


def synced_then_expired(stack, gmail, worker, n, seed, deleted, added, relabeled, **conf):
    """A mailbox of n synced, then history expired under deletions, additions and relabels.
    Returns (user, stored label sets before, last seq before, gone, new, changed)."""
    user = stack.add_user(messages=n)
    sync(stack, worker, user, **conf)
    before = stored_labels(stack, user["user_id"])
    seq0 = last_seq(stack, user["user_id"])
    expire_history(gmail, stack, user)
    gone, new, changed = mutate(gmail, user["email"], random.Random(seed),
                                gmail.ids(user["email"]), deleted, added, relabeled)
    assert_expired(gmail, stack, user)
    gmail.reset_stats()
    return user, before, seq0, gone, new, changed


def test_repair_in_archive_mode_marks_what_gmail_deleted(stack, gmail, worker):
    user, before, seq0, gone, new, changed = synced_then_expired(
        stack, gmail, worker, 700, 5, 9, 6, 40, deletions="keep")
    email, uid = user["email"], user["user_id"]
    run = sync(stack, worker, user, deletions="keep")
    assert repair_line(run)
    assert usage(gmail, email)[2].get("messages.get") == 6
    assert stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s AND gmail_id ="
                       " ANY (%s) AND content_state = 'complete'", (uid, new))[0][0] == 6
    kept = {r[0]: r[1] for r in stack.query(
        "SELECT gmail_id, deleted_at FROM gmailsync.messages WHERE user_id = %s"
        " AND gmail_id = ANY (%s)", (uid, gone))}
    assert set(kept) == set(gone) and all(kept.values())
    assert {r[0] for r in stack.query("SELECT gmail_id FROM gmailsync.deleted_messages"
                                      " WHERE user_id = %s", (uid,))} == set(gone)
    after = stored_labels(stack, uid)
    assert set(after) == set(gmail.ids(email))
    assert after == gmail_label_sets(gmail, email, list(after))
    assert_feed(stack, uid, seq0, before, after, new, gone)
    assert end_fields(run)["removed"] == "9"


def test_a_worker_killed_mid_repair_then_rerun_ends_exact(stack, gmail, worker):
    user, before, seq0, gone, new, changed = synced_then_expired(
        stack, gmail, worker, 3000, 7, 15, 25, 120)
    email, uid = user["email"], user["user_id"]
    # slow listings: the kill lands among the per-label listings (after the 7 pages of ids)
    gmail.fault(method="messages.list", mode="latency", seconds=0.15, count=-1, email=email)
    first = new_task(stack, uid)
    proc = worker.start(first)
    wait_for("the label listings", lambda: usage(gmail, email)[2].get("messages.list", 0) >= 10,
             timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    wait_for("the killed worker's session to end", lambda: not stack.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = %s",
        ("gmailsync-worker " + first,)), timeout=30)
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'FAILED', error_code = 'worker_crashed',"
                " error_message = 'killed', finished_at = now() WHERE task_id = %s", (first,))
    gmail.clear_faults()
    gmail.wait_quiet()
    fetched_first = usage(gmail, email)[2].get("messages.get", 0)
    assert fetched_first == 25                       # the new ones were fetched before the kill
    # more changes while nothing runs: the rerun starts from the old cursor, repairs again
    more = [m for m in before if m not in changed and m not in gone][:5]
    changed |= set(gmail.relabel(email, more, add=["STARRED", "IMPORTANT"]))
    gmail.reset_stats()
    run = sync(stack, worker, user)
    assert repair_line(run)
    assert usage(gmail, email)[2].get("messages.get", 0) == 0      # stored by the killed run
    after = stored_labels(stack, uid)
    assert set(after) == set(gmail.ids(email))
    assert after == expected_labels(gmail, email, before, gone, changed, new)
    assert_feed(stack, uid, seq0, before, after, new, gone)
    assert_table_equals_mailbox(stack, gmail, user, check_fields=False)


def test_a_refused_label_listing_falls_back_to_a_full_refetch_and_says_why(stack, gmail, worker):
    user = synced_then_expired(stack, gmail, worker, 300, 9, 3, 4, 20)[0]
    email = user["email"]
    # the first listing (all ids, one page) passes; the first label's listing is refused
    gmail.fault(method="messages.list", status=400, count=1, after=1, email=email)
    run = sync(stack, worker, user)
    fb = [e for e in run.events("sync.fallback") if "from=repair" in e]
    assert fb and "reason=label_listing_failed" in fb[0] and "to=full" in fb[0], run.stderr[-2000:]
    modes = run.events("sync.mode")
    assert len(modes) == 3 and "mode=incremental" in modes[0]
    assert "mode=repair" in modes[1] and "mode=full" in modes[2]
    assert "reason=repair_label_listing_failed" in modes[2]
    assert end_fields(run)["mode"] == "full"
    assert usage(gmail, email)[2].get("messages.get") >= 300      # everything again
    assert_table_equals_mailbox(stack, gmail, user)


def test_a_label_created_during_the_listings_falls_back_to_a_full_refetch(stack, gmail, worker):
    user = synced_then_expired(stack, gmail, worker, 300, 11, 2, 3, 10)[0]
    email = user["email"]
    gmail.fault(method="messages.list", mode="latency", seconds=0.2, count=-1, email=email)
    tid = new_task(stack, user["user_id"])
    proc = worker.start(tid)
    wait_for("the label listings", lambda: usage(gmail, email)[2].get("messages.list", 0) >= 3,
             timeout=60)
    new_label = gmail.label_create(email, "Meanwhile")
    gmail.relabel(email, gmail.ids(email)[:4], add=[new_label])
    out, err = proc.communicate(timeout=120)
    gmail.clear_faults()
    assert proc.returncode == EXIT_SUCCEEDED, err[-3000:]
    fb = [e for e in err.splitlines() if "event=sync.fallback" in e and "from=repair" in e]
    assert fb and "reason=labels_changed" in fb[0], err[-3000:]
    assert_table_equals_mailbox(stack, gmail, user)
