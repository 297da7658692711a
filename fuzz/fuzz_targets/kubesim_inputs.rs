//! kubesim's parsers of untrusted text: scenario files, manifests, label and field selectors.
//! None may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = kubesim::Scenario::parse(text);
    let _ = kubesim::scenario::parse_manifests(text);
    if let Ok(selector) = kubesim::selector::LabelSelector::parse(text) {
        let _ = selector.matches(&serde_json::json!({"metadata": {"labels": {"app": "web"}}}));
    }
    for kind in ["Pod", "Node", "Deployment"] {
        if let Ok(selector) = kubesim::selector::FieldSelector::parse(text, kind) {
            let _ = selector.matches(&serde_json::json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}}));
        }
    }
});
