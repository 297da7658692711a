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
use meshbench_cli::Readiness;
use meshbench_formats::Quantity;
use meshbench_formats::usage::{
    Cpu, CsvPrefix, Fragment, NodeUsageRow, PodUsageRow, UsageFormat, UsageKind, UsageWriter,
};

use crate::fast::{FastTotals, Go};
use crate::{Error, Labels, Row, RowSink};

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

/// As `--layout` spells it.
impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
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

    /// Which of a pod row's leading columns hold its namespace, pod and container names.
    pub(crate) fn name_slots(self) -> (Option<usize>, usize, Option<usize>) {
        match self {
            Layout::Pods | Layout::Nodes => (None, 0, None),
            Layout::PodsAllNamespaces => (Some(0), 1, None),
            Layout::Containers => (None, 0, Some(1)),
            Layout::ContainersAllNamespaces => (Some(0), 1, Some(2)),
        }
    }

    /// Leading name columns (namespace, pod, container) before the resource columns.
    pub(crate) fn name_columns(self) -> usize {
        match self {
            Layout::Pods | Layout::Nodes => 1,
            Layout::PodsAllNamespaces | Layout::Containers => 2,
            Layout::ContainersAllNamespaces => 3,
        }
    }

    pub(crate) fn resource_columns(self, swap: bool) -> usize {
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

/// [`parse_header`] of a line already split (at most 8 tokens).
fn header_of(tokens: &[&str]) -> Result<Option<Header>, String> {
    let mut bytes: [&[u8]; 8] = [&[]; 8];
    for (b, t) in bytes.iter_mut().zip(tokens) {
        *b = t.as_bytes();
    }
    parse_header(&bytes[..tokens.len().min(8)])
}

/// Splits a line on runs of ASCII whitespace into at most `out.len()` tokens; returns how many
/// tokens the line has (which may exceed `out.len()`). Whitespace is ASCII, so every cut is on a
/// character boundary.
fn split<'a>(line: &'a str, out: &mut [&'a str; 8]) -> usize {
    let bytes = line.as_bytes();
    let mut count = 0;
    let mut i = 0;
    let n = bytes.len();
    while i < n {
        i = skip_spaces(bytes, i);
        if i == n {
            break;
        }
        let start = i;
        i = skip_token(bytes, i);
        if count < out.len() {
            out[count] = line.get(start..i).unwrap_or_default();
        }
        count += 1;
    }
    count
}

/// Eight bytes at `i`, if there are eight.
fn word(bytes: &[u8], i: usize) -> Option<u64> {
    bytes
        .get(i..i + 8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
}

const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The end of the whitespace run at `i`. kubectl pads with spaces, so spaces are skipped a word
/// at a time, stopping at the first other byte; tabs and CRs are then taken byte by byte.
fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while let Some(w) = word(bytes, i) {
        let others = w ^ SPACES;
        if others != 0 {
            i += (others.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The end of the token at `i`: the next byte that is ASCII whitespace. A word at a time, it
/// stops at the first byte below 0x21 or above 0x7f (the subtraction's borrow can only mark
/// lanes above a real one, so the lowest mark is exact); the byte loop then decides.
fn skip_token(bytes: &[u8], mut i: usize) -> usize {
    while let Some(w) = word(bytes, i) {
        let marks = (w.wrapping_sub(ONES * 0x21) | w) & HIGHS;
        if marks != 0 {
            i += (marks.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn utf8(token: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(token).map_err(|_| {
        format!(
            "invalid UTF-8 in {:?}: is this a text file?",
            String::from_utf8_lossy(token)
        )
    })
}

fn quantity(token: &[u8], what: &str) -> Result<Quantity, String> {
    Quantity::parse(utf8(token)?).map_err(|e| format!("{what}: {e}"))
}

/// Digits then `suffix`, up to 12 digits (so that scaling by 10⁶ or 2²⁰ cannot overflow an i64
/// or u64): the forms kubectl top prints (`250m`, `180Mi`). Anything else takes the general
/// parser.
pub(crate) fn kubectl_number(token: &[u8], suffix: &[u8]) -> Option<u64> {
    let digits = token.strip_suffix(suffix)?;
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn cpu(token: &[u8]) -> Result<Cpu, String> {
    if let Some(millicores) = kubectl_number(token, b"m") {
        // < 10^12 millicores: fits an i64 of nanocores
        return Ok(Cpu::from_nanocores((millicores * 1_000_000) as i64));
    }
    let q = quantity(token, "CPU")?;
    Cpu::from_quantity(q).ok_or_else(|| {
        format!(
            "CPU {:?} is negative or out of range",
            String::from_utf8_lossy(token)
        )
    })
}

fn memory(token: &[u8]) -> Result<u64, String> {
    if let Some(mebibytes) = kubectl_number(token, b"Mi") {
        return Ok(mebibytes << 20);
    }
    let q = quantity(token, "memory")?;
    u64::try_from(q.value_ceil()).map_err(|_| {
        format!(
            "memory {:?} is negative or out of range",
            String::from_utf8_lossy(token)
        )
    })
}

fn percent(token: &[u8]) -> Result<u32, String> {
    let shown = || String::from_utf8_lossy(token);
    let digits = token.strip_suffix(b"%").unwrap_or_default();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "expected a percentage such as 42% or <unknown>, found {:?}",
            shown()
        ));
    }
    utf8(digits)?
        .parse()
        .map_err(|_| format!("percentage {:?} is out of range", shown()))
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
#[derive(Debug, Default, PartialEq, Eq)]
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
    /// Saw the totals; only another table may follow.
    Done,
    /// Saw the header of another table of the same layout (tables appended to one file, as a
    /// `kubectl top … >> file` loop makes): its rows and `--sum` check start afresh. Lasts one
    /// line: a worker reads on (its chunk then says a table began, see [`ChunkRows`]), unless
    /// each table takes the time it is read (`--timestamp now`), which hands the rest over.
    NewTable,
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
    /// Bytes per chunk for the workers ([`CHUNK`]; tests make it small, so that tables a few
    /// lines long take every path of the parallel reader).
    pub chunk: usize,
    /// Whether a read would wait (a pipe): rows go out before it does.
    pub readiness: &'a Readiness,
}

/// Messages kubectl prints on stderr that end up in files through `2>&1`, and what they mean.
const KUBECTL_MESSAGES: [(&str, &str); 4] = [
    (
        "Metrics API not available",
        "kubectl could not reach the metrics API (is metrics-server installed and ready?)",
    ),
    (
        "metrics not available yet",
        "metrics-server has no samples yet (it needs a scrape or two after a pod starts)",
    ),
    (
        "No resources found",
        "kubectl top found nothing to print (no pods there, or none with metrics yet)",
    ),
    ("error:", "kubectl failed instead of printing a table"),
];

/// One table being read: its header and where the reader is in it.
struct Table<'o> {
    opts: &'o TextOptions<'o>,
    header: Header,
    state: State,
    totals: Totals,
    report: TextReport,
    /// The line being read, for messages.
    line_no: u64,
    /// The timestamp of this table's rows: `--timestamp`, or with `--timestamp now` the time
    /// the table's header was read.
    timestamp: Option<Timestamp>,
}

impl<'o> Table<'o> {
    fn new(opts: &'o TextOptions<'o>, header: Header, line_no: u64) -> Table<'o> {
        let mut table = Table {
            opts,
            header,
            state: State::Rows,
            totals: Totals::default(),
            report: TextReport {
                layout: header.layout,
                rows: 0,
                skipped: 0,
            },
            line_no,
            timestamp: opts.labels.timestamp,
        };
        table.stamp();
        table
    }

    /// A new table begins: with `--timestamp now`, its rows take the time it is read (each
    /// sample of a loop piped in gets its own).
    fn stamp(&mut self) {
        if self.opts.labels.stamp_each_table {
            self.timestamp = Some(now());
        }
    }

    fn error(&self, line: u64, text: &[u8], problem: String) -> Error {
        Error::BadLine {
            input: self.opts.name.to_owned(),
            line,
            text: quoted(text),
            problem,
        }
    }

    /// Reads one line: a row is passed to `emit`; a bad line is an error, or with
    /// `--skip-bad-lines` a warning.
    fn line(
        &mut self,
        line_no: u64,
        line: &str,
        emit: &mut dyn FnMut(Row<'_>) -> crate::Result<()>,
    ) -> Result<(), Error> {
        self.line_no = line_no;
        match self.row(line) {
            Ok(Some(row)) => {
                emit(row)?;
                self.report.rows += 1;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(problem) if self.opts.skip_bad_lines => {
                self.report.skipped += 1;
                tracing::warn!(
                    "{}:{line_no}: skipped: {problem}: {}",
                    self.opts.name,
                    line.trim_end()
                );
                Ok(())
            }
            Err(problem) => Err(self.error(line_no, line.as_bytes(), problem)),
        }
    }

    /// Interprets one line: `Ok(None)` for blank and footer lines.
    fn row<'l>(&mut self, line: &'l str) -> Result<Option<Row<'l>>, String>
    where
        'o: 'l,
    {
        let mut tokens: [&str; 8] = [""; 8];
        let n = split(line, &mut tokens);
        if n == 0 {
            return Ok(None);
        }
        let Header { layout, swap } = self.header;
        if self.state == State::NewTable {
            self.state = State::Rows;
        }
        if column(tokens[0].as_bytes()).is_some() {
            if self.state == State::SumSeparator {
                return Err("a header line where the --sum totals were expected".to_owned());
            }
            return match header_of(&tokens[..n.min(8)])? {
                Some(h) if h == self.header => {
                    self.state = State::NewTable;
                    self.totals = Totals::default();
                    self.stamp();
                    Ok(None)
                }
                _ => Err(format!(
                    "a header of another layout than the first table's ({}): tables appended \
                     to one file must be of one layout",
                    layout.header()
                )),
            };
        }
        if self.state == State::Done {
            return Err(
                "a line after the --sum totals that is not a new table's header".to_owned(),
            );
        }
        if n <= 8 && tokens[..n].iter().all(|t| t.bytes().all(|b| b == b'_')) {
            if layout.kind() == UsageKind::Nodes {
                return Err("a --sum footer in `kubectl top node` output".to_owned());
            }
            if self.state != State::Rows {
                return Err("a second --sum separator".to_owned());
            }
            self.state = State::SumSeparator;
            return Ok(None);
        }
        if self.state == State::SumSeparator {
            let expected = layout.resource_columns(swap);
            if n != expected {
                return Err(format!(
                    "expected the --sum totals ({expected} values) after the ________ line, \
                     found {n} values"
                ));
            }
            self.check_sum(tokens[0].as_bytes(), tokens[1].as_bytes())?;
            self.state = State::Done;
            return Ok(None);
        }
        let names = layout.name_columns();
        let width = names + layout.resource_columns(swap);
        if n != width {
            return Err(format!(
                "expected {width} columns ({}{}), found {n}",
                layout.header(),
                if swap { " + SWAP" } else { "" }
            ));
        }
        let labels = self.opts.labels;
        let mut resources: [&[u8]; 6] = [&[]; 6];
        for (cell, token) in resources.iter_mut().zip(&tokens[names..n]) {
            *cell = token.as_bytes();
        }
        if layout == Layout::Nodes {
            let row = NodeUsageRow {
                run: labels.run.as_str(),
                timestamp: self.timestamp,
                node: tokens[0],
                cpu_millicores: unknown_or(resources[0], cpu)?,
                cpu_percent: unknown_or(resources[1], percent)?,
                memory_bytes: unknown_or(resources[2], memory)?,
                memory_percent: unknown_or(resources[3], percent)?,
            };
            if swap {
                unknown_or(resources[4], memory)?;
                unknown_or(resources[5], percent)?;
            }
            return Ok(Some(Row::Node(row)));
        }
        let (namespace, pod, container) = layout.name_slots();
        let (namespace, pod, container) = (
            namespace.map(|i| tokens[i]).or(labels.namespace.as_deref()),
            tokens[pod],
            container.map(|i| tokens[i]),
        );
        if resources.contains(&&b"<unknown>"[..]) {
            return Err("<unknown> in a pod row: kubectl prints it only for nodes".to_owned());
        }
        let cpu_value = cpu(resources[0])?;
        let memory_value = memory(resources[1])?;
        if swap {
            memory(resources[2])?;
        }
        self.totals.rows += 1;
        self.totals.cpu_nanocores += i128::from(cpu_value.nanocores());
        self.totals.memory_bytes += i128::from(memory_value);
        Ok(Some(Row::Pod(PodUsageRow {
            run: labels.run.as_str(),
            timestamp: self.timestamp,
            namespace,
            pod,
            container,
            cpu_millicores: cpu_value,
            memory_bytes: memory_value,
        })))
    }

    /// Adds up the rows of a chunk read apart.
    /// Takes over where a chunk's reader stopped: at a `--sum` footer, or at the header of an
    /// appended table, whose `--sum` check starts from nothing.
    fn resume(&mut self, state: State, line_no: u64) {
        if state == State::NewTable {
            self.totals = Totals::default();
            self.stamp();
        }
        self.state = state;
        self.line_no = line_no;
    }

    fn add(&mut self, rows: &ChunkRows) {
        if rows.new_table {
            self.totals = Totals::default();
        }
        self.report.rows += rows.rows;
        self.report.skipped += rows.skipped;
        self.totals.rows += rows.totals.rows;
        self.totals.cpu_nanocores += rows.totals.cpu_nanocores;
        self.totals.memory_bytes += rows.totals.memory_bytes;
    }

    /// Compares kubectl's `--sum` totals with the rows, allowing for its rounding: it sums exact
    /// quantities and rounds once, while each printed row was rounded (CPU up, memory down).
    fn check_sum(&self, cpu_total: &[u8], memory_total: &[u8]) -> Result<(), String> {
        let footer_cpu = i128::from(cpu(cpu_total)?.nanocores());
        let footer_memory = i128::from(memory(memory_total)?);
        let totals = &self.totals;
        let rows = i128::from(totals.rows.max(1));
        let cpu_ok = (footer_cpu - totals.cpu_nanocores).abs() <= rows * 1_000_000;
        let memory_ok = (footer_memory - totals.memory_bytes).abs() <= rows * (1 << 20);
        if !(cpu_ok && memory_ok) {
            tracing::warn!(
                "{}:{}: the --sum footer ({} / {}) does not match the {} rows above it \
                 ({}m / {} bytes), beyond kubectl's rounding of 1m and 1Mi per row",
                self.opts.name,
                self.line_no,
                String::from_utf8_lossy(cpu_total),
                String::from_utf8_lossy(memory_total),
                totals.rows,
                Cpu::from_nanocores(i64::try_from(totals.cpu_nanocores).unwrap_or(i64::MAX)),
                totals.memory_bytes,
            );
        }
        Ok(())
    }
}

/// Where a chunk read by [`read_chunk`] ends.
struct ChunkEnd {
    /// The end of its complete lines.
    complete: usize,
    /// The input has ended.
    ended: bool,
    /// The writer of a pipe paused: nothing came for [`PAUSE`] after these lines.
    paused: bool,
}

/// How long a pipe's writer may stay silent before the lines read so far are taken as they are,
/// rather than read on into a full chunk: far longer than a writer such as `cat` takes to refill
/// a pipe, far shorter than the interval of a loop sampling `kubectl top`.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Before a read that would wait on the input, the rows so far go out.
fn flush_before_waiting(opts: &TextOptions<'_>, sink: &mut dyn RowSink) -> Result<(), Error> {
    if !opts.readiness.ready_within(std::time::Duration::ZERO) {
        sink.flush()?;
    }
    Ok(())
}

/// The longest line a table may have. kubectl's lines are a few hundred bytes; a longer one is
/// something else, and reading on would hold all of it in memory.
const MAX_LINE: usize = 1 << 20;

/// Reads the next chunk of complete lines into `buf[..filled]`, keeping a partial last line
/// for the next call: returns where the complete lines end (everything, at the end of input),
/// and whether the input has ended. `buf` grows when one line is longer than it, up to
/// [`MAX_LINE`]; `line_no` is the number of the line before the partial one, for that error.
/// The chunk ends early, with the complete lines read so far, when the writer of a pipe pauses
/// (see [`ChunkEnd::paused`]).
fn read_chunk(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    filled: &mut usize,
    opts: &TextOptions<'_>,
    line_no: u64,
) -> Result<ChunkEnd, Error> {
    let name = opts.name;
    loop {
        if *filled == buf.len() {
            if *filled > MAX_LINE {
                return Err(Error::BadLine {
                    input: name.to_owned(),
                    line: line_no + 1,
                    // Only its start was read.
                    text: format!("{}…", quoted(&buf[..200])),
                    problem: format!(
                        "a line of over {} MiB: expected kubectl top output",
                        MAX_LINE >> 20
                    ),
                });
            }
            buf.resize(buf.len() * 2, 0);
        }
        let read = loop {
            match input.read(&mut buf[*filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        input: name.to_owned(),
                        source,
                    });
                }
            }
        };
        *filled += read;
        if read == 0 {
            if opts.readiness.interrupted() {
                // Ctrl-C ended the input: a line cut short by it is not a line of the table.
                *filled = memchr::memrchr(b'\n', &buf[..*filled]).map_or(0, |i| i + 1);
            }
            return Ok(ChunkEnd {
                complete: *filled,
                ended: true,
                paused: false,
            });
        }
        // A pipe gives at most its buffer (64 KiB) per read: read on until the chunk is at least
        // half full, so that a chunk from a pipe is as large as one from a file; but not when
        // the writer has nothing more yet (a sampling loop between tables), so that the lines
        // read so far are not held back until it does.
        if *filled < buf.len() / 2 {
            if opts.readiness.may_wait()
                && let Some(i) = memchr::memrchr(b'\n', &buf[..*filled])
                && !opts.readiness.ready_within(PAUSE)
            {
                return Ok(ChunkEnd {
                    complete: i + 1,
                    ended: false,
                    paused: true,
                });
            }
            continue;
        }
        if let Some(i) = memchr::memrchr(b'\n', &buf[..*filled]) {
            return Ok(ChunkEnd {
                complete: i + 1,
                ended: false,
                paused: false,
            });
        }
    }
}

/// Calls `each` with every line of a chunk of complete lines (without its `\n`) and its number,
/// counting from `line_no`. The chunk is checked for NUL bytes and UTF-8 at once, which is what
/// makes the check cheap; a failing chunk is read line by line, so that the first bad line,
/// binary or not, is the one reported. Returns the number of the last line.
fn lines_in(
    chunk: &[u8],
    mut line_no: u64,
    name: &str,
    mut each: impl FnMut(u64, &str, usize) -> Result<bool, Error>,
) -> Result<u64, Error> {
    let text = match std::str::from_utf8(chunk) {
        Ok(text) if memchr::memchr(0, chunk).is_none() => text,
        _ => {
            // Line by line, so that errors still come in line order.
            let mut start = 0;
            for line in chunk.split(|&b| b == b'\n') {
                if start >= chunk.len() {
                    break;
                }
                line_no += 1;
                start += line.len() + 1;
                if !each(line_no, line_text(line, line_no, name)?, start)? {
                    break;
                }
            }
            return Ok(line_no);
        }
    };
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', chunk).chain(
        // The last line, without a newline at the end of input.
        (!chunk.ends_with(b"\n") && !chunk.is_empty()).then_some(chunk.len()),
    ) {
        line_no += 1;
        if !each(line_no, text.get(start..end).unwrap_or_default(), end + 1)? {
            break;
        }
        start = end + 1;
    }
    Ok(line_no)
}

/// A line as an error message quotes it: without its line end, and cut after 200 characters.
fn quoted(line: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    match text.char_indices().nth(SHOWN) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], line.len()),
    }
}

