//! `meshbench/trafficgen/v1.1`: the summary `trafficgen` writes and `compare` and
//! `trafficgen merge` read. v1.1 adds `arrival` and `seed`; v1 readers read it unchanged.
//!
//! Latencies are microseconds. The summary carries the full latency histogram (HdrHistogram V2
//! with DEFLATE, base64), so summaries from several generators or repetitions merge exactly,
//! through their histograms, never by averaging percentiles. The service-time and send-lag
//! histograms ride along in two extra fields for the same reason.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::schema::Schema;

pub const TRAFFICGEN: Schema = Schema {
    document: "trafficgen",
    major: 1,
    id: "meshbench/trafficgen/v1.1",
};

/// Significant digits of every latency histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Whether requests follow a schedule (open) or each waits for the previous response (closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Open,
    Closed,
}

impl Mode {
    /// The name the summary gives it: `open` or `closed`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Open => "open",
            Mode::Closed => "closed",
        }
    }
}

/// Every scheduled request is accounted for:
/// `scheduled = completed + errors + unsent + in_flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    /// Requests the schedule called for (closed loop: the requests sent).
    pub scheduled: u64,
    pub sent: u64,
    /// Answered with a 1xx-3xx status.
    pub completed: u64,
    /// Transport failures, timeouts, and 4xx/5xx answers (`errors_by_kind` says which).
    pub errors: u64,
    /// Scheduled but never sent (the run ended first).
    pub unsent: u64,
    /// Sent but unanswered when the run ended.
    pub in_flight: u64,
}

impl Requests {
    pub fn balanced(&self) -> bool {
        // In 128 bits: a hand-made summary's counts must not overflow the check.
        let [c, e, u, f] =
            [self.completed, self.errors, self.unsent, self.in_flight].map(u128::from);
        u128::from(self.scheduled) == c + e + u + f
    }

    /// Adds `other`'s counts; `None` (and `self` partly added) if one overflows.
    fn add(&mut self, other: &Requests) -> Option<()> {
        self.scheduled = self.scheduled.checked_add(other.scheduled)?;
        self.sent = self.sent.checked_add(other.sent)?;
        self.completed = self.completed.checked_add(other.completed)?;
        self.errors = self.errors.checked_add(other.errors)?;
        self.unsent = self.unsent.checked_add(other.unsent)?;
        self.in_flight = self.in_flight.checked_add(other.in_flight)?;
        Some(())
    }
}

/// Distribution statistics in microseconds; all `null` when there were no samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub min: Option<u64>,
    pub mean: Option<f64>,
    pub stdev: Option<f64>,
    pub p50: Option<u64>,
    pub p75: Option<u64>,
    pub p90: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub p999: Option<u64>,
    pub p9999: Option<u64>,
    pub max: Option<u64>,
}

impl LatencyStats {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencyStats {
        if h.is_empty() {
            return LatencyStats::default();
        }
        let q = |quantile| Some(h.value_at_quantile(quantile));
        LatencyStats {
            min: Some(h.min()),
            mean: Some(h.mean()),
            stdev: Some(h.stdev()),
            p50: q(0.5),
            p75: q(0.75),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: Some(h.max()),
        }
    }
}

/// The generating process's own cost, to tell a saturated client from a slow server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientCost {
    /// The whole process's CPU time (user and system), warm-up included.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over every request sent, warm-up included, in microseconds.
    pub cpu_us_per_request: Option<f64>,
    pub max_rss_bytes: u64,
    /// The client, not the server, limited the run: its own send lag p99 over the threshold,
    /// an open loop that left more than 1% of its schedule unsent, or its CPU time at 90% or
    /// more of the cores its load threads could use.
    pub saturated: bool,
}

