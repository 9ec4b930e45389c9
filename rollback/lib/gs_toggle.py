"""gmailsync-toggle: flips an incident toggle the safe way (see ../gmailsync-toggle)."""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gs_ops  # noqa: E402
from gs_ops import Failure  # noqa: E402

PROG = "gmailsync-toggle"
HEADER = """\
# mod_gmailsync incident toggles, included at the end of gmailsync.conf (what is set here wins).
# Written by gmailsync-toggle ({when}: {what}). Change it with gmailsync-toggle, which checks
# the configuration, restarts gracefully, verifies /health and puts the previous file back on
# failure.
# A setting absent here keeps its value from gmailsync.conf.
"""
NAMES = {"GmailSync": "enabled", "GmailSyncMode": "mode", "GmailSyncMaxWorkers": "max_workers",
         "GmailSyncAutoSync": "auto_sync"}
AUTOSYNC_RE = re.compile(r"^([0-9]{1,7})(s|m|h|d)?$")
AUTOSYNC_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_toggles(data):
    """{directive: value} of the toggles file (last one wins), case as in gs_ops.GS_DIRECTIVES."""
    out = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        m = re.match(r"^\s*(GmailSync|GmailSyncMode|GmailSyncMaxWorkers|GmailSyncAutoSync)\s+(\S+)\s*$", line, re.I)
        if m:
            name = next(d for d in gs_ops.GS_DIRECTIVES if d.lower() == m.group(1).lower())
            out[name] = m.group(2)
    return out


def render(settings, what):
    text = HEADER.format(when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), what=what)
    for name in gs_ops.GS_DIRECTIVES:
        if name in settings:
            text += f"{name} {settings[name]}\n"
    return text.encode()


def expected(change):
    """What /health must show once the change is live: (field, value)."""
    name, value = change
    if name == "GmailSync":
        return "enabled", value.lower() == "on"
    if name == "GmailSyncMode":
        return "mode", value.lower()
    if name == "GmailSyncAutoSync":
        m = AUTOSYNC_RE.match(value.lower())
        return "auto_sync", int(m.group(1)) * AUTOSYNC_UNITS[m.group(2)] if m else None
    return "max_workers", int(value)


def shown(body, field):
    """What /health shows for a toggle's field (auto_sync: its interval in seconds, None: Off)."""
    value = (body or {}).get(field)
    if field == "auto_sync":
        return (value or {}).get("interval_s")
    return value


def parse_command(words, ap):
    if words == ["status"]:
        return None
    if words in (["off"], ["on"]):
        return ("GmailSync", words[0].capitalize())
    if len(words) == 2 and words[0] == "mode" and words[1] in ("full", "smart"):
        return ("GmailSyncMode", words[1])
    if len(words) == 2 and words[0] == "workers" and re.fullmatch(r"[0-9]{1,3}", words[1]) \
            and 0 <= int(words[1]) <= 256:
        return ("GmailSyncMaxWorkers", str(int(words[1])))
    if len(words) == 2 and words[0] == "autosync" and (words[1].lower() == "off" or (
            AUTOSYNC_RE.match(words[1].lower()) and expected(("GmailSyncAutoSync", words[1]))[1])):
        return ("GmailSyncAutoSync", "Off" if words[1].lower() == "off" else words[1].lower())
    ap.error("expected one of: off | on | mode full | mode smart | workers N (0-256) | "
             "autosync DURATION|off | status")


def status(args):
    data = gs_ops.read_bytes(args.toggles_file)
    settings = parse_toggles(data)
    print(f"toggles file: {args.toggles_file}" + ("" if data is not None else " (absent)"))
    for name in gs_ops.GS_DIRECTIVES:
        print(f"  {name:<20} {settings.get(name, '(from gmailsync.conf)')}")
    r = gs_ops.resolve_health(args, gs_ops.Httpd(args))
    if r.error:
        print(f"health: unreadable ({r.error})")
        return 1
    body, version = r.body, r.version
    run = body.get("running") or {}
    print(f"health: {args.health_url} version={version} "
          f"enabled={str(body.get('enabled')).lower()} "
          f"mode={body.get('mode')} max_workers={body.get('max_workers')} "
          f"auto_sync={shown(body, 'auto_sync') or 'off'} "
          f"running={run.get('count')} worker_versions="
          + ",".join(f"{k}:{v}" for k, v in sorted((run.get("worker_versions") or {}).items())))
    return 0


