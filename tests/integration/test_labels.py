"""Labels with their names and archive-mode deletions (issue 23, sql/011).

The worker runs as the daemon runs it (gsworker), against the fake Gmail API, whose labels a
user creates, renames, recolours and deletes through its control API as in Gmail's web client.
What must hold after the next sync: gmailsync.labels is Gmail's label list, each message's label
names (the mailbox view) follow renames and deletions, labels.list costs one call per sync; with
GmailSyncDeletions keep a message deleted in Gmail keeps its rows with deleted_at set and leaves
the normal views for gmailsync.deleted_messages; TRASH and SPAM are labels, never deletions.
"""
from gsworker import (EXIT_SUCCEEDED, assert_table_equals_mailbox, daemon_paused,  # noqa: F401
                      gmail, new_task, task, worker)


def sync(stack, worker, user, **conf):
    tid = new_task(stack, user["user_id"], force_full=conf.pop("force_full", False))
    run = worker.run(tid, **conf)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    assert task(stack, tid)["state"] == "SUCCEEDED"
    run.task_id = tid
    return run


def labels_table(stack, uid):
    rows = stack.query("SELECT label_id, name, type, text_color, background_color,"
                       " message_list_visibility, label_list_visibility"
                       " FROM gmailsync.labels WHERE user_id = %s", (uid,))
    return {r[0]: r[1:] for r in rows}


def gmail_labels(gmail, email):
    out = {}
    for l in gmail.labels(email):
        color = l.get("color") or {}
        out[l["id"]] = (l["name"], l["type"], color.get("textColor"), color.get("backgroundColor"),
                        l.get("messageListVisibility"), l.get("labelListVisibility"))
    return out


def names_in_view(stack, uid):
    return {r[0]: r[1] for r in stack.query(
        "SELECT gmail_id, label_names FROM gmailsync.mailbox WHERE user_id = %s", (uid,))}


def names_in_gmail(gmail, email):
    names = {lid: v[0] for lid, v in gmail_labels(gmail, email).items()}
    msgs = gmail.messages(email, gmail.ids(email))
    return {mid: [names[l] for l in m.get("labelIds", [])] for mid, m in msgs.items()}


def test_labels_created_renamed_recoloured_and_deleted_show_after_the_next_sync(stack, gmail,
                                                                                 worker):
    user = stack.add_user(messages=120)
    email, uid = user["email"], user["user_id"]
    gmail.reset_stats()
    run = sync(stack, worker, user)
    assert gmail.requests_of(email, "labels.list") == 1          # one call (1 unit) per sync
    assert labels_table(stack, uid) == gmail_labels(gmail, email)
    assert labels_table(stack, uid)["Label_4"][0] == "家庭"
    assert "labels=%d " % len(gmail_labels(gmail, email)) in run.events("task.succeeded")[0]

    ids = gmail.ids(email)
    green = {"textColor": "#ffffff", "backgroundColor": "#16a765"}
    new = gmail.label_create(email, "Rechnungen 2026", green)
    gmail.relabel(email, ids[:7], add=[new])
    gmail.label_update(email, "Label_2", name="Reisen")               # renamed
    gmail.label_update(email, "Label_3", color={"textColor": "#000000",
                                                "backgroundColor": "#fad165"})   # recoloured
    gmail.relabel(email, ids[20:25], add=["Label_1"])                # on some mail, whatever the seed
    on_first = [m for m, v in gmail.messages(email, ids).items() if "Label_1" in v.get("labelIds", [])]
    gmail.label_delete(email, "Label_1")                              # gone from its messages too
    gmail.reset_stats()
    run = sync(stack, worker, user)
    assert task(stack, run.task_id)["mode"] == "incremental"
    assert gmail.requests_of(email, "labels.list") == 1
    assert gmail.requests_of(email, "messages.get") == 0              # names never refetch mail
    have = labels_table(stack, uid)
    assert have == gmail_labels(gmail, email)
    assert have[new][:4] == ("Rechnungen 2026", "user", "#ffffff", "#16a765")
    assert have["Label_2"][0] == "Reisen" and have["Label_3"][3] == "#fad165"
    assert "Label_1" not in have
    ev = run.events("task.succeeded")[0]
    assert "labels_written=3 " in ev and "labels_removed=1 " in ev, ev
    # every message's label names are Gmail's, in Gmail's order
    assert names_in_view(stack, uid) == names_in_gmail(gmail, email)
    assert set(ids[20:25]) <= set(on_first)
    assert not stack.query("SELECT 1 FROM gmailsync.messages WHERE user_id = %s"
                           " AND 'Label_1' = ANY (label_ids)", (uid,))
    assert_table_equals_mailbox(stack, gmail, user)
    # the per-message view by name, and the counts of the synced mail
    got = {r[0] for r in stack.query("SELECT gmail_id FROM gmailsync.message_labels"
                                     " WHERE user_id = %s AND name = 'Rechnungen 2026'", (uid,))}
    assert got == set(ids[:7])
    counts = {r[0]: r[1:] for r in stack.query(
        "SELECT label_id, messages_total, messages_unread, threads_total FROM"
        " gmailsync.label_counts WHERE user_id = %s", (uid,))}
    msgs = gmail.messages(email, gmail.ids(email))
    for lid in ("INBOX", "UNREAD", new, "Label_2"):
        on = [m for m in msgs.values() if lid in m.get("labelIds", [])]
        assert counts[lid] == (len(on), sum("UNREAD" in m["labelIds"] for m in on),
                               len({m["threadId"] for m in on})), lid
    # a sync with no label change writes none
    run = sync(stack, worker, user)
    ev = run.events("task.succeeded")[0]
    assert "labels_written=0 " in ev and "labels_removed=0 " in ev, ev


