#!/usr/bin/env bash
# The whole test suite: unit and integration tests on SQLite, then again on PostgreSQL when
# PURA_TEST_DATABASE_URL is set. Installs what the tests need on first use: a venv with the
# official openai and anthropic Python SDKs, pytest and aiosmtpd (.venv), Claude Code from npm
# (.npm-agents, its native binary inside the package), and LNbits with its FakeWallet
# (.lnbits-venv), which it starts on a free loopback port and stops at the end; Chromium
# (apt) and playwright-core + axe-core (.npm-browser) for the console's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai, anthropic, pytest, aiosmtpd" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.109,<4" "anthropic>=0.75,<3" "pytest>=8,<9" "aiosmtpd>=1.4,<2"
fi
export PURA_TEST_PYTHON="$PWD/$VENV/bin/python"

# The real coding agents from npm (each package ships its native binary in a per-platform
# optional dependency, no postinstall needed), in a project folder: tests/codex.rs runs Codex,
# tests/messages.rs runs Claude Code.
AGENTS=.npm-agents
if [ ! -x "$AGENTS/node_modules/.bin/codex" ] || [ ! -d "$AGENTS/node_modules/@anthropic-ai/claude-code" ]; then
  mkdir -p "$AGENTS"
  npm install --silent --no-audit --no-fund --prefix "$AGENTS" @openai/codex @anthropic-ai/claude-code >/dev/null
fi
export PURA_TEST_CODEX="$PWD/$AGENTS/node_modules/.bin/codex"
CLAUDE_BIN="$(ls "$PWD/$AGENTS"/node_modules/@anthropic-ai/claude-code-*/claude 2>/dev/null | head -n 1 || true)"
if [ -n "$CLAUDE_BIN" ]; then
  export PURA_TEST_CLAUDE="$CLAUDE_BIN"
fi

# The console's browser test (tests/browser.rs): Debian's Chromium, driven by playwright-core,
# with axe-core for the accessibility pass (npm, in a project folder like the agents).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
BROWSER_MODULES=.npm-browser
if [ ! -d "$BROWSER_MODULES/node_modules/playwright-core" ] || [ ! -d "$BROWSER_MODULES/node_modules/axe-core" ]; then
  mkdir -p "$BROWSER_MODULES"
  npm install --silent --no-audit --no-fund --prefix "$BROWSER_MODULES" "playwright-core@^1" "axe-core@^4" >/dev/null
fi

export LNBITS_HOME="${TMPDIR:-/tmp}/pura-lnbits-$$"
export LNBITS_PORT="$("$PURA_TEST_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
trap 'scripts/lnbits-down.sh >/dev/null 2>&1 || true; rm -rf "$LNBITS_HOME"' EXIT
scripts/lnbits-up.sh >/dev/null
export PURA_TEST_LNBITS_KEYS="$LNBITS_HOME/keys.env"

echo "== tests on SQLite"
env -u PURA_TEST_DATABASE_URL cargo test --all-targets --no-fail-fast

echo "== console screenshots (tests/browser.rs): $PWD/target/ci-artifacts/console"

if [ -n "${PURA_TEST_DATABASE_URL:-}" ]; then
  # tests/replicas_money.rs runs 2 and 3 replicas behind a real nginx (installed here when
  # missing; scripts/replicas.sh runs those tests alone on a database of their own).
  scripts/replicas.sh --install-only
  NGINX_BIN="$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)"
  [ -n "$NGINX_BIN" ] && export PURA_TEST_NGINX="$NGINX_BIN"
  echo "== tests on PostgreSQL ($PURA_TEST_DATABASE_URL)"
  cargo test --tests --no-fail-fast
fi
