//! Any bytes as a trafficgen summary (what `trafficgen merge` and `compare` read): an error or a
//! summary, never a panic; a summary that reads merges with itself, unless its counts doubled are
//! past what a summary holds, which is the merge's error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshbench_formats::trafficgen::{MergeError, merge};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(summary) = trafficgen::read_summary("fuzz", text) {
        match merge(&[summary.clone(), summary]) {
            Ok(merged) => assert!(merged.requests.sent % 2 == 0),
            Err(MergeError::TooLarge { .. }) => {}
            Err(e) => panic!("a summary that reads does not merge with itself: {e}"),
        }
    }
});
