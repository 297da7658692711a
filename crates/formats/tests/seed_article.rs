//! The seed article's arms (`fixtures/seed-article/`) read with this crate's types, and carry the
//! article's figures: the inputs `compare` must turn into the article's per-row deltas.

use std::path::{Path, PathBuf};

use meshbench_formats::mesh_install::{MESH_INSTALL, MeshInstallSummary};
use meshbench_formats::trafficgen::{TRAFFICGEN, TrafficgenSummary, decode_histogram};
use meshbench_formats::usage::{PodUsageRow, read_pod_csv};

fn arm(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/seed-article")
        .join(name)
}

struct Arm {
    pods: Vec<PodUsageRow>,
    load: TrafficgenSummary,
    install: MeshInstallSummary,
}

fn read(name: &str) -> Arm {
    let dir = arm(name);
    let pods = read_pod_csv(std::fs::File::open(dir.join("pods.csv")).unwrap()).unwrap();
    let load: TrafficgenSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trafficgen.json")).unwrap())
            .unwrap();
    TRAFFICGEN.check(&load.schema).unwrap();
    let install: MeshInstallSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mesh-install.json")).unwrap())
            .unwrap();
    MESH_INSTALL.check(&install.schema).unwrap();
    Arm {
        pods,
        load,
        install,
    }
}

/// Control-plane CPU (millicores) and memory (MiB) of every snapshot.
fn control_plane(a: &Arm, namespace: &str) -> Vec<(f64, f64)> {
    let mut by_time = std::collections::BTreeMap::new();
    for r in a
        .pods
        .iter()
        .filter(|r| r.namespace.as_deref() == Some(namespace))
    {
        let e = by_time.entry(r.timestamp).or_insert((0.0, 0.0));
        e.0 += r.cpu_millicores.millicores_f64();
        e.1 += r.memory_bytes as f64 / 1048576.0;
    }
    by_time.into_values().collect()
}

fn proxy_mean(a: &Arm, container: &str) -> (f64, f64) {
    let proxies: Vec<&PodUsageRow> = a
        .pods
        .iter()
        .filter(|r| {
            r.namespace.as_deref() == Some("sample-app")
                && r.container.as_deref() == Some(container)
        })
        .collect();
    let n = proxies.len() as f64;
    (
        proxies
            .iter()
            .map(|r| r.cpu_millicores.millicores_f64())
            .sum::<f64>()
            / n,
        proxies
            .iter()
            .map(|r| r.memory_bytes as f64 / 1048576.0)
            .sum::<f64>()
            / n,
    )
}

fn delta(linkerd: f64, istio: f64) -> f64 {
    (linkerd - istio) / istio * 100.0
}

#[test]
fn the_fixtures_carry_the_articles_figures_and_deltas() {
    let l = read("linkerd");
    let i = read("istio");
    let lcp = control_plane(&l, "linkerd");
    let icp = control_plane(&i, "istio-system");
    assert_eq!(lcp.len(), 4, "four snapshots");
    assert!(lcp.iter().all(|&s| s == (120.0, 180.0)), "{lcp:?}");
    assert!(icp.iter().all(|&s| s == (280.0, 420.0)), "{icp:?}");
    assert_eq!(proxy_mean(&l, "linkerd-proxy"), (2.0, 10.0));
    assert_eq!(proxy_mean(&i, "istio-proxy"), (8.0, 35.0));

    // The article's per-row deltas, as it rounds them.
    assert_eq!(delta(120.0, 280.0).round(), -57.0);
    assert_eq!(delta(180.0, 420.0).round(), -57.0);
    assert_eq!(delta(2.0, 8.0).round(), -75.0);
    assert_eq!(delta(10.0, 35.0).round(), -71.0);

    // p99 from the histograms, decoded here (they were encoded by HdrHistogram's Python port).
    let p99 = |a: &Arm| {
        let h = decode_histogram(&a.load.histogram).unwrap();
        assert_eq!(h.len(), a.load.requests.completed);
        h.value_at_quantile(0.99) as f64 / 1000.0
    };
    let (lp, ip) = (p99(&l), p99(&i));
    assert!(
        (lp - 112.0).abs() < 0.2 && (ip - 118.0).abs() < 0.2,
        "{lp} {ip}"
    );
    assert_eq!(delta(lp, ip).round(), -5.0);
    assert_eq!(
        l.load.latency_us.p99,
        Some(
            decode_histogram(&l.load.histogram)
                .unwrap()
                .value_at_quantile(0.99)
        )
    );

    assert_eq!((l.install.install_s, i.install.install_s), (45.0, 200.0));
    assert_eq!(
        (
            l.install.first_injected_pod_s,
            i.install.first_injected_pod_s
        ),
        (Some(12.0), Some(45.0))
    );
    assert_eq!(l.install.injection_coverage(), Some(1.0));
}