/// A line as text: binary data (a NUL byte or invalid UTF-8) is an error naming the line.
fn line_text<'l>(line: &'l [u8], line_no: u64, name: &str) -> Result<&'l str, Error> {
    match std::str::from_utf8(line) {
        Ok(text) if memchr::memchr(0, line).is_none() => Ok(text),
        _ => Err(Error::Binary {
            input: name.to_owned(),
            line: line_no,
        }),
    }
}

/// Size of the chunks lines are read in, and handed to workers in. 256 KiB: with fewer bytes in
/// flight, fewer fresh pages are faulted in (1,022 page faults against 2,171 for the
/// benchmark's run with 1 MiB) and a chunk is still in the cache of the core that parses it;
/// 800,000 rows took 18.6 ms against 19.6 ms (docs/benchmarks.md, session 13).
#[cfg(not(fuzzing))]
pub(crate) const CHUNK: usize = 256 << 10;
/// Under cargo-fuzz, a few dozen bytes: the fuzzer's inputs (4 KiB at most) then span many
/// chunks, and reach the parallel reader and the hand-over to the serial loop after a footer.
#[cfg(fuzzing)]
pub(crate) const CHUNK: usize = 64;

/// Hands every line of `input` after `line_no` to `table`, and its rows to `sink`, one at a time,
/// scanning large chunks in place rather than copying line by line. Memory: the chunk, or the
/// longest line.
fn for_each_line(
    mut input: impl BufRead,
    mut line_no: u64,
    table: &mut Table<'_>,
    sink: &mut dyn RowSink,
) -> Result<(), Error> {
    let opts = table.opts;
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    loop {
        flush_before_waiting(opts, sink)?;
        let ChunkEnd {
            complete, ended, ..
        } = read_chunk(&mut input, &mut buf, &mut filled, opts, line_no)?;
        line_no = lines_in(&buf[..complete], line_no, opts.name, |no, line, _| {
            table
                .line(no, line, &mut |row| sink.row(row))
                .map(|()| true)
        })?;
        if ended {
            return Ok(());
        }
        buf.copy_within(complete..filled, 0);
        filled -= complete;
    }
}