/// A trafficgen run, or several merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficgenSummary {
    pub schema: String,
    pub target: String,
    pub mode: Mode,
    pub connections: u32,
    /// Requests per second asked for; `null` in closed mode.
    pub rate_target: Option<f64>,
    /// v1.1: how the open loop's send times were spaced; absent in closed mode, in v1
    /// summaries, and in a merge of runs that differ in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    /// v1.1: the seed of Poisson arrivals (`--seed`), which repeats them exactly; absent for
    /// uniform arrivals and in a merge of several runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Requests sent per second of the measured duration.
    pub rate_achieved: f64,
    /// The measured duration (warm-up excluded).
    pub duration_s: f64,
    pub started_at: Timestamp,
    pub interrupted: bool,
    pub requests: Requests,
    /// Responses by HTTP status code (`"200": 1234`).
    pub status_codes: BTreeMap<String, u64>,
    /// `connect`, `timeout`, `reset`, `transport`, `http_4xx`, `http_5xx`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// From each request's intended send time to its response: what a user would see.
    pub latency_us: LatencyStats,
    /// From the actual send to the response.
    pub service_time_us: LatencyStats,
    /// From the intended to the actual send: how far the client fell behind its schedule.
    pub send_lag_us: LatencyStats,
    /// The latency histogram: HdrHistogram V2 + DEFLATE, base64, microseconds.
    pub histogram: String,
    pub service_time_histogram: Option<String>,
    pub send_lag_histogram: Option<String>,
    pub client: ClientCost,
}

/// Why a histogram field cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not an HdrHistogram V2 log entry: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    #[error("histogram is malformed (its decoder gave up)")]
    Malformed,
    #[error("cannot encode histogram: {0:?}")]
    Encode(hdrhistogram::serialization::V2DeflateSerializeError),
    #[error("histograms cannot be added: {0:?}")]
    Add(hdrhistogram::AdditionError),
}

/// A latency histogram as meshbench records them: microseconds, 3 significant digits,
/// growing as needed.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid");
    h.auto(true);
    h
}

pub fn encode_histogram(h: &Histogram<u64>) -> Result<String, HistogramError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(HistogramError::Encode)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Decodes a histogram field. The input comes from files, so it may be anything: hdrhistogram's
/// decoder panics on some malformed input where overflow checks are on (an `i64::MIN` zero-run
/// overflows a negation; found by the `histogram` fuzz target), and that panic is turned into an
/// error here. Release builds have neither overflow checks nor unwinding (`panic = "abort"`):
/// there the same input is an error without a panic, and the fuzz target built that way
/// (`cargo fuzz run -O histogram`) found no panic in 7.6 million inputs.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, HistogramError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
    let decoded = std::panic::catch_unwind(|| {
        Deserializer::new().deserialize::<u64, _>(&mut bytes.as_slice())
    })
    .map_err(|_| HistogramError::Malformed)?;
    let mut h: Histogram<u64> = decoded.map_err(HistogramError::Decode)?;
    h.auto(true);
    Ok(h)
}

/// Why a document is not a readable trafficgen summary.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("not JSON (line {line}, column {column}): {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("no \"schema\" field; expected {:?}", TRAFFICGEN.id)]
    NoSchema,
    #[error(transparent)]
    Schema(#[from] crate::SchemaError),
    #[error("not a trafficgen summary: {0}")]
    Shape(#[from] crate::ShapeError),
    #[error("\"{field}\": {source}")]
    Histogram {
        field: &'static str,
        #[source]
        source: HistogramError,
    },
}

/// Reads a summary from its JSON text: the schema first (so a wrong file gets the right
/// message), then the fields, then every histogram, so that a damaged one is named here rather
/// than failing later in a merge.
pub fn read_summary(text: &str) -> Result<TrafficgenSummary, SummaryError> {
    // A summary that reads is parsed once; only a document that does not is parsed again, as
    // plain JSON, to say whether it is JSON at all and which schema it names.
    let summary: TrafficgenSummary = match crate::from_json_text(text) {
        Ok(summary) => summary,
        Err(shape) => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| SummaryError::Json {
                    line: e.line(),
                    column: e.column(),
                    message: crate::json_message(&e),
                })?;
            let schema = value
                .get("schema")
                .and_then(serde_json::Value::as_str)
                .ok_or(SummaryError::NoSchema)?;
            TRAFFICGEN.check(schema)?;
            return Err(shape.into());
        }
    };
    TRAFFICGEN.check(&summary.schema)?;
    let fields = [
        ("histogram", Some(&summary.histogram)),
        (
            "service_time_histogram",
            summary.service_time_histogram.as_ref(),
        ),
        ("send_lag_histogram", summary.send_lag_histogram.as_ref()),
    ];
    for (field, text) in fields {
        if let Some(text) = text {
            decode_histogram(text).map_err(|source| SummaryError::Histogram { field, source })?;
        }
    }
    Ok(summary)
}

