#!/usr/bin/python3
"""Benchmark of gmailsync-worker: full syncs of generated mailboxes against the fake Gmail API and a
real PostgreSQL, printing per size: messages/s, the worker's peak RSS (VmHWM from /proc, and
ru_maxrss from wait4), progress writes, Gmail calls and quota units per message, and 429s.

    /usr/bin/python3 tests/bench/bench_worker.py [--sizes 2000,20000] [--parallel 2]
        [--latency 0.05 --quota 250]      # a paced run: wall time against the quota bound
        [--worker build/gmailsync-worker] [--keep]
    /usr/bin/python3 tests/bench/bench_worker.py --mix 1000 [--content metadata,full]
        [--big 10]                        # the content mix (issue 22), and N 25 MB messages

--mix N imports N messages of real MIME into the fake (a median of ~10 KB of text; a tenth with
one attachment of 100 KB-5 MB, log-uniform; one message with a 25 MB attachment) and syncs them
with each `content` given, printing messages/s, the worker's CPU per message, the raw bytes per
message as PostgreSQL stores them (pg_column_size, lz4 where the server has it) against their
length, the rate the worker's CPU alone would allow (messages per CPU second), PostgreSQL's CPU
per message (all of its processes: the worker's backend, WAL writer, checkpointer) and the rate
the two together would allow on 2 cores (2 / their CPU per message: the machine's ceiling,
whatever the fake costs), PostgreSQL's floor (its CPU to write the same raw and attachment bytes
once more with one INSERT ... SELECT each, nothing else), and the worker's peak RSS (VmHWM, from
its end line). --big N syncs N messages of 25 MB
in one batch (content = full) and prints the same. Each sync has a deadline (--deadline).

It brings up its own stack with scripts/gmailsync-dev under $GS_BENCH_RUN_DIR or $GS_RUN_DIR
(default run/bench-worker), on the ports of GS_BENCH_HTTP_PORT/GS_BENCH_PG_PORT/GS_BENCH_GMAIL_PORT,
else GS_HTTP_PORT/GS_PG_PORT/GS_GMAIL_PORT, else 19380/19732/19381, with the daemon
paused (GmailSyncMaxWorkers 0) since it runs the worker itself, and stops it at the end unless
--keep. Memory independent of mailbox size shows as (nearly) the same peak RSS for 2,000
and 20,000 messages.
"""
import argparse
import base64
import hashlib
import json
import math
import os
import random
import secrets
import shlex
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEV = os.path.join(ROOT, "scripts", "gmailsync-dev")


def bench_env(environ, name, ports):
    """The bench stack's environment: GS_BENCH_* ports and run dir, else the dev stack's GS_*
    ones (GS_HTTP_PORT, GS_PG_PORT, GS_GMAIL_PORT, GS_RUN_DIR), else the bench's own defaults."""
    env = dict(environ)
    for key, default in zip(("HTTP_PORT", "PG_PORT", "GMAIL_PORT"), ports):
        env["GS_" + key] = environ.get("GS_BENCH_" + key) or environ.get("GS_" + key) or default
    env["GS_RUN_DIR"] = (environ.get("GS_BENCH_RUN_DIR") or environ.get("GS_RUN_DIR")
                         or os.path.join(ROOT, "run", name))
    return env


def paused_stack(name, ports):
    """Brings the bench's stack up (bench_env) with its daemon paused: the bench runs the worker
    itself, and the daemon must not claim its tasks. Returns the environment, with the stack's
    (gmailsync-dev env)."""
    env = bench_env(os.environ, name, ports)
    os.makedirs(env["GS_RUN_DIR"], exist_ok=True)
    extra = os.path.join(env["GS_RUN_DIR"], name + ".conf")
    with open(extra, "w") as f:
        f.write("GmailSyncMaxWorkers 0\n")
    env["GS_EXTRA_CONF"] = extra
    dev(["up"], env)
    for line in dev(["env"], env).splitlines():
        k, _, v = shlex.split(line)[0].partition("=")
        env[k] = v
    return env


def dev(args, env):
    return subprocess.run([DEV] + args, env=env, check=True, capture_output=True, text=True).stdout


