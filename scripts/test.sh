#!/usr/bin/env bash
# The whole test suite: unit and integration tests on SQLite, then again on PostgreSQL when
# PURA_TEST_DATABASE_URL is set, with the official openai Python SDK as a client.
set -euo pipefail
cd "$(dirname "$0")/.."

# The SDK tests need a venv with the openai SDK and pytest; made once, reused after.
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai, pytest, aiosmtpd" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.109,<4" "pytest>=8,<9" "aiosmtpd>=1.4,<2"
fi
export PURA_TEST_PYTHON="$PWD/$VENV/bin/python"

echo "== tests on SQLite"
env -u PURA_TEST_DATABASE_URL cargo test --all-targets --no-fail-fast

if [ -n "${PURA_TEST_DATABASE_URL:-}" ]; then
  echo "== tests on PostgreSQL ($PURA_TEST_DATABASE_URL)"
  cargo test --tests --no-fail-fast
fi
