//! From rows and summaries to the table's numbers (definitions in docs/methodology.md).
//!
//! Per repetition: control-plane usage is the sum over the control-plane namespace per snapshot,
//! then the median over snapshots; per-pod proxy usage is the mean over workload pods' proxy
//! containers per snapshot, then the median; the mesh total is control plane plus every proxy.
//! Latency comes from the repetition's trafficgen histograms merged. Per arm: resource and time
//! metrics are the mean over repetitions; latency comes from every repetition's histograms merged
//! (percentiles are never averaged).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use meshbench_formats::comparison::METRICS;
use meshbench_formats::trafficgen::{decode_histogram, new_histogram};
use rand::{Rng, SeedableRng};

use crate::Error;
use crate::load::{Arm, Repetition};

/// Which namespace is a mesh's control plane and which container its proxy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub mesh: String,
    pub control_plane: Option<String>,
    pub proxy: Option<String>,
}

/// The built-in profiles: linkerd, istio and none.
pub fn builtin_profiles() -> Vec<Profile> {
    let p = |mesh: &str, cp: Option<&str>, proxy: Option<&str>| Profile {
        mesh: mesh.to_owned(),
        control_plane: cp.map(str::to_owned),
        proxy: proxy.map(str::to_owned),
    };
    vec![
        p("linkerd", Some("linkerd"), Some("linkerd-proxy")),
        p("istio", Some("istio-system"), Some("istio-proxy")),
        p("none", None, None),
    ]
}

/// A profile file: `[[profile]]` tables with `mesh`, and optionally `control_plane` (a
/// namespace) and `proxy` (a container name).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profile: Vec<Profile>,
}

