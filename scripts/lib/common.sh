# shellcheck shell=bash disable=SC2034
# common.sh -- shared helpers for the mod_gmailsync scripts (sourced, not executed).

GS_ROOT=${GS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
GS_PYTHON=/usr/bin/python3   # Debian's python3, with python3-psycopg2 / -pytest / -requests

gs_die()  { echo "${GS_PROG:-gmailsync}: $*" >&2; exit 1; }
gs_info() { echo "${GS_PROG:-gmailsync}: $*" >&2; }

gs_is_root() { [ "$(id -u)" = 0 ]; }

# Debian packages every script may need, by command or file they provide.
GS_APT_PACKAGES=(
  build-essential autoconf pkg-config apache2 apache2-dev libaprutil1-dbd-pgsql
  libcurl4-openssl-dev libjson-c-dev libpq-dev libssl-dev libgmime-3.0-dev libcjose-dev check postgresql
  postgresql-contrib
  python3-pytest python3-requests python3-psycopg2 python3-prometheus-client python3-cryptography curl ca-certificates
  valgrind
  debhelper dpkg-dev lintian man-db
)
# scripts/fuzz and scripts/test's fuzz suite: Debian's clang with its libFuzzer runtime
GS_APT_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

# Installs missing Debian packages (only as root; otherwise names what is missing).
gs_ensure_packages() {
  local missing=() p
  for p in "${GS_APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if gs_is_root; then
    gs_info "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || gs_die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || gs_die "apt-get install failed for: ${missing[*]}"
  else
    gs_die "missing Debian packages (install them as root): apt-get install -y ${missing[*]}"
  fi
}

# The browser suite: Debian's chromium (driven by playwright-core, never a downloaded browser),
# a small CJK font so that the Chinese page is readable in screenshots, Node.js and npm (when the
# machine has no node/npm of its own), then tests/browser's npm packages from package-lock.json.
GS_APT_BROWSER_PACKAGES=(chromium fonts-wqy-microhei)
GS_BROWSER_DIR=$GS_ROOT/tests/browser

gs_ensure_browser_tools() {
  local extra=("${GS_APT_BROWSER_PACKAGES[@]}")
  command -v node >/dev/null 2>&1 || extra+=(nodejs)
  command -v npm >/dev/null 2>&1 || extra+=(npm)
  gs_ensure_packages "${extra[@]}"
  [ -x /usr/bin/chromium ] || gs_die "/usr/bin/chromium is missing: apt-get install -y chromium"
  local stamp=$GS_BROWSER_DIR/node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ "$GS_BROWSER_DIR/package-lock.json" -nt "$stamp" ] \
     || [ ! -d "$GS_BROWSER_DIR/node_modules/playwright-core" ] || [ ! -d "$GS_BROWSER_DIR/node_modules/axe-core" ]; then
    gs_info "installing the browser suite's npm packages (npm ci in tests/browser)"
    (cd "$GS_BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
      || gs_die "npm ci failed in $GS_BROWSER_DIR"
  fi
}

# The newest installed PostgreSQL server binaries.
gs_pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || gs_die "PostgreSQL server not found: install the Debian package postgresql"
  echo "$d"
}

# Configures (if needed) and builds; extra args go to make.
gs_build() {
  cd "$GS_ROOT" || gs_die "cannot cd to $GS_ROOT"
  if [ ! -x configure ] || [ configure.ac -nt configure ]; then
    autoreconf -fi >/dev/null || gs_die "autoreconf failed"
  fi
  if [ ! -f Makefile ] || [ Makefile.in -nt Makefile ] || [ configure -nt Makefile ]; then
    ./configure -q || gs_die "configure failed"
  fi
  make -s -j"$(nproc)" "$@" || gs_die "build failed"
}

# Polls a command until it succeeds or the deadline (seconds) passes.
gs_wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

gs_pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