/// A chunk's rows, as one worker saw them.
struct ChunkDone {
    seq: u64,
    chunk: Vec<u8>,
    outcome: Result<ChunkRows, Error>,
}

struct ChunkRows {
    fragment: Fragment,
    rows: u64,
    skipped: u64,
    /// The totals of the chunk's last table: its rows after the last header in the chunk, or
    /// all of them if there is none.
    totals: Totals,
    /// An appended table's header was in the chunk: the table's `--sum` totals start afresh
    /// there, with `totals`.
    new_table: bool,
    /// The worker stopped at the `--sum` footer, or at an appended table's header when each
    /// table is stamped with the time it is read: the state after that line, where the rest of
    /// the chunk starts, and its line number.
    stopped: Option<(State, usize, u64)>,
    /// The number of the last line read.
    last_line: u64,
}

fn write_row(writer: &mut UsageWriter<Vec<u8>>, row: &Row<'_>) -> crate::Result<()> {
    match row {
        Row::Pod(p) => writer.write_pod(p),
        Row::Node(n) => writer.write_node(n),
    }
    .map_err(Error::Write)
}

/// Formats the rows of one chunk of complete lines, of a table whose rows carry `timestamp`: the
/// parallel part of the work.
fn chunk_rows(
    opts: &TextOptions<'_>,
    (header, timestamp): (Header, Option<Timestamp>),
    format: UsageFormat,
    chunk: &[u8],
    first_line: u64,
    out: Vec<u8>,
) -> Result<ChunkRows, Error> {
    chunk_rows_by(
        opts,
        (header, timestamp),
        format,
        chunk,
        first_line,
        out,
        true,
    )
}

