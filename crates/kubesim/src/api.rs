//! The HTTP API: routing, the verbs on stored objects, watches, metrics, and errors as `Status`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::apply;
use crate::discovery;
use crate::metrics;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::{Cluster, admit};
use crate::status::ApiError;
use crate::store::{Event, EventType, now_rfc3339};
use crate::table::{self, Include};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Requests larger than this are refused, as the API server refuses bodies over 3 MiB.
const MAX_BODY: usize = 3 << 20;

/// What a request handler shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) address: String,
    pub(crate) shutdown: watch::Receiver<bool>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_json(),
    )
}

/// A parsed resource URL.
#[derive(Debug)]
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Serves one request.
pub(crate) async fn handle(
    ctx: Context,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = route(&ctx, request)
        .await
        .unwrap_or_else(|e| error_response(&e));
    tracing::debug!(
        "{method} {path} -> {} in {:?}",
        response.status().as_u16(),
        started.elapsed()
    );
    Ok(response)
}

async fn route(ctx: &Context, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = request.method() == Method::GET;
    let cluster = &ctx.cluster;
    match segments.as_slice() {
        ["version"] if get => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::version(&cluster.scenario.kubernetes_version),
            ));
        }
        ["healthz" | "readyz" | "livez", ..] if get => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain"),
            );
            return Ok(r);
        }
        ["api"] if get => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::core_versions(&ctx.address),
            ));
        }
        ["apis"] if get => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::group_list(&cluster.lock().registry),
            ));
        }
        ["api", "v1"] if get => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::resource_list(&cluster.lock().registry, "", "v1"),
            ));
        }
        ["apis", group] if get => {
            let g = discovery::api_group(&cluster.lock().registry, group)
                .ok_or_else(ApiError::no_resource)?;
            return Ok(json_response(StatusCode::OK, &g));
        }
        ["apis", group, version] if get => {
            let store = cluster.lock();
            if !store.registry.serves(group, version) {
                return Err(ApiError::no_resource());
            }
            return Ok(json_response(
                StatusCode::OK,
                &discovery::resource_list(&store.registry, group, version),
            ));
        }
        ["openapi", "v2"] if get => {
            // A minimal protobuf OpenAPI v2 document (swagger "2.0", no definitions): kubectl falls
            // back to it for kinds no served group has, finds no schema, and reports the missing
            // mapping as it does against a real server.
            let mut r = Response::new(full(discovery::OPENAPI_V2_PROTOBUF));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            return Ok(r);
        }
        ["openapi", "v3"] if get => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::openapi_index(&cluster.lock().registry),
            ));
        }
        ["openapi", "v3", "api", version] if get => {
            let doc = discovery::openapi_group_version(&cluster.lock().registry, "", version)
                .ok_or_else(ApiError::no_resource)?;
            return Ok(json_response(StatusCode::OK, &doc));
        }
        ["openapi", "v3", "apis", group, version] if get => {
            let doc = discovery::openapi_group_version(&cluster.lock().registry, group, version)
                .ok_or_else(ApiError::no_resource)?;
            return Ok(json_response(StatusCode::OK, &doc));
        }
        _ => {}
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_resource()),
    };
    let target = {
        let store = cluster.lock();
        let registry = &store.registry;
        let namespaced_target = match rest {
            ["namespaces", ns, plural, more @ ..] => registry
                .by_path(group, version, plural)
                .filter(|t| t.namespaced)
                .map(|t| (t.clone(), Some((*ns).to_owned()), more)),
            _ => None,
        };
        match namespaced_target {
            Some((rt, namespace, more)) => target_from(rt, namespace, more)?,
            None => match rest {
                [plural, more @ ..] => {
                    let rt = registry
                        .by_path(group, version, plural)
                        .cloned()
                        .ok_or_else(ApiError::no_resource)?;
                    if rt.namespaced && !more.is_empty() {
                        return Err(ApiError::no_resource());
                    }
                    target_from(rt, None, more)?
                }
                [] => return Err(ApiError::no_resource()),
            },
        }
    };
    let (parts, body) = request.into_parts();
    let (query, headers, method) = (query_map(parts.uri.query()), parts.headers, parts.method);
    let body = if matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        let collected = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError {
                    code: 413,
                    reason: "RequestEntityTooLarge",
                    message: "the request is too large".to_owned(),
                    details: None,
                }
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        collected.to_bytes()
    } else {
        Bytes::new()
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*")
        .to_owned();
    let manager = query.get("fieldManager").cloned().unwrap_or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    });
    if query.contains_key("dryRun") {
        return Err(ApiError::bad_request("dryRun is not supported by kubesim"));
    }
    if target.rt.computed && method != Method::GET
        || target.rt.is_review() && method != Method::POST
    {
        return Err(ApiError::method_not_allowed());
    }
    if target.sub.as_deref() == Some("scale") {
        return scale(ctx, &target, &method, &body, &content_type, &manager);
    }
    match method {
        Method::GET if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_objects(ctx, &target, &query)
        }
        Method::GET if target.rt.computed => get_metrics(ctx, &target, &query),
        Method::GET if target.name.is_some() => get_object(ctx, &target, &query, &accept),
        Method::GET => list_objects(ctx, &target, &query, &accept),
        Method::POST if target.name.is_none() => {
            create_object(ctx, &target, &body, &content_type, &manager)
        }
        Method::PUT if target.name.is_some() => {
            replace_object(ctx, &target, &body, &content_type, &manager)
        }
        Method::PATCH if target.name.is_some() => {
            patch_object(ctx, &target, &body, &content_type, &manager, &query)
        }
        Method::DELETE if target.name.is_some() => delete_object(ctx, &target, &body, &query),
        Method::DELETE => delete_collection(ctx, &target, &query),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn target_from(
    rt: ResourceType,
    namespace: Option<String>,
    more: &[&str],
) -> Result<Target, ApiError> {
    let (name, sub) = match more {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] => (Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Err(ApiError::no_resource()),
    };
    if let Some(s) = &sub
        && !(s == "status" && rt.status || s == "scale" && scalable(&rt))
    {
        // What kubectl logs, exec, attach and port-forward ask for: say why there is none.
        if rt.kind == "Pod" && matches!(s.as_str(), "log" | "exec" | "attach" | "portforward") {
            return Err(ApiError::not_served(format!(
                "kubesim runs no containers, so a pod has no {s} (it simulates the API only)"
            )));
        }
        return Err(ApiError::no_resource());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        sub,
    })
}

