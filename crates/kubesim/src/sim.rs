//! The simulation: nodes at start, admission (defaults and mesh injection), the controllers that
//! turn deployments, replica sets, stateful sets, daemon sets and jobs into pods, the scheduler,
//! and each pod's life from Pending to Ready on the scenario's seeded delays.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use meshbench_formats::quantity::Quantity;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::resources::ResourceType;
use crate::scenario::{Delay, Scenario};
use crate::selector::label_selector_object_matches;
use crate::status::ApiError;
use crate::store::{NAME_ALPHABET, Store, fnv1a, now_rfc3339};

/// The shared state: the store and the scenario that drives it.
#[derive(Debug)]
pub struct Cluster {
    store: Mutex<Store>,
    pub scenario: Scenario,
}

impl Cluster {
    /// A cluster with the scenario's nodes, the system namespaces and the bootstrap manifests.
    pub fn new(scenario: Scenario) -> Result<Cluster, String> {
        let cluster = Cluster {
            store: Mutex::new(Store::new(scenario.seed)),
            scenario,
        };
        {
            let mut store = cluster.lock();
            let ns = rt(&store, "", "namespaces");
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let object = json!({"metadata": {"name": name}});
                let object = admit(&store, &cluster.scenario, &ns, "", object);
                store.create(&ns, "", object).map_err(|e| e.message)?;
            }
            // kubesim serves metrics.k8s.io itself; clients that check for metrics-server the
            // way kubectl and cluster tooling do find its APIService, Available.
            let apiservices = rt(&store, "apiregistration.k8s.io", "apiservices");
            store
                .create(
                    &apiservices,
                    "",
                    json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {"k8s-app": "metrics-server"}},
                        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": true,
                            "groupPriorityMinimum": 100, "versionPriority": 100,
                            "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443}},
                        "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed",
                            "message": "all checks passed", "lastTransitionTime": now_rfc3339()}]}}),
                )
                .map_err(|e| e.message)?;
            let nodes = rt(&store, "", "nodes");
            for (index, (name, pool)) in cluster.scenario.node_names().into_iter().enumerate() {
                store
                    .create(
                        &nodes,
                        "",
                        node_object(&cluster.scenario, index, &name, pool),
                    )
                    .map_err(|e| e.message)?;
            }
        }
        for manifest in cluster.scenario.manifests()? {
            let api_version = manifest["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let kind = manifest["kind"].as_str().unwrap_or_default().to_owned();
            let mut store = cluster.lock();
            let Some(t) = store.registry.by_kind(&api_version, &kind).cloned() else {
                return Err(format!(
                    "bootstrap: no resource type for {api_version} {kind}"
                ));
            };
            let namespace = manifest["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            let object = admit(&store, &cluster.scenario, &t, &namespace, manifest);
            store
                .create(&t, &namespace, object)
                .map_err(|e| format!("bootstrap: {}", e.message))?;
        }
        Ok(cluster)
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves consistent JSON behind; keep serving.
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates an object through admission, as the API server does for clients.
    pub fn create(
        &self,
        t: &ResourceType,
        namespace: &str,
        object: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let mut store = self.lock();
        let object = admit(&store, &self.scenario, t, namespace, object);
        store.create(t, namespace, object)
    }
}

fn rt(store: &Store, group: &str, plural: &str) -> ResourceType {
    store
        .registry
        .by_path(group, "v1", plural)
        .cloned()
        .unwrap_or_else(|| panic!("built-in resource {group}/{plural} is registered"))
}

fn memory_text(q: Quantity) -> String {
    let bytes = q.value_ceil();
    if bytes % 1024 == 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

fn node_object(
    scenario: &Scenario,
    index: usize,
    name: &str,
    pool: &crate::scenario::NodePool,
) -> Value {
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    });
    let mut taints = json!([]);
    if pool.role == "control-plane" {
        labels["node-role.kubernetes.io/control-plane"] = "".into();
        taints = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    }
    for (k, v) in &pool.labels {
        labels[k] = v.clone().into();
    }
    let resources = json!({
        "cpu": pool.cpu.to_string(),
        "memory": memory_text(pool.memory),
        "pods": pool.pods.to_string(),
        "ephemeral-storage": "102625208Ki",
    });
    let now = now_rfc3339();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "metadata": {"name": name, "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": format!("10.244.{index}.0/24"), "podCIDRs": [format!("10.244.{index}.0/24")],
            "providerID": format!("kind://docker/kubesim/{name}"), "taints": taints},
        "status": {
            "capacity": resources.clone(),
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", index + 2)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-kubesim", "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": scenario.kubernetes_version, "kubeProxyVersion": scenario.kubernetes_version,
                "machineID": format!("{index:032x}"), "systemUUID": format!("{index:032x}"), "bootID": format!("{index:032x}"),
            },
        },
    })
}

/// What the API server and the mutating webhooks do to an object before it is stored:
/// defaults for pods, namespaces and services; the mesh proxies for pods.
pub fn admit(
    store: &Store,
    scenario: &Scenario,
    t: &ResourceType,
    namespace: &str,
    mut object: Value,
) -> Value {
    match (t.group.as_str(), t.kind.as_str()) {
        ("", "Namespace") => {
            object["status"] = json!({"phase": "Active"});
            let name = object["metadata"]["name"].clone();
            if name.is_string() {
                object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            }
            if object["spec"].is_null() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        ("", "Service") => {
            if object["spec"]["clusterIP"].is_null() {
                let n = store.resource_version();
                object["spec"]["clusterIP"] =
                    format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 2).into();
            }
            if object["spec"]["type"].is_null() {
                object["spec"]["type"] = "ClusterIP".into();
            }
            let ports = object["spec"]
                .get_mut("ports")
                .and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                if port["protocol"].is_null() {
                    port["protocol"] = "TCP".into();
                }
                if port["targetPort"].is_null() {
                    port["targetPort"] = port["port"].clone();
                }
            }
            object["status"] = json!({"loadBalancer": {}});
        }
        ("", "Pod") => {
            inject(store, scenario, namespace, &mut object);
            pod_defaults(&mut object);
        }
        (_, "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job") => {
            workload_defaults(&t.kind, &mut object);
            object["status"] = json!({});
        }
        _ => {}
    }
    object
}