# ------------------------------------------------------------------ the connection string
# The shell operator scripts (gmailsync-migrate, gmailsync-rotate-key) take it as the Python ones
# do (scripts/lib/gs_dsn.py), never with a password on their command line, which `ps` shows to
# every local user: --dsn without a password (libpq reads it from PGPASSFILE, ~/.pgpass), or
# --dsn-file FILE (GS_PG_DSN_FILE; mode 0600 when it holds a password), or GS_PG_DSN.

# Splits a connection string (URI user:password@host, or key=value password=...) into
# GS_DSN_NOPW (the string without its password) and GS_DSN_PASSWORD (empty if none).
gs_dsn_split() {
  local dsn=$1 rest authority userinfo s
  GS_DSN_NOPW=$dsn
  GS_DSN_PASSWORD=""
  case "$dsn" in
    postgres://*|postgresql://*)
      rest=${dsn#*://}
      authority=${rest%%[/?]*}
      if [[ $authority == *@* && ${authority%@*} == *:* ]]; then
        userinfo=${authority%@*}
        s=${userinfo#*:}
        s=${s//\\/\\\\}
        GS_DSN_PASSWORD=$(printf '%b' "${s//%/\\x}")
        GS_DSN_NOPW="${dsn%%://*}://${userinfo%%:*}@${rest#"$userinfo"@}"
      fi
      ;;
    *)
      if [[ $dsn =~ (^|[[:space:]])password[[:space:]]*=[[:space:]]*(\'([^\'\\]*)\'|([^[:space:]\']+)) ]]; then
        GS_DSN_PASSWORD=${BASH_REMATCH[3]}${BASH_REMATCH[4]}
        GS_DSN_NOPW=${dsn/"${BASH_REMATCH[0]}"/${BASH_REMATCH[1]}}
      fi
      ;;
  esac
}

# Sets GS_DSN from --dsn (argv_dsn), --dsn-file (dsn_file, else $GS_PG_DSN_FILE) or $GS_PG_DSN.
# Exits 2 for a password on the command line or both options, 1 for an unusable file.
gs_dsn_resolve() {
  local argv_dsn=$1 dsn_file=$2 mode lines
  if [ -n "$argv_dsn" ] && [ -n "$dsn_file" ]; then
    echo "${GS_PROG:-gmailsync}: give --dsn or --dsn-file, not both" >&2; exit 2
  fi
  if [ -n "$argv_dsn" ]; then
    gs_dsn_split "$argv_dsn"
    if [ -n "$GS_DSN_PASSWORD" ]; then
      echo "${GS_PROG:-gmailsync}: --dsn holds a password, which \`ps\` shows to every local user: put it in a file given with --dsn-file (mode 0600), in PGPASSFILE (~/.pgpass) or in GS_PG_DSN instead" >&2
      exit 2
    fi
    GS_DSN=$argv_dsn
    return 0
  fi
  dsn_file=${dsn_file:-${GS_PG_DSN_FILE:-}}
  if [ -n "$dsn_file" ]; then
    [ -f "$dsn_file" ] && [ ! -L "$dsn_file" ] \
      || gs_die "--dsn-file $dsn_file is not a regular file"
    lines=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$dsn_file") \
      || gs_die "--dsn-file $dsn_file holds no connection string"
    [ "$(printf '%s\n' "$lines" | wc -l)" -eq 1 ] \
      || gs_die "--dsn-file $dsn_file must hold one connection string (one line)"
    GS_DSN=$(printf '%s' "$lines" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    gs_dsn_split "$GS_DSN"
    mode=$(stat -c %a "$dsn_file") || gs_die "cannot stat --dsn-file $dsn_file"
    if [ -n "$GS_DSN_PASSWORD" ] && [ $((8#$mode & 8#077)) -ne 0 ]; then
      gs_die "--dsn-file $dsn_file holds a password and has mode $mode: chmod 600 it (its owner alone may read it)"
    fi
    return 0
  fi
  GS_DSN=${GS_PG_DSN:-}
}
