//! top-parse: `kubectl top` text or metrics-API JSON in, resource-usage rows in base units out.
//!
//! Replaces the parsing half of the seed's `parse-benchmark-results.py`. Inputs are recognised by
//! content (a JSON object, or a `kubectl top` header); rows stream to the writer from
//! `meshbench-formats`, so memory stays flat whatever the input size. Totals and comparisons are
//! `compare`'s job, not this tool's.

use std::io::{self, BufRead};

use clap::Parser;
use jiff::Timestamp;
use meshbench_cli::{Failure, Input, Interrupt, LogArgs, Output, Readiness};
use meshbench_formats::usage::{
    Fragment, NodeUsageRow, PodUsageRow, UsageFormat, UsageKind, UsageWriter,
};

mod fast;
pub mod live;
mod metrics_api;
pub mod text;

pub use text::Layout;

const EXAMPLES: &str = "\
Examples:
  # A snapshot of every container, as rows in base units (CSV on stdout)
  kubectl top pods -A --containers | top-parse --run linkerd-1 --timestamp now

  # Node usage, from a file saved by the benchmark driver
  top-parse --run istio-1 -o istio-nodes.csv istio-node-metrics.txt

  # The metrics API directly, keeping nanocore precision and its own timestamps
  kubectl get --raw /apis/metrics.k8s.io/v1beta1/pods | top-parse --run none-1 -f ndjson

  # Output saved with --no-headers: say which layout it is
  top-parse --layout containers-all-namespaces snapshot.txt

  # Sample a live cluster (kubeconfig and context as kubectl picks them) every 15 s for 5 min
  top-parse --from-cluster -A --containers --interval 15s --duration 5m --run linkerd-1 -o pods.csv

  # The pipeline: snapshots per arm, then the verdict table
  top-parse --run linkerd-1 -o runs/linkerd/1/pods.csv linkerd-pods.txt
  compare --arm linkerd=runs/linkerd --arm istio=runs/istio";

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A header row, then one row per line (docs/formats.md)
    Csv,
    /// One document: {"schema": …, "rows": [...]}
    Json,
    /// One JSON object per row, each with its schema
    Ndjson,
}

impl From<Format> for UsageFormat {
    fn from(f: Format) -> UsageFormat {
        match f {
            Format::Csv => UsageFormat::Csv,
            Format::Json => UsageFormat::Json,
            Format::Ndjson => UsageFormat::Ndjson,
        }
    }
}

/// Turn `kubectl top` output into resource-usage rows in base units.
///
/// Reads `kubectl top pod` (plain, -A, --containers, -A --containers, with or without --sum),
/// `kubectl top node` (any kubectl version) or metrics.k8s.io/v1beta1 JSON, detected from the
/// content. Writes pod rows (run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes)
/// or node rows (run,timestamp,node,cpu_millicores,cpu_percent,memory_bytes,memory_percent).
#[derive(Debug, Parser)]
#[command(name = "top-parse", version, after_long_help = EXAMPLES, after_help = "Run with --help for examples.")]
pub struct Args {
    /// Files to read, all of one kind (pods or nodes); `-` is stdin.
    #[arg(value_name = "INPUT", default_value = "-")]
    pub inputs: Vec<String>,

    /// Where to write; a file appears only once complete. `-` is stdout.
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: String,

    /// Output encoding.
    #[arg(short, long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,

    /// Label written in the `run` column of every row; compare groups rows by it.
    #[arg(long, value_name = "LABEL", default_value = "")]
    pub run: String,

    /// Timestamp for rows whose source has none (kubectl top text): RFC 3339, or `now` (the time
    /// each table is read, so a loop piped in stamps each sample). Metrics-API JSON keeps its own
    /// timestamps.
    #[arg(long, value_name = "TIME", value_parser = text::parse_timestamp)]
    pub timestamp: Option<text::TimestampArg>,

    /// The layout of header-less (`--no-headers`) text; checked against the header if there is one.
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,

    /// Warn about lines that do not fit the layout and go on, as the original script did,
    /// instead of failing on the first.
    #[arg(long)]
    pub skip_bad_lines: bool,

