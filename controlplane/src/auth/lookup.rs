//! What authentication and authorization need to know of stored objects: which node a pod is
//! bound to and which service account it runs as, and whether a service account still exists.
//!
//! kube-apiserver answers these from informer caches (the Node authorizer's graph, the
//! service-account token getter), synchronously; so does this trait. The API server keeps an
//! [`InMemoryObjectLookup`] up to date from its own watch of pods and service accounts.

use std::collections::HashMap;
use std::sync::RwLock;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};

/// The facts of a pod that decide what a node may do with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodBinding {
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.nodeName`; empty while unscheduled.
    pub node_name: String,
    /// `spec.serviceAccountName`; empty for none.
    pub service_account_name: String,
}

impl PodBinding {
    /// The binding facts of `pod`.
    #[must_use]
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            service_account_name: spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
        }
    }
}

/// Read access to the stored objects that authentication and authorization consult.
pub trait ObjectLookup: Send + Sync {
    /// The pod `namespace/name`, if it exists.
    fn pod(&self, namespace: &str, name: &str) -> Option<PodBinding>;

    /// Whether a pod bound to `node_name` in `namespace` runs as service account
    /// `service_account`.
    fn node_has_pod_with_service_account(
        &self,
        node_name: &str,
        namespace: &str,
        service_account: &str,
    ) -> bool;

    /// The uid of service account `namespace/name`, if it exists.
    fn service_account_uid(&self, namespace: &str, name: &str) -> Option<String>;
}

type Key = (String, String);

/// An [`ObjectLookup`] over maps kept up to date by the owner (from a watch), also the fake of
/// tests.
#[derive(Debug, Default)]
pub struct InMemoryObjectLookup {
    pods: RwLock<HashMap<Key, PodBinding>>,
    service_accounts: RwLock<HashMap<Key, String>>,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

impl InMemoryObjectLookup {
    /// An empty lookup.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the pod `namespace/name`.
    pub fn put_pod(&self, namespace: &str, name: &str, binding: PodBinding) {
        write(&self.pods).insert(key(namespace, name), binding);
    }

    /// Records a stored pod.
    pub fn put_pod_object(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.put_pod(namespace, name, PodBinding::of(pod));
    }

    /// Forgets the pod `namespace/name`.
    pub fn remove_pod(&self, namespace: &str, name: &str) {
        write(&self.pods).remove(&key(namespace, name));
    }

    /// Records the service account `namespace/name` with its uid.
    pub fn put_service_account(&self, namespace: &str, name: &str, uid: &str) {
        write(&self.service_accounts).insert(key(namespace, name), uid.to_owned());
    }

    /// Records a stored service account.
    pub fn put_service_account_object(&self, service_account: &ServiceAccount) {
        let meta = &service_account.metadata;
        self.put_service_account(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default(),
        );
    }

    /// Forgets the service account `namespace/name`.
    pub fn remove_service_account(&self, namespace: &str, name: &str) {
        write(&self.service_accounts).remove(&key(namespace, name));
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ObjectLookup for InMemoryObjectLookup {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodBinding> {
        read(&self.pods).get(&key(namespace, name)).cloned()
    }

    fn node_has_pod_with_service_account(
        &self,
        node_name: &str,
        namespace: &str,
        service_account: &str,
    ) -> bool {
        read(&self.pods).iter().any(|((ns, _), pod)| {
            ns == namespace
                && pod.node_name == node_name
                && pod.service_account_name == service_account
        })
    }

    fn service_account_uid(&self, namespace: &str, name: &str) -> Option<String> {
        read(&self.service_accounts)
            .get(&key(namespace, name))
            .cloned()
    }
}
