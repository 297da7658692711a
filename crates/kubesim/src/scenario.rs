//! The scenario file: the simulated cluster's nodes, timings, usage models and initial objects.
//! Its format is documented in docs/kubesim.md.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshbench_formats::quantity::Quantity;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// `meshbench/kubesim-scenario/v1`.
    pub schema: String,
    /// Seeds every random choice: names, delays, usage noise.
    #[serde(default)]
    pub seed: u64,
    /// What `/version` reports and nodes' kubelets claim.
    #[serde(default = "default_version")]
    pub kubernetes_version: String,
    pub nodes: Vec<NodePool>,
    /// Usage of each node outside its pods (kubelet, container runtime, OS).
    #[serde(default)]
    pub node_overhead: Usage,
    #[serde(default)]
    pub timing: Timing,
    /// metrics-server's resolution: usage changes once per window; timestamps end windows.
    #[serde(default = "default_window", deserialize_with = "duration")]
    pub metrics_window: Duration,
    /// The load the workload serves, which per-request usage terms scale with.
    #[serde(default)]
    pub load: Load,
    /// Usage models, first match wins.
    #[serde(default)]
    pub usage: Vec<UsageModel>,
    /// Containers no model names.
    #[serde(default = "default_usage")]
    pub default_usage: Usage,
    /// The mesh injectors, by mesh name (`linkerd`, `istio`); defaults as the real charts.
    #[serde(default)]
    pub meshes: BTreeMap<String, Injector>,
    /// Manifests (YAML, `---`-separated) created at start, after nodes and system namespaces.
    #[serde(default)]
    pub bootstrap: String,
}

/// N nodes of one shape. Named `name`, `name2`, `name3`… as kind names workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodePool {
    pub name: String,
    #[serde(default = "one")]
    pub count: u32,
    /// `control-plane` or `worker`.
    #[serde(default = "worker")]
    pub role: String,
    #[serde(deserialize_with = "quantity")]
    pub cpu: Quantity,
    #[serde(deserialize_with = "quantity")]
    pub memory: Quantity,
    #[serde(default = "max_pods")]
    pub pods: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Delays of a pod's life, each `mean ± jitter` drawn uniformly from the seeded generator.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timing {
    /// From creation to a node being assigned.
    #[serde(default)]
    pub schedule: Delay,
    /// Image pull (ContainerCreating).
    #[serde(default)]
    pub pull: Delay,
    /// From pulled to Running.
    #[serde(default)]
    pub start: Delay,
    /// From Running to Ready.
    #[serde(default)]
    pub readiness: Delay,
    /// How long a Job's pod runs before it succeeds.
    #[serde(default)]
    pub job_run: Delay,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    #[serde(default, deserialize_with = "duration")]
    pub mean: Duration,
    #[serde(default, deserialize_with = "duration")]
    pub jitter: Duration,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Load {
    /// Requests per second through the workload.
    #[serde(default)]
    pub rps: f64,
}

/// Usage: CPU and memory, each `value ± jitter`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Usage {
    #[serde(default, deserialize_with = "quantity")]
    pub cpu: Quantity,
    #[serde(default, deserialize_with = "quantity")]
    pub cpu_jitter: Quantity,
    #[serde(default, deserialize_with = "quantity")]
    pub memory: Quantity,
    #[serde(default, deserialize_with = "quantity")]
    pub memory_jitter: Quantity,
}

/// Usage of the containers a model matches: a fixed part, plus a part per 1,000 req/s of load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageModel {
    pub container: String,
    /// Only in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub usage: Usage,
    #[serde(default, deserialize_with = "quantity")]
    pub cpu_per_krps: Quantity,
    #[serde(default, deserialize_with = "quantity")]
    pub memory_per_krps: Quantity,
}