    /// Threads for large text inputs (default: the number of cores; 1 reads on one thread).
    /// Output is the same whatever the number; JSON output always uses one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Sample the cluster's metrics API instead of reading inputs: the rows `kubectl top pod`
    /// (or `top node` with --nodes) would give, with the server's timestamps and full precision.
    #[arg(long, conflicts_with_all = ["inputs", "layout", "skip_bad_lines", "timestamp", "threads"])]
    pub from_cluster: bool,

    /// The kubeconfig (default: KUBECONFIG, then ~/.kube/config) [--from-cluster].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// The kubeconfig context (default: its current context) [--from-cluster].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace of the pods. With --from-cluster, the one to sample (default: the context's);
    /// with tables from `kubectl top pod -n NS`, which have no NAMESPACE column, the namespace
    /// their rows are in (default: none, an empty cell).
    #[arg(
        short = 'n',
        long,
        value_name = "NS",
        value_parser = namespace_arg,
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,

    /// Pods of every namespace, with a namespace column [--from-cluster].
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// A row per container instead of per pod [--from-cluster].
    #[arg(long)]
    pub containers: bool,

    /// Node rows (with kubectl's percentages of allocatable) instead of pod rows [--from-cluster].
    #[arg(long, conflicts_with_all = ["containers", "all_namespaces", "namespace"])]
    pub nodes: bool,

    /// Only pods (or nodes) with these labels, as `kubectl top -l` [--from-cluster].
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Time between samples (default 15s) [--from-cluster].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub interval: Option<std::time::Duration>,

    /// Number of samples (default 1) [--from-cluster].
    #[arg(long, value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: Option<u64>,

    /// Sample for this long: one sample now, then one per interval within it [--from-cluster].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub duration: Option<std::time::Duration>,

    #[command(flatten)]
    pub log: LogArgs,
}

/// A namespace name as Kubernetes allows it (an RFC 1123 label): it also needs no quoting in CSV.
fn namespace_arg(text: &str) -> std::result::Result<String, String> {
    let label = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if label {
        Ok(text.to_owned())
    } else {
        Err("expected a namespace name: lower-case letters, digits and '-', at most 63".to_owned())
    }
}

fn duration_arg(text: &str) -> std::result::Result<std::time::Duration, String> {
    meshbench_cli::parse_duration(text)
        .ok_or_else(|| format!("{text:?}: expected a duration such as 15s, 500ms or 5m"))
}

/// Everything that can go wrong; each message names the input and, where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} while reading {input}; {}", match *.signal {
        15 => "terminated (SIGTERM)",
        _ => "interrupted (Ctrl-C)",
    }, if *.written {
        "the rows read before it were written"
    } else {
        "nothing was written"
    })]
    Interrupted {
        input: String,
        written: bool,
        /// The signal's number: 2 for SIGINT (Ctrl-C), 15 for SIGTERM.
        signal: i32,
    },
    #[error("{input}: cannot read: {source}")]
    Read {
        input: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{input}: empty input: expected kubectl top output or metrics API JSON (kubectl top \
         prints nothing on stdout when it has no metrics; see its stderr)"
    )]
    Empty { input: String },
    #[error(
        "{input}:{line}: binary data (a NUL byte or invalid UTF-8): expected kubectl top text or \
         metrics API JSON"
    )]
    Binary { input: String, line: u64 },
    #[error(
        "{input}: UTF-16 text (Windows PowerShell's `>` writes it): expected UTF-8; convert it \
         with `iconv -f UTF-16 -t UTF-8`, or write it with `| Out-File -Encoding utf8`"
    )]
    Utf16 { input: String },
    #[error("{input}:{line}: {problem}\n  | {text}")]
    BadLine {
        input: String,
        line: u64,
        text: String,
        problem: String,
    },
    #[error("{input}:{line}:{column}: invalid JSON")]
    Json {
        input: String,
        line: u64,
        column: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("{input}: {problem}")]
    BadJson { input: String, problem: String },
    #[error(
        "{input} holds {} metrics but earlier inputs hold {} metrics: one output holds one kind, \
         so run top-parse once per kind",
        found.noun(), expected.noun()
    )]
    MixedKinds {
        input: String,
        expected: UsageKind,
        found: UsageKind,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the output")]
    Write(#[source] io::Error),
    #[error("cluster: {message}")]
    Cluster {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "{server} serves no metrics API (metrics.k8s.io/v1beta1): is metrics-server installed \
         and its APIService available?"
    )]
    NoMetricsApi { server: String },
    #[error("{0}")]
    Usage(String),
}

