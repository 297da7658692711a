//! `meshbench/comparison/v1.1`: `compare`'s verdict table as data. v1.1 adds `deltas`, one per
//! arm other than the reference (v1 had only the second arm's, which stays as it was).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::Schema;

pub const COMPARISON: Schema = Schema {
    document: "comparison",
    major: 1,
    id: "meshbench/comparison/v1.1",
};

/// The metric ids, in the table's order, with their units. The first fourteen are fixed by the
/// format; the node rows come from top-parse node CSVs, the `_over_none` rows only when an arm
/// has no mesh (each arm's node usage minus that baseline's). The last three add the proxies'
/// p95 over workload pods and the injection coverage.
pub const METRICS: [(&str, &str); 21] = [
    ("control_plane_cpu_millicores", "millicores"),
    ("control_plane_memory_bytes", "bytes"),
    ("proxy_cpu_millicores_per_pod", "millicores"),
    ("proxy_memory_bytes_per_pod", "bytes"),
    ("mesh_cpu_millicores_total", "millicores"),
    ("mesh_memory_bytes_total", "bytes"),
    ("latency_p50_ms", "ms"),
    ("latency_p90_ms", "ms"),
    ("latency_p99_ms", "ms"),
    ("latency_p999_ms", "ms"),
    ("error_rate", "ratio"),
    ("install_s", "s"),
    ("first_injected_pod_s", "s"),
    ("all_pods_ready_s", "s"),
    ("node_cpu_millicores_total", "millicores"),
    ("node_memory_bytes_total", "bytes"),
    ("node_cpu_millicores_over_none", "millicores"),
    ("node_memory_bytes_over_none", "bytes"),
    ("proxy_cpu_millicores_p95", "millicores"),
    ("proxy_memory_bytes_p95", "bytes"),
    ("injection_coverage", "ratio"),
];

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub metric: String,
    pub unit: String,
    /// Each arm's value; `null` where the arm has no such measurement.
    pub values: BTreeMap<String, Option<f64>>,
    /// (second arm − reference arm) / reference arm × 100.
    pub delta_pct: Option<f64>,
    /// 95% bootstrap interval of `delta_pct`; `null` with fewer than two repetitions per arm.
    pub ci95: Option<[f64; 2]>,
    /// Whether the interval excludes zero; `null` without an interval.
    pub significant: Option<bool>,
    /// For metrics read from snapshots: each arm's lowest and highest snapshot value over all
    /// its repetitions (the value itself is the median). Absent for other metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_range: Option<BTreeMap<String, [f64; 2]>>,
    /// v1.1: every arm but the reference, against the reference (the second arm's is the same
    /// as `delta_pct`, `ci95` and `significant`). Empty with one arm.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deltas: BTreeMap<String, Delta>,
}

/// One arm against the reference arm, in one row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// (arm − reference) / reference × 100.
    pub delta_pct: Option<f64>,
    /// 95% bootstrap interval of `delta_pct`; `null` with fewer than two repetitions per arm.
    pub ci95: Option<[f64; 2]>,
    /// Whether the interval excludes zero; `null` without an interval.
    pub significant: Option<bool>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema: String,
    /// Arm names in order; the first is the reference of `delta_pct`.
    pub arms: Vec<String>,
    pub rows: Vec<ComparisonRow>,
}
