#!/usr/bin/env bash
# Start a LOCAL LNbits (FakeWallet funding source) on 127.0.0.1 for Pura's Lightning tests.
# Adapted from shared/tools/lnbits/lnbits-up.sh; the venv lives in the repo (.lnbits-venv,
# git-ignored) so a fresh machine installs it once and reuses it after.
#
#  - installs lnbits into a venv if missing (PyPI only),
#  - starts it in the background (own session/process group; pid file + log under $LNBITS_HOME),
#  - waits until healthy, does the 1.x "first install" (creates the super user),
#  - creates a "merchant" wallet and a "payer" wallet, funds the payer with fake sats,
#  - writes the keys to $LNBITS_HOME/keys.env.
#
# Every start uses a FRESH SQLite data folder, so keys change on each start.
# Stop it with lnbits-down.sh (kills only the process group this script started).
#
# Env knobs (all optional):
#   LNBITS_HOME          default /tmp/lnbits          (data/, run/, lnbits.pid, lnbits.log, keys.env)
#   LNBITS_VENV          default /tmp/lnbits-venv
#   LNBITS_HOST          default 127.0.0.1            (must be a loopback address)
#   LNBITS_PORT          default 5000
#   LNBITS_PIP_SPEC      default "lnbits==1.6.2"
#   PAYER_FUNDING_SATS   default 1000000
#   LNBITS_START_TIMEOUT default 120 (seconds to wait for /api/v1/health)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
LNBITS_HOME="${LNBITS_HOME:-/tmp/pura-lnbits}"
LNBITS_VENV="${LNBITS_VENV:-$REPO/.lnbits-venv}"
LNBITS_HOST="${LNBITS_HOST:-127.0.0.1}"
LNBITS_PORT="${LNBITS_PORT:-5000}"
LNBITS_PIP_SPEC="${LNBITS_PIP_SPEC:-lnbits==1.6.2}"
PAYER_FUNDING_SATS="${PAYER_FUNDING_SATS:-1000000}"
LNBITS_START_TIMEOUT="${LNBITS_START_TIMEOUT:-120}"

PID_FILE="$LNBITS_HOME/lnbits.pid"
LOG_FILE="$LNBITS_HOME/lnbits.log"
KEYS_FILE="$LNBITS_HOME/keys.env"
DATA_DIR="$LNBITS_HOME/data"
RUN_DIR="$LNBITS_HOME/run"
EXT_DIR="$LNBITS_HOME/ext"
URL="http://$LNBITS_HOST:$LNBITS_PORT"
ADMIN_USER="admin"
ADMIN_PASSWORD="${LNBITS_ADMIN_PASSWORD:-lnbits-local-admin}"

# live (non-zombie) processes of a process group
group_alive() {
  local p st
  for p in $(pgrep -g "$1" 2>/dev/null); do
    st="$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)"
    [ -n "$st" ] && [ "$st" != "Z" ] && return 0
  done
  return 1
}
log() { printf '[lnbits-up] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$LNBITS_HOST" in
  127.*|localhost) ;;
  *) die "LNBITS_HOST=$LNBITS_HOST is not a loopback address; refusing to bind." ;;
esac
command -v curl >/dev/null || die "curl is required"

# ---------------------------------------------------------------- install
pick_python() {
  local c
  for c in python3 python3.12 python3.11 python3.10; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] < (3,13) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

# Do not `import lnbits` here: importing it writes ./data/.lnbits_auth_key in the CWD.
CHECK_PY='import bolt11, importlib.util as u; assert u.find_spec("lnbits")'
if ! [ -x "$LNBITS_VENV/bin/lnbits" ] ||
   ! "$LNBITS_VENV/bin/python" -c "$CHECK_PY" >/dev/null 2>&1; then
  PY="$(pick_python)" || die "need python 3.10-3.12 to install lnbits"
  log "installing $LNBITS_PIP_SPEC into $LNBITS_VENV (takes ~1.5 min) ..."
  [ -x "$LNBITS_VENV/bin/python" ] || "$PY" -m venv "$LNBITS_VENV"
  "$LNBITS_VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  # bitstring 5.x dropped ConstBitStream, which bolt11 2.1.x imports -> pin <5.
  "$LNBITS_VENV/bin/pip" install -q "$LNBITS_PIP_SPEC" "bitstring<5" ||
    die "pip install failed"
  "$LNBITS_VENV/bin/python" -c "$CHECK_PY" || die "lnbits/bolt11 still not importable"
