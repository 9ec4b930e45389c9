"""Runs last (the file name sorts last): after the whole integration run, none of the fake's
access or refresh tokens, authorization codes and PKCE verifiers (a state is legitimately in oauth/start's
Location; test_oauth.py scans states against bodies and logs), the OAuth client secret, the token keys or the database passwords is
in any log of the run directory (httpd's error and access logs, every other httpd's, the fake's,
PostgreSQL's), in any task's error message, in any answer httpd gave the tests (conftest.RESPONSES), nor on any process's
command line. test_oauth.py and test_secrets.py scan after their own tests; this scans after
all of them, the fault matrix and the load included."""
import os
import subprocess

import requests

from conftest import RESPONSES, RUN_DIR
from test_oauth import encodings
from test_secrets import secrets


def test_no_secret_anywhere_after_the_whole_run(stack):
    issued = requests.get(stack.gmail_url + "/_control/issued", timeout=30).json()
    values = {}
    for kind in ("refresh_tokens", "access_tokens", "codes", "verifiers"):
        for v in issued[kind]:
            if len(v) >= 16:
                values[v] = kind
    assert any(k == "access_tokens" for k in values.values()), "the run issued no access token"
    for name, v in secrets().items():
        values[v] = name
    texts = {}
    for dirpath, _, files in os.walk(RUN_DIR):
        if os.sep + "secrets" in dirpath or os.sep + "data" in dirpath:
            continue       # the secret files themselves and PostgreSQL's data directory
        for name in files:
            if name.endswith(".log") or name in ("error_log", "access_log") \
                    or name.startswith(("error_log", "access_log")):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    texts[path] = f.read()
    assert any(p.endswith("error_log") for p in texts)
    texts["responses"] = "\n".join(RESPONSES)
    # the error messages every task of the run ended with (what /progress and /status show)
    texts["error_messages"] = "\n".join(m for (m,) in stack.query(
        "SELECT error_message FROM gmailsync.sync_tasks WHERE error_message IS NOT NULL"))
    texts["argv"] = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    leaks = sorted({(where, kind, value[:8] + "...") for value, kind in values.items()
                    for form in encodings(value) for where, text in texts.items()
                    if form in text})
    print("scanned %d values (%d kinds) against %d logs, %d answers, %d bytes of task error"
          " messages and every argv" % (len(values), len(set(values.values())), len(texts) - 3,
                                        len(RESPONSES), len(texts["error_messages"])))
    assert not leaks, leaks
