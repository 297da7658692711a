//! The real kubectl against the kubesim binary: the fidelity test. kubectl must be installed;
//! these tests fail (they do not skip) when it is not.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use meshbench_formats::usage::{read_node_csv, read_pod_csv};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A kubesim process on a free loopback port, stopped with SIGTERM when dropped.
struct Sim {
    child: Child,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Sim {
    fn start(scenario: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubesim"))
            .arg("--scenario")
            .arg(root().join("fixtures/scenarios").join(scenario))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("kubesim starts");
        // The address line comes once the kubeconfig is written.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://127.0.0.1:") || line.starts_with("https://127.0.0.1:"),
            "{line:?}"
        );
        assert!(kubeconfig.exists());
        Sim {
            child,
            kubeconfig,
            dir,
        }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl must be installed: the kubesim fidelity tests run the real client")
    }

    /// kubectl that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "kubesim did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses kubectl top text with top-parse, as the pipeline does.
fn top_parse(dir: &Path, name: &str, text: &str) -> PathBuf {
    let input = dir.join(format!("{name}.txt"));
    let output = dir.join(format!("{name}.csv"));
    std::fs::write(&input, text).unwrap();
    let args = top_parse::Args::parse_from([
        "top-parse",
        "--run",
        "sim-1",
        "-o",
        output.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    top_parse::run(args).unwrap();
    output
}

#[test]
fn get_nodes_lists_the_scenario_nodes() {
    let sim = Sim::start("tiny.yaml", &[]);
    let out = sim.ok(&["get", "nodes"]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let nodes: Vec<(&str, &str, &str)> = lines[1..].iter().map(|l| (l[0], l[1], l[2])).collect();
    assert_eq!(
        nodes,
        [
            ("kind-control-plane", "Ready", "control-plane"),
            ("kind-worker", "Ready", "<none>"),
            ("kind-worker2", "Ready", "<none>")
        ]
    );
    assert!(lines[1..].iter().all(|l| l[4] == "v1.32.2"));
    assert!(sim.stop().success(), "SIGTERM is a clean shutdown");
}

const APP: &str = "
apiVersion: v1
kind: Namespace
metadata:
  name: sample-app
  annotations: {linkerd.io/inject: enabled}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: sample-app}
spec:
  replicas: 4
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - {name: nginx, image: 'nginx:1.27'}
";

/// Applies APP (server-side) and waits for its rollout; returns what rollout status printed.
fn deploy_app(sim: &Sim) -> String {
    let app = sim.dir.path().join("app.yaml");
    std::fs::write(&app, APP).unwrap();
    sim.ok(&["apply", "--server-side", "-f", app.to_str().unwrap()]);
    sim.ok(&[
        "rollout",
        "status",
        "-n",
        "sample-app",
        "deployment/nginx",
        "--timeout=20s",
    ])
}

#[test]
fn apply_rollout_wait_and_top_agree_with_the_scenario() {
    let sim = Sim::start("tiny.yaml", &[]);
    let mesh = root().join("fixtures/manifests/linkerd-control-plane.yaml");
    let out = sim.ok(&["apply", "--server-side", "-f", mesh.to_str().unwrap()]);
    assert!(
        out.contains("deployment.apps/linkerd-proxy-injector serverside-applied"),
        "{out}"
    );
    sim.ok(&[
        "rollout",
        "status",
        "-n",
        "linkerd",
        "deployment/linkerd-proxy-injector",
        "--timeout=20s",
    ]);

    let out = deploy_app(&sim);
    assert!(out.contains("successfully rolled out"), "{out}");
    let out = sim.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "--all",
        "-n",
        "sample-app",
        "--timeout=20s",
    ]);
    assert_eq!(
        out.lines().filter(|l| l.ends_with("condition met")).count(),
        4,
        "{out}"
    );
    let pods = sim.ok(&["get", "pods", "-n", "sample-app", "--no-headers"]);
    assert!(
        pods.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("2/2")),
        "injected:\n{pods}"
    );