/// Kinds with a `scale` subresource.
pub(crate) fn scalable(rt: &ResourceType) -> bool {
    rt.group == "apps"
        && matches!(
            rt.kind.as_str(),
            "Deployment" | "ReplicaSet" | "StatefulSet"
        )
}

/// The `autoscaling/v1` `Scale` of an object.
fn scale_of(object: &Value) -> Value {
    let selector = crate::selector::labels_text(&object["spec"]["selector"]["matchLabels"]);
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// GET, PUT or PATCH of `…/scale`: reads or sets `spec.replicas` (what `kubectl scale` does).
fn scale(
    ctx: &Context,
    target: &Target,
    method: &Method,
    body: &[u8],
    content_type: &str,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    let rt = &target.rt;
    let ns = namespace_of(target);
    let name = target.name.clone().unwrap_or_default();
    let mut store = ctx.cluster.lock();
    let old = store
        .get(rt, &ns, &name)
        .ok_or_else(|| ApiError::not_found(&rt.qualified(), &rt.group, &rt.plural, &name))?;
    let current = scale_of(&old);
    let wanted = match *method {
        Method::GET => return Ok(json_response(StatusCode::OK, &current)),
        Method::PUT => parse_body(body, content_type, rt)?,
        Method::PATCH => {
            let patch = parse_body(body, content_type, rt)?;
            let mut scale = current.clone();
            match content_type {
                "application/merge-patch+json" => apply::merge_patch(&mut scale, &patch),
                "application/strategic-merge-patch+json" => {
                    apply::strategic_merge_patch(&mut scale, &patch);
                }
                "application/json-patch+json" => json_patch(&mut scale, &patch)?,
                other => return Err(ApiError::unsupported_media_type(other)),
            }
            scale
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let replicas = wanted["spec"]["replicas"]
        .as_i64()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                &rt.qualified(),
                &rt.group,
                &rt.kind,
                &name,
                "spec.replicas",
                "Invalid value: must be a non-negative integer",
            )
        })?;
    let expected = wanted["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    let mut new = (*old).clone();
    new["spec"]["replicas"] = replicas.into();
    apply::record_update(
        Some(&old),
        &mut new,
        manager,
        &rt.api_version(),
        &now_rfc3339(),
    );
    let stored = store.replace(rt, &ns, &name, new, expected.as_deref())?;
    Ok(json_response(StatusCode::OK, &scale_of(&stored)))
}

fn parse_body(body: &[u8], content_type: &str, rt: &ResourceType) -> Result<Value, ApiError> {
    let value: Value = match content_type {
        "application/json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" | "application/json-patch+json" => {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}", rt.kind)))?
        }
        "application/yaml" | "application/apply-patch+yaml" => {
            let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            serde_saphyr::from_str(text).map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(value)
}

/// Checks an object's apiVersion and kind against the URL's resource (filling them in when
/// absent) and its namespace and name against the URL's.
fn check_identity(object: &mut Value, target: &Target, require_kind: bool) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {})",
            target.rt.kind
        )));
    }
    let api_version = target.rt.api_version();
    match (object["apiVersion"].as_str(), object["kind"].as_str()) {
        (Some(av), Some(kind)) if av == api_version && kind == target.rt.kind => {}
        (None, None) if !require_kind => {}
        (Some(av), Some(kind)) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            ))
            .with_kind_mismatch(kind, &target.rt.kind));
        }
        _ => {
            return Err(ApiError::bad_request(
                "Object 'Kind' is missing in the object provided",
            ));
        }
    }
    if let (Some(ns), Some(url_ns)) = (object["metadata"]["namespace"].as_str(), &target.namespace)
        && target.rt.namespaced
        && ns != url_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let (Some(name), Some(url_name)) = (object["metadata"]["name"].as_str(), &target.name)
        && name != url_name
    {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    Ok(())
}

