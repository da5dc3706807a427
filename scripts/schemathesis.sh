#!/usr/bin/env bash
# schemathesis against a live gateway: the built `pura` binary (target/debug/pura, built by
# `cargo test` or `cargo build`) on a temp SQLite database, in front of a stdlib fake OpenAI
# upstream (scripts/schemathesis/fake_openai.py), checked against its own /openapi.json.
# Checks: no 5xx (not_a_server_error), every status documented, every response conforming to
# its schema; positive and negative data; the stateful phase follows the document's links (a
# minted key managed, an invoice looked up) and the hooks mint a key through the API for every
# case. With PURA_TEST_LNBITS_KEYS (scripts/test.sh starts LNbits) the wallet paths run
# against LNbits; without it they answer a documented 503... which not_a_server_error flags, so
# they are left out then.
#
# schemathesis lives in its own venv (.schemathesis-venv, git-ignored), installed here on first
# use: its pinned dependencies (hypothesis, jsonschema, requests…) stay apart from the SDK
# versions the .venv tests pin. Bounded: --max-examples and --max-time keep it under 2 minutes.
# One worker: hypothesis inspects lambda sources with `ast`, which CPython 3.11 does not
# survive from several threads at once ("AST constructor recursion depth mismatch").
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi
[ "${1:-}" = "--install-only" ] && exit 0

BIN="${PURA_BIN:-target/debug/pura}"
[ -x "$BIN" ] || cargo build --quiet
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 scripts/schemathesis/fake_openai.py > "$WORK/fake.port" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/fake.port" ] && break; sleep 0.1; done
FAKE_PORT="$(head -n1 "$WORK/fake.port")"

cat > "$WORK/pura.toml" <<TOML
[server]
bind = "127.0.0.1:0"
workers = 2

[database]
url = "sqlite://$WORK/pura.db"

[providers.openai]
enabled = false
[providers.anthropic]
enabled = false
[providers.gemini]
enabled = false
[providers.groq]
enabled = false

[providers.fake]
dialect = "openai"
base_url = "http://127.0.0.1:$FAKE_PORT/v1"
api_key = "sk-fake-upstream"
tier = "mid"
models = ["gpt-4o", "claude-sonnet-4-20250514"]
price_per_1k = 0.001
timeout = "5s"
TOML

LN_ENV=()
EXCLUDE=()
if [ -n "${PURA_TEST_LNBITS_KEYS:-}" ] && [ -f "$PURA_TEST_LNBITS_KEYS" ]; then
  # shellcheck disable=SC1090
  . "$PURA_TEST_LNBITS_KEYS"
  LN_ENV=(PURA__LIGHTNING__BACKEND=lnbits "PURA__LIGHTNING__URL=$LNBITS_URL"
          "LNBITS_INVOICE_KEY=$MERCHANT_INVOICE_KEY")
else
  echo "PURA_TEST_LNBITS_KEYS unset: the wallet paths are left out (no Lightning backend)"
  EXCLUDE=(--exclude-path-regex '^/api/wallet/(fund|status)$')
fi

env "${LN_ENV[@]}" PURA_ADMIN_TOKEN=schemathesis-admin-token RUST_LOG=warn \
  PURA__SERVER__KEY_MINT_PER_IP_PER_HOUR=1000000 PURA__LIMITS__RPM=1000000 \
  "$BIN" --config "$WORK/pura.toml" > "$WORK/pura.out" 2> "$WORK/pura.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "pura listening on" "$WORK/pura.out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^pura listening on //p' "$WORK/pura.out" | head -n1)"
[ -n "$URL" ] || { cat "$WORK/pura.err"; exit 1; }

export PURA_SCHEMATHESIS_URL="$URL" PURA_SCHEMATHESIS_ADMIN=schemathesis-admin-token
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$PWD/scripts/schemathesis"
status=0
"$VENV/bin/schemathesis" run "$URL/openapi.json" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" --max-time "${SCHEMATHESIS_MAX_TIME:-90}" \
  --seed "${SCHEMATHESIS_SEED:-1}" --workers 1 --request-timeout 10 \
  --exclude-path /metrics --exclude-path / "${EXCLUDE[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- gateway stderr (last 40 lines)"; tail -n 40 "$WORK/pura.err"
fi
exit "$status"
