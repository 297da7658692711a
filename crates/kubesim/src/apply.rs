//! Server-side apply with field ownership, and the merge patches.
//!
//! Ownership is tracked per field manager as a set of leaf paths, kept in the object's
//! `metadata.managedFields` in the real `FieldsV1` form (`{"f:spec":{"f:replicas":{}}}`), so a
//! client reading the object sees what a real API server would show. One simplification, stated
//! in docs/kubesim.md: lists are owned as a whole (atomic), where the real structured-merge-diff
//! merges lists such as `containers` by key.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A path of object keys from the root.
pub type FieldPath = Vec<String>;

/// Fields an apply or update does not own: identity and server-set metadata, and `status`
/// (owned through the status subresource).
fn ignored(path: &[String]) -> bool {
    match path {
        [first] if first == "apiVersion" || first == "kind" => true,
        [first, ..] if first == "status" => true,
        [first, second, ..] if first == "metadata" => matches!(
            second.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "selfLink"
                | "deletionTimestamp"
        ),
        _ => false,
    }
}

/// The leaf paths of a configuration: scalars, lists and empty objects.
pub fn leaf_paths(value: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let mut path = Vec::new();
    collect(value, &mut path, &mut out);
    out
}

fn collect(value: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(key.clone());
                if !ignored(path) {
                    collect(child, path, out);
                }
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

pub fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn set_path(value: &mut Value, path: &[String], new: Value) {
    let Some((first, rest)) = path.split_first() else {
        *value = new;
        return;
    };
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    if let Value::Object(map) = value {
        set_path(map.entry(first.clone()).or_insert(Value::Null), rest, new);
    }
}

/// Removes a leaf, then any parent objects left empty.
fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = parents
        .iter()
        .try_fold(&mut *value, |v, key| v.get_mut(key))
    else {
        return;
    };
    if let Some(map) = parent.as_object_mut() {
        map.remove(last);
        if map.is_empty() && !parents.is_empty() {
            remove_path(value, parents);
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub manager: String,
    /// "Apply" or "Update".
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: BTreeSet<FieldPath>,
}

/// Reads `metadata.managedFields` back into path sets.
pub fn managers(object: &Value) -> Vec<Manager> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let mut fields = BTreeSet::new();
            from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Some(Manager {
                manager: e["manager"].as_str()?.to_owned(),
                operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: e["time"].as_str().unwrap_or_default().to_owned(),
                subresource: e["subresource"].as_str().map(str::to_owned),
                fields,
            })
        })
        .collect()
}

fn from_fields_v1(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(map) = node.as_object() else {
        return;
    };
    let children: Vec<(&String, &Value)> =
        map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if (children.is_empty() || map.contains_key(".")) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (key, child) in children {
        path.push(key[2..].to_owned());
        from_fields_v1(child, path, out);
        path.pop();
    }
}

fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let prefixed: Vec<String> = path.iter().map(|k| format!("f:{k}")).collect();
        let mut node = &mut root;
        for key in &prefixed {
            let Some(map) = node.as_object_mut() else {
                break;
            };
            node = map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// Writes path sets into `metadata.managedFields`, dropping managers that own nothing.
pub fn set_managers(object: &mut Value, managers: &[Manager]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&m.fields),
            });
            if let Some(sub) = &m.subresource {
                e["subresource"] = sub.clone().into();
            }
            e
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".to_owned(), Value::Array(entries));
    }
}