fi
PYJ="$LNBITS_VENV/bin/python"   # used for JSON parsing below

# ---------------------------------------------------------------- already running?
if [ -f "$PID_FILE" ]; then
  oldpid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [ -n "$oldpid" ] && group_alive "$oldpid"; then
    if [ -f "$KEYS_FILE" ] &&
       curl -fsS -m 3 "$URL/api/v1/health" >/dev/null 2>&1; then
      log "already running (pgid $oldpid); keys in $KEYS_FILE"
      cat "$KEYS_FILE"
      exit 0
    fi
    die "a previous LNbits (pgid $oldpid) is still alive but unhealthy; run lnbits-down.sh first"
  fi
  rm -f "$PID_FILE"
fi

# port must be free
if curl -s -m 2 -o /dev/null "$URL/" 2>/dev/null; then
  die "something already answers on $URL (not started by this script); pick another LNBITS_PORT"
fi

# ---------------------------------------------------------------- fresh state
mkdir -p "$LNBITS_HOME"
rm -rf "$DATA_DIR" "$EXT_DIR" "$RUN_DIR" "$KEYS_FILE"
mkdir -p "$DATA_DIR" "$EXT_DIR" "$RUN_DIR"
# lnbits resolves ./lnbits/static and ./lnbits/templates relative to the CWD,
# so run it from a folder that has a "lnbits" link to the installed package.
PKG_DIR="$("$PYJ" -c 'import importlib.util as u; print(u.find_spec("lnbits").submodule_search_locations[0])')"
ln -sfn "$PKG_DIR" "$RUN_DIR/lnbits"

# ---------------------------------------------------------------- start
: > "$LOG_FILE"
T0="$(date +%s.%N)"
(
  cd "$RUN_DIR"
  export LNBITS_BACKEND_WALLET_CLASS=FakeWallet
  export LNBITS_DATA_FOLDER="$DATA_DIR"
  export LNBITS_EXTENSIONS_PATH="$EXT_DIR"
  export HOST="$LNBITS_HOST" PORT="$LNBITS_PORT"
  export LNBITS_BASEURL="$URL/"
  export LNBITS_ADMIN_UI=true           # keeps the super user + /users/api/v1/balance top-up
  export AUTH_HTTPS_ONLY=false          # plain-http cookies are fine on loopback
  export LNBITS_RATE_LIMIT_NO=1000000   # default 200/min would throttle test suites
  # keep everything offline: no price fetching, no extension manifests
  export LNBITS_PRICE_AGGREGATOR_ENABLED=false
  export LNBITS_EXCHANGE_RATE_PROVIDERS='[]'
  export LNBITS_EXTENSIONS_MANIFESTS='[]'
  export LNBITS_WASM_EXTENSIONS_MANIFESTS='[]'
  export LNBITS_EXTENSIONS_DEACTIVATE_ALL=true
  # allow invoice "webhook" callbacks, but only to loopback
  export LNBITS_CALLBACK_ALLOW_PRIVATE_IPS=true
  export LNBITS_CALLBACK_URL_RULES='["http://127\\.0\\.0\\.1(:\\d+)?","http://localhost(:\\d+)?"]'
  # setsid: own session + process group, so lnbits-down.sh can stop the uvicorn
  # child too (killing only the parent leaves the child serving).
  exec setsid bash -c 'echo $$ > "$0"; exec "$1/bin/lnbits" --host "$2" --port "$3"' \
    "$PID_FILE" "$LNBITS_VENV" "$LNBITS_HOST" "$LNBITS_PORT"
) >>"$LOG_FILE" 2>&1 </dev/null &