def control(gmail, path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gmail + "/_control" + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _stat(pid):
    """(ppid, utime + stime, cutime + cstime) of a process, in seconds; None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, \
        (int(fields[13]) + int(fields[14])) / tick


def pg_cpu_seconds(env, children=None):
    """The CPU the stack's PostgreSQL has used: the postmaster's, that of the children it reaped
    (the backends of connections closed since), and that of its live children (backends,
    checkpointer, WAL writer, autovacuum). Differences of two readings are what a sync cost it.
    A backend whose client has gone is waited for (5 s at most) until the postmaster has reaped
    it: while it exits its CPU is in neither place. `children`: the live children's count
    before, to wait for."""
    try:
        with open(os.path.join(env["GS_RUN_DIR"], "pg", "data", "postmaster.pid")) as f:
            postmaster = int(f.readline())
    except (OSError, ValueError):
        return None
    deadline = time.monotonic() + 5
    while True:
        own = _stat(postmaster)
        if own is None:
            return None
        live = [st for st in (_stat(int(n)) for n in os.listdir("/proc") if n.isdigit())
                if st and st[0] == postmaster]
        if children is None or len(live) <= children or time.monotonic() > deadline:
            return own[1] + own[2] + sum(st[1] for st in live), len(live)
        time.sleep(0.05)


def pg_write_floor(env, user):
    """PostgreSQL's CPU (seconds) to write the user's stored raw messages and attachment bytes
    once more and nothing else: one INSERT ... SELECT of each into a table of one bytea column
    with the same compression (lz4 where the server has it), logged like the real ones, in one
    transaction. A floor under what storing a sync's bytes costs the server, whoever sends them."""
    conn = psycopg2.connect(env["GS_PG_ADMIN_DSN"].rsplit("/", 1)[0] + "/gmailsync")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS public.bench_write_floor")
            cur.execute("CREATE TABLE public.bench_write_floor (b bytea)")
            cur.execute("SELECT attcompression FROM pg_attribute WHERE attrelid ="
                        " 'gmailsync.message_raw'::regclass AND attname = 'raw'")
            if cur.fetchone()[0] == "l":
                cur.execute("ALTER TABLE public.bench_write_floor ALTER b SET COMPRESSION lz4")
        before = (pg_cpu_seconds(env) or (None,))[0]
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO public.bench_write_floor SELECT raw FROM gmailsync.message_raw"
                        " WHERE user_id = %s", (user,))
            cur.execute("INSERT INTO public.bench_write_floor SELECT bytes"
                        " FROM gmailsync.attachment_blobs WHERE user_id = %s", (user,))
        after = (pg_cpu_seconds(env) or (None,))[0]
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE public.bench_write_floor")
    finally:
        conn.close()
    return after - before if before is not None and after is not None else None


def seal(env, user, token):
    """The refresh token sealed under the stack's key (the worker refuses plaintext rows)."""
    p = subprocess.run([os.path.join(ROOT, "build", "gmailsync-tokens"), "seal", "--key-file",
                        env["GS_TOKEN_KEY_FILE"], "--user", user], input=token + "\n",
                       capture_output=True, text=True, check=True, timeout=60)
    return p.stdout.strip()


def import_mbox(gmail, email, chunks):
    """POSTs mbox chunks to the fake's import-mbox; returns the number of messages imported."""
    n = 0
    for chunk in chunks:
        req = urllib.request.Request(gmail + "/_control/mailboxes/%s/import-mbox?labelIds=INBOX" % email,
                                     data=chunk, method="POST",
                                     headers={"Content-Type": "application/mbox"})
        with urllib.request.urlopen(req, timeout=600) as r:
            n += len(json.load(r)["ids"])
    return n


def new_task(env, user, email, refresh):
    """The account (its refresh token sealed) and a CREATED task for it; returns the task id."""
    sealed = seal(env, user, refresh)
    with psycopg2.connect(env["GS_PG_DSN"]) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO gmailsync.accounts (user_id, email, refresh_token) VALUES (%s, %s, %s)",
                    (user, email, sealed))
        cur.execute("INSERT INTO gmailsync.sync_tasks (user_id) VALUES (%s) RETURNING task_id", (user,))
        task = str(cur.fetchone()[0])
    conn.close()
    return task


