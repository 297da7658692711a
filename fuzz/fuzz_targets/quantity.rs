//! Any string as a Kubernetes quantity: an error or a value, never a panic; a value printed
//! and parsed again is the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshbench_formats::Quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = Quantity::parse(text) {
        let printed = q.to_string();
        assert_eq!(Quantity::parse(&printed), Ok(q), "{text:?} printed as {printed:?}");
        let _ = (q.milli_value_ceil(), q.value_ceil());
    }
});