/// How a mesh's injector is recognised and what it injects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Injector {
    /// Namespace and name of the injector's Deployment; injection starts once it is Ready.
    pub namespace: String,
    pub deployment: String,
    pub proxy_image: String,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        Scenario::parse_named(&text, &name).map_err(|message| ScenarioError::Invalid {
            path: name,
            message,
        })
    }

    /// Parses and checks scenario text; errors carry the line where the parser has one.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse_named(text, "<scenario>")
    }

    /// As [`Scenario::parse`], with `name` (the file) in the excerpt a YAML error shows.
    fn parse_named(text: &str, name: &str) -> Result<Scenario, String> {
        let scenario: Scenario = serde_saphyr::from_str(text).map_err(|e| {
            let shown =
                e.render_with_options(serde_saphyr::render_options! { source_name: Some(name) });
            // The excerpt starts "error: ", which the tool's own "error:" already says.
            match shown.strip_prefix("error: ") {
                Some(rest) => rest.to_owned(),
                None => shown,
            }
        })?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        meshbench_formats::schema::KUBESIM_SCENARIO
            .check(&self.schema)
            .map_err(|e| format!("schema: {e}"))?;
        if self.nodes.is_empty() {
            return Err("nodes: at least one node pool is required".to_owned());
        }
        for pool in &self.nodes {
            if pool.count == 0 {
                return Err(format!("nodes: pool {:?} has count 0", pool.name));
            }
            if !matches!(pool.role.as_str(), "control-plane" | "worker") {
                return Err(format!(
                    "nodes: pool {:?}: role must be control-plane or worker, not {:?}",
                    pool.name, pool.role
                ));
            }
        }
        if !(self.load.rps.is_finite() && self.load.rps >= 0.0) {
            return Err("load.rps: expected a number of requests per second, 0 or more".to_owned());
        }
        if self.metrics_window.is_zero() {
            return Err("metricsWindow: must be more than 0".to_owned());
        }
        self.manifests().map(|_| ())
    }

    /// The bootstrap manifests as JSON objects (empty documents skipped).
    pub fn manifests(&self) -> Result<Vec<Value>, String> {
        parse_manifests(&self.bootstrap).map_err(|e| format!("bootstrap: {e}"))
    }

    /// Node names in order, as kind names them: `name`, then `name2`, `name3`….
    pub fn node_names(&self) -> Vec<(String, &NodePool)> {
        let mut out = Vec::new();
        for pool in &self.nodes {
            for i in 1..=pool.count {
                let name = if i == 1 {
                    pool.name.clone()
                } else {
                    format!("{}{i}", pool.name)
                };
                out.push((name, pool));
            }
        }
        out
    }

    /// The injector of a mesh: the scenario's, else the real charts' defaults.
    pub fn injector(&self, mesh: &str) -> Option<Injector> {
        self.meshes.get(mesh).cloned().or_else(|| match mesh {
            "linkerd" => Some(Injector {
                namespace: "linkerd".to_owned(),
                deployment: "linkerd-proxy-injector".to_owned(),
                proxy_image: "cr.l5d.io/linkerd/proxy:stable-2.14.10".to_owned(),
            }),
            "istio" => Some(Injector {
                namespace: "istio-system".to_owned(),
                deployment: "istiod".to_owned(),
                proxy_image: "docker.io/istio/proxyv2:1.22.8".to_owned(),
            }),
            _ => None,
        })
    }

    /// The model for a container: the first matching one, else the default.
    pub fn model_for(&self, namespace: &str, container: &str) -> (Usage, Quantity, Quantity) {
        self.usage
            .iter()
            .find(|m| {
                m.container == container && m.namespace.as_deref().is_none_or(|n| n == namespace)
            })
            .map_or((self.default_usage, Quantity::ZERO, Quantity::ZERO), |m| {
                (m.usage, m.cpu_per_krps, m.memory_per_krps)
            })
    }
}

/// Parses `---`-separated YAML (or JSON) manifests; `kind: List` items are flattened.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(
                    map.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            Value::Object(_) => out.push(doc),
            other => return Err(format!("expected a manifest object, found {other}")),
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario {path}: {message}")]
    Invalid { path: String, message: String },
}