impl Failure for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            // As a shell reports a command ended by the signal: 130 for SIGINT, 143 for SIGTERM.
            Error::Interrupted { signal, .. } => u8::try_from(128 + signal).unwrap_or(1),
            _ => 1,
        }
    }
}

/// `--interval` when not given.
const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Flags that only `--from-cluster` reads, named when given without it. (clap's `requires`
/// cannot say this: it skips a requirement whose target conflicts with an argument given, and
/// `--from-cluster` conflicts with the inputs, so `top-parse -A FILE` passed; with stdin alone
/// it was enforced.)
fn cluster_flags_without_cluster(args: &Args) -> Result<()> {
    if args.from_cluster {
        return Ok(());
    }
    let given: Vec<&str> = [
        ("--kubeconfig", args.kubeconfig.is_some()),
        ("--context", args.context.is_some()),
        ("-A/--all-namespaces", args.all_namespaces),
        ("--containers", args.containers),
        ("--nodes", args.nodes),
        ("-l/--selector", args.selector.is_some()),
        ("--interval", args.interval.is_some()),
        ("--samples", args.samples.is_some()),
        ("--duration", args.duration.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} only appl{} with --from-cluster, which samples the metrics API itself; text and \
         JSON inputs are read as given",
        given.join(", "),
        if given.len() == 1 { "ies" } else { "y" }
    )))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The labels every row of a run carries.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub run: String,
    /// For sources without timestamps of their own.
    pub timestamp: Option<Timestamp>,
    /// `--timestamp now`: each table of kubectl top text takes the time it is read, in place of
    /// `timestamp`.
    pub stamp_each_table: bool,
    /// For tables without a NAMESPACE column (`kubectl top pod -n NS`): the namespace of their
    /// rows.
    pub namespace: Option<String>,
}

/// One parsed row, borrowing from the input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row<'a> {
    Pod(PodUsageRow<&'a str>),
    Node(NodeUsageRow<&'a str>),
}

impl Row<'_> {
    pub fn kind(&self) -> UsageKind {
        match self {
            Row::Pod(_) => UsageKind::Pods,
            Row::Node(_) => UsageKind::Nodes,
        }
    }
}

/// Where parsed rows go. A closure taking [`Row`]s is a sink; a sink that can also take
/// pre-formatted rows lets top-parse format large text inputs on several threads.
pub trait RowSink: Send {
    fn row(&mut self, row: Row<'_>) -> Result<()>;

    /// Worker threads, and the format they write rows in, for large text inputs; `None` (the
    /// default) parses on the calling thread and hands every row to [`RowSink::row`].
    fn parallel(&self) -> Option<(usize, UsageFormat)> {
        None
    }

    /// Rows formatted by a worker, in input order; called only when [`RowSink::parallel`] says so.
    fn fragment(&mut self, kind: UsageKind, fragment: &Fragment) -> Result<()> {
        let _ = (kind, fragment);
        unreachable!("fragments are only delivered to sinks that ask for them")
    }

    /// Called before the input is waited on (a pipe with nothing more to read yet, or the
    /// interval between live samples): rows held in buffers should go out now.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<F: FnMut(Row<'_>) -> Result<()> + Send> RowSink for F {
    fn row(&mut self, row: Row<'_>) -> Result<()> {
        self(row)
    }
}

/// How to read inputs.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    pub labels: Labels,
    pub layout: Option<Layout>,
    pub skip_bad_lines: bool,
}

/// What one input held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputReport {
    pub kind: UsageKind,
    pub rows: u64,
    pub skipped: u64,
}

/// Parses one input, whatever its kind, calling `emit` for each row in input order.
pub fn parse_input(
    name: &str,
    input: impl BufRead + Send,
    opts: &ParseOptions,
    sink: &mut dyn RowSink,
) -> Result<InputReport> {
    parse_watched_input(name, input, &Readiness::always(), opts, sink)
}