/// Reads a profile file; its profiles come before (and so override) the built-in ones.
pub fn read_profiles(path: &std::path::Path) -> Result<Vec<Profile>, Error> {
    let bad = |problem: String| Error::Input {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    parse_profiles(&text).map_err(bad)
}

/// Reads the text of a profile file.
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, String> {
    let file: ProfileFile = toml::from_str(text).map_err(|e| format!("not a profile file: {e}"))?;
    Ok(file.profile)
}

/// The arm's mesh (from its mesh-install summary, else its name) and its profile.
pub fn profile(arm: &Arm, profiles: &[Profile]) -> Result<Profile, Error> {
    let mesh = arm
        .reps
        .iter()
        .find_map(|r| r.install.as_ref().map(|i| i.mesh.clone()))
        .unwrap_or_else(|| arm.name.clone());
    profiles
        .iter()
        .find(|p| p.mesh == mesh)
        .cloned()
        .ok_or_else(|| Error::UnknownMesh {
            arm: arm.name.clone(),
            mesh,
        })
}

const N: usize = METRICS.len();
/// The two rows from here are differences to the `none` arm, filled in by the table.
pub const OVER_NONE: usize = 16;
/// Each usage-beyond-none row with the node total it is taken from.
pub const OVER_NONE_OF: [(usize, usize); 2] = [(OVER_NONE, 14), (OVER_NONE + 1, 15)];
/// The proxies' p95 (CPU, memory), then the injection coverage.
const P95: usize = 18;

/// A snapshot: the file it came from, and its place among that file's snapshots.
type Snapshot = (usize, usize);

/// Cuts rows, in file order, into snapshots: a file's rows, cut wherever a row's key (its pod
/// and container, or its node) comes again. Not by timestamp: the metrics API stamps each pod
/// with the end of its own window, so one sample (`kubectl get --raw`, `top-parse
/// --from-cluster`) carries many timestamps, seconds apart; split by them, a sample's sums
/// would fall apart into partial ones.
fn snapshots<K: Eq + std::hash::Hash>(rows: impl IntoIterator<Item = (usize, K)>) -> Vec<Snapshot> {
    let mut seen = std::collections::HashSet::new();
    let mut at: Option<Snapshot> = None;
    let mut out = Vec::new();
    for (file, key) in rows {
        let next = match at {
            Some((f, n)) if f == file && !seen.contains(&key) => (f, n),
            Some((f, n)) if f == file => (f, n + 1),
            _ => (file, 0),
        };
        if at != Some(next) {
            seen.clear();
        }
        seen.insert(key);
        at = Some(next);
        out.push(next);
    }
    out
}

/// The 95th percentile (nearest rank) of some values.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn p95(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}
const LATENCY: [(usize, f64); 4] = [(6, 0.5), (7, 0.9), (8, 0.99), (9, 0.999)];

/// One repetition's values, indexed like [`METRICS`], and its merged latency histogram.
#[derive(Debug, Clone)]
pub struct RepValues {
    pub values: [Option<f64>; N],
    /// Lowest and highest snapshot value, for metrics read from snapshots.
    pub ranges: [Option<(f64, f64)>; N],
    pub latency: Option<Histogram<u64>>,
    /// Request counts summed over the repetition's summaries (and then over repetitions) in
    /// 128 bits: a hand-made summary's counts near 2^64 must not wrap.
    pub errors: u128,
    pub scheduled: u128,
}

/// The lowest and highest of some values.
fn range(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().reduce(f64::min)?;
    let max = v.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[allow(clippy::cast_precision_loss)]
pub fn repetition(rep: &Repetition, p: &Profile) -> Result<RepValues, Error> {
    let mut values = [None; N];
    // Snapshots -> [cp cpu, cp mem, all proxies' cpu, all proxies' mem,
    // proxies in workload pods, their cpu, their mem, control-plane rows, container rows]
    let mut snaps: BTreeMap<Snapshot, [f64; 9]> = BTreeMap::new();
    // Per snapshot, each workload proxy's CPU and memory, for the p95.
    let mut proxies: BTreeMap<Snapshot, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let pod_snapshots = snapshots(rep.pods.iter().map(|(file, r)| {
        let key = (
            r.namespace.as_deref(),
            r.pod.as_str(),
            r.container.as_deref(),
        );
        (*file, key)
    }));
    for ((_, row), snapshot) in rep.pods.iter().zip(pod_snapshots) {
        let s = snaps.entry(snapshot).or_insert([0.0; 9]);
        let cpu = row.cpu_millicores.millicores_f64();
        let mem = row.memory_bytes as f64;
        let in_cp = p.control_plane.is_some() && row.namespace == p.control_plane;
        if in_cp {
            s[0] += cpu;
            s[1] += mem;
            s[7] += 1.0;
        }
        if row.container.is_some() {
            s[8] += 1.0;
        }
        if p.proxy.is_some() && row.container == p.proxy {
            s[2] += cpu;
            s[3] += mem;
            if !in_cp {
                s[4] += 1.0;
                s[5] += cpu;
                s[6] += mem;
                let each = proxies.entry(snapshot).or_default();
                each.0.push(cpu);
                each.1.push(mem);
            }
        }
    }
    let mut ranges = [None; N];
    if !snaps.is_empty() {
        let mut column = |i: usize, f: &dyn Fn(&[f64; 9]) -> Option<f64>| {
            let v: Vec<f64> = snaps.values().filter_map(f).collect();
            ranges[i] = range(&v);
            median(v)
        };
        // A mesh's control plane always has pods: a snapshot without one row of its namespace
        // did not cover it (`kubectl top pod -n sample-app`, or a table without a NAMESPACE
        // column), so its usage there is unknown, not zero.
        let covered = p.control_plane.is_none();
        let cp = move |s: &[f64; 9], v: f64| (covered || s[7] > 0.0).then_some(v);
        // Likewise a snapshot of pods, not containers (`kubectl top pod` without
        // --containers): the proxies' usage is inside their pods', not zero.
        let proxied = p.proxy.is_some();
        let mesh = move |s: &[f64; 9], v: f64| cp(s, v).filter(|_| !proxied || s[8] > 0.0);
        values[0] = column(0, &|s| cp(s, s[0]));
        values[1] = column(1, &|s| cp(s, s[1]));
        values[2] = if p.proxy.is_none() {
            Some(0.0)
        } else {
            column(2, &|s| (s[4] > 0.0).then(|| s[5] / s[4]))
        };
        values[3] = if p.proxy.is_none() {
            Some(0.0)
        } else {
            column(3, &|s| (s[4] > 0.0).then(|| s[6] / s[4]))
        };
        // Control plane plus the workload's proxies (the control plane's own proxies, where it
        // is meshed, are already in its sum).
        values[4] = column(4, &|s| mesh(s, s[0] + s[5]));
        values[5] = column(5, &|s| mesh(s, s[1] + s[6]));
    }
    if p.proxy.is_some() {
        values[P95] = median(proxies.values().filter_map(|(c, _)| p95(c)).collect());
        values[P95 + 1] = median(proxies.values().filter_map(|(_, m)| p95(m)).collect());
    } else if !snaps.is_empty() {
        values[P95] = Some(0.0);
        values[P95 + 1] = Some(0.0);
    }

    // Node usage per snapshot: the sum over nodes with metrics.
    let mut nodes: BTreeMap<Snapshot, (f64, f64)> = BTreeMap::new();
    let node_snapshots = snapshots(rep.nodes.iter().map(|(file, r)| (*file, r.node.as_str())));
    for ((_, row), snapshot) in rep.nodes.iter().zip(node_snapshots) {
        let s = nodes.entry(snapshot).or_insert((0.0, 0.0));
        s.0 += row
            .cpu_millicores
            .map_or(0.0, meshbench_formats::usage::Cpu::millicores_f64);
        s.1 += row.memory_bytes.map_or(0.0, |m| m as f64);
    }
    let node_cpu: Vec<f64> = nodes.values().map(|n| n.0).collect();
    let node_mem: Vec<f64> = nodes.values().map(|n| n.1).collect();
    ranges[14] = range(&node_cpu);
    ranges[15] = range(&node_mem);
    values[14] = median(node_cpu);
    values[15] = median(node_mem);

    let mut latency = None;
    let (mut errors, mut scheduled) = (0, 0);
    for load in &rep.loads {
        let h = decode_histogram(&load.histogram).map_err(|e| Error::Input {
            path: rep.dir.display().to_string(),
            problem: e.to_string(),
        })?;
        latency
            .get_or_insert_with(new_histogram)
            .add(&h)
            .map_err(|e| Error::Input {
                path: rep.dir.display().to_string(),
                problem: format!("histograms do not add: {e:?}"),
            })?;
        errors += u128::from(load.requests.errors);
        scheduled += u128::from(load.requests.scheduled);
    }
    if let Some(h) = &latency {
        for (i, q) in LATENCY {
            values[i] = (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        }
    }
    if scheduled > 0 {
        values[10] = Some(errors as f64 / scheduled as f64);
    }
    if let Some(install) = &rep.install {
        values[11] = Some(install.install_s);
        values[12] = install.first_injected_pod_s;
        values[13] = Some(install.all_pods_ready_s);
        values[P95 + 2] = install.injection_coverage();
    }
    Ok(RepValues {
        values,
        ranges,
        latency,
        errors,
        scheduled,
    })
}

/// The lowest and highest snapshot value of metric `i` over all of an arm's repetitions.
pub fn arm_range(reps: &[RepValues], i: usize) -> Option<[f64; 2]> {
    let lows: Vec<f64> = reps
        .iter()
        .filter_map(|r| r.ranges[i].map(|x| x.0))
        .collect();
    let highs: Vec<f64> = reps
        .iter()
        .filter_map(|r| r.ranges[i].map(|x| x.1))
        .collect();
    Some([range(&lows)?.0, range(&highs)?.1])
}

/// All of an arm's latencies in one histogram.
pub fn merged_latency<'a>(reps: impl IntoIterator<Item = &'a RepValues>) -> Option<Histogram<u64>> {
    let mut merged: Option<Histogram<u64>> = None;
    for h in reps.into_iter().filter_map(|r| r.latency.as_ref()) {
        let _ = merged.get_or_insert_with(new_histogram).add(h);
    }
    merged
}

/// An arm's values over the chosen repetitions (indices into `reps`, repeats allowed).
#[allow(clippy::cast_precision_loss)]
pub fn arm_values(reps: &[RepValues], chosen: &[usize]) -> [Option<f64>; N] {
    let mut values = arm_values_without_latency(reps, chosen);
    if let Some(h) = merged_latency(chosen.iter().map(|&r| &reps[r])).filter(|h| !h.is_empty()) {
        for (i, q) in LATENCY {
            values[i] = Some(h.value_at_quantile(q) as f64 / 1000.0);
        }
    }
    values
}

/// Every metric but the latency percentiles.
#[allow(clippy::cast_precision_loss)]
fn arm_values_without_latency(reps: &[RepValues], chosen: &[usize]) -> [Option<f64>; N] {
    let mut values = [None; N];
    for (i, v) in values.iter_mut().enumerate() {
        if LATENCY.iter().any(|(j, _)| *j == i) || i == 10 || (OVER_NONE..P95).contains(&i) {
            continue;
        }
        let xs: Vec<f64> = chosen.iter().filter_map(|&r| reps[r].values[i]).collect();
        if !xs.is_empty() {
            *v = Some(xs.iter().sum::<f64>() / xs.len() as f64);
        }
    }
    let (mut errors, mut scheduled) = (0, 0);
    for &r in chosen {
        errors += reps[r].errors;
        scheduled += reps[r].scheduled;
    }
    if scheduled > 0 {
        values[10] = Some(errors as f64 / scheduled as f64);
    }
    values
}

/// (b − a) / a × 100, when a is non-zero.
pub fn delta_pct(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a * 100.0),
        _ => None,
    }
}