    // Metrics appear once a window (1 s in the tiny scenario) has passed since the pods started.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = sim.ok(&["top", "pods", "-A", "--containers"]);
        if text.lines().filter(|l| l.starts_with("sample-app")).count() == 8 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics for the sample pods:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let rows = read_pod_csv(std::fs::File::open(top_parse(sim.dir.path(), "pods", &text)).unwrap())
        .unwrap();
    let sample: Vec<_> = rows
        .iter()
        .filter(|r| r.namespace.as_deref() == Some("sample-app"))
        .collect();
    assert_eq!(sample.len(), 8);
    for r in sample {
        let cpu = r.cpu_millicores.nanocores();
        match r.container.as_deref() {
            // 1m, 3Mi exactly.
            Some("nginx") => assert_eq!((cpu, r.memory_bytes), (1_000_000, 3 << 20)),
            // 2m ± 0.5m plus 1m per 1,000 req/s at 100 req/s, as kubectl rounds it: 2m or 3m.
            Some("linkerd-proxy") => {
                assert!((2_000_000..=3_000_000).contains(&cpu), "{cpu}");
                assert_eq!(r.memory_bytes, 10 << 20);
            }
            other => panic!("unexpected container {other:?}"),
        }
    }
    // The control plane is the three linkerd deployments (two containers or more each).
    let control: Vec<_> = rows
        .iter()
        .filter(|r| r.namespace.as_deref() == Some("linkerd"))
        .collect();
    assert_eq!(control.len(), 8, "{text}");

    let text = sim.ok(&["top", "nodes"]);
    let nodes =
        read_node_csv(std::fs::File::open(top_parse(sim.dir.path(), "nodes", &text)).unwrap())
            .unwrap();
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        // 50m ± 5m of overhead, plus the pods on the node.
        let cpu = n.cpu_millicores.unwrap().nanocores();
        assert!(cpu >= 45_000_000, "{n:?}");
        assert!(n.memory_bytes.unwrap() >= 300 << 20, "{n:?}");
    }
    let workers: i64 = nodes[1..]
        .iter()
        .map(|n| n.cpu_millicores.unwrap().nanocores())
        .sum();
    assert!(
        workers > nodes[0].cpu_millicores.unwrap().nanocores(),
        "the workload runs on workers"
    );

    // kubectl scale goes through the scale subresource.
    sim.ok(&[
        "scale",
        "-n",
        "sample-app",
        "deployment/nginx",
        "--replicas=2",
    ]);
    sim.ok(&[
        "rollout",
        "status",
        "-n",
        "sample-app",
        "deployment/nginx",
        "--timeout=20s",
    ]);
    let pods = sim.ok(&["get", "pods", "-n", "sample-app", "--no-headers"]);
    assert_eq!(pods.lines().count(), 2, "{pods}");
}

