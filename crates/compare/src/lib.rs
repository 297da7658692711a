//! compare: meshbench runs in, the verdict table out.
//!
//! Replaces the delta half of the seed's `parse-benchmark-results.py`, which printed sums over
//! all pods as "control plane", averaged a CPU and a memory percentage into an "aggregate", and
//! had no baseline and no repetitions. compare computes each metric as `docs/methodology.md`
//! defines it, gives every delta a seeded 95% confidence interval (bootstrap standard errors)
//! when arms are repeated, and says so when they are not.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use meshbench_cli::{Failure, LogArgs, Output};
use meshbench_formats::comparison::{COMPARISON, Comparison, ComparisonRow, Delta, METRICS};
use meshbench_formats::trafficgen::Arrival;

pub mod gate;
pub mod load;
pub mod metrics;
mod plot;

const EXAMPLES: &str = "\
Examples:
  # Two arms, one directory each (files, or one sub-directory per repetition)
  compare --arm linkerd=runs/linkerd --arm istio=runs/istio

  # A baseline without a mesh, JSON for a pipeline, and a gate for CI
  compare --arm none=runs/none --arm linkerd=runs/linkerd -f json -o verdict.json \\
    --fail-if 'latency_p99_ms > 150'

  # The whole pipeline, per arm and repetition
  trafficgen -r 200 -d 5m -o runs/linkerd/1/trafficgen.json http://nginx-1.sample-app/
  kubectl top pods -A --containers | top-parse --run linkerd-1 -o runs/linkerd/1/pods.csv";

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Markdown table (default on a terminal)
    Markdown,
    /// metric,unit,<arms…>,delta_pct,ci95_low,ci95_high,significant (then per further arm)
    Csv,
    /// meshbench/comparison/v1.1 (default off a terminal)
    Json,
}

/// Compare arms (none, linkerd, istio, …) from their top-parse, trafficgen and mesh-install
/// files: per-metric values, deltas, and 95% confidence intervals when arms are repeated.
#[derive(Debug, Parser)]
#[command(name = "compare", version, after_long_help = EXAMPLES, after_help = "Run with --help for examples.")]
pub struct Args {
    /// An arm: NAME=DIR (repeatable, in table order). The mesh is the mesh-install summary's,
    /// else NAME (linkerd, istio or none).
    #[arg(long = "arm", value_name = "NAME=DIR", required = true, value_parser = parse_arm)]
    pub arms: Vec<(String, PathBuf)>,

    /// The reference arm of every delta (default: the first).
    #[arg(long, value_name = "ARM")]
    pub baseline: Option<String>,

    /// Output encoding (default: markdown on a terminal, json otherwise).
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Where to write; `-` is stdout.
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: String,

    /// Bootstrap resamples for the intervals (at least 100: their spread gives each value's
    /// standard error, and the interval is the delta ± Student's t standard errors)
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub bootstrap: u32,

    /// Seed of the bootstrap, so that a table is reproducible.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// A TOML file of mesh profiles, for meshes other than linkerd, istio and none:
    /// [[profile]] tables with mesh = "NAME", control_plane = "NAMESPACE", proxy = "CONTAINER".
    #[arg(long, value_name = "FILE")]
    pub profile: Vec<PathBuf>,

    /// Write SVG charts into this directory: latency by percentile per arm, and one bar chart
    /// per resource row.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,

    /// Exit with 3 when a condition holds: 'METRIC OP NUMBER' on every arm that has the metric,
    /// 'ARM.METRIC …' on one, 'delta.METRIC …' on each arm's delta to the reference, in
    /// percent; OP is one of > >= < <= (repeatable). A condition with no value to check exits
    /// with 1.
    #[arg(long = "fail-if", value_name = "CONDITION")]
    pub fail_if: Vec<gate::Condition>,

    #[command(flatten)]
    pub log: LogArgs,
}

fn parse_arm(text: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=DIR, e.g. linkerd=runs/linkerd"))?;
    if name.is_empty() || dir.is_empty() {
        return Err(format!(
            "{text:?}: expected NAME=DIR, e.g. linkerd=runs/linkerd"
        ));
    }
    Ok((name.to_owned(), PathBuf::from(dir)))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {problem}")]
    Input { path: String, problem: String },
    #[error(
        "arm {arm:?}: unknown mesh {mesh:?}; built-in profiles are linkerd, istio and none, \
         and --profile FILE adds others"
    )]
    UnknownMesh { arm: String, mesh: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Gate(String),
    /// A `--fail-if` condition without a value to check: the gate must not pass.
    #[error("--fail-if: {0}")]
    Unchecked(String),
}

