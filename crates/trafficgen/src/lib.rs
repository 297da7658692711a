//! trafficgen: HTTP load with honest latency, replacing the seed's `traffic-generator.go`.
//!
//! What it fixes: the original ran a closed loop, so a stalled server made it stop sending and
//! never record the requests a real client population would have sent (coordinated omission);
//! it "estimated" p99 as 0.9 × max; it skipped TLS verification; it divided by zero when nothing
//! succeeded. trafficgen follows an open-loop schedule and measures each latency from the
//! request's intended send time (wrk2's method), records full HdrHistograms, accounts for every
//! scheduled request, verifies TLS by default, and reports errors instead of dividing by them.
//!
//! - [`plan`]: arguments checked and turned into what to send, how often, for how long;
//! - `engine`: the load itself, one current-thread runtime per thread;
//! - `report`: per-second collection, the summary, timeline, interval log and percentile text.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use meshbench_cli::{Failure, Input, LogArgs, Output};
use meshbench_formats::trafficgen::{self, MergeError, Mode, TrafficgenSummary};

mod cgroup;
mod engine;
pub mod h1;
pub mod plan;
mod report;
mod tls;

pub use plan::Plan;

const EXAMPLES: &str = "\
Examples:
  # The original's form: URL, seconds, concurrency (closed loop, as the seed ran)
  trafficgen http://nginx-1.sample-app.svc.cluster.local 300 50

  # Open loop at 2,000 requests/s for 60 s after 10 s of warm-up, with a timeline
  trafficgen -r 2000 -d 60s --warmup 10s --timeline t.csv -o s.json http://127.0.0.1:8080/

  # Load from two pods, merged exactly through their histograms, then compared
  trafficgen merge pod-a.json pod-b.json -o runs/linkerd/1/trafficgen.json
  compare --arm linkerd=runs/linkerd --arm istio=runs/istio";

