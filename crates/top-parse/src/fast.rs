//! The common case of `kubectl top pod` text, 16 bytes at a time.
//!
//! kubectl pads its columns with spaces, prints CPU as `250m` and memory as `180Mi`, and
//! Kubernetes names are DNS labels. A line that is exactly that (printable ASCII, no `,` or `"`,
//! the layout's number of columns, whole millicores and mebibytes) becomes a CSV row here,
//! without the general parser's per-token work. Every other line (the header, blank lines, the
//! `--sum` footer, tabs, other units, non-ASCII bytes, anything wrong) is handed to the general
//! parser, so the rows, totals and errors are the same either way; `tests` checks that on
//! arbitrary input.
//!
//! The chunk is classified 64 bytes at a time into bit masks (separator, newline, "odd" byte) with
//! SIMD compares; token and line boundaries are then the set bits of those masks.

use meshbench_formats::usage::{CsvPrefix, UsageWriter};
use wide::u8x16;

use crate::Error;
use crate::text::Layout;

/// One bit per byte of a 64-byte block.
struct Classes {
    /// Space or LF: what ends a token on this path.
    sep: u64,
    lf: u64,
    /// Bytes this path does not handle: below 0x20 other than LF, above 0x7e, `,` and `"`.
    odd: u64,
}

fn classify(block: &[u8; 64]) -> Classes {
    let space = u8x16::splat(b' ');
    let lf = u8x16::splat(b'\n');
    let comma = u8x16::splat(b',');
    let quote = u8x16::splat(b'"');
    let low = u8x16::splat(0x20);
    let high = u8x16::splat(0x7e);
    let ones = u8x16::splat(0xff);
    let mut classes = Classes {
        sep: 0,
        lf: 0,
        odd: 0,
    };
    let mut odd = [u8x16::splat(0); 4];
    for (k, lanes) in block.chunks_exact(16).enumerate() {
        let v = u8x16::new(lanes.try_into().unwrap_or_default());
        let is_space = v.simd_eq(space);
        let is_lf = v.simd_eq(lf);
        // 0x20..=0x7e, by unsigned max and min (SSE2 has no unsigned compare).
        let printable = v.max(low).simd_eq(v) & v.min(high).simd_eq(v);
        odd[k] = ((printable | is_lf) ^ ones) | v.simd_eq(comma) | v.simd_eq(quote);
        let shift = 16 * k;
        classes.sep |= u64::from((is_space | is_lf).to_bitmask()) << shift;
        classes.lf |= u64::from(is_lf.to_bitmask()) << shift;
    }
    // Odd bytes are rare: their positions are only worked out when there are some.
    if (odd[0] | odd[1] | odd[2] | odd[3]).any() {
        for (k, o) in odd.iter().enumerate() {
            classes.odd |= u64::from(o.to_bitmask()) << (16 * k);
        }
    }
    classes
}

/// `digits` then `suffix`, 1 to 12 digits: the value, or `None` for anything else (which the
/// general parser then reads, or rejects).
#[inline]
fn number(token: &[u8], suffix: &[u8]) -> Option<u64> {
    let digits = token.strip_suffix(suffix)?;
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut v = 0u64;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// What every row gets besides its own cells.
pub(crate) struct Given<'a> {
    /// The run and timestamp cells.
    pub prefix: &'a CsvPrefix,
    /// The namespace of layouts without a NAMESPACE column (`--namespace`; else empty).
    pub namespace: &'a [u8],
}

/// What the rows of a chunk add up to, for the `--sum` check.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastTotals {
    pub rows: u64,
    pub millicores: u128,
    pub mebibytes: u128,
}

