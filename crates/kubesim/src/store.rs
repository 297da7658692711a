//! The object store: every object as JSON, keyed by resource, namespace and name, with a global
//! resourceVersion, a bounded history of changes for watches, and garbage collection by owner.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::resources::{Registry, ResourceType};
use crate::status::ApiError;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    /// `ResourceType::store_name`.
    pub resource: String,
    pub namespace: String,
    /// The object as serialized JSON: written once, shared by every watcher, and a fifth of the
    /// memory of a `Value` in the history.
    pub object: bytes::Bytes,
}

impl Event {
    /// The object, parsed (for selector matching).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.object).unwrap_or_default()
    }
}

type Key = (String, String, String);

/// Events already past, and a receiver for those to come.
pub type Changes = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// How many changes are kept for watches that resume from a resourceVersion.
const HISTORY: usize = 8192;

/// All objects, and the changes since a recent point.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
    rng: StdRng,
    pub registry: Registry,
}

/// The characters of generated name suffixes and template hashes (Kubernetes' own: no
/// vowels, no look-alikes).
pub(crate) const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a over parts, each followed by a 0xff separator: a hash that, unlike std's
/// `DefaultHasher`, is the same on every Rust release, so seeded runs stay reproducible.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Now, as the API server writes times: RFC 3339 in UTC, whole seconds.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// A time as the API server writes times: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