/// [`chunk_rows`], with the fast path for kubectl's own pod rows (`fast`) or without it (tests).
fn chunk_rows_by(
    opts: &TextOptions<'_>,
    (header, timestamp): (Header, Option<Timestamp>),
    format: UsageFormat,
    chunk: &[u8],
    first_line: u64,
    mut out: Vec<u8>,
    fast: bool,
) -> Result<ChunkRows, Error> {
    let mut table = Table::new(opts, header, first_line);
    table.timestamp = timestamp;
    // Output rows run a little longer than kubectl's padded input lines.
    out.clear();
    out.reserve(chunk.len() + chunk.len() / 4);
    let mut writer = UsageWriter::<Vec<u8>>::fragment(format, header.layout.kind(), out);
    let mut stopped = None;
    let mut new_table = false;
    // One line for the general parser. At the `--sum` footer it stops (the rest of the chunk is
    // then read in order by the caller, which has the table's totals). At an appended table's
    // header it reads on, the totals starting afresh, unless the new table takes the time it is
    // read, which the caller's clock gives.
    let stamp_each_table = opts.labels.stamp_each_table;
    let mut general = |no: u64, text: &str, next: usize, writer: &mut UsageWriter<Vec<u8>>| {
        table.line(no, text, &mut |row| write_row(writer, &row))?;
        if table.state == State::NewTable && !stamp_each_table {
            table.state = State::Rows;
            new_table = true;
            return Ok(Go::NewTable);
        }
        if table.state != State::Rows {
            stopped = Some((std::mem::replace(&mut table.state, State::Rows), next, no));
            return Ok(Go::Stop);
        }
        Ok(Go::On)
    };
    // The fast path writes names unquoted: a namespace from the API user must not need quotes
    // (the CLI only takes namespace names, which never do).
    let plain_namespace = opts
        .labels
        .namespace
        .as_deref()
        .is_none_or(|n| !n.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')));
    let last_line = if fast
        && plain_namespace
        && format == UsageFormat::Csv
        && header.layout.kind() == UsageKind::Pods
        && !header.swap
    {
        // kubectl's own rows take the fast path; any other line comes back here, one at a time.
        let prefix = CsvPrefix::new(&opts.labels.run, timestamp);
        let mut fast = FastTotals::default();
        let last = crate::fast::pod_rows(
            chunk,
            header.layout,
            first_line,
            &crate::fast::Given {
                prefix: &prefix,
                namespace: opts
                    .labels
                    .namespace
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
            },
            &mut writer,
            &mut fast,
            |no, line, next, writer| general(no, line_text(line, no, opts.name)?, next, writer),
        )?;
        table.report.rows += fast.earlier_rows + fast.rows;
        table.totals.rows += fast.rows;
        table.totals.cpu_nanocores +=
            i128::try_from(fast.millicores * 1_000_000).unwrap_or(i128::MAX);
        table.totals.memory_bytes += i128::try_from(fast.mebibytes << 20).unwrap_or(i128::MAX);
        last
    } else {
        lines_in(chunk, first_line, opts.name, |no, line, next| {
            general(no, line, next, &mut writer).map(|go| go != Go::Stop)
        })?
    };
    Ok(ChunkRows {
        fragment: writer.into_fragment(),
        rows: table.report.rows,
        skipped: table.report.skipped,
        totals: table.totals,
        new_table,
        stopped,
        last_line,
    })
}

/// What the workers of [`parallel_body`] share: the input, which they take turns reading a
/// chunk at a time (so each parses a chunk its own core has just copied in), and the count that
/// keeps them from reading too far ahead of the output.
struct Reading<R> {
    input: R,
    /// The first chunk, read before the workers started: (buffer, filled, complete).
    first: Option<(Vec<u8>, usize, usize)>,
    /// Bytes read past the last complete line, for the next chunk.
    carry: Vec<u8>,
    /// The number of the line before the next chunk.
    line_no: u64,
    /// Sequence number of the next chunk read.
    next_seq: u64,
    /// Chunks appended to the output so far.
    appended: u64,
    /// The input has ended, or failed (the failure travels as a chunk's outcome).
    ended: bool,
    /// A worker stopped at a `--sum` footer (or at an appended table with `--timestamp now`),
    /// or the output failed: no more chunks are read, and the rest is read in order by the
    /// caller.
    stop: bool,
    /// The input's writer paused (a sampling loop between tables): the workers stop, and the
    /// rest is read by the caller, which hands on each table's rows before waiting for the next.
    paused: bool,
    /// Buffers back from the output side, to read and format into again.
    free: Vec<Vec<u8>>,
    free_out: Vec<Vec<u8>>,
}

impl<R: BufRead> Reading<R> {
    /// Reads the next chunk of complete lines (the first one was read already), keeping the
    /// partial last line for the chunk after it: the chunk, the number of the line before it,
    /// and a buffer to format its rows into. A read error ends the input.
    fn take_chunk(&mut self, opts: &TextOptions<'_>) -> Result<(Vec<u8>, u64, Vec<u8>), Error> {
        let size = opts.chunk;
        let (mut chunk, filled, complete, ended) = match self.first.take() {
            Some((buf, filled, complete)) => (buf, filled, complete, false),
            None => {
                // The writer of a pipe has paused between chunks (a loop between tables, or
                // after a table that ended a chunk): rows appended so far may still sit in the
                // output's buffers, and must go out before the wait, which the serial loop sees
                // to. The workers stop, with an empty chunk; the partial line stays carried.
                if opts.readiness.may_wait() && !opts.readiness.ready_within(PAUSE) {
                    self.paused = true;
                    self.stop = true;
                    let mut chunk = self.free.pop().unwrap_or_default();
                    chunk.clear();
                    let out = self.free_out.pop().unwrap_or_else(spare_buffer);
                    return Ok((chunk, self.line_no, out));
                }
                let need = size.max(self.carry.len() + size / 2);
                let mut buf = self.free.pop().unwrap_or_else(|| input_buffer(need));
                buf.resize(need, 0);
                buf[..self.carry.len()].copy_from_slice(&self.carry);
                let mut filled = self.carry.len();
                let read = read_chunk(&mut self.input, &mut buf, &mut filled, opts, self.line_no);
                let end = read.inspect_err(|_| self.ended = true)?;
                if end.paused {
                    self.paused = true;
                    self.stop = true;
                }
                (buf, filled, end.complete, end.ended)
            }
        };
        self.carry.clear();
        self.carry.extend_from_slice(&chunk[complete..filled]);
        chunk.truncate(complete);
        let first_line = self.line_no;
        self.line_no += memchr::memchr_iter(b'\n', &chunk).count() as u64;
        if !chunk.is_empty() && !chunk.ends_with(b"\n") {
            self.line_no += 1;
        }
        self.ended = ended;
        let out = self.free_out.pop().unwrap_or_else(spare_buffer);
        Ok((chunk, first_line, out))
    }
}

/// Reads the body of a table on `threads` worker threads. The first chunk is read first: input
/// that fits in it is parsed here, with no threads. Each worker then takes the input in turn,
/// reads the next chunk of complete lines, numbers it, and formats it, then hands it in: the
/// worker that hands in the next chunk in order appends it, and those after it that are done,
/// while this thread waits for the workers to finish.
///
/// A `--sum` footer stops the workers (and so does an appended table's header with
/// `--timestamp now`; without it they read on, see [`ChunkRows::new_table`]): what they read
/// past it, and the rest of the input, are then read by [`serial_body`].
fn parallel_body(
    table: &mut Table<'_>,
    input: &mut (impl BufRead + Send),
    threads: usize,
    format: UsageFormat,
    sink: &mut dyn RowSink,
) -> Result<(), Error> {
    use std::sync::{Condvar, Mutex, PoisonError};
    let opts = table.opts;
    let (header, timestamp) = (table.header, table.timestamp);
    let kind = header.layout.kind();
    // Chunks read but not yet appended: bounds memory, and keeps every channel below capacity.
    let in_flight_max = 2 * threads as u64;

    let mut buf = input_buffer(opts.chunk);
    let mut filled = 0;
    let ChunkEnd {
        complete,
        ended,
        paused,
    } = read_chunk(input, &mut buf, &mut filled, opts, table.line_no)?;
    // A pipe whose writer pauses (a loop sending a table now and then) is read here, with no
    // threads, so that each table's rows go out before the wait for the next.
    if ended || paused || threads < 2 {
        return serial_body(table, input, format, sink, buf, filled);
    }

    let shared = (
        Mutex::new(Reading {
            input,
            first: Some((buf, filled, complete)),
            carry: Vec::new(),
            line_no: table.line_no,
            next_seq: 0,
            appended: 0,
            ended: false,
            stop: false,
            paused: false,
            free: Vec::new(),
            free_out: Vec::new(),
        }),
        Condvar::new(),
    );
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // The output side. Whichever worker finishes the next chunk in order appends it, and the
    // chunks after it that are done: a thread of its own for this woke for every chunk, on a
    // core a worker was using (two cores, three threads; session 13 in docs/benchmarks.md).
    struct Output<'a, 'o> {
        table: &'a mut Table<'o>,
        sink: &'a mut dyn RowSink,
        /// After a `--sum` footer: the input read past it, to read in order afterwards.
        sequential: Option<Vec<u8>>,
        failed: Option<Error>,
    }
    // Chunks done and not yet appended, and the next one to append.
    let pending = Mutex::new((std::collections::BTreeMap::<u64, ChunkDone>::new(), 0u64));
    let output = Mutex::new(Output {
        table,
        sink,
        sequential: None,
        failed: None,
    });
    // Appends one chunk, in order.
    let append = |out: &mut Output<'_, '_>, done: ChunkDone| -> Result<(), Error> {
        if let Some(tail) = out.sequential.as_mut() {
            // Chunks read before the footer was seen: read them in order afterwards.
            tail.extend_from_slice(&done.chunk);
            return Ok(());
        }
        let rows = done.outcome?;
        out.table.add(&rows);
        out.sink.fragment(kind, &rows.fragment)?;
        let mut reading = lock(&shared.0);
        reading.appended += 1;
        reading.free_out.push(rows.fragment.bytes);
        if let Some((state, next, footer_line)) = rows.stopped {
            reading.stop = true;
            drop(reading);
            out.table.resume(state, footer_line);
            out.sequential = Some(done.chunk[next.min(done.chunk.len())..].to_vec());
        } else {
            reading.free.push(done.chunk);
        }
        shared.1.notify_all();
        Ok(())
    };
    // Hands in a chunk done, and appends what is next in order unless another thread is at it
    // (which then appends this one too).
    let hand_in = |done: ChunkDone| {
        lock(&pending).0.insert(done.seq, done);
        loop {
            let Ok(mut out) = output.try_lock() else {
                return;
            };
            loop {
                let next = {
                    let mut p = lock(&pending);
                    let seq = p.1;
                    let next = p.0.remove(&seq);
                    if next.is_some() {
                        p.1 += 1;
                    }
                    next
                };
                let Some(done) = next else { break };
                if out.failed.is_some() {
                    continue;
                }
                if let Err(e) = append(&mut out, done) {
                    out.failed = Some(e);
                    lock(&shared.0).stop = true;
                    shared.1.notify_all();
                }
            }
            drop(out);
            // A chunk handed in while this thread held the output, by a thread that then found
            // it taken, is this thread's to append.
            let p = lock(&pending);
            if !p.0.contains_key(&p.1) {
                return;
            }
        }
    };

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (shared, hand_in) = (&shared, &hand_in);
            scope.spawn(move || {
                loop {
                    let mut reading = lock(&shared.0);
                    while !reading.stop
                        && !reading.ended
                        && reading.next_seq - reading.appended >= in_flight_max
                    {
                        reading = shared
                            .1
                            .wait(reading)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    if reading.stop || reading.ended {
                        return;
                    }
                    let seq = reading.next_seq;
                    reading.next_seq += 1;
                    let taken = reading.take_chunk(opts);
                    drop(reading);
                    let failed = taken.is_err();
                    let (chunk, outcome) = match taken {
                        Ok((chunk, first_line, out)) => {
                            let outcome = chunk_rows(
                                opts,
                                (header, timestamp),
                                format,
                                &chunk,
                                first_line,
                                out,
                            );
                            (chunk, outcome)
                        }
                        Err(e) => (Vec::new(), Err(e)),
                    };
                    hand_in(ChunkDone {
                        seq,
                        chunk,
                        outcome,
                    });
                    if failed {
                        return;
                    }
                }
            });
        }
    });
    let Output {
        table,
        sink,
        sequential,
        failed,
    } = output.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = failed {
        return Err(e);
    }
    let appended = pending
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .1;

    let reading = shared
        .0
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if appended != reading.next_seq {
        // A chunk was read and never came back.
        return Err(worker_gone());
    }
    give_back(reading.free.into_iter().chain(reading.free_out));
    let mut tail = match sequential {
        Some(tail) => tail,
        // The writer paused: the rest, from the line after the last chunk, is read here.
        None if reading.paused => {
            table.line_no = reading.line_no;
            Vec::new()
        }
        None => return Ok(()),
    };
    tail.extend_from_slice(&reading.carry);
    let filled = tail.len();
    // Room to read on into, as a chunk has.
    tail.resize(filled.max(opts.chunk), 0);
    serial_body(table, reading.input, format, sink, tail, filled)
}

