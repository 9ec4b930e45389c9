"""The daemon's hand-off socket (gmailsync.PID.sock in httpd's runtime directory) is removed when
httpd stops, also when the daemon runs without privileges in a directory owned by root."""
import glob
import os
import subprocess

from conftest import run_dev, wait_for


def test_stop_removes_the_socket(stack):
    httpd_dir = os.path.dirname(stack.httpd_conf)
    runtime = os.path.join(httpd_dir, "runtime")
    pattern = os.path.join(runtime, "gmailsync.*.sock")
    with open(os.path.join(httpd_dir, "httpd.pid")) as f:
        pid = int(f.read())
    assert glob.glob(pattern) == [os.path.join(runtime, f"gmailsync.{pid}.sock")]
    try:
        p = subprocess.run([stack.httpd_bin, "-d", httpd_dir, "-f", stack.httpd_conf, "-k", "stop"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        wait_for("httpd to stop", lambda: not os.path.exists(f"/proc/{pid}"), 30)
        assert glob.glob(pattern) == []
    finally:
        run_dev("up", extra_conf=stack.extra_path)
