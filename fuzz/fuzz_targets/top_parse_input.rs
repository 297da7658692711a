//! Any bytes into top-parse's input reader: text in any layout, metrics-API JSON, or garbage.
//! It must return rows or an error, never panic; every row it returns must be well formed.
//!
//! Differential: the same input is also read as the CLI reads it (CSV formatted in chunks, where
//! kubectl's own pod rows take the fast path), and both must give the same CSV or the same error.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use meshbench_formats::usage::{Fragment, UsageFormat, UsageKind, UsageWriter};
use top_parse::{Layout, ParseOptions, Row, RowSink, parse_input};

/// CSV of one kind, formatted in chunks like the CLI's output.
struct Chunked {
    writer: Option<UsageWriter<Vec<u8>>>,
    threads: usize,
}

impl Chunked {
    fn writer(&mut self, kind: UsageKind) -> &mut UsageWriter<Vec<u8>> {
        self.writer
            .get_or_insert_with(|| UsageWriter::new(Vec::new(), UsageFormat::Csv, kind))
    }
}

impl RowSink for Chunked {
    fn row(&mut self, row: Row<'_>) -> top_parse::Result<()> {
        write(self.writer(row.kind()), &row);
        Ok(())
    }

    fn parallel(&self) -> Option<(usize, UsageFormat)> {
        Some((self.threads, UsageFormat::Csv))
    }

    fn fragment(&mut self, kind: UsageKind, fragment: &Fragment) -> top_parse::Result<()> {
        self.writer(kind).append(fragment).unwrap();
        Ok(())
    }
}

fn write(writer: &mut UsageWriter<Vec<u8>>, row: &Row<'_>) {
    match row {
        Row::Pod(p) => writer.write_pod(p).unwrap(),
        Row::Node(n) => writer.write_node(n).unwrap(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let layout = match flags % 6 {
        0 => None,
        1 => Some(Layout::Pods),
        2 => Some(Layout::PodsAllNamespaces),
        3 => Some(Layout::Containers),
        4 => Some(Layout::ContainersAllNamespaces),
        _ => Some(Layout::Nodes),
    };
    let opts = ParseOptions {
        layout,
        skip_bad_lines: flags & 0x80 != 0,
        ..ParseOptions::default()
    };
    let mut kind = None;
    let mut rows = Vec::new();
    let by_row = parse_input("fuzz", Cursor::new(input), &opts, &mut |row: Row<'_>| {
        match &row {
            Row::Pod(p) => assert!(!p.pod.is_empty() && p.cpu_millicores.nanocores() >= 0),
            Row::Node(n) => assert!(!n.node.is_empty()),
        }
        let k = kind.get_or_insert(row.kind());
        let mut w = UsageWriter::new(Vec::new(), UsageFormat::Csv, *k);
        write(&mut w, &row);
        rows.push(w.finish().unwrap());
        Ok(())
    });
    let mut chunked = Chunked {
        writer: None,
        threads: 1 + usize::from(flags & 0x40 != 0),
    };
    let in_chunks = parse_input("fuzz", Cursor::new(input), &opts, &mut chunked);
    match (&by_row, &in_chunks) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("one by one: {a:?}; in chunks: {b:?}"),
    }
    if by_row.is_err() {
        return;
    }
    // Each one-row document is the header and the row.
    let csv = chunked.writer.map_or_else(Vec::new, |w| w.finish().unwrap());
    let mut expected: Vec<u8> = Vec::new();
    for (i, doc) in rows.iter().enumerate() {
        let body = doc.iter().position(|&b| b == b'\n').map_or(0, |n| n + 1);
        if i == 0 {
            expected.extend_from_slice(&doc[..body]);
        }
        expected.extend_from_slice(&doc[body..]);
    }
    if !rows.is_empty() {
        assert_eq!(String::from_utf8_lossy(&csv), String::from_utf8_lossy(&expected));
    }
});
