//! Discovery (`/version`, `/api`, `/apis`, group versions) and the OpenAPI v3 documents kubectl
//! reads to learn that the server validates fields itself.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceType};

fn with_kind(value: impl serde::Serialize, kind: &str, api_version: Option<&str>) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or_default();
    v["kind"] = kind.into();
    if let Some(av) = api_version {
        v["apiVersion"] = av.into();
    }
    v
}

pub(crate) fn version(kubernetes_version: &str) -> Value {
    let numbers: Vec<&str> = kubernetes_version
        .trim_start_matches('v')
        .split('.')
        .collect();
    let info = Info {
        major: numbers.first().copied().unwrap_or("1").to_owned(),
        minor: numbers.get(1).copied().unwrap_or("32").to_owned(),
        git_version: kubernetes_version.to_owned(),
        git_commit: "kubesim".to_owned(),
        git_tree_state: "clean".to_owned(),
        build_date: "2026-01-01T00:00:00Z".to_owned(),
        go_version: "go1.23.0".to_owned(),
        compiler: "gc".to_owned(),
        platform: "linux/amd64".to_owned(),
        ..Info::default()
    };
    serde_json::to_value(info).unwrap_or_default()
}

pub(crate) fn core_versions(address: &str) -> Value {
    with_kind(
        APIVersions {
            versions: vec!["v1".to_owned()],
            server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                client_cidr: "0.0.0.0/0".to_owned(),
                server_address: address.to_owned(),
            }],
        },
        "APIVersions",
        None,
    )
}

fn group(name: &str, versions: &[String]) -> APIGroup {
    let gv = |v: &String| GroupVersionForDiscovery {
        group_version: format!("{name}/{v}"),
        version: v.clone(),
    };
    APIGroup {
        name: name.to_owned(),
        preferred_version: versions.first().map(gv),
        versions: versions.iter().map(gv).collect(),
        server_address_by_client_cidrs: None,
    }
}

pub(crate) fn group_list(registry: &Registry) -> Value {
    let groups = registry
        .groups()
        .iter()
        .map(|(name, versions)| group(name, versions))
        .collect();
    with_kind(APIGroupList { groups }, "APIGroupList", Some("v1"))
}

pub(crate) fn api_group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = registry.groups();
    let (_, versions) = groups.iter().find(|(g, _)| g == name)?;
    Some(with_kind(group(name, versions), "APIGroup", Some("v1")))
}

pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for t in registry.in_group_version(group, version) {
        resources.push(APIResource {
            name: t.plural.clone(),
            singular_name: t.singular.clone(),
            namespaced: t.namespaced,
            kind: t.kind.clone(),
            verbs: t.verbs(),
            short_names: Some(t.short_names.clone()).filter(|s| !s.is_empty()),
            categories: matches!(
                t.kind.as_str(),
                "Pod"
                    | "Service"
                    | "Deployment"
                    | "ReplicaSet"
                    | "DaemonSet"
                    | "StatefulSet"
                    | "Job"
                    | "CronJob"
            )
            .then(|| vec!["all".to_owned()]),
            ..APIResource::default()
        });
        if crate::api::scalable(t) {
            resources.push(APIResource {
                name: format!("{}/scale", t.plural),
                namespaced: t.namespaced,
                group: Some("autoscaling".to_owned()),
                version: Some("v1".to_owned()),
                kind: "Scale".to_owned(),
                verbs: vec!["get".to_owned(), "patch".to_owned(), "update".to_owned()],
                ..APIResource::default()
            });
        }
        if t.status {
            resources.push(APIResource {
                name: format!("{}/status", t.plural),
                namespaced: t.namespaced,
                kind: t.kind.clone(),
                verbs: vec!["get".to_owned(), "patch".to_owned(), "update".to_owned()],
                ..APIResource::default()
            });
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    with_kind(
        APIResourceList {
            group_version: gv,
            resources,
        },
        "APIResourceList",
        Some("v1"),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// gnostic's `openapi_v2.Document` with `swagger: "2.0"` and `info {title: "kubesim", version:
/// "unversioned"}`, protobuf-encoded (field 1, string; field 2, message of fields 1 and 2).
pub(crate) const OPENAPI_V2_PROTOBUF: &[u8] =
    b"\x0a\x032.0\x12\x16\x0a\x07kubesim\x12\x0bunversioned";

/// `/openapi/v3`: one entry per served group version.
pub(crate) fn openapi_index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut seen = Vec::new();
    for t in registry.all() {
        let path = gv_path(&t.group, &t.version);
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        let plurals: Vec<&[u8]> = registry
            .in_group_version(&t.group, &t.version)
            .map(|r| r.plural.as_bytes())
            .collect();
        let hash = crate::store::fnv1a(&plurals);
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/{path}?hash={:016X}", hash).replacen("/", "/openapi/v3/", 1)}));
    }
    json!({"paths": paths})
}

fn schema_name(t: &ResourceType) -> String {
    let group = if t.group.is_empty() {
        "core".to_owned()
    } else {
        t.group.split('.').next().unwrap_or_default().to_owned()
    };
    format!("io.k8s.api.{group}.{}.{}", t.version, t.kind)
}

/// `/openapi/v3/apis/{group}/{version}`: paths whose PATCH operations accept `fieldValidation`
/// (so kubectl leaves validation to the server), and open schemas carrying
/// `x-kubernetes-group-version-kind`.
pub(crate) fn openapi_group_version(
    registry: &Registry,
    group: &str,
    version: &str,
) -> Option<Value> {
    if !registry.serves(group, version) {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for t in registry.in_group_version(group, version) {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let prefix = format!("/{}", gv_path(&t.group, &t.version));
        let item = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(t))});
        let operation = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", t.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
            })
        };
        if !t.computed {
            paths.insert(item, json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch"), "delete": operation("delete")}));
        }
        schemas.insert(
            schema_name(t),
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [gvk],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                },
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kubesim)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents() {
        let r = Registry::default();
        let groups = group_list(&r);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "metrics.k8s.io")
        );
        let core = resource_list(&r, "", "v1");
        let pods = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(version("v1.32.2")["minor"], "32");
        let index = openapi_index(&r);
        assert_eq!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .split('?')
                .next(),
            Some("/openapi/v3/apis/apps/v1")
        );
        let doc = openapi_group_version(&r, "apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
    }
}