/// Why summaries cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    /// `index` counts from 0; the message counts from 1.
    #[error("summary {}: {source}", .index + 1)]
    Histogram {
        index: usize,
        #[source]
        source: HistogramError,
    },
    #[error(
        "summary {} is {found:?} mode, the first is {expected:?}: open and closed runs do not merge",
        .index + 1
    )]
    Mode {
        index: usize,
        expected: Mode,
        found: Mode,
    },
    /// Counts that add up past what the merged summary can hold: a request count or status
    /// count past 2^64 - 1, or a histogram bucket past 2^63 - 1 (what HdrHistogram's V2 format
    /// encodes). Only summaries that were not written by a generator get there.
    #[error("the merged {what} add up to more than a summary can hold")]
    TooLarge { what: &'static str },
}

fn merge_optional(
    summaries: &[TrafficgenSummary],
    field: impl Fn(&TrafficgenSummary) -> Option<&String>,
) -> Result<Option<Histogram<u64>>, MergeError> {
    let mut total = new_histogram();
    for (index, s) in summaries.iter().enumerate() {
        let Some(text) = field(s) else {
            return Ok(None);
        };
        let h = decode_histogram(text).map_err(|source| MergeError::Histogram { index, source })?;
        total.add(&h).map_err(|e| MergeError::Histogram {
            index,
            source: HistogramError::Add(e),
        })?;
    }
    Ok(Some(total))
}

/// How an open loop's intended send times are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly, `1/R` apart over all connections (wrk2's schedule).
    Uniform,
    /// A Poisson process: exponential gaps, from a seeded generator.
    Poisson,
}

impl Arrival {
    /// The name the summary gives it: `uniform` or `poisson`.
    pub fn name(self) -> &'static str {
        match self {
            Arrival::Uniform => "uniform",
            Arrival::Poisson => "poisson",
        }
    }
}

/// CPU time per request over several summaries. Each one's CPU time was shared over all the
/// requests it sent, warm-up included, which `requests` does not count; so its count is taken
/// back from its own figures (`cpu_seconds / cpu_us_per_request`). A summary without a figure
/// counts its measured requests.
fn merged_cpu_per_request(summaries: &[TrafficgenSummary], requests: &Requests) -> Option<f64> {
    let mut cpu = 0.0;
    let mut sent = 0.0;
    for s in summaries {
        cpu += s.client.cpu_seconds;
        #[allow(clippy::cast_precision_loss)]
        let measured = s.requests.sent as f64;
        sent += match s.client.cpu_us_per_request {
            Some(per) if per > 0.0 && per.is_finite() => s.client.cpu_seconds * 1e6 / per,
            _ => measured,
        };
    }
    (requests.sent > 0 && sent > 0.0).then(|| cpu * 1e6 / sent)
}

/// Two Poisson runs with the same seed (indices into `summaries`, the first such pair): their
/// generators sent on the same schedule, so merged they are one schedule at twice the burst
/// size, not independent arrivals at the summed rate.
pub fn shared_poisson_seed(summaries: &[TrafficgenSummary]) -> Option<(usize, usize)> {
    let poisson_seed = |s: &TrafficgenSummary| match s.arrival {
        Some(Arrival::Poisson) => s.seed,
        _ => None,
    };
    summaries.iter().enumerate().find_map(|(j, later)| {
        let seed = poisson_seed(later)?;
        summaries[..j]
            .iter()
            .position(|earlier| poisson_seed(earlier) == Some(seed))
            .map(|i| (i, j))
    })
}

