//! `--from-cluster`: samples the metrics API through kube-rs, every `--interval`, and writes the
//! rows the text parser would write for the matching `kubectl top`, with the server's timestamps
//! and full precision (nanocores, bytes) instead of kubectl's rounding.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use meshbench_formats::Quantity;
use meshbench_formats::usage::{Cpu, NodeUsageRow, PodUsageRow, UsageKind};

use crate::{Error, Labels, Result, Row, RowSink, metrics_api};

/// What to sample, and how often.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// None: the context's namespace, as kubectl.
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    pub containers: bool,
    pub nodes: bool,
    /// A label selector, as `kubectl top -l`.
    pub selector: Option<String>,
    pub interval: Duration,
    pub samples: u64,
    pub run: String,
}

impl LiveOptions {
    /// How many samples `--duration` means at an interval: one at the start, then one per
    /// interval while still inside the duration.
    pub fn samples_for(duration: Duration, interval: Duration) -> u64 {
        if interval.is_zero() {
            return 1;
        }
        let n = duration.as_nanos().div_ceil(interval.as_nanos()).max(1);
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

/// The first of Ctrl-C (SIGINT) and SIGTERM to come, by number; never, if they cannot be
/// watched.
async fn stop_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (interrupt, terminate) = (SignalKind::interrupt(), SignalKind::terminate());
    let (Ok(mut int), Ok(mut term)) = (signal(interrupt), signal(terminate)) else {
        return std::future::pending().await;
    };
    tokio::select! {
        Some(()) = int.recv() => interrupt.as_raw_value(),
        Some(()) = term.recv() => terminate.as_raw_value(),
        else => std::future::pending().await,
    }
}

fn cluster_error(
    message: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Cluster {
        message: message.into(),
        source: Box::new(source),
    }
}

async fn client(opts: &LiveOptions) -> Result<(kube::Client, String, String)> {
    let options = kube::config::KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let config = match &opts.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                cluster_error(format!("cannot read the kubeconfig {}", path.display()), e)
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| {
        cluster_error(
            "cannot load a kubeconfig (KUBECONFIG, or ~/.kube/config)",
            e,
        )
    })?;
    let server = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| {
        cluster_error(
            format!(
                "cannot set up a client for {server} with the kubeconfig's credentials \
                 (`kubectl version` would meet the same problem)"
            ),
            e,
        )
    })?;
    Ok((client, server, namespace))
}

async fn get(
    client: &kube::Client,
    server: &str,
    path: &str,
    selector: Option<&str>,
) -> Result<String> {
    let mut params = kube::api::ListParams::default();
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let request = kube::core::Request::new(path)
        .list(&params)
        .map_err(|e| cluster_error(format!("bad request for {path}"), e))?;
    client.request_text(request).await.map_err(|e| match &e {
        kube::Error::Api(status)
            if status.code == 404 && path.starts_with("/apis/metrics.k8s.io") =>
        {
            Error::NoMetricsApi {
                server: server.to_owned(),
            }
        }
        _ => cluster_error(format!("GET {path} from {server}"), e),
    })
}

/// Allocatable CPU (millicores) and memory (bytes) per node, for kubectl's percentages.
async fn allocatable(
    client: &kube::Client,
    server: &str,
) -> Result<BTreeMap<String, (i128, i128)>> {
    let text = get(client, server, "/api/v1/nodes", None).await?;
    let list: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| cluster_error(format!("{server}: the node list is not JSON"), e))?;
    let mut out = BTreeMap::new();
    for node in list["items"].as_array().into_iter().flatten() {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let q = |r: &str| {
            node["status"]["allocatable"][r]
                .as_str()
                .and_then(|t| Quantity::parse(t).ok())
        };
        if let (Some(cpu), Some(memory)) = (q("cpu"), q("memory")) {
            out.insert(name, (cpu.milli_value_ceil(), memory.value_ceil()));
        }
    }
    Ok(out)
}

/// One sample's rows, owned.
enum Sampled {
    Pods(Vec<PodUsageRow>),
    Nodes(Vec<NodeUsageRow>),
}