/// Reads the rest of the input on this thread: the rows of each table in chunks, through the
/// fast path as the workers of [`parallel_body`] read them, and the few lines between tables (a
/// `--sum` footer, blank lines, the next header) one at a time. `buf[..filled]` is input already
/// read, starting at a line.
fn serial_body(
    table: &mut Table<'_>,
    input: &mut impl BufRead,
    format: UsageFormat,
    sink: &mut dyn RowSink,
    mut buf: Vec<u8>,
    mut filled: usize,
) -> Result<(), Error> {
    let opts = table.opts;
    let mut out = spare_buffer();
    // Where the unread lines start in `buf`, and where its complete lines end: those already
    // read are taken first, so that reading on only ever carries a partial line.
    let mut start = 0;
    let mut complete = memchr::memrchr(b'\n', &buf[..filled]).map_or(0, |i| i + 1);
    let mut ended = false;
    loop {
        if start >= complete {
            if ended {
                give_back([buf, out].into_iter());
                return Ok(());
            }
            buf.copy_within(start..filled, 0);
            filled -= start;
            start = 0;
            flush_before_waiting(opts, sink)?;
            ChunkEnd {
                complete,
                ended,
                ..
            } = read_chunk(input, &mut buf, &mut filled, opts, table.line_no)?;
            continue;
        }
        if table.state == State::Rows {
            let rows = chunk_rows(
                opts,
                (table.header, table.timestamp),
                format,
                &buf[start..complete],
                table.line_no,
                out,
            )?;
            table.add(&rows);
            sink.fragment(table.header.layout.kind(), &rows.fragment)?;
            out = rows.fragment.bytes;
            match rows.stopped {
                Some((state, next, line)) => {
                    table.resume(state, line);
                    start = (start + next).min(complete);
                }
                None => {
                    table.line_no = rows.last_line;
                    start = complete;
                }
            }
        } else {
            // One line between tables; the next header puts the table back to its rows.
            let end =
                memchr::memchr(b'\n', &buf[start..complete]).map_or(complete, |i| start + i + 1);
            table.line_no = lines_in(&buf[start..end], table.line_no, opts.name, |no, line, _| {
                table
                    .line(no, line, &mut |row| sink.row(row))
                    .map(|()| true)
            })?;
            if table.state == State::NewTable {
                table.state = State::Rows;
            }
            start = end;
        }
    }
}

