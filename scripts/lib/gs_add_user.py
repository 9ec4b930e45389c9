#!/usr/bin/python3
"""Creates a user of the local stack: a Gmail mailbox in the fake API, the linked account and a
web session. Prints {"user_id", "session", "email"} as JSON on stdout.

Environment: GS_PG_DSN, GS_GMAIL_URL, GS_TOKEN_KEY_FILE, GS_TOKENS_BIN (set by
scripts/gmailsync-dev). The refresh token is stored sealed by `gmailsync-tokens seal` (the crypto
lives in C only); --plaintext stores it as a release before migration 006 did.
"""
import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import psycopg2


def create_mailbox(gmail_url, email, messages, seed, refresh_token):
    # large mailboxes are rendered up front so that the fake is never the bottleneck
    body = json.dumps({"email": email, "messages": messages, "seed": seed,
                       "refresh_token": refresh_token, "prerender": messages >= 1000}).encode()
    req = urllib.request.Request(gmail_url + "/_control/mailboxes", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def import_mail(gmail_url, email, kind, path):
    """Imports one .eml file or every message of an mbox into the mailbox (the fake's
    /_control/mailboxes/{email}/import and /import-mbox: the bytes are kept exactly); returns the
    new message ids."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        sys.exit("gmailsync-dev add-user: --%s %s: %s" % (kind, path, err.strerror))
    endpoint, ctype = ("import-mbox", "application/mbox") if kind == "mbox" else ("import", "message/rfc822")
    req = urllib.request.Request("%s/_control/mailboxes/%s/%s" % (gmail_url, urllib.parse.quote(email), endpoint),
                                 data=data, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as err:
        sys.exit("gmailsync-dev add-user: --%s %s: the fake Gmail refused it: %s %s" % (
            kind, path, err.code, err.read().decode("utf-8", "replace").strip()))
    return answer["ids"] if kind == "mbox" else [answer["id"]]


def seal(user_id, token):
    """The token sealed under the stack's current key, for user_id's refresh_token column (the
    token goes to gmailsync-tokens on its stdin, never on a command line)."""
    key_file, tool = os.environ.get("GS_TOKEN_KEY_FILE"), os.environ.get("GS_TOKENS_BIN")
    if not key_file or not tool:
        sys.exit("gmailsync-dev add-user: GS_TOKEN_KEY_FILE and GS_TOKENS_BIN must be set")
    p = subprocess.run([tool, "seal", "--key-file", key_file, "--user", user_id],
                       input=token + "\n", capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not p.stdout.startswith("gs1:"):
        sys.exit("gmailsync-dev add-user: sealing the token failed: " + p.stderr)
    return p.stdout.strip()


def main():
    ap = argparse.ArgumentParser(prog="gmailsync-dev add-user")
    ap.add_argument("--messages", type=int, default=None,
                    help="generated messages in the mailbox (default 100; 0 with --mbox or --eml)")
    ap.add_argument("--mbox", dest="imports", action="append", default=[], metavar="FILE",
                    type=lambda path: ("mbox", path),
                    help="import every message of this mbox (mboxo or mboxrd) into the mailbox; repeatable")
    ap.add_argument("--eml", dest="imports", action="append", metavar="FILE", type=lambda path: ("eml", path),
                    help="import this RFC 822 message (.eml) into the mailbox; repeatable")
    ap.add_argument("--email", help="Gmail address (default: derived from the user id)")
    ap.add_argument("--seed", type=int, default=None, help="mailbox generator seed (default: random)")
    ap.add_argument("--user-id", help="user id (default: random)")
    ap.add_argument("--session-hours", type=float, default=24.0, help="session lifetime (default 24)")
    ap.add_argument("--no-account", action="store_true", help="create the session only, no Gmail link")
    ap.add_argument("--refresh-token-stdin", action="store_true",
                    help="read the mailbox's refresh token from stdin (default: a random one)")
    ap.add_argument("--plaintext", action="store_true",
                    help="store the refresh token unsealed (as releases before 006 did)")
    args = ap.parse_args()
    if args.messages is None:
        args.messages = 0 if args.imports else 100
    if args.messages < 0:
        ap.error("--messages must be >= 0")
    if args.imports and args.no_account:
        ap.error("--mbox and --eml need a mailbox (not --no-account)")
    for kind, path in args.imports:
        if not os.path.isfile(path):
            ap.error("--%s %s: no such file" % (kind, path))

    dsn = os.environ.get("GS_PG_DSN")
    gmail_url = os.environ.get("GS_GMAIL_URL")
    if not dsn or not gmail_url:
        ap.error("GS_PG_DSN and GS_GMAIL_URL must be set (use scripts/gmailsync-dev add-user)")

    user_id = args.user_id or "user-" + secrets.token_hex(6)
    email = args.email or f"{user_id}@example.test"
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    session = secrets.token_urlsafe(32)
    token_sha256 = hashlib.sha256(session.encode()).digest()

    imported = []
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        if not args.no_account:
            if args.refresh_token_stdin:
                refresh_token = sys.stdin.readline().strip()
                if not refresh_token:
                    ap.error("--refresh-token-stdin: no token on stdin")
            else:
                refresh_token = "1//dev-" + secrets.token_urlsafe(24)
            create_mailbox(gmail_url, email, args.messages, seed, refresh_token)
            for kind, path in args.imports:
                imported += import_mail(gmail_url, email, kind, path)
            stored = refresh_token if args.plaintext else seal(user_id, refresh_token)
            cur.execute(
                """INSERT INTO gmailsync.accounts (user_id, email, refresh_token)
                   VALUES (%s, %s, %s)
                   ON CONFLICT (user_id) DO UPDATE
                      SET email = EXCLUDED.email, refresh_token = EXCLUDED.refresh_token,
                          access_token = NULL, access_token_expires_at = NULL,
                          history_id = NULL, updated_at = now()""",
                (user_id, email, stored))
        cur.execute(
            """INSERT INTO gmailsync.sessions (token_sha256, user_id, expires_at)
               VALUES (%s, %s, now() + make_interval(secs => %s))""",
            (psycopg2.Binary(token_sha256), user_id, args.session_hours * 3600))
    conn.close()
    out = {"user_id": user_id, "session": session, "email": email}
    if args.imports:
        out["imported"] = imported      # the new message ids, in file and mbox order
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