#[test]
fn kubectl_reports_the_servers_errors() {
    let sim = Sim::start("tiny.yaml", &[]);
    let manifest = sim.dir.path().join("d.yaml");
    let deploy = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: 'nginx:1.27'}}]}}\n"
        )
    };
    std::fs::write(&manifest, deploy(1)).unwrap();
    let path = manifest.to_str().unwrap();
    sim.ok(&["apply", "--server-side", "-f", path]);

    // Another manager changing an owned field: a 409 conflict naming the field and its owner.
    std::fs::write(&manifest, deploy(2)).unwrap();
    let out = sim.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        path,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    // Forced, it takes the field.
    sim.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        path,
    ]);
    let replicas = sim.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "2");

    // An unknown kind: kubectl's own "no matches" after discovery, as with a real server.
    std::fs::write(
        &manifest,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .unwrap();
    let out = sim.kubectl(&["apply", "--server-side", "-f", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no matches for kind \"Widget\" in version \"example.com/v1\""),
        "{err}"
    );

    // Malformed JSON through the raw API: a 400 BadRequest Status.
    std::fs::write(&manifest, "{not json").unwrap();
    let out = sim.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        path,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("BadRequest") || err.contains("json parse error"),
        "{err}"
    );

    // A replace carrying a stale resourceVersion: 409 Conflict.
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","resourceVersion":"1"}}"#,
    )
    .unwrap();
    let out = sim.kubectl(&["replace", "--raw", "/api/v1/namespaces/default", "-f", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the object has been modified"), "{err}");

    // Not found.
    let out = sim.kubectl(&["get", "pod", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );

    // Logs of a simulated pod: there are none, and the error says why.
    let pod = sim.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let out = sim.kubectl(&["logs", &pod]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kubesim runs no containers"), "{err}");
}

#[test]
fn a_bad_scenario_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(
        &scenario,
        "schema: meshbench/kubesim-scenario/v1\nseed: 1\nnodes:\n  - {name: a, cpu: 2x, memory: 1Gi}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .arg("--scenario")
        .arg(&scenario)
        .args(["--kubeconfig", dir.path().join("k").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("\"2x\"") && err.contains("line 4"),
        "{err}"
    );
    assert!(
        !dir.path().join("k").exists(),
        "no kubeconfig for a server that never started"
    );
}

#[test]
fn help_ends_with_the_pipeline_and_bad_flags_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let examples = help.find("Examples:").expect("an Examples block");
    assert!(help[examples..].contains("top-parse"), "{help}");
    let out = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn https_with_the_ca_in_the_kubeconfig() {
    let sim = Sim::start("tiny.yaml", &["--tls"]);
    let config = std::fs::read_to_string(&sim.kubeconfig).unwrap();
    assert!(
        config.contains("certificate-authority-data:")
            && config.contains("server: https://127.0.0.1:")
    );
    // kubectl verifies the server against that CA (no --insecure-skip-tls-verify).
    let out = sim.ok(&["get", "nodes", "--no-headers"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = sim.ok(&["top", "nodes", "--no-headers"]);
    assert_eq!(out.lines().count(), 3, "{out}");
}

/// Pod names of a 3-replica deployment on a fresh kubesim.
fn pod_names(extra: &[&str]) -> Vec<String> {
    let sim = Sim::start("tiny.yaml", extra);
    deploy_app(&sim);
    let out = sim.ok(&["get", "pods", "-n", "sample-app", "-o", "name"]);
    out.lines().map(str::to_owned).collect()
}

#[test]
fn runs_are_reproducible_and_seed_makes_another_repetition() {
    let first = pod_names(&[]);
    assert_eq!(first.len(), 4);
    assert_eq!(
        pod_names(&[]),
        first,
        "the same scenario and requests give the same names"
    );
    assert_ne!(
        pod_names(&["--seed", "2"]),
        first,
        "another seed, other names"
    );
}

const WORKLOADS: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: 'postgres:16'}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: 'busybox:1.36'}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: c, image: 'busybox:1.36'}]}
";

#[test]
fn stateful_sets_daemon_sets_and_jobs_roll_out() {
    let sim = Sim::start("tiny.yaml", &[]);
    let manifest = sim.dir.path().join("workloads.yaml");
    std::fs::write(&manifest, WORKLOADS).unwrap();
    sim.ok(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]);
    // rollout status needs the RollingUpdate strategies the API server defaults.
    let out = sim.ok(&["rollout", "status", "statefulset/db", "--timeout=20s"]);
    assert!(out.contains("3 new pods have been updated"), "{out}");
    let out = sim.ok(&["rollout", "status", "daemonset/agent", "--timeout=20s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let out = sim.ok(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "--timeout=20s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    // Stateful pods are named by ordinal; the daemon set covers the two untainted workers.
    let pods = sim.ok(&[
        "get",
        "pods",
        "--no-headers",
        "-o",
        "custom-columns=NAME:.metadata.name",
    ]);
    let names: Vec<&str> = pods.lines().collect();
    for n in ["db-0", "db-1", "db-2"] {
        assert!(names.contains(&n), "{pods}");
    }
    assert_eq!(
        names.iter().filter(|n| n.starts_with("agent-")).count(),
        2,
        "{pods}"
    );
}
