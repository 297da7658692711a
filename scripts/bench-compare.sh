#!/usr/bin/env bash
# Benchmark for issue 4: compare on 3 arms x 5 repetitions, each with 250-pod snapshots every
# 15 s over 5 minutes (20 snapshots) and a trafficgen summary, bootstrap included.
#   scripts/bench-compare.sh [RUNS]
# Target: under 100 ms. Prints a Markdown section for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-11}
out=bench-out/compare
mkdir -p "$out"
cargo build --quiet --release -p compare
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
# HdrHistogram's Python port (PyPI hdrhistogram) makes each repetition's latency histogram.
python3 -c "import hdrh" 2>/dev/null || python3 -m pip install -q hdrhistogram

python3 - "$out" <<'PY'
import json, os, random, sys
from hdrh.histogram import HdrHistogram
out = sys.argv[1]
rng = random.Random(12)


def scaled(encoded, factor):
    """The histogram's values times `factor`: one repetition's latencies, with its own noise."""
    h = HdrHistogram.decode(encoded)
    s = HdrHistogram(1, 3_600_000_000, 3)
    for item in h.get_recorded_iterator():
        s.record_value(max(1, round(item.value_iterated_to * factor)), item.count_added_in_this_iter_step)
    stats = {"min": s.get_min_value(), "mean": s.get_mean_value(), "stdev": s.get_stddev()}
    for key, q in [("p50", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99),
                   ("p999", 99.9), ("p9999", 99.99)]:
        stats[key] = s.get_value_at_percentile(q)
    stats["max"] = s.get_max_value()
    return s.encode().decode(), stats


profiles = {"none": (None, None, 0), "linkerd": ("linkerd", "linkerd-proxy", 2), "istio": ("istio-system", "istio-proxy", 8)}
seed = "fixtures/seed-article"
for arm, (ns, proxy, pcpu) in profiles.items():
    for rep in range(1, 6):
        d = os.path.join(out, arm, str(rep))
        os.makedirs(d, exist_ok=True)
        lines = ["run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes"]
        for s in range(20):
            ts = f"2026-11-26T08:{s * 15 // 60:02d}:{s * 15 % 60:02d}Z"
            if ns:
                for c in range(3):
                    lines.append(f"{arm}-{rep},{ts},{ns},cp-{c},main,{40 + rep + c},{(60 + c) << 20}")
            for p in range(250):
                if proxy:
                    lines.append(f"{arm}-{rep},{ts},sample-app,nginx-{p},{proxy},{pcpu},{10 << 20}")
                lines.append(f"{arm}-{rep},{ts},sample-app,nginx-{p},nginx,{1 + (p + s) % 3},{3 << 20}")
        open(os.path.join(d, "pods.csv"), "w").write("\n".join(lines) + "\n")
        # Each repetition is a run of its own (compare warns about copies): its start, its
        # latencies (the seed arm's, scaled by a 3% noise) and its install times differ.
        src = "istio" if arm == "istio" else "linkerd"
        t = json.load(open(os.path.join(seed, src, "trafficgen.json")))
        t["started_at"] = f"2026-11-26T{8 + rep:02d}:00:00Z"
        factor = 1 + 0.03 * rng.gauss(0, 1)
        t["histogram"], t["latency_us"] = scaled(t["histogram"], factor)
        t["service_time_histogram"], t["service_time_us"] = scaled(t["service_time_histogram"], factor)
        open(os.path.join(d, "trafficgen.json"), "w").write(json.dumps(t))
        m = json.load(open(os.path.join(seed, src, "mesh-install.json")))
        m["mesh"] = arm
        for key in ("install_s", "first_injected_pod_s", "all_pods_ready_s"):
            m[key] = round(m[key] * (1 + 0.05 * rng.gauss(0, 1)), 1)
        open(os.path.join(d, "mesh-install.json"), "w").write(json.dumps(m))
PY

bin=target/release/compare
args=(--arm "none=$out/none" --arm "linkerd=$out/linkerd" --arm "istio=$out/istio" --baseline linkerd -f json -o /dev/null)
python3 scripts/harness.py time --runs "$runs" --labels compare -- "$bin" "${args[@]}" > "$out/time.jsonl"
rows=$(cat "$out"/*/*/pods.csv | wc -l)
python3 - "$out" "$rows" <<'PY'
import json, os, sys, datetime, subprocess, platform
out, rows = sys.argv[1], int(sys.argv[2])
r = json.loads(open(os.path.join(out, "time.jsonl")).readline())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
ok = "met" if r["median_s"] < 0.1 else "**not met**"
print(f"### compare: 3 arms x 5 repetitions ({datetime.date.today()}, commit {rev})\n")
print(f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
      f"`scripts/bench-compare.sh`, median of {r['runs']} runs.\n")
print(f"- Input: 15 repetitions, each 20 snapshots of 250 pods (with proxies) and a trafficgen "
      f"summary: {rows:,} CSV lines in all. Bootstrap: 2,000 resamples of each arm.")
print(f"- Wall time {r['median_s'] * 1e3:.1f} ms (min {r['min_s'] * 1e3:.1f}, max {r['max_s'] * 1e3:.1f}); "
      f"target < 100 ms: {ok}. Peak RSS {r['peak_rss_bytes'] / 1e6:.1f} MB.")
PY
