//! `top-parse --from-cluster` against kubesim: the rows the text parser would write, with the
//! server's timestamps and the scenario's usage.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use meshbench_formats::usage::{read_node_csv, read_pod_csv};
use serde_json::json;

/// kubesim on its own thread and runtime (top-parse builds its own runtime, so the test is sync).
struct Sim {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    fn start(replicas: u32) -> Sim {
        let (tx, rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/scenarios/tiny.yaml");
                let scenario = kubesim::Scenario::load(Path::new(path)).unwrap();
                let server = kubesim::Server::start(scenario, "127.0.0.1:0".parse().unwrap()).await.unwrap();
                let cluster = server.cluster();
                let deployments = cluster.lock().registry.by_path("apps", "v1", "deployments").unwrap().clone();
                cluster
                    .create(
                        &deployments,
                        "sample-app",
                        json!({"metadata": {"name": "nginx"}, "spec": {"replicas": replicas,
                            "selector": {"matchLabels": {"app": "nginx"}},
                            "template": {"metadata": {"labels": {"app": "nginx"}},
                                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}),
                    )
                    .unwrap();
                tx.send(server.url()).unwrap();
                let _ = stopped.await;
                server.shutdown().await;
            });
        });
        let url = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // Metrics cover pods started before the end of the current window (1 s here).
        std::thread::sleep(Duration::from_millis(1100));
        Sim {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A kubeconfig with a dead context first and kubesim's second, current one as given.
    fn kubeconfig(&self, dir: &Path, current: &str) -> std::path::PathBuf {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {{server: 'http://127.0.0.1:9'}}\n- name: sim\n  cluster: {{server: '{}'}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: dead\n  context: {{cluster: dead, user: u}}\n- name: kubesim\n  context: {{cluster: sim, user: u, namespace: sample-app}}\ncurrent-context: {current}\n",
            self.url
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `top-parse --from-cluster --kubeconfig KUBECONFIG ARGS…`, with no KUBECONFIG from outside.
fn from_cluster(kubeconfig: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_top-parse"))
        .args(["--from-cluster", "--kubeconfig", kubeconfig])
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn succeeded(result: &std::process::Output) {
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn samples_pods_per_container_with_server_timestamps() {
    let sim = Sim::start(3);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = sim.kubeconfig(dir.path(), "kubesim");
    let out = dir.path().join("pods.csv");
    let result = from_cluster(
        kubeconfig.to_str().unwrap(),
        &[
            "-A",
            "--containers",
            "--samples",
            "2",
            "--interval",
            "1100ms",
            "--run",
            "sim-1",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    succeeded(&result);
    let rows = read_pod_csv(std::fs::File::open(&out).unwrap()).unwrap();
    let nginx: Vec<_> = rows
        .iter()
        .filter(|r| r.container.as_deref() == Some("nginx"))
        .collect();
    assert_eq!(nginx.len(), 6, "three pods, two samples");
    let stamps: std::collections::BTreeSet<_> =
        nginx.iter().map(|r| r.timestamp.unwrap()).collect();
    assert_eq!(
        stamps.len(),
        2,
        "one server timestamp per sample: {stamps:?}"
    );
    for r in &nginx {
        assert_eq!(r.run, "sim-1");
        assert_eq!(r.namespace.as_deref(), Some("sample-app"));
        // The tiny scenario's nginx model: exactly 1m and 3Mi, unrounded.
        assert_eq!(
            (r.cpu_millicores.nanocores(), r.memory_bytes),
            (1_000_000, 3 << 20)
        );
        // metricsWindow 1s: timestamps fall on whole seconds.
        assert_eq!(r.timestamp.unwrap().subsec_nanosecond(), 0);
    }
}

#[test]
fn the_context_decides_the_cluster_and_namespace() {
    let sim = Sim::start(2);
    let dir = tempfile::tempdir().unwrap();
    // The current context points at a dead port; --context picks kubesim, whose namespace is
    // sample-app, so pod rows are per pod and carry no namespace (as `kubectl top pod`).
    let kubeconfig = sim.kubeconfig(dir.path(), "dead");
    let out = dir.path().join("pods.csv");
    let k = kubeconfig.to_str().unwrap();
    let result = from_cluster(k, &["--context", "kubesim", "-o", out.to_str().unwrap()]);
    succeeded(&result);
    let rows = read_pod_csv(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.namespace.is_none() && r.container.is_none())
    );

    // A label selector, as kubectl top -l: the nginx pods match, nothing else does.
    let selected = dir.path().join("selected.csv");
    for (selector, want) in [("app=nginx", 2), ("app in (other)", 0)] {
        let result = from_cluster(
            k,
            &[
                "--context",
                "kubesim",
                "-A",
                "-l",
                selector,
                "-o",
                selected.to_str().unwrap(),
            ],
        );
        succeeded(&result);
        assert_eq!(
            read_pod_csv(std::fs::File::open(&selected).unwrap())
                .unwrap()
                .len(),
            want,
            "{selector}"
        );
        // No rows is said on stderr, not left to a header-only file.
        let err = String::from_utf8_lossy(&result.stderr);
        assert_eq!(
            err.contains("the metrics API lists no pods matching"),
            want == 0,
            "{selector}: {err}"
        );
    }

    // Without --context, the dead cluster: a clear error, exit 1, and no output file.
    let out2 = dir.path().join("none.csv");
    let result = from_cluster(k, &["-o", out2.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(1));
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(!out2.exists());
}

#[test]
fn samples_nodes_with_percentages_of_allocatable() {
    let sim = Sim::start(1);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = sim.kubeconfig(dir.path(), "kubesim");
    let out = dir.path().join("nodes.csv");
    let result = from_cluster(
        kubeconfig.to_str().unwrap(),
        &["--nodes", "-o", out.to_str().unwrap()],
    );
    succeeded(&result);
    let rows = read_node_csv(std::fs::File::open(&out).unwrap()).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(names, ["kind-control-plane", "kind-worker", "kind-worker2"]);
    for r in &rows {
        // 50m ± 5m of 2 cores is 2%; 300Mi (plus pods) of 4Gi is 7% or 8%.
        let cpu = r.cpu_millicores.unwrap().nanocores();
        let milli = (cpu + 999_999) / 1_000_000;
        assert_eq!(
            r.cpu_percent,
            Some(u32::try_from(milli * 100 / 2000).unwrap()),
            "{r:?}"
        );
        assert!(matches!(r.memory_percent, Some(7 | 8)), "{r:?}");
    }
}

/// `top-parse --from-cluster --run live ARGS…` against `sim` (kubeconfig in `dir`), running,
/// sampling three pods to stdout: the process, the rest of its stdout's lines, and the first
/// sample's four (the header, then rows labelled `live`) once they are out.
fn sampling(
    sim: &Sim,
    dir: &Path,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    Vec<String>,
) {
    use std::io::BufRead as _;
    let kubeconfig = sim.kubeconfig(dir, "kubesim");
    let mut child = Command::new(env!("CARGO_BIN_EXE_top-parse"))
        .args([
            "--from-cluster",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .args(args)
        .args(["--run", "live"])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = lines.by_ref().take(4).map(Result::unwrap).collect();
    assert!(
        first[1..].iter().all(|l| l.starts_with("live,")),
        "{first:?}"
    );
    (child, lines, first)
}

#[test]
fn each_sample_is_written_before_the_wait_for_the_next() {
    // Sampling to stdout for a while: the first sample's rows are out while top-parse still
    // waits for the second, not held until the run ends.
    let sim = Sim::start(3);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, first) = sampling(
        &sim,
        dir.path(),
        &["--samples", "3", "--interval", "1100ms"],
    );
    assert!(first[0].starts_with("run,timestamp,"), "{first:?}");
    let first_at = std::time::Instant::now();
    let rest = lines.map(Result::unwrap).count();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, 6, "two more samples of three pods");
    // Two more intervals of 1.1 s followed the first sample.
    assert!(
        first_at.elapsed() > Duration::from_secs(1),
        "the first sample came out only {:?} before the run ended",
        first_at.elapsed()
    );
}

#[test]
fn ctrl_c_or_sigterm_while_sampling_writes_the_samples_taken() {
    use nix::sys::signal::Signal;
    for (signal, code, said) in [
        (Signal::SIGINT, 130, "interrupted (Ctrl-C)"),
        (Signal::SIGTERM, 143, "terminated (SIGTERM)"),
    ] {
        stopped_while_sampling(signal, code, said);
    }
}

fn stopped_while_sampling(signal: nix::sys::signal::Signal, code: i32, said: &str) {
    let sim = Sim::start(3);
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, _) = sampling(&sim, dir.path(), &["--samples", "100", "--interval", "1s"]);
    // Waiting for the second sample now, with the signals watched.
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        signal,
    )
    .unwrap();
    let rest = lines.map(Result::unwrap).count();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(
        err.contains(&format!("{said} while reading the cluster")),
        "{err}"
    );
    assert_eq!(rest % 3, 0, "whole samples only");
    assert!(rest < 99 * 3);
}