impl Store {
    pub fn new(seed: u64) -> Store {
        let (tx, _) = broadcast::channel(HISTORY);
        Store {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            tx,
            rng: StdRng::seed_from_u64(seed),
            registry: Registry::default(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// A lowercase alphanumeric suffix, as generateName and controllers use.
    pub fn random_suffix(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(NAME_ALPHABET[self.rng.random_range(0..NAME_ALPHABET.len())]))
            .collect()
    }

    fn uid(&mut self) -> String {
        let b: [u8; 16] = self.rng.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_be_bytes([b[4], b[5]]),
            u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
            (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
            u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
        )
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&(
                rt.store_name(),
                ns_of(rt, namespace).to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// Objects of one resource, in one namespace or (None) all, in key order.
    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.list_store(&rt.store_name(), namespace.map(|ns| ns_of(rt, ns)))
    }

    /// As `list`, by store name (`apps/deployments`).
    pub fn list_store(&self, store_name: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let lo = (
            store_name.to_owned(),
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        self.objects
            .range(lo..)
            .take_while(|((r, ns, _), _)| r == store_name && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| Arc::clone(v))
            .collect()
    }

    pub fn get_store(&self, store_name: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&(store_name.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn record(&mut self, kind: EventType, resource: String, namespace: String, object: Arc<Value>) {
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            resource,
            namespace,
            object: serde_json::to_vec(&*object).unwrap_or_default().into(),
        });
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Arc::clone(&event));
        // No receiver is not an error: nobody is watching.
        let _ = self.tx.send(event);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Creates an object: fills in name (from generateName), uid, resourceVersion,
    /// creationTimestamp and generation. The namespace must exist.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let namespace = ns_of(rt, namespace).to_owned();
        if rt.namespaced {
            if namespace.is_empty() {
                return Err(ApiError::bad_request(
                    "the namespace of the object is empty",
                ));
            }
            if self.get_store("/namespaces", "", &namespace).is_none() {
                return Err(ApiError::not_found(
                    "namespaces",
                    "",
                    "namespaces",
                    &namespace,
                ));
            }
        }
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let mut name = meta_str(&object, "name").to_owned();
        if name.is_empty() {
            let prefix = meta_str(&object, "generateName").to_owned();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.qualified(),
                    &rt.group,
                    &rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", self.random_suffix(5));
        }
        if let Some(why) = invalid_name(&name) {
            return Err(ApiError::invalid(
                &rt.qualified(),
                &rt.group,
                &rt.kind,
                &name,
                "metadata.name",
                &why,
            ));
        }
        let key = (rt.store_name(), namespace.clone(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(
                &rt.qualified(),
                &rt.group,
                &rt.plural,
                &name,
            ));
        }
        let rv = self.next_rv();
        let uid = self.uid();
        object["apiVersion"] = rt.api_version().into();
        object["kind"] = rt.kind.clone().into();
        let meta = &mut object["metadata"];
        meta["name"] = name.into();
        if rt.namespaced {
            meta["namespace"] = namespace.clone().into();
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = uid.into();
        meta["resourceVersion"] = rv.to_string().into();
        meta["creationTimestamp"] = now_rfc3339().into();
        // Pods carry no generation before Kubernetes 1.33.
        if object.get("spec").is_some() && rt.kind != "Pod" {
            object["metadata"]["generation"] = 1.into();
        }
        if rt.kind == "CustomResourceDefinition" {
            self.registry.register_crd(&object);
        }
        let object = Arc::new(object);
        self.objects.insert(key, Arc::clone(&object));
        self.record(
            EventType::Added,
            rt.store_name(),
            namespace,
            Arc::clone(&object),
        );
        Ok(object)
    }

    /// Replaces an object. With `expected_rv`, fails with a conflict unless it is current.
    /// Keeps uid and creationTimestamp; bumps generation when anything but metadata and status
    /// changed. Returns the stored object (unchanged, same resourceVersion, if nothing changed).
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        expected_rv: Option<&str>,
    ) -> Result<Arc<Value>, ApiError> {
        let namespace = ns_of(rt, namespace).to_owned();
        let key = (rt.store_name(), namespace.clone(), name.to_owned());
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(
                &rt.qualified(),
                &rt.group,
                &rt.plural,
                name,
            ));
        };
        if let Some(expected) = expected_rv.filter(|e| !e.is_empty())
            && expected != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(
                &rt.qualified(),
                &rt.group,
                &rt.plural,
                name,
            ));
        }
        object["apiVersion"] = rt.api_version().into();
        object["kind"] = rt.kind.clone().into();
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ] {
            match old["metadata"].get(field) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if *old == object {
            return Ok(old);
        }
        if object.get("spec").is_some() && rt.kind != "Pod" {
            let spec_changed = old.get("spec") != object.get("spec");
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
            object["metadata"]["generation"] = (generation + i64::from(spec_changed)).max(1).into();
        }
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        if rt.kind == "CustomResourceDefinition" {
            self.registry.register_crd(&object);
        }
        let object = Arc::new(object);
        self.objects.insert(key, Arc::clone(&object));
        self.record(
            EventType::Modified,
            rt.store_name(),
            namespace,
            Arc::clone(&object),
        );
        Ok(object)
    }

    /// Deletes an object and, unless `orphan`, everything it owns (transitively); deleting a
    /// namespace deletes everything in it.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let namespace = ns_of(rt, namespace).to_owned();
        let key = (rt.store_name(), namespace, name.to_owned());
        if !self.objects.contains_key(&key) {
            return Err(ApiError::not_found(
                &rt.qualified(),
                &rt.group,
                &rt.plural,
                name,
            ));
        }
        let removed = self.remove(&key);
        if rt.kind == "Namespace" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, ns, _)| ns == name)
                .cloned()
                .collect();
            for k in inside {
                self.remove(&k);
            }
        }
        if !orphan {
            let mut owners = vec![meta_str(&removed, "uid").to_owned()];
            while let Some(uid) = owners.pop() {
                let dependents: Vec<Key> = self
                    .objects
                    .iter()
                    .filter(|(_, o)| {
                        o["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in dependents {
                    let gone = self.remove(&k);
                    owners.push(meta_str(&gone, "uid").to_owned());
                }
            }
        }
        Ok(removed)
    }

    fn remove(&mut self, key: &Key) -> Arc<Value> {
        let Some(old) = self.objects.remove(key) else {
            return Arc::new(Value::Null);
        };
        let rv = self.next_rv();
        let mut gone = (*old).clone();
        gone["metadata"]["resourceVersion"] = rv.to_string().into();
        if gone["kind"] == "CustomResourceDefinition" {
            self.registry.unregister_crd(meta_str(&gone, "name"));
        }
        let gone = Arc::new(gone);
        self.record(
            EventType::Deleted,
            key.0.clone(),
            key.1.clone(),
            Arc::clone(&gone),
        );
        // Deleting a CRD deletes every object of its kind, as the API server does.
        if gone["kind"] == "CustomResourceDefinition" {
            let group = gone["spec"]["group"].as_str().unwrap_or_default();
            let plural = gone
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let store_name = format!("{group}/{plural}");
            let instances: Vec<Key> = self
                .objects
                .keys()
                .filter(|(r, _, _)| *r == store_name)
                .cloned()
                .collect();
            for k in instances {
                self.remove(&k);
            }
        }
        gone
    }

    /// Changes since `rv` for one resource (and namespace), and a receiver for later ones,
    /// taken together so nothing falls between. Err(oldest) when `rv` predates the history.
    pub fn changes_since(
        &self,
        store_name: &str,
        namespace: Option<&str>,
        rv: u64,
    ) -> Result<Changes, u64> {
        let oldest_kept = self.history.front().map_or(self.rv, |e| e.rv);
        if rv + 1 < oldest_kept {
            return Err(oldest_kept);
        }
        let events = self
            .history
            .iter()
            .filter(|e| {
                e.rv > rv && e.resource == store_name && namespace.is_none_or(|n| n == e.namespace)
            })
            .cloned()
            .collect();
        Ok((events, self.tx.subscribe()))
    }
}