/// Send HTTP load and measure latency honestly: open loop with -r (each latency from the
/// request's intended send time, so server stalls show in full), closed loop without.
#[derive(Debug, Parser)]
#[command(
    name = "trafficgen",
    version,
    after_long_help = EXAMPLES,
    after_help = "Run with --help for examples.",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Target URL (http:// or https://).
    #[arg(value_name = "URL")]
    pub url: Option<String>,

    /// Duration in seconds, as the original took it (same as -d).
    #[arg(value_name = "SECONDS")]
    pub seconds: Option<String>,

    /// Connections, as the original took it (same as -c).
    #[arg(value_name = "CONCURRENCY")]
    pub concurrency: Option<u32>,

    #[command(flatten)]
    pub load: plan::LoadArgs,

    /// Where to write the JSON summary; `-` is stdout.
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: String,

    /// A per-second CSV: second,scheduled,sent,completed,errors,rate,p50_us,p90_us,p99_us,max_us.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,

    /// An HdrHistogram interval log (V2 + DEFLATE, one interval per second, microseconds).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,

    /// HdrHistogram's percentile distribution text of the latency, to a file or `-` (stderr).
    #[arg(long, value_name = "FILE")]
    pub percentiles: Option<String>,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Merge summaries of load sent at the same time (several generators) into one, exactly,
    /// through their histograms.
    Merge {
        /// Summaries to merge; `-` is stdin.
        #[arg(required = true, value_name = "SUMMARY")]
        inputs: Vec<String>,
        /// Where to write the merged summary; `-` is stdout.
        #[arg(short, long, value_name = "FILE", default_value = "-")]
        output: String,
    },
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("bad URL {url:?}: {problem}")]
    Url { url: String, problem: String },
    #[error("bad header {header:?}: {problem} (expected \"Name: value\")")]
    Header { header: String, problem: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--cacert {path}: {problem}")]
    CaCert { path: String, problem: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot resolve {host}: {problem}")]
    Resolve { host: String, problem: String },
    #[error("cannot reach {target}: {problem}")]
    Unreachable { target: String, problem: String },
    #[error("cannot start the load threads: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(
        "{connections} connections need about {needed} open files, and this process may open \
         {limit} (its hard limit; `ulimit -n`): raise the limit, or use fewer connections"
    )]
    OpenFiles {
        connections: u32,
        needed: u64,
        limit: u64,
    },
    #[error(
        "no request succeeded ({errors} errors: {kinds}); the summary was written all the same"
    )]
    NothingSucceeded { errors: u64, kinds: String },
    #[error("{}; the summary was written, marked interrupted", match *.signal {
        15 => "terminated (SIGTERM)",
        _ => "interrupted (Ctrl-C)",
    })]
    Interrupted { signal: i32 },
    #[error("{input}: {problem}")]
    BadSummary { input: String, problem: String },
    #[error("{0}")]
    Merge(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Failure for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Url { .. } | Error::Header { .. } => 2,
            // As a shell reports a command ended by the signal: 130 for SIGINT, 143 for SIGTERM.
            Error::Interrupted { signal } => u8::try_from(128 + signal).unwrap_or(1),
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs trafficgen; `main` maps the error to the exit code.
pub fn run(args: Args) -> Result<()> {
    if let Some(Command::Merge { inputs, output }) = args.command {
        return merge(&inputs, &output);
    }
    let plan = Plan::from_args(
        args.url.as_deref(),
        args.seconds.as_deref(),
        args.concurrency,
        &args.load,
    )?;
    // Outputs are opened first, so that a bad path fails before the load, not after.
    Output::check_distinct(&[
        ("-o", Some(Path::new(&args.output))),
        ("--timeline", args.timeline.as_deref()),
        ("--hlog", args.hlog.as_deref()),
        ("--percentiles", args.percentiles.as_deref().map(Path::new)),
    ])
    .map_err(Error::Usage)?;
    let summary_out = create(&args.output)?;
    let timeline_out = args
        .timeline
        .as_ref()
        .map(|p| create(&p.to_string_lossy()))
        .transpose()?;
    let hlog_out = args
        .hlog
        .as_ref()
        .map(|p| create(&p.to_string_lossy()))
        .transpose()?;
    let percentiles_out = match args.percentiles.as_deref() {
        None => None,
        Some("-") => Some(None),
        Some(path) => Some(Some(create(path)?)),
    };

    // -q asks for errors only on stderr: no progress line either.
    let outcome = engine::run(&plan, hlog_out, !args.log.quiet)?;
    let summary = report::summary(&plan, &outcome)?;

    if let Some(out) = timeline_out {
        report::write_timeline(out, &outcome).map_err(|source| Error::Write {
            path: args
                .timeline
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
            source,
        })?;
    }
    if let Some(target) = percentiles_out {
        let text = report::percentile_text(&outcome.latency);
        match target {
            None => eprint_text(&text),
            Some(mut out) => {
                use std::io::Write as _;
                out.write_all(text.as_bytes())
                    .and_then(|()| out.commit())
                    .map_err(|source| Error::Write {
                        path: args.percentiles.clone().unwrap_or_default(),
                        source,
                    })?;
            }
        }
    }
    write_summary(summary_out, &summary, &args.output)?;
    // A person at a terminal gets the figures in a few lines, as wrk prints them; scripts and
    // pipelines (stderr not a terminal) get only the files.
    if !args.log.quiet && std::io::stderr().is_terminal() {
        eprint_text(&report::text(&summary));
    }
    report::warn_about(&plan, &summary);

    if let Some(signal) = outcome.stopped_by {
        return Err(Error::Interrupted { signal });
    }
    if summary.requests.completed == 0 {
        let kinds = report::listed(&summary.errors_by_kind, |kind, n| format!("{n} {kind}"));
        return Err(Error::NothingSucceeded {
            errors: summary.requests.errors,
            kinds: if kinds.is_empty() {
                "none sent".to_owned()
            } else {
                kinds
            },
        });
    }
    Ok(())
}

fn eprint_text(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn create(path: &str) -> Result<Output> {
    Output::create(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_summary(mut out: Output, summary: &TrafficgenSummary, path: &str) -> Result<()> {
    use std::io::Write as _;
    let write_err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    serde_json::to_writer_pretty(&mut out, summary).map_err(|e| write_err(e.into()))?;
    out.write_all(b"\n").map_err(write_err)?;
    out.commit().map_err(write_err)
}

/// Reads summaries, checks their schema, and merges them.
fn merge(inputs: &[String], output: &str) -> Result<()> {
    let mut summaries = Vec::with_capacity(inputs.len());
    let mut names = Vec::with_capacity(inputs.len());
    for arg in inputs {
        let input = Input::from_arg(arg);
        let name = input.to_string();
        let mut reader = input.open().map_err(|source| Error::Read {
            path: name.clone(),
            source,
        })?;
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|source| Error::Read {
                path: name.clone(),
                source,
            })?;
        summaries.push(read_summary(&name, &text)?);
        names.push(name);
    }
    // The same run given twice (a repeated path, or a copy) would count its requests twice.
    for (j, later) in summaries.iter().enumerate() {
        if let Some(i) = summaries[..j].iter().position(|earlier| earlier == later) {
            return Err(Error::Merge(format!(
                "{} and {} are the same run (every figure equal): merged, its requests would \
                 count twice",
                names[i], names[j]
            )));
        }
    }
    if let Some((i, j, overlap)) = trafficgen::apart_in_time(&summaries) {
        let span = |k: usize| {
            let s = &summaries[k];
            format!("from {} for {:.1} s", s.started_at, s.duration_s)
        };
        tracing::warn!(
            "{} ({}) and {} ({}) sent at the same time for only {overlap:.1} s: merge adds up              generators that send together, rates included, as if these had. Repetitions of a              run stay separate files (runs/ARM/1/, 2/, …), which compare reads as repetitions",
            names[i],
            span(i),
            names[j],
            span(j)
        );
    }
    if let Some((i, j)) = trafficgen::shared_poisson_seed(&summaries) {
        tracing::warn!(
            "{} and {} used the same Poisson seed, so their generators sent on the same \
             schedule: the merged load came in bursts of both at once, not as independent \
             arrivals at the summed rate (give each generator its own --seed, or none)",
            names[i],
            names[j]
        );
    }
    let merged = trafficgen::merge(&summaries).map_err(|e| match e {
        MergeError::Histogram { index, source } => Error::BadSummary {
            input: names[index].clone(),
            problem: source.to_string(),
        },
        MergeError::Mode {
            index,
            expected,
            found,
        } => {
            let loop_name = |m| match m {
                Mode::Open => "an open-loop",
                Mode::Closed => "a closed-loop",
            };
            Error::Merge(format!(
                "{} is {} run and {} {} one: open- and closed-loop runs do not merge",
                names[index],
                loop_name(found),
                names[0],
                loop_name(expected)
            ))
        }
        MergeError::Empty | MergeError::TooLarge { .. } => Error::Merge(e.to_string()),
    })?;
    let out = create(output)?;
    write_summary(out, &merged, output)
}

/// Parses one summary (see [`meshbench_formats::trafficgen::read_summary`]), naming the input in
/// the error.
pub fn read_summary(name: &str, text: &str) -> Result<TrafficgenSummary> {
    trafficgen::read_summary(text).map_err(|e| Error::BadSummary {
        input: name.to_owned(),
        problem: e.to_string(),
    })
}

/// `main`, in one call.
pub fn main_with(args: Args) -> ExitCode {
    args.log.init();
    meshbench_cli::exit("trafficgen", run(args))
}

use std::io::Read as _;