/// An arm's latency distributions on one grid: every value any repetition recorded, sorted,
/// and each repetition's count at each. A resample's pooled percentiles are then one weighted
/// scan, instead of adding whole histograms (which took most of compare's time).
struct LatencyGrid {
    values: Vec<u64>,
    counts: Vec<Vec<u64>>,
}

impl LatencyGrid {
    fn new(reps: &[RepValues]) -> Option<LatencyGrid> {
        let mut values: Vec<u64> = reps
            .iter()
            .filter_map(|r| r.latency.as_ref())
            .flat_map(|h| h.iter_recorded().map(|v| v.value_iterated_to()))
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        values.dedup();
        let counts = reps
            .iter()
            .map(|r| {
                let mut c = vec![0; values.len()];
                if let Some(h) = &r.latency {
                    for v in h.iter_recorded() {
                        if let Ok(i) = values.binary_search(&v.value_iterated_to()) {
                            c[i] += v.count_at_value();
                        }
                    }
                }
                c
            })
            .collect();
        Some(LatencyGrid { values, counts })
    }

    /// The pooled p50, p90, p99 and p99.9 of the chosen repetitions, in ms: the first value at
    /// which the cumulative count reaches the quantile's share, as HdrHistogram reads it.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn quantiles(&self, chosen: &[usize]) -> Option<[f64; 4]> {
        // In 128 bits: counts near 2^63 from a hand-made summary must not wrap when pooled.
        let mut pooled = vec![0u128; self.values.len()];
        for &r in chosen {
            for (p, &c) in pooled.iter_mut().zip(&self.counts[r]) {
                *p += u128::from(c);
            }
        }
        let total: u128 = pooled.iter().sum();
        if total == 0 {
            return None;
        }
        // The count each quantile is reached at, worked out once rather than at every value.
        // At most `total`: past 2^53 the product is rounded, and could land past the last count.
        let reached = LATENCY.map(|(_, q)| ((q * total as f64).ceil() as u128).clamp(1, total));
        let mut out = [0.0; 4];
        let mut k = 0;
        let mut seen = 0;
        for (i, c) in pooled.iter().enumerate() {
            seen += c;
            while k < 4 && seen >= reached[k] {
                out[k] = self.values[i] as f64 / 1000.0;
                k += 1;
            }
            if k == 4 {
                break;
            }
        }
        Some(out)
    }
}

