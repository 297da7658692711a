//! The common case of `kubectl top pod` text, a whole line at a time.
//!
//! kubectl pads its columns with spaces, prints CPU as `250m` and memory as `180Mi`, and
//! Kubernetes names are DNS labels. A line that is exactly that (printable ASCII, no `,` or `"`,
//! the layout's number of columns, whole millicores and mebibytes) becomes a CSV row here,
//! without the general parser's per-token work. Every other line (the header, blank lines, the
//! `--sum` footer, tabs, other units, non-ASCII bytes, anything wrong) is handed to the general
//! parser, so the rows, totals and errors are the same either way; `tests` checks that on
//! arbitrary input.
//!
//! kubectl's tabwriter pads every cell, the last one too, so all the lines of a table are the
//! same length and their columns start at the same offsets. The first row of a chunk or table
//! is split token by token; its length and column offsets become the [`Geometry`] that the
//! following lines are checked against whole: 16 bytes at a time into bit masks (not a space,
//! odd byte), one comparison of where the tokens start with where they should, and the ends
//! from the masks' bits. A line that does not fit is split token by token again, and teaches
//! the next geometry if it is a row.

use meshbench_formats::usage::{Cell, CsvPrefix, PlainPodRows, UsageWriter, Whole};
use wide::{i8x16, u8x16};

use crate::Error;
use crate::text::Layout;

/// The longest line (with its LF) checked whole: its masks fit in four 64-bit words (room for
/// `-A --containers` lines with long pod names). Longer ones are split token by token.
const WINDOW: usize = 256;

/// The 64-bit words of a line's masks: shifts of a u64 are one instruction, of a u128 several.
const WORDS: usize = WINDOW / 64;

/// The most columns of a pod layout (`-A --containers`).
const MAX_COLUMNS: usize = 5;

/// Where a row of the current table has its tokens: learnt from one row, checked on the next.
struct Geometry {
    /// The line's length with its LF.
    len: usize,
    /// 16-byte vectors that cover the line before its LF.
    vectors: usize,
    /// A bit at each token's first byte (bytes 0 to 63 in the first word, and so on).
    starts: [u64; WORDS],
    /// The offsets of those bytes.
    offsets: [usize; MAX_COLUMNS],
    /// The bytes before the LF.
    inside: [u64; WORDS],
    /// Per vector, the lanes before the LF (all bits set) or not (clear).
    lanes: [i8x16; WINDOW / 16],
}

impl Geometry {
    /// The geometry of a row `len` bytes long with its LF, whose tokens are `bounds` (offsets in
    /// the line); `None` for a line too long to check whole.
    fn of(len: usize, bounds: &[(usize, usize)]) -> Option<Geometry> {
        if !(2..=WINDOW).contains(&len) {
            return None;
        }
        let text = len - 1;
        Some(Geometry {
            len,
            vectors: text.div_ceil(16),
            starts: std::array::from_fn(|w| {
                bounds
                    .iter()
                    .filter(|&&(s, _)| s / 64 == w)
                    .fold(0, |m, &(s, _)| m | (1 << (s % 64)))
            }),
            offsets: std::array::from_fn(|i| bounds.get(i).map_or(0, |b| b.0)),
            inside: std::array::from_fn(|w| match text.saturating_sub(64 * w) {
                0 => 0,
                n if n >= 64 => u64::MAX,
                n => (1 << n) - 1,
            }),
            lanes: std::array::from_fn(|k| {
                i8x16::new(std::array::from_fn(|i| -i8::from(16 * k + i < text)))
            }),
        })
    }