/// [`parse_input`] for an input that may keep the reader waiting (a pipe): before each read that
/// would wait, the rows so far go to the sink and [`RowSink::flush`] is called, so that a
/// sampling loop's rows come out table by table.
pub fn parse_watched_input(
    name: &str,
    mut input: impl BufRead + Send,
    readiness: &Readiness,
    opts: &ParseOptions,
    sink: &mut dyn RowSink,
) -> Result<InputReport> {
    let read_err = |source| Error::Read {
        input: name.to_owned(),
        source,
    };
    // The first non-blank line decides what this is.
    let mut first = Vec::with_capacity(256);
    let mut line_no = 0;
    loop {
        first.clear();
        if input.read_until(b'\n', &mut first).map_err(read_err)? == 0 {
            return Err(Error::Empty {
                input: name.to_owned(),
            });
        }
        line_no += 1;
        if line_no == 1 && (first.starts_with(b"\xFF\xFE") || first.starts_with(b"\xFE\xFF")) {
            return Err(Error::Utf16 {
                input: name.to_owned(),
            });
        }
        if line_no == 1 && first.starts_with(b"\xEF\xBB\xBF") {
            first.drain(..3);
        }
        if !first.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    if memchr::memchr(0, &first).is_some() || std::str::from_utf8(&first).is_err() {
        return Err(Error::Binary {
            input: name.to_owned(),
            line: line_no,
        });
    }
    let start = first
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    match first[start] {
        b'{' => {
            let mut bytes = first;
            input.read_to_end(&mut bytes).map_err(read_err)?;
            let (kind, rows) =
                metrics_api::parse(name, &bytes, &opts.labels, &mut |row| sink.row(row))?;
            Ok(InputReport {
                kind,
                rows,
                skipped: 0,
            })
        }
        b'[' => Err(Error::BadJson {
            input: name.to_owned(),
            problem: "a JSON array: expected a metrics API object such as a PodMetricsList"
                .to_owned(),
        }),
        _ => {
            let text_opts = text::TextOptions {
                name,
                layout: opts.layout,
                skip_bad_lines: opts.skip_bad_lines,
                labels: &opts.labels,
                chunk: text::CHUNK,
                readiness,
            };
            let trimmed = first.strip_suffix(b"\n").unwrap_or(&first);
            let report = text::parse(&text_opts, trimmed, line_no, input, sink)?;
            Ok(InputReport {
                kind: report.layout.kind(),
                rows: report.rows,
                skipped: report.skipped,
            })
        }
    }
}

/// The output side of a run: one writer, made when the first input says what kind of rows
/// the run writes.
struct OutputSink {
    out: Option<Output>,
    writer: Option<UsageWriter<Output>>,
    format: UsageFormat,
    threads: usize,
    /// The input being read, for messages.
    input: String,
}

impl OutputSink {
    fn writer(&mut self, kind: UsageKind) -> Result<&mut UsageWriter<Output>> {
        if self.writer.is_none() {
            let out = self.out.take().expect("one writer per run");
            self.writer = Some(UsageWriter::new(out, self.format, kind));
        }
        let w = self.writer.as_mut().expect("made above");
        if w.kind() != kind {
            return Err(Error::MixedKinds {
                input: self.input.clone(),
                expected: w.kind(),
                found: kind,
            });
        }
        Ok(w)
    }
}

impl OutputSink {
    /// Ends the output: the writer's closing bytes, then the atomic commit.
    fn finish(self) -> Result<()> {
        let writer = self.writer.expect("every input fixes the output's kind");
        writer
            .finish()
            .and_then(Output::commit)
            .map_err(Error::Write)
    }
}

impl RowSink for OutputSink {
    fn row(&mut self, row: Row<'_>) -> Result<()> {
        let w = self.writer(row.kind())?;
        match &row {
            Row::Pod(p) => w.write_pod(p),
            Row::Node(n) => w.write_node(n),
        }
        .map_err(Error::Write)
    }

    fn parallel(&self) -> Option<(usize, UsageFormat)> {
        Some((self.threads, self.format))
    }

    fn fragment(&mut self, kind: UsageKind, fragment: &Fragment) -> Result<()> {
        self.writer(kind)?.append(fragment).map_err(Error::Write)
    }

    fn flush(&mut self) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.flush().map_err(Error::Write),
            None => Ok(()),
        }
    }
}

