"""gmailsync-worker built with AddressSanitizer, LeakSanitizer and UBSan: a sync that succeeds,
one that fails and one that loses its task end with no leak and no sanitizer report (issue 10:
libpq's connection used to outlive the worker's pools at every exit)."""
import os
import subprocess

import pytest

from conftest import ROOT
from gsworker import (EXIT_FAILED, EXIT_LOST, EXIT_SUCCEEDED, Worker, daemon_paused, gmail,  # noqa: F401
                      new_task)

BUILD = "build-asan"
SANITIZE = "-fsanitize=address,undefined -fno-omit-frame-pointer"
REPORTS = ("LeakSanitizer", "AddressSanitizer", "runtime error:")


@pytest.fixture(scope="module")
def asan_worker(stack):
    subprocess.run(["make", "-s", "-j2", "B=" + BUILD, "SANITIZE=" + SANITIZE,
                    BUILD + "/gmailsync-worker"], cwd=ROOT, check=True, capture_output=True,
                   timeout=600)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=90",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=91")
    return Worker(stack, binary=os.path.join(ROOT, BUILD, "gmailsync-worker"), env=env)


def clean(run):
    for word in REPORTS:
        assert word not in run.stderr, run.stderr[-4000:]


def test_a_1000_message_sync_exits_without_a_leak(stack, gmail, asan_worker):
    user = stack.add_user(messages=1000)
    run = asan_worker.run(new_task(stack, user["user_id"]), wait=180)
    clean(run)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]
    # and the incremental sync after it
    run = asan_worker.run(new_task(stack, user["user_id"]), wait=180)
    clean(run)
    assert run.rc == EXIT_SUCCEEDED, run.stderr[-3000:]


def test_a_failed_sync_exits_without_a_leak(stack, gmail, asan_worker):
    user = stack.add_user(messages=50)
    gmail.revoke(user["email"])
    run = asan_worker.run(new_task(stack, user["user_id"]), wait=120)
    clean(run)
    assert run.rc == EXIT_FAILED, run.stderr[-3000:]


def test_a_lost_task_exits_without_a_leak(stack, gmail, asan_worker):
    user = stack.add_user(messages=50)
    task = new_task(stack, user["user_id"])
    stack.query("UPDATE gmailsync.sync_tasks SET state = 'CANCELLED', finished_at = now()"
                " WHERE task_id = %s", (task,))
    run = asan_worker.run(task, wait=60)
    clean(run)
    assert run.rc == EXIT_LOST, run.stderr[-3000:]