/// `.spec.replicas`, as conflicts name a field.
pub fn display_path(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Applies `config` for `manager` over `current` (None: the object is new). On conflict without
/// `force`, returns the (manager, field) pairs.
pub fn server_side_apply(
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
) -> Result<Value, Vec<(String, String)>> {
    let applied = leaf_paths(config);
    let mut result = current.cloned().unwrap_or_else(|| {
        json!({"apiVersion": config["apiVersion"], "kind": config["kind"],
            "metadata": {"name": config["metadata"]["name"], "namespace": config["metadata"]["namespace"]}})
    });
    let mut owners = current.map(managers).unwrap_or_default();

    let mut conflicts = Vec::new();
    for other in owners
        .iter_mut()
        .filter(|m| !(m.manager == manager && m.operation == "Apply"))
    {
        let clashing: Vec<FieldPath> = other
            .fields
            .iter()
            .filter(|owned| {
                applied
                    .iter()
                    .any(|p| overlaps(p, owned) && get_path(&result, p) != get_path(config, p))
            })
            .cloned()
            .collect();
        if clashing.is_empty() {
            continue;
        }
        if force {
            for path in &clashing {
                other.fields.remove(path);
            }
        } else {
            conflicts.extend(
                clashing
                    .iter()
                    .map(|p| (other.manager.clone(), display_path(p))),
            );
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let previous: BTreeSet<FieldPath> = owners
        .iter()
        .find(|m| m.manager == manager && m.operation == "Apply")
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    for dropped in previous.difference(&applied) {
        let owned_elsewhere = owners.iter().any(|m| {
            !(m.manager == manager && m.operation == "Apply")
                && m.fields.iter().any(|f| overlaps(f, dropped))
        });
        if !owned_elsewhere {
            remove_path(&mut result, dropped);
        }
    }
    for path in &applied {
        if let Some(value) = get_path(config, path) {
            set_path(&mut result, path, value.clone());
        }
    }
    owners.retain(|m| !(m.manager == manager && m.operation == "Apply"));
    owners.push(Manager {
        manager: manager.to_owned(),
        operation: "Apply".to_owned(),
        api_version: api_version.to_owned(),
        time: now.to_owned(),
        subresource: None,
        fields: applied,
    });
    set_managers(&mut result, &owners);
    Ok(result)
}

/// Records that `manager` changed `before` into `after` by an update (create, replace or
/// patch): it takes the changed fields from whoever owned them; updates never conflict.
pub fn record_update(
    before: Option<&Value>,
    after: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
) {
    let new_paths = leaf_paths(after);
    let changed: BTreeSet<FieldPath> = match before {
        None => new_paths,
        Some(old) => {
            let old_paths = leaf_paths(old);
            new_paths
                .union(&old_paths)
                .filter(|p| get_path(old, p) != get_path(after, p))
                .cloned()
                .collect()
        }
    };
    let mut owners = before.map(managers).unwrap_or_default();
    if changed.is_empty() {
        set_managers(after, &owners);
        return;
    }
    for other in &mut owners {
        other
            .fields
            .retain(|f| !changed.iter().any(|c| overlaps(c, f)));
    }
    let present: BTreeSet<FieldPath> = changed
        .into_iter()
        .filter(|p| get_path(after, p).is_some())
        .collect();
    match owners
        .iter_mut()
        .find(|m| m.manager == manager && m.operation == "Update")
    {
        Some(m) => {
            m.fields.extend(present);
            m.time = now.to_owned();
        }
        None => owners.push(Manager {
            manager: manager.to_owned(),
            operation: "Update".to_owned(),
            api_version: api_version.to_owned(),
            time: now.to_owned(),
            subresource: None,
            fields: present,
        }),
    }
    set_managers(after, &owners);
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(entries) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(map) = target.as_object_mut() {
        for (key, value) in entries {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A strategic merge patch, approximated: a merge patch in which lists of named objects (such
/// as `containers`, `env`, `ports` with names) merge by `name` instead of being replaced.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(map), Value::Object(entries)) => {
            for (key, value) in entries {
                if key.starts_with("$") {
                    continue;
                }
                if value.is_null() {
                    map.remove(key);
                } else {
                    strategic_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(items), Value::Array(patches)) if named(items) && named(patches) => {
            for p in patches {
                match items.iter_mut().find(|i| i["name"] == p["name"]) {
                    Some(item) => strategic_merge_patch(item, p),
                    None => items.push(p.clone()),
                }
            }
        }
        (target, patch) => merge_patch(target, patch),
    }
}

fn named(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i["name"].is_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-26T00:00:00Z";

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn apply_records_fields_v1() {
        let obj =
            server_side_apply(None, &deploy(2, "nginx"), "kubectl", false, "apps/v1", NOW).unwrap();
        let mf = &obj["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl");
        assert_eq!(mf["operation"], "Apply");
        assert_eq!(mf["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        assert_eq!(mf["fieldsV1"]["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert!(mf["fieldsV1"]["f:metadata"].get("f:name").is_none());
        let back = managers(&obj);
        assert!(
            back[0]
                .fields
                .contains(&vec!["spec".to_owned(), "replicas".to_owned()])
        );
    }

    #[test]
    fn another_manager_conflicts_unless_forced() {
        let obj =
            server_side_apply(None, &deploy(2, "nginx"), "kubectl", false, "apps/v1", NOW).unwrap();
        // Same value: shared ownership, no conflict.
        assert!(
            server_side_apply(
                Some(&obj),
                &deploy(2, "nginx"),
                "other",
                false,
                "apps/v1",
                NOW
            )
            .is_ok()
        );
        let err = server_side_apply(
            Some(&obj),
            &deploy(3, "nginx"),
            "other",
            false,
            "apps/v1",
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![("kubectl".to_owned(), ".spec.replicas".to_owned())]
        );
        let forced = server_side_apply(
            Some(&obj),
            &deploy(3, "nginx"),
            "other",
            true,
            "apps/v1",
            NOW,
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let owners = managers(&forced);
        let kubectl = owners.iter().find(|m| m.manager == "kubectl").unwrap();
        assert!(
            !kubectl
                .fields
                .contains(&vec!["spec".to_owned(), "replicas".to_owned()])
        );
    }

    #[test]
    fn reapplying_without_a_field_removes_it() {
        let obj =
            server_side_apply(None, &deploy(2, "nginx"), "kubectl", false, "apps/v1", NOW).unwrap();
        let mut less = deploy(2, "nginx");
        less["metadata"].as_object_mut().unwrap().remove("labels");
        let after = server_side_apply(Some(&obj), &less, "kubectl", false, "apps/v1", NOW).unwrap();
        assert!(after["metadata"].get("labels").is_none());
        assert_eq!(after["metadata"]["name"], "web");
    }

    #[test]
    fn updates_take_ownership_without_conflict() {
        let obj =
            server_side_apply(None, &deploy(2, "nginx"), "kubectl", false, "apps/v1", NOW).unwrap();
        let mut after = obj.clone();
        after["spec"]["replicas"] = 5.into();
        record_update(Some(&obj), &mut after, "kubectl-scale", "apps/v1", NOW);
        let err = server_side_apply(
            Some(&after),
            &deploy(2, "nginx"),
            "kubectl",
            false,
            "apps/v1",
            NOW,
        )
        .unwrap_err();
        assert_eq!(err[0].0, "kubectl-scale");
    }

    #[test]
    fn merge_patches() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [{"name": "x", "v": 1}]});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}}));
        assert_eq!(
            t,
            json!({"b": {"c": 5, "d": 3}, "l": [{"name": "x", "v": 1}]})
        );
        strategic_merge_patch(
            &mut t,
            &json!({"l": [{"name": "x", "w": 2}, {"name": "y"}]}),
        );
        assert_eq!(
            t["l"],
            json!([{"name": "x", "v": 1, "w": 2}, {"name": "y"}])
        );
    }
}