impl Failure for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Gate(_) => 3,
            _ => 1,
        }
    }
}

/// Every arm's repetitions, measured.
pub fn measure(
    arms: &[load::Arm],
    profiles: &[metrics::Profile],
) -> Result<Vec<Vec<metrics::RepValues>>, Error> {
    arms.iter()
        .map(|arm| {
            let profile = metrics::profile(arm, profiles)?;
            arm.reps
                .iter()
                .map(|r| metrics::repetition(r, &profile))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

/// Builds the comparison of `arms`, the reference first.
pub fn compare(
    arms: &[load::Arm],
    baseline: usize,
    rounds: usize,
    seed: u64,
) -> Result<Comparison, Error> {
    let profiles = metrics::builtin_profiles();
    let none = none_arm(arms, &profiles);
    Ok(table(
        arms,
        &measure(arms, &profiles)?,
        none,
        baseline,
        rounds,
        seed,
    ))
}

/// The arm without a mesh, if there is one.
fn none_arm(arms: &[load::Arm], profiles: &[metrics::Profile]) -> Option<usize> {
    arms.iter().position(|a| {
        metrics::profile(a, profiles).is_ok_and(|p| p.control_plane.is_none() && p.proxy.is_none())
    })
}

fn table(
    arms: &[load::Arm],
    per_arm: &[Vec<metrics::RepValues>],
    none: Option<usize>,
    baseline: usize,
    rounds: usize,
    seed: u64,
) -> Comparison {
    let mut values: Vec<_> = per_arm
        .iter()
        .map(|reps| metrics::arm_values(reps, &(0..reps.len()).collect::<Vec<_>>()))
        .collect();
    // What each arm's nodes use beyond the arm without a mesh: the mesh's whole cost.
    if let Some(n) = none {
        let base = values[n];
        for v in &mut values {
            for (over, total) in metrics::OVER_NONE_OF {
                v[over] = match (v[total], base[total]) {
                    (Some(a), Some(b)) => Some(a - b),
                    _ => None,
                };
            }
        }
    }
    let mut order: Vec<usize> = vec![baseline];
    order.extend((0..arms.len()).filter(|&i| i != baseline));
    // Each arm resampled once (its own seed, from --seed), then every other arm against the
    // reference.
    let spreads: Vec<_> = per_arm
        .iter()
        .enumerate()
        .map(|(k, reps)| metrics::spread(reps, rounds, seed.wrapping_add(k as u64)))
        .collect();
    let mut intervals: Vec<_> = order[1..]
        .iter()
        .map(|&o| metrics::interval(&spreads[baseline], &spreads[o]))
        .collect();
    // The usage beyond the none arm: both arms' excess over one estimate of the none arm. (An
    // arm against the none arm itself has no excess to compare.)
    if let Some(n) = none {
        for (&o, interval) in order[1..].iter().zip(&mut intervals) {
            if baseline == n || o == n {
                continue;
            }
            for (over, total) in metrics::OVER_NONE_OF {
                interval[over] = metrics::over_none_interval(
                    &spreads[baseline],
                    &spreads[o],
                    &spreads[n],
                    total,
                );
            }
        }
    }
    let rows = METRICS
        .iter()
        .enumerate()
        .map(|(i, (metric, unit))| {
            let deltas: Vec<(String, Delta)> = order[1..]
                .iter()
                .zip(&intervals)
                .map(|(&o, interval)| {
                    // The none arm's usage beyond itself is zero by definition: no delta
                    // between it and another arm on those rows ("none uses 100% less").
                    let beyond_none = metrics::OVER_NONE_OF.iter().any(|&(over, _)| over == i)
                        && none.is_some_and(|n| n == o || n == baseline);
                    let delta_pct = if beyond_none {
                        None
                    } else {
                        metrics::delta_pct(values[baseline][i], values[o][i])
                    };
                    let ci95 = interval[i].filter(|_| delta_pct.is_some());
                    let significant = ci95.map(|[lo, hi]| lo > 0.0 || hi < 0.0);
                    let delta = Delta {
                        delta_pct,
                        ci95,
                        significant,
                    };
                    (arms[o].name.clone(), delta)
                })
                .collect();
            // v1's fields: the second arm's delta.
            let second = deltas.first().map(|(_, d)| *d);
            ComparisonRow {
                metric: (*metric).to_owned(),
                unit: (*unit).to_owned(),
                values: order
                    .iter()
                    .map(|&a| (arms[a].name.clone(), values[a][i]))
                    .collect(),
                delta_pct: second.and_then(|d| d.delta_pct),
                ci95: second.and_then(|d| d.ci95),
                significant: second.and_then(|d| d.significant),
                deltas: deltas.into_iter().collect(),
                snapshot_range: {
                    let ranges: std::collections::BTreeMap<String, [f64; 2]> = order
                        .iter()
                        .filter_map(|&a| {
                            metrics::arm_range(&per_arm[a], i).map(|r| (arms[a].name.clone(), r))
                        })
                        .collect();
                    (!ranges.is_empty()).then_some(ranges)
                },
            }
        })
        .collect();
    Comparison {
        schema: COMPARISON.id.to_owned(),
        arms: order.iter().map(|&a| arms[a].name.clone()).collect(),
        rows,
    }
}

/// Warnings about arms that differ in what should be equal.
fn like_for_like(arms: &[load::Arm]) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut check = |what: &str, per_arm: Vec<(String, Option<f64>)>| {
        let known: Vec<&(String, Option<f64>)> =
            per_arm.iter().filter(|(_, v)| v.is_some()).collect();
        if let (Some(min), Some(max)) = (
            known.iter().filter_map(|(_, v)| *v).reduce(f64::min),
            known.iter().filter_map(|(_, v)| *v).reduce(f64::max),
        ) && max > min * 1.05
        {
            let list = known
                .iter()
                .map(|(a, v)| format!("{a} {}", v.unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ");
            warnings.push(format!(
                "arms differ in {what} ({list}): not a like-for-like comparison"
            ));
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let pods = |a: &load::Arm| {
        a.reps
            .iter()
            .find_map(|r| r.install.as_ref().map(|i| i.pods as f64))
    };
    check(
        "workload pods",
        arms.iter().map(|a| (a.name.clone(), pods(a))).collect(),
    );
    let first_load =
        |a: &load::Arm,
         f: &dyn Fn(&meshbench_formats::trafficgen::TrafficgenSummary) -> Option<f64>| {
            a.reps.iter().flat_map(|r| r.loads.iter()).find_map(f)
        };
    check(
        "request rate",
        arms.iter()
            .map(|a| (a.name.clone(), first_load(a, &|s| s.rate_target)))
            .collect(),
    );
    check(
        "connections",
        arms.iter()
            .map(|a| {
                (
                    a.name.clone(),
                    first_load(a, &|s| Some(f64::from(s.connections))),
                )
            })
            .collect(),
    );
    check(
        "duration",
        arms.iter()
            .map(|a| (a.name.clone(), first_load(a, &|s| Some(s.duration_s))))
            .collect(),
    );
    // Open and closed loops measure different things: a closed loop leaves the server's stalls
    // out of its latency (coordinated omission), so the two do not compare.
    if let Some(list) = differing_loads(arms, |s| Some(s.mode.name())) {
        warnings.push(format!(
            "load runs differ in loop ({list}): a closed loop leaves the server's stalls out of \
             its latency, so open- and closed-loop latency do not compare"
        ));
    }
    // Poisson arrivals come in bursts that queue, so their tail latency is higher than a
    // uniform schedule's at the same rate. Summaries before v1.1 do not say: left out.
    if let Some(list) = differing_loads(arms, |s| s.arrival.map(Arrival::name)) {
        warnings.push(format!(
            "load runs differ in arrivals ({list}): Poisson arrivals come in bursts that queue, \
             so their tail latency is higher than a uniform schedule's at the same rate, and \
             the difference would read as the mesh's"
        ));
    }
    warnings
}

/// The arms' load runs by a property (`label`; `None` where a summary does not say), as
/// "linkerd open, istio closed", when they differ between arms or within one; `None` when all
/// agree or none says.
fn differing_loads(
    arms: &[load::Arm],
    label: impl Fn(&meshbench_formats::trafficgen::TrafficgenSummary) -> Option<&'static str>,
) -> Option<String> {
    let by_arm: Vec<(&str, Vec<&str>)> = arms
        .iter()
        .map(|a| {
            let mut m: Vec<&str> = a
                .reps
                .iter()
                .flat_map(|r| r.loads.iter())
                .filter_map(&label)
                .collect();
            m.sort_unstable();
            m.dedup();
            (a.name.as_str(), m)
        })
        .filter(|(_, m)| !m.is_empty())
        .collect();
    let first = &by_arm.first()?.1;
    by_arm
        .iter()
        .any(|(_, m)| m != first || m.len() > 1)
        .then(|| {
            by_arm
                .iter()
                .map(|(a, m)| format!("{a} {}", m.join("+")))
                .collect::<Vec<_>>()
                .join(", ")
        })
}

/// Warnings about load summaries whose numbers should not be published as the server's.
fn unsound_loads(arms: &[load::Arm]) -> Vec<String> {
    let mut warnings = Vec::new();
    for a in arms {
        for r in &a.reps {
            for s in &r.loads {
                let at = format!("arm {:?}, {}", a.name, r.dir.display());
                if s.client.saturated {
                    warnings.push(format!(
                        "{at}: trafficgen's client was saturated (its own lag, a backlog on its \
                         connections, or CPU): that latency measures the load generator as much \
                         as the mesh"
                    ));
                }
                if s.interrupted {
                    warnings.push(format!(
                        "{at}: the load run was interrupted after {:.1} s",
                        s.duration_s
                    ));
                }
            }
            // Several generators in one repetition are added up: on one Poisson seed they sent
            // one schedule twice over.
            if meshbench_formats::trafficgen::shared_poisson_seed(&r.loads).is_some() {
                warnings.push(format!(
                    "arm {:?}, {}: two load runs used the same Poisson seed, so their \
                     generators sent on the same schedule: the load came in bursts of both at \
                     once, not as independent arrivals",
                    a.name,
                    r.dir.display()
                ));
            }
        }
    }
    warnings
}

/// Repetitions whose pod rows cannot show the mesh's parts: rows without a namespace (a
/// `kubectl top pod` table without `-A`) or none in the control plane's namespace, and rows
/// without containers (no `--containers`), where proxies are inside their pods' figures. Those
/// figures are left unknown; this says why.
fn uncovered_mesh_parts(
    arms: &[load::Arm],
    profiles: &[metrics::Profile],
) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    for a in arms {
        let profile = metrics::profile(a, profiles)?;
        for r in a.reps.iter().filter(|r| !r.pods.is_empty()) {
            let at = format!("arm {:?}, {}", a.name, r.dir.display());
            if profile.proxy.is_some() && r.pods.iter().all(|(_, p)| p.container.is_none()) {
                warnings.push(format!(
                    "{at}: pod rows without containers (`kubectl top pod` without --containers): \
                     the proxies' usage is inside their pods', so the proxy figures and the \
                     mesh's totals are unknown here; take the table with --containers"
                ));
            }
            let Some(ns) = &profile.control_plane else {
                continue;
            };
            let unnamed = r.pods.iter().filter(|(_, p)| p.namespace.is_none()).count();
            if unnamed > 0 {
                warnings.push(format!(
                    "{at}: {unnamed} pod rows have no namespace (a `kubectl top pod` table \
                     without -A): take the table with -A, or tell top-parse its namespace with \
                     -n NS"
                ));
            }
            if !r.pods.iter().any(|(_, p)| p.namespace.as_ref() == Some(ns)) {
                warnings.push(format!(
                    "{at}: no pod row is in the control plane's namespace ({ns}), so its usage \
                     and the mesh's total are unknown here, not zero"
                ));
            }
        }
    }
    Ok(warnings)
}

fn shown(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) => match unit {
            "millicores" => format!("{v:.1}m"),
            "bytes" => format!("{:.1}Mi", v / 1_048_576.0),
            "ms" => format!("{v:.1} ms"),
            "s" => format!("{v:.1} s"),
            "ratio" => format!("{:.3}%", v * 100.0),
            _ => format!("{v}"),
        },
    }
}

/// "istio uses 57% less", "no significant difference (+2% [-3%, +7%])": arm `other` against
/// the reference, in `row`.
fn verdict(row: &ComparisonRow, other: &str) -> String {
    let Some(&Delta {
        delta_pct: Some(d),
        ci95,
        significant,
    }) = row.deltas.get(other)
    else {
        return "–".to_owned();
    };
    let interval = ci95
        .map(|[lo, hi]| format!(" [{lo:+.0}%, {hi:+.0}%]"))
        .unwrap_or_default();
    if significant == Some(false) {
        return format!("no significant difference ({d:+.0}%{interval})");
    }
    if d.abs() < 0.5 {
        return format!("about the same ({d:+.1}%{interval})");
    }
    let (more, less) = match row.unit.as_str() {
        "ms" | "s" => ("slower", "faster"),
        "ratio" => ("more errors", "fewer errors"),
        _ => ("more", "less"),
    };
    let verb = if row.unit == "ms" || row.unit == "s" {
        "is"
    } else {
        "uses"
    };
    if row.unit == "ratio" {
        return format!("{d:+.0}%{interval}");
    }
    format!(
        "{other} {verb} {:.0}% {}{interval}",
        d.abs(),
        if d < 0.0 { less } else { more }
    )
}

fn markdown(c: &Comparison, one_repetition: bool) -> String {
    let mut out = String::new();
    let others = c.arms.get(1..).unwrap_or_default();
    // Two arms: one "Delta" column, as before; more: one per arm against the reference.
    let delta_heads: Vec<String> = match others {
        [_] => vec!["Delta".to_owned()],
        _ => others
            .iter()
            .map(|o| format!("{o} vs {}", c.arms[0]))
            .collect(),
    };
    let heads: Vec<&str> = std::iter::once("Metric")
        .chain(c.arms.iter().map(String::as_str))
        .chain(delta_heads.iter().map(String::as_str))
        .collect();
    out.push_str(&format!("| {} |\n", heads.join(" | ")));
    out.push_str(&format!(
        "|---|{}{}\n",
        "---|".repeat(c.arms.len()),
        "---|".repeat(delta_heads.len())
    ));
    for row in &c.rows {
        if row.values.values().all(Option::is_none) {
            continue;
        }
        let cells: Vec<String> = c
            .arms
            .iter()
            .map(|a| shown(row.values[a], &row.unit))
            .chain(others.iter().map(|o| verdict(row, o)))
            .collect();
        out.push_str(&format!("| {} | {} |\n", row.metric, cells.join(" | ")));
    }
    if one_repetition && !others.is_empty() {
        out.push_str(
            "\nOne repetition per arm: no confidence intervals, so no delta above can be told \
             from noise. Repeat each arm (sub-directories 1/, 2/, …) for intervals.\n",
        );
    }
    out
}

/// The documented columns (the second arm's delta), then the same four for each further arm,
/// prefixed with its name.
fn csv(c: &Comparison) -> String {
    let further = c.arms.get(2..).unwrap_or_default();
    let mut out = format!(
        "metric,unit,{},delta_pct,ci95_low,ci95_high,significant",
        c.arms.join(",")
    );
    for arm in further {
        out.push_str(&format!(
            ",{arm}_delta_pct,{arm}_ci95_low,{arm}_ci95_high,{arm}_significant"
        ));
    }
    out.push('\n');
    let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let four = |d: Option<&Delta>| {
        let d = d.copied().unwrap_or_default();
        format!(
            "{},{},{},{}",
            cell(d.delta_pct),
            cell(d.ci95.map(|c| c[0])),
            cell(d.ci95.map(|c| c[1])),
            d.significant.map(|s| s.to_string()).unwrap_or_default()
        )
    };
    for row in &c.rows {
        let values: Vec<String> = c.arms.iter().map(|a| cell(row.values[a])).collect();
        out.push_str(&format!(
            "{},{},{},{}",
            row.metric,
            row.unit,
            values.join(","),
            four(c.arms.get(1).and_then(|a| row.deltas.get(a)))
        ));
        for arm in further {
            out.push(',');
            out.push_str(&four(row.deltas.get(arm)));
        }
        out.push('\n');
    }
    out
}

/// Runs compare.
pub fn run(args: Args) -> Result<(), Error> {
    if let Some(dir) = &args.plot
        && dir.exists()
        && !dir.is_dir()
    {
        return Err(Error::Usage(format!(
            "--plot {}: exists and is not a directory",
            dir.display()
        )));
    }
    // A gate on an arm that is not given is a typo: say so before reading anything.
    for condition in &args.fail_if {
        if let gate::Scope::Arm(arm) = &condition.scope
            && !args.arms.iter().any(|(name, _)| name == arm)
        {
            return Err(Error::Usage(format!(
                "--fail-if '{condition}': no arm {arm:?}"
            )));
        }
    }
    let arms: Vec<load::Arm> = args
        .arms
        .iter()
        .map(|(name, dir)| load::arm(name, dir))
        .collect::<Result<_, _>>()?;
    for (i, a) in arms.iter().enumerate() {
        if arms[..i].iter().any(|b| b.name == a.name) {
            return Err(Error::Usage(format!("arm {:?} is named twice", a.name)));
        }
    }
    let baseline = match &args.baseline {
        None => 0,
        Some(name) => arms
            .iter()
            .position(|a| &a.name == name)
            .ok_or_else(|| Error::Usage(format!("--baseline {name:?} is not one of the arms")))?,
    };
    for w in like_for_like(&arms)
        .into_iter()
        .chain(unsound_loads(&arms))
        .chain(load::copies(&arms))
    {
        tracing::warn!("{w}");
    }
    let mut profiles = Vec::new();
    for path in &args.profile {
        profiles.extend(metrics::read_profiles(path)?);
    }
    profiles.extend(metrics::builtin_profiles());
    for w in uncovered_mesh_parts(&arms, &profiles)? {
        tracing::warn!("{w}");
    }
    let per_arm = measure(&arms, &profiles)?;
    let none = none_arm(&arms, &profiles);
    let comparison = table(
        &arms,
        &per_arm,
        none,
        baseline,
        args.bootstrap as usize,
        args.seed,
    );
    if let Some(dir) = &args.plot {
        // In the table's order: the reference first.
        let mut order = vec![baseline];
        order.extend((0..arms.len()).filter(|&i| i != baseline));
        let latency: Vec<_> = order
            .iter()
            .map(|&a| metrics::merged_latency(&per_arm[a]))
            .collect();
        let reps: Vec<_> = order.iter().map(|&a| per_arm[a].clone()).collect();
        plot::write(dir, &comparison, &latency, &reps)?;
    }
    let one_repetition = arms.iter().any(|a| a.reps.len() < 2);
    let format = args
        .format
        .unwrap_or(if std::io::stdout().is_terminal() && args.output == "-" {
            Format::Markdown
        } else {
            Format::Json
        });
    let text = match format {
        Format::Markdown => markdown(&comparison, one_repetition),
        Format::Csv => csv(&comparison),
        Format::Json => {
            let mut t = serde_json::to_string_pretty(&comparison).map_err(|e| Error::Write {
                path: args.output.clone(),
                source: e.into(),
            })?;
            t.push('\n');
            t
        }
    };
    let write_err = |source| Error::Write {
        path: args.output.clone(),
        source,
    };
    let mut out = Output::create(&args.output).map_err(write_err)?;
    out.write_all(text.as_bytes()).map_err(write_err)?;
    out.commit().map_err(write_err)?;

    let (mut failed, mut unchecked, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for condition in &args.fail_if {
        match condition.check(&comparison, &mut skipped) {
            gate::Verdict::Holds(reason) => failed.push(reason),
            gate::Verdict::Unchecked(reason) => unchecked.push(reason),
            gate::Verdict::DoesNotHold => {}
        }
    }
    for s in skipped {
        tracing::warn!("--fail-if {s}: left out");
    }
    if !unchecked.is_empty() {
        return Err(Error::Unchecked(unchecked.join("; ")));
    }
    if !failed.is_empty() {
        return Err(Error::Gate(format!("--fail-if: {}", failed.join("; "))));
    }
    Ok(())
}

/// `main`, in one call.
pub fn main_with(args: Args) -> ExitCode {
    args.log.init();
    meshbench_cli::exit("compare", run(args))
}
