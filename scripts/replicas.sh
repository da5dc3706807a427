#!/usr/bin/env bash
# Several replicas on one PostgreSQL, behind nginx: tests/replicas_money.rs starts 2, then 3
# real `pura` processes on a fresh database per scenario, renders deploy/nginx.conf.template
# for a round-robin nginx in front of them, and checks that no burst is served past what the
# balance, the budgets, the free tier or the RPM limit cover (also with a replica killed
# mid-burst), and that a paid invoice is credited once.
#
# Installs nginx when missing (apt-get; with sudo when not root), creates a PostgreSQL database
# on $PURA_PG_ADMIN's server (default postgres://postgres@127.0.0.1:5432/postgres) and drops it
# on exit. Extra arguments go to the test binary (e.g. a test name filter); `--install-only`
# installs nginx and stops there (scripts/test.sh uses it: its PostgreSQL run then goes through
# nginx too).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

find_nginx() {
  command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}

NGINX="$(find_nginx)"
if [ -z "$NGINX" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "== installing nginx" >&2
    # RUNLEVEL=1: the package's postinst must not start a system-wide nginx on port 80.
    apt_install() {
      $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
    }
    apt_install nginx-light || apt_install nginx || {
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
      apt_install nginx-light || apt_install nginx || true
    }
  fi
  NGINX="$(find_nginx)"
fi
if [ "${1:-}" = "--install-only" ]; then
  [ -n "$NGINX" ] && echo "== nginx: $NGINX" >&2
  exit 0
fi
if [ -n "$NGINX" ]; then
  export PURA_TEST_NGINX="$NGINX"
  echo "== nginx: $NGINX ($("$NGINX" -v 2>&1))" >&2
else
  unset PURA_TEST_NGINX
  echo "== nginx could not be installed: the test spreads requests over the replicas itself" >&2
fi

PG_ADMIN="${PURA_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_DB="pura_replicas_$(date +%s)_$$"
if ! psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null; then
  echo "PostgreSQL at $PG_ADMIN is not reachable: these tests need it" >&2
  exit 1
fi
trap 'psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
export PURA_TEST_DATABASE_URL="${PG_ADMIN%/*}/$PG_DB"

cargo test --test replicas_money -- --nocapture --test-threads=1 "$@"
