#!/usr/bin/python3
"""Makes a development login link of the local stack (GmailSyncDevLogin): prints
{base}/api/gmail/sync/dev-login?nonce=NONCE on stdout.

The nonce is 256 random bits, stored only as its SHA-256 in gmailsync.dev_login_nonces
(sql/009), bound to an existing, unexpired session, valid GS_DEV_LOGIN_TTL seconds (120) and
once: the first GET signs the browser in as that session's user (with a new session of the same
expiry) and uses it up. The session is read from stdin (never from argv, which ps shows to
everyone), or --user-id picks that user's newest unexpired session.

Environment: GS_PG_DSN, GS_BASE_URL (set by scripts/gmailsync-dev).
"""
import argparse
import hashlib
import os
import secrets
import sys

import psycopg2

TTL_S = float(os.environ.get("GS_DEV_LOGIN_TTL", "120"))


def main():
    ap = argparse.ArgumentParser(prog="gmailsync-dev login-url",
                                 description="a one-time link (2 minutes) that signs a browser "
                                             "in; the session comes on stdin")
    ap.add_argument("--user-id", help="use this user's newest unexpired session instead of stdin")
    args = ap.parse_args()
    dsn, base = os.environ.get("GS_PG_DSN"), os.environ.get("GS_BASE_URL")
    if not dsn or not base:
        ap.error("GS_PG_DSN and GS_BASE_URL must be set (use scripts/gmailsync-dev login-url)")
    nonce = secrets.token_urlsafe(32)
    nonce_sha256 = hashlib.sha256(nonce.encode()).digest()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM gmailsync.dev_login_nonces WHERE expires_at < now()")
        if args.user_id is not None:
            cur.execute("SELECT token_sha256 FROM gmailsync.sessions"
                        " WHERE user_id = %s AND expires_at > now()"
                        " ORDER BY expires_at DESC LIMIT 1", (args.user_id,))
        else:
            session = sys.stdin.readline().strip()
            if not session:
                ap.error("no session on stdin (or pass --user-id)")
            cur.execute("SELECT token_sha256 FROM gmailsync.sessions"
                        " WHERE token_sha256 = %s AND expires_at > now()",
                        (psycopg2.Binary(hashlib.sha256(session.encode()).digest()),))
        row = cur.fetchone()
        if not row:
            sys.exit("gmailsync-dev login-url: no such unexpired session"
                     + (f" of user {args.user_id}" if args.user_id is not None else ""))
        cur.execute("INSERT INTO gmailsync.dev_login_nonces (nonce_sha256, session_sha256,"
                    " expires_at) VALUES (%s, %s, now() + make_interval(secs => %s))",
                    (psycopg2.Binary(nonce_sha256), row[0], TTL_S))
    conn.close()
    print(f"{base}/api/gmail/sync/dev-login?nonce={nonce}")


if __name__ == "__main__":
    main()
