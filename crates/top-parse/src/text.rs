//! `kubectl top` text output: the layout is recognised from the header (or given with
//! `--layout` for `--no-headers` output), then each line is split on runs of whitespace, never on
//! column offsets, because pasted copies lose trailing spaces and alignment.
//!
//! What kubectl prints (kubernetes/kubectl `pkg/metricsutil/metrics_printer.go`):
//! - pods: `[NAMESPACE] [POD] NAME CPU(cores) MEMORY(bytes) [SWAP(bytes)]`, `--containers` adding
//!   `POD` and naming the container `NAME`;
//! - nodes: `NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%) [SWAP(bytes) SWAP(%)]`, `CPU%` and
//!   `MEMORY%` before kubectl 1.32; `<unknown>` cells for nodes without metrics, which before 1.23
//!   came with extra empty cells (invisible once split on whitespace);
//! - `--sum`: a line of `________` cells, then the totals with no name. kubectl sums the exact
//!   quantities and rounds once, so the footer may differ from the sum of the printed rows by up
//!   to 1m of CPU and 1Mi of memory per row.

use std::io::BufRead;

use jiff::Timestamp;
use meshbench_formats::Quantity;
use meshbench_formats::usage::{Cpu, NodeUsageRow, PodUsageRow, UsageKind};

use crate::{Error, Labels, Row};

/// The four `kubectl top pod` layouts and `kubectl top node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// `kubectl top pod`: NAME CPU MEMORY
    Pods,
    /// `kubectl top pod -A`: NAMESPACE NAME CPU MEMORY
    #[value(alias = "pods-A")]
    PodsAllNamespaces,
    /// `kubectl top pod --containers`: POD NAME CPU MEMORY
    Containers,
    /// `kubectl top pod -A --containers`: NAMESPACE POD NAME CPU MEMORY
    #[value(alias = "containers-A")]
    ContainersAllNamespaces,
    /// `kubectl top node`: NAME CPU CPU% MEMORY MEMORY%
    Nodes,
}

impl Layout {
    pub fn kind(self) -> UsageKind {
        match self {
            Layout::Nodes => UsageKind::Nodes,
            _ => UsageKind::Pods,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Layout::Pods => "NAME CPU(cores) MEMORY(bytes)",
            Layout::PodsAllNamespaces => "NAMESPACE NAME CPU(cores) MEMORY(bytes)",
            Layout::Containers => "POD NAME CPU(cores) MEMORY(bytes)",
            Layout::ContainersAllNamespaces => "NAMESPACE POD NAME CPU(cores) MEMORY(bytes)",
            Layout::Nodes => "NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)",
        }
    }

    /// Leading name columns (namespace, pod, container) before the resource columns.
    fn name_columns(self) -> usize {
        match self {
            Layout::Pods | Layout::Nodes => 1,
            Layout::PodsAllNamespaces | Layout::Containers => 2,
            Layout::ContainersAllNamespaces => 3,
        }
    }

