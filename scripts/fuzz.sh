#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), seeded from the fixtures.
#   scripts/fuzz.sh [SECONDS]
# Needs a nightly toolchain and cargo-fuzz (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/top_parse_input fuzz/corpus/quantity
for f in fixtures/kubectl-top/*.txt fixtures/kubectl-top/*.json; do
  { printf '\0'; cat "$f"; } > "fuzz/corpus/top_parse_input/$(basename "$f")"
done
for q in 250m 1.5Gi 329087452n 2748180Ki 1e3 0.9n 9Ei -1.5 .5 1.; do
  printf '%s' "$q" > "fuzz/corpus/quantity/$q"
done
for target in $(cargo +nightly fuzz list); do
  echo "== $target ($seconds s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | grep -E '^Done|SUMMARY|panicked' || true
done
