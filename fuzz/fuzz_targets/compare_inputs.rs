//! compare's parsers of text from the command line and from files: `--fail-if` conditions and
//! mesh profile files. Neither may panic, and a condition that reads reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(condition) = text.parse::<compare::gate::Condition>() {
        let again = condition.to_string().parse::<compare::gate::Condition>();
        assert_eq!(again.as_ref(), Ok(&condition), "{text:?}");
    }
    let _ = compare::metrics::parse_profiles(text);
});