    /// Whether the line at `p` has this geometry: its LF where this one's is, no odd byte, its
    /// tokens starting where this one's do. If so, fills `bounds` (offsets in `chunk`).
    #[inline(always)]
    fn check<const N: usize, const W: usize>(
        &self,
        chunk: &[u8],
        p: usize,
        bounds: &mut [(usize, usize); N],
    ) -> bool {
        if chunk.get(p + self.len - 1) != Some(&b'\n') {
            return false;
        }
        let padded: [u8; WINDOW];
        let window = match chunk.get(p..p + 16 * self.vectors) {
            Some(w) => w,
            None => {
                // The chunk's last line: its LF is there, so only the bytes after it are made up.
                let rest = &chunk[p..];
                let mut bytes = [b' '; WINDOW];
                bytes[..rest.len()].copy_from_slice(rest);
                padded = bytes;
                &padded[..16 * self.vectors]
            }
        };
        let space = u8x16::splat(b' ');
        let comma = i8x16::splat(b',' as i8);
        let quote = i8x16::splat(b'"' as i8);
        // Adding 0x60 maps 0x20..=0x7e (printable ASCII) to -128..=-34 and nothing else there.
        let shift = i8x16::splat(0x60);
        let printable_below = i8x16::splat(-33);
        // Not a space, a bit a byte: W words of four vectors each, all loops of known length
        // but the last, so that the words stay in registers.
        let mut words = [0u64; W];
        let mut odd = i8x16::splat(0);
        let mut vectors = window.chunks_exact(16).zip(&self.lanes);
        for word in &mut words {
            for j in 0..4 {
                let Some((bytes, lane)) = vectors.next() else {
                    break;
                };
                let bytes: [u8; 16] = bytes.try_into().unwrap_or([0; 16]);
                let v = u8x16::new(bytes);
                *word |= u64::from((!v.simd_eq(space)).to_bitmask()) << (16 * j);
                let s = i8x16::new(bytes.map(|b| b as i8));
                let printable = (s + shift).simd_lt(printable_below);
                odd |= (!printable | s.simd_eq(comma) | s.simd_eq(quote)) & *lane;
            }
        }
        for (word, inside) in words.iter_mut().zip(&self.inside) {
            *word &= inside;
        }
        // A token starts after a space (or at the line's start) and ends before one; a bit
        // carries over from the word before, or the word after.
        let mut starts = [0u64; W];
        let mut ends = [0u64; W];
        for w in 0..W {
            let below = if w > 0 { words[w - 1] >> 63 } else { 0 };
            let above = if w + 1 < W { words[w + 1] << 63 } else { 0 };
            starts[w] = words[w] & !((words[w] << 1) | below);
            ends[w] = words[w] & !((words[w] >> 1) | above);
        }
        if odd.any() || starts != std::array::from_fn(|w| self.starts[w]) {
            return false;
        }
        let mut w = 0;
        for (bound, offset) in bounds.iter_mut().zip(&self.offsets) {
            // As many ends as starts: the search stops at a word that has one.
            while w + 1 < W && ends[w] == 0 {
                w += 1;
            }
            let end = 64 * w + ends[w].trailing_zeros() as usize;
            ends[w] &= ends[w].wrapping_sub(1);
            *bound = (p + offset, p + end + 1);
        }
        true
    }
}

/// Splits `line` (at `p` in the chunk) into exactly `width` tokens at runs of spaces; `false`
/// for another number of tokens or an odd byte. Offsets in `bounds` are the chunk's.
fn split<const N: usize>(line: &[u8], p: usize, bounds: &mut [(usize, usize); N]) -> bool {
    let width = N;
    let mut count = 0;
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        if b == b' ' {
            if let Some(s) = start.take() {
                if count == width {
                    return false;
                }
                bounds[count] = (p + s, p + i);
                count += 1;
            }
        } else if !(0x20..=0x7e).contains(&b) || b == b',' || b == b'"' {
            return false;
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        if count == width {
            return false;
        }
        bounds[count] = (p + s, p + line.len());
        count += 1;
    }
    count == width
}

/// The `n` (1 to 8) ASCII digits that end `bytes` (8 bytes), read 8 at a time; `None` if one is
/// not a digit. The bytes before the number are not looked at.
#[inline(always)]
fn swar8(bytes: &[u8], n: usize) -> Option<u64> {
    let keep = u64::MAX << (8 * (8 - n));
    let word = u64::from_le_bytes(bytes.try_into().ok()?);
    // The bytes before the number read as '0's.
    let word = (word & keep) | (0x3030_3030_3030_3030 & !keep);
    let v = word.wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' borrows (its top bit is set); one above '9' carries into it when 0x46 is
    // added.
    if (word.wrapping_add(0x4646_4646_4646_4646) | v) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // The first digit is in the lowest byte: pairs, then quadruples, then all eight.
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    Some((v * 10_000 + (v >> 32)) & 0xffff_ffff)
}

