"""make uninstall VERSION=X: removes one installed version's two directories, and nothing else.

Refuses (exit 1, nothing removed) when VERSION is not named on make's command line, is empty or
malformed, is not installed, is the active version (the active-version file), or is in use: a
running process maps or executes a file of it (httpd with its module loaded, an old
generation's worker), or this host's /health reports it (the configuration's Listen addresses).
Each directory removed must be a real directory (not a link) directly below its root, named
VERSION: never a root, never anything outside.

The Makefile passes the values through the environment (no shell quoting of VERSION):
GS_UNINSTALL_VERSION, GS_UNINSTALL_ORIGIN ($(origin VERSION)), GS_UNINSTALL_LIBEXEC_ROOT,
GS_UNINSTALL_DATA_ROOT, GS_UNINSTALL_CONFDIR and GS_UNINSTALL_DESTDIR (all with DESTDIR).
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gs_ops  # noqa: E402
from gs_ops import Failure  # noqa: E402

PROG = "make uninstall"


def users_of(paths):
    """[(pid, command)] of the processes that execute or map a file below one of paths."""
    prefixes = tuple(os.path.realpath(p).rstrip("/") + "/" for p in paths)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        hit = False
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            hit = exe.startswith(prefixes)
        except OSError:
            pass
        if not hit:
            try:
                with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        parts = line.split(None, 5)
                        if len(parts) == 6 and parts[5].strip().startswith(prefixes):
                            hit = True
                            break
            except OSError:
                continue
        if hit:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = "?"
            found.append((int(pid), comm))
    return found


def check_dir(root, version):
    """root/version if it is safe to remove (a real directory directly below root), else a
    Failure; None when absent."""
    if not root or not os.path.isabs(root):
        raise Failure(f"the installation root {root!r} is not an absolute path")
    path = os.path.join(root, version)
    if os.path.dirname(path) != root.rstrip("/") or os.path.basename(path) != version:
        raise Failure(f"{path} is not directly below {root}")
    if os.path.islink(path):
        raise Failure(f"{path} is a symbolic link, not an installed version: remove it by hand")
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path):
        raise Failure(f"{path} is not a directory")
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if real == "/" or real == real_root or os.path.dirname(real) != real_root:
        raise Failure(f"{path} resolves to {real}, not a version directory below {real_root}")
    return path


def health_version(confdir):
    """The version this configuration's httpd reports on /health, and the URL (None, reason
    when it cannot tell)."""
    if not os.path.isfile(os.path.join(confdir, "apache2.conf")):
        return None, f"{confdir} has no apache2.conf"
    ap = argparse.ArgumentParser()
    gs_ops.add_common_options(ap)
    args = gs_ops.finish_common_options(ap.parse_args(["--confdir", confdir]))
    try:
        r = gs_ops.resolve_health(args, gs_ops.Httpd(args))
    except Failure as e:
        return None, str(e)
    return (r.version if r.module else None), (args.health_url if r.module else r.error)


def main():
    env = os.environ
    version = env.get("GS_UNINSTALL_VERSION", "")
    origin = env.get("GS_UNINSTALL_ORIGIN", "")
    libexec_root = env.get("GS_UNINSTALL_LIBEXEC_ROOT", "")
    data_root = env.get("GS_UNINSTALL_DATA_ROOT", "")
    confdir = env.get("GS_UNINSTALL_CONFDIR", "")
    destdir = env.get("GS_UNINSTALL_DESTDIR", "")

    class Layout:
        pass
    layout = Layout()
    layout.libexec_root, layout.data_root = libexec_root, data_root
    installed = gs_ops.installed_versions(layout)
    listing = ", ".join(installed) or "none"
    if origin not in ("command line", "environment override", "override"):
        raise Failure(f"name the version to remove: make uninstall VERSION=X (installed in "
                      f"{libexec_root}: {listing})")
    if not version:
        raise Failure(f"VERSION is empty: name the version to remove (installed: {listing})")
    if not gs_ops.VERSION_RE.match(version) or version in (".", ".."):
        raise Failure(f"bad VERSION {version!r} (letters, digits and . _ + ~ - only, starting "
                      "with a letter or digit)")
    dirs = [d for d in (check_dir(libexec_root, version), check_dir(data_root, version)) if d]
    if not dirs:
        raise Failure(f"mod_gmailsync {version} is not installed (no {libexec_root}/{version} "
                      f"nor {data_root}/{version}; installed: {listing})")
    active_file = os.path.join(confdir, "gmailsync", "active-version.conf")

    class Conf:
        pass
    conf = Conf()
    conf.active_file = active_file
    active = gs_ops.active_version(conf)   # a file naming no version: refused
    if active == version:
        raise Failure(f"mod_gmailsync {version} is the active version ({active_file}): "
                      "gmailsync-rollback --to OTHER first")
    users = users_of(dirs)
    if users:
        raise Failure(f"mod_gmailsync {version} is in use by running processes: "
                      + ", ".join(f"{pid} ({comm})" for pid, comm in users[:10])
                      + (" ..." if len(users) > 10 else "")
                      + " (httpd still runs it: switch with gmailsync-rollback --to OTHER, or "
                      "wait until its workers have ended)")
    if not destdir:
        running, where = health_version(confdir)
        if running == version:
            raise Failure(f"httpd runs mod_gmailsync {version} ({where} reports it) although "
                          f"{active_file} names {active or 'none'}: restart it gracefully onto "
                          "the active version first")
    for d in dirs:
        shutil.rmtree(d)
        print(f"{PROG}: removed {d}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"{PROG}: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
