"""gs_dsn.py -- where the operator scripts (gmailsync-status, gmailsync-cleanup) take the
database connection string from, never with a password on their command line (`ps` shows every
process's arguments to every local user):

  --dsn DSN          a connection string WITHOUT a password (refused otherwise, exit 2): libpq
                     then takes the password from PGPASSFILE (default ~/.pgpass) or PGPASSWORD
  --dsn-file FILE    the connection string from FILE (its one non-comment line); a FILE that
                     holds a password must not be open to other users (chmod 600)
  GS_PG_DSN_FILE     the same as --dsn-file
  GS_PG_DSN          the connection string itself (the process's environment is its owner's)

scripts/lib/common.sh has the same rules for the shell scripts (gs_dsn_resolve)."""
import os
import stat

HOW = ("put it in a file given with --dsn-file (mode 0600), in PGPASSFILE (~/.pgpass) or in "
       "GS_PG_DSN instead")


def password_of(dsn):
    """The password a connection string (URI or key=value) holds, or None."""
    import psycopg2.extensions
    try:
        return psycopg2.extensions.parse_dsn(dsn).get("password") or None
    except Exception:
        return None


def read_dsn_file(path):
    """The connection string in path; ValueError naming the file and the rule otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(f"cannot open --dsn-file {path}: {e.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"--dsn-file {path} is not a regular file")
        data = os.read(fd, 65537)
    finally:
        os.close(fd)
    if len(data) > 65536:
        raise ValueError(f"--dsn-file {path} is larger than 64 KiB")
    lines = [l.strip() for l in data.decode("utf-8", "replace").splitlines()
             if l.strip() and not l.lstrip().startswith("#")]
    if len(lines) != 1:
        raise ValueError(f"--dsn-file {path} must hold one connection string (one line)")
    if password_of(lines[0]) and st.st_mode & 0o077:
        raise ValueError(f"--dsn-file {path} holds a password and has mode "
                         f"{stat.S_IMODE(st.st_mode):04o}: chmod 600 it (its owner alone may "
                         f"read it)")
    return lines[0]


def resolve(argv_dsn, dsn_file, usage_error, fail):
    """The connection string: --dsn (no password), --dsn-file / GS_PG_DSN_FILE, or GS_PG_DSN.
    usage_error(msg) and fail(msg) do not return."""
    if argv_dsn and dsn_file:
        usage_error("give --dsn or --dsn-file, not both")
    if argv_dsn:
        if password_of(argv_dsn):
            usage_error("--dsn holds a password, which `ps` shows to every local user: " + HOW)
        return argv_dsn
    dsn_file = dsn_file or os.environ.get("GS_PG_DSN_FILE", "")
    if dsn_file:
        try:
            return read_dsn_file(dsn_file)
        except ValueError as e:
            fail(str(e))
    return os.environ.get("GS_PG_DSN", "")