impl ApiError {
    fn with_kind_mismatch(mut self, kind: &str, expected: &str) -> ApiError {
        if kind != expected {
            self.message = format!(
                "the object provided is unrecognized (must be of type {expected}): kind {kind}"
            );
        }
        self
    }
}

fn namespace_of(target: &Target) -> String {
    target.namespace.clone().unwrap_or_default()
}

fn strip_status_for_main(rt: &ResourceType, old: Option<&Value>, new: &mut Value) {
    if rt.status {
        match old.and_then(|o| o.get("status")) {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
}

fn create_object(
    ctx: &Context,
    target: &Target,
    body: &[u8],
    content_type: &str,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    if target.rt.namespaced && target.namespace.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let mut object = parse_body(body, content_type, &target.rt)?;
    check_identity(&mut object, target, false)?;
    if target.rt.is_review() {
        return Ok(json_response(
            StatusCode::CREATED,
            &review(&target.rt, object),
        ));
    }
    let now = now_rfc3339();
    apply::record_update(None, &mut object, manager, &target.rt.api_version(), &now);
    let created = ctx
        .cluster
        .create(&target.rt, &namespace_of(target), object)?;
    Ok(json_response(StatusCode::CREATED, &created))
}

/// The answer to an access or identity review: kubesim has no authorization, so everything
/// is allowed, and everyone is the kubeconfig's user.
fn review(rt: &ResourceType, mut object: Value) -> Value {
    object["apiVersion"] = rt.api_version().into();
    object["kind"] = rt.kind.clone().into();
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]["creationTimestamp"] = now_rfc3339().into();
    object["status"] = if rt.kind == "SelfSubjectReview" {
        json!({"userInfo": {"username": "kubesim", "groups": ["system:masters", "system:authenticated"]}})
    } else {
        json!({"allowed": true, "reason": "kubesim authorizes every request"})
    };
    object
}

fn replace_object(
    ctx: &Context,
    target: &Target,
    body: &[u8],
    content_type: &str,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    let mut object = parse_body(body, content_type, &target.rt)?;
    check_identity(&mut object, target, false)?;
    let ns = namespace_of(target);
    let name = target.name.clone().unwrap_or_default();
    let mut store = ctx.cluster.lock();
    let old = store.get(&target.rt, &ns, &name).ok_or_else(|| {
        ApiError::not_found(
            &target.rt.qualified(),
            &target.rt.group,
            &target.rt.plural,
            &name,
        )
    })?;
    let expected = object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    let mut new = if target.sub.is_some() {
        let mut n = (*old).clone();
        n["status"] = object["status"].clone();
        n
    } else {
        strip_status_for_main(&target.rt, Some(&old), &mut object);
        object
    };
    crate::sim::workload_defaults(&target.rt.kind, &mut new);
    apply::record_update(
        Some(&old),
        &mut new,
        manager,
        &target.rt.api_version(),
        &now_rfc3339(),
    );
    let stored = store.replace(&target.rt, &ns, &name, new, expected.as_deref())?;
    Ok(json_response(StatusCode::OK, &stored))
}

fn patch_object(
    ctx: &Context,
    target: &Target,
    body: &[u8],
    content_type: &str,
    manager: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let patch = parse_body(body, content_type, &target.rt)?;
    let ns = namespace_of(target);
    let name = target.name.clone().unwrap_or_default();
    let api_version = target.rt.api_version();
    let now = now_rfc3339();
    let rt = &target.rt;
    if content_type == "application/apply-patch+yaml" {
        let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "meta.k8s.io",
                "PatchOptions",
                "",
                "fieldManager",
                "Required value: is required for apply patch",
            ));
        };
        let mut config = patch;
        check_identity(&mut config, target, true)?;
        if config["metadata"]["name"].as_str().is_none() {
            return Err(ApiError::bad_request(
                "metadata.name is required in an apply configuration",
            ));
        }
        let force = query.get("force").is_some_and(|f| f == "true");
        let mut store = ctx.cluster.lock();
        let current = store.get(rt, &ns, &name);
        if target.sub.is_none()
            && rt.status
            && let Some(m) = config.as_object_mut()
        {
            m.remove("status");
        }
        let merged = apply::server_side_apply(
            current.as_deref(),
            &config,
            manager,
            force,
            &api_version,
            &now,
        )
        .map_err(|conflicts| ApiError::apply_conflict(&rt.group, &rt.plural, &name, &conflicts))?;
        let mut merged = merged;
        crate::sim::workload_defaults(&rt.kind, &mut merged);
        let stored = match current {
            Some(old) => {
                let expected = config["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_owned);
                store
                    .replace(rt, &ns, &name, merged, expected.as_deref())
                    .map(|o| (o, Some(old)))?
            }
            None => {
                if target.sub.is_some() {
                    return Err(ApiError::not_found(
                        &rt.qualified(),
                        &rt.group,
                        &rt.plural,
                        &name,
                    ));
                }
                let admitted = admit(&store, &ctx.cluster.scenario, rt, &ns, merged);
                (store.create(rt, &ns, admitted)?, None)
            }
        };
        let code = if stored.1.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        return Ok(json_response(code, &stored.0));
    }
    let mut store = ctx.cluster.lock();
    let old = store
        .get(rt, &ns, &name)
        .ok_or_else(|| ApiError::not_found(&rt.qualified(), &rt.group, &rt.plural, &name))?;
    let mut new = (*old).clone();
    match content_type {
        "application/merge-patch+json" => apply::merge_patch(&mut new, &patch),
        "application/strategic-merge-patch+json" => apply::strategic_merge_patch(&mut new, &patch),
        "application/json-patch+json" => json_patch(&mut new, &patch)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    }
    if target.sub.is_some() {
        let status = new["status"].clone();
        new = (*old).clone();
        new["status"] = status;
    } else {
        strip_status_for_main(rt, Some(&old), &mut new);
    }
    let expected = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    crate::sim::workload_defaults(&rt.kind, &mut new);
    apply::record_update(Some(&old), &mut new, manager, &api_version, &now);
    let stored = store.replace(rt, &ns, &name, new, expected.as_deref())?;
    Ok(json_response(StatusCode::OK, &stored))
}