def test_archive_mode_keeps_deleted_mail_and_trash_is_a_label(stack, gmail, worker):
    user = stack.add_user(messages=150)
    email, uid = user["email"], user["user_id"]
    sync(stack, worker, user, deletions="keep")
    ids = gmail.ids(email)
    gone, trashed = ids[:10], ids[10:15]
    gmail.delete(email, gone)
    gmail.relabel(email, trashed, add=["TRASH"], remove=["INBOX"])
    run = sync(stack, worker, user, deletions="keep")
    assert task(stack, run.task_id)["mode"] == "incremental"
    assert "deleted=10 " in run.events("task.succeeded")[0]
    kept = {r[0]: r[1] for r in stack.query(
        "SELECT gmail_id, deleted_at FROM gmailsync.messages WHERE user_id = %s"
        " AND gmail_id = ANY (%s)", (uid, gone))}
    assert set(kept) == set(gone) and all(kept.values())           # rows kept, marked
    view = {r[0] for r in stack.query("SELECT gmail_id FROM gmailsync.mailbox WHERE user_id = %s",
                                      (uid,))}
    assert not view & set(gone) and set(trashed) <= view
    assert {r[0] for r in stack.query("SELECT gmail_id FROM gmailsync.deleted_messages"
                                      " WHERE user_id = %s", (uid,))} == set(gone)
    for mid, labels in stack.query("SELECT gmail_id, label_ids FROM gmailsync.messages"
                                   " WHERE user_id = %s AND gmail_id = ANY (%s)", (uid, trashed)):
        assert "TRASH" in labels and "INBOX" not in labels, (mid, labels)
    # their content stays too (an archive keeps the whole message)
    assert stack.query("SELECT count(*) FROM gmailsync.message_raw WHERE user_id = %s"
                       " AND gmail_id = ANY (%s)", (uid, gone))[0][0] == 10
    assert_table_equals_mailbox(stack, gmail, user)

    # a full sync marks what it did not list, and leaves earlier marks as they were
    first_marks = dict(kept)
    later = gmail.ids(email)[:3]
    gmail.delete(email, later)
    run = sync(stack, worker, user, deletions="keep", force_full=True)
    assert "removed=3 " in run.events("task.succeeded")[0]
    marks = {r[0]: r[1] for r in stack.query(
        "SELECT gmail_id, deleted_at FROM gmailsync.messages WHERE user_id = %s"
        " AND deleted_at IS NOT NULL", (uid,))}
    assert set(marks) == set(gone) | set(later)
    assert all(marks[m] == first_marks[m] for m in gone)
    assert_table_equals_mailbox(stack, gmail, user)
    # the content backfill never asks Gmail for a message it deleted
    assert "backfilled=0 " in run.events("task.succeeded")[0]

    # delete mode (the default) removes the rows Gmail deleted, archived ones included on the
    # next full sync
    gmail.delete(email, gmail.ids(email)[:2])
    run = sync(stack, worker, user)
    assert "deleted=2 " in run.events("task.succeeded")[0]
    run = sync(stack, worker, user, force_full=True)
    assert not stack.query("SELECT 1 FROM gmailsync.messages WHERE user_id = %s"
                           " AND deleted_at IS NOT NULL", (uid,))
    assert_table_equals_mailbox(stack, gmail, user)


def threads_table(stack, uid):
    rows = stack.query("SELECT thread_id, message_count, unread_count, label_ids,"
                       " (extract(epoch FROM newest_date) * 1000)::bigint,"
                       " (extract(epoch FROM oldest_date) * 1000)::bigint, subject, participants"
                       " FROM gmailsync.threads WHERE user_id = %s", (uid,))
    return {r[0]: (r[1], r[2], sorted(r[3]), r[4], r[5], r[6], r[7]) for r in rows}


def gmail_threads(gmail, email):
    msgs = gmail.messages(email, gmail.ids(email))
    by = {}
    for m in msgs.values():
        by.setdefault(m["threadId"], []).append(m)
    out = {}
    for tid, ms in by.items():
        ms.sort(key=lambda m: (int(m["internalDate"]), m["id"]))
        def header(m, name):
            return next((h["value"] for h in m.get("payload", {}).get("headers", [])
                         if h["name"].lower() == name), None)
        # participants: the distinct From values, in order, the first 20
        senders = sorted({header(m, "from") for m in ms} - {None})[:20]
        out[tid] = (len(ms), sum("UNREAD" in m.get("labelIds", []) for m in ms),
                    sorted({l for m in ms for l in m.get("labelIds", [])}),
                    int(ms[-1]["internalDate"]), int(ms[0]["internalDate"]),
                    header(ms[0], "subject"), senders)
    return out


