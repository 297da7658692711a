//! Schema identifiers and the version rules every consumer applies.
//!
//! Every JSON document meshbench writes carries `"schema": "meshbench/<document>/v<MAJOR>"`,
//! optionally `v<MAJOR>.<MINOR>`. A consumer accepts any minor version of a major it knows
//! (minor versions only add fields, which it ignores) and rejects any other major version with an
//! error naming what it found and what it supports.

use std::fmt;

/// A document type and the major version this build reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub document: &'static str,
    pub major: u32,
    /// The full identifier written by this build, e.g. `meshbench/pod-usage/v1`.
    pub id: &'static str,
}

pub const POD_USAGE: Schema = Schema {
    document: "pod-usage",
    major: 1,
    id: "meshbench/pod-usage/v1",
};
pub const NODE_USAGE: Schema = Schema {
    document: "node-usage",
    major: 1,
    id: "meshbench/node-usage/v1",
};

/// kubesim's scenario file (its layout is kubesim's; docs/kubesim.md).
pub const KUBESIM_SCENARIO: Schema = Schema {
    document: "kubesim-scenario",
    major: 1,
    id: "meshbench/kubesim-scenario/v1",
};

/// Why a `schema` value is not one this build reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {found:?} is not a meshbench schema (expected {expected:?})")]
    NotMeshbench {
        found: String,
        expected: &'static str,
    },
    #[error("schema {found:?} is a {document:?} document, expected {expected:?}")]
    OtherDocument {
        found: String,
        document: String,
        expected: &'static str,
    },
    #[error(
        "schema {found:?} has major version {major}, this build reads only v{supported} \
         ({expected}); use a meshbench release that supports v{major}"
    )]
    UnsupportedMajor {
        found: String,
        major: u32,
        supported: u32,
        expected: &'static str,
    },
}

/// A parsed `meshbench/<document>/v<major>[.<minor>]` identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaId<'a> {
    pub document: &'a str,
    pub major: u32,
    pub minor: u32,
}

impl<'a> SchemaId<'a> {
    pub fn parse(s: &'a str) -> Option<SchemaId<'a>> {
        let rest = s.strip_prefix("meshbench/")?;
        let (document, version) = rest.rsplit_once('/')?;
        let version = version.strip_prefix('v')?;
        let (major, minor) = match version.split_once('.') {
            Some((major, minor)) => (major, minor),
            None => (version, "0"),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if document.is_empty() || !digits(major) || !digits(minor) {
            return None;
        }
        Some(SchemaId {
            document,
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl Schema {
    /// Checks a document's `schema` value against this schema.
    pub fn check(&self, found: &str) -> Result<(), SchemaError> {
        let id = SchemaId::parse(found).ok_or_else(|| SchemaError::NotMeshbench {
            found: found.to_owned(),
            expected: self.id,
        })?;
        if id.document != self.document {
            return Err(SchemaError::OtherDocument {
                found: found.to_owned(),
                document: id.document.to_owned(),
                expected: self.id,
            });
        }
        if id.major != self.major {
            return Err(SchemaError::UnsupportedMajor {
                found: found.to_owned(),
                major: id.major,
                supported: self.major,
                expected: self.id,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_own_and_newer_minor_versions() {
        assert_eq!(POD_USAGE.check("meshbench/pod-usage/v1"), Ok(()));
        assert_eq!(POD_USAGE.check("meshbench/pod-usage/v1.7"), Ok(()));
    }

    #[test]
    fn rejects_other_majors_documents_and_garbage() {
        assert!(matches!(
            POD_USAGE.check("meshbench/pod-usage/v2"),
            Err(SchemaError::UnsupportedMajor { major: 2, .. })
        ));
        assert!(matches!(
            POD_USAGE.check("meshbench/node-usage/v1"),
            Err(SchemaError::OtherDocument { .. })
        ));
        for bad in [
            "",
            "pod-usage/v1",
            "meshbench/pod-usage/1",
            "meshbench/pod-usage/v1.",
            "meshbench//v1",
        ] {
            assert!(
                matches!(POD_USAGE.check(bad), Err(SchemaError::NotMeshbench { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_says_what_is_supported() {
        let msg = NODE_USAGE
            .check("meshbench/node-usage/v3")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("v3") && msg.contains("meshbench/node-usage/v1"),
            "{msg}"
        );
    }
}