/// The token `chunk[start..end]` if it is `digits` then `suffix`, 1 to 12 digits: the value, or
/// `None` for anything else (which the general parser then reads, or rejects). kubectl's own
/// numbers (up to 8 digits) are read eight digits at a time where they are; others as the
/// general parser reads them.
#[inline(always)]
fn number<const S: usize>(
    chunk: &[u8],
    (start, end): (usize, usize),
    suffix: [u8; S],
) -> Option<u64> {
    if let Some(digits_end) = end.checked_sub(S)
        && digits_end > start
        && digits_end - start <= 8
        && digits_end >= 8
        && chunk[digits_end..end] == suffix
    {
        return swar8(&chunk[digits_end - 8..digits_end], digits_end - start);
    }
    crate::text::kubectl_number(chunk.get(start..end)?, &suffix)
}

/// What every row gets besides its own cells.
pub(crate) struct Given<'a> {
    /// The run and timestamp cells.
    pub prefix: &'a CsvPrefix,
    /// The namespace of layouts without a NAMESPACE column (`--namespace`; else empty).
    pub namespace: &'a [u8],
}

/// What the rows of a chunk's last table add up to, for the `--sum` check.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastTotals {
    pub rows: u64,
    pub millicores: u128,
    pub mebibytes: u128,
    /// Rows of the tables before it in the chunk (appended tables).
    pub earlier_rows: u64,
}

impl FastTotals {
    /// Counts `rows` rows of the current table, of these sums.
    fn add(&mut self, rows: u64, millicores: u128, mebibytes: u128) {
        self.rows += rows;
        self.millicores += millicores;
        self.mebibytes += mebibytes;
    }

    /// An appended table's header: the rows so far belong to the tables before it, and the
    /// new table's sums start from nothing.
    fn new_table(&mut self) {
        *self = FastTotals {
            earlier_rows: self.earlier_rows + self.rows,
            ..FastTotals::default()
        };
    }
}

/// What the general parser says after a line it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Go {
    On,
    /// The line was an appended table's header: the totals start afresh.
    NewTable,
    /// The rest of the chunk is read by the caller.
    Stop,
}

/// Writes the rows of `chunk` (complete lines; the last may lack its LF at the end of input),
/// numbering lines from `first_line` + 1. Lines this path does not take go to `general` with
/// their number, text (without the LF) and the offset of the next line; `general` says how to
/// go on. Returns the number of the last line read.
pub(crate) fn pod_rows(
    chunk: &[u8],
    layout: Layout,
    first_line: u64,
    given: &Given<'_>,
    writer: &mut UsageWriter<Vec<u8>>,
    totals: &mut FastTotals,
    general: impl FnMut(u64, &[u8], usize, &mut UsageWriter<Vec<u8>>) -> Result<Go, Error>,
) -> Result<u64, Error> {
    let slots: Slots = layout.name_slots();
    // One copy of the loop per number of columns, with the per-column work unrolled.
    match layout.name_columns() + layout.resource_columns(false) {
        3 => rows_of::<3>(chunk, slots, first_line, given, writer, totals, general),
        4 => rows_of::<4>(chunk, slots, first_line, given, writer, totals, general),
        _ => rows_of::<MAX_COLUMNS>(chunk, slots, first_line, given, writer, totals, general),
    }
}

/// Which columns hold a pod row's namespace, pod and container names.
type Slots = (Option<usize>, usize, Option<usize>);

/// What a line's tokens made.
enum Made {
    /// A row, pushed: its CPU and memory.
    Row(u64, u64),
    /// A row that does not fit in what is left of the block.
    Full,
    /// Not a row this path takes.
    Other,
}