def overridden(httpd, args, name):
    """Refuses (Failure) when httpd does not read the toggles file, or reads a `name` directive
    after it (a later file, e.g. conf-enabled/ or sites-enabled/ in Debian's order, or a line of
    gmailsync.conf below its IncludeOptional): the toggle would never take effect."""
    entries, _, ok = httpd.include_entries()
    if not ok:
        return   # a configuration that fails -t: apachectl -t next says why
    later = gs_ops.settings_after(entries, args.toggles_file, name)
    if later is None:
        raise Failure(f"httpd does not read {args.toggles_file} (no Include of it in the "
                      "configuration: gmailsync.conf must end with IncludeOptional "
                      "gmailsync/toggles.conf)")
    if later:
        where = "\n".join(f"  {path}:{n}: {text}" for path, n, text in later)
        raise Failure(f"{name} is set again after {args.toggles_file} by:\n{where}\n"
                      f"{PROG}: that later setting wins, so the toggle would not take effect: "
                      f"remove {name} from {later[-1][0]} (toggles.conf must be the last word)")


def apply(args, change):
    lock = gs_ops.Lock(args.gsdir, PROG)  # noqa: F841 (held until exit)
    httpd = gs_ops.Httpd(args)
    field, want = expected(change)
    before = None
    if not args.no_verify:
        # what verifies the change afterwards must answer before anything changes
        r = gs_ops.resolve_health(args, httpd)
        if r.error:
            raise Failure(f"cannot read /health, so the toggle could not be verified; nothing "
                          f"was changed: {r.error} (--health-url, or --no-verify)")
        before = shown(r.body, field)
    old = gs_ops.read_bytes(args.toggles_file)
    settings = parse_toggles(old)
    settings[change[0]] = change[1]
    new = render(settings, f"{change[0]} {change[1]}")
    t0 = time.monotonic()

    def restore(why, restart):
        gs_ops.replace_file(args.toggles_file, old)
        msg = f"{why}; the previous toggles file is back"
        if restart:
            ok, out = httpd.graceful()
            if not ok:
                msg += f" but the graceful restart failed: {out}"
            elif args.no_verify:
                msg += " and httpd restarted gracefully with it"
            else:
                back, last = gs_ops.wait_health(
                    args.health_url, lambda st, body, v: st == 200 and body
                    and shown(body, field) == before, args.timeout, args.health_token)
                msg += (f" and httpd restarted gracefully with it ({field}={before} again)"
                        if back else f" and httpd restarted gracefully with it, but /health does "
                        f"not show {field}={before} ({gs_ops.describe(last)})")
        raise Failure(msg)

    gs_ops.replace_file(args.toggles_file, new)
    try:
        overridden(httpd, args, change[0])
    except Failure as e:
        restore(f"{e}\n{PROG}", False)
    ok, out = httpd.configtest()
    if not ok:
        restore(f"apachectl -t failed:\n{out}\n{PROG}", False)
    ok, out = httpd.graceful()
    if not ok:
        restore(f"the graceful restart failed:\n{out}\n{PROG}", False)
    if args.no_verify:
        gs_ops.say(PROG, f"{change[0]} {change[1]}: applied (not verified) in "
                         f"{time.monotonic() - t0:.2f} s")
        return 0
    ok, last = gs_ops.wait_health(args.health_url,
                                  lambda st, body, v: st == 200 and body
                                  and shown(body, field) == want, args.timeout, args.health_token)
    if not ok:
        seen = f"{field}={shown(last.body, field)}" if not last.error else last.error
        restore(f"/health did not show {field}={want} within {args.timeout:g} s (last: {seen})",
                True)
    body = last.body
    gs_ops.say(PROG, f"{change[0]} {change[1]}: applied and verified in "
                     f"{time.monotonic() - t0:.2f} s (health: version={body.get('version')} "
                     f"enabled={str(body.get('enabled')).lower()} mode={body.get('mode')} "
                     f"max_workers={body.get('max_workers')})")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Flip a mod_gmailsync incident toggle: write the toggles file, apachectl -t, "
                    "graceful restart, verify /health; on any failure put the previous file back "
                    "and exit non-zero.",
        epilog="Exit status: 0 applied and verified (or status shown); 1 failed, previous "
               "toggles restored; 2 usage error.")
    ap.add_argument("command", nargs="+", metavar="off|on|mode full|mode smart|workers N|autosync DURATION|off|status")
    ap.add_argument("--no-verify", action="store_true",
                    help="do not wait for /health (when it cannot answer, e.g. the database is down)")
    gs_ops.add_common_options(ap)
    args = gs_ops.finish_common_options(ap.parse_args(argv))
    change = parse_command(args.command, ap)
    try:
        return status(args) if change is None else apply(args, change)
    except Failure as e:
        gs_ops.say(PROG, str(e), err=True)
        return 1
    except OSError as e:
        gs_ops.say(PROG, f"{e.filename or ''}: {e.strerror}", err=True)
        return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
