//! What the run reports: per-second collection while it runs (timeline rows, the interval log,
//! the progress line), then the summary, the timeline CSV and the percentile text.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use meshbench_formats::trafficgen::{
    Arrival, ClientCost, LatencyStats, Mode, Requests, TRAFFICGEN, TrafficgenSummary,
    encode_histogram, new_histogram,
};

use crate::engine::{Message, Outcome, SecondCounts, Shared};
use crate::{Error, Output, Plan};

/// One second of the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimelineRow {
    pub counts: SecondCounts,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// Gathers what the load threads send, second by second.
pub(crate) struct Collector {
    threads_seen: BTreeMap<u64, (usize, Histogram<u64>)>,
    rows: Vec<TimelineRow>,
    hlog: Option<Output>,
    progress: Option<indicatif::ProgressBar>,
    planned: Option<Duration>,
    totals: Vec<crate::engine::ThreadStats>,
    last_event: Option<std::time::Instant>,
    measure_start: std::time::Instant,
    /// Errors so far, for the progress line.
    errors: u64,
    /// The run's start, for the interval log's header.
    started_at: SystemTime,
}

impl Collector {
    pub(crate) fn new(
        plan: &Plan,
        shared: &Shared,
        started_at: SystemTime,
        hlog: Option<Output>,
        progress: bool,
    ) -> Result<Collector, Error> {
        let progress = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar.set_message(format!("connecting to {}", plan.url));
            bar
        });
        Ok(Collector {
            threads_seen: BTreeMap::new(),
            rows: Vec::new(),
            // The interval log is streamed to its file a second at a time.
            hlog,
            progress,
            planned: plan.duration,
            totals: Vec::new(),
            last_event: None,
            errors: 0,
            started_at,
            measure_start: shared.measure_start,
        })
    }

    /// Receives until every thread is done.
    pub(crate) fn collect(
        &mut self,
        rx: &mpsc::Receiver<Message>,
        threads: usize,
    ) -> Result<(), Error> {
        let mut done = 0;
        let mut hlog_entries: Vec<(u64, Histogram<u64>)> = Vec::new();
        while done < threads {
            // At a terminal, the line also moves between messages: during the warm-up, and
            // before the first measured second ends, no thread has anything to send.
            let message = if self.progress.is_some() {
                match rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(message) => message,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.tick(std::time::Instant::now());
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                let Ok(message) = rx.recv() else { break };
                message
            };
            match message {
                Message::Second {
                    second,
                    latency,
                    errors,
                } => {
                    self.errors += errors;
                    let entry = self
                        .threads_seen
                        .entry(second)
                        .or_insert_with(|| (0, new_histogram()));
                    entry.0 += 1;
                    let _ = entry.1.add(&latency);
                    if entry.0 == threads
                        && let Some((_, h)) = self.threads_seen.remove(&second)
                    {
                        self.second_done(second, &h);
                        hlog_entries.push((second, h));
                    }
                }
                Message::Done(stats) => {
                    self.totals.push(*stats);
                    done += 1;
                }
            }
            if !hlog_entries.is_empty() {
                self.write_hlog(&std::mem::take(&mut hlog_entries))?;
            }
        }
        // Seconds that not every thread reached (the last, partial one).
        let rest: Vec<(u64, Histogram<u64>)> = std::mem::take(&mut self.threads_seen)
            .into_iter()
            .map(|(s, (_, h))| (s, h))
            .collect();
        for (second, h) in &rest {
            self.second_done(*second, h);
        }
        self.write_hlog(&rest)?;
        if let Some(out) = self.hlog.take() {
            out.commit().map_err(|source| Error::Write {
                path: "--hlog".to_owned(),
                source,
            })?;
        }
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }

    /// Until the first measured second is reported: the warm-up's countdown, then the first
    /// second's.
    fn tick(&self, now: std::time::Instant) {
        if self.last_event.is_some() {
            return;
        }
        if let Some(bar) = &self.progress {
            bar.set_message(waiting_line(now, self.measure_start, self.planned));
        }
    }

    fn second_done(&mut self, second: u64, h: &Histogram<u64>) {
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        if self.rows.len() <= index {
            self.rows.resize(index + 1, TimelineRow::default());
        }
        let row = &mut self.rows[index];
        if !h.is_empty() {
            row.p50 = Some(h.value_at_quantile(0.5));
            row.p90 = Some(h.value_at_quantile(0.9));
            row.p99 = Some(h.value_at_quantile(0.99));
            row.max = Some(h.max());
        }
        self.last_event = Some(self.measure_start + Duration::from_secs(second + 1));
        if let Some(bar) = &self.progress {
            bar.set_message(progress_line(
                second + 1,
                self.planned,
                h.len(),
                self.errors,
                row.p99,
            ));
        }
    }

    fn write_hlog(&mut self, entries: &[(u64, Histogram<u64>)]) -> Result<(), Error> {
        let Some(out) = self.hlog.as_mut() else {
            return Ok(());
        };
        let io = |e: std::io::Error| Error::Write {
            path: "--hlog".to_owned(),
            source: e,
        };
        for (second, h) in entries {
            let mut serializer = V2DeflateSerializer::new();
            let mut text = Vec::new();
            {
                let mut builder = IntervalLogWriterBuilder::new();
                // Only the first entry carries the header lines.
                let mut writer = builder
                    .with_start_time(self.started_at)
                    .with_max_value_divisor(1000.0)
                    .begin_log_with(&mut text, &mut serializer)
                    .map_err(io)?;
                writer
                    .write_histogram(
                        h,
                        Duration::from_secs(*second),
                        Duration::from_secs(1),
                        None,
                    )
                    .map_err(|e| io(std::io::Error::other(format!("{e:?}"))))?;
            }
            let text = String::from_utf8_lossy(&text);
            for line in text.lines() {
                let header = line.starts_with('#') || line.starts_with("\"StartTimestamp\"");
                if header && *second > 0 {
                    continue;
                }
                out.write_all(line.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
        }
        Ok(())
    }

    pub(crate) fn last_event(&self) -> Option<std::time::Instant> {
        self.last_event
    }

    /// Adds up the threads' totals.
    pub(crate) fn finish(
        mut self,
        started_at: SystemTime,
        measured: Duration,
        stopped_by: Option<i32>,
        client: ClientUse,
    ) -> Outcome {
        let mut outcome = Outcome {
            started_at,
            measured,
            stopped_by,
            requests: Default::default(),
            status_codes: BTreeMap::new(),
            errors_by_kind: BTreeMap::new(),
            latency: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            scheduler_lag: new_histogram(),
            timeline: std::mem::take(&mut self.rows),
            client,
            warmup_sent: 0,
        };
        for t in &self.totals {
            outcome.warmup_sent += t.warmup_sent;
            let r = &mut outcome.requests;
            r.scheduled += t.requests.scheduled;
            r.sent += t.requests.sent;
            r.completed += t.requests.completed;
            r.errors += t.requests.errors;
            r.unsent += t.requests.unsent;
            r.in_flight += t.requests.in_flight;
            for (k, v) in &t.status_codes {
                *outcome.status_codes.entry(*k).or_insert(0) += v;
            }
            for (k, v) in &t.errors_by_kind {
                *outcome.errors_by_kind.entry(k).or_insert(0) += v;
            }
            let _ = outcome.latency.add(&t.latency);
            let _ = outcome.service.add(&t.service);
            let _ = outcome.lag.add(&t.lag);
            let _ = outcome.scheduler_lag.add(&t.scheduler_lag);
            if outcome.timeline.len() < t.counts.len() {
                outcome
                    .timeline
                    .resize(t.counts.len(), TimelineRow::default());
            }
            for (row, c) in outcome.timeline.iter_mut().zip(&t.counts) {
                row.counts.scheduled += c.scheduled;
                row.counts.sent += c.sent;
                row.counts.completed += c.completed;
                row.counts.errors += c.errors;
            }
        }
        // Seconds past the measured window hold only late answers; keep them, they are real.
        outcome
    }
}

/// What the process used, measured at the end of the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientUse {
    pub cpu_seconds: f64,
    /// CPU time over the run's wall time times the cores the load threads could use.
    pub cpu_utilization: f64,
    pub max_rss_bytes: u64,
}

