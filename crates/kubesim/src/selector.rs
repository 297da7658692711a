//! Label and field selectors, in the API server's query syntax.

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let bad = |why: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {why} in label selector {text:?}"
            ))
        };
        let mut requirements = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            if let Some(key) = term.strip_prefix('!') {
                requirements.push(Requirement::DoesNotExist(
                    check_key(key.trim()).map_err(|e| bad(&e))?,
                ));
            } else if let Some((key, rest)) = split_word(term, " notin ") {
                requirements.push(Requirement::NotIn(
                    check_key(key).map_err(|e| bad(&e))?,
                    parse_set(rest).ok_or_else(|| bad("expected a set (a,b)"))?,
                ));
            } else if let Some((key, rest)) = split_word(term, " in ") {
                requirements.push(Requirement::In(
                    check_key(key).map_err(|e| bad(&e))?,
                    parse_set(rest).ok_or_else(|| bad("expected a set (a,b)"))?,
                ));
            } else if let Some((key, value)) = term.split_once("!=") {
                requirements.push(Requirement::NotEquals(
                    check_key(key.trim()).map_err(|e| bad(&e))?,
                    value.trim().to_owned(),
                ));
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                requirements.push(Requirement::Equals(
                    check_key(key.trim()).map_err(|e| bad(&e))?,
                    value.trim().to_owned(),
                ));
            } else {
                requirements.push(Requirement::Exists(check_key(term).map_err(|e| bad(&e))?));
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|v| set.iter().any(|s| s == v)),
            Requirement::NotIn(k, set) => get(k).is_none_or(|v| set.iter().all(|s| s != v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// A label map as selector text, `k1=v1,k2=v2` ("" for none): how `Scale.status.selector` and
/// kubectl's NODE SELECTOR column print one.
pub fn labels_text(labels: &Value) -> String {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Whether a `matchLabels`/`matchExpressions` selector object (as in a Deployment's
/// `spec.selector`) matches a set of labels.
pub fn label_selector_object_matches(selector: &Value, labels: &Value) -> bool {
    let get = |key: &str| labels.get(key).and_then(Value::as_str);
    let labels_ok = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let expressions_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && expressions_ok
}

/// A parsed `fieldSelector`: `metadata.name=x,status.phase!=Running`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (JSON pointer, wanted value, equal?)
    terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses a selector for a kind; only the fields the real API server supports for that kind
    /// are accepted (`metadata.name` and `metadata.namespace` everywhere).
    pub fn parse(text: &str, kind: &str) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            let supported = matches!(field, "metadata.name" | "metadata.namespace")
                || match kind {
                    "Pod" => matches!(
                        field,
                        "spec.nodeName"
                            | "spec.restartPolicy"
                            | "spec.schedulerName"
                            | "spec.serviceAccountName"
                            | "spec.hostNetwork"
                            | "status.phase"
                            | "status.podIP"
                            | "status.nominatedNodeName"
                    ),
                    "Node" => field == "spec.unschedulable",
                    "Event" => {
                        field.starts_with("involvedObject.")
                            || matches!(field, "reason" | "type" | "source")
                    }
                    "Secret" => field == "type",
                    "Namespace" => field == "status.phase",
                    "ReplicaSet" | "Job" => {
                        field == "status.replicas" || field == "status.successful"
                    }
                    _ => false,
                };
            if !supported {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            let pointer = format!("/{}", field.replace('.', "/"));
            terms.push((pointer, value.trim().to_owned(), equal));
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(pointer, wanted, equal)| {
            let actual = match object.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (actual == *wanted) == *equal
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name when the selector pins `metadata.name` (as `kubectl wait` and `rollout status` do).
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(p, _, eq)| p == "/metadata/name" && *eq)
            .map(|(_, v, _)| v.as_str())
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn split_word<'a>(term: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    term.split_once(word).map(|(k, r)| (k.trim(), r.trim()))
}

fn parse_set(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn check_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_owned())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selector_forms() {
        let p = pod(json!({"app": "web", "env": "prod"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("env in (prod, dev)", true),
            ("env notin (prod)", false),
            ("app,env", true),
            ("!legacy", true),
            ("!app", false),
            ("app=web,env in (dev)", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&p),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in prod").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selectors_are_checked_per_kind() {
        let p = pod(json!({}));
        let s = FieldSelector::parse("metadata.name=p,status.phase!=Pending", "Pod").unwrap();
        assert!(s.matches(&p));
        assert_eq!(s.pinned_name(), Some("p"));
        let e = FieldSelector::parse("spec.replicas=3", "Deployment").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("field label not supported"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,64}") {
            let _ = LabelSelector::parse(&text);
            let _ = FieldSelector::parse(&text, "Pod");
        }

        #[test]
        fn equality_and_sets_agree_with_the_labels(
            labels in proptest::collection::btree_map("[a-c]", "[x-z]", 0..3),
            key in "[a-c]",
            value in "[x-z]",
        ) {
            let object = json!({"metadata": {"labels": labels}});
            let has = labels.get(&key) == Some(&value);
            proptest::prop_assert_eq!(LabelSelector::parse(&format!("{key}={value}")).unwrap().matches(&object), has);
            proptest::prop_assert_eq!(LabelSelector::parse(&format!("{key}!={value}")).unwrap().matches(&object), !has);
            proptest::prop_assert_eq!(LabelSelector::parse(&format!("{key} in ({value}, q)")).unwrap().matches(&object), has);
            proptest::prop_assert_eq!(LabelSelector::parse(&format!("!{key}")).unwrap().matches(&object), !labels.contains_key(&key));
        }
    }

    #[test]
    fn selector_objects() {
        let labels = json!({"app": "web"});
        assert!(label_selector_object_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &labels
        ));
        assert!(!label_selector_object_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
            &labels
        ));
    }
}