    fn resource_columns(self, swap: bool) -> usize {
        match (self, swap) {
            (Layout::Nodes, false) => 4,
            (Layout::Nodes, true) => 6,
            (_, false) => 2,
            (_, true) => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Namespace,
    Name,
    Pod,
    Cpu,
    CpuPercent,
    Memory,
    MemoryPercent,
    Swap,
    SwapPercent,
}

fn column(token: &[u8]) -> Option<Column> {
    Some(match token {
        b"NAMESPACE" => Column::Namespace,
        b"NAME" => Column::Name,
        b"POD" => Column::Pod,
        b"CPU(cores)" => Column::Cpu,
        b"CPU(%)" | b"CPU%" => Column::CpuPercent,
        b"MEMORY(bytes)" => Column::Memory,
        b"MEMORY(%)" | b"MEMORY%" => Column::MemoryPercent,
        b"SWAP(bytes)" => Column::Swap,
        b"SWAP(%)" => Column::SwapPercent,
        _ => return None,
    })
}

/// A recognised header: the layout and whether kubectl's `--show-swap` columns follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    layout: Layout,
    swap: bool,
}

/// Interprets a header line, or `Ok(None)` if the line does not start like one.
fn parse_header(tokens: &[&[u8]]) -> Result<Option<Header>, String> {
    if tokens.first().and_then(|t| column(t)).is_none() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(tokens.len());
    for t in tokens {
        match column(t) {
            Some(c) => columns.push(c),
            None => {
                return Err(format!(
                    "unknown column {:?} in the header; kubectl top prints NAMESPACE, POD, NAME, \
                     CPU(cores), CPU(%), MEMORY(bytes), MEMORY(%), SWAP(bytes) and SWAP(%)",
                    String::from_utf8_lossy(t)
                ));
            }
        }
    }
    use Column::*;
    let (layout, swap) = match columns.as_slice() {
        [Name, Cpu, Memory] => (Layout::Pods, false),
        [Name, Cpu, Memory, Swap] => (Layout::Pods, true),
        [Namespace, Name, Cpu, Memory] => (Layout::PodsAllNamespaces, false),
        [Namespace, Name, Cpu, Memory, Swap] => (Layout::PodsAllNamespaces, true),
        [Pod, Name, Cpu, Memory] => (Layout::Containers, false),
        [Pod, Name, Cpu, Memory, Swap] => (Layout::Containers, true),
        [Namespace, Pod, Name, Cpu, Memory] => (Layout::ContainersAllNamespaces, false),
        [Namespace, Pod, Name, Cpu, Memory, Swap] => (Layout::ContainersAllNamespaces, true),
        [Name, Cpu, CpuPercent, Memory, MemoryPercent] => (Layout::Nodes, false),
        [
            Name,
            Cpu,
            CpuPercent,
            Memory,
            MemoryPercent,
            Swap,
            SwapPercent,
        ] => (Layout::Nodes, true),
        _ => {
            return Err(
                "these columns are not in an order kubectl top prints; expected one of: \
                 NAME CPU(cores) MEMORY(bytes) | NAMESPACE NAME … | POD NAME … | \
                 NAMESPACE POD NAME … | NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)"
                    .to_owned(),
            );
        }
    };
    Ok(Some(Header { layout, swap }))
}

/// Splits a line on runs of ASCII whitespace into at most `out.len()` tokens; returns how many
/// tokens the line has (which may exceed `out.len()`).
fn split<'a>(line: &'a [u8], out: &mut [&'a [u8]; 8]) -> usize {
    let mut count = 0;
    let mut i = 0;
    let n = line.len();
    while i < n {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == n {
            break;
        }
        let start = i;
        while i < n && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        if count < out.len() {
            out[count] = &line[start..i];
        }
        count += 1;
    }
    count
}

fn utf8(token: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(token).map_err(|_| "invalid UTF-8 (is this a text file?)".to_owned())
}

fn quantity(token: &[u8], what: &str) -> Result<Quantity, String> {
    let text = utf8(token)?;
    Quantity::parse(text).map_err(|e| format!("{what}: {e}"))
}

fn cpu(token: &[u8]) -> Result<Cpu, String> {
    let q = quantity(token, "CPU")?;
    Cpu::from_quantity(q).ok_or_else(|| {
        format!(
            "CPU {:?} is negative or out of range",
            String::from_utf8_lossy(token)
        )
    })
}

fn memory(token: &[u8]) -> Result<u64, String> {
    let q = quantity(token, "memory")?;
    u64::try_from(q.value_ceil()).map_err(|_| {
        format!(
            "memory {:?} is negative or out of range",
            String::from_utf8_lossy(token)
        )
    })
}

fn percent(token: &[u8]) -> Result<u32, String> {
    let digits = token.strip_suffix(b"%").unwrap_or_default();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "expected a percentage such as 42% or <unknown>, found {:?}",
            String::from_utf8_lossy(token)
        ));
    }
    utf8(digits)?.parse().map_err(|_| {
        format!(
            "percentage {:?} is out of range",
            String::from_utf8_lossy(token)
        )
    })
}

fn unknown_or<T>(
    token: &[u8],
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if token == b"<unknown>" {
        Ok(None)
    } else {
        parse(token).map(Some)
    }
}

/// Counts and totals of one table, for the `--sum` cross-check.
#[derive(Debug, Default)]
struct Totals {
    rows: u64,
    cpu_nanocores: i128,
    memory_bytes: i128,
}