/// [`arm_values`] for a resample: the latency rows from the grid.
fn resampled_values(
    reps: &[RepValues],
    grid: Option<&LatencyGrid>,
    chosen: &[usize],
) -> [Option<f64>; N] {
    let mut values = arm_values_without_latency(reps, chosen);
    if let Some(q) = grid.and_then(|g| g.quantiles(chosen)) {
        for (k, (i, _)) in LATENCY.iter().enumerate() {
            values[*i] = Some(q[k]);
        }
    }
    values
}

/// Student's t quantile at 0.975 for `df` degrees of freedom (at least 1, not necessarily
/// whole, as Welch's are): tabled exact values, closely spaced below 5 where the quantile
/// changes fast, interpolated linearly in 1/df, and the normal 1.96 in the limit. The
/// interpolation is never below the exact quantile (so an interval errs wide), and above it by
/// at most 0.7% below 2 degrees of freedom and 0.2% from there on.
pub(crate) fn t975(df: f64) -> f64 {
    // Whole degrees of freedom from the standard tables; the fractional ones below 5 computed
    // for this table by integrating the t density numerically (checked to 4 decimals against
    // the whole ones).
    const TABLE: [(f64, f64); 29] = [
        (1.0, 12.7062),
        (1.1, 10.2768),
        (1.2, 8.6488),
        (1.3, 7.5005),
        (1.4, 6.6570),
        (1.5, 6.0167),
        (1.6, 5.5172),
        (1.8, 4.7949),
        (2.0, 4.3027),
        (2.25, 3.8755),
        (2.5, 3.5747),
        (2.75, 3.3525),
        (3.0, 3.1824),
        (3.5, 2.9401),
        (4.0, 2.7764),
        (4.5, 2.6589),
        (5.0, 2.5706),
        (6.0, 2.4469),
        (7.0, 2.3646),
        (8.0, 2.3060),
        (9.0, 2.2622),
        (10.0, 2.2281),
        (12.0, 2.1788),
        (15.0, 2.1314),
        (20.0, 2.0860),
        (30.0, 2.0423),
        (60.0, 2.0003),
        (120.0, 1.9799),
        (f64::INFINITY, 1.9600),
    ];
    let df = if df.is_nan() { 1.0 } else { df.max(1.0) };
    let x = 1.0 / df;
    for pair in TABLE.windows(2) {
        let ((d0, t0), (d1, t1)) = (pair[0], pair[1]);
        if df <= d1 {
            let (x0, x1) = (1.0 / d0, 1.0 / d1);
            return t1 + (t0 - t1) * (x - x1) / (x0 - x1);
        }
    }
    1.96
}

/// Running mean and sum of squared deviations (Welford), for the variance of a bootstrap
/// statistic without keeping every resample.
#[derive(Debug, Default, Clone, Copy)]
struct Spread {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Spread {
    fn add(&mut self, x: f64) {
        self.n += 1;
        #[allow(clippy::cast_precision_loss)]
        let n = self.n as f64;
        let d = x - self.mean;
        self.mean += d / n;
        self.m2 += d * (x - self.mean);
    }

