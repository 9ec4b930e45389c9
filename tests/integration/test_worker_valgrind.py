"""gmailsync-worker (the normal build, not the sanitizer one) under valgrind's memcheck for a
1,000-message full sync and the incremental sync after it: no invalid read or write, no use of
uninitialised memory, no definite or indirect leak (issue 14). Memory still reachable at exit
(libcurl's and OpenSSL's global state) is not a leak and is not counted."""
import glob
import os
import re
import shutil

import pytest

from conftest import RUN_DIR
from gsworker import (EXIT_SUCCEEDED, Worker, assert_table_equals_mailbox, daemon_paused,  # noqa: F401
                      gmail, new_task)

VALGRIND = shutil.which("valgrind")
ERROR_EXIT = 97


@pytest.fixture(scope="module")
def valgrind_worker(stack):
    if not VALGRIND:
        pytest.fail("valgrind is missing: apt-get install -y valgrind (scripts/test installs it)")
    logs = os.path.join(RUN_DIR, "valgrind")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    prefix = [VALGRIND, "--tool=memcheck", "--leak-check=full",
              "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
              "--track-origins=yes", "--error-exitcode=%d" % ERROR_EXIT, "--num-callers=30",
              "--log-file=" + os.path.join(logs, "worker.%p.log")]
    return Worker(stack, prefix=prefix), logs


def summary(logs):
    """The last log's text and its numbers: errors, definitely and indirectly lost bytes."""
    path = max(glob.glob(os.path.join(logs, "worker.*.log")), key=os.path.getmtime)
    text = open(path).read()
    errors = int(re.search(r"ERROR SUMMARY: ([\d,]+) errors", text).group(1).replace(",", ""))
    lost = {}
    for kind in ("definitely", "indirectly"):
        m = re.search(kind + r" lost: ([\d,]+) bytes", text)
        lost[kind] = int(m.group(1).replace(",", "")) if m else 0   # absent: all freed
    return path, text, errors, lost


def test_a_1000_message_sync_is_clean_under_memcheck(stack, gmail, valgrind_worker):
    worker, logs = valgrind_worker
    user = stack.add_user(messages=1000)
    for kind in ("full", "incremental"):
        # valgrind runs the worker 20-50 times slower: generous HTTP and heartbeat limits
        run = worker.run(new_task(stack, user["user_id"]), wait=900, timeout="60s")
        path, text, errors, lost = summary(logs)
        heap = re.search(r"total heap usage: (.*)", text)
        print("valgrind %s sync: %d errors, definitely lost %d B, indirectly lost %d B; %s (%s)"
              % (kind, errors, lost["definitely"], lost["indirectly"], heap and heap.group(1), path))
        assert errors == 0 and not any(lost.values()), text[-6000:]
        assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:] + text[-3000:]
        assert_table_equals_mailbox(stack, gmail, user, check_fields=False)
        if kind == "full":
            gmail.add(user["email"], 20)   # something for the incremental sync to fetch