def test_threads_follow_adds_deletes_and_label_changes_in_the_same_transaction(stack, gmail,
                                                                               worker):
    user = stack.add_user(messages=300)
    email, uid = user["email"], user["user_id"]
    sync(stack, worker, user)
    want = gmail_threads(gmail, email)
    assert any(v[0] > 1 for v in want.values()), "the fake made no conversation"
    assert threads_table(stack, uid) == want
    # a reply in a conversation, a message of another one deleted, one read, one starred
    multi = [t for t, v in want.items() if v[0] > 1]
    ids = gmail.ids(email)
    msgs = gmail.messages(email, ids)
    in_thread = {}
    for mid, m in msgs.items():
        in_thread.setdefault(m["threadId"], []).append(mid)
    gmail.delete(email, in_thread[multi[0]][:1])
    gmail.relabel(email, in_thread[multi[1]][:1], add=["STARRED"], remove=["UNREAD"])
    single = [t for t, v in want.items() if v[0] == 1][0]
    gmail.delete(email, in_thread[single])                 # a whole thread goes
    sync(stack, worker, user)
    assert threads_table(stack, uid) == gmail_threads(gmail, email)
    assert single not in threads_table(stack, uid)
    gmail.add(email, 20)                                   # new threads, and replies
    sync(stack, worker, user)
    assert threads_table(stack, uid) == gmail_threads(gmail, email)
    # archive mode: a deleted message leaves its thread too
    gmail.delete(email, in_thread[multi[2]][:1])
    sync(stack, worker, user, deletions="keep")
    assert threads_table(stack, uid) == gmail_threads(gmail, email)
    # the newest threads and one thread's messages, as an application lists them
    newest = [r[0] for r in stack.query("SELECT thread_id FROM gmailsync.threads WHERE user_id = %s"
                                        " ORDER BY newest_date DESC, thread_id LIMIT 50", (uid,))]
    assert newest == [t for t, _ in sorted(gmail_threads(gmail, email).items(),
                                           key=lambda kv: (-kv[1][3], kv[0]))][:50]
    got = [r[0] for r in stack.query("SELECT gmail_id FROM gmailsync.mailbox WHERE user_id = %s"
                                     " AND thread_id = %s ORDER BY internal_date", (uid, multi[1]))]
    # (the thread as it is now: the new mail may have replied in it)
    now = gmail.messages(email, gmail.ids(email))
    assert sorted(got) == sorted(mid for mid, m in now.items() if m["threadId"] == multi[1])
    assert set(in_thread[multi[1]]) <= set(got)


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in /metrics")


def test_status_and_metrics_count_the_stored_mailbox(stack, gmail, worker):
    """/status tells the user what is stored (messages, unread, conversations, labels), /metrics
    the same over every user; archive mode's deleted messages are not counted."""
    import requests
    user = stack.add_user(messages=90)
    email, uid = user["email"], user["user_id"]
    cookies = {"session": user["session"]}

    def status_mailbox():
        r = requests.get(stack.api + "/status", cookies=cookies, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["mailbox"]

    assert status_mailbox() == {"messages": 0, "unread": 0, "threads": 0, "labels": 0}

    def expected():
        msgs = gmail.messages(email, gmail.ids(email))
        return {"messages": len(msgs),
                "unread": sum("UNREAD" in m.get("labelIds", []) for m in msgs.values()),
                "threads": len({m["threadId"] for m in msgs.values()}),
                "labels": len(gmail.labels(email))}

    sync(stack, worker, user, deletions="keep")
    want = expected()
    assert want["unread"] > 0 and want["threads"] < want["messages"], want   # a real mailbox
    assert status_mailbox() == want
    gmail.delete(email, gmail.ids(email)[:7])
    gmail.label_create(email, "Warranty 保修")
    sync(stack, worker, user, deletions="keep")
    assert status_mailbox() == expected()
    assert stack.query("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s"
                       " AND deleted_at IS NOT NULL", (uid,))[0][0] == 7

    text = requests.get(stack.api + "/metrics", timeout=10).text
    (messages, unread, threads, labels), = stack.query(
        "SELECT (SELECT count(*) FROM gmailsync.messages WHERE deleted_at IS NULL),"
        " (SELECT count(*) FROM gmailsync.messages WHERE deleted_at IS NULL"
        "   AND label_ids @> ARRAY['UNREAD']),"
        " (SELECT count(DISTINCT (user_id, thread_id)) FROM gmailsync.messages"
        "   WHERE deleted_at IS NULL),"
        " (SELECT count(*) FROM gmailsync.labels)")
    assert metric(text, "gmailsync_mailbox_messages") == messages >= 83
    assert metric(text, "gmailsync_mailbox_unread") == unread
    assert metric(text, "gmailsync_mailbox_threads") == threads
    assert metric(text, "gmailsync_mailbox_labels") == labels
