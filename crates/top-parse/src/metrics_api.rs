//! `metrics.k8s.io/v1beta1` JSON, as `kubectl get --raw /apis/metrics.k8s.io/v1beta1/pods`
//! (or `/nodes`, or one object) prints it. Every container of every pod becomes one row, with the
//! pod's own timestamp; quantities keep their full precision (nanocores as decimal millicores).

use jiff::Timestamp;
use meshbench_formats::Quantity;
use meshbench_formats::usage::{Cpu, NodeUsageRow, PodUsageRow, UsageKind};
use serde::Deserialize;

use crate::{Error, Labels, Row};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    kind: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    items: Option<Vec<Item>>,
    // A single PodMetrics or NodeMetrics object
    timestamp: Option<String>,
    containers: Option<Vec<Container>>,
    usage: Option<Usage>,
    // A `Status` (error) answer
    message: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default)]
    metadata: Metadata,
    timestamp: Option<String>,
    containers: Option<Vec<Container>>,
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Container {
    name: String,
    usage: Usage,
}

#[derive(Debug, Deserialize)]
struct Usage {
    cpu: Option<serde_json::Value>,
    memory: Option<serde_json::Value>,
}

pub(crate) fn parse(
    name: &str,
    bytes: &[u8],
    labels: &Labels,
    emit: &mut dyn FnMut(Row<'_>) -> crate::Result<()>,
) -> Result<(UsageKind, u64), Error> {
    let bad = |problem: String| Error::BadJson {
        input: name.to_owned(),
        problem,
    };
    if labels.namespace.is_some() {
        return Err(bad(
            "metrics API JSON names each pod's namespace: --namespace is for tables from \
             `kubectl top pod -n NS`, which have no NAMESPACE column"
                .to_owned(),
        ));
    }
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| Error::Json {
        input: name.to_owned(),
        line: e.line() as u64,
        column: e.column() as u64,
        source: e,
    })?;

    if doc.kind.as_deref() == Some("Status") {
        return Err(bad(format!(
            "the API server answered with an error Status ({}): {}",
            doc.status.as_deref().unwrap_or("Failure"),
            doc.message.as_deref().unwrap_or("no message")
        )));
    }
    if let Some(v) = doc
        .api_version
        .as_deref()
        .filter(|v| *v != "metrics.k8s.io/v1beta1")
    {
        tracing::warn!("{name}: apiVersion {v:?}; this reader follows metrics.k8s.io/v1beta1");
    }
    let items: Vec<Item> = match doc.items {
        Some(items) => items,
        None => vec![Item {
            metadata: doc.metadata,
            timestamp: doc.timestamp,
            containers: doc.containers,
            usage: doc.usage,
        }],
    };
    let kind = match doc.kind.as_deref() {
        Some("PodMetricsList" | "PodMetrics") => UsageKind::Pods,
        Some("NodeMetricsList" | "NodeMetrics") => UsageKind::Nodes,
        Some(other) => {
            return Err(bad(format!(
                "kind {other:?} is not metrics API output (expected PodMetricsList, \
                 NodeMetricsList, PodMetrics or NodeMetrics)"
            )));
        }
        None => match items.first() {
            Some(i) if i.containers.is_some() => UsageKind::Pods,
            Some(i) if i.usage.is_some() => UsageKind::Nodes,
            _ => {
                return Err(bad(
                    "neither a `kind` nor items with `containers` or `usage`: not metrics API \
                     output"
                        .to_owned(),
                ));
            }
        },
    };

    let mut rows = 0;
    for (index, item) in items.iter().enumerate() {
        let what = || {
            format!(
                "items[{index}] ({})",
                item.metadata.name.as_deref().unwrap_or("unnamed")
            )
        };
        let item_name = item
            .metadata
            .name
            .as_deref()
            .ok_or_else(|| bad(format!("{}: no metadata.name", what())))?;
        let timestamp = match item.timestamp.as_deref() {
            Some(t) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| bad(format!("{}: timestamp {t:?}: {e}", what())))?,
            ),
            None => labels.timestamp,
        };
        match kind {
            UsageKind::Pods => {
                let containers = item
                    .containers
                    .as_ref()
                    .ok_or_else(|| bad(format!("{}: a pod without `containers`", what())))?;
                if containers.is_empty() {
                    tracing::debug!("{name}: pod {item_name} has no container metrics yet");
                }
                for c in containers {
                    let (cpu, memory) = usage(&c.usage)
                        .map_err(|p| bad(format!("{}: container {}: {p}", what(), c.name)))?;
                    emit(Row::Pod(PodUsageRow {
                        run: labels.run.as_str(),
                        timestamp,
                        namespace: item.metadata.namespace.as_deref(),
                        pod: item_name,
                        container: Some(c.name.as_str()),
                        cpu_millicores: cpu,
                        memory_bytes: memory,
                    }))?;
                    rows += 1;
                }
            }
            UsageKind::Nodes => {
                let u = item
                    .usage
                    .as_ref()
                    .ok_or_else(|| bad(format!("{}: a node without `usage`", what())))?;
                let (cpu, memory) = usage(u).map_err(|p| bad(format!("{}: {p}", what())))?;
                emit(Row::Node(NodeUsageRow {
                    run: labels.run.as_str(),
                    timestamp,
                    node: item_name,
                    cpu_millicores: Some(cpu),
                    cpu_percent: None,
                    memory_bytes: Some(memory),
                    memory_percent: None,
                }))?;
                rows += 1;
            }
        }
    }
    Ok((kind, rows))
}

fn quantity(value: Option<&serde_json::Value>, what: &str) -> Result<Quantity, String> {
    match value {
        Some(serde_json::Value::String(s)) => {
            Quantity::parse(s).map_err(|e| format!("usage.{what}: {e}"))
        }
        Some(serde_json::Value::Number(n)) => {
            Quantity::parse(&n.to_string()).map_err(|e| format!("usage.{what}: {e}"))
        }
        Some(other) => Err(format!(
            "usage.{what}: expected a quantity string, found {other}"
        )),
        None => Err(format!("no usage.{what}")),
    }
}

fn usage(u: &Usage) -> Result<(Cpu, u64), String> {
    let cpu_q = quantity(u.cpu.as_ref(), "cpu")?;
    let cpu = Cpu::from_quantity(cpu_q)
        .ok_or_else(|| format!("usage.cpu {cpu_q} is negative or out of range"))?;
    let mem_q = quantity(u.memory.as_ref(), "memory")?;
    let memory = u64::try_from(mem_q.value_ceil())
        .map_err(|_| format!("usage.memory {mem_q} is negative or out of range"))?;
    Ok((cpu, memory))
}