/// Writes the rows of `chunk` (complete lines; the last may lack its LF at the end of input),
/// numbering lines from `first_line` + 1. Lines this path does not take go to `general` with
/// their number, text (without the LF) and the offset of the next line; `general` returns
/// whether to go on. Returns the number of the last line read.
pub(crate) fn pod_rows(
    chunk: &[u8],
    layout: Layout,
    first_line: u64,
    given: &Given<'_>,
    writer: &mut UsageWriter<Vec<u8>>,
    totals: &mut FastTotals,
    mut general: impl FnMut(u64, &[u8], usize, &mut UsageWriter<Vec<u8>>) -> Result<bool, Error>,
) -> Result<u64, Error> {
    let (namespace, pod, container) = layout.name_slots();
    let width = layout.name_columns() + layout.resource_columns(false);
    let mut line_no = first_line;
    // The line being read: where it starts, and its token boundaries so far (start, end, start,
    // …; more than fit are counted, not kept).
    let mut line_start = 0usize;
    let mut bounds = [0usize; 16];
    let mut count = 0usize;
    // Where the odd bytes not yet assigned to a line are (rare; in order).
    let mut odd_at: Vec<usize> = Vec::new();
    let mut odd_next = 0usize;
    // Whether the byte before the current block was a separator (a line start counts as one).
    let mut after_sep = true;

    // One line is complete: a row, or the general parser's.
    let mut finish = |line_start: usize,
                      end: usize,
                      bounds: &[usize; 16],
                      count: usize,
                      odd: bool,
                      line_no: u64,
                      writer: &mut UsageWriter<Vec<u8>>|
     -> Result<bool, Error> {
        let plain = !odd
            && count == 2 * width
            // Not a header (its columns are upper case) nor a `--sum` separator.
            && !matches!(chunk[bounds[0]], b'A'..=b'Z' | b'_');
        if plain {
            let token = |i: usize| &chunk[bounds[2 * i]..bounds[2 * i + 1]];
            if let (Some(millicores), Some(mebibytes)) = (
                number(token(width - 2), b"m"),
                number(token(width - 1), b"Mi"),
            ) {
                let name = |slot: Option<usize>| slot.map_or(&b""[..], token);
                writer
                    .write_plain_pod(
                        given.prefix,
                        [
                            namespace.map_or(given.namespace, token),
                            token(pod),
                            name(container),
                        ],
                        millicores,
                        mebibytes << 20,
                    )
                    .map_err(Error::Write)?;
                totals.rows += 1;
                totals.millicores += u128::from(millicores);
                totals.mebibytes += u128::from(mebibytes);
                return Ok(true);
            }
        }
        general(line_no, &chunk[line_start..end], end + 1, writer)
    };

    let mut base = 0usize;
    while base < chunk.len() {
        let classes = if let Some(block) = chunk.get(base..base + 64) {
            classify(block.try_into().unwrap_or(&[0; 64]))
        } else {
            // The tail, padded with spaces: separators that end a last token and nothing else.
            let mut block = [b' '; 64];
            block[..chunk.len() - base].copy_from_slice(&chunk[base..]);
            classify(&block)
        };
        let before = (classes.sep << 1) | u64::from(after_sep);
        // A token starts after a separator and ends at one.
        let boundaries = (!classes.sep & before) | (classes.sep & !before);
        after_sep = classes.sep >> 63 != 0;
        let mut odd = classes.odd;
        while odd != 0 {
            odd_at.push(base + odd.trailing_zeros() as usize);
            odd &= odd - 1;
        }
        let mut events = boundaries | classes.lf;
        while events != 0 {
            let bit = events & events.wrapping_neg();
            events ^= bit;
            let at = base + bit.trailing_zeros() as usize;
            bounds[count & 15] = at;
            count += usize::from(boundaries & bit != 0);
            if classes.lf & bit != 0 {
                line_no += 1;
                let odd = odd_at.get(odd_next).is_some_and(|&o| o < at);
                if odd {
                    while odd_at.get(odd_next).is_some_and(|&o| o < at) {
                        odd_next += 1;
                    }
                }
                if !finish(line_start, at, &bounds, count, odd, line_no, writer)? {
                    return Ok(line_no);
                }
                line_start = at + 1;
                count = 0;
            }
        }
        base += 64;
    }
    if line_start < chunk.len() {
        // The last line of the input, without its LF: a token running to the end is closed
        // here when the chunk filled its last block exactly.
        if !after_sep && chunk.len().is_multiple_of(64) {
            bounds[count & 15] = chunk.len();
            count += 1;
        }
        line_no += 1;
        let odd = odd_at.len() > odd_next;
        finish(
            line_start,
            chunk.len(),
            &bounds,
            count,
            odd,
            line_no,
            writer,
        )?;
    }
    Ok(line_no)
}
