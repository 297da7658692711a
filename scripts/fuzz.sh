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
mkdir -p fuzz/corpus/usage_csv
cp crates/top-parse/tests/golden/*.csv fuzz/corpus/usage_csv/
mkdir -p fuzz/corpus/trafficgen_summary fuzz/corpus/histogram
cargo build --quiet --release -p sample-app -p trafficgen
if [ ! -s fuzz/corpus/trafficgen_summary/seed.json ]; then
  . scripts/sample-app.sh
  trap stop_sample_apps EXIT
  serve_sample_app
  target/release/trafficgen -r 100 -d 1s -c 2 -q -o fuzz/corpus/trafficgen_summary/seed.json "http://$addr/" || true
  stop_sample_apps
fi
python3 -c "import json,sys; print(json.load(open('fuzz/corpus/trafficgen_summary/seed.json'))['histogram'], end='')" \
  > fuzz/corpus/histogram/seed.txt 2>/dev/null || true
mkdir -p fuzz/corpus/h1_answer
# The first byte: bit 0 says the request was HEAD, the rest the size of each read.
printf '\x0aHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' > fuzz/corpus/h1_answer/length
printf '\x06HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n' \
  > fuzz/corpus/h1_answer/chunked
printf '\x21HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n' \
  > fuzz/corpus/h1_answer/informational
mkdir -p fuzz/corpus/kubesim_inputs
cp fixtures/scenarios/*.yaml fixtures/manifests/*.yaml fuzz/corpus/kubesim_inputs/
for sel in 'app=web,tier!=db' 'env in (a,b),!legacy' 'metadata.name=p,status.phase!=Running'; do
  printf '%s' "$sel" > "fuzz/corpus/kubesim_inputs/sel-$(echo "$sel" | md5sum | cut -c1-8)"
done
mkdir -p fuzz/corpus/compare_inputs
for c in 'latency_p99_ms > 150' 'delta.control_plane_cpu_millicores<=-50' 'linkerd.v2.install_s >= 1e2'; do
  printf '%s' "$c" > "fuzz/corpus/compare_inputs/cond-$(echo "$c" | md5sum | cut -c1-8)"
done
printf '[[profile]]\nmesh = "kuma"\ncontrol_plane = "kuma-system"\nproxy = "kuma-sidecar"\n' \
  > fuzz/corpus/compare_inputs/profile.toml
failed=()
for target in $(cargo +nightly fuzz list); do
  # hdrhistogram 7.6's decoder negates a zero-run count, which overflows for i64::MIN: release
  # builds (what ships) wrap and return an error, builds with overflow checks panic (and
  # decode_histogram catches that in our debug builds, but libFuzzer aborts first). So the
  # targets that decode histograms are fuzzed as shipped, with -O.
  case $target in
    histogram|trafficgen_summary) build=(-O) ;;
    *) build=() ;;
  esac
  # top_parse_input also reads with two threads, as the CLI does. A scoped thread's join can
  # return before the thread's exit destructors have freed the thread-local state of std's
  # channels, and LeakSanitizer, checking right then, reports those 112 bytes as leaked (the
  # stacks end in std::sync::mpmc::context and __cxa_thread_atexit_impl). Leaks are not what
  # this target looks for, so they are not checked there.
  leaks=()
  [ "$target" = top_parse_input ] && leaks=(-detect_leaks=0)
  echo "== $target ($seconds s)"
  # A target that fails to build, or stops before its time, is a failure too: only libFuzzer's
  # closing "Done" line says the whole run happened.
  log=$(mktemp)
  cargo +nightly fuzz run "${build[@]}" "$target" -- -max_total_time="$seconds" "${leaks[@]}" \
    > "$log" 2>&1 || true
  if grep -q '^Done' "$log"; then
    grep -E '^Done' "$log"
  else
    grep -E 'SUMMARY|panicked|^error' "$log" | head -20
    tail -5 "$log"
    failed+=("$target")
  fi
  rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed or did not finish: ${failed[*]}" >&2
  exit 1
fi
