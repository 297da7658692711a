//! kubesim's performance targets (issue 5), measured against the release binary:
//!
//! 1. a 200-pod deployment applied to the article scenario with zero delays (`--instant`) is
//!    observed all Ready through a watch within 200 ms;
//! 2. 10 nodes and 1,000 pods in under 100 MB RSS;
//! 3. `kubectl top pods -A --containers` answers within 100 ms.
//!
//! Run with `scripts/bench-kubesim.sh` (or `cargo bench -p kubesim --bench kubesim`); results go
//! to docs/benchmarks.md by hand, with the machine and date.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

const REPEATS: usize = 7;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Sim {
    child: Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sim {
    fn start() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubesim"))
            .arg("--scenario")
            .arg(root().join("fixtures/scenarios/article.yaml"))
            .arg("--instant")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Sim {
            child,
            kubeconfig,
            _dir: dir,
        }
    }

    async fn client(&self) -> kube::Client {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(&text).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deployment(replicas: u32) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx", "namespace": "sample-app"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "resources": {"requests": {"cpu": "10m"}}}]}}}})
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Applies the deployment with `replicas` and returns how long until a watch has seen that many
/// distinct Ready pods.
async fn apply_until_ready(client: &kube::Client, replicas: u32) -> Duration {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "sample-app");
    let rv = pods
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = Box::pin(
        pods.watch(&WatchParams::default().timeout(60), &rv)
            .await
            .unwrap(),
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "sample-app");
    let start = Instant::now();
    deployments
        .patch(
            "nginx",
            &PatchParams::apply("bench").force(),
            &Patch::Apply(deployment(replicas)),
        )
        .await
        .unwrap();
    let mut ready_pods = std::collections::HashSet::new();
    let want = usize::try_from(replicas).unwrap();
    while let Some(event) = stream.try_next().await.unwrap() {
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = event
            && ready(&p)
        {
            ready_pods.insert(p.metadata.name.unwrap());
        }
        if ready_pods.len() >= want {
            return start.elapsed();
        }
    }
    panic!(
        "the watch ended with {} of {want} pods Ready",
        ready_pods.len()
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. 200 pods Ready, observed through a watch; a fresh kubesim each time.
    let mut times = Vec::new();
    for _ in 0..REPEATS {
        let sim = Sim::start();
        let t = runtime.block_on(async {
            let client = sim.client().await;
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sample-app"}});
            let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            namespaces.patch("sample-app", &PatchParams::apply("bench"), &Patch::Apply(ns)).await.unwrap();
            apply_until_ready(&client, 200).await
        });
        times.push(t);
    }
    println!(
        "200-pod deployment all Ready through a watch: median {:.1} ms, max {:.1} ms over {REPEATS} runs (target < 200 ms)",
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3
    );

    // 2. 1,000 pods on 10 nodes: peak RSS.
    let sim = Sim::start();
    runtime.block_on(async {
        let client = sim.client().await;
        // 1,000 pods need more than the nine workers' 990 pod slots (kind's 110 per node): let
        // the control plane take pods too, as `kubectl taint nodes --all
        // node-role.kubernetes.io/control-plane-` does.
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        nodes
            .patch("kind-control-plane", &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": null}})))
            .await
            .unwrap();
        let all: Api<Pod> = Api::all(client.clone());
        let system = u32::try_from(all.list(&ListParams::default()).await.unwrap().items.len()).unwrap();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sample-app",
            "annotations": {"linkerd.io/inject": "enabled"}}});
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces.patch("sample-app", &PatchParams::apply("bench"), &Patch::Apply(ns)).await.unwrap();
        let t = apply_until_ready(&client, 1000 - system).await;
        let total = all.list(&ListParams::default()).await.unwrap().items.len();
        println!(
            "{total} pods on 10 nodes: peak RSS {:.1} MB (target < 100 MB); scaling to them took {:.0} ms",
            f64::from(u32::try_from(sim.peak_rss_kib()).unwrap()) / 1024.0,
            t.as_secs_f64() * 1e3
        );
    });

    // 3. kubectl top pods -A --containers on those 1,000 pods (after a metrics window).
    std::thread::sleep(Duration::from_secs(16));
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..21 {
        let start = Instant::now();
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args(["top", "pods", "-A", "--containers"])
            .output()
            .expect("kubectl is installed");
        times.push(start.elapsed());
        assert!(out.status.success());
        lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    }
    let mut version = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args(["version", "--client"])
            .output()
            .unwrap();
        version.push(start.elapsed());
    }
    println!(
        "kubectl top pods -A --containers ({} rows): median {:.1} ms, max {:.1} ms over 21 runs (target < 100 ms); kubectl version --client alone: {:.1} ms",
        lines - 1,
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3,
        median(version).as_secs_f64() * 1e3
    );
}
