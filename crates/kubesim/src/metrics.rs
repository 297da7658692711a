//! `metrics.k8s.io/v1beta1`: usage per container from the scenario's models, changing once per
//! metrics window as metrics-server's does, and node usage as its pods plus the node overhead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meshbench_formats::quantity::Quantity;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use crate::scenario::{Scenario, Usage};
use crate::store::{fnv1a, rfc3339};

/// The end of the current metrics window, and its index since the epoch.
pub fn window_end(window: Duration, now: jiff::Timestamp) -> (jiff::Timestamp, i64) {
    let step = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
    let index = now.as_millisecond().div_euclid(step);
    let end = jiff::Timestamp::from_millisecond(index * step).unwrap_or(now);
    (end, index)
}

/// A generator for one thing in one window, from a hash that is stable across Rust releases.
fn draw(seed: u64, parts: &[&str], index: i64) -> StdRng {
    let (seed, index) = (seed.to_le_bytes(), index.to_le_bytes());
    let mut all: Vec<&[u8]> = vec![&seed, &index];
    all.extend(parts.iter().map(|p| p.as_bytes()));
    StdRng::seed_from_u64(fnv1a(&all))
}

/// `value ± jitter`, uniformly, never below zero.
fn around(rng: &mut StdRng, value: Quantity, jitter: Quantity) -> i128 {
    let (v, j) = (value.nanos(), jitter.nanos());
    if j == 0 {
        return v;
    }
    v.saturating_add(rng.random_range(-j..=j)).max(0)
}

/// `per` for each 1,000 req/s of load, in nano-units.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "usage terms are far below 2^53 nano-units, the scenario checks rps is finite, and the result is rounded"
)]
fn load_term(per: Quantity, rps: f64) -> i128 {
    (per.nanos() as f64 * rps / 1000.0).round() as i128
}

/// CPU in nanocores and memory in bytes of one container in one window.
pub fn container_usage(
    scenario: &Scenario,
    namespace: &str,
    pod_uid: &str,
    container: &str,
    index: i64,
) -> (i128, i128) {
    let (usage, cpu_per_krps, memory_per_krps) = scenario.model_for(namespace, container);
    let scaled = |per: Quantity| load_term(per, scenario.load.rps);
    let mut rng = draw(scenario.seed, &[namespace, pod_uid, container], index);
    // Saturating: a scenario may say 9E cores and 1e300 req/s; its numbers are then absurd, but
    // the server answers.
    let cpu = around(&mut rng, usage.cpu, usage.cpu_jitter).saturating_add(scaled(cpu_per_krps));
    let memory =
        around(&mut rng, usage.memory, usage.memory_jitter).saturating_add(scaled(memory_per_krps));
    (cpu, memory / 1_000_000_000)
}

fn node_overhead(scenario: &Scenario, node: &str, index: i64) -> (i128, i128) {
    let Usage {
        cpu,
        cpu_jitter,
        memory,
        memory_jitter,
    } = scenario.node_overhead;
    let mut rng = draw(scenario.seed, &["node", node], index);
    (
        around(&mut rng, cpu, cpu_jitter),
        around(&mut rng, memory, memory_jitter) / 1_000_000_000,
    )
}

/// The largest quantity the metrics API carries: Kubernetes holds a quantity's value in an
/// int64 (kubectl shows larger ones wrapped).
const API_MAX: i128 = i64::MAX as i128;

fn cpu_text(nanocores: i128) -> String {
    format!("{}n", nanocores.min(API_MAX))
}

/// metrics-server reports memory in Ki.
fn memory_text(bytes: i128) -> String {
    format!("{}Ki", bytes.min(API_MAX) / 1024)
}

fn started_by(pod: &Value, end: jiff::Timestamp) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter().all(|c| {
                    c.pointer("/state/running/startedAt")
                        .and_then(Value::as_str)
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .is_some_and(|t| t <= end)
                })
            })
}

/// Each container's name, CPU (nanocores) and memory (bytes) in window `index`.
fn pod_usage<'p>(scenario: &Scenario, pod: &'p Value, index: i64) -> Vec<(&'p str, i128, i128)> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let (cpu, memory) = container_usage(scenario, ns, uid, name, index);
            (name, cpu, memory)
        })
        .collect()
}