/// RFC 6902 JSON patch: add, remove, replace and test.
fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array of operations"))?;
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("a JSON patch operation needs a path"))?;
        let (parent_path, last) = path
            .rsplit_once('/')
            .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let unprocessable = |why: &str| ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("the JSON patch could not be applied: {why} at {path}"),
            details: None,
        };
        match op["op"].as_str() {
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(unprocessable("test failed"));
                }
            }
            Some(kind @ ("add" | "replace" | "remove")) => {
                let parent = target
                    .pointer_mut(parent_path)
                    .ok_or_else(|| unprocessable("missing parent"))?;
                match parent {
                    Value::Object(map) => {
                        if kind == "remove" {
                            map.remove(&last)
                                .ok_or_else(|| unprocessable("no such field"))?;
                        } else {
                            if kind == "replace" && !map.contains_key(&last) {
                                return Err(unprocessable("no such field"));
                            }
                            map.insert(last, op["value"].clone());
                        }
                    }
                    Value::Array(items) => {
                        let index = if last == "-" {
                            items.len()
                        } else {
                            last.parse::<usize>()
                                .map_err(|_| unprocessable("bad index"))?
                        };
                        match kind {
                            "add" if index <= items.len() => {
                                items.insert(index, op["value"].clone());
                            }
                            "replace" if index < items.len() => items[index] = op["value"].clone(),
                            "remove" if index < items.len() => {
                                items.remove(index);
                            }
                            _ => return Err(unprocessable("index out of range")),
                        }
                    }
                    _ => return Err(unprocessable("parent is not a container")),
                }
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unsupported JSON patch operation {}",
                    op["op"]
                )));
            }
        }
    }
    Ok(())
}

