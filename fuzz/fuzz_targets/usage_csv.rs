//! Any bytes as a top-parse CSV (what compare reads): rows or an error, never a panic; rows
//! that read are written and read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshbench_formats::usage::{UsageFormat, UsageKind, UsageWriter, read_node_csv, read_pod_csv};

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = read_pod_csv(data) {
        let mut w = UsageWriter::new(Vec::new(), UsageFormat::Csv, UsageKind::Pods);
        for row in &rows {
            w.write_pod(row).expect("writes to memory");
        }
        let again = read_pod_csv(w.finish().expect("flushes").as_slice()).expect("reads back");
        assert_eq!(again, rows);
    }
    let _ = read_node_csv(data);
});
