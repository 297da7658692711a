//! kubesim as a library, through kube-rs: typed objects, server-side apply, watches, and the
//! status codes and `Status` bodies of bad requests.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use serde_json::json;

fn scenario() -> kubesim::Scenario {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/scenarios/tiny.yaml"
    );
    kubesim::Scenario::load(path.as_ref()).unwrap()
}

async fn start() -> (kubesim::Server, kube::Client) {
    let server = kubesim::Server::start(scenario(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    (server, client)
}

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "sample-app"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
}

/// The error a raw request gets, as kube-rs parses the `Status` body.
async fn status_of(client: &kube::Client, request: http::Request<Vec<u8>>) -> Box<Status> {
    match client.request_text(request).await {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_objects_round_trip() {
    let (server, client) = start().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 3);
    let cp = &list.items[0];
    let alloc = cp.status.as_ref().unwrap().allocatable.as_ref().unwrap();
    assert_eq!(alloc["cpu"].0, "2");
    assert_eq!(alloc["memory"].0, "4194304Ki");

    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "sample-app");
    let applied: Deployment = deploys
        .patch(
            "web",
            &PatchParams::apply("test"),
            &Patch::Apply(deployment("web", 3)),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.metadata.managed_fields.unwrap()[0]
            .manager
            .as_deref(),
        Some("test")
    );

    // Watch the pods from the list's resourceVersion until all three are Ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "sample-app");
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let mut seen = std::collections::HashMap::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = event {
            seen.insert(p.metadata.name.clone().unwrap(), ready(&p));
        }
        if seen.len() == 3 && seen.values().all(|r| *r) {
            break;
        }
    }
    assert!(rv.parse::<u64>().is_ok());
    let d = deploys.get("web").await.unwrap();
    assert_eq!(d.status.unwrap().available_replicas, Some(3));

    // Deleting the deployment deletes its replica set and pods.
    deploys.delete("web", &Default::default()).await.unwrap();
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_real_status_codes() {
    let (server, client) = start().await;
    let url = server.url();
    let post = |path: &str, body: &[u8]| {
        http::Request::post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .unwrap()
    };

    let s = status_of(
        &client,
        post("/api/v1/namespaces/default/configmaps", b"{not json"),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));

    let s = status_of(
        &client,
        post("/apis/example.com/v1/namespaces/default/widgets", b"{}"),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));

    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}).to_string();
    client
        .request_text(post(
            "/api/v1/namespaces/default/configmaps",
            body.as_bytes(),
        ))
        .await
        .unwrap();
    let s = status_of(
        &client,
        post("/api/v1/namespaces/default/configmaps", body.as_bytes()),
    )
    .await;
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));

    // A kind that does not match the URL.
    let s = status_of(
        &client,
        post("/api/v1/namespaces/default/secrets", body.as_bytes()),
    )
    .await;
    assert_eq!(s.code, 400);

    // Replace with a stale resourceVersion.
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1"}, "data": {"k": "v"}});
    let put = http::Request::put(format!("{url}/api/v1/namespaces/default/configmaps/c"))
        .header("content-type", "application/json")
        .body(stale.to_string().into_bytes())
        .unwrap();
    let s = status_of(&client, put).await;
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));

    // Apply conflict, with the field in the causes.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "sample-app");
    deploys
        .patch(
            "web",
            &PatchParams::apply("a"),
            &Patch::Apply(deployment("web", 1)),
        )
        .await
        .unwrap();
    let err = deploys
        .patch(
            "web",
            &PatchParams::apply("b"),
            &Patch::Apply(deployment("web", 2)),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    let causes = s.details.unwrap().causes;
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(causes[0].reason, "FieldManagerConflict");

    // Apply without a field manager.
    let patch = http::Request::patch(format!(
        "{url}/apis/apps/v1/namespaces/sample-app/deployments/web"
    ))
    .header("content-type", "application/apply-patch+yaml")
    .body(deployment("web", 1).to_string().into_bytes())
    .unwrap();
    let s = status_of(&client, patch).await;
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));

    // A resourceVersion that is not a number, and a watch from one the history no longer holds.
    let get = |path: &str| {
        http::Request::get(format!("{url}{path}"))
            .body(Vec::new())
            .unwrap()
    };
    let s = status_of(&client, get("/api/v1/pods?resourceVersion=abc")).await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    {
        let cluster = server.cluster();
        let mut store = cluster.lock();
        let cm = store
            .registry
            .by_path("", "v1", "configmaps")
            .unwrap()
            .clone();
        for i in 0..9000 {
            store
                .create(
                    &cm,
                    "default",
                    json!({"metadata": {"name": format!("bulk-{i}")}}),
                )
                .unwrap();
        }
    }
    let text = client
        .request_text(get(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=2",
        ))
        .await
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");

    // Unsupported media type and method.
    let s = status_of(
        &client,
        http::Request::post(format!("{url}/api/v1/namespaces"))
            .header("content-type", "application/vnd.kubernetes.protobuf")
            .body(b"k8s\0".to_vec())
            .unwrap(),
    )
    .await;
    assert_eq!(s.code, 415);
    let s = status_of(&client, post("/apis/metrics.k8s.io/v1beta1/nodes", b"{}")).await;
    assert_eq!(s.code, 405);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_and_filter() {
    let (server, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let rv = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for name in ["a", "b", "c"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"team": if name == "b" { "x" } else { "y" }}}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let params = WatchParams::default().labels("team=y").timeout(1);
    let events: Vec<_> = namespaces
        .watch(&params, &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let names: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(ns) => ns.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        ["a", "c"],
        "from the resourceVersion on, and only team=y"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_verifies_the_https_server() {
    let server = kubesim::Server::start_tls(scenario(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(server.url().starts_with("https://"));
    let client = server.client().await.unwrap();
    let nodes: Api<Node> = Api::all(client);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_reviews_allow_everything() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let (server, client) = start().await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("create".to_owned()),
                resource: Some("deployments".to_owned()),
                group: Some("apps".to_owned()),
                namespace: Some("sample-app".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    assert!(answer.status.unwrap().allowed);
    // Reviews are answered, never stored: listing them is not allowed.
    let err = reviews.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!(s.code, 405);
    server.shutdown().await;
}