/// The API server's defaults for workload specs that clients read back: `kubectl rollout status`
/// refuses a daemon set or stateful set without a RollingUpdate strategy, for one. Applied on
/// create and on every update, as the API server defaults both.
pub fn workload_defaults(kind: &str, object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let defaults = match kind {
        "Deployment" => json!({
            "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        }),
        "ReplicaSet" => json!({"replicas": 1}),
        "StatefulSet" => json!({
            "replicas": 1, "revisionHistoryLimit": 10, "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        }),
        "DaemonSet" => json!({
            "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        }),
        "Job" => json!({"backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false}),
        _ => return,
    };
    if let (Some(spec), Some(defaults)) = (spec.as_object_mut(), defaults.as_object()) {
        for (key, value) in defaults {
            spec.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

fn pod_defaults(pod: &mut Value) {
    let spec = &mut pod["spec"];
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("schedulerName", json!("default-scheduler")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("serviceAccountName", json!("default")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                if c["imagePullPolicy"].is_null() {
                    let latest = c["image"]
                        .as_str()
                        .is_none_or(|i| i.ends_with(":latest") || !i.contains(':'));
                    c["imagePullPolicy"] = if latest { "Always" } else { "IfNotPresent" }.into();
                }
                if c["terminationMessagePath"].is_null() {
                    c["terminationMessagePath"] = "/dev/termination-log".into();
                    c["terminationMessagePolicy"] = "File".into();
                }
                if c["resources"].is_null() {
                    c["resources"] = json!({});
                }
                for port in c
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if port["protocol"].is_null() {
                        port["protocol"] = "TCP".into();
                    }
                }
            }
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": qos_class(&pod["spec"])});
}

fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec["containers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let any = containers.iter().any(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
            || c["resources"]["limits"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][r];
            let request = &c["resources"]["requests"][r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Whether a deployment has at least one available replica.
fn deployment_ready(store: &Store, namespace: &str, name: &str) -> bool {
    store
        .get_store("apps/deployments", namespace, name)
        .is_some_and(|d| d["status"]["availableReplicas"].as_i64().unwrap_or(0) >= 1)
}

fn has_container(pod: &Value, name: &str) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        pod["spec"][list]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["name"] == name))
    })
}

/// The mesh webhooks: Linkerd by the `linkerd.io/inject` annotation (namespace or pod), Istio by
/// the `istio-injection` or `istio.io/rev` namespace label; each only once its injector
/// deployment is Ready, as a webhook whose backend is not serving injects nothing
/// (`failurePolicy: Ignore`).
fn inject(store: &Store, scenario: &Scenario, namespace: &str, pod: &mut Value) {
    let Some(ns) = store.get_store("/namespaces", "", namespace) else {
        return;
    };
    let annotation =
        |v: &Value, k: &str| v["metadata"]["annotations"][k].as_str().map(str::to_owned);
    let label = |v: &Value, k: &str| v["metadata"]["labels"][k].as_str().map(str::to_owned);

    let linkerd = match annotation(pod, "linkerd.io/inject").as_deref() {
        Some("enabled" | "ingress") => true,
        Some(_) => false,
        None => annotation(&ns, "linkerd.io/inject").as_deref() == Some("enabled"),
    };
    if linkerd
        && !has_container(pod, "linkerd-proxy")
        && let Some(injector) = scenario.injector("linkerd")
        && deployment_ready(store, &injector.namespace, &injector.deployment)
    {
        inject_linkerd(pod, &injector.namespace, &injector.proxy_image);
    }

    let istio_ns = label(&ns, "istio-injection").as_deref() == Some("enabled")
        || (label(&ns, "istio.io/rev").is_some()
            && label(&ns, "istio-injection").as_deref() != Some("disabled"));
    let opt = label(pod, "sidecar.istio.io/inject")
        .or_else(|| annotation(pod, "sidecar.istio.io/inject"));
    let istio = match opt.as_deref() {
        Some("false") => false,
        Some("true") => true,
        _ => istio_ns,
    };
    if istio
        && !has_container(pod, "istio-proxy")
        && let Some(injector) = scenario.injector("istio")
        && deployment_ready(store, &injector.namespace, &injector.deployment)
    {
        inject_istio(pod, &injector.proxy_image);
    }
}

fn push_front(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(items) => items.insert(0, item),
        None => *list = json!([item]),
    }
}

fn push_back(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(items) => items.push(item),
        None => *list = json!([item]),
    }
}

fn inject_linkerd(pod: &mut Value, control_plane_ns: &str, image: &str) {
    let version = image.rsplit(':').next().unwrap_or("unknown").to_owned();
    push_front(
        &mut pod["spec"]["initContainers"],
        json!({"name": "linkerd-init", "image": "cr.l5d.io/linkerd/proxy-init:v2.2.3",
            "args": ["--incoming-proxy-port", "4143", "--outgoing-proxy-port", "4140", "--proxy-uid", "2102"],
            "resources": {"limits": {"cpu": "100m", "memory": "20Mi"}, "requests": {"cpu": "100m", "memory": "20Mi"}},
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 65534}}),
    );
    push_front(
        &mut pod["spec"]["containers"],
        json!({"name": "linkerd-proxy", "image": image,
            "ports": [{"containerPort": 4143, "name": "linkerd-proxy"}, {"containerPort": 4191, "name": "linkerd-admin"}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 4191}, "initialDelaySeconds": 2},
            "lifecycle": {"postStart": {"exec": {"command": ["/usr/lib/linkerd/linkerd-await", "--timeout=2m", "--port=4191"]}}},
            "securityContext": {"runAsUser": 2102, "readOnlyRootFilesystem": true}}),
    );
    let meta = &mut pod["metadata"];
    meta["annotations"]["linkerd.io/created-by"] =
        format!("linkerd/proxy-injector {version}").into();
    meta["annotations"]["linkerd.io/proxy-version"] = version.into();
    meta["annotations"]["linkerd.io/identity-mode"] = "default".into();
    meta["annotations"]["linkerd.io/inject"] = "enabled".into();
    meta["labels"]["linkerd.io/control-plane-ns"] = control_plane_ns.into();
}

fn inject_istio(pod: &mut Value, image: &str) {
    let app = pod["metadata"]["labels"]["app"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    push_back(
        &mut pod["spec"]["initContainers"],
        json!({"name": "istio-init", "image": image,
            "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT"],
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0}}),
    );
    push_back(
        &mut pod["spec"]["containers"],
        json!({"name": "istio-proxy", "image": image,
            "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
            "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15},
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "securityContext": {"runAsUser": 1337, "runAsGroup": 1337}}),
    );
    let meta = &mut pod["metadata"];
    meta["annotations"]["sidecar.istio.io/status"] = json!({
        "initContainers": ["istio-init"], "containers": ["istio-proxy"],
        "volumes": ["istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
        "imagePullSecrets": null, "revision": "default"
    })
    .to_string()
    .into();
    meta["labels"]["security.istio.io/tlsMode"] = "istio".into();
    meta["labels"]["service.istio.io/canonical-name"] = app.into();
    meta["labels"]["service.istio.io/canonical-revision"] = "latest".into();
}

type PodsByOwner = HashMap<String, Vec<Arc<Value>>>;

/// The pods `workload` owned when the pass began.
fn owned_pods<'a>(by_owner: &'a PodsByOwner, workload: &Value) -> &'a [Arc<Value>] {
    by_owner
        .get(str_of(workload, "/metadata/uid"))
        .map_or(&[], Vec::as_slice)
}

/// A pod's planned life, drawn once when the simulator first sees it.
#[derive(Debug, Clone)]
struct Plan {
    schedule_at: Instant,
    pull: Duration,
    start: Duration,
    readiness: Duration,
    /// How long a pod that does not restart runs before it succeeds.
    run: Option<Duration>,
    scheduled: Option<(Instant, String)>,
    started: Option<String>,
    ready: Option<String>,
    finished: Option<String>,
    ip: Option<String>,
    /// The pod's CPU requests in nanocores (for the scheduler), computed once.
    cpu_request: i128,
    /// The resourceVersion the pod had when its status was last brought up to date: a pod
    /// still at it, with no transition due, is skipped without being rebuilt.
    synced_rv: String,
}

impl Plan {
    fn stage(&self) -> (bool, bool, bool, bool) {
        (
            self.scheduled.is_some(),
            self.started.is_some(),
            self.ready.is_some(),
            self.finished.is_some(),
        )
    }
}

/// The simulator's own state; runs in one task beside the API server.
#[derive(Debug)]
pub struct Simulator {
    cluster: Arc<Cluster>,
    rng: StdRng,
    plans: HashMap<String, Plan>,
    next_ip: HashMap<String, u32>,
    types: Types,
}

#[derive(Debug)]
struct Types {
    pods: ResourceType,
    nodes: ResourceType,
    deployments: ResourceType,
    replicasets: ResourceType,
    statefulsets: ResourceType,
    daemonsets: ResourceType,
    jobs: ResourceType,
}

fn jittered(rng: &mut StdRng, delay: Delay) -> Duration {
    if delay.jitter.is_zero() {
        return delay.mean;
    }
    let lo = delay.mean.saturating_sub(delay.jitter);
    let hi = delay.mean + delay.jitter;
    rng.random_range(lo..=hi)
}

/// The string at a `/a/b` path of object keys (no JSON-pointer escapes: the simulator's own
/// paths), or "". Cheaper than `Value::pointer`, which the simulator calls per pod per pass.
fn str_of<'a>(v: &'a Value, path: &str) -> &'a str {
    path.split('/')
        .skip(1)
        .try_fold(v, |node, key| node.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn owner_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .and_then(|r| r["uid"].as_str())
}

fn owner_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }])
}

