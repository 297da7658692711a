//! Any bytes into top-parse's input reader: text in any layout, metrics-API JSON, or garbage.
//! It must return rows or an error, never panic; every row it returns must be well formed.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use top_parse::{Layout, ParseOptions, Row, parse_input};

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
    let _ = parse_input("fuzz", Cursor::new(input), &opts, &mut |row: Row<'_>| {
        match row {
            Row::Pod(p) => assert!(!p.pod.is_empty() && p.cpu_millicores.nanocores() >= 0),
            Row::Node(n) => assert!(!n.node.is_empty()),
        }
        Ok(())
    });
});
