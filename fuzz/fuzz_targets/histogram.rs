//! Any text as the base64 HdrHistogram of a summary: an error or a histogram, never a panic;
//! a histogram that decodes encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshbench_formats::trafficgen::{decode_histogram, encode_histogram};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = decode_histogram(text) {
        let again = decode_histogram(&encode_histogram(&h).expect("encodes")).expect("decodes");
        assert_eq!(again, h);
    }
});