/// Cluster-scoped objects are stored under the empty namespace.
fn ns_of<'a>(rt: &ResourceType, namespace: &'a str) -> &'a str {
    if rt.namespaced { namespace } else { "" }
}

/// A DNS-1123 subdomain check, as most kinds require of names.
fn invalid_name(name: &str) -> Option<String> {
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    (!ok).then(|| {
        format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registered type, by its API path.
    fn kind(s: &Store, group: &str, version: &str, plural: &str) -> ResourceType {
        s.registry.by_path(group, version, plural).unwrap().clone()
    }

    fn store() -> Store {
        let mut s = Store::new(1);
        let ns = kind(&s, "", "v1", "namespaces");
        s.create(&ns, "", json!({"metadata": {"name": "default"}}))
            .unwrap();
        s
    }

    #[test]
    fn create_get_replace_delete() {
        let mut s = store();
        let cm = kind(&s, "", "v1", "configmaps");
        let created = s
            .create(
                &cm,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
            )
            .unwrap();
        let rv = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            s.create(&cm, "default", json!({"metadata": {"name": "a"}}))
                .unwrap_err()
                .code,
            409
        );
        assert_eq!(
            s.create(&cm, "nope", json!({"metadata": {"name": "a"}}))
                .unwrap_err()
                .code,
            404
        );
        let replaced = s
            .replace(
                &cm,
                "default",
                "a",
                json!({"metadata": {"name": "a"}, "data": {"k": "w"}}),
                Some(&rv),
            )
            .unwrap();
        assert_ne!(replaced["metadata"]["resourceVersion"], rv.as_str());
        let stale = s
            .replace(&cm, "default", "a", json!({"data": {}}), Some(&rv))
            .unwrap_err();
        assert_eq!((stale.code, stale.reason), (409, "Conflict"));
        s.delete(&cm, "default", "a", false).unwrap();
        assert!(s.get(&cm, "default", "a").is_none());
    }

    #[test]
    fn deleting_an_owner_deletes_its_dependents() {
        let mut s = store();
        let rs = kind(&s, "apps", "v1", "replicasets");
        let pod = kind(&s, "", "v1", "pods");
        let owner = s
            .create(
                &rs,
                "default",
                json!({"metadata": {"name": "r"}, "spec": {}}),
            )
            .unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap();
        s.create(
            &pod,
            "default",
            json!({"metadata": {"generateName": "r-", "ownerReferences": [{"uid": uid}]}}),
        )
        .unwrap();
        assert_eq!(s.list(&pod, Some("default")).len(), 1);
        s.delete(&rs, "default", "r", false).unwrap();
        assert!(s.list(&pod, None).is_empty());
    }

    #[test]
    fn history_serves_changes_since_a_version() {
        let mut s = store();
        let cm = kind(&s, "", "v1", "configmaps");
        let start = s.resource_version();
        s.create(&cm, "default", json!({"metadata": {"name": "a"}}))
            .unwrap();
        s.create(&cm, "default", json!({"metadata": {"name": "b"}}))
            .unwrap();
        let (events, _rx) = s
            .changes_since("/configmaps", Some("default"), start + 1)
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].value()["metadata"]["name"], "b");
    }

    #[test]
    fn deleting_a_crd_deletes_its_objects() {
        let mut s = store();
        let crds = kind(
            &s,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        );
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"}, "versions": [{"name": "v1", "served": true}]}});
        s.create(&crds, "", crd.clone()).unwrap();
        let widgets = kind(&s, "example.com", "v1", "widgets");
        s.create(&widgets, "default", json!({"metadata": {"name": "w"}}))
            .unwrap();
        s.delete(&crds, "", "widgets.example.com", false).unwrap();
        assert!(s.registry.by_path("example.com", "v1", "widgets").is_none());
        s.create(&crds, "", crd).unwrap();
        assert!(
            s.list(&widgets, None).is_empty(),
            "a recreated CRD starts empty"
        );
    }

    #[test]
    fn names_are_validated() {
        let mut s = store();
        let cm = kind(&s, "", "v1", "configmaps");
        let e = s
            .create(&cm, "default", json!({"metadata": {"name": "Bad_Name"}}))
            .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
    }
}