/// From this share of its cores on, the client counts as CPU-bound: the server's answers then
/// wait for the client, in a closed loop as much as in an open one.
pub(crate) const CPU_BOUND: f64 = 0.9;

/// `cpu_seconds` of CPU time over `wall` on `cores` cores (possibly a fraction, from a CPU
/// limit), as a fraction of that capacity.
pub(crate) fn utilization(cpu_seconds: f64, wall: Duration, cores: f64) -> f64 {
    let capacity = wall.as_secs_f64() * cores;
    if capacity > 0.0 {
        cpu_seconds / capacity
    } else {
        0.0
    }
}

/// Whether an open loop left more than 1% of the requests its schedule called for unsent: the
/// connections were all busy (too few for the server's latency) or the client had too little
/// CPU. This counts against the schedule, not `rate × duration`: seeded Poisson arrivals come
/// a few percent short of or over the mean rate by chance (±3% at 1,000 requests), and a
/// server that refuses connections leaves its requests failed (errors), not unsent. An
/// interrupted run's schedule stopped at the interrupt.
fn behind_schedule(plan: &Plan, requests: &Requests, interrupted: bool) -> bool {
    plan.mode == Mode::Open && !interrupted && requests.unsent * 100 > requests.scheduled
}

/// The JSON summary of a run.
pub(crate) fn summary(plan: &Plan, o: &Outcome) -> Result<TrafficgenSummary, Error> {
    let encode = |h: &Histogram<u64>| {
        encode_histogram(h).map_err(|e| Error::Write {
            path: "summary".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    let seconds = o.measured.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate_achieved = if seconds > 0.0 {
        o.requests.sent as f64 / seconds
    } else {
        0.0
    };
    // The process's CPU time covers the warm-up too, so it is shared over every request sent.
    let all_sent = o.requests.sent + o.warmup_sent;
    #[allow(clippy::cast_precision_loss)]
    let cpu_us_per_request = (all_sent > 0).then(|| o.client.cpu_seconds * 1e6 / all_sent as f64);
    // The client set the pace when its own scheduling lagged (requests whose connection was
    // free when they came due still left late), or when an open loop could not keep to its
    // schedule (too few connections, or too little CPU).
    let lag_p99 = (!o.scheduler_lag.is_empty()).then(|| o.scheduler_lag.value_at_quantile(0.99));
    let threshold = u64::try_from(plan.lag_threshold.as_micros()).unwrap_or(u64::MAX);
    let saturated = lag_p99.is_some_and(|p| p > threshold)
        || behind_schedule(plan, &o.requests, o.stopped_by.is_some())
        || o.client.cpu_utilization >= CPU_BOUND;
    let started_at = jiff::Timestamp::try_from(o.started_at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Ok(TrafficgenSummary {
        schema: TRAFFICGEN.id.to_owned(),
        target: plan.url.clone(),
        mode: plan.mode,
        connections: plan.connections,
        rate_target: plan.rate,
        arrival: (plan.mode == Mode::Open).then_some(plan.arrival.into()),
        seed: (plan.mode == Mode::Open && plan.arrival == crate::plan::Arrival::Poisson)
            .then_some(plan.seed),
        rate_achieved,
        duration_s: seconds,
        started_at,
        interrupted: o.stopped_by.is_some(),
        requests: o.requests,
        status_codes: o
            .status_codes
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        errors_by_kind: o
            .errors_by_kind
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        latency_us: LatencyStats::from_histogram(&o.latency),
        service_time_us: LatencyStats::from_histogram(&o.service),
        send_lag_us: LatencyStats::from_histogram(&o.lag),
        histogram: encode(&o.latency)?,
        service_time_histogram: Some(encode(&o.service)?),
        send_lag_histogram: Some(encode(&o.lag)?),
        client: ClientCost {
            cpu_seconds: o.client.cpu_seconds,
            cpu_us_per_request,
            max_rss_bytes: o.client.max_rss_bytes,
            saturated,
        },
    })
}

/// Warnings a careful reader of the summary would want said out loud.
pub(crate) fn warn_about(plan: &Plan, s: &TrafficgenSummary) {
    if s.client.saturated {
        tracing::warn!(
            "the client was saturated (its own scheduling lag or CPU): these numbers measure \
             trafficgen as much as the server; use more threads or machines, or a lower rate"
        );
    }
    if let Some(target) = plan.rate
        && behind_schedule(plan, &s.requests, s.interrupted)
    {
        tracing::warn!(
            "achieved {:.0} requests/s of the {target:.0} asked for ({} unsent at the end)",
            s.rate_achieved,
            s.requests.unsent
        );
    }
    if s.requests.errors > 0 {
        tracing::warn!(
            "{} of {} scheduled requests failed",
            s.requests.errors,
            s.requests.scheduled
        );
    }
}

/// The per-second CSV.
pub(crate) fn write_timeline(mut out: Output, o: &Outcome) -> std::io::Result<()> {
    writeln!(
        out,
        "second,scheduled,sent,completed,errors,rate,p50_us,p90_us,p99_us,max_us"
    )?;
    let cell = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for (second, row) in o.timeline.iter().enumerate() {
        let c = row.counts;
        writeln!(
            out,
            "{second},{},{},{},{},{},{},{},{},{}",
            c.scheduled,
            c.sent,
            c.completed,
            c.errors,
            c.sent,
            cell(row.p50),
            cell(row.p90),
            cell(row.p99),
            cell(row.max)
        )?;
    }
    out.commit()
}

/// HdrHistogram's classic percentile distribution, values in milliseconds (as wrk2 prints it).
pub(crate) fn percentile_text(h: &Histogram<u64>) -> String {
    let mut text = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    if h.is_empty() {
        text.push_str("#[No values recorded]\n");
        return text;
    }
    let mut total = 0;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            text.push_str(&format!(
                "{value:12.3} {q:14.12} {total:10} {:14.2}\n",
                1.0 / (1.0 - q)
            ));
        } else {
            text.push_str(&format!("{value:12.3} {q:14.12} {total:10}\n"));
        }
    }
    text.push_str(&format!(
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]\n#[Buckets = {:12}, SubBuckets     = {:12}]\n",
        h.mean() / 1000.0,
        h.stdev() / 1000.0,
        h.max() as f64 / 1000.0,
        h.len(),
        h.buckets(),
        h.distinct_values() / usize::from(h.buckets().max(1))
    ));
    text
}

/// `, Ns left` of a planned duration after `elapsed` seconds (nothing after the end).
fn left(planned: Option<Duration>, elapsed: u64) -> String {
    planned
        .map(|p| format!(", {}s left", p.as_secs().saturating_sub(elapsed)))
        .unwrap_or_default()
}

/// The progress line before any measured second has ended.
fn waiting_line(
    now: std::time::Instant,
    measure_start: std::time::Instant,
    planned: Option<Duration>,
) -> String {
    let to_go = measure_start.saturating_duration_since(now);
    if !to_go.is_zero() {
        // Whole seconds, rounded up: "1s left" until the warm-up is over.
        let secs = to_go.as_secs() + u64::from(to_go.subsec_nanos() > 0);
        return format!("warming up (not measured), {secs}s left");
    }
    format!("0s elapsed{}", left(planned, 0))
}

/// The progress line after `elapsed` measured seconds: elapsed and remaining time, the last
/// second's answers, errors so far and the last second's p99.
fn progress_line(
    elapsed: u64,
    planned: Option<Duration>,
    answers: u64,
    errors: u64,
    p99_us: Option<u64>,
) -> String {
    // The last, partial second is reported after the planned end: nothing is left then.
    format!(
        "{elapsed}s elapsed{}  {} answers/s  {} errors  p99 {}",
        left(planned, elapsed),
        group(answers),
        group(errors),
        p99_us.map_or_else(|| "-".to_owned(), micros),
    )
}

/// The summary in a few lines for a person at a terminal, as wrk prints its report: what was
/// sent, the rate, the latency percentiles, errors and status codes, and what the client cost.
pub(crate) fn text(s: &TrafficgenSummary) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let r = &s.requests;
    let _ = write!(
        t,
        "{} requests in {:.1} s to {}, {} loop, {} connection{}",
        group(r.scheduled),
        s.duration_s,
        s.target,
        s.mode.name(),
        s.connections,
        if s.connections == 1 { "" } else { "s" }
    );
    if s.interrupted {
        t.push_str(" (interrupted)");
    }
    t.push('\n');
    let _ = write!(t, "  rate      {}/s", rate(s.rate_achieved));
    if let Some(target) = s.rate_target {
        let _ = write!(t, " of {}/s asked for", rate(target));
        // What repeats the schedule, since a Poisson one falls short of or over its mean by
        // chance.
        if let (Some(Arrival::Poisson), Some(seed)) = (s.arrival, s.seed) {
            let _ = write!(t, ", Poisson arrivals (--seed {seed})");
        }
    }
    t.push('\n');
    let percentiles = |t: &mut String, name: &str, l: &LatencyStats, note: &str| {
        let _ = write!(t, "  {name:<9}");
        for (label, v) in [
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p99.9", l.p999),
            ("max", l.max),
        ] {
            let _ = write!(
                t,
                " {label} {:<9}",
                v.map_or_else(|| "-".to_owned(), micros)
            );
        }
        let _ = writeln!(t, " {note}");
    };
    match s.mode {
        Mode::Open => {
            percentiles(&mut t, "latency", &s.latency_us, "(from the intended send)");
            percentiles(
                &mut t,
                "service",
                &s.service_time_us,
                "(from the actual send)",
            );
        }
        Mode::Closed => percentiles(
            &mut t,
            "latency",
            &s.latency_us,
            "(closed loop: stalls are not counted; -r for open loop)",
        ),
    }
    let mut errors = format!("  errors    {} of {}", group(r.errors), group(r.scheduled));
    if !s.errors_by_kind.is_empty() {
        let kinds = listed(&s.errors_by_kind, |kind, n| format!("{} {kind}", group(n)));
        let _ = write!(errors, " ({kinds})");
    }
    if r.unsent + r.in_flight > 0 {
        let _ = write!(
            errors,
            "; {} unsent, {} in flight at the end",
            group(r.unsent),
            group(r.in_flight)
        );
    }
    let _ = writeln!(t, "{errors}");
    if !s.status_codes.is_empty() {
        let codes = listed(&s.status_codes, |code, n| format!("{code} x {}", group(n)));
        let _ = writeln!(t, "  status    {codes}");
    }
    let c = &s.client;
    let _ = write!(t, "  client    {:.2} s CPU", c.cpu_seconds);
    if let Some(per) = c.cpu_us_per_request {
        let _ = write!(t, ", {per:.1} us per request");
    }
    let _ = writeln!(
        t,
        ", {:.1} MB peak RSS{}",
        c.max_rss_bytes as f64 / 1e6,
        if c.saturated { "; SATURATED" } else { "" }
    );
    t
}