/// What every metrics object of one answer shares: window end and index, the `window`
/// field, and the timestamps as text.
struct Window {
    index: i64,
    end: jiff::Timestamp,
    window: String,
    timestamp: String,
    created: String,
}

impl Window {
    /// The timestamp of what was scraped from `node`: metrics-server scrapes each node's kubelet
    /// on its own, so a sample's objects carry timestamps up to a few seconds apart (whole
    /// seconds, as it prints them). Here 0-2 s before the window's end, fixed per node and seed,
    /// and less than half the window.
    fn stamp_for(&self, scenario: &Scenario, node: &str) -> String {
        let half = i64::try_from(scenario.metrics_window.as_secs() / 2).unwrap_or(0);
        let skew = (fnv1a(&[&scenario.seed.to_le_bytes(), node.as_bytes()]) % 3)
            .try_into()
            .unwrap_or(0i64)
            .min(half);
        if skew == 0 {
            return self.timestamp.clone();
        }
        rfc3339(
            self.end
                .checked_sub(jiff::SignedDuration::from_secs(skew))
                .unwrap_or(self.end),
        )
    }

    fn at(scenario: &Scenario, now: jiff::Timestamp) -> Window {
        let (end, index) = window_end(scenario.metrics_window, now);
        Window {
            index,
            end,
            window: format!("{}s", scenario.metrics_window.as_secs_f64()),
            timestamp: rfc3339(end),
            created: rfc3339(now),
        }
    }
}

/// A `PodMetrics` for each running pod that had started by the window's end (younger pods have
/// no metrics yet, as with metrics-server).
pub fn pod_metrics(scenario: &Scenario, pods: &[Arc<Value>], now: jiff::Timestamp) -> Vec<Value> {
    let w = Window::at(scenario, now);
    pods.iter()
        .filter(|p| started_by(p, w.end))
        .map(|pod| {
            let containers: Vec<Value> = pod_usage(scenario, pod, w.index)
                .into_iter()
                .map(|(name, cpu, memory)| {
                    json!({"name": name, "usage": {"cpu": cpu_text(cpu), "memory": memory_text(memory)}})
                })
                .collect();
            json!({
                "kind": "PodMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"],
                    "creationTimestamp": w.created, "labels": pod["metadata"]["labels"]},
                "timestamp": w.stamp_for(scenario, pod["spec"]["nodeName"].as_str().unwrap_or_default()),
                "window": w.window,
                "containers": containers,
            })
        })
        .collect()
}