/// Where the parser is in the table.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Rows,
    /// Saw the `________` line; the totals come next.
    SumSeparator,
    /// Saw the totals; nothing may follow.
    Done,
}

/// How a text input went, for the caller's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextReport {
    pub layout: Layout,
    pub rows: u64,
    pub skipped: u64,
}

pub(crate) struct TextOptions<'a> {
    pub name: &'a str,
    pub layout: Option<Layout>,
    pub skip_bad_lines: bool,
    pub labels: &'a Labels,
}

/// Messages kubectl prints on stderr that end up in files through `2>&1`.
const KUBECTL_MESSAGES: [&str; 4] = [
    "Metrics API not available",
    "metrics not available yet",
    "No resources found",
    "error:",
];

/// Parses one text input, calling `emit` for every row. `first` is the first non-blank line,
/// already read (without its line terminator), at line number `first_no`.
pub(crate) fn parse(
    opts: &TextOptions<'_>,
    first: &[u8],
    first_no: u64,
    mut input: impl BufRead,
    emit: &mut dyn FnMut(Row<'_>) -> crate::Result<()>,
) -> Result<TextReport, Error> {
    let line_error = |line: u64, text: &[u8], problem: String| Error::BadLine {
        input: opts.name.to_owned(),
        line,
        text: String::from_utf8_lossy(text).trim_end().to_owned(),
        problem,
    };

    let text = String::from_utf8_lossy(first);
    if let Some(msg) = KUBECTL_MESSAGES
        .iter()
        .find(|m| text.trim_start().starts_with(*m))
    {
        return Err(line_error(
            first_no,
            first,
            format!(
                "this is a kubectl message ({msg:?}), not a table: kubectl top found no \
                 metrics to print"
            ),
        ));
    }

    let mut first_tokens: [&[u8]; 8] = [&[]; 8];
    let count = split(first, &mut first_tokens);
    let parsed =
        parse_header(&first_tokens[..count.min(8)]).map_err(|p| line_error(first_no, first, p))?;
    // Without a header, the first line is already data.
    let mut pending_first = parsed.is_none();
    let header = match (parsed, opts.layout) {
        (Some(h), Some(given)) if h.layout != given => {
            return Err(line_error(
                first_no,
                first,
                format!(
                    "the header is kubectl's {:?} layout but --layout says {:?}",
                    h.layout, given
                ),
            ));
        }
        (Some(h), _) => h,
        (None, Some(layout)) => Header {
            layout,
            swap: false,
        },
        (None, None) => {
            return Err(line_error(
                first_no,
                first,
                "no header line (as in `kubectl top --no-headers` output), so the layout is unknown: four columns could be \
                 `-A` or `--containers`, so pass --layout (pods, pods-all-namespaces, containers, \
                 containers-all-namespaces or nodes)"
                    .to_owned(),
            ));
        }
    };
    if header.swap {
        tracing::info!(
            "{}: SWAP columns are checked but not written (usage rows have no swap column)",
            opts.name
        );
    }

    let layout = header.layout;
    let names = layout.name_columns();
    let width = names + layout.resource_columns(header.swap);
    let mut report = TextReport {
        layout,
        rows: 0,
        skipped: 0,
    };
    let mut totals = Totals::default();
    let mut state = State::Rows;
    let labels = opts.labels;

    let mut buf = Vec::with_capacity(256);
    let mut line_no = first_no;

    loop {
        let line: &[u8] = if pending_first {
            pending_first = false;
            first
        } else {
            buf.clear();
            let read = input
                .read_until(b'\n', &mut buf)
                .map_err(|source| Error::Read {
                    input: opts.name.to_owned(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            line_no += 1;
            &buf
        };
        if memchr::memchr(0, line).is_some() {
            return Err(Error::Binary {
                input: opts.name.to_owned(),
                line: line_no,
            });
        }
        let mut tokens: [&[u8]; 8] = [&[]; 8];
        let n = split(line, &mut tokens);
        if n == 0 {
            continue;
        }
        let result = (|| -> Result<Option<Row<'_>>, String> {
            if state == State::Done {
                return Err("unexpected line after the --sum totals".to_owned());
            }
            if n <= 8 && tokens[..n].iter().all(|t| t.iter().all(|&b| b == b'_')) {
                if layout.kind() == UsageKind::Nodes {
                    return Err("a --sum footer in `kubectl top node` output".to_owned());
                }
                if state != State::Rows {
                    return Err("a second --sum separator".to_owned());
                }
                state = State::SumSeparator;
                return Ok(None);
            }
            if state == State::SumSeparator {
                let expected = layout.resource_columns(header.swap);
                if n != expected {
                    return Err(format!(
                        "expected the --sum totals ({expected} values) after the ________ line, \
                         found {n} values"
                    ));
                }
                check_sum(opts.name, line_no, &tokens[..n], &totals)?;
                state = State::Done;
                return Ok(None);
            }
            if column(tokens[0]).is_some() {
                return Err("a second header line: one `kubectl top` table per file".to_owned());
            }
            if n != width {
                return Err(format!(
                    "expected {width} columns ({}{}), found {n}",
                    layout.header(),
                    if header.swap { " + SWAP" } else { "" }
                ));
            }
            let resources = &tokens[names..n];
            let row = if layout == Layout::Nodes {
                let cpu_m = unknown_or(resources[0], cpu)?;
                let row = NodeUsageRow {
                    run: labels.run.as_str(),
                    timestamp: labels.timestamp,
                    node: utf8(tokens[0])?,
                    cpu_millicores: cpu_m,
                    cpu_percent: unknown_or(resources[1], percent)?,
                    memory_bytes: unknown_or(resources[2], memory)?,
                    memory_percent: unknown_or(resources[3], percent)?,
                };
                if header.swap {
                    unknown_or(resources[4], memory)?;
                    unknown_or(resources[5], percent)?;
                }
                Row::Node(row)
            } else {
                let (namespace, pod, container) = match layout {
                    Layout::Pods => (None, tokens[0], None),
                    Layout::PodsAllNamespaces => (Some(tokens[0]), tokens[1], None),
                    Layout::Containers => (None, tokens[0], Some(tokens[1])),
                    _ => (Some(tokens[0]), tokens[1], Some(tokens[2])),
                };
                if resources.iter().any(|t| *t == b"<unknown>") {
                    return Err(
                        "<unknown> in a pod row: kubectl prints it only for nodes".to_owned()
                    );
                }
                let cpu_value = cpu(resources[0])?;
                let memory_value = memory(resources[1])?;
                if header.swap {
                    memory(resources[2])?;
                }
                totals.rows += 1;
                totals.cpu_nanocores += i128::from(cpu_value.nanocores());
                totals.memory_bytes += i128::from(memory_value);
                Row::Pod(PodUsageRow {
                    run: labels.run.as_str(),
                    timestamp: labels.timestamp,
                    namespace: namespace.map(utf8).transpose()?,
                    pod: utf8(pod)?,
                    container: container.map(utf8).transpose()?,
                    cpu_millicores: cpu_value,
                    memory_bytes: memory_value,
                })
            };
            Ok(Some(row))
        })();
        match result {
            Ok(Some(row)) => {
                emit(row)?;
                report.rows += 1;
            }
            Ok(None) => {}
            Err(problem) if opts.skip_bad_lines => {
                report.skipped += 1;
                tracing::warn!(
                    "{}:{line_no}: skipped: {problem}: {}",
                    opts.name,
                    String::from_utf8_lossy(line).trim_end()
                );
            }
            Err(problem) => return Err(line_error(line_no, line, problem)),
        }
    }
    if state == State::SumSeparator {
        tracing::warn!("{}: the --sum footer has no totals line", opts.name);
    }
    Ok(report)
}

/// Compares kubectl's `--sum` totals with the rows, allowing for its rounding: it sums exact
/// quantities and rounds once, while each printed row was rounded (CPU up, memory down).
fn check_sum(name: &str, line: u64, tokens: &[&[u8]], totals: &Totals) -> Result<(), String> {
    let footer_cpu = i128::from(cpu(tokens[0])?.nanocores());
    let footer_memory = i128::from(memory(tokens[1])?);
    let rows = i128::from(totals.rows.max(1));
    let cpu_gap = (footer_cpu - totals.cpu_nanocores).abs();
    let memory_gap = (footer_memory - totals.memory_bytes).abs();
    let cpu_ok = cpu_gap <= rows * 1_000_000;
    let memory_ok = memory_gap <= rows * (1 << 20);
    if !(cpu_ok && memory_ok) {
        tracing::warn!(
            "{name}:{line}: the --sum footer ({} / {}) does not match the {} rows above it \
             ({}m / {} bytes), beyond kubectl's rounding of 1m and 1Mi per row",
            String::from_utf8_lossy(tokens[0]),
            String::from_utf8_lossy(tokens[1]),
            totals.rows,
            Cpu::from_nanocores(i64::try_from(totals.cpu_nanocores).unwrap_or(i64::MAX)),
            totals.memory_bytes,
        );
    }
    Ok(())
}

/// Parses a timestamp argument: RFC 3339, or `now`.
pub fn parse_timestamp(arg: &str) -> Result<Timestamp, String> {
    if arg == "now" {
        let now = Timestamp::now();
        // Whole milliseconds: finer digits are noise for 15 s metrics and clutter every row.
        return Timestamp::from_millisecond(now.as_millisecond()).map_err(|e| e.to_string());
    }
    arg.parse::<Timestamp>().map_err(|e| {
        format!("{arg:?} is not an RFC 3339 timestamp such as 2026-11-26T08:00:00Z, or `now`: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<&[u8]> {
        line.split_ascii_whitespace().map(str::as_bytes).collect()
    }

    #[test]
    fn split_on_whitespace_runs() {
        let mut t: [&[u8]; 8] = [&[]; 8];
        let n = split(b"  kube-system\tcoredns-1   3m  12Mi   \r\n", &mut t);
        assert_eq!(n, 4);
        assert_eq!(t[0], b"kube-system");
        assert_eq!(t[3], b"12Mi");
        assert_eq!(split(b"", &mut t), 0);
        assert_eq!(split(b"a b c d e f g h i j", &mut t), 10);
    }

    #[test]
    fn headers_of_every_layout() {
        let h = |s: &str| parse_header(&toks(s)).unwrap().unwrap();
        assert_eq!(h("NAME CPU(cores) MEMORY(bytes)").layout, Layout::Pods);
        assert_eq!(
            h("NAMESPACE NAME CPU(cores) MEMORY(bytes)").layout,
            Layout::PodsAllNamespaces
        );
        assert_eq!(
            h("POD NAME CPU(cores) MEMORY(bytes)").layout,
            Layout::Containers
        );
        assert_eq!(
            h("NAMESPACE POD NAME CPU(cores) MEMORY(bytes)").layout,
            Layout::ContainersAllNamespaces
        );
        assert_eq!(
            h("NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)").layout,
            Layout::Nodes
        );
        assert_eq!(
            h("NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%").layout,
            Layout::Nodes
        );
        let swap = h("NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%) SWAP(bytes) SWAP(%)");
        assert!(swap.swap);
    }

    #[test]
    fn header_errors_say_why() {
        let err = parse_header(&toks("NAME CPU(cores) GPU MEMORY(bytes)")).unwrap_err();
        assert!(err.contains("\"GPU\""), "{err}");
        let err = parse_header(&toks("NAME MEMORY(bytes) CPU(cores)")).unwrap_err();
        assert!(err.contains("order"), "{err}");
        assert_eq!(parse_header(&toks("coredns 1m 2Mi")).unwrap(), None);
    }

    #[test]
    fn cells() {
        assert_eq!(cpu(b"250m").unwrap(), Cpu::from_millicores(250));
        assert_eq!(cpu(b"2").unwrap(), Cpu::from_millicores(2000));
        assert!(cpu(b"-1m").is_err());
        assert_eq!(memory(b"180Mi").unwrap(), 180 << 20);
        assert_eq!(memory(b"1.5Ki").unwrap(), 1536);
        assert!(memory(b"12MB").is_err());
        assert_eq!(percent(b"142%").unwrap(), 142);
        assert!(percent(b"12").is_err());
        assert!(percent(b"%").is_err());
        assert!(percent(b"99999999999%").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2026-11-26T08:00:00Z").unwrap().to_string(),
            "2026-11-26T08:00:00Z"
        );
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("now").is_ok());
    }
}