/// Runs top-parse: every input, in order, into one output.
pub fn run(args: Args) -> Result<()> {
    cluster_flags_without_cluster(&args)?;
    let opts = ParseOptions {
        labels: Labels {
            run: args.run,
            timestamp: match args.timestamp {
                Some(text::TimestampArg::At(t)) => Some(t),
                Some(text::TimestampArg::Now) => Some(text::now()),
                None => None,
            },
            stamp_each_table: args.timestamp == Some(text::TimestampArg::Now),
            namespace: if args.from_cluster {
                None
            } else {
                args.namespace.clone()
            },
        },
        layout: args.layout,
        skip_bad_lines: args.skip_bad_lines,
    };
    // Reading files, Ctrl-C (or SIGTERM) ends the input being read, and the rows read so far are
    // written (a loop sampling `kubectl top` into a pipe is stopped so). Caught before the
    // output file is made, so that a signal never leaves its temporary file behind (a second one
    // still ends the process at once). Sampling the cluster watches for them itself. Without
    // the handler, the signals kill as before.
    let interrupt = if args.from_cluster {
        None
    } else {
        Interrupt::catch()
            .inspect_err(|e| tracing::debug!("Ctrl-C will not end the input cleanly: {e}"))
            .ok()
    };
    let out = Output::create(&args.output).map_err(|source| Error::Create {
        path: args.output.clone(),
        source,
    })?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    let mut sink = OutputSink {
        out: Some(out),
        writer: None,
        format: UsageFormat::from(args.format),
        threads,
        input: String::new(),
    };
    if args.from_cluster {
        let interval = args.interval.unwrap_or(DEFAULT_INTERVAL);
        let opts = live::LiveOptions {
            kubeconfig: args.kubeconfig,
            context: args.context,
            namespace: args.namespace,
            all_namespaces: args.all_namespaces,
            containers: args.containers,
            nodes: args.nodes,
            selector: args.selector,
            interval,
            samples: match (args.samples, args.duration) {
                (Some(n), _) => n,
                (None, Some(d)) => live::LiveOptions::samples_for(d, interval),
                (None, None) => 1,
            },
            run: opts.labels.run,
        };
        sink.input = "the cluster".to_owned();
        let (kind, stopped_by) = live::sample(&opts, &mut sink)?;
        // A run with no rows still writes an output of its kind.
        sink.writer(kind)?;
        sink.finish()?;
        if let Some(signal) = stopped_by {
            return Err(Error::Interrupted {
                input: "the cluster".to_owned(),
                written: true,
                signal,
            });
        }
        return Ok(());
    }

    let mut skipped = 0;
    let inputs = if args.inputs.is_empty() {
        vec!["-".to_owned()]
    } else {
        args.inputs
    };
    for arg in &inputs {
        let input = Input::from_arg(arg);
        sink.input = input.to_string();
        let (reader, readiness) =
            input
                .open_watched(interrupt.as_ref())
                .map_err(|source| Error::Read {
                    input: sink.input.clone(),
                    source,
                })?;
        let parsed = parse_watched_input(&input.to_string(), reader, &readiness, &opts, &mut sink);
        if readiness.interrupted() {
            // The input read as ended at Ctrl-C: whatever the parse made of that (an empty
            // input, cut JSON), the rows so far are written, and no further input is read.
            if let Ok(report) = &parsed {
                sink.writer(report.kind)?;
            }
            let input = sink.input.clone();
            let written = sink.writer.is_some();
            if written {
                tracing::warn!("interrupted while reading {input}; writing the rows read before");
                sink.finish()?;
            }
            let signal = interrupt.as_ref().and_then(Interrupt::caught).unwrap_or(2);
            return Err(Error::Interrupted {
                input,
                written,
                signal,
            });
        }
        let report = parsed?;
        // An input without rows still fixes the kind of the output.
        sink.writer(report.kind)?;
        skipped += report.skipped;
        tracing::info!(
            "{}: {} {} rows",
            sink.input,
            report.rows,
            report.kind.noun()
        );
    }
    if skipped > 0 {
        tracing::warn!("skipped {skipped} bad lines (--skip-bad-lines)");
    }
    sink.finish()
}