fn delete_object(
    ctx: &Context,
    target: &Target,
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| options["propagationPolicy"].as_str())
        .unwrap_or("Background");
    let orphan = policy == "Orphan" || options["orphanDependents"] == true;
    let name = target.name.clone().unwrap_or_default();
    let gone = ctx
        .cluster
        .lock()
        .delete(&target.rt, &namespace_of(target), &name, orphan)?;
    Ok(json_response(StatusCode::OK, &gone))
}

fn delete_collection(
    ctx: &Context,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query, &target.rt.kind)?;
    let mut store = ctx.cluster.lock();
    let victims: Vec<Arc<Value>> = store
        .list(&target.rt, target.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    let mut items = Vec::new();
    for v in victims {
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Ok(gone) = store.delete(&target.rt, &ns, &name, false) {
            items.push((*gone).clone());
        }
    }
    let list = json!({"kind": format!("{}List", target.rt.kind), "apiVersion": target.rt.api_version(),
        "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items});
    Ok(json_response(StatusCode::OK, &list))
}

fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn get_object(
    ctx: &Context,
    target: &Target,
    query: &HashMap<String, String>,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let store = ctx.cluster.lock();
    let object = store
        .get(&target.rt, &namespace_of(target), &name)
        .ok_or_else(|| {
            ApiError::not_found(
                &target.rt.qualified(),
                &target.rt.group,
                &target.rt.plural,
                &name,
            )
        })?;
    if wants_table(accept) {
        let include = Include::parse(query.get("includeObject").map(String::as_str));
        let t = table::table(
            &target.rt.kind,
            &[object],
            store.resource_version(),
            include,
            jiff::Timestamp::now(),
        );
        return Ok(json_response(StatusCode::OK, &t));
    }
    Ok(json_response(StatusCode::OK, &object))
}

/// The request's `labelSelector` and `fieldSelector` (empty when absent).
fn selectors(
    query: &HashMap<String, String>,
    kind: &str,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let param = |name: &str| query.get(name).map_or("", String::as_str);
    Ok((
        LabelSelector::parse(param("labelSelector"))?,
        FieldSelector::parse(param("fieldSelector"), kind)?,
    ))
}

fn parse_rv(query: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    match query.get("resourceVersion").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(rv) => rv.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {rv:?}: expected a number"
            ))
        }),
    }
}

