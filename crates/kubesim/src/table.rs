//! Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for with `get`, with the
//! columns the real API server prints for the common kinds.

use std::sync::Arc;

use serde_json::{Value, json};

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(text: Option<&str>) -> Include {
        match text {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// Age as kubectl prints it (apimachinery's HumanDuration).
pub fn human_duration(seconds: i64) -> String {
    // `3m`, or `3m20s` when there is a remainder of the smaller unit.
    let two = |whole: i64, unit: &str, rest: i64, rest_unit: &str| {
        if rest == 0 {
            format!("{whole}{unit}")
        } else {
            format!("{whole}{unit}{rest}{rest_unit}")
        }
    };
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return two(minutes, "m", s % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        return two(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return two(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return two(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn age(object: &Value, now: jiff::Timestamp) -> String {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "<unknown>".to_owned(),
            |t| human_duration(now.as_second() - t.as_second()),
        )
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn column(name: &str, kind: &str, priority: i32) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
}

fn pod_status_reason(pod: &Value) -> String {
    let waiting = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str))
        });
    let init_waiting = pod["status"]["initContainerStatuses"]
        .as_array()
        .and_then(|cs| {
            let total = cs.len();
            let done = cs
                .iter()
                .filter(|c| c.pointer("/state/terminated/exitCode") == Some(&json!(0)))
                .count();
            (done < total).then(|| format!("Init:{done}/{total}"))
        });
    match pod["status"]["phase"].as_str() {
        Some("Succeeded") => "Completed".to_owned(),
        Some("Pending") if pod["spec"]["nodeName"].is_string() => init_waiting
            .or_else(|| waiting.map(str::to_owned))
            .unwrap_or_else(|| "Pending".to_owned()),
        Some(phase) => phase.to_owned(),
        None => "Unknown".to_owned(),
    }
}

/// Columns for a kind: (name, type, priority); priority 1 shows only with `-o wide`.
#[rustfmt::skip]
fn columns(kind: &str) -> Vec<Value> {
    let s = "string";
    let i = "integer";
    let spec: &[(&str, &str, i32)] = match kind {
        "Pod" => &[("Name", s, 0), ("Ready", s, 0), ("Status", s, 0), ("Restarts", s, 0), ("Age", s, 0),
            ("IP", s, 1), ("Node", s, 1), ("Nominated Node", s, 1), ("Readiness Gates", s, 1)],
        "Node" => &[("Name", s, 0), ("Status", s, 0), ("Roles", s, 0), ("Age", s, 0), ("Version", s, 0),
            ("Internal-IP", s, 1), ("External-IP", s, 1), ("OS-Image", s, 1), ("Kernel-Version", s, 1),
            ("Container-Runtime", s, 1)],
        "Deployment" => &[("Name", s, 0), ("Ready", s, 0), ("Up-to-date", i, 0), ("Available", i, 0), ("Age", s, 0)],
        "ReplicaSet" => &[("Name", s, 0), ("Desired", i, 0), ("Current", i, 0), ("Ready", i, 0), ("Age", s, 0)],
        "DaemonSet" => &[("Name", s, 0), ("Desired", i, 0), ("Current", i, 0), ("Ready", i, 0), ("Up-to-date", i, 0),
            ("Available", i, 0), ("Node Selector", s, 0), ("Age", s, 0)],
        "StatefulSet" => &[("Name", s, 0), ("Ready", s, 0), ("Age", s, 0)],
        "Job" => &[("Name", s, 0), ("Status", s, 0), ("Completions", s, 0), ("Age", s, 0)],
        "Namespace" => &[("Name", s, 0), ("Status", s, 0), ("Age", s, 0)],
        "Service" => &[("Name", s, 0), ("Type", s, 0), ("Cluster-IP", s, 0), ("External-IP", s, 0),
            ("Port(s)", s, 0), ("Age", s, 0)],
        "APIService" => &[("Name", s, 0), ("Service", s, 0), ("Available", s, 0), ("Age", s, 0)],
        _ => &[("Name", s, 0), ("Age", s, 0)],
    };
    spec.iter().map(|&(name, kind, priority)| column(name, kind, priority)).collect()
}

fn cells(kind: &str, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let s = &o["status"];
    // Workloads: the replicas asked for (1 when unset), and READY as `ready/wanted`.
    let wanted = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = || format!("{}/{wanted}", int(&s["readyReplicas"]));
    match kind {
        "Pod" => {
            let cs = s["containerStatuses"].as_array();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = cs.map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
            let restarts: i64 = cs.map_or(0, |cs| cs.iter().map(|c| int(&c["restartCount"])).sum());
            vec![
                name,
                format!("{ready}/{total}").into(),
                pod_status_reason(o).into(),
                restarts.into(),
                age(o, now).into(),
                s["podIP"].as_str().unwrap_or("<none>").into(),
                o["spec"]["nodeName"].as_str().unwrap_or("<none>").into(),
                "<none>".into(),
                "<none>".into(),
            ]
        }
        "Node" => {
            let ready = s["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map_or("Unknown", |c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                });
            let status = if o["spec"]["unschedulable"] == true {
                format!("{ready},SchedulingDisabled")
            } else {
                ready.to_owned()
            };
            let mut roles: Vec<&str> = o["metadata"]["labels"]
                .as_object()
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            roles.sort_unstable();
            let roles = if roles.is_empty() {
                "<none>".to_owned()
            } else {
                roles.join(",")
            };
            let address = |kind: &str| {
                s["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["type"] == kind))
                    .and_then(|x| x["address"].as_str())
                    .unwrap_or("<none>")
                    .to_owned()
            };
            vec![
                name,
                status.into(),
                roles.into(),
                age(o, now).into(),
                s["nodeInfo"]["kubeletVersion"].clone(),
                address("InternalIP").into(),
                address("ExternalIP").into(),
                s["nodeInfo"]["osImage"].clone(),
                s["nodeInfo"]["kernelVersion"].clone(),
                s["nodeInfo"]["containerRuntimeVersion"].clone(),
            ]
        }
        "Deployment" => vec![
            name,
            ready().into(),
            int(&s["updatedReplicas"]).into(),
            int(&s["availableReplicas"]).into(),
            age(o, now).into(),
        ],
        "ReplicaSet" => vec![
            name,
            wanted.into(),
            int(&s["replicas"]).into(),
            int(&s["readyReplicas"]).into(),
            age(o, now).into(),
        ],
        "DaemonSet" => {
            let selector =
                crate::selector::labels_text(&o["spec"]["template"]["spec"]["nodeSelector"]);
            let selector = if selector.is_empty() {
                "<none>".to_owned()
            } else {
                selector
            };
            vec![
                name,
                int(&s["desiredNumberScheduled"]).into(),
                int(&s["currentNumberScheduled"]).into(),
                int(&s["numberReady"]).into(),
                int(&s["updatedNumberScheduled"]).into(),
                int(&s["numberAvailable"]).into(),
                selector.into(),
                age(o, now).into(),
            ]
        }
        "StatefulSet" => vec![name, ready().into(), age(o, now).into()],
        "Job" => {
            let complete = s["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Complete"));
            vec![
                name,
                if complete { "Complete" } else { "Running" }.into(),
                format!(
                    "{}/{}",
                    int(&s["succeeded"]),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                )
                .into(),
                age(o, now).into(),
            ]
        }
        "Namespace" => vec![
            name,
            s["phase"].as_str().unwrap_or("Active").into(),
            age(o, now).into(),
        ],
        "Service" => {
            let ports = o["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{}/{}",
                                int(&p["port"]),
                                p["protocol"].as_str().unwrap_or("TCP")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "<none>".to_owned());
            vec![
                name,
                o["spec"]["type"].as_str().unwrap_or("ClusterIP").into(),
                o["spec"]["clusterIP"].as_str().unwrap_or("<none>").into(),
                "<none>".into(),
                ports.into(),
                age(o, now).into(),
            ]
        }
        "APIService" => {
            let service = match (
                o["spec"]["service"]["namespace"].as_str(),
                o["spec"]["service"]["name"].as_str(),
            ) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => "Local".to_owned(),
            };
            let available = s["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"))
                .and_then(|c| c["status"].as_str())
                .unwrap_or("Unknown")
                .to_owned();
            vec![name, service.into(), available.into(), age(o, now).into()]
        }
        _ => vec![name, age(o, now).into()],
    }
}

/// A `Table` of objects of one kind.
pub fn table(
    kind: &str,
    objects: &[Arc<Value>],
    resource_version: u64,
    include: Include,
    now: jiff::Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(kind, o, now)});
            match include {
                Include::None => {}
                Include::Metadata => {
                    let mut meta = o["metadata"].clone();
                    if let Some(m) = meta.as_object_mut() {
                        m.remove("managedFields");
                    }
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
                }
                Include::Object => row["object"] = (**o).clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns(kind),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        for (s, want) in [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn pod_rows() {
        let pod = Arc::new(
            json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"},
            "status": {"phase": "Pending", "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
        );
        let now: jiff::Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let t = table("Pod", &[pod], 5, Include::Metadata, now);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "p",
                "0/2",
                "ContainerCreating",
                0,
                "30s",
                "<none>",
                "n",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