    #[allow(clippy::cast_precision_loss)]
    fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }
}

/// One arm's values and their bootstrap variances: what [`interval`] needs of each arm, worked
/// out once per arm however many arms it is compared with.
#[derive(Debug, Clone)]
pub struct ArmSpread {
    repetitions: usize,
    values: [Option<f64>; N],
    /// Variance of each value over the resamples, corrected by n/(n−1) for the bootstrap's
    /// shrinkage; `None` when the value is missing from most resamples.
    variances: [Option<f64>; N],
}

/// Resamples an arm's repetitions `rounds` times (seeded) and recomputes its values (a mean
/// over repetitions, or a latency quantile of their merged histograms): their spread is each
/// value's standard error. No variances for an arm of fewer than two repetitions.
pub fn spread(reps: &[RepValues], rounds: usize, seed: u64) -> ArmSpread {
    let grid = LatencyGrid::new(reps);
    let all: Vec<usize> = (0..reps.len()).collect();
    let values = resampled_values(reps, grid.as_ref(), &all);
    let mut variances = [None; N];
    if reps.len() >= 2 && rounds > 0 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut spreads = [Spread::default(); N];
        let mut chosen = vec![0; reps.len()];
        for _ in 0..rounds {
            for c in &mut chosen {
                *c = rng.random_range(0..reps.len());
            }
            let v = resampled_values(reps, grid.as_ref(), &chosen);
            for (s, x) in spreads.iter_mut().zip(v) {
                if let Some(x) = x {
                    s.add(x);
                }
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let n = reps.len() as f64;
        for (var, s) in variances.iter_mut().zip(&spreads) {
            // A value needs to be there in most resamples.
            if s.n * 2 >= rounds as u64 {
                *var = Some(s.variance() * n / (n - 1.0));
            }
        }
    }
    ArmSpread {
        repetitions: reps.len(),
        values,
        variances,
    }
}

/// 95% confidence intervals of every metric's delta from `a` to `b` (in percent); `None` where
/// either arm has fewer than two repetitions or lacks the value, or `a`'s value is zero.
///
/// The interval is the delta ± Student's t (Welch–Satterthwaite degrees of freedom) standard
/// errors, the standard errors from each arm's bootstrap ([`spread`]), and on the log of the
/// ratio when both values are positive, so that it never goes below −100%.
///
/// Why not the 2.5th and 97.5th percentiles of resampled deltas: with the few repetitions a
/// benchmark has, that interval is far too narrow. Simulated with no true difference (normal
/// noise, docs/compare.md), it excluded zero in 34% of cases with 2 repetitions per arm, 18%
/// with 3, 13% with 5 and 7.5% with 10, where a 95% interval should in 5%.
pub fn interval(a: &ArmSpread, b: &ArmSpread) -> [Option<[f64; 2]>; N] {
    let mut out = [None; N];
    if a.repetitions < 2 || b.repetitions < 2 {
        return out;
    }
    #[allow(clippy::cast_precision_loss)]
    let (na, nb) = (a.repetitions as f64, b.repetitions as f64);
    for (i, slot) in out.iter_mut().enumerate() {
        let (Some(ma), Some(mb), Some(var_a), Some(var_b)) =
            (a.values[i], b.values[i], a.variances[i], b.variances[i])
        else {
            continue;
        };
        if ma == 0.0 {
            continue;
        }
        *slot = Some(ratio_interval(
            ma,
            mb,
            &[(var_a / (ma * ma), na), (var_b / (mb * mb), nb)],
            &[
                (var_a * (100.0 * mb / (ma * ma)).powi(2), na),
                (var_b * (100.0 / ma).powi(2), nb),
            ],
        ));
    }
    out
}

/// 95% confidence interval of the delta (in percent) between two arms' usage beyond the arm
/// without a mesh (`metric` is a node total; over = total − the none arm's total), as for
/// [`interval`]. `None` when an arm has fewer than two repetitions, a value or variance is
/// missing, or `a`'s excess is zero. Both excesses subtract the same estimate of the none arm,
/// so its error moves them together: the three arms' totals are the independent parts.
pub fn over_none_interval(
    a: &ArmSpread,
    b: &ArmSpread,
    none: &ArmSpread,
    metric: usize,
) -> Option<[f64; 2]> {
    let arms = [a, b, none];
    if arms.iter().any(|s| s.repetitions < 2) {
        return None;
    }
    let mut totals = [0.0; 3];
    let mut variances = [0.0; 3];
    for (k, s) in arms.iter().enumerate() {
        totals[k] = s.values[metric]?;
        variances[k] = s.variances[metric]?;
    }
    let (oa, ob) = (totals[0] - totals[2], totals[1] - totals[2]);
    if oa == 0.0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = arms.map(|s| s.repetitions as f64);
    // Each total's contribution to a variance, for a function with these gradients.
    let parts = |gradient: [f64; 3]| -> [(f64, f64); 3] {
        std::array::from_fn(|k| (gradient[k] * gradient[k] * variances[k], n[k]))
    };
    Some(ratio_interval(
        oa,
        ob,
        // ln(ob) − ln(oa)
        &parts([-1.0 / oa, 1.0 / ob, 1.0 / oa - 1.0 / ob]),
        // 100 (ob / oa − 1)
        &parts([
            -100.0 * ob / (oa * oa),
            100.0 / oa,
            100.0 * (ob - oa) / (oa * oa),
        ]),
    ))
}

/// The 95% interval of a delta 100 (b / a − 1), from the variance contributions of independent
/// values (each with its number of repetitions): to ln(b / a) (`log_parts`) when both are
/// positive, so that the interval stays above −100%; otherwise to the delta itself, to first
/// order (`linear_parts`).
fn ratio_interval(
    a: f64,
    b: f64,
    log_parts: &[(f64, f64)],
    linear_parts: &[(f64, f64)],
) -> [f64; 2] {
    if a > 0.0 && b > 0.0 {
        let half = half_width(log_parts);
        let r = (b / a).ln();
        [
            ((r - half).exp() - 1.0) * 100.0,
            ((r + half).exp() - 1.0) * 100.0,
        ]
    } else {
        let half = half_width(linear_parts);
        let d = (b - a) / a * 100.0;
        [d - half, d + half]
    }
}

/// Student's t (Welch–Satterthwaite degrees of freedom) times the standard error of a sum of
/// independent variance contributions, each from values of so many repetitions.
fn half_width(parts: &[(f64, f64)]) -> f64 {
    let total: f64 = parts.iter().map(|(c, _)| c).sum();
    let denominator: f64 = parts.iter().map(|(c, n)| c * c / (n - 1.0)).sum();
    let df = if denominator > 0.0 {
        total * total / denominator
    } else {
        parts.iter().map(|(_, n)| n - 1.0).sum()
    };
    t975(df) * total.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_cut_where_a_key_comes_again_or_the_file_changes() {
        let rows = [
            (0, "a"),
            (0, "b"),
            (0, "c"),
            (0, "a"), // the second sample of file 0
            (0, "c"),
            (0, "b"),
            (1, "a"), // another file
            (1, "b"),
            (1, "b"), // a key twice in a row
        ];
        assert_eq!(
            snapshots(rows),
            [
                (0, 0),
                (0, 0),
                (0, 0),
                (0, 1),
                (0, 1),
                (0, 1),
                (1, 0),
                (1, 0),
                (1, 1)
            ]
        );
        assert!(snapshots(Vec::<(usize, &str)>::new()).is_empty());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn p95_is_nearest_rank() {
        assert_eq!(p95(&[]), None);
        assert_eq!(p95(&[5.0]), Some(5.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&hundred), Some(95.0));
    }

    #[test]
    fn deltas() {
        assert_eq!(
            delta_pct(Some(280.0), Some(120.0)).map(f64::round),
            Some(-57.0)
        );
        assert_eq!(delta_pct(Some(0.0), Some(1.0)), None);
        assert_eq!(delta_pct(None, Some(1.0)), None);
    }

    /// [`interval`] of two arms, each resampled `rounds` times from `seed`.
    fn bootstrap(
        a: &[RepValues],
        b: &[RepValues],
        rounds: usize,
        seed: u64,
    ) -> [Option<[f64; 2]>; N] {
        interval(
            &spread(a, rounds, seed),
            &spread(b, rounds, seed.wrapping_add(1)),
        )
    }

    fn rep(x: f64) -> RepValues {
        rep_at(0, x)
    }

    /// A repetition with one metric's value.
    fn rep_at(metric: usize, x: f64) -> RepValues {
        let mut values = [None; N];
        values[metric] = Some(x);
        RepValues {
            values,
            ranges: [None; N],
            latency: None,
            errors: 0,
            scheduled: 0,
        }
    }

    #[test]
    fn grid_quantiles_agree_with_merged_histograms() {
        let mut reps = Vec::new();
        for r in 0..3u64 {
            let mut h = new_histogram();
            for i in 0..5_000u64 {
                h.record(1_000 + (i * 37 + r * 1_111) % 90_000).unwrap();
            }
            let mut values = [None; N];
            values[0] = Some(1.0);
            reps.push(RepValues {
                values,
                ranges: [None; N],
                latency: Some(h),
                errors: 0,
                scheduled: 0,
            });
        }
        let grid = LatencyGrid::new(&reps).unwrap();
        for chosen in [vec![0, 1, 2], vec![0, 0, 2], vec![1]] {
            let exact = arm_values(&reps, &chosen);
            let fast = grid.quantiles(&chosen).unwrap();
            for (k, (i, _)) in LATENCY.iter().enumerate() {
                assert_eq!(exact[*i], Some(fast[k]), "{chosen:?} q{k}");
            }
        }
    }

    /// Counts that only a hand-made summary has (near 2^64) pool without wrapping: in a debug
    /// build they panicked, in a release build they wrapped to wrong percentiles and error rates.
    #[test]
    fn counts_near_two_to_the_64_pool_without_wrapping() {
        let rep = |errors: u64| {
            let mut h = new_histogram();
            h.record_n(1_000, 1 << 63).unwrap();
            h.record(50_000).unwrap();
            RepValues {
                values: [None; N],
                ranges: [None; N],
                latency: Some(h),
                errors: u128::from(errors),
                scheduled: u128::from(u64::MAX),
            }
        };
        let reps = vec![rep(u64::MAX / 2), rep(u64::MAX / 2 + 1)];
        let grid = LatencyGrid::new(&reps).unwrap();
        assert_eq!(grid.quantiles(&[0, 1]), Some([1.0; 4]));
        let error_rate = arm_values(&reps, &[0, 1])[10].unwrap();
        assert!((error_rate - 0.5).abs() < 1e-9, "{error_rate}");
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_delta() {
        let a: Vec<RepValues> = [100.0, 102.0, 98.0, 101.0, 99.0].map(rep).into();
        let b: Vec<RepValues> = [50.0, 51.0, 49.0, 52.0, 48.0].map(rep).into();
        let one = bootstrap(&a, &b, 2000, 7)[0].unwrap();
        assert_eq!(
            Some(one),
            bootstrap(&a, &b, 2000, 7)[0],
            "same seed, same interval"
        );
        assert!(one[0] < -50.0 && -50.0 < one[1] && one[1] < 0.0, "{one:?}");
        // Overlapping arms: the interval crosses zero.
        let c: Vec<RepValues> = [95.0, 105.0, 100.0, 90.0, 110.0].map(rep).into();
        let overlap = bootstrap(&a, &c, 2000, 7)[0].unwrap();
        assert!(overlap[0] < 0.0 && 0.0 < overlap[1], "{overlap:?}");
        assert_eq!(bootstrap(&a[..1], &b, 2000, 7)[0], None);
    }

    /// Normal noise by Box–Muller, from a seeded generator.
    fn normal(rng: &mut rand::rngs::StdRng, mean: f64, sd: f64) -> f64 {
        let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// How often the interval excludes zero over `sims` simulated comparisons of `n`
    /// repetitions per arm, the second arm's mean `shift` above the first's (noise sd 5).
    fn excludes_zero(n: usize, shift: f64, sims: usize) -> f64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut hits = 0;
        for sim in 0..sims {
            let a: Vec<RepValues> = (0..n).map(|_| rep(normal(&mut rng, 100.0, 5.0))).collect();
            let b: Vec<RepValues> = (0..n)
                .map(|_| rep(normal(&mut rng, 100.0 + shift, 5.0)))
                .collect();
            let [low, high] = bootstrap(&a, &b, 400, sim as u64)[0].unwrap();
            if low > 0.0 || high < 0.0 {
                hits += 1;
            }
        }
        f64::from(hits) / sims as f64
    }

    #[test]
    fn intervals_keep_their_95_percent_with_few_repetitions() {
        // No true difference: a 95% interval excludes zero 5% of the time. The percentile
        // bootstrap this replaced did so in 18% (3 repetitions) and 13% (5) of such cases.
        for n in [2, 3, 5] {
            let false_alarms = excludes_zero(n, 0.0, 300);
            assert!(false_alarms <= 0.08, "{n} repetitions: {false_alarms}");
        }
        // A real difference of 15% (three times the noise) is still found with 5 repetitions.
        let found = excludes_zero(5, 15.0, 100);
        assert!(found >= 0.9, "{found}");
    }

    /// How often the p50 and p99 intervals exclude zero over `sims` simulated comparisons of
    /// `n` repetitions per arm with the same latency distribution: 1,000 exponential latencies
    /// (mean 1 ms) per repetition, each repetition's scale off by a normal 5% (runs differ).
    fn latency_false_alarms(n: usize, sims: usize) -> [f64; 2] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut hits = [0u32; 2];
        let arm = |rng: &mut rand::rngs::StdRng| -> Vec<RepValues> {
            (0..n)
                .map(|_| {
                    let scale = normal(rng, 1.0, 0.05);
                    let mut h = new_histogram();
                    for _ in 0..1_000 {
                        let u: f64 = rng.random_range(f64::EPSILON..1.0);
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        h.record((-u.ln() * 1_000.0 * scale).max(1.0) as u64)
                            .unwrap();
                    }
                    RepValues {
                        values: [None; N],
                        ranges: [None; N],
                        latency: Some(h),
                        errors: 0,
                        scheduled: 0,
                    }
                })
                .collect()
        };
        for sim in 0..sims {
            let (a, b) = (arm(&mut rng), arm(&mut rng));
            let intervals = bootstrap(&a, &b, 200, sim as u64);
            for (k, i) in [LATENCY[0].0, LATENCY[2].0].into_iter().enumerate() {
                let [low, high] = intervals[i].unwrap();
                if low > 0.0 || high < 0.0 {
                    hits[k] += 1;
                }
            }
        }
        hits.map(|h| f64::from(h) / sims as f64)
    }

    #[test]
    fn latency_intervals_keep_their_95_percent_with_few_repetitions() {
        // Measured with 2,000 latencies, 150 comparisons and 300 resamples: p50 2.7% and p99
        // 5.3% with 3 repetitions, 4.0% and 2.0% with 5. Smaller here, to keep the test quick.
        for n in [3, 5] {
            let [p50, p99] = latency_false_alarms(n, 100);
            assert!(
                p50 <= 0.1 && p99 <= 0.1,
                "{n} repetitions: p50 {p50}, p99 {p99}"
            );
        }
    }

    #[test]
    fn usage_beyond_the_none_arm_gets_an_interval_that_keeps_its_95_percent() {
        // Node CPU totals: the none arm ~600m, two meshes ~1000m (an excess of ~400m each), noise
        // sd 15m per repetition, 5 repetitions. The none arm's error moves both excesses.
        let total = |x: f64| rep_at(14, x);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let arm = |mean: f64, rng: &mut rand::rngs::StdRng, seed: u64| {
            let reps: Vec<RepValues> = (0..5).map(|_| total(normal(rng, mean, 15.0))).collect();
            spread(&reps, 300, seed)
        };
        let (mut false_alarms, mut found, mut covered) = (0u32, 0u32, 0u32);
        let sims = 200u32;
        for sim in 0..u64::from(sims) {
            let none = arm(600.0, &mut rng, 3 * sim);
            let a = arm(1000.0, &mut rng, 3 * sim + 1);
            let same = arm(1000.0, &mut rng, 3 * sim + 2);
            let more = arm(1200.0, &mut rng, 3 * sim + 2);
            let [low, high] = over_none_interval(&a, &same, &none, 14).unwrap();
            if low > 0.0 || high < 0.0 {
                false_alarms += 1;
            }
            // An excess of 600m against 400m: +50%.
            let [low, high] = over_none_interval(&a, &more, &none, 14).unwrap();
            found += u32::from(low > 0.0);
            covered += u32::from(low <= 50.0 && 50.0 <= high);
        }
        let rate = f64::from(false_alarms) / f64::from(sims);
        assert!(rate <= 0.08, "false alarms {rate}");
        assert!(found >= sims * 9 / 10, "found {found} of {sims}");
        assert!(covered >= sims * 9 / 10, "+50% inside {covered} of {sims}");
        // Fewer than two repetitions, or no excess to compare with: no interval.
        let one = spread(&[total(1000.0)], 300, 1);
        let none = spread(&[total(600.0), total(610.0)], 300, 2);
        let a = spread(&[total(1000.0), total(990.0)], 300, 3);
        assert_eq!(over_none_interval(&one, &a, &none, 14), None);
        assert_eq!(over_none_interval(&none, &a, &none, 14), None);
    }

    #[test]
    fn t_quantiles_match_the_table_and_fall_between() {
        assert!((t975(1.0) - 12.7062).abs() < 1e-9);
        assert!((t975(4.0) - 2.7764).abs() < 1e-9);
        assert!((t975(f64::INFINITY) - 1.96).abs() < 1e-9);
        // Exact t(0.975) between the table's rows, at degrees of freedom Welch's formula gives
        // two arms of two or three repetitions (1.05-3.25), and beyond.
        for (df, exact) in [
            (1.05, 11.3619),
            (1.7, 5.1188),
            (1.9, 4.5271),
            (2.1, 4.1122),
            (3.25, 3.0483),
            (5.5, 2.5019),
            (11.0, 2.2010),
            (25.0, 2.0595),
        ] {
            let t = t975(df);
            let bound = if df < 2.0 { 0.007 } else { 0.002 };
            assert!(
                t >= exact - 1e-4 && (t - exact) / exact < bound,
                "df {df}: {t} against {exact}"
            );
        }
        // Welch's degrees of freedom are rarely whole; below 1 they are taken as 1.
        assert!(t975(4.5) < t975(4.0) && t975(4.5) > t975(5.0));
        assert_eq!(t975(0.3), t975(1.0));
    }
}