/// Buffers of inputs already read, for the next input of the same run: fresh pages cost a page
/// fault and zeroing each (4,400 faults for two 400,000-row files before they were kept).
static SPARE: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn spare_buffer() -> Vec<u8> {
    SPARE
        .lock()
        .ok()
        .and_then(|mut spare| spare.pop())
        .unwrap_or_default()
}

/// A buffer of at least `len` bytes to read into: a spare one, or fresh zeroed memory, which
/// the allocator gets from the kernel already zeroed (so a small input touches few pages).
fn input_buffer(len: usize) -> Vec<u8> {
    let mut buf = spare_buffer();
    if buf.capacity() < len {
        return vec![0; len];
    }
    buf.resize(len.max(buf.len()), 0);
    buf
}

fn give_back(buffers: impl Iterator<Item = Vec<u8>>) {
    if let Ok(mut spare) = SPARE.lock() {
        spare.extend(buffers);
        // Enough for the next input's chunks in flight; the rest goes back to the allocator.
        spare.truncate(16);
    }
}

fn worker_gone() -> Error {
    Error::Write(std::io::Error::other(
        "a top-parse worker thread stopped unexpectedly",
    ))
}

/// Parses one text input, calling `emit` for every row. `first` is the first non-blank line,
/// already read (without its line terminator), at line number `first_no`.
pub(crate) fn parse(
    opts: &TextOptions<'_>,
    first: &[u8],
    first_no: u64,
    mut input: impl BufRead + Send,
    sink: &mut dyn RowSink,
) -> Result<TextReport, Error> {
    let line_error = |text: &[u8], problem: String| Error::BadLine {
        input: opts.name.to_owned(),
        line: first_no,
        text: quoted(text),
        problem,
    };
    let first_text = std::str::from_utf8(first).map_err(|_| Error::Binary {
        input: opts.name.to_owned(),
        line: first_no,
    })?;
    // kubectl prefixes most of them with "error: ".
    let text = first_text.trim_start();
    let bare = text.strip_prefix("error:").map_or(text, str::trim_start);
    if let Some((msg, meaning)) = KUBECTL_MESSAGES
        .iter()
        .find(|(m, _)| bare.starts_with(*m) || text.starts_with(*m))
    {
        return Err(line_error(
            first,
            format!("this is a kubectl message ({msg:?}), not a table: {meaning}"),
        ));
    }

    let mut first_tokens: [&str; 8] = [""; 8];
    let count = split(first_text, &mut first_tokens);
    let parsed = header_of(&first_tokens[..count.min(8)]).map_err(|p| line_error(first, p))?;
    let first_is_data = parsed.is_none();
    let header = match (parsed, opts.layout) {
        (Some(h), Some(given)) if h.layout != given => {
            return Err(line_error(
                first,
                format!(
                    "the header is kubectl's {} layout but --layout says {}",
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
                first,
                "no header line (as in `kubectl top --no-headers` output), so the layout is \
                 unknown: four columns could be `-A` or `--containers`, so pass --layout (pods, \
                 pods-all-namespaces, containers, containers-all-namespaces or nodes)"
                    .to_owned(),
            ));
        }
    };
    if opts.labels.namespace.is_some() {
        let has = match header.layout {
            Layout::Nodes => Some("node rows have no namespace"),
            Layout::PodsAllNamespaces | Layout::ContainersAllNamespaces => {
                Some("this table has a NAMESPACE column (`kubectl top pod -A`)")
            }
            Layout::Pods | Layout::Containers => None,
        };
        if let Some(has) = has {
            return Err(line_error(
                first,
                format!(
                    "{has}: --namespace is for tables from `kubectl top pod -n NS`, which have \
                     no NAMESPACE column"
                ),
            ));
        }
    }
    if header.swap {
        tracing::info!(
            "{}: SWAP columns are checked but not written (usage rows have no swap column)",
            opts.name
        );
    }

    let mut table = Table::new(opts, header, first_no);
    if first_is_data {
        table.line(first_no, first_text, &mut |row| sink.row(row))?;
    }
    match sink.parallel() {
        // Chunks start in the rows; a first line that was the `--sum` footer leaves only
        // line-by-line reading.
        Some((threads, format)) if format != UsageFormat::Json && table.state == State::Rows => {
            parallel_body(&mut table, &mut input, threads, format, sink)?;
        }
        _ => for_each_line(input, first_no, &mut table, sink)?,
    }
    if table.state == State::SumSeparator {
        tracing::warn!("{}: the --sum footer has no totals line", opts.name);
    }
    Ok(table.report)
}

/// Parses a timestamp argument: RFC 3339, or `now`.
pub fn parse_timestamp(arg: &str) -> Result<TimestampArg, String> {
    if arg == "now" {
        return Ok(TimestampArg::Now);
    }
    arg.parse::<Timestamp>().map(TimestampArg::At).map_err(|e| {
        format!("{arg:?} is not an RFC 3339 timestamp such as 2026-11-26T08:00:00Z, or `now`: {e}")
    })
}

/// `--timestamp`: a time, or `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampArg {
    At(Timestamp),
    /// The time each table is read.
    Now,
}