/// Pushes the row whose tokens are `bounds`, if it is one this path takes.
#[inline(always)]
fn make_row<const N: usize>(
    chunk: &[u8],
    bounds: &[(usize, usize); N],
    (namespace, pod, container): Slots,
    given_namespace: &[u8],
    rows: &mut PlainPodRows,
) -> Made {
    // Not a header (its columns are upper case) nor a `--sum` separator.
    if matches!(chunk[bounds[0].0], b'A'..=b'Z' | b'_') {
        return Made::Other;
    }
    let (Some(millicores), Some(mebibytes)) = (
        number(chunk, bounds[N - 2], *b"m"),
        number(chunk, bounds[N - 1], *b"Mi"),
    ) else {
        return Made::Other;
    };
    let cell = |i: usize| {
        let (s, e) = bounds[i];
        Cell::new(&chunk[s..], e - s)
    };
    let names = [
        namespace.map_or(Cell::exact(given_namespace), cell),
        cell(pod),
        container.map_or(Cell::exact(b""), cell),
    ];
    // kubectl's digits are copied as they are, unless they have a leading zero.
    let (start, end) = bounds[N - 2];
    let cpu = if chunk[start] != b'0' || end - start == 2 {
        Whole::Digits(Cell::new(&chunk[start..], end - 1 - start))
    } else {
        Whole::Value(millicores)
    };
    if rows.push(names, cpu, mebibytes << 20) {
        Made::Row(millicores, mebibytes)
    } else {
        Made::Full
    }
}

/// Takes the lines from `p` on that have geometry `g` as rows, while they come and fit in the
/// block: the hot loop, kept small. Returns where it stopped and the number of lines taken.
#[inline(never)]
fn fixed_rows<const N: usize, const W: usize>(
    chunk: &[u8],
    mut p: usize,
    g: &Geometry,
    slots: Slots,
    given_namespace: &[u8],
    rows: &mut PlainPodRows,
    totals: &mut FastTotals,
) -> (usize, u64) {
    let mut bounds = [(0usize, 0usize); N];
    let (mut lines, mut millicores, mut mebibytes) = (0u64, 0u128, 0u128);
    while g.check::<N, W>(chunk, p, &mut bounds) {
        let Made::Row(m, mi) = make_row(chunk, &bounds, slots, given_namespace, rows) else {
            break;
        };
        lines += 1;
        millicores += u128::from(m);
        mebibytes += u128::from(mi);
        p += g.len;
    }
    totals.add(lines, millicores, mebibytes);
    (p, lines)
}