fn default_version() -> String {
    "v1.32.2".to_owned()
}
fn default_window() -> Duration {
    Duration::from_secs(15)
}
fn default_usage() -> Usage {
    Usage {
        cpu: Quantity::from_nanos(1_000_000),
        memory: Quantity::from_units(8 << 20),
        ..Usage::default()
    }
}
fn one() -> u32 {
    1
}
fn worker() -> String {
    "worker".to_owned()
}
fn max_pods() -> u32 {
    110
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(t) => t,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

fn quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
    let text = Scalar::deserialize(d)?.text();
    let q =
        Quantity::parse(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))?;
    if q.is_negative() {
        return Err(serde::de::Error::custom(format!(
            "{text:?}: must not be negative"
        )));
    }
    // Kubernetes reads quantities in milli-units into an int64 (kubectl top's CPU and its
    // percentages): past that, kubectl shows wrapped numbers.
    if q.nanos() > i128::from(i64::MAX) * 1_000_000 {
        return Err(serde::de::Error::custom(format!(
            "{text:?}: too large: Kubernetes holds at most 2^63 - 1 milli-units (about 9.2P)"
        )));
    }
    Ok(q)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = Scalar::deserialize(d)?.text();
    meshbench_cli::parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("{text:?}: expected a duration such as 2s or 250ms"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "
schema: meshbench/kubesim-scenario/v1
seed: 7
nodes:
  - {name: kind-control-plane, role: control-plane, cpu: '2', memory: 4Gi}
  - {name: kind-worker, count: 2, cpu: 2, memory: 4Gi}
timing:
  pull: {mean: 1s, jitter: 250ms}
usage:
  - {container: linkerd-proxy, cpu: 2m, cpuJitter: 500u, memory: 10Mi, cpuPerKrps: 1m}
bootstrap: |
  apiVersion: v1
  kind: Namespace
  metadata: {name: sample-app}
";

    #[test]
    fn parses_and_names_nodes_like_kind() {
        let s = Scenario::parse(TINY).unwrap();
        let names: Vec<String> = s.node_names().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["kind-control-plane", "kind-worker", "kind-worker2"]);
        assert_eq!(s.timing.pull.mean, Duration::from_secs(1));
        assert_eq!(s.manifests().unwrap().len(), 1);
        let (u, per_krps, _) = s.model_for("any", "linkerd-proxy");
        assert_eq!(u.cpu, Quantity::from_nanos(2_000_000));
        assert_eq!(per_krps, Quantity::from_nanos(1_000_000));
        assert_eq!(s.injector("istio").unwrap().deployment, "istiod");
    }

    #[test]
    fn a_bad_file_is_named_in_the_error_and_its_excerpt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.yaml");
        std::fs::write(&path, "schema: meshbench/kubesim-scenario/v1\nseed: 1\n").unwrap();
        let e = Scenario::load(&path).unwrap_err().to_string();
        let shown = path.display().to_string();
        assert!(
            e.starts_with(&format!("scenario {shown}: line 2 column 1: missing")),
            "{e}"
        );
        assert!(e.contains(&format!("--> {shown}:2:1")), "{e}");
    }

    #[test]
    fn errors_say_where() {
        let e = Scenario::parse(
            "schema: meshbench/kubesim-scenario/v1\nnodes:\n  - {name: a, cpu: 2x, memory: 1Gi}\n",
        )
        .unwrap_err();
        assert!(e.contains("2x"), "{e}");
        let e = Scenario::parse("schema: meshbench/kubesim-scenario/v1\nnodes: []\n").unwrap_err();
        assert!(e.contains("at least one"), "{e}");
        let e =
            Scenario::parse("schema: meshbench/kubesim-scenario/v1\nnodes:\n  - {name: a, cpu: 2, memory: 1Gi}\nbogus: 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = Scenario::parse(
            "schema: meshbench/kubesim-scenario/v2\nnodes:\n  - {name: a, cpu: 2, memory: 1Gi}\n",
        )
        .unwrap_err();
        assert!(e.contains("v2"), "{e}");
        let e = Scenario::parse("schema: meshbench/kubesim-scenario/v1\n").unwrap_err();
        assert!(
            e.starts_with("line 1 column 1: missing field `nodes`"),
            "{e}"
        );
        assert!(e.contains("--> <scenario>:1:1"), "{e}");
    }
}
