#!/usr/bin/env bash
# Benchmark for issue 3: trafficgen against wrk and the seed's Go generator, side by side.
#
#   scripts/bench-trafficgen.sh [SECONDS] [ROUNDS]
#
# nginx-light (one worker) is pinned to core 0 and each generator in turn to core 1, 50
# connections, closed loop, interleaved round by round. trafficgen runs twice per round: the
# plain release build (`cargo build --release`) and the profile-guided one of
# scripts/build-pgo.sh (trained on sample-app, not on this nginx). Then trafficgen alone (the
# plain build): open loop at
# 20,000 requests/s, and a 60 s closed-loop run for memory, whose interval log HdrHistogram's Java
# and Python tools then read. Installs nginx-light, wrk, golang-go
# and time from Debian if missing, and oha (a load generator built on hyper, as trafficgen is)
# from crates.io into bench-out/tools (a few minutes, once). Prints a Markdown section for
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
out=bench-out/trafficgen
mkdir -p "$out"

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v go >/dev/null || need+=(golang-go)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ "$(nproc)" -ge 2 ] || { echo "bench-trafficgen: needs two cores (server and generator pinned apart)" >&2; exit 1; }

cargo build --quiet --release -p trafficgen
tg=$PWD/target/release/trafficgen
# Without rustup's llvm-tools (or a way to fetch them) the profile-guided build is left out.
tgpgo=$(scripts/build-pgo.sh) || { echo "bench-trafficgen: no profile-guided build; measuring the plain one only" >&2; tgpgo=; }
(cd "$out" && GOCACHE=$PWD/.gocache GO111MODULE=off go build -o seed-trafficgen ../../fixtures/seed/traffic-generator.go)
seedgo=$PWD/$out/seed-trafficgen
oha=$PWD/bench-out/tools/bin/oha
[ -x "$oha" ] || cargo install --quiet --locked --root bench-out/tools oha@1.16.0

# nginx: one worker on core 0.
. scripts/pinned-nginx.sh
pinned_nginx "$PWD/$out/nginx" 18081

# One closed-loop run of each generator per round, on core 1, CPU time from GNU time (oha counts
# the requests it completed; the others, those they sent).
# trafficgen drops its User-Agent (`-H User-Agent:`) so that nginx gets wrk's request byte for
# byte; the seed's Go program sends Go's default User-Agent, as it always did.
: > "$out/closed.tsv"
for round in $(seq "$rounds"); do
  /usr/bin/time -f "%U %S %M" -o "$out/time.txt" taskset -c 1 wrk -t1 -c50 -d"${seconds}s" "$url" > "$out/wrk.txt"
  reqs=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
  echo -e "wrk\t$round\t$reqs\t$(cat "$out/time.txt")" >> "$out/closed.tsv"

  for build in "trafficgen=$tg" ${tgpgo:+"trafficgen-pgo=$tgpgo"}; do
    /usr/bin/time -f "%U %S %M" -o "$out/time.txt" taskset -c 1 "${build#*=}" -c 50 -d "${seconds}s" --threads 1 -q -H "User-Agent:" -o "$out/tg-closed.json" "$url"
    reqs=$(python3 -c "import json;print(json.load(open('$out/tg-closed.json'))['requests']['sent'])")
    echo -e "${build%%=*}\t$round\t$reqs\t$(cat "$out/time.txt")" >> "$out/closed.tsv"
  done

  /usr/bin/time -f "%U %S %M" -o "$out/time.txt" taskset -c 1 "$seedgo" "$url" "$seconds" 50 > "$out/go.txt" 2>/dev/null
  reqs=$(awk -F': ' '/Total Requests/ {print $2}' "$out/go.txt")
  echo -e "seed-go\t$round\t$reqs\t$(cat "$out/time.txt")" >> "$out/closed.tsv"

  /usr/bin/time -f "%U %S %M" -o "$out/time.txt" taskset -c 1 "$oha" -z "${seconds}s" -c 50 --no-tui --output-format json "$url" > "$out/oha.json"
  reqs=$(python3 -c "import json;print(sum(json.load(open('$out/oha.json'))['statusCodeDistribution'].values()))")
  echo -e "oha\t$round\t$reqs\t$(cat "$out/time.txt")" >> "$out/closed.tsv"
done

# Open loop at 20,000 requests/s.
taskset -c 1 "$tg" -r 20000 -c 50 -d "${seconds}s" --threads 1 -q -o "$out/tg-open.json" "$url"
# Memory over a 60 s run.
/usr/bin/time -f "%M" -o "$out/time-long.txt" taskset -c 1 "$tg" -c 50 -d 60s --threads 1 -q --hlog "$out/long.hlog" -o "$out/tg-long.json" "$url"

# HdrHistogram's own tools read the interval log: the Java HistogramLogProcessor and the Python
# port must find the summary's count, max, mean and p99 (scripts/check-hlog.sh).
# A disagreement is printed in the report ("they differ"), not a reason to stop here.
scripts/check-hlog.sh "$out/long.hlog" "$out/tg-long.json" > "$out/hlog-check.txt" || true

