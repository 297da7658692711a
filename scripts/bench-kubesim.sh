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

# Not a target of the issue, but what a rehearsal with the article's delays costs: kubesim's CPU
# (utime + stime from /proc) from applying the 200-pod sample app to its rollout, then from
# scaling it to 970 pods (control plane untainted) to that rollout.
bin=target/release/kubesim
dir=$(mktemp -d)
"$bin" --scenario fixtures/scenarios/article.yaml --kubeconfig "$dir/kubeconfig" > "$dir/url" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do [ -s "$dir/url" ] && break; sleep 0.1; done
export KUBECONFIG=$dir/kubeconfig
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
a=$(ticks)
kubectl apply --server-side -f fixtures/manifests/sample-app.yaml > /dev/null
kubectl rollout status -n sample-app deployment/nginx > /dev/null
b=$(ticks)
kubectl patch node kind-control-plane -p '{"spec":{"taints":null}}' > /dev/null
start=$(date +%s.%N)
kubectl scale -n sample-app deployment/nginx --replicas=970 > /dev/null
kubectl rollout status -n sample-app deployment/nginx > /dev/null
end=$(date +%s.%N)
c=$(ticks)
python3 -c "print(f'with the article delays: 200 pods up in {($b - $a) / $hz:.2f} s of kubesim CPU; 200 -> 970 pods in {($c - $b) / $hz:.2f} s of CPU over a {$end - $start:.1f} s rollout')"
