//! Resource-usage rows: what `top-parse` writes and `compare` reads.
//!
//! Two row types, one per CSV file kind, each in base units:
//!
//! - pod rows, `run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes`;
//! - node rows, `run,timestamp,node,cpu_millicores,cpu_percent,memory_bytes,memory_percent`.
//!
//! The same rows are written as CSV (header row first), as one JSON document
//! `{"schema": …, "rows": [...]}`, or as NDJSON with the `schema` on every line.
//! [`UsageWriter`] streams any of the three; [`read_pod_csv`] and [`read_node_csv`] read CSV back.

use std::fmt;
use std::io::{self, Write};

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::quantity::Quantity;
use crate::schema::{NODE_USAGE, POD_USAGE, Schema};

/// Pod CSV columns, in order.
pub const POD_COLUMNS: [&str; 7] = [
    "run",
    "timestamp",
    "namespace",
    "pod",
    "container",
    "cpu_millicores",
    "memory_bytes",
];

/// Node CSV columns, in order.
pub const NODE_COLUMNS: [&str; 7] = [
    "run",
    "timestamp",
    "node",
    "cpu_millicores",
    "cpu_percent",
    "memory_bytes",
    "memory_percent",
];

/// CPU usage, exact to the nanocore, written as decimal millicores (`250`, `329.087452`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpu {
    nanocores: i64,
}

impl Cpu {
    pub const fn from_nanocores(nanocores: i64) -> Cpu {
        Cpu { nanocores }
    }

    pub const fn from_millicores(millicores: i64) -> Cpu {
        Cpu {
            nanocores: millicores * 1_000_000,
        }
    }

    /// CPU from a quantity in cores; `None` if it is negative or beyond ~9.2 × 10⁹ cores.
    pub fn from_quantity(cores: Quantity) -> Option<Cpu> {
        let nanocores = i64::try_from(cores.nanos()).ok()?;
        (nanocores >= 0).then_some(Cpu { nanocores })
    }

    pub const fn nanocores(self) -> i64 {
        self.nanocores
    }

    /// Millicores as a float, for statistics; exact below 2⁵³ nanocores.
    #[allow(clippy::cast_precision_loss)]
    pub fn millicores_f64(self) -> f64 {
        self.nanocores as f64 / 1e6
    }

    /// Appends the exact decimal millicores to `out`, without trailing zeros.
    pub fn write_millicores(self, out: &mut Vec<u8>) {
        let mut int = itoa::Buffer::new();
        if self.nanocores < 0 {
            out.push(b'-');
        }
        let magnitude = self.nanocores.unsigned_abs();
        out.extend_from_slice(int.format(magnitude / 1_000_000).as_bytes());
        let mut frac = magnitude % 1_000_000;
        if frac != 0 {
            let mut digits = 6;
            while frac.is_multiple_of(10) {
                frac /= 10;
                digits -= 1;
            }
            let text = int.format(frac);
            out.push(b'.');
            out.extend(std::iter::repeat_n(b'0', digits - text.len()));
            out.extend_from_slice(text.as_bytes());
        }
    }