fn parse_sample(source: &str, json: &str, opts: &LiveOptions) -> Result<Sampled> {
    let labels = Labels {
        run: opts.run.clone(),
        ..Labels::default()
    };
    let mut pods = Vec::new();
    let mut nodes = Vec::new();
    metrics_api::parse(source, json.as_bytes(), &labels, &mut |row| {
        match row {
            Row::Pod(p) => pods.push(PodUsageRow {
                run: p.run.to_owned(),
                timestamp: p.timestamp,
                namespace: p.namespace.map(str::to_owned),
                pod: p.pod.to_owned(),
                container: p.container.map(str::to_owned),
                cpu_millicores: p.cpu_millicores,
                memory_bytes: p.memory_bytes,
            }),
            Row::Node(n) => nodes.push(NodeUsageRow {
                run: n.run.to_owned(),
                timestamp: n.timestamp,
                node: n.node.to_owned(),
                cpu_millicores: n.cpu_millicores,
                cpu_percent: n.cpu_percent,
                memory_bytes: n.memory_bytes,
                memory_percent: n.memory_percent,
            }),
        }
        Ok(())
    })?;
    Ok(if opts.nodes {
        Sampled::Nodes(nodes)
    } else {
        Sampled::Pods(pods)
    })
}

/// Pod rows as `kubectl top pod` prints them: per container only with `--containers` (else
/// summed per pod), the namespace column only with `-A`; sorted as kubectl sorts.
fn shape_pods(rows: Vec<PodUsageRow>, opts: &LiveOptions) -> Vec<PodUsageRow> {
    let mut rows = if opts.containers {
        rows
    } else {
        let mut by_pod: BTreeMap<(Option<String>, String), PodUsageRow> = BTreeMap::new();
        for r in rows {
            let key = (r.namespace.clone(), r.pod.clone());
            match by_pod.get_mut(&key) {
                Some(total) => {
                    total.cpu_millicores = Cpu::from_nanocores(
                        total.cpu_millicores.nanocores() + r.cpu_millicores.nanocores(),
                    );
                    total.memory_bytes += r.memory_bytes;
                }
                None => {
                    by_pod.insert(
                        key,
                        PodUsageRow {
                            container: None,
                            ..r
                        },
                    );
                }
            }
        }
        by_pod.into_values().collect()
    };
    if !opts.all_namespaces {
        for r in &mut rows {
            r.namespace = None;
        }
    }
    rows.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
    });
    rows
}

fn percent(usage: i128, total: i128) -> Option<u32> {
    (total > 0).then(|| u32::try_from(usage * 100 / total).unwrap_or(u32::MAX))
}

