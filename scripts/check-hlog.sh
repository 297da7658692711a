#!/usr/bin/env bash
# Reads a trafficgen interval log with HdrHistogram's own tools and checks it against the run's
# summary: the Java library's HistogramLogProcessor (Debian's libhdrhistogram-java) and the Python
# port (PyPI hdrhistogram). Installs both when missing. Prints one Markdown line per tool and
# exits 1 if either disagrees with the summary.
#
#   scripts/check-hlog.sh RUN.hlog SUMMARY.json
set -euo pipefail
hlog=$1
summary=$2
cd "$(dirname "$0")/.."

jar=/usr/share/java/hdrhistogram.jar
if [ ! -f "$jar" ] || ! command -v java >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libhdrhistogram-java default-jre-headless >/dev/null
fi
python3 -c "import hdrh" 2>/dev/null || python3 -m pip install -q hdrhistogram

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Values in the log's own unit (microseconds): a ratio of 1.
java -cp "$jar" org.HdrHistogram.HistogramLogProcessor -i "$hlog" -o "$work/java" -outputValueUnitRatio 1

python3 - "$hlog" "$summary" "$work/java.hgrm" "$work/java" <<'PY'
import json, re, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

hlog, summary_path, hgrm, intervals_out = sys.argv[1:]
s = json.load(open(summary_path))
lat = s["latency_us"]
count = s["requests"]["completed"] + s["requests"]["errors"]
failed = False

# Java: the whole-run distribution (.hgrm) and one line per interval.
text = open(hgrm).read()
footer = dict(re.findall(r"#\[(Max|Mean)\s*=\s*([0-9.]+)", text))
total = int(re.search(r"Total count\s*=\s*(\d+)", text).group(1))
rows = [(float(v), float(p)) for v, p in re.findall(r"^\s*([0-9.]+)\s+([0-9.]+)\s+\d+", text, re.M)]
below = max(v for v, p in rows if p < 0.99)
above = min(v for v, p in rows if p >= 0.99)
intervals = sum(1 for line in open(intervals_out) if re.match(r"^[0-9.]+: I:", line))
ok = (total == count and float(footer["Max"]) == lat["max"]
      and abs(float(footer["Mean"]) - lat["mean"]) <= 1e-3 * lat["mean"]
      and below <= lat["p99"] <= above)
failed |= not ok
print(f"- HdrHistogram's Java HistogramLogProcessor (2.1.11) read {intervals} intervals: "
      f"{total:,} values, max {float(footer['Max']):.0f} us, mean {float(footer['Mean']):.1f} us, "
      f"p99 between its rows {below:.0f} and {above:.0f} us; the summary: {count:,} requests, "
      f"max {lat['max']}, mean {lat['mean']:.1f}, p99 {lat['p99']} us: "
      f"{'consistent' if ok else '**they differ**'}.")

# Python: every interval added up, and the summary's own histogram decoded.
reader = HistogramLogReader(hlog, HdrHistogram(1, 3_600_000_000, 3))
added, n = HdrHistogram(1, 3_600_000_000, 3), 0
while (h := reader.get_next_interval_histogram()) is not None:
    added.add(h)
    n += 1
decoded = HdrHistogram.decode(s["histogram"])
ok = (added.get_total_count() == decoded.get_total_count() == count
      and added.get_value_at_percentile(99) == decoded.get_value_at_percentile(99) == lat["p99"])
failed |= not ok
print(f"- HdrHistogram's Python port read {n} intervals, {added.get_total_count():,} values, "
      f"p99 {added.get_value_at_percentile(99)} us; the summary's histogram: "
      f"{decoded.get_total_count():,} values, p99 {decoded.get_value_at_percentile(99)} us: "
      f"{'the same' if ok else '**they differ**'}.")
sys.exit(1 if failed else 0)
PY
