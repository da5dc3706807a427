#!/usr/bin/env bash
# Stop the LNbits started by lnbits-up.sh, by the pid in its pid file.
# lnbits runs as a parent process plus a uvicorn child (multiprocessing); both
# are in the process group that lnbits-up.sh created with setsid, whose id is
# the pid in the pid file. Only that group is signalled.
set -uo pipefail

LNBITS_HOME="${LNBITS_HOME:-/tmp/pura-lnbits}"
PID_FILE="$LNBITS_HOME/lnbits.pid"

if ! [ -f "$PID_FILE" ]; then
  echo "[lnbits-down] no pid file ($PID_FILE); nothing to stop" >&2
  exit 0
fi
PGID="$(cat "$PID_FILE")"
case "$PGID" in ''|*[!0-9]*) echo "[lnbits-down] bad pid file" >&2; rm -f "$PID_FILE"; exit 1 ;; esac

# live (non-zombie) members of the process group
members() {
  local p st
  for p in $(pgrep -g "$PGID" 2>/dev/null); do
    st="$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)"
    [ -n "$st" ] && [ "$st" != "Z" ] && echo "$p"
  done
  return 0
}

if [ -z "$(members)" ]; then
  echo "[lnbits-down] process group $PGID is already gone" >&2
  rm -f "$PID_FILE" "$LNBITS_HOME/keys.env"
  exit 0
fi
# Make sure the group still is ours (pid could have been recycled).
for p in $(members); do
  if ! tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q lnbits; then
    echo "[lnbits-down] pid $p in group $PGID is not lnbits; refusing to signal" >&2
    exit 1
  fi
done

kill -TERM -- "-$PGID" 2>/dev/null || true
for _ in $(seq 1 60); do
  [ -z "$(members)" ] && break
  sleep 0.25
done
if [ -n "$(members)" ]; then
  echo "[lnbits-down] still alive after 15s; sending SIGKILL to group $PGID" >&2
  kill -KILL -- "-$PGID" 2>/dev/null || true
  sleep 0.5
fi
rm -f "$PID_FILE" "$LNBITS_HOME/keys.env"
echo "[lnbits-down] stopped (pgid $PGID)" >&2