    fn parse_millicores(text: &str) -> Option<Cpu> {
        // A decimal number of millicores is a quantity with the `m` suffix; reuse its exact parser
        // but refuse suffixes and exponents of its own.
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
        {
            return None;
        }
        let q = Quantity::parse(&format!("{text}m")).ok()?;
        i64::try_from(q.nanos()).ok().map(Cpu::from_nanocores)
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        self.write_millicores(&mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Whole millicores as an integer; finer values as a number with up to six decimals (exact in
/// JSON below 10⁹ millicores, beyond any real node).
impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.nanocores % 1_000_000 == 0 {
            serializer.serialize_i64(self.nanocores / 1_000_000)
        } else {
            serializer.serialize_f64(self.millicores_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Cpu;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of millicores")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Cpu, E> {
                v.checked_mul(1_000_000)
                    .map(Cpu::from_nanocores)
                    .ok_or_else(|| E::custom(format!("{v} millicores is out of range")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Cpu, E> {
                let v = i64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} millicores is out of range")))?;
                self.visit_i64(v)
            }
            #[allow(clippy::cast_possible_truncation)]
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Cpu, E> {
                let nanos = (v * 1e6).round();
                if !nanos.is_finite() || nanos.abs() >= 9.2e18 {
                    return Err(E::custom(format!("{v} millicores is out of range")));
                }
                Ok(Cpu::from_nanocores(nanos as i64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cpu, E> {
                Cpu::parse_millicores(v).ok_or_else(|| {
                    E::custom(format!("{v:?} is not a decimal number of millicores"))
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One container's (or, without `--containers`, one pod's) usage in one snapshot.
///
/// `S` is `String` when reading and `&str` when streaming out without copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUsageRow<S = String> {
    /// Label that groups rows into runs (`--run`); empty when none was given.
    pub run: S,
    /// When the sample was taken, RFC 3339 UTC; `None` when the source did not say.
    pub timestamp: Option<Timestamp>,
    /// `None` for `kubectl top pod` output without `-A`.
    pub namespace: Option<S>,
    pub pod: S,
    /// `None` unless the source lists containers.
    pub container: Option<S>,
    pub cpu_millicores: Cpu,
    pub memory_bytes: u64,
}

/// One node's usage in one snapshot; `None` cells are `<unknown>` in kubectl's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUsageRow<S = String> {
    pub run: S,
    pub timestamp: Option<Timestamp>,
    pub node: S,
    pub cpu_millicores: Option<Cpu>,
    /// kubectl's truncated integer percentage of allocatable; may exceed 100.
    pub cpu_percent: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub memory_percent: Option<u32>,
}

/// What kind of rows a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    Pods,
    Nodes,
}

impl UsageKind {
    pub fn schema(self) -> Schema {
        match self {
            UsageKind::Pods => POD_USAGE,
            UsageKind::Nodes => NODE_USAGE,
        }
    }

    pub fn columns(self) -> &'static [&'static str; 7] {
        match self {
            UsageKind::Pods => &POD_COLUMNS,
            UsageKind::Nodes => &NODE_COLUMNS,
        }
    }

    /// Recognises a CSV header: the documented columns first, in order; later minor versions
    /// may append columns, which readers ignore.
    pub fn from_csv_header<'a>(header: impl IntoIterator<Item = &'a str>) -> Option<UsageKind> {
        let header: Vec<&str> = header.into_iter().take(7).collect();
        [UsageKind::Pods, UsageKind::Nodes]
            .into_iter()
            .find(|kind| header.as_slice() == kind.columns())
    }

    pub fn noun(self) -> &'static str {
        match self {
            UsageKind::Pods => "pod",
            UsageKind::Nodes => "node",
        }
    }
}

/// Output encodings of usage rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageFormat {
    Csv,
    Json,
    Ndjson,
}

/// Rows formatted apart from the document they belong to, e.g. by another thread, to be
/// appended in order with [`UsageWriter::append`].
#[derive(Debug, Default)]
pub struct Fragment {
    pub bytes: Vec<u8>,
    pub rows: u64,
}

#[derive(Serialize)]
struct Tagged<'a, T> {
    schema: &'static str,
    #[serde(flatten)]
    row: &'a T,
}

/// Streams rows of one kind as CSV, JSON or NDJSON, with constant memory.
///
/// CSV is written by hand on the hot path (it is most of `top-parse`'s time): fields are quoted
/// exactly when RFC 4180 requires it, as the `csv` crate's default writer does.
#[derive(Debug)]
pub struct UsageWriter<W: Write> {
    out: W,
    format: UsageFormat,
    kind: UsageKind,
    rows: u64,
    /// Rows not yet handed to `out`: appended field by field, written in large blocks.
    buf: Vec<u8>,
    /// When `buf` is handed to `out`; never, for a fragment.
    flush_at: usize,
    /// The last `run,timestamp,` written, with its inputs.
    prefix: Option<(String, Option<Timestamp>, Vec<u8>)>,
}

impl<W: Write> UsageWriter<W> {
    pub fn new(out: W, format: UsageFormat, kind: UsageKind) -> UsageWriter<W> {
        UsageWriter {
            out,
            format,
            kind,
            rows: 0,
            buf: Vec::with_capacity(BLOCK + 4096),
            flush_at: BLOCK,
            prefix: None,
        }
    }

    pub fn kind(&self) -> UsageKind {
        self.kind
    }

    pub fn format(&self) -> UsageFormat {
        self.format
    }

    /// Appends rows formatted by a [`UsageWriter::fragment`] writer of the same format and kind.
    pub fn append(&mut self, fragment: &Fragment) -> io::Result<()> {
        if fragment.rows == 0 {
            return Ok(());
        }
        if self.rows == 0 {
            self.header()?;
        }
        self.rows += fragment.rows;
        if fragment.bytes.len() < BLOCK {
            self.buf.extend_from_slice(&fragment.bytes);
            return self.end_row();
        }
        // Large fragments go straight through, after what is buffered.
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.write_all(&fragment.bytes)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn header(&mut self) -> io::Result<()> {
        match self.format {
            UsageFormat::Csv => {
                self.buf
                    .extend_from_slice(self.kind.columns().join(",").as_bytes());
                self.buf.push(b'\n');
            }
            UsageFormat::Json => {
                write!(
                    self.buf,
                    "{{\"schema\":\"{}\",\"rows\":[",
                    self.kind.schema().id
                )?;
            }
            UsageFormat::Ndjson => {}
        }
        Ok(())
    }

    fn begin_row(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            self.header()?;
            if self.format == UsageFormat::Json {
                self.buf.push(b'\n');
            }
        } else if self.format == UsageFormat::Json {
            self.buf.extend_from_slice(b",\n");
        }
        self.rows += 1;
        Ok(())
    }

    fn write_json<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        match self.format {
            UsageFormat::Json => serde_json::to_writer(&mut self.buf, row)?,
            UsageFormat::Ndjson => {
                let tagged = Tagged {
                    schema: self.kind.schema().id,
                    row,
                };
                serde_json::to_writer(&mut self.buf, &tagged)?;
                self.buf.push(b'\n');
            }
            UsageFormat::Csv => unreachable!("CSV rows are written by hand"),
        }
        self.end_row()
    }

    /// Hands a block of rows to the inner writer once enough have gathered.
    fn end_row(&mut self) -> io::Result<()> {
        if self.buf.len() >= self.flush_at {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Hands the rows written so far to the output and flushes it, for a caller about to wait
    /// (on a pipe fed by a sampling loop, or between samples) so that rows do not sit in buffers
    /// meanwhile. In JSON the document is closed only by [`UsageWriter::finish`].
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.out.flush()
    }

    /// Appends `run,timestamp,`: the same for most rows, so it is formatted once and reused.
    fn push_prefix(&mut self, run: &str, timestamp: Option<Timestamp>) {
        match &self.prefix {
            // Empty labels skip the comparison: glibc's memcmp takes a slow path for zero
            // lengths at String's dangling pointer (measured: 3x the whole run time).
            Some((last_run, last_ts, bytes))
                if *last_ts == timestamp
                    && last_run.len() == run.len()
                    && (run.is_empty() || last_run == run) =>
            {
                self.buf.extend_from_slice(bytes);
            }
            _ => {
                let CsvPrefix(bytes) = CsvPrefix::new(run, timestamp);
                self.buf.extend_from_slice(&bytes);
                self.prefix = Some((run.to_owned(), timestamp, bytes));
            }
        }
    }

    pub fn write_pod<S: AsRef<str> + Serialize>(&mut self, row: &PodUsageRow<S>) -> io::Result<()> {
        assert_eq!(
            self.kind,
            UsageKind::Pods,
            "pod row written to a node writer"
        );
        self.begin_row()?;
        if self.format != UsageFormat::Csv {
            return self.write_json(row);
        }
        self.push_prefix(row.run.as_ref(), row.timestamp);
        push_field(
            &mut self.buf,
            row.namespace.as_ref().map_or("", AsRef::as_ref),
        );
        self.buf.push(b',');
        push_field(&mut self.buf, row.pod.as_ref());
        self.buf.push(b',');
        push_field(
            &mut self.buf,
            row.container.as_ref().map_or("", AsRef::as_ref),
        );
        self.buf.push(b',');
        row.cpu_millicores.write_millicores(&mut self.buf);
        self.buf.push(b',');
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(row.memory_bytes).as_bytes());
        self.buf.push(b'\n');
        self.end_row()
    }

    pub fn write_node<S: AsRef<str> + Serialize>(
        &mut self,
        row: &NodeUsageRow<S>,
    ) -> io::Result<()> {
        assert_eq!(
            self.kind,
            UsageKind::Nodes,
            "node row written to a pod writer"
        );
        self.begin_row()?;
        if self.format != UsageFormat::Csv {
            return self.write_json(row);
        }
        let mut int = itoa::Buffer::new();
        self.push_prefix(row.run.as_ref(), row.timestamp);
        push_field(&mut self.buf, row.node.as_ref());
        self.buf.push(b',');
        if let Some(cpu) = row.cpu_millicores {
            cpu.write_millicores(&mut self.buf);
        }
        self.buf.push(b',');
        if let Some(p) = row.cpu_percent {
            self.buf.extend_from_slice(int.format(p).as_bytes());
        }
        self.buf.push(b',');
        if let Some(m) = row.memory_bytes {
            self.buf.extend_from_slice(int.format(m).as_bytes());
        }
        self.buf.push(b',');
        if let Some(p) = row.memory_percent {
            self.buf.extend_from_slice(int.format(p).as_bytes());
        }
        self.buf.push(b'\n');
        self.end_row()
    }

    /// A writer of headerless rows for [`UsageWriter::append`]. CSV and NDJSON only: JSON rows
    /// depend on their place in the document.
    ///
    /// The rows go into `buf`, cleared first: a buffer of an earlier fragment can be reused, which
    /// spares allocating (and the kernel zeroing) fresh pages for every fragment.
    pub fn fragment(
        format: UsageFormat,
        kind: UsageKind,
        mut buf: Vec<u8>,
    ) -> UsageWriter<Vec<u8>> {
        assert_ne!(
            format,
            UsageFormat::Json,
            "JSON rows cannot be formatted apart"
        );
        let mut w = UsageWriter::new(Vec::new(), format, kind);
        // Counting from one skips the header.
        w.rows = 1;
        buf.clear();
        w.buf = buf;
        w.flush_at = usize::MAX;
        w
    }

    /// Ends the document (an empty CSV still gets its header, an empty JSON document its
    /// `rows: []`) and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        if self.rows == 0 {
            self.header()?;
        }
        if self.format == UsageFormat::Json {
            self.buf
                .extend_from_slice(if self.rows == 0 { b"]}\n" } else { b"\n]}\n" });
        }
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The `run,timestamp,` that starts every CSV row of one run, formatted once, for
/// [`PlainPodRows`].
#[derive(Debug, Clone)]
pub struct CsvPrefix(Vec<u8>);

impl CsvPrefix {
    pub fn new(run: &str, timestamp: Option<Timestamp>) -> CsvPrefix {
        let mut prefix = Vec::with_capacity(run.len() + 32);
        push_field(&mut prefix, run);
        prefix.push(b',');
        if let Some(t) = timestamp {
            prefix.extend_from_slice(t.to_string().as_bytes());
        }
        prefix.push(b',');
        CsvPrefix(prefix)
    }
}

impl<W: Write> UsageWriter<W> {
    /// Appends the rows formatted in `rows` and empties it. The caller guarantees that the
    /// writer is a CSV pod writer (debug builds check).
    pub fn append_plain_pods(&mut self, rows: &mut PlainPodRows) -> io::Result<()> {
        debug_assert!(self.format == UsageFormat::Csv && self.kind == UsageKind::Pods);
        if rows.rows == 0 {
            return Ok(());
        }
        if self.rows == 0 {
            self.header()?;
        }
        self.rows += rows.rows;
        self.buf.extend_from_slice(&rows.block[..rows.used]);
        rows.used = 0;
        rows.rows = 0;
        self.end_row()
    }
}

/// A name for [`PlainPodRows::push`]: the first `len` bytes of `bytes`. `bytes` may run on past
/// the name (the rest of the input line, say), so that a short name is copied as one 16-, 32- or
/// 64-byte block rather than byte by byte.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Cell<'a> {
    /// The first `len` bytes of `bytes` (all of them if there are fewer).
    #[inline(always)]
    pub fn new(bytes: &'a [u8], len: usize) -> Cell<'a> {
        Cell {
            bytes,
            len: len.min(bytes.len()),
        }
    }

    pub fn exact(bytes: &'a [u8]) -> Cell<'a> {
        Cell::new(bytes, bytes.len())
    }
}

/// A whole number for [`PlainPodRows::push`]: its value, or the decimal digits the input holds
/// already (no sign, no leading zero), which are copied rather than formatted again.
#[derive(Debug, Clone, Copy)]
pub enum Whole<'a> {
    Value(u64),
    Digits(Cell<'a>),
}

/// CSV pod rows with whole millicores and names that need no quoting (the rows `kubectl top`
/// prints), formatted in place into a block that [`UsageWriter::append_plain_pods`] appends in
/// one copy. Byte for byte what [`UsageWriter::write_pod`] writes for the same rows.
///
/// Each row is written where it ends up: names are copied in whole blocks and numbers are
/// formatted eight digits at a time in registers, so that nothing just stored is read back (a
/// row put together on the stack and then copied out stalls on every row's store-to-load
/// forwarding: that cost half of top-parse's time per row; docs/benchmarks.md, session 13).
#[derive(Debug)]
pub struct PlainPodRows {
    /// Always [`PLAIN_BLOCK`] bytes long; `used` of them hold rows.
    block: Vec<u8>,
    used: usize,
    rows: u64,
    /// The `run,timestamp,` prefix, followed by room to copy it in blocks.
    prefix: Vec<u8>,
    prefix_len: usize,
}

/// The size of a [`PlainPodRows`] block: small enough to stay in the first-level cache.
const PLAIN_BLOCK: usize = 16 * 1024;

impl PlainPodRows {
    pub fn new(prefix: &CsvPrefix) -> PlainPodRows {
        let mut padded = prefix.0.clone();
        padded.resize(prefix.0.len().next_multiple_of(16).max(16), 0);
        PlainPodRows {
            block: vec![0; PLAIN_BLOCK],
            used: 0,
            rows: 0,
            prefix: padded,
            prefix_len: prefix.0.len(),
        }
    }

    /// Formats one row; `false` (and nothing written) when it does not fit in what is left of
    /// the block: append the block to the writer and push again. A row that does not fit in an
    /// empty block (names of kilobytes) never does; write it with [`UsageWriter::write_pod`].
    ///
    /// The caller guarantees that no name holds `,`, `"`, CR or LF (debug builds check); an
    /// empty name is an empty cell.
    #[inline(always)]
    pub fn push(&mut self, names: [Cell<'_>; 3], millicores: Whole<'_>, memory_bytes: u64) -> bool {
        debug_assert!(match millicores {
            Whole::Value(_) => true,
            Whole::Digits(d) => {
                let d = &d.bytes[..d.len];
                !d.is_empty() && d.iter().all(u8::is_ascii_digit) && (d.len() == 1 || d[0] != b'0')
            }
        });
        debug_assert!(
            !names.iter().any(|f| f.bytes[..f.len]
                .iter()
                .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))),
            "a name that needs CSV quotes"
        );
        // Each copy may run up to 64 bytes past its end; each number takes up to 20 digits.
        let digits = match millicores {
            Whole::Value(_) => 0,
            Whole::Digits(d) => d.len,
        };
        let bound =
            self.prefix.len() + names.iter().map(|c| c.len + 64).sum::<usize>() + digits + 64 + 24;
        let Some(row) = self.block.get_mut(self.used..self.used + bound) else {
            return false;
        };
        if let Ok(short) = <&[u8; 16]>::try_from(&self.prefix[..]) {
            row[..16].copy_from_slice(short);
        } else {
            for (to, from) in row.chunks_exact_mut(16).zip(self.prefix.chunks_exact(16)) {
                to.copy_from_slice(from);
            }
        }
        let mut at = self.prefix_len;
        for cell in names {
            at = put_cell(row, at, cell);
            row[at] = b',';
            at += 1;
        }
        at = match millicores {
            Whole::Value(v) => put_u64(row, at, v),
            Whole::Digits(digits) => put_cell(row, at, digits),
        };
        row[at] = b',';
        at = put_u64(row, at + 1, memory_bytes);
        row[at] = b'\n';
        self.used += at + 1;
        self.rows += 1;
        true
    }
}

/// Copies `cell` to `row` at `at`, in one block when the cell's bytes run on far enough (the
/// caller leaves 64 bytes of room after it); returns where the name ends.
#[inline(always)]
fn put_cell(row: &mut [u8], at: usize, cell: Cell<'_>) -> usize {
    let n = cell.len;
    let room = cell.bytes.len();
    if n == 0 {
        // An empty cell (no container column, say).
    } else if n <= 16 && room >= 16 {
        row[at..at + 16].copy_from_slice(&cell.bytes[..16]);
    } else if n <= 32 && room >= 32 {
        row[at..at + 32].copy_from_slice(&cell.bytes[..32]);
    } else if n <= 64 && room >= 64 {
        row[at..at + 64].copy_from_slice(&cell.bytes[..64]);
    } else {
        row[at..at + n].copy_from_slice(&cell.bytes[..n]);
    }
    at + n
}

/// "00" to "99", each as a little-endian u16.
const PAIRS: [u16; 100] = {
    let mut pairs = [0u16; 100];
    let mut i: u16 = 0;
    while i < 100 {
        pairs[i as usize] = (0x30 + i % 10) << 8 | (0x30 + i / 10);
        i += 1;
    }
    pairs
};

/// Two decimal digits of `v` (below 100) as ASCII, the first in the lower byte.
#[inline(always)]
fn pair(v: u64) -> u64 {
    u64::from(PAIRS[usize::try_from(v % 100).unwrap_or(0)])
}

/// The eight decimal digits of `v` (below 10^8) as ASCII, the first digit in the lowest byte:
/// pairs of digits from a table, so that the chain from the number to its digits is two
/// divisions by constants and a load.
#[inline(always)]
fn ascii8(v: u64) -> u64 {
    debug_assert!(v < 100_000_000);
    let (high, low) = (v / 10_000, v % 10_000);
    pair(high / 100) | pair(high) << 16 | pair(low / 100) << 32 | pair(low) << 48
}

/// The four decimal digits of `v` (below 10^4) as ASCII, the first digit in the lowest byte.
#[inline(always)]
fn ascii4(v: u64) -> u64 {
    debug_assert!(v < 10_000);
    pair(v / 100) | pair(v) << 16
}

/// Writes `v` in decimal to `row` at `at` (16 bytes of room, 20 for a number of 17 digits or
/// more) and returns where it ends.
#[inline(always)]
fn put_u64(row: &mut [u8], at: usize, v: u64) -> usize {
    // Leading zeros are the bytes equal to '0' before the first other digit; one digit stays.
    let skip =
        |digits: u64, most: u32| ((digits ^ 0x3030_3030_3030_3030).trailing_zeros() / 8).min(most);
    if v < 10_000 {
        let digits = ascii4(v);
        let skip = skip(digits | 0xffff_ffff_0000_0000, 3);
        // Eight bytes stored, four of them digits: what follows overwrites the rest.
        row[at..at + 8].copy_from_slice(&(digits >> (8 * skip)).to_le_bytes());
        at + 4 - skip as usize
    } else if v < 100_000_000 {
        let digits = ascii8(v);
        let skip = skip(digits, 7);
        row[at..at + 8].copy_from_slice(&(digits >> (8 * skip)).to_le_bytes());
        at + 8 - skip as usize
    } else if v < 1_000_000_000_000 {
        // Memory in bytes, mostly: up to four digits, then eight.
        let high = ascii4(v / 100_000_000);
        let digits = (u128::from(ascii8(v % 100_000_000)) << 32) | u128::from(high);
        let skip = skip(high | 0xffff_ffff_0000_0000, 3);
        row[at..at + 16].copy_from_slice(&(digits >> (8 * skip)).to_le_bytes());
        at + 12 - skip as usize
    } else if v < 10_000_000_000_000_000 {
        let high = ascii8(v / 100_000_000);
        let digits = (u128::from(ascii8(v % 100_000_000)) << 64) | u128::from(high);
        let skip = skip(high, 7);
        row[at..at + 16].copy_from_slice(&(digits >> (8 * skip)).to_le_bytes());
        at + 16 - skip as usize
    } else {
        let mut int = itoa::Buffer::new();
        let text = int.format(v).as_bytes();
        row[at..at + text.len()].copy_from_slice(text);
        at + text.len()
    }
}

/// Whether `bytes` has a byte at or below b',' (where all four CSV specials are) or above 0x7f:
/// a word at a time, since names (DNS labels) have none and this runs for every field.
fn might_need_quotes(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
        if (w.wrapping_sub(ONES * 0x2d) | w) & HIGHS != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b <= b',' || b > 0x7f)
}

impl UsageWriter<Vec<u8>> {
    /// The rows of a [`UsageWriter::fragment`] writer.
    pub fn into_fragment(mut self) -> Fragment {
        let bytes = if self.out.is_empty() {
            std::mem::take(&mut self.buf)
        } else {
            let mut bytes = std::mem::take(&mut self.out);
            bytes.append(&mut self.buf);
            bytes
        };
        Fragment {
            bytes,
            rows: self.rows - 1,
        }
    }
}

/// Rows are handed to the inner writer in blocks of about this size.
const BLOCK: usize = 128 * 1024;

/// Appends a CSV field, quoted only when it holds a comma, quote, CR or LF.
fn push_field(line: &mut Vec<u8>, field: &str) {
    let bytes = field.as_bytes();
    if !might_need_quotes(bytes)
        || !bytes
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        line.extend_from_slice(bytes);
        return;
    }
    line.push(b'"');
    for &b in bytes {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.push(b'"');
}

/// Why a usage CSV could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line 1: expected a {} header starting {:?}, found {found:?}", expected.noun(), expected.columns().join(","))]
    Header { expected: UsageKind, found: String },
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

fn read_csv<R: io::Read, T: serde::de::DeserializeOwned>(
    input: R,
    kind: UsageKind,
) -> Result<Vec<T>, ReadError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let header = reader.headers()?.clone();
    if UsageKind::from_csv_header(header.iter()) != Some(kind) {
        return Err(ReadError::Header {
            expected: kind,
            found: header.iter().collect::<Vec<_>>().join(","),
        });
    }
    // Columns appended by a newer minor version are dropped before deserializing; the header
    // was checked above, so fields are taken by position (matching names on every row was most
    // of the reading time).
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() > 7 {
            record.truncate(7);
        }
        let row = record.deserialize(None).map_err(|e| ReadError::Row {
            line,
            message: e.to_string(),
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// Reads a pod-usage CSV (as written by [`UsageWriter`]).
pub fn read_pod_csv<R: io::Read>(input: R) -> Result<Vec<PodUsageRow>, ReadError> {
    read_csv(input, UsageKind::Pods)
}

/// Reads a node-usage CSV (as written by [`UsageWriter`]).
pub fn read_node_csv<R: io::Read>(input: R) -> Result<Vec<NodeUsageRow>, ReadError> {
    read_csv(input, UsageKind::Nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pod(run: &str, container: Option<&str>, nanocores: i64) -> PodUsageRow {
        PodUsageRow {
            run: run.to_owned(),
            timestamp: Some("2026-11-26T08:00:00Z".parse().unwrap()),
            namespace: Some("linkerd".to_owned()),
            pod: "linkerd-destination-5c8f".to_owned(),
            container: container.map(str::to_owned),
            cpu_millicores: Cpu::from_nanocores(nanocores),
            memory_bytes: 188_743_680,
        }
    }

    fn write_pods(rows: &[PodUsageRow], format: UsageFormat) -> String {
        let mut w = UsageWriter::new(Vec::new(), format, UsageKind::Pods);
        for row in rows {
            w.write_pod(row).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn cpu_decimal_millicores() {
        let show = |n| Cpu::from_nanocores(n).to_string();
        assert_eq!(show(0), "0");
        assert_eq!(show(250_000_000), "250");
        assert_eq!(show(329_087_452), "329.087452");
        assert_eq!(show(1_000_500_000), "1000.5");
        assert_eq!(show(1), "0.000001");
        assert_eq!(show(-1_500_000), "-1.5");
    }

    #[test]
    fn csv_layout_is_the_documented_one() {
        let out = write_pods(
            &[pod("linkerd-1", Some("destination"), 120_000_000)],
            UsageFormat::Csv,
        );
        assert_eq!(
            out,
            "run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes\n\
             linkerd-1,2026-11-26T08:00:00Z,linkerd,linkerd-destination-5c8f,destination,120,188743680\n"
        );
    }

    #[test]
    fn plain_pod_rows_are_write_pod_rows() {
        for run in ["linkerd-1", "", "a,b"] {
            let mut bare = pod(run, None, 7_000_000);
            bare.namespace = None;
            let rows = [pod(run, Some("destination"), 120_000_000), bare];
            let mut plain = UsageWriter::new(Vec::new(), UsageFormat::Csv, UsageKind::Pods);
            for row in &rows {
                let mut block = PlainPodRows::new(&CsvPrefix::new(&row.run, row.timestamp));
                let names = [
                    row.namespace.as_deref().unwrap_or_default().as_bytes(),
                    row.pod.as_bytes(),
                    row.container.as_deref().unwrap_or_default().as_bytes(),
                ];
                let millicores = u64::try_from(row.cpu_millicores.nanocores() / 1_000_000).unwrap();
                assert!(block.push(
                    names.map(Cell::exact),
                    Whole::Value(millicores),
                    row.memory_bytes
                ));
                plain.append_plain_pods(&mut block).unwrap();
            }
            assert_eq!(
                String::from_utf8(plain.finish().unwrap()).unwrap(),
                write_pods(&rows, UsageFormat::Csv)
            );
        }
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let out = write_pods(&[pod("a,\"b\"", None, 1)], UsageFormat::Csv);
        assert!(out.contains("\"a,\"\"b\"\"\",2026"), "{out}");
        assert!(out.contains(",,0.000001,"), "{out}");
    }

    #[test]
    fn empty_outputs_are_valid_documents() {
        assert_eq!(
            write_pods(&[], UsageFormat::Csv),
            format!("{}\n", POD_COLUMNS.join(","))
        );
        let json: serde_json::Value =
            serde_json::from_str(&write_pods(&[], UsageFormat::Json)).unwrap();
        assert_eq!(json["schema"], "meshbench/pod-usage/v1");
        assert_eq!(json["rows"], serde_json::json!([]));
        assert_eq!(write_pods(&[], UsageFormat::Ndjson), "");
    }

    #[test]
    fn json_and_ndjson_carry_the_schema() {
        let rows = [pod("r", None, 329_087_452), pod("r", Some("c"), 2_000_000)];
        let json: serde_json::Value =
            serde_json::from_str(&write_pods(&rows, UsageFormat::Json)).unwrap();
        assert_eq!(json["schema"], "meshbench/pod-usage/v1");
        assert_eq!(json["rows"][0]["cpu_millicores"], 329.087452);
        assert_eq!(json["rows"][0]["container"], serde_json::Value::Null);
        assert_eq!(json["rows"][1]["cpu_millicores"], 2);
        let back: Vec<PodUsageRow> = serde_json::from_value(json["rows"].clone()).unwrap();
        assert_eq!(back, rows);

        let nd = write_pods(&rows, UsageFormat::Ndjson);
        for line in nd.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["schema"], "meshbench/pod-usage/v1");
        }
    }

    #[test]
    fn fragments_append_to_the_same_document() {
        let rows = [pod("r", None, 1), pod("r", Some("c"), 2), pod("s", None, 3)];
        for format in [UsageFormat::Csv, UsageFormat::Ndjson] {
            let whole = write_pods(&rows, format);
            let mut w = UsageWriter::new(Vec::new(), format, UsageKind::Pods);
            w.append(&Fragment::default()).unwrap();
            for part in [&rows[..2], &rows[2..]] {
                let mut f = UsageWriter::<Vec<u8>>::fragment(format, UsageKind::Pods, Vec::new());
                for row in part {
                    f.write_pod(row).unwrap();
                }
                w.append(&f.into_fragment()).unwrap();
            }
            assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), whole);
        }
    }

    #[test]
    fn node_rows_leave_unknown_cells_empty() {
        let mut w = UsageWriter::new(Vec::new(), UsageFormat::Csv, UsageKind::Nodes);
        w.write_node(&NodeUsageRow {
            run: "",
            timestamp: None,
            node: "kind-worker",
            cpu_millicores: None,
            cpu_percent: None,
            memory_bytes: None,
            memory_percent: None,
        })
        .unwrap();
        w.write_node(&NodeUsageRow {
            run: "",
            timestamp: None,
            node: "kind-control-plane",
            cpu_millicores: Some(Cpu::from_millicores(2500)),
            cpu_percent: Some(125),
            memory_bytes: Some(1 << 30),
            memory_percent: Some(13),
        })
        .unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            "run,timestamp,node,cpu_millicores,cpu_percent,memory_bytes,memory_percent\n\
             ,,kind-worker,,,,\n\
             ,,kind-control-plane,2500,125,1073741824,13\n"
        );
        let back = read_node_csv(out.as_bytes()).unwrap();
        assert_eq!(back[0].cpu_millicores, None);
        assert_eq!(back[1].cpu_percent, Some(125));
    }

    #[test]
    fn reader_accepts_appended_columns_and_rejects_other_headers() {
        let csv = "run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes,swap_bytes\n\
                   r,,ns,p,,1.5,10,0\n";
        let rows = read_pod_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows[0].cpu_millicores, Cpu::from_nanocores(1_500_000));
        assert!(matches!(
            read_node_csv(csv.as_bytes()),
            Err(ReadError::Header { .. })
        ));
        let bad =
            "run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes\nr,,ns,p,,lots,10\n";
        let err = read_pod_csv(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    proptest! {
        #[test]
        fn csv_round_trips(
            run in "[ -~]{0,12}",
            ns in proptest::option::of("[a-z0-9-]{1,20}"),
            container in proptest::option::of("[a-z,\"]{1,8}"),
            nanocores in 0i64..4_000_000_000_000,
            memory in any::<u64>(),
        ) {
            let row = PodUsageRow {
                run,
                timestamp: None,
                namespace: ns,
                pod: "p".to_owned(),
                container,
                cpu_millicores: Cpu::from_nanocores(nanocores),
                memory_bytes: memory,
            };
            let out = write_pods(std::slice::from_ref(&row), UsageFormat::Csv);
            let back = read_pod_csv(out.as_bytes()).unwrap();
            prop_assert_eq!(back, vec![row]);
        }

        /// Rows formatted in place are `write_pod`'s, whatever the lengths and numbers, and
        /// however the blocks fill up (names of kilobytes go through `write_pod`, as the
        /// caller is told to).
        #[test]
        fn plain_pod_rows_are_write_pod_rows_always(
            run in "[a-z0-9-]{0,40}",
            rows in proptest::collection::vec(
                (
                    "[a-z0-9.-]{0,70}",
                    prop_oneof![
                        20 => "[a-z0-9-]{1,70}",
                        1 => (3000usize..9000).prop_map(|n| "p".repeat(n)),
                    ],
                    "[a-z-]{0,20}",
                    prop_oneof![0u64..1000, 0u64..100_000_000, any::<u64>()],
                    prop_oneof![0u64..1 << 40, Just(u64::MAX), any::<u64>()],
                    0usize..80,
                ),
                0..300,
            ),
        ) {
            let prefix = CsvPrefix::new(&run, None);
            let mut plain = UsageWriter::new(Vec::new(), UsageFormat::Csv, UsageKind::Pods);
            let mut block = PlainPodRows::new(&prefix);
            let mut expected = Vec::new();
            for (ns, pod, container, millicores, memory, run_on) in &rows {
                // The names as slices of a line that runs on past each of them.
                let line = format!("{ns}{}{pod}{}{container}{}", " ".repeat(*run_on), " ".repeat(*run_on), " ".repeat(*run_on));
                let (n, p) = (ns.len(), ns.len() + run_on);
                let c = p + pod.len() + run_on;
                let names = [
                    Cell::new(line.as_bytes(), n),
                    Cell::new(&line.as_bytes()[p..], pod.len()),
                    Cell::new(&line.as_bytes()[c..], container.len()),
                ];
                // Half the numbers as the digits the input holds, half as values.
                let text = format!("{millicores}    ");
                let cpu = if run_on % 2 == 0 {
                    Whole::Digits(Cell::new(text.as_bytes(), text.len() - 4))
                } else {
                    Whole::Value(*millicores)
                };
                if !block.push(names, cpu, *memory) {
                    plain.append_plain_pods(&mut block).unwrap();
                    if !block.push(names, cpu, *memory) {
                        prop_assert!(pod.len() >= 3000);
                        plain.write_pod(&PodUsageRow {
                            run: run.clone(),
                            timestamp: None,
                            namespace: Some(ns.clone()),
                            pod: pod.clone(),
                            container: Some(container.clone()),
                            cpu_millicores: Cpu::from_nanocores(
                                i64::try_from(millicores.saturating_mul(1_000_000)).unwrap_or(0),
                            ),
                            memory_bytes: *memory,
                        }).unwrap();
                        expected.push(format!(
                            "{run},,{ns},{pod},{container},{},{memory}\n",
                            Cpu::from_nanocores(
                                i64::try_from(millicores.saturating_mul(1_000_000)).unwrap_or(0),
                            ),
                        ));
                        continue;
                    }
                }
                expected.push(format!("{run},,{ns},{pod},{container},{millicores},{memory}\n"));
            }
            plain.append_plain_pods(&mut block).unwrap();
            let out = String::from_utf8(plain.finish().unwrap()).unwrap();
            prop_assert_eq!(out, format!("{}\n{}", POD_COLUMNS.join(","), expected.concat()));
        }
    }
}
