#!/usr/bin/env bash
# Coverage-guided fuzzing of every request decoder and upstream parser (fuzz/harness.rs) with
# cargo-fuzz on nightly, each target for FUZZ_SECONDS (default 300) from its corpus in
# fuzz/corpus/<target>/ (new inputs go to fuzz/target/corpus, so the committed corpus stays
# small). Local, not CI: the nightly sanitizer build of the gateway and its dependencies takes
# far longer than CI's budget on a 2-core machine. CI fuzzes on stable instead:
# tests/fuzz_corpus.rs runs the same harness over the corpus and thousands of mutations of it.
# Usage: scripts/fuzz.sh [target…]   (FUZZ_SECONDS=60 scripts/fuzz.sh chat_request)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH="${FUZZ_SECONDS:-300}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/corpus)
fi
rustup run nightly cargo fuzz build -O
for t in "${targets[@]}"; do
  work="fuzz/target/corpus/$t"
  mkdir -p "$work"
  echo "== $t: ${SECONDS_EACH}s"
  rustup run nightly cargo fuzz run -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==.*ERROR|SUMMARY|Done )' || true
  if ls "fuzz/artifacts/$t"/crash-* >/dev/null 2>&1; then
    echo "$t: crashes in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
