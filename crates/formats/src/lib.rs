//! The contract between meshbench tools: every file one tool writes and another reads is defined
//! here, and only here, as serde types with a schema version (see `docs/formats.md`).
//!
//! - [`schema`]: schema identifiers and the rules for minor and major versions;
//! - [`quantity`]: exact Kubernetes quantities (`250m`, `1.5Gi`, `329087452n`);
//! - [`usage`]: pod and node resource-usage rows (`top-parse` → `compare`);
//! - [`trafficgen`]: load-generator summaries with their histograms (`trafficgen` → `compare`);
//! - [`mesh_install`]: install timings (`mesh-install` → `compare`);
//! - [`comparison`]: `compare`'s table.
//!
//! This crate depends on serde-family crates and, for the histograms inside trafficgen
//! summaries, on hdrhistogram: no kube, no hyper, no tokio, so consumers stay small and quick to
//! build.

pub mod comparison;
pub mod mesh_install;
pub mod quantity;
pub mod schema;
pub mod trafficgen;
pub mod usage;

pub use quantity::{Quantity, QuantityError};
pub use schema::{Schema, SchemaError};

/// Where a JSON document departs from the shape of its type, and how: the field's path (`None`
/// at the top level), its line and column, and serde's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}line {line}, column {column}: {message}", .path.as_ref().map(|p| format!("at {p:?}, ")).unwrap_or_default())]
pub struct ShapeError {
    pub path: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads a document of type `T` from JSON text, naming the field and the line of what does
/// not fit (`at "connections", line 5, column 27: invalid type: string "fifty", expected u32`)
/// where `serde_json::from_value` would give the message alone.
pub fn from_json_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ShapeError> {
    let mut json = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ShapeError {
            path: (path != ".").then_some(path),
            line: inner.line(),
            column: inner.column(),
            message: json_message(&inner),
        }
    })?;
    json.end().map_err(|e| ShapeError {
        path: None,
        line: e.line(),
        column: e.column(),
        message: "more after the end of the document".to_owned(),
    })?;
    Ok(value)
}

/// serde_json's message without the position it ends with, for errors that give the line and
/// column on their own.
pub fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    full.strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&full)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[test]
    fn shape_errors_name_the_field_and_the_line() {
        let e =
            from_json_text::<Doc>("{\n  \"name\": \"x\",\n  \"inner\": {\"count\": \"five\"}\n}")
                .unwrap_err();
        assert_eq!(e.path.as_deref(), Some("inner.count"));
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "at \"inner.count\", line 3, column 27: invalid type: string \"five\", expected u32"
        );
        let e = from_json_text::<Doc>("{\"name\": \"x\"}").unwrap_err();
        assert_eq!(e.to_string(), "line 1, column 13: missing field `inner`");
        let e =
            from_json_text::<Doc>("{\"name\": \"x\", \"inner\": {\"count\": 1}} {}").unwrap_err();
        assert_eq!(e.message, "more after the end of the document");
        assert!(from_json_text::<Doc>("{\"name\": \"x\", \"inner\": {\"count\": 1}}\n").is_ok());
    }
}