fn replicas(v: &Value) -> i64 {
    v["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// A pod-template hash: FNV-1a of the template, printed in the name alphabet.
fn template_hash(template: &Value) -> String {
    let h = fnv1a(&[template.to_string().as_bytes()]);
    let n = NAME_ALPHABET.len() as u64;
    (0..10)
        .map(|i| char::from(NAME_ALPHABET[usize::try_from((h >> (i * 6)) % n).unwrap_or(0)]))
        .collect()
}

impl Simulator {
    pub fn new(cluster: Arc<Cluster>) -> Simulator {
        let (rng, types) = {
            let store = cluster.lock();
            let types = Types {
                pods: rt(&store, "", "pods"),
                nodes: rt(&store, "", "nodes"),
                deployments: rt(&store, "apps", "deployments"),
                replicasets: rt(&store, "apps", "replicasets"),
                statefulsets: rt(&store, "apps", "statefulsets"),
                daemonsets: rt(&store, "apps", "daemonsets"),
                jobs: rt(&store, "batch", "jobs"),
            };
            (
                StdRng::seed_from_u64(cluster.scenario.seed ^ 0x5eed_5eed),
                types,
            )
        };
        Simulator {
            cluster,
            rng,
            plans: HashMap::new(),
            next_ip: HashMap::new(),
            types,
        }
    }

    /// Runs until `stop` resolves: reconciles after every burst of changes and at every
    /// planned transition.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        // Transitions due within this much of each other are handled in one pass: at most this
        // much later than planned, for far fewer passes over every pod.
        const BATCH: Duration = Duration::from_millis(10);
        let mut rx = self.cluster.lock().subscribe();
        tokio::pin!(stop);
        loop {
            // Changes up to `settled` were made or seen by this pass: they need no second one.
            let (wake, settled) = self.reconcile_settled(Instant::now());
            let deadline =
                wake.map_or_else(|| Instant::now() + Duration::from_secs(3600), |w| w + BATCH);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    changed = rx.recv() => {
                        let mut foreign = match changed {
                            Ok(event) => event.rv > settled,
                            Err(RecvError::Lagged(_)) => true,
                            Err(RecvError::Closed) => return,
                        };
                        loop {
                            match rx.try_recv() {
                                Ok(event) => foreign |= event.rv > settled,
                                Err(TryRecvError::Lagged(_)) => foreign = true,
                                Err(_) => break,
                            }
                        }
                        if foreign {
                            break;
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
    }

    /// One pass of every controller until nothing changes; returns when the next planned
    /// transition is due.
    pub fn reconcile(&mut self, now: Instant) -> Option<Instant> {
        self.reconcile_settled(now).0
    }

    /// As `reconcile`, also returning the resourceVersion the store had when the pass let go of
    /// it: every change up to it was seen by the pass (read under the same lock, so a client's
    /// write cannot slip in between and be taken for the simulator's own).
    fn reconcile_settled(&mut self, now: Instant) -> (Option<Instant>, u64) {
        let cluster = Arc::clone(&self.cluster);
        let mut store = cluster.lock();
        for _ in 0..16 {
            let mut changed = false;
            changed |= self.deployments(&mut store);
            // One index for the four pod-owning controllers: each creates and deletes only pods
            // of its own owners, so what one changes does not stale another's part of it.
            let by_owner = self.pods_by_owner(&store);
            changed |= self.replica_sets(&mut store, &by_owner);
            changed |= self.stateful_sets(&mut store, &by_owner);
            changed |= self.daemon_sets(&mut store, &by_owner);
            changed |= self.jobs(&mut store, &by_owner);
            changed |= self.pods(&mut store, now);
            if !changed {
                break;
            }
        }
        let pods = store.list(&self.types.pods, None);
        if self.plans.len() > pods.len() {
            let live: std::collections::HashSet<&str> =
                pods.iter().map(|p| str_of(p, "/metadata/uid")).collect();
            self.plans.retain(|uid, _| live.contains(uid.as_str()));
        }
        (self.next_wake(now), store.resource_version())
    }

    fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.plans
            .values()
            .filter_map(|p| match &p.scheduled {
                None => Some(p.schedule_at),
                Some((at, _)) => {
                    let running = *at + p.pull + p.start;
                    let ready = running + p.readiness;
                    let done = p.run.map(|r| running + r);
                    [Some(running), Some(ready), done]
                        .into_iter()
                        .flatten()
                        .find(|t| *t > now)
                }
            })
            .filter(|t| *t > now)
            .min()
    }

    /// Replaces an object's status, if it changed.
    fn write_status(store: &mut Store, t: &ResourceType, old: &Value, status: Value) -> bool {
        let mut new = old.clone();
        new["status"] = status;
        Self::write(store, t, old, new)
    }

    fn write(store: &mut Store, t: &ResourceType, old: &Value, new: Value) -> bool {
        if *old == new {
            return false;
        }
        let ns = str_of(old, "/metadata/namespace").to_owned();
        let name = str_of(old, "/metadata/name").to_owned();
        store.replace(t, &ns, &name, new, None).is_ok()
    }

    fn create_pod(
        &mut self,
        store: &mut Store,
        owner: &Value,
        name: Option<String>,
        node: Option<&str>,
    ) {
        let namespace = str_of(owner, "/metadata/namespace").to_owned();
        let template = &owner["spec"]["template"];
        let mut pod = json!({
            "metadata": template["metadata"].clone(),
            "spec": template["spec"].clone(),
        });
        if !pod["metadata"].is_object() {
            pod["metadata"] = json!({});
        }
        match name {
            Some(n) => pod["metadata"]["name"] = n.into(),
            None => {
                pod["metadata"]["generateName"] =
                    format!("{}-", str_of(owner, "/metadata/name")).into();
            }
        }
        pod["metadata"]["ownerReferences"] = owner_ref(owner);
        if let Some(node) = node {
            pod["spec"]["nodeName"] = node.into();
        }
        if owner["kind"] == "Job" {
            if pod["spec"]["restartPolicy"].is_null() {
                pod["spec"]["restartPolicy"] = "Never".into();
            }
            pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] =
                owner["metadata"]["name"].clone();
        }
        let pod = admit(
            store,
            &self.cluster.scenario,
            &self.types.pods,
            &namespace,
            pod,
        );
        if let Err(e) = store.create(&self.types.pods, &namespace, pod) {
            tracing::warn!(
                "cannot create a pod for {}: {e}",
                str_of(owner, "/metadata/name")
            );
        }
    }

    /// Pods by their controlling owner's uid.
    fn pods_by_owner(&self, store: &Store) -> PodsByOwner {
        let mut map = PodsByOwner::new();
        for pod in store.list(&self.types.pods, None) {
            if let Some(uid) = owner_uid(&pod) {
                map.entry(uid.to_owned())
                    .or_default()
                    .push(Arc::clone(&pod));
            }
        }
        map
    }

    fn deployments(&mut self, store: &mut Store) -> bool {
        let mut changed = false;
        let sets = store.list(&self.types.replicasets, None);
        for d in store.list(&self.types.deployments, None) {
            let uid = str_of(&d, "/metadata/uid");
            let ns = str_of(&d, "/metadata/namespace").to_owned();
            let hash = template_hash(&d["spec"]["template"]);
            let rs_name = format!("{}-{hash}", str_of(&d, "/metadata/name"));
            let want = replicas(&d);
            let owned: Vec<&Arc<Value>> = sets
                .iter()
                .filter(|rs| owner_uid(rs) == Some(uid))
                .collect();
            let current = owned
                .iter()
                .find(|rs| str_of(rs, "/metadata/name") == rs_name);
            match current {
                None => {
                    let mut template = d["spec"]["template"].clone();
                    template["metadata"]["labels"]["pod-template-hash"] = hash.clone().into();
                    let mut selector = d["spec"]["selector"].clone();
                    selector["matchLabels"]["pod-template-hash"] = hash.clone().into();
                    let mut labels = template["metadata"]["labels"].clone();
                    labels["pod-template-hash"] = hash.clone().into();
                    let revision = owned.len() + 1;
                    let rs = json!({
                        "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                            "annotations": {"deployment.kubernetes.io/desired-replicas": want.to_string(),
                                "deployment.kubernetes.io/max-replicas": want.to_string(),
                                "deployment.kubernetes.io/revision": revision.to_string()},
                            "ownerReferences": owner_ref(&d)},
                        "spec": {"replicas": want, "selector": selector, "template": template},
                        "status": {"replicas": 0},
                    });
                    changed |= store.create(&self.types.replicasets, &ns, rs).is_ok();
                }
                Some(rs) if replicas(rs) != want => {
                    let mut new = (***rs).clone();
                    new["spec"]["replicas"] = want.into();
                    new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                        want.to_string().into();
                    changed |= Self::write(store, &self.types.replicasets, rs, new);
                }
                Some(_) => {}
            }
            // Old replica sets go to zero at once (documented: no surge-by-surge rollout).
            for old in owned
                .iter()
                .filter(|rs| str_of(rs, "/metadata/name") != rs_name && replicas(rs) != 0)
            {
                let mut new = (***old).clone();
                new["spec"]["replicas"] = 0.into();
                changed |= Self::write(store, &self.types.replicasets, old, new);
            }
            // Status from the replica sets as they are now.
            let sets_now: Vec<Arc<Value>> = store
                .list(&self.types.replicasets, Some(&ns))
                .into_iter()
                .filter(|rs| owner_uid(rs) == Some(uid))
                .collect();
            let sum = |field: &str| -> i64 {
                sets_now
                    .iter()
                    .map(|rs| rs["status"][field].as_i64().unwrap_or(0))
                    .sum()
            };
            let updated = sets_now
                .iter()
                .find(|rs| str_of(rs, "/metadata/name") == rs_name)
                .map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0));
            let total = sum("replicas");
            let ready = sum("readyReplicas");
            let available = sum("availableReplicas");
            let complete = updated == want && total == want && available == want;
            let max_unavailable = want / 4;
            let mut status = json!({
                "observedGeneration": d["metadata"]["generation"],
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": available,
                "unavailableReplicas": (want - available).max(0),
            });
            drop_zeros(
                &mut status,
                &[
                    "replicas",
                    "updatedReplicas",
                    "readyReplicas",
                    "availableReplicas",
                    "unavailableReplicas",
                ],
            );
            let old_conditions = d["status"]["conditions"].clone();
            let available_cond = if available >= want - max_unavailable {
                (
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".to_owned(),
                )
            } else {
                (
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".to_owned(),
                )
            };
            let progressing = if complete {
                (
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                )
            } else {
                (
                    "True",
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{rs_name}\" is progressing."),
                )
            };
            status["conditions"] = json!([
                condition(
                    &old_conditions,
                    "Available",
                    available_cond.0,
                    available_cond.1,
                    &available_cond.2
                ),
                condition(
                    &old_conditions,
                    "Progressing",
                    progressing.0,
                    progressing.1,
                    &progressing.2
                ),
            ]);
            if let Some(d_now) =
                store.get(&self.types.deployments, &ns, str_of(&d, "/metadata/name"))
            {
                changed |= Self::write_status(store, &self.types.deployments, &d_now, status);
            }
        }
        changed
    }

    fn replica_sets(&mut self, store: &mut Store, by_owner: &PodsByOwner) -> bool {
        let mut changed = false;
        for rs in store.list(&self.types.replicasets, None) {
            let mut pods = owned_pods(by_owner, &rs).to_vec();
            let want = usize::try_from(replicas(&rs)).unwrap_or(0);
            // New pods are not ready; the status counts them without listing the pods again.
            let mut created = 0;
            if pods.len() < want {
                for _ in pods.len()..want {
                    self.create_pod(store, &rs, None, None);
                }
                created = want - pods.len();
                changed = true;
            } else if pods.len() > want {
                // Not-ready pods go first, then the newest.
                pods.sort_by_key(|p| {
                    (
                        pod_ready(p),
                        std::cmp::Reverse(str_of(p, "/metadata/creationTimestamp").to_owned()),
                    )
                });
                let excess = pods.len() - want;
                for p in pods.drain(..excess) {
                    changed |= store
                        .delete(
                            &self.types.pods,
                            str_of(&p, "/metadata/namespace"),
                            str_of(&p, "/metadata/name"),
                            false,
                        )
                        .is_ok();
                }
            }
            let ready = count(pods.iter().filter(|p| pod_ready(p)));
            let total = i64::try_from(pods.len() + created).unwrap_or(0);
            let mut status = json!({"replicas": total, "fullyLabeledReplicas": total, "readyReplicas": ready,
                "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"]});
            drop_zeros(
                &mut status,
                &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
            );
            changed |= Self::write_status(store, &self.types.replicasets, &rs, status);
        }
        changed
    }

    fn stateful_sets(&mut self, store: &mut Store, by_owner: &PodsByOwner) -> bool {
        let mut changed = false;
        for sts in store.list(&self.types.statefulsets, None) {
            let name = str_of(&sts, "/metadata/name").to_owned();
            let pods = owned_pods(by_owner, &sts);
            let want = replicas(&sts);
            for i in 0..want {
                let pod_name = format!("{name}-{i}");
                if !pods.iter().any(|p| str_of(p, "/metadata/name") == pod_name) {
                    self.create_pod(store, &sts, Some(pod_name), None);
                    changed = true;
                    break; // OrderedReady: one at a time
                }
            }
            let ready = count(pods.iter().filter(|p| pod_ready(p)));
            let total = count(pods.iter());
            let revision = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
            let status = json!({"replicas": total, "readyReplicas": ready, "availableReplicas": ready,
                "currentReplicas": total, "updatedReplicas": total, "observedGeneration": sts["metadata"]["generation"],
                "currentRevision": revision, "updateRevision": revision});
            changed |= Self::write_status(store, &self.types.statefulsets, &sts, status);
        }
        changed
    }

    fn daemon_sets(&mut self, store: &mut Store, by_owner: &PodsByOwner) -> bool {
        let mut changed = false;
        let nodes = store.list(&self.types.nodes, None);
        for ds in store.list(&self.types.daemonsets, None) {
            let pods = owned_pods(by_owner, &ds);
            let eligible: Vec<&Arc<Value>> = nodes
                .iter()
                .filter(|n| fits_selectors(&ds["spec"]["template"]["spec"], n))
                .collect();
            for node in &eligible {
                let node_name = str_of(node, "/metadata/name");
                if !pods
                    .iter()
                    .any(|p| str_of(p, "/spec/nodeName") == node_name)
                {
                    self.create_pod(store, &ds, None, Some(node_name));
                    changed = true;
                }
            }
            let ready = count(pods.iter().filter(|p| pod_ready(p)));
            let desired = count(eligible.iter());
            let scheduled = count(pods.iter());
            let mut status = json!({"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
                "updatedNumberScheduled": scheduled, "numberReady": ready, "numberAvailable": ready,
                "numberMisscheduled": 0, "observedGeneration": ds["metadata"]["generation"]});
            if desired > ready {
                status["numberUnavailable"] = (desired - ready).into();
            }
            changed |= Self::write_status(store, &self.types.daemonsets, &ds, status);
        }
        changed
    }

    fn jobs(&mut self, store: &mut Store, by_owner: &PodsByOwner) -> bool {
        let mut changed = false;
        for job in store.list(&self.types.jobs, None) {
            let pods = owned_pods(by_owner, &job);
            let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
            let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1).max(1);
            let succeeded = count(pods.iter().filter(|p| p["status"]["phase"] == "Succeeded"));
            let active = count(pods.iter()) - succeeded;
            let mut to_start = (completions - succeeded - active)
                .min(parallelism - active)
                .max(0);
            while to_start > 0 {
                self.create_pod(store, &job, None, None);
                changed = true;
                to_start -= 1;
            }
            let start = job["status"]["startTime"]
                .as_str()
                .map_or_else(now_rfc3339, str::to_owned);
            let mut status =
                json!({"startTime": start, "active": active, "succeeded": succeeded, "ready": 0});
            if succeeded >= completions {
                let done = job["status"]["completionTime"]
                    .as_str()
                    .map_or_else(now_rfc3339, str::to_owned);
                status["completionTime"] = done.clone().into();
                status["active"] = 0.into();
                status["conditions"] = json!([
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": done, "lastTransitionTime": done},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": done, "lastTransitionTime": done},
                ]);
            }
            changed |= Self::write_status(store, &self.types.jobs, &job, status);
        }
        changed
    }

    fn new_plan(&mut self, pod: &Value, now: Instant) -> Plan {
        let timing = &self.cluster.scenario.timing;
        let (schedule, pull, start, readiness, run) = (
            timing.schedule,
            timing.pull,
            timing.start,
            timing.readiness,
            timing.job_run,
        );
        Plan {
            schedule_at: now + jittered(&mut self.rng, schedule),
            pull: jittered(&mut self.rng, pull),
            start: jittered(&mut self.rng, start),
            readiness: jittered(&mut self.rng, readiness),
            run: (pod["spec"]["restartPolicy"] != "Always").then(|| jittered(&mut self.rng, run)),
            scheduled: None,
            started: None,
            ready: None,
            finished: None,
            ip: None,
            cpu_request: cpu_requests(&pod["spec"]),
            synced_rv: String::new(),
        }
    }

    fn pods(&mut self, store: &mut Store, now: Instant) -> bool {
        let mut changed = false;
        let nodes = store.list(&self.types.nodes, None);
        let pods = store.list(&self.types.pods, None);
        // Requests and counts already placed on each node.
        let mut placed: BTreeMap<String, (usize, i128)> = BTreeMap::new();
        for p in &pods {
            let node = str_of(p, "/spec/nodeName");
            if !node.is_empty()
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            {
                let request = self
                    .plans
                    .get(str_of(p, "/metadata/uid"))
                    .map_or_else(|| cpu_requests(&p["spec"]), |plan| plan.cpu_request);
                let e = placed.entry(node.to_owned()).or_default();
                e.0 += 1;
                e.1 += request;
            }
        }
        for pod in pods {
            let uid = str_of(&pod, "/metadata/uid").to_owned();
            let mut plan = match self.plans.remove(&uid) {
                Some(p) => p,
                None => self.new_plan(&pod, now),
            };
            let before = plan.stage();
            let mut node_name = str_of(&pod, "/spec/nodeName").to_owned();
            let mut unschedulable = None;
            if plan.scheduled.is_none() && now >= plan.schedule_at {
                if node_name.is_empty() {
                    match choose_node(&nodes, &placed, &pod) {
                        Ok(n) => {
                            let e = placed.entry(n.clone()).or_default();
                            e.0 += 1;
                            e.1 += plan.cpu_request;
                            node_name = n;
                        }
                        Err(why) => unschedulable = Some(why),
                    }
                }
                if !node_name.is_empty() {
                    plan.scheduled = Some((now, now_rfc3339()));
                    let n = self.next_ip.entry(node_name.clone()).or_insert(1);
                    *n += 1;
                    let index = nodes
                        .iter()
                        .position(|x| str_of(x, "/metadata/name") == node_name)
                        .unwrap_or(0);
                    plan.ip = Some(format!("10.244.{index}.{}", *n % 250 + 2));
                }
            }
            if let Some((at, _)) = plan.scheduled {
                let running_at = at + plan.pull + plan.start;
                if now >= running_at && plan.started.is_none() {
                    plan.started = Some(now_rfc3339());
                }
                if now >= running_at + plan.readiness
                    && plan.ready.is_none()
                    && plan.run.is_none_or(|r| r > plan.readiness)
                {
                    plan.ready = Some(now_rfc3339());
                }
                if plan.run.is_some_and(|r| now >= running_at + r) && plan.finished.is_none() {
                    plan.finished = Some(now_rfc3339());
                }
            }
            let rv = str_of(&pod, "/metadata/resourceVersion");
            if plan.stage() == before && plan.synced_rv == rv && unschedulable.is_none() {
                self.plans.insert(uid, plan);
                continue;
            }
            let node = nodes
                .iter()
                .find(|n| str_of(n, "/metadata/name") == node_name);
            let mut new = (*pod).clone();
            if !node_name.is_empty() {
                new["spec"]["nodeName"] = node_name.clone().into();
            }
            new["status"] = pod_status(&pod, &plan, node, unschedulable.as_deref());
            plan.synced_rv = rv.to_owned();
            if *pod != new {
                let ns = str_of(&pod, "/metadata/namespace");
                let name = str_of(&pod, "/metadata/name");
                if let Ok(stored) = store.replace(&self.types.pods, ns, name, new, None) {
                    plan.synced_rv = str_of(&stored, "/metadata/resourceVersion").to_owned();
                    changed = true;
                }
            }
            self.plans.insert(uid, plan);
        }
        changed
    }
}

