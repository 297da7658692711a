//! API errors as the API server reports them: a `Status` object with a reason and an HTTP code.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// A failed request, rendered as a `meta/v1` `Status` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Details>>,
}

/// `details` of a `Status`: which object, and for conflicts and invalid objects, the causes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Details {
    pub name: String,
    pub group: String,
    pub kind: String,
    /// (type, message, field)
    pub causes: Vec<(String, String, String)>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> ApiError {
        self.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            causes: Vec::new(),
        }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// A URL no resource is served at.
    pub fn no_resource() -> ApiError {
        ApiError::not_served("the server could not find the requested resource")
    }

    /// A URL kubesim serves nothing at, with the reason.
    pub fn not_served(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "NotFound", message)
    }

    /// `pods "x" not found`.
    pub fn not_found(qualified: &str, group: &str, plural: &str, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(name, group, plural)
    }

    pub fn already_exists(qualified: &str, group: &str, plural: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(name, group, plural)
    }

    /// An update carrying a resourceVersion that is no longer current.
    pub fn stale(qualified: &str, group: &str, plural: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        )
        .with_details(name, group, plural)
    }

    /// A server-side apply that would take fields another manager owns.
    pub fn apply_conflict(
        group: &str,
        plural: &str,
        name: &str,
        conflicts: &[(String, String)],
    ) -> ApiError {
        let mut message = if conflicts.len() == 1 {
            "Apply failed with 1 conflict: ".to_owned()
        } else {
            format!("Apply failed with {} conflicts: ", conflicts.len())
        };
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
            .collect();
        message.push_str(&listed.join("\n"));
        let mut error = ApiError::new(409, "Conflict", message).with_details(name, group, plural);
        if let Some(details) = &mut error.details {
            details.causes = conflicts
                .iter()
                .map(|(manager, field)| {
                    (
                        "FieldManagerConflict".to_owned(),
                        format!("conflict with \"{manager}\""),
                        field.clone(),
                    )
                })
                .collect();
        }
        error
    }

    /// A watch or list from a resourceVersion older than the kept history.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn invalid(
        qualified: &str,
        group: &str,
        kind: &str,
        name: &str,
        field: &str,
        why: &str,
    ) -> ApiError {
        let mut error = ApiError::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {field}: {why}"),
        )
        .with_details(name, group, kind);
        if let Some(details) = &mut error.details {
            details.causes = vec![(
                "FieldValueInvalid".to_owned(),
                why.to_owned(),
                field.to_owned(),
            )];
        }
        error
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_owned()),
            status: Some("Failure".to_owned()),
            details: self.details.as_ref().map(|d| StatusDetails {
                name: Some(d.name.clone()).filter(|s| !s.is_empty()),
                group: Some(d.group.clone()).filter(|s| !s.is_empty()),
                kind: Some(d.kind.clone()).filter(|s| !s.is_empty()),
                causes: Some(
                    d.causes
                        .iter()
                        .map(|(t, m, f)| StatusCause {
                            reason: Some(t.clone()),
                            message: Some(m.clone()),
                            field: Some(f.clone()),
                        })
                        .collect(),
                )
                .filter(|c: &Vec<StatusCause>| !c.is_empty()),
                ..StatusDetails::default()
            }),
            metadata: Default::default(),
        }
    }

    /// The JSON body, with `kind` and `apiVersion` set.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self.to_status()).unwrap_or_default();
        value["kind"] = "Status".into();
        value["apiVersion"] = "v1".into();
        value
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