def worker_conf(env, quota, parallel, content=None):
    """The worker's configuration (its stdin) for the stack: quota 0 is unpaced."""
    gmail = env["GS_GMAIL_URL"]
    with open(os.path.join(env["GS_RUN_DIR"], "secrets", "client_secret")) as f:
        secret = f.read().strip()
    conf = ("db = %s\napi_base = %s\ntoken_url = %s/token\nclient_id = %s\nclient_secret = %s\n"
            "token_key_file = %s\nquota_units = %d\nparallel = %d\nprogress_interval = 1s\n"
            % (env["GS_PG_DSN"], gmail, gmail, env["GS_CLIENT_ID"], secret, env["GS_TOKEN_KEY_FILE"],
               quota or 0, parallel))
    if content:
        conf += "content = %s\n" % content
    return conf


def run_one(env, worker, messages, parallel, latency, quota, server_quota=None, concurrent=0,
            content=None, mbox=None, batch_size=None, deadline=900):
    gmail, dsn = env["GS_GMAIL_URL"], env["GS_PG_DSN"]
    user = "bench-" + secrets.token_hex(4)
    email = user + "@example.test"
    refresh = "1//bench-" + secrets.token_urlsafe(16)
    t0 = time.monotonic()
    control(gmail, "/mailboxes", {"email": email, "messages": 0 if mbox else messages, "seed": 7,
                                  "refresh_token": refresh, "prerender": not mbox})
    if mbox:
        messages = import_mbox(gmail, email, mbox)
    created = time.monotonic() - t0
    control(gmail, "/faults", method="DELETE")
    server_quota = quota if server_quota is None else server_quota
    control(gmail, "/config", {"quota_units_per_sec": server_quota or 0,
                               "max_concurrent_per_user": concurrent})
    if latency:
        control(gmail, "/faults", {"method": "*", "mode": "latency", "seconds": latency, "count": -1})
    task = new_task(env, user, email, refresh)
    conf = worker_conf(env, quota, parallel, content)
    if batch_size:
        # one batch of giant answers: the fake builds (and compresses) it whole before its first
        # byte, as Gmail does not; give it the time
        conf += "batch_size = %d\ntimeout = 600s\nlow_speed_time = 300s\n" % batch_size
    control(gmail, "/stats/reset", {})
    pg_before, pg_children = pg_cpu_seconds(env) or (None, None)
    start = time.monotonic()
    proc = subprocess.Popen([worker, "--task", task, "--config", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(conf)
    proc.stdin.close()
    hwm = 0
    stderr_chunks = []
    # VmHWM is the peak so far: the last reading before exit is the answer; poll until then
    def read_stderr():
        for line in proc.stderr:    # stamped with the seconds since the start, for the log
            stderr_chunks.append("%.3f %s" % (time.monotonic() - start, line))

    reader = threading.Thread(target=read_stderr)
    reader.start()
    early_429, late_429, polled = None, 0, 0.0
    usage = None
    while True:
        now = time.monotonic() - start
        if quota and now - polled >= 0.5:
            # 429s in the first 5 s (learning) and after (steady state), from the fake's counters
            polled = now
            n = control(gmail, "/stats")["per_mailbox"].get(email, {}).get("status_counts", {}).get("429", 0)
            if now < 5.0:
                early_429 = n
            else:
                late_429 = n
        value = vm_hwm_kb(proc.pid)
        if value:
            hwm = max(hwm, value)
        try:
            wpid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            break
        if wpid:
            break
        if time.monotonic() - start > deadline:
            proc.kill()     # the bench is bounded in time: a sync past its deadline fails
            wpid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    pg_after = (pg_cpu_seconds(env, pg_children) or (None,))[0]
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = "".join(stderr_chunks)
    if os.environ.get("GS_BENCH_WORKER_LOG"):   # the worker's log, to see what a run did
        with open(os.environ["GS_BENCH_WORKER_LOG"] + ".%d" % messages, "w") as f:
            f.write(err)
    stats = control(gmail, "/stats")
    control(gmail, "/faults", method="DELETE")
    control(gmail, "/config", {"quota_units_per_sec": 0, "max_concurrent_per_user": 0})
    end = [l for l in err.splitlines() if "event=task.succeeded" in l or "event=task.failed" in l]
    fields = dict(f.split("=", 1) for f in (end[-1].split() if end else []) if "=" in f)
    mb = stats["per_mailbox"].get(email, {})
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM gmailsync.messages WHERE user_id = %s", (user,))
        stored = cur.fetchone()[0]
        cur.execute("SELECT state FROM gmailsync.sync_tasks WHERE task_id = %s", (task,))
        state = cur.fetchone()[0]
        # the raw messages and attachment bytes as PostgreSQL stores them (after TOAST's
        # compression) and as they are
        cur.execute("SELECT count(*), coalesce(sum(octet_length(raw)), 0),"
                    " coalesce(sum(pg_column_size(raw)), 0) FROM gmailsync.message_raw"
                    " WHERE user_id = %s", (user,))
        raws, raw_len, raw_stored = cur.fetchone()
        cur.execute("SELECT count(*), coalesce(sum(octet_length(bytes)), 0),"
                    " coalesce(sum(pg_column_size(bytes)), 0) FROM gmailsync.attachment_blobs"
                    " WHERE user_id = %s", (user,))
        blobs, blob_len, blob_stored = cur.fetchone()
        floor = pg_write_floor(env, user) if raws or blobs else None
        for table in ("message_raw", "attachment_blobs", "message_bodies", "message_attachments",
                      "message_addresses", "messages"):
            cur.execute("DELETE FROM gmailsync.%s WHERE user_id = %%s" % table, (user,))
    conn.close()
    calls = sum(mb.get("requests", {}).values()) + stats["requests"].get("batch", 0)
    http_requests = calls - mb.get("requests", {}).get("messages.get", 0)
    out = {
        "messages": messages, "state": state, "exit": proc.returncode, "stored": stored,
        "seconds": round(elapsed, 2), "messages_per_s": round(messages / elapsed, 1),
        "vmhwm_mb": round(hwm / 1024, 1),
        "progress_writes": int(fields.get("progress_writes", 0)),
        "progress_writes_per_s": round(int(fields.get("progress_writes", 0)) / elapsed, 2),
        "gmail_calls_per_message": round(calls / max(messages, 1), 3),
        "http_requests_per_message": round(http_requests / max(messages, 1), 4),
        "quota_units_per_message": round(mb.get("quota_units", 0) / max(messages, 1), 2),
        "answers_429": mb.get("status_counts", {}).get("429", 0),
        "denied_rate": mb.get("denied", {}).get("rate", 0),
        "denied_concurrent": mb.get("denied", {}).get("concurrent", 0),
        "max_in_flight": mb.get("max_in_flight", 0),
        "retries": int(fields.get("retries", 0)),
        "parts_in_flight": int(fields.get("parts_in_flight", 0)),
        "mailbox_created_s": round(created, 1),
        "content": content or "full",
        "cpu_us_per_message": round((usage.ru_utime + usage.ru_stime) * 1e6 / max(messages, 1))
        if usage else None,
        # the rate the worker's own CPU allows (one core, the fake and PostgreSQL aside)
        "cpu_bound_msgs_per_s": round(messages / (usage.ru_utime + usage.ru_stime), 1)
        if usage and usage.ru_utime + usage.ru_stime > 0 else None,
        # PostgreSQL's CPU during the sync (its backends, WAL writer, checkpointer; autovacuum
        # too if it ran), and the rate both together would allow on this machine's 2 cores if
        # nothing else ran and their work were shared perfectly: the ceiling here
        "pg_cpu_us_per_message": round((pg_after - pg_before) * 1e6 / max(messages, 1))
        if pg_before is not None and pg_after is not None else None,
        "two_core_bound_msgs_per_s": round(2 * messages / (usage.ru_utime + usage.ru_stime
                                                           + pg_after - pg_before), 1)
        if usage and pg_before is not None and pg_after is not None else None,
        "pg_floor_us_per_message": round(floor * 1e6 / max(messages, 1)) if floor else None,
        "peak_rss_mb": round(int(fields.get("peak_rss_kb", 0)) / 1024, 1),
        "raw_kb_per_message": round(raw_len / 1024 / max(messages, 1), 1),
        "raw_stored_kb_per_message": round(raw_stored / 1024 / max(messages, 1), 1),
        "blob_kb_per_message": round(blob_len / 1024 / max(messages, 1), 1),
        "blob_stored_kb_per_message": round(blob_stored / 1024 / max(messages, 1), 1),
        "raws": raws, "blobs": blobs,
        "spooled": int(fields.get("spooled", 0)), "batch_size_end": int(fields.get("batch_size", 0)),
    }
    if state != "SUCCEEDED":
        out["stderr_tail"] = err.splitlines()[-5:]
    if quota:
        # the bound: the units Gmail charged at the lower of the two quotas
        bound = mb.get("quota_units", messages * 5) / min(quota, server_quota or quota)
        out["quota_bound_s"] = round(bound, 2)
        out["ratio_to_quota_bound"] = round(bound / elapsed, 3)
        late = late_429 - (early_429 or 0) if late_429 else 0
        out["429_after_5s"] = max(late, 0)
    control(gmail, "/mailboxes/" + email, method="DELETE")
    return out


WORDS = ("the of and to in is you that it he was for on are as with his they at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could "
         "people my than first water been call who oil its now find long down day did get come "
         "made may part invoice meeting report quarterly schedule attached regards thanks").split()


def mix_message(rng, i, body_len, attach_len):
    """One RFC 822 message (CRLF): text of about body_len bytes, and an attachment of attach_len
    random bytes (base64) when attach_len > 0."""
    words = []
    size = 0
    while size < body_len:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    lines = []
    for k in range(0, len(words), 12):
        lines.append(" ".join(words[k:k + 12]))
    text = ("\r\n".join(lines) + "\r\n").encode()
    head = ("From: Sender %d <sender%d@example.com>\r\nTo: user@example.test\r\n"
            "Subject: mix %d %s\r\nDate: Mon, 01 Jan 2024 10:%02d:%02d +0000\r\n"
            "Message-ID: <mix-%d@example.com>\r\nMIME-Version: 1.0\r\n"
            % (i % 97, i % 97, i, rng.choice(WORDS), (i // 60) % 60, i % 60, i)).encode()
    if not attach_len:
        return head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    payload = hashlib.shake_256(b"mix %d" % i).digest(attach_len)
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (head + b"Content-Type: multipart/mixed; boundary=MIXB\r\n\r\n--MIXB\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"--MIXB\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment;"
            b" filename=\"file%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" % i
            + b64 + b"--MIXB--\r\n")


def mbox_chunks(messages, chunk_bytes=64 << 20):
    """The messages as mbox bodies of about chunk_bytes each (none of them has a line that
    begins with "From ")."""
    out, cur, size = [], [], 0
    for raw in messages:
        cur.append(b"From bench@example.com Mon Jan  1 00:00:00 2024\n" + raw + b"\n")
        size += len(raw)
        if size >= chunk_bytes:
            out.append(b"".join(cur))
            cur, size = [], 0
    if cur:
        out.append(b"".join(cur))
    return out


def content_mix(n, seed=22, giant=True):
    """The content mix: n messages, a median of ~10 KB of text, a tenth with an attachment of
    100 KB-5 MB (log-uniform), one of 25 MB (unless not giant)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = int(min(max(rng.lognormvariate(math.log(10000), 0.8), 500), 200000))
        attach = 0
        if i == n // 2 and giant:
            attach = (25 << 20) * 57 // 78     # a 25 MB message (base64: 57 bytes a 78-byte line)
        elif rng.random() < 0.1:
            attach = int(math.exp(rng.uniform(math.log(100 << 10), math.log(5 << 20))))
        out.append(mix_message(rng, i, body, attach))
    return out


def big_messages(n):
    rng = random.Random(25)
    return [mix_message(rng, i, 2000, (25 << 20) * 57 // 78) for i in range(n)]


def print_content(results):
    cols = ["messages", "content", "state", "seconds", "messages_per_s", "cpu_us_per_message",
            "cpu_bound_msgs_per_s", "pg_cpu_us_per_message", "pg_floor_us_per_message",
            "two_core_bound_msgs_per_s",
            "raw_kb_per_message", "raw_stored_kb_per_message", "blob_kb_per_message",
            "blob_stored_kb_per_message", "spooled", "batch_size_end", "peak_rss_mb", "vmhwm_mb"]
    print("  ".join(cols))
    for r in results:
        print("  ".join(str(r[c]).rjust(len(c)) for c in cols))
    for r in results:
        for line in r.get("stderr_tail", []):
            print("  worker(%d): %s" % (r["messages"], line))


FEED_TRIGGERS = ("messages_changes_insert", "messages_changes_update", "messages_changes_delete")
FEED_FN = "gmailsync.changes_record(gmailsync.change[])"
VARIANTS = ("none", "threads", "both")   # triggers off; threads only; threads and the feed


def set_feed(env, variant, feed_def):
    """The change feed and the threads are kept by these statement triggers (sql/011): "none"
    disables them (the worker stores as it did before them); "threads" keeps them but makes the
    feed's changes_record a no-op; "both" is the release as it ships."""
    with psycopg2.connect(env["GS_PG_DSN"]) as conn, conn.cursor() as cur:
        for name in FEED_TRIGGERS:
            cur.execute("ALTER TABLE gmailsync.messages %s TRIGGER %s"
                        % ("DISABLE" if variant == "none" else "ENABLE", name))
        if variant == "threads":
            cur.execute("CREATE OR REPLACE FUNCTION gmailsync.changes_record("
                        "pending gmailsync.change[]) RETURNS void LANGUAGE plpgsql"
                        " AS $$ BEGIN RETURN; END $$")
        else:
            cur.execute(feed_def)
    conn.close()


def feed_cost(env, args):
    """Unpaced full syncs, each size and content mode with the triggers off, with the threads
    only, and with the threads and the feed, in turn (--rounds rounds: the machine's drift shows
    as the spread; the median is the figure)."""
    with psycopg2.connect(env["GS_PG_DSN"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_get_functiondef(%s::regprocedure)", (FEED_FN,))
        feed_def = cur.fetchone()[0]
    conn.close()
    results = []
    sizes = [int(n) for n in args.sizes.split(",")]
    try:
        for _ in range(args.rounds):
            for n in sizes:
                for content in ("metadata", "full"):
                    for variant in VARIANTS:
                        set_feed(env, variant, feed_def)
                        r = run_one(env, args.worker, n, args.parallel, 0, 0, content=content,
                                    deadline=args.deadline)
                        r.update(feed=variant, content=content)
                        results.append(r)
    finally:
        set_feed(env, "both", feed_def)
    return results


def print_feed(results, args):
    print("gmailsync-worker full sync, unpaced (parallel=%d): messages/s with the triggers off, "
          "with the threads only, with the threads and the change feed" % args.parallel)
    print("messages  content   off msg/s  threads  +feed  feed cost  both cost")
    rows = {}
    for r in results:
        rows.setdefault((r["messages"], r["content"]), {}).setdefault(r["feed"], []).append(
            r["messages_per_s"])
    for (n, content), by in rows.items():
        feed, both = [], []
        for off, thr, on in zip(*(by.get(v, []) for v in VARIANTS)):
            feed.append((thr - on) / thr * 100 if thr else 0)
            both.append((off - on) / off * 100 if off else 0)
            print("%8d  %-8s  %9.0f  %7.0f  %5.0f  %+7.1f %%  %+7.1f %%"
                  % (n, content, off, thr, on, feed[-1], both[-1]))
        if feed:
            print("%8d  %-8s  median over %d rounds: the feed %+.1f %% (target: at most 15 %%), "
                  "threads and feed %+.1f %%" % (n, content, len(feed), sorted(feed)[len(feed) // 2],
                                                 sorted(both)[len(both) // 2]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.0, help="simulated latency per request (s)")
    ap.add_argument("--quota", type=int, default=0, help="units/s for the fake and the worker (0: off)")
    ap.add_argument("--server-quota", type=int, default=None,
                    help="units/s the fake grants, if not --quota (a misconfigured deployment)")
    ap.add_argument("--max-concurrent", type=int, default=0,
                    help="the fake's per-user concurrency limit (batch parts in flight; 0: off)")
    ap.add_argument("--paced", action="store_true",
                    help="the quota benchmark: --sizes 1000,5000 --latency 0.05 --quota 250 "
                         "--max-concurrent 25 unless given")
    ap.add_argument("--worker", default=os.path.join(ROOT, os.environ.get("GS_WORKER_BIN", "build/gmailsync-worker")))
    ap.add_argument("--keep", action="store_true", help="leave the bench stack running")
    ap.add_argument("--mix", type=int, default=0, help="sync the content mix of N messages")
    ap.add_argument("--content", default="metadata,full", help="content values for --mix")
    ap.add_argument("--no-giant", action="store_true", help="the mix without its 25 MB message")
    ap.add_argument("--big", type=int, default=0, help="sync N messages of 25 MB in one batch")
    ap.add_argument("--deadline", type=int, default=900, help="seconds a sync may take")
    ap.add_argument("--feed", action="store_true",
                    help="each size with the triggers off, the threads only, and the threads "
                         "and the change feed (content metadata and full), side by side")
    ap.add_argument("--rounds", type=int, default=3, help="--feed: off/on rounds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.paced:
        given = sys.argv[1:]
        if "--sizes" not in given:
            args.sizes = "1000,5000"
        if "--latency" not in given:
            args.latency = 0.05
        if "--quota" not in given:
            args.quota = 250
        if "--max-concurrent" not in given:
            args.max_concurrent = 25

    env = paused_stack("bench-worker", ("19380", "19732", "19381"))
    largest = 0
    try:
        if args.mix or args.big:
            results = []
            if args.mix:
                mix = content_mix(args.mix, giant=not args.no_giant)
                print("content mix: %d messages, median %.1f KB, %d with an attachment, largest %.1f MB, "
                      "%.1f MB in all" % (len(mix), sorted(len(m) for m in mix)[len(mix) // 2] / 1024,
                                          sum(b"--MIXB--" in m for m in mix), max(len(m) for m in mix) / 2**20,
                                          sum(len(m) for m in mix) / 2**20),
                      file=sys.stderr if args.json else sys.stdout, flush=True)
                chunks = mbox_chunks(mix)
                del mix
                for content in args.content.split(","):
                    results.append(run_one(env, args.worker, args.mix, args.parallel, 0, 0,
                                           content=content, mbox=chunks, deadline=args.deadline))
            if args.big:
                big = big_messages(args.big)
                largest = max(len(m) for m in big)
                chunks = mbox_chunks(big)
                del big
                results.append(run_one(env, args.worker, args.big, args.parallel, 0, 0,
                                       content="full", mbox=chunks, batch_size=args.big,
                                       deadline=args.deadline))
        elif args.feed:
            results = feed_cost(env, args)
        else:
            results = [run_one(env, args.worker, int(n), args.parallel, args.latency, args.quota,
                               args.server_quota, args.max_concurrent, deadline=args.deadline)
                       for n in args.sizes.split(",")]
    finally:
        if not args.keep:
            dev(["down"], env)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return
    if args.feed:
        print_feed(results, args)
        sys.exit(0 if all(r["state"] == "SUCCEEDED" and r["stored"] == r["messages"]
                          for r in results) else 1)
    if args.mix or args.big:
        print("gmailsync-worker full sync of real MIME (parallel=%d, no quota, no latency); "
              "raw/blob KB per message: length, then as PostgreSQL stores it" % args.parallel)
        print_content(results)
        if args.big:
            r = results[-1]
            print("%d messages of %.1f MB in one batch: peak RSS %.1f MB (4 x largest + 32 MB = %.0f MB)"
                  % (r["messages"], largest / 2**20, r["peak_rss_mb"], 4 * largest / 2**20 + 32))
        sys.exit(0 if all(r["state"] == "SUCCEEDED" and r["stored"] == r["messages"]
                          for r in results) else 1)
    cols = ["messages", "state", "seconds", "messages_per_s", "vmhwm_mb", "progress_writes",
            "gmail_calls_per_message", "http_requests_per_message", "quota_units_per_message",
            "answers_429"]
    if args.quota:
        cols = ["messages", "state", "seconds", "quota_bound_s", "ratio_to_quota_bound", "answers_429",
                "429_after_5s", "denied_rate", "denied_concurrent", "retries", "max_in_flight",
                "parts_in_flight", "vmhwm_mb"]
    print("gmailsync-worker full sync (parallel=%d, latency=%ss, quota=%s units/s, server quota=%s, "
          "max concurrent=%s)" % (args.parallel, args.latency, args.quota or "off",
                                  args.server_quota if args.server_quota is not None else (args.quota or "off"),
                                  args.max_concurrent or "off"))
    print("  ".join("%s" % c for c in cols))
    for r in results:
        print("  ".join(str(r[c]).rjust(len(c)) for c in cols))
    for r in results:
        for line in r.get("stderr_tail", []):
            print("  worker(%d): %s" % (r["messages"], line))
    if len(results) >= 2:
        base, top = results[0]["vmhwm_mb"], results[-1]["vmhwm_mb"]
        print("peak RSS %s MB at %d messages vs %s MB at %d: %+.0f %%"
              % (top, results[-1]["messages"], base, results[0]["messages"], (top - base) / base * 100))
    sys.exit(0 if all(r["state"] == "SUCCEEDED" and r["stored"] == r["messages"] for r in results) else 1)


if __name__ == "__main__":
    main()