python3 - "$out" "$seconds" <<'PY'
import json, os, sys, statistics, datetime, subprocess, platform
out, seconds = sys.argv[1], float(sys.argv[2])

sys.path.insert(0, "scripts")
from harness import interval, verdict

rows = {}
for line in open(os.path.join(out, "closed.tsv")):
    tool, rnd, reqs, user, sys_, rss = line.split()
    rows.setdefault(tool, []).append((int(reqs), float(user) + float(sys_), int(rss) * 1024, float(user)))
def med(tool, f):
    return statistics.median(f(r) for r in rows[tool])
rps = {t: med(t, lambda r: r[0] / seconds) for t in rows}
cpu = {t: med(t, lambda r: r[1] * 1e6 / r[0]) for t in rows}
# Where the CPU goes: a client's own code (user) against the kernel's TCP path (system).
cpu_user = {t: med(t, lambda r: r[3] * 1e6 / r[0]) for t in rows}
cpu_sys = {t: med(t, lambda r: (r[1] - r[3]) * 1e6 / r[0]) for t in rows}
rss = {t: max(r[2] for r in rows[t]) for t in rows}
o = json.load(open(os.path.join(out, "tg-open.json")))
l = json.load(open(os.path.join(out, "tg-long.json")))
long_rss = int(open(os.path.join(out, "time-long.txt")).read().split()[-1]) * 1024
cpu_model = next((x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")), "?")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
ok = lambda c: "met" if c else "**not met**"
print(f"### trafficgen vs wrk, oha and the seed's Go generator ({datetime.date.today()}, commit {rev})\n")
print(f"Machine: {os.cpu_count()} cores ({cpu_model}), {platform.system()} {platform.release()}. "
      f"nginx-light, one worker, on core 0; each generator on core 1, 50 connections, closed loop, "
      f"{seconds:.0f} s per run, median of {len(rows['wrk'])} interleaved rounds; CPU time from GNU time.\n")
print("| generator | requests/s | CPU µs per request | user / system | peak RSS |")
print("|---|---|---|---|---|")
for t in [t for t in ["wrk", "trafficgen", "trafficgen-pgo", "oha", "seed-go"] if t in rows]:
    print(f"| {t} | {rps[t]:,.0f} | {cpu[t]:.1f} | {cpu_user[t]:.2f} / {cpu_sys[t]:.2f} | {rss[t]/1e6:.1f} MB |")
print()
# Ratios within each round, where wrk and trafficgen met the same conditions: the verdicts
# rest on these (the ratio of the two medians moves with whichever rounds the noise hit).
for name in [t for t in ["trafficgen", "trafficgen-pgo"] if t in rows]:
    paired = [(t[0] / w[0], (t[1] / t[0]) / (w[1] / w[0])) for w, t in zip(rows["wrk"], rows[name])]
    (rps_low, rps_high), (cpu_low, cpu_high) = interval([a for a, _ in paired]), interval([b for _, b in paired])
    rps_med, cpu_med = statistics.median(a for a, _ in paired), statistics.median(b for _, b in paired)
    print(f"- {name} / wrk, median of the paired rounds: requests per second **{rps_med:.3f}x** "
          f"(95% interval {rps_low:.3f}-{rps_high:.3f}; target >= 1.0x: "
          f"{verdict(rps_med, rps_low, rps_high, 1, True)}); CPU per request **{cpu_med:.3f}x** wrk's "
          f"({cpu_low:.3f}-{cpu_high:.3f}; target <= 1.0x: {verdict(cpu_med, cpu_low, cpu_high, 1, False)}).")
    print(f"  Per round (requests/s ratio / CPU-per-request ratio): "
          f"{', '.join(f'{a:.2f}/{b:.2f}' for a, b in paired)}. Ratio of the medians in the table: "
          f"{rps[name]/rps['wrk']:.2f}x / {cpu[name]/cpu['wrk']:.2f}x.")
print(f"- trafficgen (plain build) vs the seed Go program: {rps['trafficgen']/rps['seed-go']:.1f}x the requests per second; "
      f"oha, also built on hyper and tokio (it sends its own User-Agent), uses "
      f"{cpu['oha']/cpu['wrk']:.2f}x wrk's CPU per request.")
lag99 = o["send_lag_us"]["p99"]
print(f"- Open loop at 20,000 requests/s for {seconds:.0f} s: achieved {o['rate_achieved']:,.0f}/s "
      f"({100*(o['rate_achieved']/20000-1):+.2f}%, target within 0.5%: {ok(abs(o['rate_achieved']/20000-1) <= 0.005)}); "
      f"send lag p99 {lag99} µs (target < 1 ms: {ok(lag99 is not None and lag99 < 1000)}); "
      f"latency p50/p99 {o['latency_us']['p50']}/{o['latency_us']['p99']} µs; "
      f"{o['requests']['unsent']} unsent, {o['requests']['errors']} errors.")
print(f"- Memory over a 60 s closed-loop run with --hlog: peak RSS {long_rss/1e6:.1f} MB "
      f"({l['requests']['sent']:,} requests; target < 30 MB: {ok(long_rss < 30e6)}).")
print(open(os.path.join(out, "hlog-check.txt")).read().strip())
PY
