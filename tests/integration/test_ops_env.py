"""The rollback tooling gives the processes it starts (apachectl, httpd -t, envvars,
gmailsync-activate) only what they need of its environment: never GS_PG_DSN or PGPASSWORD, which
may hold the database password (httpd would hand them on to its children, and any local user
with the same uid reads /proc/PID/environ)."""
import argparse
import os
import stat
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "rollback", "lib"))
import gs_ops  # noqa: E402
import gs_rollback  # noqa: E402

SECRET = "hunter2-not-for-children"


def recorder(tmp_path, name):
    """An executable that writes the environment it got (NUL-separated) to NAME.env."""
    out = tmp_path / (name + ".env")
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\nenv -0 >'{out}'\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), out


def environ_of(out):
    return dict(kv.split("=", 1) for kv in out.read_bytes().decode().split("\0") if "=" in kv)


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("GS_PG_DSN", f"postgresql://gmailsync:{SECRET}@127.0.0.1/gmailsync")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.setenv("GS_UNRELATED", "x")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("APACHE_ENVVARS", "/nonexistent/envvars")


def args_for(tmp_path, **kw):
    a = argparse.Namespace(confdir=str(tmp_path / "conf"), apachectl="", httpd="",
                           server_root="", httpd_conf="")
    vars(a).update(kw)
    return a


def test_apachectl_gets_no_secret(tmp_path, secret_env):
    ctl, out = recorder(tmp_path, "apachectl")
    httpd = gs_ops.Httpd(args_for(tmp_path, apachectl=ctl))
    ok, _ = httpd.configtest()
    assert ok
    env = environ_of(out)
    assert SECRET not in "".join(env.values())
    assert "GS_PG_DSN" not in env and "PGPASSWORD" not in env and "GS_UNRELATED" not in env
    # what apachectl needs is still there
    assert env["APACHE_CONFDIR"] == str(tmp_path / "conf")
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["APACHE_ENVVARS"] == "/nonexistent/envvars"


def test_httpd_load_test_gets_no_secret(tmp_path, secret_env):
    bin_, out = recorder(tmp_path, "httpd")
    httpd = gs_ops.Httpd(args_for(tmp_path, httpd=bin_))
    v = argparse.Namespace(so="/nonexistent/mod_gmailsync.so", worker="/nonexistent/worker")
    ok, _ = gs_rollback.load_test(httpd, v, {}, True)
    assert ok
    env = environ_of(out)
    assert SECRET not in "".join(env.values())
    assert "GS_PG_DSN" not in env and "PGPASSWORD" not in env


def test_envvars_is_read_without_secret(tmp_path, secret_env, monkeypatch):
    envvars = tmp_path / "envvars"
    envvars.write_text("export APACHE_RUN_USER=www-data\nexport SEEN_DSN=\"${GS_PG_DSN}\"\n")
    monkeypatch.setenv("APACHE_ENVVARS", str(envvars))
    httpd = gs_ops.Httpd(args_for(tmp_path, apachectl="/bin/false"))
    env = httpd.envvars()
    assert env["APACHE_RUN_USER"] == "www-data"
    assert env.get("SEEN_DSN", "") == ""