/// [`pod_rows`] for a layout of `N` columns.
fn rows_of<const N: usize>(
    chunk: &[u8],
    slots: Slots,
    first_line: u64,
    given: &Given<'_>,
    writer: &mut UsageWriter<Vec<u8>>,
    totals: &mut FastTotals,
    mut general: impl FnMut(u64, &[u8], usize, &mut UsageWriter<Vec<u8>>) -> Result<Go, Error>,
) -> Result<u64, Error> {
    let mut rows = PlainPodRows::new(given.prefix);
    let mut geometry: Option<Geometry> = None;
    let mut bounds = [(0usize, 0usize); N];
    let mut line_no = first_line;
    let mut p = 0;
    while p < chunk.len() {
        if let Some(g) = &geometry {
            let (next, lines) = if g.len <= WINDOW / 2 {
                fixed_rows::<N, { WORDS / 2 }>(
                    chunk,
                    p,
                    g,
                    slots,
                    given.namespace,
                    &mut rows,
                    totals,
                )
            } else {
                fixed_rows::<N, WORDS>(chunk, p, g, slots, given.namespace, &mut rows, totals)
            };
            p = next;
            line_no += lines;
            if p >= chunk.len() {
                break;
            }
        }
        // A line that is not the table's geometry, or a full block: token by token.
        line_no += 1;
        let end = memchr::memchr(b'\n', &chunk[p..]).map_or(chunk.len(), |e| p + e);
        let next = end + 1;
        let mut made = Made::Other;
        if split(&chunk[p..end], p, &mut bounds) {
            made = make_row(chunk, &bounds, slots, given.namespace, &mut rows);
            if let Made::Full = made {
                writer.append_plain_pods(&mut rows).map_err(Error::Write)?;
                // A row too long for an empty block (names of kilobytes) goes the general way.
                made = make_row(chunk, &bounds, slots, given.namespace, &mut rows);
            }
        }
        if let Made::Row(millicores, mebibytes) = made {
            totals.add(1, u128::from(millicores), u128::from(mebibytes));
            if next <= chunk.len() {
                let line = |(s, e): (usize, usize)| (s - p, e - p);
                geometry = Geometry::of(next - p, &bounds.map(line));
            }
        } else {
            writer.append_plain_pods(&mut rows).map_err(Error::Write)?;
            match general(line_no, &chunk[p..end], next, writer)? {
                Go::On => {}
                Go::NewTable => totals.new_table(),
                Go::Stop => return Ok(line_no),
            }
        }
        p = next;
    }
    writer.append_plain_pods(&mut rows).map_err(Error::Write)?;
    Ok(line_no)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn eight_digits_at_a_time_read_as_one_at_a_time(
            text in "[ -~]{0,6}[0-9/:]{1,8}",
            n in 1usize..=8,
        ) {
            let bytes = format!("{text:>8}");
            let bytes = &bytes.as_bytes()[bytes.len() - 8..];
            let digits = &bytes[8 - n..];
            let expected = digits
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| digits.iter().fold(0u64, |v, &b| v * 10 + u64::from(b - b'0')));
            prop_assert_eq!(swar8(bytes, n), expected);
        }
    }

    #[test]
    fn lines_of_up_to_256_bytes_are_checked_whole() {
        let row = |ns: &str, pod: &str| format!("{ns:<70}{pod:<120}{:<20}{:<20}\n", "7m", "9Mi");
        let table = row("ns-a", "pod-a") + &row("ns-b", &"p".repeat(110));
        let line = table.len() / 2;
        assert!(line > 128 && line <= WINDOW);
        let mut bounds = [(0, 0); 4];
        assert!(split(&table.as_bytes()[..line - 1], 0, &mut bounds));
        let g = Geometry::of(line, &bounds).unwrap();
        assert!(g.check::<4, WORDS>(table.as_bytes(), line, &mut bounds));
        let at = |i: usize| &table[bounds[i].0..bounds[i].1];
        assert_eq!(at(1), "p".repeat(110));
        assert_eq!([at(0), at(2), at(3)], ["ns-b", "7m", "9Mi"]);
        // A token that runs into the next column past byte 128.
        let broken = row("ns-b", &"p".repeat(120));
        assert!(!g.check::<4, WORDS>(broken.as_bytes(), 0, &mut bounds));
    }

    #[test]
    fn a_table_of_equal_lines_is_checked_whole() {
        let table = "ns-a     pod-1     12m     3Mi     \nns-bb    pod-22    0m      1024Mi  \n";
        let mut bounds = [(0, 0); 4];
        assert!(split(&table.as_bytes()[..35], 0, &mut bounds));
        let g = Geometry::of(36, &bounds).unwrap();
        assert!(g.check::<4, 2>(table.as_bytes(), 36, &mut bounds));
        let at = |i: usize| &table[bounds[i].0..bounds[i].1];
        assert_eq!(
            [at(0), at(1), at(2), at(3)],
            ["ns-bb", "pod-22", "0m", "1024Mi"]
        );
        // A token that runs into the next column, a shifted one, a tab, a comma: not this
        // geometry.
        for line in [
            "ns-bb    pod-22xxxx0m      1024Mi  \n",
            "ns-bb     pod-22   0m      1024Mi  \n",
            "ns-bb\t   pod-22    0m      1024Mi  \n",
            "ns-bb    pod,22    0m      1024Mi  \n",
            "ns-bb    pod-22    0m      1024Mi   \n",
            "ns-bb z  pod-22    0m      1024Mi  \n",
            "ns-bb    pod-22    0m      1024Mi z\n",
        ] {
            assert!(
                !g.check::<4, 2>(line.as_bytes(), 0, &mut bounds),
                "{line:?}"
            );
        }
    }
}