/// Samples the cluster `opts.samples` times, every `opts.interval`, into `sink`. Ctrl-C or
/// SIGTERM stops early and keeps what was sampled. Rows a later sample repeats unchanged (same object, same
/// server timestamp: the interval is shorter than metrics-server's resolution) are written once.
/// Returns the kind of rows, and the number of the signal (SIGINT, SIGTERM) that ended the
/// sampling early, if one did.
pub fn sample(opts: &LiveOptions, sink: &mut dyn RowSink) -> Result<(UsageKind, Option<i32>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cluster_error("cannot start the runtime", e))?;
    runtime.block_on(async {
        let (client, server, default_ns) = client(opts).await?;
        let namespace = opts.namespace.clone().unwrap_or(default_ns);
        let path = if opts.nodes {
            "/apis/metrics.k8s.io/v1beta1/nodes".to_owned()
        } else if opts.all_namespaces {
            "/apis/metrics.k8s.io/v1beta1/pods".to_owned()
        } else {
            format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods")
        };
        let kind = if opts.nodes {
            UsageKind::Nodes
        } else {
            UsageKind::Pods
        };
        let mut ticks = tokio::time::interval(opts.interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen: HashSet<(String, String, Option<Timestamp>)> = HashSet::new();
        let mut repeated = 0u64;
        let mut written = 0u64;
        // A long sampling run shows where it is, on a terminal only.
        let progress = (opts.samples > 1 && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(opts.samples);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} sample {pos}/{len} every {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(format!("{:?}, 0 rows", opts.interval));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let every = format!("{:?}", opts.interval);
        // For the warning about an empty sample: "matching SELECTOR ", or nothing.
        let matching = opts
            .selector
            .as_ref()
            .map(|sel| format!("matching {sel:?} "))
            .unwrap_or_default();
        let stop = stop_signal();
        tokio::pin!(stop);
        let mut stopped_by = None;
        for n in 0..opts.samples {
            tokio::select! {
                _ = ticks.tick() => {}
                signal = &mut stop => {
                    if let Some(bar) = &progress {
                        bar.finish_and_clear();
                    }
                    tracing::warn!("interrupted after {n} samples; writing those");
                    stopped_by = Some(signal);
                    break;
                }
            }
            let json = get(&client, &server, &path, opts.selector.as_deref()).await?;
            let source = format!("{server}{path}");
            let mut previous = std::mem::take(&mut seen);
            let mut fresh = |key: (String, String, Option<Timestamp>)| {
                let new = !previous.remove(&key);
                seen.insert(key);
                if !new {
                    repeated += 1;
                }
                new
            };
            match parse_sample(&source, &json, opts)? {
                Sampled::Pods(rows) => {
                    let rows = shape_pods(rows, opts);
                    tracing::info!("sample {}: {} pod rows", n + 1, rows.len());
                    if rows.is_empty() {
                        let place = if opts.all_namespaces {
                            "in any namespace".to_owned()
                        } else {
                            format!("in namespace {namespace}")
                        };
                        tracing::warn!(
                            "sample {}: the metrics API lists no pods {matching}{place}. \
                             metrics-server reports a pod some 15-60 s after it starts \
                             (kubectl top then says \"metrics not available yet\"); without \
                             pods it says \"No resources found\"",
                            n + 1
                        );
                    }
                    for r in rows {
                        let key = (
                            format!("{:?}/{}", r.namespace, r.pod),
                            r.container.clone().unwrap_or_default(),
                            r.timestamp,
                        );
                        if !fresh(key) {
                            continue;
                        }
                        written += 1;
                        sink.row(Row::Pod(PodUsageRow {
                            run: r.run.as_str(),
                            timestamp: r.timestamp,
                            namespace: r.namespace.as_deref(),
                            pod: r.pod.as_str(),
                            container: r.container.as_deref(),
                            cpu_millicores: r.cpu_millicores,
                            memory_bytes: r.memory_bytes,
                        }))?;
                    }
                }
                Sampled::Nodes(mut rows) => {
                    let alloc = allocatable(&client, &server).await?;
                    rows.sort_by(|a, b| a.node.cmp(&b.node));
                    tracing::info!("sample {}: {} node rows", n + 1, rows.len());
                    if rows.is_empty() {
                        tracing::warn!(
                            "sample {}: the metrics API lists no {}; is metrics-server \
                             running, and has it scraped the nodes yet?",
                            n + 1,
                            format!("nodes {matching}").trim_end()
                        );
                    }
                    for r in rows {
                        if !fresh((r.node.clone(), String::new(), r.timestamp)) {
                            continue;
                        }
                        let (cpu_percent, memory_percent) =
                            match (alloc.get(&r.node), r.cpu_millicores, r.memory_bytes) {
                                (Some((cpu, mem)), Some(c), Some(m)) => {
                                    let milli =
                                        (i128::from(c.nanocores()) + 999_999).div_euclid(1_000_000);
                                    (percent(milli, *cpu), percent(i128::from(m), *mem))
                                }
                                _ => (None, None),
                            };
                        written += 1;
                        sink.row(Row::Node(NodeUsageRow {
                            run: r.run.as_str(),
                            timestamp: r.timestamp,
                            node: r.node.as_str(),
                            cpu_millicores: r.cpu_millicores,
                            cpu_percent,
                            memory_bytes: r.memory_bytes,
                            memory_percent,
                        }))?;
                    }
                }
            }
            if let Some(bar) = &progress {
                bar.set_message(format!("{every}, {written} rows"));
                bar.inc(1);
            }
            // Each sample's rows go out before the wait for the next, not at the end of the run.
            sink.flush()?;
        }
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        if repeated > 0 {
            tracing::warn!(
                "{repeated} rows repeated an earlier sample's timestamp and were written once: the \
                 interval is shorter than the metrics resolution"
            );
        }
        Ok((kind, stopped_by))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_to_samples() {
        let s = |d: u64, i: u64| {
            LiveOptions::samples_for(Duration::from_secs(d), Duration::from_secs(i))
        };
        assert_eq!(s(60, 15), 4);
        assert_eq!(s(61, 15), 5);
        assert_eq!(s(0, 15), 1);
        assert_eq!(s(10, 0), 1);
    }

    #[test]
    fn pods_sum_without_containers_and_drop_the_namespace_without_all() {
        let row = |c: &str, nanos: i64| PodUsageRow {
            run: "r".to_owned(),
            timestamp: None,
            namespace: Some("ns".to_owned()),
            pod: "p".to_owned(),
            container: Some(c.to_owned()),
            cpu_millicores: Cpu::from_nanocores(nanos),
            memory_bytes: 10,
        };
        let opts = LiveOptions {
            kubeconfig: None,
            context: None,
            namespace: None,
            all_namespaces: false,
            containers: false,
            nodes: false,
            selector: None,
            interval: Duration::from_secs(1),
            samples: 1,
            run: "r".to_owned(),
        };
        let out = shape_pods(vec![row("a", 1_500_000), row("b", 500_000)], &opts);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cpu_millicores.nanocores(), 2_000_000);
        assert_eq!(out[0].memory_bytes, 20);
        assert_eq!(
            (out[0].namespace.as_deref(), out[0].container.as_deref()),
            (None, None)
        );
    }
}
