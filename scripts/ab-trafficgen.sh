#!/usr/bin/env bash
# A/B of trafficgen builds against wrk, for changes too small for bench-trafficgen.sh's spread.
#
#   scripts/ab-trafficgen.sh SECONDS ROUNDS BINARY...
#
# nginx-light (one worker) on core 0; wrk, then each BINARY in turn, on core 1: 50 connections,
# closed loop, interleaved round by round. Prints each run's CPU µs per request (GNU time) and
# its ratio to wrk's in the same round, then the median ratio per binary with a 95% interval
# (order statistics of the rounds, as the sign test gives it: scripts/harness.py). Build the
# binaries first, e.g.
# `cargo build --release -p trafficgen && cp target/release/trafficgen /tmp/tg-a`.
# A BINARY may carry flags of its own, quoted as one argument: '/tmp/tg-a -H User-Agent:' sends
# the request wrk sends, byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,12p "$0" >&2; exit 2; }
seconds=$1
rounds=$2
shift 2
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
out=$PWD/bench-out/ab-trafficgen
. scripts/pinned-nginx.sh
pinned_nginx "$out/nginx" 18091

: > "$out/runs.tsv"
for round in $(seq "$rounds"); do
  /usr/bin/time -f "%U %S" -o "$out/time.txt" taskset -c 1 wrk -t1 -c50 -d"${seconds}s" "$url" > "$out/wrk.txt"
  echo -e "$round\twrk\t$(awk '/requests in/ {print $1}' "$out/wrk.txt")\t$(cat "$out/time.txt")" >> "$out/runs.tsv"
  for bin in "$@"; do
    # shellcheck disable=SC2086 # a BINARY may carry flags
    /usr/bin/time -f "%U %S" -o "$out/time.txt" taskset -c 1 $bin -c 50 -d "${seconds}s" --threads 1 -q -o "$out/tg.json" "$url"
    sent=$(python3 -c "import json;print(json.load(open('$out/tg.json'))['requests']['sent'])")
    echo -e "$round\t${bin// /_}\t$sent\t$(cat "$out/time.txt")" >> "$out/runs.tsv"
  done
done

python3 - "$out/runs.tsv" <<'PY'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]

sys.path.insert(0, "scripts")
from harness import interval

us = {}
for rnd, name, reqs, user, system in runs:
    us.setdefault(name, {})[rnd] = (float(user) + float(system)) * 1e6 / int(reqs)
wrk = us.pop("wrk")
for name, per_round in us.items():
    ratios = [per_round[r] / wrk[r] for r in per_round]
    low, high = interval(ratios)
    print(f"{name}: median {statistics.median(per_round.values()):.2f} µs/request, "
          f"paired ratio to wrk {statistics.median(ratios):.3f} "
          f"(95% interval {low:.3f}-{high:.3f}; "
          f"rounds {', '.join(f'{x:.3f}' for x in ratios)})")
print(f"wrk: median {statistics.median(wrk.values()):.2f} µs/request")
PY
