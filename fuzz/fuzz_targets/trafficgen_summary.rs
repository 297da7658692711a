//! Any bytes as a trafficgen summary (what `trafficgen merge` and `compare` read): an error or a
//! summary, never a panic; a summary that reads merges with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(summary) = trafficgen::read_summary("fuzz", text) {
        let merged = meshbench_formats::trafficgen::merge(&[summary.clone(), summary])
            .expect("a summary that reads merges with itself");
        assert!(merged.requests.sent % 2 == 0);
    }
});
