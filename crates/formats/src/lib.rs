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