/// Two runs that sent together for less than half the shorter one's duration (indices into
/// `summaries`: the pair that overlapped least), and how many seconds they did overlap. Each run
/// is taken to span `duration_s` from `started_at`. Such runs came one after the other (say,
/// repetitions), and [`merge`] would add their rates as if they had sent together.
pub fn apart_in_time(summaries: &[TrafficgenSummary]) -> Option<(usize, usize, f64)> {
    let span = |s: &TrafficgenSummary| {
        // Milliseconds since 1970 fit an f64 exactly for some 285,000 years.
        let start = s.started_at.as_millisecond() as f64 / 1e3;
        (start, start + s.duration_s)
    };
    let mut least: Option<(usize, usize, f64, f64)> = None;
    for (j, later) in summaries.iter().enumerate() {
        for (i, earlier) in summaries[..j].iter().enumerate() {
            let ((a0, a1), (b0, b1)) = (span(earlier), span(later));
            let shorter = earlier.duration_s.min(later.duration_s);
            if shorter.is_nan() || shorter <= 0.0 {
                continue;
            }
            let overlap = (a1.min(b1) - a0.max(b0)).max(0.0);
            let share = overlap / shorter;
            if least.is_none_or(|(_, _, _, least_share)| share < least_share) {
                least = Some((i, j, overlap, share));
            }
        }
    }
    least
        .filter(|&(_, _, _, share)| share < 0.5)
        .map(|(i, j, overlap, _)| (i, j, overlap))
}