/// How many, as the API's integer counts.
fn count<T>(items: impl Iterator<Item = T>) -> i64 {
    i64::try_from(items.count()).unwrap_or(i64::MAX)
}

/// Removes the counts that are zero, as the API server omits them (`omitempty`).
fn drop_zeros(status: &mut Value, fields: &[&str]) {
    if let Some(map) = status.as_object_mut() {
        map.retain(|k, v| !(fields.contains(&k.as_str()) && *v == 0));
    }
}

fn condition(old: &Value, kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let previous = old
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let now = now_rfc3339();
    let transition = match previous {
        Some(p) if p["status"] == status => {
            p["lastTransitionTime"].as_str().unwrap_or(&now).to_owned()
        }
        _ => now.clone(),
    };
    let update = match previous {
        Some(p) if p["status"] == status && p["reason"] == reason => {
            p["lastUpdateTime"].as_str().unwrap_or(&now).to_owned()
        }
        _ => now,
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": transition, "lastUpdateTime": update})
}

fn cpu_requests(spec: &Value) -> i128 {
    spec["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["resources"]["requests"]["cpu"].as_str())
                .filter_map(|q| Quantity::parse(q).ok())
                .map(Quantity::nanos)
                .sum()
        })
        .unwrap_or(0)
}

fn fits_selectors(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels[k] == *v));
    let affinity_ok = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .is_none_or(|terms| {
            terms.iter().any(|t| label_selector_object_matches(&json!({"matchExpressions": t["matchExpressions"]}), labels))
        });
    let tolerated = node["spec"]["taints"].as_array().is_none_or(|taints| {
        taints.iter().all(|taint| {
            taint["effect"] == "PreferNoSchedule"
                || spec["tolerations"].as_array().is_some_and(|ts| {
                    ts.iter().any(|t| {
                        (t["operator"] == "Exists" && t["key"].is_null())
                            || (t["key"] == taint["key"]
                                && (t["effect"].is_null() || t["effect"] == taint["effect"]))
                    })
                })
        })
    });
    selector_ok && affinity_ok && tolerated
}

