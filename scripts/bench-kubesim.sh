#!/usr/bin/env bash
# Benchmark for issue 5: kubesim on the article scenario with --instant.
#   - a 200-pod deployment observed all Ready through a watch (target < 200 ms);
#   - 10 nodes and 1,000 pods: peak RSS (target < 100 MB);
#   - kubectl top pods -A --containers on them (target < 100 ms).
#   scripts/bench-kubesim.sh
# Needs kubectl (1.32 here). Prints the machine and date, then the three results.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "bench-kubesim: kubectl is required" >&2; exit 1; }
cargo build --quiet --release -p kubesim
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); kubectl $(kubectl version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
cargo bench --quiet -p kubesim --bench kubesim 2>/dev/null | grep -v '^$'