/// Merges summaries of load sent at the same time from several generators: counts add up,
/// rates add up, histograms are added and the statistics computed from them.
/// The service-time and send-lag statistics are exact when every summary carries those
/// histograms; otherwise they are left out (`null`).
pub fn merge(summaries: &[TrafficgenSummary]) -> Result<TrafficgenSummary, MergeError> {
    let first = summaries.first().ok_or(MergeError::Empty)?;
    for (index, s) in summaries.iter().enumerate() {
        if s.mode != first.mode {
            return Err(MergeError::Mode {
                index,
                expected: first.mode,
                found: s.mode,
            });
        }
    }
    let latency = merge_optional(summaries, |s| Some(&s.histogram))?.unwrap_or_else(new_histogram);
    let service = merge_optional(summaries, |s| s.service_time_histogram.as_ref())?;
    let lag = merge_optional(summaries, |s| s.send_lag_histogram.as_ref())?;

    let mut requests = Requests::default();
    let mut status_codes = BTreeMap::new();
    let mut errors_by_kind = BTreeMap::new();
    let mut cpu_seconds = 0.0;
    let too_large = |what| MergeError::TooLarge { what };
    let add = |to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>, what| {
        for (k, v) in from {
            let count = to.entry(k.clone()).or_insert(0);
            *count = count.checked_add(*v).ok_or(too_large(what))?;
        }
        Ok(())
    };
    for s in summaries {
        requests
            .add(&s.requests)
            .ok_or(too_large("request counts"))?;
        add(&mut status_codes, &s.status_codes, "status code counts")?;
        add(&mut errors_by_kind, &s.errors_by_kind, "error counts")?;
        cpu_seconds += s.client.cpu_seconds;
    }
    let mut targets: Vec<&str> = summaries.iter().map(|s| s.target.as_str()).collect();
    targets.dedup();
    // hdrhistogram adds counts saturating at 2^64 - 1; V2 encodes up to 2^63 - 1. A count past
    // that cannot be written, so a merge that reaches it fails rather than writing a wrong one.
    let encode = |h: &Histogram<u64>, what| encode_histogram(h).map_err(|_| too_large(what));
    let per_request = merged_cpu_per_request(summaries, &requests);
    Ok(TrafficgenSummary {
        schema: TRAFFICGEN.id.to_owned(),
        target: targets.join(" "),
        mode: first.mode,
        connections: summaries.iter().map(|s| s.connections).sum(),
        rate_target: summaries.iter().map(|s| s.rate_target).sum::<Option<f64>>(),
        arrival: first
            .arrival
            .filter(|a| summaries.iter().all(|s| s.arrival == Some(*a))),
        seed: match summaries {
            [only] => only.seed,
            _ => None,
        },
        rate_achieved: summaries.iter().map(|s| s.rate_achieved).sum(),
        duration_s: summaries.iter().map(|s| s.duration_s).fold(0.0, f64::max),
        started_at: summaries
            .iter()
            .map(|s| s.started_at)
            .min()
            .unwrap_or(first.started_at),
        interrupted: summaries.iter().any(|s| s.interrupted),
        requests,
        status_codes,
        errors_by_kind,
        latency_us: LatencyStats::from_histogram(&latency),
        service_time_us: service
            .as_ref()
            .map(LatencyStats::from_histogram)
            .unwrap_or_default(),
        send_lag_us: lag
            .as_ref()
            .map(LatencyStats::from_histogram)
            .unwrap_or_default(),
        histogram: encode(&latency, "latency histograms")?,
        service_time_histogram: service
            .as_ref()
            .map(|h| encode(h, "service-time histograms"))
            .transpose()?,
        send_lag_histogram: lag
            .as_ref()
            .map(|h| encode(h, "send-lag histograms"))
            .transpose()?,
        client: ClientCost {
            cpu_seconds,
            cpu_us_per_request: per_request,
            max_rss_bytes: summaries
                .iter()
                .map(|s| s.client.max_rss_bytes)
                .max()
                .unwrap_or(0),
            saturated: summaries.iter().any(|s| s.client.saturated),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(values: &[u64], sent: u64) -> TrafficgenSummary {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        TrafficgenSummary {
            schema: TRAFFICGEN.id.to_owned(),
            target: "http://127.0.0.1:8080/".to_owned(),
            mode: Mode::Open,
            connections: 10,
            rate_target: Some(100.0),
            arrival: Some(Arrival::Uniform),
            seed: None,
            rate_achieved: 99.5,
            duration_s: 10.0,
            started_at: "2026-11-26T08:00:00Z".parse().unwrap(),
            interrupted: false,
            requests: Requests {
                scheduled: sent,
                sent,
                completed: sent,
                ..Requests::default()
            },
            status_codes: BTreeMap::from([("200".to_owned(), sent)]),
            errors_by_kind: BTreeMap::new(),
            latency_us: LatencyStats::from_histogram(&h),
            service_time_us: LatencyStats::from_histogram(&h),
            send_lag_us: LatencyStats::default(),
            histogram: encode_histogram(&h).unwrap(),
            service_time_histogram: Some(encode_histogram(&h).unwrap()),
            send_lag_histogram: None,
            client: ClientCost::default(),
        }
    }

    #[test]
    fn histogram_round_trips_through_base64() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1_000, 10_000, 3_600_000_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram("aGVsbG8=").is_err());
        // Found by fuzzing: a zero run of i64::MIN, which makes the decoder overflow.
        let crash = "HISTFAAAAHl4nC2OOw7CQAxEnWc7EKQVQpQgIUpKCupcjpqGw3ENbpCMk+zHM/a8wtf392xmH1uPb9ptyvhfzdQx8AjcVSOZFiZfVNp4YoGsD6UiN+hRWcjpqGw3ENbpCMkQpQgIUpKCupcjpqWkTpoElGOYrOyWlmja";
        assert!(decode_histogram(crash).is_err());
    }

    #[test]
    fn merged_cpu_per_request_counts_each_generators_warm_up() {
        // A: 2 s of CPU over 2,000 requests, 1,000 of them warm-up; B: 1 s over 1,000.
        let mut a = summary(&[100; 10], 1000);
        a.client.cpu_seconds = 2.0;
        a.client.cpu_us_per_request = Some(1000.0);
        let mut b = summary(&[100; 10], 1000);
        b.client.cpu_seconds = 1.0;
        b.client.cpu_us_per_request = Some(1000.0);
        let merged = merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(merged.client.cpu_seconds, 3.0);
        // 3 s over 3,000 requests, not over the 2,000 measured ones (1,500 us).
        assert_eq!(merged.client.cpu_us_per_request, Some(1000.0));
        // A summary without the figure counts its measured requests.
        b.client.cpu_us_per_request = None;
        let merged = merge(&[a, b]).unwrap();
        assert_eq!(merged.client.cpu_us_per_request, Some(1000.0));
    }

    #[test]
    fn merge_goes_through_histograms_not_percentiles() {
        // One fast generator, one slow: the merged p99 is the slow one's, which averaging
        // the two p99s would hide.
        let fast = summary(&[100; 990], 990);
        let slow = summary(&[50_000; 10], 10);
        let merged = merge(&[fast.clone(), slow.clone()]).unwrap();
        assert_eq!(merged.requests.sent, 1000);
        assert!(merged.requests.balanced());
        assert_eq!(merged.connections, 20);
        assert_eq!(merged.rate_target, Some(200.0));
        assert_eq!(merged.status_codes["200"], 1000);
        let p99 = merged.latency_us.p99.unwrap();
        assert!(
            (100..=101).contains(&p99),
            "p99 of 990 x 100us and 10 x 50ms is 100us: {p99}"
        );
        let p999 = merged.latency_us.p999.unwrap();
        assert!(p999 >= 49_000, "{p999}");
        assert!(merged.service_time_us.p999.unwrap() >= 49_000);
        // Send-lag histograms were missing: left out rather than guessed.
        assert_eq!(merged.send_lag_us, LatencyStats::default());

        let mut closed = fast.clone();
        closed.mode = Mode::Closed;
        assert!(matches!(
            merge(&[fast, closed]),
            Err(MergeError::Mode { index: 1, .. })
        ));
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
    }

    /// Found by fuzzing (`trafficgen_summary`): counts that a summary can hold but two of them
    /// cannot are an error of the merge, never a panic, a wrapped count or a histogram written
    /// wrong.
    #[test]
    fn counts_that_add_up_past_what_a_summary_holds_do_not_merge() {
        let base = summary(&[100; 10], 10);
        let too_large = |s: &TrafficgenSummary| match merge(&[s.clone(), s.clone()]) {
            Err(MergeError::TooLarge { what }) => what,
            other => panic!("{other:?}"),
        };
        let mut big = base.clone();
        let mut h = new_histogram();
        h.record_n(100, 1 << 62).unwrap();
        big.histogram = encode_histogram(&h).unwrap();
        assert_eq!(too_large(&big), "latency histograms");
        // One more doubling is still encodable; 2^62 + 2^62 is not (V2 holds up to 2^63 - 1).
        h.reset();
        h.record_n(100, (1 << 61) + 1).unwrap();
        big.histogram = encode_histogram(&h).unwrap();
        assert!(merge(&[big.clone(), big]).is_ok());

        let mut big = base.clone();
        big.requests.scheduled = u64::MAX / 2 + 1;
        assert_eq!(too_large(&big), "request counts");
        let mut big = base.clone();
        big.status_codes.insert("200".to_owned(), u64::MAX);
        assert_eq!(too_large(&big), "status code counts");
        let mut big = base;
        big.errors_by_kind.insert("timeout".to_owned(), u64::MAX);
        let message = merge(&[big.clone(), big]).unwrap_err().to_string();
        assert_eq!(
            message,
            "the merged error counts add up to more than a summary can hold"
        );
    }

    #[test]
    fn the_arrival_process_survives_a_merge_only_when_every_run_shares_it() {
        let uniform = summary(&[100; 10], 10);
        let poisson = |seed| {
            let mut s = summary(&[200; 10], 10);
            s.arrival = Some(Arrival::Poisson);
            s.seed = Some(seed);
            s
        };
        let (a, b, c) = (poisson(7), poisson(8), poisson(7));
        let merged = merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(merged.arrival, Some(Arrival::Poisson));
        // Several generators' seeds are not one seed.
        assert_eq!(merged.seed, None);
        assert_eq!(merge(std::slice::from_ref(&a)).unwrap().seed, Some(7));
        assert_eq!(merge(&[uniform.clone(), a.clone()]).unwrap().arrival, None);
        // Two generators on the same Poisson seed sent on the same schedule.
        assert_eq!(shared_poisson_seed(&[a.clone(), b.clone()]), None);
        assert_eq!(
            shared_poisson_seed(&[uniform.clone(), a.clone(), b, c]),
            Some((1, 3))
        );
        assert_eq!(shared_poisson_seed(&[uniform.clone(), uniform]), None);
    }

    #[test]
    fn runs_one_after_the_other_are_told_from_runs_sent_together() {
        let at = |start: &str, duration_s: f64| {
            let mut s = summary(&[100], 1);
            s.started_at = start.parse().unwrap();
            s.duration_s = duration_s;
            s
        };
        // Two generators started a second apart on 10 s runs: together.
        let a = at("2026-11-26T08:00:00Z", 10.0);
        let b = at("2026-11-26T08:00:01Z", 10.0);
        assert_eq!(apart_in_time(&[a.clone(), b.clone()]), None);
        // A repetition five minutes later: apart, overlapping for nothing.
        let later = at("2026-11-26T08:05:00Z", 10.0);
        assert_eq!(
            apart_in_time(&[a.clone(), b.clone(), later.clone()]),
            Some((0, 2, 0.0))
        );
        // Started 7 s into a 10 s run: 3 s together, under half.
        let late = at("2026-11-26T08:00:07Z", 10.0);
        assert_eq!(apart_in_time(&[a.clone(), late]), Some((0, 1, 3.0)));
        // A short run inside a long one is wholly together.
        let inside = at("2026-11-26T08:00:02Z", 2.0);
        assert_eq!(apart_in_time(&[a.clone(), inside]), None);
        // An empty run (interrupted at once) says nothing.
        assert_eq!(apart_in_time(&[a, at("2026-11-26T09:00:00Z", 0.0)]), None);
    }

    #[test]
    fn a_document_that_is_not_a_summary_is_told_what_it_is() {
        let good = serde_json::to_value(summary(&[100], 1)).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut doc = good.clone();
            doc.as_object_mut().unwrap().insert(field.into(), value);
            doc.to_string()
        };
        assert!(matches!(
            read_summary("{\"schema\": 1,"),
            Err(SummaryError::Json { line: 1, .. })
        ));
        // The position is said once, not again at the end of serde's message.
        assert_eq!(
            read_summary("").unwrap_err().to_string(),
            "not JSON (line 1, column 0): EOF while parsing a value"
        );
        assert!(matches!(
            read_summary(&format!("{good} {{}}")),
            Err(SummaryError::Json { .. })
        ));
        assert!(matches!(
            read_summary(&with("schema", 5.into())),
            Err(SummaryError::NoSchema)
        ));
        // A newer major version is a schema error, whether or not its fields still fit.
        for doc in [
            with("schema", "meshbench/trafficgen/v2".into()),
            r#"{"schema": "meshbench/trafficgen/v2"}"#.to_owned(),
        ] {
            assert!(
                matches!(read_summary(&doc), Err(SummaryError::Schema(_))),
                "{doc}"
            );
        }
        let e = read_summary(&with("connections", "fifty".into())).unwrap_err();
        assert!(matches!(&e, SummaryError::Shape(s) if s.path.as_deref() == Some("connections")));
        assert!(read_summary(&good.to_string()).is_ok());
    }

    #[test]
    fn a_v1_summary_reads_without_the_v1_1_fields() {
        let mut json = serde_json::to_value(summary(&[100], 1)).unwrap();
        let object = json.as_object_mut().unwrap();
        object.insert("schema".into(), "meshbench/trafficgen/v1".into());
        object.remove("arrival");
        object.remove("seed");
        let read = read_summary(&json.to_string()).unwrap();
        assert_eq!((read.arrival, read.seed), (None, None));
        // And the fields are left out, not written as null, where they do not apply.
        let closed = TrafficgenSummary {
            arrival: None,
            ..summary(&[100], 1)
        };
        let text = serde_json::to_string(&closed).unwrap();
        assert!(
            !text.contains("arrival") && !text.contains("\"seed\""),
            "{text}"
        );
    }

    #[test]
    fn empty_histograms_give_null_statistics_not_nan() {
        let stats = LatencyStats::from_histogram(&new_histogram());
        assert_eq!(stats, LatencyStats::default());
        let json = serde_json::to_string(&stats).unwrap();
        assert!(
            !json.contains("NaN") && json.contains("\"p99\":null"),
            "{json}"
        );
    }
}
