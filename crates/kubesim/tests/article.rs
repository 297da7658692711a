//! The article scenario reproduces the seed article's cluster and its per-mesh figures: 10 nodes,
//! 200 sample pods, Linkerd's control plane at 120m/180Mi and 2m/10Mi per proxy, istiod at
//! 280m/420Mi and 8m/35Mi per proxy.

use std::path::Path;
use std::sync::Arc;

use kubesim::scenario::{Scenario, Timing, parse_manifests};
use kubesim::sim::{Cluster, Simulator};
use serde_json::Value;

fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

fn apply(
    cluster: &Cluster,
    sim: &mut Simulator,
    path: &str,
    namespace_patch: Option<(&str, &str)>,
) {
    for mut manifest in parse_manifests(&fixture(path)).unwrap() {
        if let (Some((key, value)), "Namespace") = (
            namespace_patch,
            manifest["kind"].as_str().unwrap_or_default(),
        ) {
            if key.starts_with("linkerd") {
                manifest["metadata"]["annotations"][key] = value.into();
            } else {
                manifest["metadata"]["labels"][key] = value.into();
            }
        }
        let rt = {
            let store = cluster.lock();
            store
                .registry
                .by_kind(
                    manifest["apiVersion"].as_str().unwrap(),
                    manifest["kind"].as_str().unwrap(),
                )
                .unwrap()
                .clone()
        };
        let ns = manifest["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        cluster.create(&rt, &ns, manifest).unwrap();
        sim.reconcile(tokio::time::Instant::now());
    }
}

/// (total millicores, total MiB) per namespace, and (mean millicores, mean MiB) per container name.
fn usage(cluster: &Cluster) -> (Vec<Value>, usize) {
    let store = cluster.lock();
    let pods_rt = store.registry.by_path("", "v1", "pods").unwrap().clone();
    let pods = store.list(&pods_rt, None);
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
    let nodes = store
        .list(store.registry.by_path("", "v1", "nodes").unwrap(), None)
        .len();
    (
        kubesim::metrics::pod_metrics(&cluster.scenario, &pods, later),
        nodes,
    )
}

fn sum(metrics: &[Value], keep: impl Fn(&Value, &Value) -> bool) -> (f64, f64, usize) {
    let (mut cpu, mut mem, mut n) = (0.0, 0.0, 0);
    for pod in metrics {
        for c in pod["containers"].as_array().unwrap() {
            if keep(pod, c) {
                let nanos: f64 = c["usage"]["cpu"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('n')
                    .parse()
                    .unwrap();
                let kib: f64 = c["usage"]["memory"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches("Ki")
                    .parse()
                    .unwrap();
                cpu += nanos / 1e6;
                mem += kib / 1024.0;
                n += 1;
            }
        }
    }
    (cpu, mem, n)
}

fn run(mesh: &str) -> (f64, f64, f64, f64, usize, usize) {
    let mut scenario = Scenario::parse(&fixture("fixtures/scenarios/article.yaml")).unwrap();
    scenario.timing = Timing::default();
    let cluster = Arc::new(Cluster::new(scenario).unwrap());
    let mut sim = Simulator::new(Arc::clone(&cluster));
    sim.reconcile(tokio::time::Instant::now());
    let (control_ns, proxy, injection) = match mesh {
        "linkerd" => ("linkerd", "linkerd-proxy", ("linkerd.io/inject", "enabled")),
        _ => (
            "istio-system",
            "istio-proxy",
            ("istio-injection", "enabled"),
        ),
    };
    apply(
        &cluster,
        &mut sim,
        &format!("fixtures/manifests/{mesh}-control-plane.yaml"),
        None,
    );
    apply(
        &cluster,
        &mut sim,
        "fixtures/manifests/sample-app.yaml",
        Some(injection),
    );
    let (metrics, nodes) = usage(&cluster);
    let (cp_cpu, cp_mem, _) = sum(&metrics, |p, _| p["metadata"]["namespace"] == control_ns);
    let (px_cpu, px_mem, proxies) = sum(&metrics, |p, c| {
        p["metadata"]["namespace"] == "sample-app" && c["name"] == proxy
    });
    let sample_pods = metrics
        .iter()
        .filter(|p| p["metadata"]["namespace"] == "sample-app")
        .count();
    #[allow(clippy::cast_precision_loss, reason = "a few hundred proxies")]
    let n = proxies as f64;
    assert_eq!(proxies, sample_pods, "every sample pod is injected");
    (cp_cpu, cp_mem, px_cpu / n, px_mem / n, sample_pods, nodes)
}

#[test]
fn linkerd_arm_matches_the_article() {
    let (cp_cpu, cp_mem, px_cpu, px_mem, pods, nodes) = run("linkerd");
    assert_eq!((pods, nodes), (200, 10));
    assert!((cp_cpu - 120.0).abs() <= 12.0, "control plane {cp_cpu}m");
    assert!((cp_mem - 180.0).abs() <= 2.0, "control plane {cp_mem}Mi");
    assert!((px_cpu - 2.0).abs() <= 0.1, "proxy mean {px_cpu}m");
    assert!((px_mem - 10.0).abs() <= 0.1, "proxy mean {px_mem}Mi");
}

#[test]
fn istio_arm_matches_the_article() {
    let (cp_cpu, cp_mem, px_cpu, px_mem, pods, nodes) = run("istio");
    assert_eq!((pods, nodes), (200, 10));
    assert!((cp_cpu - 280.0).abs() <= 20.0, "istiod {cp_cpu}m");
    assert!((cp_mem - 420.0).abs() <= 10.0, "istiod {cp_mem}Mi");
    assert!((px_cpu - 8.0).abs() <= 0.2, "proxy mean {px_cpu}m");
    assert!((px_mem - 35.0).abs() <= 0.2, "proxy mean {px_mem}Mi");
}