for _ in $(seq 1 50); do [ -s "$PID_FILE" ] && break; sleep 0.1; done
[ -s "$PID_FILE" ] || die "no pid file written; see $LOG_FILE"
PID="$(cat "$PID_FILE")"
log "started pid/pgid $PID, log $LOG_FILE"

# ---------------------------------------------------------------- wait healthy
deadline=$(( $(date +%s) + LNBITS_START_TIMEOUT ))
code=000
while :; do
  code="$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$URL/api/v1/health" || true)"
  # 307 -> /first_install is what a fresh install answers to everything
  case "$code" in 200|307) break ;; esac
  group_alive "$PID" || { tail -30 "$LOG_FILE" >&2; die "lnbits exited during startup"; }
  [ "$(date +%s)" -lt "$deadline" ] || { tail -30 "$LOG_FILE" >&2; die "not healthy after ${LNBITS_START_TIMEOUT}s"; }
  sleep 0.3
done
T1="$(date +%s.%N)"

jget() { "$PYJ" -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }

# ---------------------------------------------------------------- first install (super user)
resp="$(curl -fsS -X PUT "$URL/api/v1/auth/first_install" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$ADMIN_USER\",\"password\":\"$ADMIN_PASSWORD\",\"password_repeat\":\"$ADMIN_PASSWORD\"}")" ||
  die "first_install failed (code was $code)"
TOKEN="$(printf '%s' "$resp" | jget access_token)"

# ---------------------------------------------------------------- wallets
mk_wallet() {  # name -> JSON of the new wallet (new account + wallet, no auth needed)
  curl -fsS -X POST "$URL/api/v1/account" -H 'Content-Type: application/json' -d "{\"name\":\"$1\"}"
}
MERCHANT="$(mk_wallet merchant)" || die "creating merchant wallet failed"
PAYER="$(mk_wallet payer)" || die "creating payer wallet failed"

PAYER_ID="$(printf '%s' "$PAYER" | jget id)"
curl -fsS -X PUT "$URL/users/api/v1/balance" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d "{\"id\":\"$PAYER_ID\",\"amount\":$PAYER_FUNDING_SATS}" >/dev/null ||
  die "funding the payer wallet failed"

PAYER_ADMIN_KEY="$(printf '%s' "$PAYER" | jget adminkey)"
bal="$(curl -fsS "$URL/api/v1/wallet" -H "X-Api-Key: $PAYER_ADMIN_KEY" | jget balance)"
[ "$bal" = "$((PAYER_FUNDING_SATS * 1000))" ] || die "payer balance is $bal msat, expected $((PAYER_FUNDING_SATS * 1000))"

umask 077
cat > "$KEYS_FILE" <<EOF
LNBITS_URL=$URL
MERCHANT_WALLET_ID=$(printf '%s' "$MERCHANT" | jget id)
MERCHANT_INVOICE_KEY=$(printf '%s' "$MERCHANT" | jget inkey)
MERCHANT_ADMIN_KEY=$(printf '%s' "$MERCHANT" | jget adminkey)
PAYER_WALLET_ID=$PAYER_ID
PAYER_INVOICE_KEY=$(printf '%s' "$PAYER" | jget inkey)
PAYER_ADMIN_KEY=$PAYER_ADMIN_KEY
LNBITS_ADMIN_USER=$ADMIN_USER
LNBITS_ADMIN_PASSWORD=$ADMIN_PASSWORD
LNBITS_ADMIN_TOKEN=$TOKEN
LNBITS_PID_FILE=$PID_FILE
LNBITS_LOG_FILE=$LOG_FILE
EOF
T2="$(date +%s.%N)"
log "healthy after $("$PYJ" -c "print(round($T1-$T0,1))")s; wallets ready after $("$PYJ" -c "print(round($T2-$T0,1))")s"
log "payer funded with $PAYER_FUNDING_SATS sats; keys written to $KEYS_FILE"
cat "$KEYS_FILE"
