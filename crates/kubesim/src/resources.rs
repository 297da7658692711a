//! The resource types kubesim serves: the built-in ones a mesh install and a workload touch, and
//! whatever a CustomResourceDefinition adds at run time.

use serde_json::Value;

/// One served resource (a group/version/plural), as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Served read-only, computed by the simulation (metrics.k8s.io).
    pub computed: bool,
    /// Defined by a CustomResourceDefinition of this name.
    pub crd: Option<String>,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods`: how the API server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The store key's first part: objects are stored per group and plural, not per version.
    pub fn store_name(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// Answered on create and never stored: access and identity reviews.
    pub fn is_review(&self) -> bool {
        matches!(
            self.group.as_str(),
            "authorization.k8s.io" | "authentication.k8s.io"
        ) && self.kind.ends_with("Review")
    }

    /// The verbs discovery lists.
    pub fn verbs(&self) -> Vec<String> {
        let verbs: &[&str] = if self.is_review() {
            &["create"]
        } else if self.computed {
            &["get", "list"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        };
        verbs.iter().map(|v| (*v).to_owned()).collect()
    }
}

/// (group, version, kind, plural, namespaced, short names, status subresource)
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
);

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "Namespace", "namespaces", false, &["ns"], true),
    ("", "v1", "Node", "nodes", false, &["no"], true),
    ("", "v1", "Pod", "pods", true, &["po"], true),
    ("", "v1", "Service", "services", true, &["svc"], true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
    ("", "v1", "Secret", "secrets", true, &[], false),
    ("", "v1", "Endpoints", "endpoints", true, &["ep"], false),
    ("", "v1", "Event", "events", true, &["ev"], false),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], true),
    ("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], true),
    ("", "v1", "LimitRange", "limitranges", true, &["limits"], false),
    ("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], true),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"], true),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true),
    ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], true),
    ("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[], false),
    ("batch", "v1", "Job", "jobs", true, &[], true),
    ("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], true),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], true),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], false),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false),
    ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], false),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], false),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false, &[], false),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false, &[], false),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], true),
    ("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[], true),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false, &[], false),
    ("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", false, &[], false),
    ("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", false, &[], false),
    ("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", true, &[], false),
    ("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", false, &[], false),
];

/// Every served resource type, built-in first, then those of CRDs in creation order.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        let types = BUILTINS
            .iter()
            .map(
                |&(group, version, kind, plural, namespaced, short, status)| ResourceType {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    kind: kind.to_owned(),
                    plural: plural.to_owned(),
                    singular: kind.to_lowercase(),
                    namespaced,
                    short_names: short.iter().map(|s| (*s).to_owned()).collect(),
                    status,
                    computed: group == "metrics.k8s.io",
                    crd: None,
                },
            )
            .collect();
        Registry { types }
    }
}

impl Registry {
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `/apis/{group}/{version}/{plural}`.
    pub fn by_path(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type for an object's `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Whether a group/version is served at all.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    /// Group names in discovery order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    /// Types of one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Registers the served versions of a CustomResourceDefinition (replacing an earlier
    /// definition of the same name). Returns false when the object is not a usable CRD.
    pub fn register_crd(&mut self, crd: &Value) -> bool {
        let Some(name) = crd.pointer("/metadata/name").and_then(Value::as_str) else {
            return false;
        };
        let spec = &crd["spec"];
        let (Some(group), Some(kind), Some(plural)) = (
            spec["group"].as_str(),
            spec.pointer("/names/kind").and_then(Value::as_str),
            spec.pointer("/names/plural").and_then(Value::as_str),
        ) else {
            return false;
        };
        let singular = spec
            .pointer("/names/singular")
            .and_then(Value::as_str)
            .map_or_else(|| kind.to_lowercase(), str::to_owned);
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let short_names: Vec<String> = spec
            .pointer("/names/shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        self.unregister_crd(name);
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        for v in versions {
            if v["served"].as_bool() == Some(false) {
                continue;
            }
            let Some(version) = v["name"].as_str() else {
                continue;
            };
            self.types.push(ResourceType {
                group: group.to_owned(),
                version: version.to_owned(),
                kind: kind.to_owned(),
                plural: plural.to_owned(),
                singular: singular.clone(),
                namespaced,
                short_names: short_names.clone(),
                status: v.pointer("/subresources/status").is_some(),
                computed: false,
                crd: Some(name.to_owned()),
            });
        }
        true
    }

    pub fn unregister_crd(&mut self, name: &str) {
        self.types.retain(|t| t.crd.as_deref() != Some(name));
    }
}

/// `apps/v1` → ("apps", "v1"); `v1` → ("", "v1").
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_resolve_by_path_and_kind() {
        let r = Registry::default();
        let d = r.by_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(d.plural, "deployments");
        assert_eq!(d.qualified(), "deployments.apps");
        assert!(r.by_path("", "v1", "pods").unwrap().namespaced);
        assert!(!r.by_path("", "v1", "nodes").unwrap().namespaced);
        assert!(r.by_kind("v1", "Deployment").is_none());
    }

    #[test]
    fn a_crd_adds_its_served_versions() {
        let mut r = Registry::default();
        let crd = serde_json::json!({
            "metadata": {"name": "servers.policy.linkerd.io"},
            "spec": {"group": "policy.linkerd.io", "scope": "Namespaced",
                "names": {"kind": "Server", "plural": "servers", "shortNames": ["srv"]},
                "versions": [{"name": "v1beta1", "served": true}, {"name": "v1alpha1", "served": false}]}
        });
        assert!(r.register_crd(&crd));
        assert!(
            r.by_path("policy.linkerd.io", "v1beta1", "servers")
                .is_some()
        );
        assert!(
            r.by_path("policy.linkerd.io", "v1alpha1", "servers")
                .is_none()
        );
        r.unregister_crd("servers.policy.linkerd.io");
        assert!(!r.serves("policy.linkerd.io", "v1beta1"));
    }
}