/// The node with the fewest pods among those the pod fits on, as a spreading scheduler picks.
fn choose_node(
    nodes: &[Arc<Value>],
    placed: &BTreeMap<String, (usize, i128)>,
    pod: &Value,
) -> Result<String, String> {
    let request = cpu_requests(&pod["spec"]);
    let mut best: Option<(usize, &str)> = None;
    let mut too_full = 0;
    let mut mismatched = 0;
    for node in nodes {
        let name = str_of(node, "/metadata/name");
        if !fits_selectors(&pod["spec"], node) {
            mismatched += 1;
            continue;
        }
        let (count, cpu) = placed.get(name).copied().unwrap_or((0, 0));
        let max_pods = str_of(node, "/status/allocatable/pods")
            .parse::<usize>()
            .unwrap_or(110);
        let allocatable = Quantity::parse(str_of(node, "/status/allocatable/cpu"))
            .map_or(i128::MAX, Quantity::nanos);
        if count >= max_pods || cpu + request > allocatable {
            too_full += 1;
            continue;
        }
        if best.is_none_or(|(c, _)| count < c) {
            best = Some((count, name));
        }
    }
    best.map(|(_, n)| n.to_owned()).ok_or_else(|| {
        format!(
            "0/{} nodes are available: {too_full} Insufficient cpu or too many pods, {mismatched} node(s) didn't match Pod's node affinity/selector or had untolerated taints.",
            nodes.len()
        )
    })
}