fn list_objects(
    ctx: &Context,
    target: &Target,
    query: &HashMap<String, String>,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query, &target.rt.kind)?;
    let rv = parse_rv(query)?;
    let store = ctx.cluster.lock();
    if let Some(rv) = rv
        && rv > store.resource_version()
    {
        return Err(ApiError {
            code: 504,
            reason: "Timeout",
            message: format!(
                "Too large resource version: {rv}, current: {}",
                store.resource_version()
            ),
            details: None,
        });
    }
    let items: Vec<Arc<Value>> = store
        .list(&target.rt, target.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    if wants_table(accept) {
        let include = Include::parse(query.get("includeObject").map(String::as_str));
        let t = table::table(
            &target.rt.kind,
            &items,
            store.resource_version(),
            include,
            jiff::Timestamp::now(),
        );
        return Ok(json_response(StatusCode::OK, &t));
    }
    let list = json!({
        "kind": format!("{}List", target.rt.kind),
        "apiVersion": target.rt.api_version(),
        "metadata": {"resourceVersion": store.resource_version().to_string()},
        "items": items.iter().map(|o| &**o).collect::<Vec<_>>(),
    });
    Ok(json_response(StatusCode::OK, &list))
}

fn get_metrics(
    ctx: &Context,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    let store = ctx.cluster.lock();
    let pods_rt = store
        .registry
        .by_path("", "v1", "pods")
        .cloned()
        .ok_or_else(ApiError::no_resource)?;
    let now = jiff::Timestamp::now();
    let scenario = &ctx.cluster.scenario;
    let (items, kind) = if target.rt.kind == "PodMetrics" {
        let pods: Vec<Arc<Value>> = store
            .list(&pods_rt, target.namespace.as_deref())
            .into_iter()
            .filter(|p| {
                labels.matches(p)
                    && target
                        .name
                        .as_deref()
                        .is_none_or(|n| p["metadata"]["name"] == n)
            })
            .collect();
        (metrics::pod_metrics(scenario, &pods, now), "PodMetrics")
    } else {
        let nodes_rt = store
            .registry
            .by_path("", "v1", "nodes")
            .cloned()
            .ok_or_else(ApiError::no_resource)?;
        let nodes: Vec<Arc<Value>> = store
            .list(&nodes_rt, None)
            .into_iter()
            .filter(|n| {
                labels.matches(n)
                    && target
                        .name
                        .as_deref()
                        .is_none_or(|name| n["metadata"]["name"] == name)
            })
            .collect();
        let pods = store.list(&pods_rt, None);
        (
            metrics::node_metrics(scenario, &nodes, &pods, now),
            "NodeMetrics",
        )
    };
    if let Some(name) = &target.name {
        let item = items.into_iter().next().ok_or_else(|| {
            ApiError::not_found(
                &target.rt.qualified(),
                &target.rt.group,
                &target.rt.plural,
                name,
            )
        })?;
        return Ok(json_response(StatusCode::OK, &item));
    }
    let list = json!({"kind": format!("{kind}List"), "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items});
    Ok(json_response(StatusCode::OK, &list))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A watch line around an object already serialized.
fn raw_event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn bookmark(target: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": target.rt.kind, "apiVersion": target.rt.api_version(), "metadata": meta}),
    )
}

/// A watch: a chunked stream of `{"type","object"}` lines from the requested resourceVersion
/// (or, without one, the current objects as ADDED first), until the client goes, the timeout
/// passes or the server stops.
fn watch_objects(
    ctx: &Context,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query, &target.rt.kind)?;
    let rv = parse_rv(query)?;
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let store_name = target.rt.store_name();
    let namespace = target.namespace.clone();
    let unfiltered = labels.is_empty() && fields.is_empty();
    let matches = move |o: &Value| labels.matches(o) && fields.matches(o);

    let (initial, mut rx, start_rv) = {
        let store = ctx.cluster.lock();
        let current = store.resource_version();
        match rv.filter(|r| *r != 0 && !send_initial) {
            Some(from) => match store.changes_since(&store_name, namespace.as_deref(), from) {
                Ok((events, rx)) => {
                    let lines: Vec<Bytes> = events
                        .iter()
                        .filter(|e| unfiltered || matches(&e.value()))
                        .map(|e| raw_event_line(e.kind.as_str(), &e.object))
                        .collect();
                    (lines, rx, current)
                }
                Err(oldest) => {
                    // As the API server: a 200 stream carrying one ERROR event with a 410 Status.
                    let status = ApiError::expired(from, oldest).to_json();
                    let mut r = Response::new(full(event_line("ERROR", &status)));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/json"),
                    );
                    return Ok(r);
                }
            },
            None => {
                let lines: Vec<Bytes> = store
                    .list(&target.rt, namespace.as_deref())
                    .iter()
                    .filter(|o| matches(o))
                    .map(|o| event_line("ADDED", o))
                    .collect();
                (lines, store.subscribe(), current)
            }
        }
    };
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let mut shutdown = ctx.shutdown.clone();
    let target_kind = Target {
        rt: target.rt.clone(),
        namespace: None,
        name: None,
        sub: None,
    };
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if send_initial
            && tx
                .send(bookmark(&target_kind, start_rv, true))
                .await
                .is_err()
        {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut last_rv = start_rv;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = shutdown.changed() => return,
                () = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(bookmark(&target_kind, last_rv, false)).await.is_err() {
                        return;
                    }
                }
                event = rx.recv() => {
                    let event: Arc<Event> = match event {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let _ = tx.send(event_line("ERROR", &ApiError::expired(last_rv, last_rv + 1).to_json())).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if event.rv <= start_rv || event.resource != store_name || namespace.as_deref().is_some_and(|n| n != event.namespace) {
                        continue;
                    }
                    last_rv = event.rv;
                    if unfiltered || matches(&event.value()) {
                        let kind = match event.kind { EventType::Added => "ADDED", EventType::Modified => "MODIFIED", EventType::Deleted => "DELETED" };
                        if tx.send(raw_event_line(kind, &event.object)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let q = query_map(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn json_patches() {
        let mut v = json!({"a": {"b": 1}, "l": [1, 2]});
        json_patch(&mut v, &json!([{"op": "replace", "path": "/a/b", "value": 2}, {"op": "add", "path": "/l/-", "value": 3},
            {"op": "remove", "path": "/l/0"}, {"op": "test", "path": "/a/b", "value": 2}])).unwrap();
        assert_eq!(v, json!({"a": {"b": 2}, "l": [2, 3]}));
        assert_eq!(
            json_patch(&mut v, &json!([{"op": "test", "path": "/a/b", "value": 9}]))
                .unwrap_err()
                .code,
            422
        );
    }
}