/// A `NodeMetrics` per node: its running pods plus the scenario's node overhead.
pub fn node_metrics(
    scenario: &Scenario,
    nodes: &[Arc<Value>],
    pods: &[Arc<Value>],
    now: jiff::Timestamp,
) -> Vec<Value> {
    let w = Window::at(scenario, now);
    // Pod usage summed per node in one pass over the pods.
    let mut per_node: HashMap<&str, (i128, i128)> = HashMap::new();
    for pod in pods.iter().filter(|p| started_by(p, w.end)) {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        let total = per_node.entry(node).or_default();
        for (_, cpu, memory) in pod_usage(scenario, pod, w.index) {
            total.0 = total.0.saturating_add(cpu);
            total.1 = total.1.saturating_add(memory);
        }
    }
    nodes
        .iter()
        .map(|node| {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            let (overhead_cpu, overhead_memory) = node_overhead(scenario, name, w.index);
            let (cpu, memory) = per_node.get(name).copied().unwrap_or_default();
            json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": name, "creationTimestamp": w.created, "labels": node["metadata"]["labels"]},
                "timestamp": w.stamp_for(scenario, name),
                "window": w.window,
                "usage": {
                    "cpu": cpu_text(cpu.saturating_add(overhead_cpu)),
                    "memory": memory_text(memory.saturating_add(overhead_memory)),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An absurd scenario gets the largest numbers the metrics API carries, not a panic of the
    /// server's thread (a request for metrics panicked on an overflow before).
    #[test]
    fn huge_usage_terms_saturate() {
        let scenario = |big: &str| {
            Scenario::parse(&format!(
                "schema: meshbench/kubesim-scenario/v1\nnodes: [{{name: n, cpu: {big}, memory: {big}}}]\n\
                 nodeOverhead: {{cpu: {big}, cpuJitter: {big}, memory: {big}, memoryJitter: {big}}}\n\
                 load: {{rps: 1e300}}\n\
                 usage: [{{container: c, cpu: {big}, cpuJitter: {big}, memory: {big}, cpuPerKrps: {big}, memoryPerKrps: {big}}}]\n",
            ))
        };
        // Past what Kubernetes holds: refused, with the reason.
        let err = scenario("9E").unwrap_err();
        assert!(err.contains("\"9E\": too large"), "{err}");
        let s = scenario("9P").unwrap();
        let (cpu, memory) = container_usage(&s, "ns", "uid", "c", 0);
        assert_eq!((cpu, memory > 0), (i128::MAX, true));
        let now: jiff::Timestamp = "2026-11-26T08:00:07Z".parse().unwrap();
        let pod = Arc::new(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid"},
            "spec": {"nodeName": "n", "containers": [{"name": "c"}, {"name": "d"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"state": {"running": {"startedAt": "2026-11-26T07:00:00Z"}}}]},
        }));
        let node = Arc::new(serde_json::json!({"metadata": {"name": "n"}}));
        let metrics = node_metrics(&s, &[node], &[Arc::clone(&pod), pod], now);
        assert_eq!(metrics[0]["usage"]["cpu"], format!("{}n", i64::MAX));
    }

    #[test]
    fn each_node_is_scraped_at_its_own_whole_second() {
        let scenario = |window: &str| {
            Scenario::parse(&format!(
                "schema: meshbench/kubesim-scenario/v1\nmetricsWindow: {window}\nnodes: [{{name: n, cpu: 2, memory: 4Gi}}]\n"
            ))
            .unwrap()
        };
        let now: jiff::Timestamp = "2026-11-26T08:00:07.250Z".parse().unwrap();
        let s = scenario("15s");
        let w = Window::at(&s, now);
        assert_eq!(w.timestamp, "2026-11-26T08:00:00Z");
        let stamps: std::collections::BTreeSet<String> = (0..12)
            .map(|i| w.stamp_for(&s, &format!("kind-worker{i}")))
            .collect();
        // Up to 2 s before the window's end, on whole seconds, and not all the same.
        assert!(stamps.len() > 1, "{stamps:?}");
        for t in &stamps {
            assert!(
                [
                    "2026-11-26T07:59:58Z",
                    "2026-11-26T07:59:59Z",
                    "2026-11-26T08:00:00Z"
                ]
                .contains(&t.as_str()),
                "{t}"
            );
        }
        // The same node, the same skew: one sample's pods on a node share its timestamp.
        assert_eq!(
            w.stamp_for(&s, "kind-worker3"),
            w.stamp_for(&s, "kind-worker3")
        );
        // A window of 1 s leaves no room for skew.
        let s = scenario("1s");
        let w = Window::at(&s, now);
        assert_eq!(w.stamp_for(&s, "kind-worker4"), w.timestamp);
    }

    #[test]
    fn usage_follows_the_model_and_is_stable_within_a_window() {
        let s = Scenario::parse(
            "schema: meshbench/kubesim-scenario/v1\nseed: 3\nnodes: [{name: n, cpu: 2, memory: 4Gi}]\nload: {rps: 2000}\nusage:\n  - {container: linkerd-proxy, cpu: 2m, cpuJitter: 500u, memory: 10Mi, cpuPerKrps: 1m}\n",
        )
        .unwrap();
        for index in 0..200 {
            let (cpu, mem) = container_usage(&s, "app", "uid-1", "linkerd-proxy", index);
            // 2m ± 0.5m, plus 1m per 1,000 req/s at 2,000 req/s.
            assert!((3_500_000..=4_500_000).contains(&cpu), "{cpu}");
            assert_eq!(mem, 10 << 20);
            assert_eq!(
                container_usage(&s, "app", "uid-1", "linkerd-proxy", index).0,
                cpu
            );
        }
        let (cpu, mem) = container_usage(&s, "app", "uid-1", "nginx", 0);
        assert_eq!((cpu, mem), (1_000_000, 8 << 20), "the default model");
    }

    #[test]
    fn windows_align_to_the_resolution() {
        let t: jiff::Timestamp = "2026-11-26T10:00:17.5Z".parse().unwrap();
        let (end, _) = window_end(Duration::from_secs(15), t);
        assert_eq!(end.to_string(), "2026-11-26T10:00:15Z");
    }
}