fn pod_status(
    pod: &Value,
    plan: &Plan,
    node: Option<&Arc<Value>>,
    unschedulable: Option<&str>,
) -> Value {
    let old = &pod["status"];
    let qos = old["qosClass"].clone();
    let created = str_of(pod, "/metadata/creationTimestamp").to_owned();
    let Some((_, scheduled_at)) = &plan.scheduled else {
        let mut status = json!({"phase": "Pending", "qosClass": qos});
        if let Some(why) = unschedulable {
            status["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": why, "lastProbeTime": null, "lastTransitionTime": created}]);
        } else if let Some(c) = old.get("conditions") {
            status["conditions"] = c.clone();
        }
        return status;
    };
    let host_ip = node
        .and_then(|n| n["status"]["addresses"][0]["address"].as_str())
        .unwrap_or("172.18.0.2")
        .to_owned();
    let running = plan.started.is_some() && plan.finished.is_none();
    let ready = plan.ready.is_some() && plan.finished.is_none();
    let phase = if plan.finished.is_some() {
        "Succeeded"
    } else if running {
        "Running"
    } else {
        "Pending"
    };
    let cond = |kind: &str, ok: bool, since: &str| {
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null,
            "lastTransitionTime": since});
        if !ok {
            c["reason"] = if plan.finished.is_some() {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }
            .into();
        }
        c
    };
    let started = plan.started.clone().unwrap_or_else(|| scheduled_at.clone());
    let ready_since = plan
        .ready
        .clone()
        .or_else(|| plan.finished.clone())
        .unwrap_or_else(|| scheduled_at.clone());
    let init_done = plan.started.is_some();
    let container_status = |c: &Value, init: bool| {
        let name = c["name"].as_str().unwrap_or_default();
        let image = c["image"].as_str().unwrap_or_default();
        let state = if init && init_done || plan.finished.is_some() {
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": plan.finished.clone().unwrap_or_else(|| started.clone())}})
        } else if running {
            json!({"running": {"startedAt": started}})
        } else {
            json!({"waiting": {"reason": if init { "PodInitializing" } else { "ContainerCreating" }}})
        };
        let mut s = json!({"name": name, "image": image, "imageID": format!("{image}@sha256:{}", "0".repeat(64)),
            "ready": if init { init_done } else { ready }, "restartCount": 0, "state": state,
            "started": if init { false } else { running }});
        if plan.started.is_some() {
            s["containerID"] = format!("containerd://{:064x}", name.len() as u64 ^ 0x5eed).into();
        }
        s
    };
    let mut status = json!({
        "phase": phase,
        "qosClass": qos,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": scheduled_at,
        "conditions": [
            cond("PodReadyToStartContainers", plan.started.is_some(), &started),
            cond("Initialized", init_done || pod["spec"]["initContainers"].is_null(), &started),
            cond("Ready", ready, &ready_since),
            cond("ContainersReady", ready, &ready_since),
            cond("PodScheduled", true, scheduled_at),
        ],
        "containerStatuses": pod["spec"]["containers"].as_array().map(|cs| cs.iter().map(|c| container_status(c, false)).collect::<Vec<_>>()).unwrap_or_default(),
    });
    if let Some(inits) = pod["spec"]["initContainers"].as_array() {
        status["initContainerStatuses"] = inits
            .iter()
            .map(|c| container_status(c, true))
            .collect::<Vec<_>>()
            .into();
    }
    if let Some(ip) = &plan.ip
        && plan.started.is_some()
    {
        status["podIP"] = ip.clone().into();
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        Scenario::parse(&format!(
            "schema: meshbench/kubesim-scenario/v1\nseed: 1\nnodes:\n  - {{name: cp, role: control-plane, cpu: 2, memory: 4Gi}}\n  - {{name: w, count: 2, cpu: 2, memory: 4Gi}}\n{extra}"
        ))
        .unwrap()
    }

    fn deployment(name: &str, ns: &str, replicas: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
    }

    /// A cluster of `scenario(extra)`, the deployments' resource type, and a simulator of it.
    fn simulated(extra: &str) -> (Arc<Cluster>, ResourceType, Simulator) {
        let cluster = Arc::new(Cluster::new(scenario(extra)).unwrap());
        let deploys = cluster
            .lock()
            .registry
            .by_path("apps", "v1", "deployments")
            .unwrap()
            .clone();
        let sim = Simulator::new(Arc::clone(&cluster));
        (cluster, deploys, sim)
    }

    #[test]
    fn a_deployment_becomes_ready_pods_on_workers() {
        let (cluster, deploys, mut sim) = simulated("");
        cluster
            .create(&deploys, "default", deployment("web", "default", 4))
            .unwrap();
        assert_eq!(sim.reconcile(Instant::now()), None);
        let store = cluster.lock();
        let d = store.get(&deploys, "default", "web").unwrap();
        assert_eq!(d["status"]["availableReplicas"], 4, "{d:#}");
        let pods = store.list(&sim.types.pods, Some("default"));
        assert_eq!(pods.len(), 4);
        for p in &pods {
            assert!(
                str_of(p, "/spec/nodeName").starts_with('w'),
                "control plane is tainted"
            );
            assert!(pod_ready(p));
        }
    }

    #[test]
    fn injection_waits_for_the_injector() {
        let (cluster, deploys, mut sim) = simulated(
            "bootstrap: |\n  apiVersion: v1\n  kind: Namespace\n  metadata: {name: app, annotations: {linkerd.io/inject: enabled}}\n  ---\n  apiVersion: v1\n  kind: Namespace\n  metadata: {name: linkerd}\n",
        );
        cluster
            .create(&deploys, "app", deployment("early", "app", 1))
            .unwrap();
        sim.reconcile(Instant::now());
        cluster
            .create(
                &deploys,
                "linkerd",
                deployment("linkerd-proxy-injector", "linkerd", 1),
            )
            .unwrap();
        sim.reconcile(Instant::now());
        cluster
            .create(&deploys, "app", deployment("late", "app", 1))
            .unwrap();
        sim.reconcile(Instant::now());
        let store = cluster.lock();
        for p in store.list(&sim.types.pods, Some("app")) {
            let injected = has_container(&p, "linkerd-proxy");
            assert_eq!(
                injected,
                str_of(&p, "/metadata/name").starts_with("late"),
                "{p:#}"
            );
        }
    }

    #[test]
    fn delays_are_planned_and_reproducible() {
        let extra = "timing:\n  pull: {mean: 10s, jitter: 2s}\n";
        let names = || {
            let (cluster, deploys, mut sim) = simulated(extra);
            cluster
                .create(&deploys, "default", deployment("web", "default", 3))
                .unwrap();
            let now = Instant::now();
            let wake = sim.reconcile(now).unwrap();
            assert!(wake >= now + Duration::from_secs(8) && wake <= now + Duration::from_secs(12));
            let store = cluster.lock();
            let pods = store.list(&sim.types.pods, None);
            assert!(pods.iter().all(|p| p["status"]["phase"] == "Pending"));
            pods.iter()
                .map(|p| str_of(p, "/metadata/name").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(), names());
    }

    #[test]
    fn jobs_complete_and_daemon_sets_cover_nodes() {
        let cluster = Arc::new(Cluster::new(scenario("")).unwrap());
        let (jobs, ds) = {
            let s = cluster.lock();
            (
                s.registry.by_path("batch", "v1", "jobs").unwrap().clone(),
                s.registry
                    .by_path("apps", "v1", "daemonsets")
                    .unwrap()
                    .clone(),
            )
        };
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
            "tolerations": [{"operator": "Exists"}]}});
        cluster
            .create(
                &jobs,
                "default",
                json!({"metadata": {"name": "once"}, "spec": {"template": template}}),
            )
            .unwrap();
        cluster
            .create(
                &ds,
                "kube-system",
                json!({"metadata": {"name": "proxy"}, "spec": {"template": template}}),
            )
            .unwrap();
        let mut sim = Simulator::new(Arc::clone(&cluster));
        sim.reconcile(Instant::now());
        let store = cluster.lock();
        let job = store.get(&jobs, "default", "once").unwrap();
        assert_eq!(job["status"]["succeeded"], 1, "{job:#}");
        let ds = store.get(&ds, "kube-system", "proxy").unwrap();
        assert_eq!(ds["status"]["numberReady"], 3, "{ds:#}");
    }
}