/// A summary's counts (status codes, error kinds) in one line, each as `item` puts it.
pub(crate) fn listed(counts: &BTreeMap<String, u64>, item: impl Fn(&str, u64) -> String) -> String {
    counts
        .iter()
        .map(|(key, n)| item(key, *n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A rate with one decimal below 100/s, whole above.
fn rate(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.1}")
    } else {
        // A rate is positive and far below 2^64; the cast only drops the fraction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        group(r.round() as u64)
    }
}

/// Microseconds in the unit that keeps three significant digits readable.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} us"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        load: crate::plan::LoadArgs,
    }

    fn closed_loop() -> Plan {
        let args = Wrap::parse_from(["x", "-d", "10s"]);
        Plan::from_args(Some("http://h/"), None, None, &args.load).unwrap()
    }

    fn outcome(cpu_seconds: f64, cpu_utilization: f64, sent: u64, warmup_sent: u64) -> Outcome {
        let mut latency = new_histogram();
        latency.record_n(100, sent).unwrap();
        Outcome {
            started_at: SystemTime::UNIX_EPOCH,
            measured: Duration::from_secs(10),
            stopped_by: None,
            requests: meshbench_formats::trafficgen::Requests {
                scheduled: sent,
                sent,
                completed: sent,
                ..Default::default()
            },
            status_codes: BTreeMap::from([(200, sent)]),
            errors_by_kind: BTreeMap::new(),
            service: latency.clone(),
            latency,
            lag: new_histogram(),
            scheduler_lag: new_histogram(),
            timeline: Vec::new(),
            client: ClientUse {
                cpu_seconds,
                cpu_utilization,
                max_rss_bytes: 10 << 20,
            },
            warmup_sent,
        }
    }

    #[test]
    fn utilization_of_the_cores_the_threads_could_use() {
        assert_eq!(utilization(1.8, Duration::from_secs(1), 2.0), 0.9);
        // Half a core's limit, used in full.
        assert_eq!(utilization(1.0, Duration::from_secs(2), 0.5), 1.0);
        assert_eq!(utilization(0.5, Duration::from_secs(1), 0.0), 0.0);
        assert_eq!(utilization(0.5, Duration::ZERO, 2.0), 0.0);
    }

    #[test]
    fn a_cpu_bound_client_is_saturated_even_in_a_closed_loop() {
        // A closed loop has no send lag and no target rate: only the CPU can tell that the
        // answers waited for the client.
        let plan = closed_loop();
        let busy = summary(&plan, &outcome(9.5, 0.95, 1000, 0)).unwrap();
        assert!(busy.client.saturated);
        let idle = summary(&plan, &outcome(5.0, 0.5, 1000, 0)).unwrap();
        assert!(!idle.client.saturated);
    }

    #[test]
    fn an_open_loop_is_saturated_when_it_falls_behind_its_schedule_not_the_mean_rate() {
        let args = Wrap::parse_from(["x", "-d", "10s", "-r", "100", "--arrival", "poisson"]);
        let plan = Plan::from_args(Some("http://h/"), None, None, &args.load).unwrap();
        // Poisson arrivals that came 4.5% short of the mean rate by chance, all sent: 95.5/s of
        // the 100/s asked for is the schedule's doing, not the client's.
        let by_chance = outcome(0.1, 0.01, 955, 0);
        let s = summary(&plan, &by_chance).unwrap();
        assert_eq!(s.rate_achieved, 95.5);
        assert!(!s.client.saturated);
        // A backlog the connections never got to: 2% of the schedule left unsent.
        let mut behind = outcome(0.1, 0.01, 980, 0);
        behind.requests.scheduled = 1000;
        behind.requests.unsent = 20;
        assert!(summary(&plan, &behind).unwrap().client.saturated);
        // 1% exactly is within the allowance.
        behind.requests.unsent = 10;
        behind.requests.sent = 990;
        assert!(!summary(&plan, &behind).unwrap().client.saturated);
        // A server refusing connections: its requests failed, and the client kept its pace.
        let mut refused = outcome(0.1, 0.01, 0, 0);
        refused.requests.scheduled = 1000;
        refused.requests.errors = 1000;
        assert!(!summary(&plan, &refused).unwrap().client.saturated);
        // An interrupted run stopped its schedule: what was left is not a backlog.
        behind.requests.unsent = 500;
        behind.stopped_by = Some(2);
        assert!(!summary(&plan, &behind).unwrap().client.saturated);
    }

    #[test]
    fn the_terminal_report_names_the_seed_of_poisson_arrivals() {
        let mut s = summary(&closed_loop(), &outcome(2.0, 0.2, 955, 0)).unwrap();
        s.mode = Mode::Open;
        s.rate_target = Some(500.0);
        s.rate_achieved = 477.5;
        s.arrival = Some(Arrival::Poisson);
        s.seed = Some(3);
        assert!(
            text(&s)
                .contains("\n  rate      478/s of 500/s asked for, Poisson arrivals (--seed 3)\n"),
            "{}",
            text(&s)
        );
        s.arrival = Some(Arrival::Uniform);
        s.seed = None;
        assert!(text(&s).contains("\n  rate      478/s of 500/s asked for\n"));
    }

    #[test]
    fn the_progress_line_counts_down_the_warm_up_then_the_first_second() {
        let start = std::time::Instant::now() + Duration::from_secs(10);
        let planned = Some(Duration::from_secs(60));
        let at = |before: Duration| start.checked_sub(before).unwrap();
        assert_eq!(
            waiting_line(at(Duration::from_millis(9_200)), start, planned),
            "warming up (not measured), 10s left"
        );
        assert_eq!(
            waiting_line(at(Duration::from_millis(300)), start, planned),
            "warming up (not measured), 1s left"
        );
        assert_eq!(waiting_line(start, start, planned), "0s elapsed, 60s left");
        assert_eq!(
            waiting_line(start + Duration::from_millis(500), start, None),
            "0s elapsed"
        );
    }

    #[test]
    fn the_terminal_report_says_what_the_summary_says() {
        let mut s = summary(&closed_loop(), &outcome(2.0, 0.2, 1_234_567, 0)).unwrap();
        assert_eq!(
            text(&s),
            "1,234,567 requests in 10.0 s to http://h/, closed loop, 50 connections\n\
             \x20 rate      123,457/s\n\
             \x20 latency   p50 100 us    p90 100 us    p99 100 us    p99.9 100 us    \
             max 100 us    (closed loop: stalls are not counted; -r for open loop)\n\
             \x20 errors    0 of 1,234,567\n\
             \x20 status    200 x 1,234,567\n\
             \x20 client    2.00 s CPU, 1.6 us per request, 10.5 MB peak RSS\n"
        );
        // An open loop that fell behind, with errors: both latencies, the target, the kinds,
        // what was left, and the saturation said out loud.
        s.mode = Mode::Open;
        s.rate_target = Some(150_000.0);
        s.rate_achieved = 50.25;
        s.interrupted = true;
        s.requests.errors = 7;
        s.requests.unsent = 12;
        s.errors_by_kind = BTreeMap::from([("timeout".into(), 5), ("reset".into(), 2)]);
        s.status_codes.insert("503".into(), 1000);
        s.latency_us.p99 = Some(1_500);
        s.latency_us.max = Some(2_345_678);
        s.service_time_us.p50 = None;
        s.client.saturated = true;
        let t = text(&s);
        for expected in [
            "open loop, 50 connections (interrupted)\n",
            "rate      50.2/s of 150,000/s asked for\n",
            "p99 1.50 ms ",
            "max 2.35 s ",
            "(from the intended send)\n",
            "service   p50 -  ",
            "(from the actual send)\n",
            "errors    7 of 1,234,567 (2 reset, 5 timeout); 12 unsent, 0 in flight at the end\n",
            "status    200 x 1,234,567, 503 x 1,000\n",
            "; SATURATED\n",
        ] {
            assert!(t.contains(expected), "{expected:?} not in\n{t}");
        }
    }

    #[test]
    fn the_progress_line_counts_down_and_stops_at_zero() {
        let minute = Some(Duration::from_secs(60));
        assert_eq!(
            progress_line(1, minute, 20_000, 0, Some(1_234)),
            "1s elapsed, 59s left  20,000 answers/s  0 errors  p99 1.23 ms"
        );
        assert_eq!(
            progress_line(61, minute, 26, 3, None),
            "61s elapsed, 0s left  26 answers/s  3 errors  p99 -"
        );
        // -n without -d: no planned end.
        assert_eq!(
            progress_line(2, None, 5, 0, Some(80)),
            "2s elapsed  5 answers/s  0 errors  p99 80 us"
        );
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(micros(999), "999 us");
        assert_eq!(micros(1000), "1.00 ms");
        assert_eq!(micros(999_994), "999.99 ms");
        assert_eq!(micros(60_000_000), "60.00 s");
        assert_eq!(rate(99.94), "99.9");
        assert_eq!(rate(1999.5), "2,000");
    }

    #[test]
    fn cpu_per_request_counts_the_warm_up_it_was_spent_on() {
        let s = summary(&closed_loop(), &outcome(2.0, 0.2, 1000, 1000)).unwrap();
        assert_eq!(s.client.cpu_seconds, 2.0);
        assert_eq!(s.client.cpu_us_per_request, Some(1000.0));
    }
}
