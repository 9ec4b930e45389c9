#!/usr/bin/python3
"""Throughput of the fake: messages/s served in `metadata` format through batch calls.

Starts fake_gmail.py (quota unlimited) on a free loopback port, creates a mailbox, lists
every id, then fetches them with `messages.get?format=metadata&metadataHeaders=...` in
batches of --batch from --threads client threads over keep-alive connections:

  cold pass   every message once, as a first sync would (content generated on the fly)
  warm passes the same again for --seconds (rendered JSON served from the cache)

Prints both figures; exits non-zero only on errors (a part that is not 200, a wrong part
count, a failed request), never because of speed.
"""

import argparse
import atexit
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HEADERS = ("From", "To", "Subject", "Date", "Message-ID")


def start_server(extra):
    secret_dir = tempfile.mkdtemp(prefix="fake-gmail-bench-")
    secret_file = os.path.join(secret_dir, "client_secret")
    with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write("bench-secret\n")
    atexit.register(shutil.rmtree, secret_dir, True)
    proc = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(HERE, "fake_gmail.py"), "--port", "0", "--client-id", "bench",
         "--client-secret-file", secret_file, "--quota-units-per-sec", "0"] + extra,
        stdout=subprocess.PIPE, stderr=None, text=True)
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("fake_gmail did not start")
    return proc, json.loads(line)["port"]


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def batch_body(ids, boundary):
    query = "format=metadata&" + "&".join("metadataHeaders=%s" % h for h in HEADERS)
    out = []
    for i, mid in enumerate(ids):
        out.append("--%s\r\nContent-Type: application/http\r\nContent-ID: <item%d>\r\n\r\n"
                   "GET /gmail/v1/users/me/messages/%s?%s HTTP/1.1\r\n\r\n" % (boundary, i, mid, query))
    out.append("--%s--\r\n" % boundary)
    return "".join(out).encode()


def run_pass(port, token, bodies, threads, deadline=None):
    """Send every body once (deadline None) or loop until the deadline.  Returns (messages, errors)."""
    lock = threading.Lock()
    state = {"next": 0, "messages": 0, "errors": []}
    boundary = "bench_boundary_x"
    headers = {"Authorization": "Bearer " + token, "Content-Type": "multipart/mixed; boundary=" + boundary}

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        done = 0
        try:
            while True:
                with lock:
                    i = state["next"]
                    if deadline is None and i >= len(bodies):
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    state["next"] = i + 1
                body, n = bodies[i % len(bodies)]
                status, data = call(conn, "POST", "/batch/gmail/v1", body, headers)
                ok = data.count(b"\r\nHTTP/1.1 200 OK\r\n")
                if status != 200 or ok != n:
                    with lock:
                        state["errors"].append("batch %d: status %d, %d/%d parts ok" % (i, status, ok, n))
                done += ok
        except Exception as err:  # noqa: BLE001 - reported as a benchmark error
            with lock:
                state["errors"].append("client error: %r" % err)
        finally:
            conn.close()
            with lock:
                state["messages"] += done

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return state["messages"], state["errors"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the warm measurement")
    args = ap.parse_args()

    proc, port = start_server(["--max-batch", str(max(100, args.batch))])
    errors = []
    try:
        results = []
        for label, prerender in (("lazy", False), ("prerendered", True)):
            email = "bench-%s@example.com" % label
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            t0 = time.monotonic()
            status, data = call(conn, "POST", "/_control/mailboxes", json.dumps(
                {"email": email, "messages": args.messages, "seed": 42, "refresh_token": "rt-" + label,
                 "prerender": prerender}))
            if status != 201:
                raise RuntimeError("create mailbox: %d %s" % (status, data[:200]))
            created = time.monotonic() - t0
            status, data = call(conn, "POST", "/token",
                                "grant_type=refresh_token&refresh_token=rt-%s&client_id=bench&client_secret="
                                "bench-secret" % label, {"Content-Type": "application/x-www-form-urlencoded"})
            token = json.loads(data)["access_token"]
            ids = []
            page = None
            while True:
                path = "/gmail/v1/users/me/messages?maxResults=500&prettyPrint=false" + (
                    "&pageToken=" + page if page else "")
                status, data = call(conn, "GET", path, headers={"Authorization": "Bearer " + token})
                doc = json.loads(data)
                ids.extend(m["id"] for m in doc.get("messages", []))
                page = doc.get("nextPageToken")
                if not page:
                    break
            conn.close()
            if len(ids) != args.messages:
                errors.append("listed %d ids, expected %d" % (len(ids), args.messages))
            bodies = [(batch_body(ids[i:i + args.batch], "bench_boundary_x"), len(ids[i:i + args.batch]))
                      for i in range(0, len(ids), args.batch)]
            t0 = time.monotonic()
            first, errs = run_pass(port, token, bodies, args.threads)
            first_s = time.monotonic() - t0
            errors += errs
            results.append((label, created, first, first_s))
        t0 = time.monotonic()
        warm, errs = run_pass(port, token, bodies, args.threads, deadline=t0 + args.seconds)
        warm_s = time.monotonic() - t0
        errors += errs
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            errors.append("server did not exit on SIGTERM")

    print("metadata via batch (%d per batch, %d client threads, keep-alive, quota off), %d messages:" % (
        args.batch, args.threads, args.messages))
    for label, created, first, first_s in results:
        print("  %-12s mailbox created in %5.2f s; first fetch of every message: %6.0f messages/s" % (
            label, created, first / first_s))
    print("  %-12s repeated fetches (rendered JSON cached) for %.0f s:   %6.0f messages/s" % (
        "warm", warm_s, warm / warm_s))
    if proc.returncode not in (0, None):
        errors.append("server exit status %s" % proc.returncode)
    for err in errors[:20]:
        print("ERROR:", err)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