/// The time, in whole milliseconds: finer digits are noise for 15 s metrics and clutter every row.
pub(crate) fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A token of a `kubectl top pod` row, right or wrong in every way the fast path must leave
    /// to the general parser.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9][a-z0-9-]{0,40}",
            2 => "[0-9]{1,14}m",
            2 => "[0-9]{1,14}Mi",
            1 => prop_oneof![
                Just("0".to_owned()),
                Just("1500".to_owned()),
                Just("250m0".to_owned()),
                Just("2Gi".to_owned()),
                Just("1.5".to_owned()),
                Just("m".to_owned()),
                Just("Mi".to_owned()),
                Just("<unknown>".to_owned()),
                Just("NAME".to_owned()),
                Just("Namespace".to_owned()),
                Just("____".to_owned()),
                Just("a,b".to_owned()),
                Just("say\"hi\"".to_owned()),
                Just("caf\u{e9}".to_owned()),
                Just("nul\u{0}".to_owned()),
                Just("del\u{7f}".to_owned()),
            ],
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        let gap = prop_oneof![
            8 => " {1,12}",
            1 => Just("\t".to_owned()),
            1 => Just(" \r".to_owned()),
        ];
        (
            " {0,2}",
            prop::collection::vec((token(), gap), 0..7),
            " {0,20}",
        )
            .prop_map(|(lead, cells, trail)| {
                let mut line = lead;
                for (i, (t, g)) in cells.iter().enumerate() {
                    line.push_str(t);
                    if i + 1 < cells.len() {
                        line.push_str(g);
                    }
                }
                line + &trail
            })
    }

    /// Rows as the CLI writes them, delivered one by one (`threads: None`) or as the workers'
    /// fragments.
    struct Collect {
        writer: UsageWriter<Vec<u8>>,
        threads: Option<usize>,
    }

    impl RowSink for Collect {
        fn row(&mut self, row: Row<'_>) -> crate::Result<()> {
            write_row(&mut self.writer, &row)
        }

        fn parallel(&self) -> Option<(usize, UsageFormat)> {
            self.threads.map(|t| (t, UsageFormat::Csv))
        }

        fn fragment(&mut self, _: UsageKind, fragment: &Fragment) -> crate::Result<()> {
            self.writer.append(fragment).map_err(Error::Write)
        }
    }

    #[test]
    fn kubectl_messages_say_what_went_wrong() {
        let labels = Labels::default();
        let opts = TextOptions {
            name: "top.txt",
            layout: None,
            skip_bad_lines: false,
            labels: &labels,
            chunk: CHUNK,
            readiness: &Readiness::always(),
        };
        for (first, expected) in [
            (
                "error: Metrics API not available",
                "top.txt:1: this is a kubectl message (\"Metrics API not available\"), not a \
                 table: kubectl could not reach the metrics API",
            ),
            (
                "error: metrics not available yet",
                "(\"metrics not available yet\"), not a table: metrics-server has no samples yet",
            ),
            (
                "No resources found in sample-app namespace.",
                "(\"No resources found\"), not a table: kubectl top found nothing to print",
            ),
            (
                "error: the server doesn't have a resource type \"pods\"",
                "(\"error:\"), not a table: kubectl failed instead of printing a table",
            ),
        ] {
            let mut sink = Collect {
                writer: UsageWriter::new(Vec::new(), UsageFormat::Csv, UsageKind::Pods),
                threads: None,
            };
            let err = parse(
                &opts,
                first.as_bytes(),
                1,
                std::io::Cursor::new(""),
                &mut sink,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{first}: {err}");
        }
    }

    /// One item of a `kubectl top pod -A` file: mostly kubectl's own rows, and now and then
    /// anything else, a blank line, the next table's header or a `--sum` footer.
    fn item() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => ("[a-z]{1,8}", "[a-z0-9-]{1,30}", 0u32..2000, 1u32..5000, " {1,6}")
                .prop_map(|(ns, pod, c, m, pad)| format!("{ns}{pad}{pod}{pad}{c}m{pad}{m}Mi{pad}")),
            2 => line(),
            1 => Just(String::new()),
            1 => Just("NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)".to_owned()),
            1 => (0u32..100_000, 0u32..100_000).prop_map(|(c, m)| {
                format!("                 ________   ________\n                 {c}m   {m}Mi")
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// The workers, taking turns at the input in chunks of any size, reading on past
        /// appended tables' headers and stopping at footers, give what the line-by-line reader
        /// gives: the same bytes, or the same error.
        #[test]
        fn the_parallel_reader_reads_as_the_line_reader(
            items in prop::collection::vec(item(), 0..120),
            skip_bad_lines in any::<bool>(),
            chunk in 8usize..400,
            threads in 1usize..4,
        ) {
            let labels = Labels::default();
            let text = items.join("\n") + "\n";
            let run = |threads: Option<usize>, chunk: usize| {
                let opts = TextOptions {
                    name: "t",
                    layout: None,
                    skip_bad_lines,
                    labels: &labels,
                    chunk,
                    readiness: &Readiness::always(),
                };
                let mut sink = Collect {
                    writer: UsageWriter::new(Vec::new(), UsageFormat::Csv, UsageKind::Pods),
                    threads,
                };
                let header = "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)";
                parse(&opts, header.as_bytes(), 1, std::io::Cursor::new(text.clone()), &mut sink)
                    .map(|report| (report.rows, report.skipped, sink.writer.finish().unwrap()))
                    .map_err(|e| e.to_string())
            };
            let lines = run(None, CHUNK);
            prop_assert_eq!(&run(Some(threads), chunk), &lines);
        }
    }

    /// Reads `text` as a table of `layout` with the fast path and without it: both must give the
    /// same bytes, rows, totals (of the last table, if headers of appended tables come in
    /// between), stop at a footer, line numbers, or the same error.
    fn fast_and_general_agree(
        text: &str,
        layout: Layout,
        labels: &Labels,
        skip_bad_lines: bool,
    ) -> Result<(), TestCaseError> {
        let opts = TextOptions {
            name: "t",
            layout: None,
            skip_bad_lines,
            labels,
            chunk: CHUNK,
            readiness: &Readiness::always(),
        };
        let header = Header {
            layout,
            swap: false,
        };
        let run = |fast| {
            chunk_rows_by(
                &opts,
                (header, None),
                UsageFormat::Csv,
                text.as_bytes(),
                1,
                Vec::new(),
                fast,
            )
        };
        match (run(true), run(false)) {
            (Ok(f), Ok(g)) => {
                prop_assert_eq!(
                    String::from_utf8_lossy(&f.fragment.bytes),
                    String::from_utf8_lossy(&g.fragment.bytes)
                );
                prop_assert_eq!(f.fragment.rows, g.fragment.rows);
                prop_assert_eq!((f.rows, f.skipped), (g.rows, g.skipped));
                prop_assert_eq!(f.totals, g.totals);
                prop_assert_eq!(f.new_table, g.new_table);
                prop_assert_eq!(f.stopped, g.stopped);
                prop_assert_eq!(f.last_line, g.last_line);
            }
            (Err(f), Err(g)) => prop_assert_eq!(f.to_string(), g.to_string()),
            (f, g) => prop_assert!(false, "fast {:?} but general {:?}", f.err(), g.err()),
        }
        Ok(())
    }

    /// The four layouts of `kubectl top pod`.
    fn pod_layout() -> impl Strategy<Value = Layout> {
        prop_oneof![
            Just(Layout::Pods),
            Just(Layout::PodsAllNamespaces),
            Just(Layout::Containers),
            Just(Layout::ContainersAllNamespaces),
        ]
    }

    proptest! {
        /// The fast path on tables as kubectl pads them (equal lines, which it checks
        /// whole against the first row's geometry), with some lines broken in the ways that
        /// must leave it: shifted, trimmed, longer, an odd byte, a token that fills its column.
        #[test]
        fn the_fast_path_changes_nothing_on_padded_tables(
            rows in prop::collection::vec(
                (
                    prop::collection::vec(token(), 5),
                    prop_oneof![
                        8 => Just(0u8),
                        1 => Just(1u8),
                        1 => Just(2u8),
                        1 => Just(3u8),
                        3 => Just(4u8),
                        1 => Just(5u8),
                        2 => Just(6u8),
                        1 => Just(7u8),
                    ],
                    0usize..200,
                ),
                1..40,
            ),
            padding in 1usize..4,
            layout in pod_layout(),
            chunk_end in any::<bool>(),
            long in any::<bool>(),
        ) {
            let width = layout.name_columns() + 2;
            // Mostly kubectl's own rows: names, then `<n>m` and `<n>Mi`.
            let rows: Vec<(Vec<String>, u8, usize)> = rows
                .into_iter()
                .map(|(mut cells, damage, at)| {
                    cells.truncate(width);
                    // Lines up to 128 bytes (checked in two mask words), up to 256 (four),
                    // and longer (split token by token).
                    for cell in &mut cells {
                        *cell = cell.chars().take(if long { 50 } else { 18 }).collect();
                    }
                    if damage == 0 {
                        cells[width - 2] = format!("{}m", at % 17 * 97);
                        cells[width - 1] = format!("{}Mi", at * 131);
                        for name in &mut cells[..width - 2] {
                            name.retain(|c| c.is_ascii_alphanumeric() || c == '-');
                            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_uppercase()) {
                                name.insert(0, 'x');
                            }
                        }
                    }
                    (cells, damage, at)
                })
                .collect();
            let columns: Vec<usize> = (0..width)
                .map(|i| rows.iter().map(|(c, ..)| c[i].len()).max().unwrap_or(0) + padding)
                .collect();
            let mut text = String::new();
            for (cells, damage, at) in &rows {
                let mut line = String::new();
                for (cell, w) in cells.iter().zip(&columns) {
                    line.push_str(&format!("{cell:<w$}"));
                }
                let mut line = match damage {
                    1 => format!(" {line}"),
                    2 => line.trim_end().to_owned(),
                    3 => format!("{line}  "),
                    // An odd byte in a token, or in the padding.
                    4 if !line.is_empty() => {
                        let mut bytes = line.into_bytes();
                        let tokens: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != b' ').collect();
                        let i = if at % 3 == 0 || tokens.is_empty() {
                            at % bytes.len()
                        } else {
                            tokens[at % tokens.len()]
                        };
                        bytes[i] = [b'\t', b',', b'"', 0x7f][at % 4];
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                    // Two tokens run together, or one more in the padding.
                    5 => line.replacen(' ', "x", 1),
                    6 => line.replacen("  ", " z", 1),
                    // The header of an appended table, padded as the rows are.
                    7 => layout
                        .header()
                        .split(' ')
                        .zip(&columns)
                        .map(|(cell, w)| format!("{cell:<w$}"))
                        .collect(),
                    _ => line,
                };
                line.push('\n');
                text.push_str(&line);
            }
            if chunk_end {
                // The last line without its LF, as at the end of input.
                text.pop();
            }
            let labels = Labels { run: "r".to_owned(), ..Labels::default() };
            fast_and_general_agree(&text, layout, &labels, true)?;
        }

        /// The fast path for kubectl's own rows gives the general parser's rows, totals, line
        /// numbers and errors, byte for byte, on any mix of right and wrong lines.
        #[test]
        fn the_fast_path_changes_nothing(
            mut lines in prop::collection::vec(line(), 0..60),
            headers in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            final_newline in any::<bool>(),
            skip_bad_lines in any::<bool>(),
            layout in pod_layout(),
            namespace in prop::option::of(Just("linkerd".to_owned())),
        ) {
            // Now and then the header of an appended table.
            for at in headers {
                let at = at.index(lines.len() + 1);
                lines.insert(at, layout.header().to_owned());
            }
            let mut text = lines.join("\n");
            if final_newline {
                text.push('\n');
            }
            let labels = Labels { run: "r,1".to_owned(), namespace, ..Labels::default() };
            fast_and_general_agree(&text, layout, &labels, skip_bad_lines)?;
        }
    }

    fn toks(line: &str) -> Vec<&[u8]> {
        line.split_ascii_whitespace().map(str::as_bytes).collect()
    }

    #[test]
    fn split_on_whitespace_runs() {
        let mut t: [&str; 8] = [""; 8];
        let n = split("  kube-system\tcoredns-1   3m  12Mi   \r\n", &mut t);
        assert_eq!(n, 4);
        assert_eq!(t[0], "kube-system");
        assert_eq!(t[3], "12Mi");
        assert_eq!(split("", &mut t), 0);
        // Long tokens and long runs of padding take the word-at-a-time paths.
        let n = split(
            "kube-system-long-name\t\t  linkerd-destination-6d9b8c7f5-h2xkp                  3m",
            &mut t,
        );
        assert_eq!(n, 3);
        assert_eq!(t[1], "linkerd-destination-6d9b8c7f5-h2xkp");
        // Non-ASCII bytes and control characters inside tokens.
        let line = "naïve-pod\u{b}x été          12m";
        let n = split(line, &mut t);
        // (vertical tab is not ASCII whitespace, as in split_ascii_whitespace)
        let want = vec!["naïve-pod\u{b}x", "été", "12m"];
        assert_eq!(&t[..n], want.as_slice());
        assert_eq!(split("a b c d e f g h i j", &mut t), 10);
    }

    proptest::proptest! {
        #[test]
        fn split_agrees_with_the_standard_library(line in "[ a-z\t\r\u{b}\u{c}é_0-9-]{0,80}") {
            let mut t: [&str; 8] = [""; 8];
            let n = split(&line, &mut t);
            let want: Vec<&str> = line.split_ascii_whitespace().collect();
            proptest::prop_assert_eq!(n, want.len());
            proptest::prop_assert_eq!(&t[..n.min(8)], &want[..n.min(8)]);
        }
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
    fn fast_paths_agree_with_the_quantity_parser() {
        for token in [
            "0m",
            "1m",
            "250m",
            "999999999999m",
            "0Mi",
            "180Mi",
            "999999999999Mi",
        ] {
            let bytes = token.as_bytes();
            if let Some(m) = token.strip_suffix("Mi") {
                let q = Quantity::parse(token).unwrap();
                assert_eq!(i128::from(memory(bytes).unwrap()), q.value_ceil(), "{m}");
            } else {
                let q = Quantity::parse(token).unwrap();
                assert_eq!(
                    i128::from(cpu(bytes).unwrap().nanocores()),
                    q.nanos(),
                    "{token}"
                );
            }
        }
        // Longer or odd forms fall back to the exact parser.
        assert_eq!(memory(b"1000000000000Mi").unwrap(), 1_000_000_000_000 << 20);
        assert_eq!(cpu(b"+5m").unwrap(), Cpu::from_millicores(5));
        assert!(cpu(b"5mm").is_err());
        assert!(memory(b"Mi").is_err());
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
            match parse_timestamp("2026-11-26T08:00:00Z").unwrap() {
                TimestampArg::At(t) => t.to_string(),
                TimestampArg::Now => String::new(),
            },
            "2026-11-26T08:00:00Z"
        );
        assert!(parse_timestamp("yesterday").is_err());
        assert_eq!(parse_timestamp("now"), Ok(TimestampArg::Now));
    }
}
