#!/usr/bin/env bash
# The benchmark, in one command:   bench/run.sh
#
# Builds the release binaries (pura, examples/bench_upstream, examples/bench_streams,
# examples/bench_floor), installs
# the load generator oha if it is missing, creates bench/.venv with LiteLLM proxy, then runs
# every scenario against 127.0.0.1 only (bench/bench.py) and writes bench/results.md (also
# printed); raw oha/stream JSON and the servers' logs go to bench/out/. Never run by the tests.
#
# Knobs (environment): BENCH_DURATION (s per run, 10), BENCH_WARMUP (1), BENCH_RATES
# (500,1000,2000), BENCH_LITELLM_RATES (25,50,500), BENCH_STREAMS (1000), BENCH_LITELLM_STREAMS
# (100), BENCH_CHUNKS (50), BENCH_CHUNK_DELAY_MS (100), BENCH_RAMP_S (2), BENCH_PIN=0 (no
# taskset), BENCH_SKIP_LITELLM=1, BENCH_PURA_LOG (RUST_LOG for pura, default info),
# CARGO_TARGET_DIR (default ./target), BENCH_SKIP_INSTRUCTIONS=1 (no callgrind count; see
# bench/instructions.py, which also runs alone).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export PATH="$HOME/.cargo/bin:$PATH"
OHA_VERSION=1.16.0
# 1.106.2 is the newest 1.106 release whose requirements resolve from the package index here
# (pip picks it for ==1.106.*; 1.106.10, for one, wants a certifi newer than the index has).
# 1.107.x is not on the index (1.107.0 was reported compromised).
export BENCH_LITELLM_VERSION="${BENCH_LITELLM_VERSION:-1.106.2}"
say() { printf '\n== %s\n' "$*" >&2; }

for tool in taskset python3 cargo; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is required" >&2; exit 1; }
done

say "building release binaries into $CARGO_TARGET_DIR"
cargo build --release --bin pura --example bench_upstream --example bench_streams --example bench_floor

if ! command -v oha >/dev/null; then
    say "installing oha $OHA_VERSION (cargo install, a few minutes once)"
    cargo install oha --locked --version "$OHA_VERSION"
fi

if [ "${BENCH_SKIP_LITELLM:-0}" != 1 ]; then
    VENV=bench/.venv
    have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true)
    if [ "$have" != "$BENCH_LITELLM_VERSION" ] || [ ! -x "$VENV/bin/litellm" ]; then
        say "creating $VENV with litellm[proxy]==$BENCH_LITELLM_VERSION"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet "litellm[proxy]==$BENCH_LITELLM_VERSION"
    fi
fi

# 1,000 streams through a gateway hold about 3,000 sockets at once.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

say "running the scenarios (about 5 minutes)"
python3 bench/bench.py --target-dir "$CARGO_TARGET_DIR" --oha "$(command -v oha)"

# CPU instructions per request under callgrind (steady where latency is noisy); skipped
# with BENCH_SKIP_INSTRUCTIONS=1 or when valgrind is missing.
if [ "${BENCH_SKIP_INSTRUCTIONS:-0}" != 1 ] && command -v valgrind >/dev/null; then
    say "counting instructions per request (callgrind, about 3 minutes)"
    python3 bench/instructions.py --target-dir "$CARGO_TARGET_DIR"
    # Again with glibc's string functions on their vector loops: valgrind counts each byte
    # of a `rep stosb` as an instruction (see VECTOR_STRING_OPS in instructions.py).
    python3 bench/instructions.py --target-dir "$CARGO_TARGET_DIR" --vector-string-ops
fi

# The same requests natively: CPU and wall time per request (under callgrind the settlement
# writer's batches hold a few rows; here they hold what they do in service).
say "CPU time per request, natively (about 1 minute)"
python3 bench/cputime.py --target-dir "$CARGO_TARGET_DIR"
