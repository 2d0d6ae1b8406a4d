//! The resources the API server serves: names, kinds, scope and subresources, as discovery
//! reports them and as requests address them.

/// One served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural name, as in URLs.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources (`status`, `binding`, `log`, ...).
    pub subresources: &'static [&'static str],
}

const ALL: &[&str] = &["all"];

/// Every served resource, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    core(
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        &[],
        &["status", "finalize"],
    ),
    core(
        "Pod",
        "pods",
        true,
        &["po"],
        ALL,
        &[
            "status",
            "binding",
            "log",
            "exec",
            "attach",
            "portforward",
            "eviction",
        ],
    ),
    core("Node", "nodes", false, &["no"], &[], &["status", "proxy"]),
    core("Event", "events", true, &["ev"], &[], &[]),
    core("ConfigMap", "configmaps", true, &["cm"], &[], &[]),
    core("Secret", "secrets", true, &[], &[], &[]),
    core(
        "Service",
        "services",
        true,
        &["svc"],
        ALL,
        &["status", "proxy"],
    ),
    core("Endpoints", "endpoints", true, &["ep"], &[], &[]),
    core(
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        &[],
        &["token"],
    ),
    core(
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        &[],
        &["status"],
    ),
    core(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        &[],
        &["status"],
    ),
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
    },
    ResourceInfo {
        group: "storage.k8s.io",
        version: "v1",
        kind: "CSIDriver",
        plural: "csidrivers",
        singular: "csidriver",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
    },
    ResourceInfo {
        group: "storage.k8s.io",
        version: "v1",
        kind: "CSINode",
        plural: "csinodes",
        singular: "csinode",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
    },
    ResourceInfo {
        group: "storage.k8s.io",
        version: "v1",
        kind: "StorageClass",
        plural: "storageclasses",
        singular: "storageclass",
        namespaced: false,
        short_names: &["sc"],
        categories: &[],
        subresources: &[],
    },
];

const fn core(
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
) -> ResourceInfo {
    ResourceInfo {
        group: "",
        version: "v1",
        kind,
        plural,
        // Every core resource's singular is its lowercase kind.
        singular: "",
        namespaced,
        short_names,
        categories,
        subresources,
    }
}

impl ResourceInfo {
    /// `v1` or `group/version`, as in `apiVersion`.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The singular name (`pod`), derived from the kind where not given.
    #[must_use]
    pub fn singular_name(&self) -> String {
        if self.singular.is_empty() {
            self.kind.to_ascii_lowercase()
        } else {
            self.singular.to_owned()
        }
    }

    /// The kind of list responses (`PodList`).
    #[must_use]
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `pods` or `leases.coordination.k8s.io`, as kube-apiserver names a resource in messages.
    #[must_use]
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the resource has a status subresource whose writes are kept apart from the
    /// main resource's.
    #[must_use]
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The store key prefix of all objects of this resource (ends with `/`).
    #[must_use]
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }

    /// The store key prefix of one namespace's objects, or of all for cluster-scoped
    /// resources and `namespace == None`.
    #[must_use]
    pub fn key_prefix_in(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}{ns}/", self.key_prefix()),
            None => self.key_prefix(),
        }
    }

    /// The store key of one object.
    #[must_use]
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix_in(namespace))
    }
}

/// The resource served under `group`/`version` with this plural name.
#[must_use]
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind in an API version (`v1`, `coordination.k8s.io/v1`).
#[must_use]
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The API groups served besides the core group, with their versions, in discovery order.
#[must_use]
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.iter().any(|(g, _)| *g == r.group) {
            groups.push((r.group, r.version));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "nginx"),
            "/registry/pods/default/nginx"
        );
        assert_eq!(pods.key_prefix_in(None), "/registry/pods/");
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/nodes/n1");
        let leases = by_kind("coordination.k8s.io/v1", "Lease").unwrap();
        assert_eq!(
            leases.key(Some("kube-node-lease"), "n1"),
            "/registry/coordination.k8s.io/leases/kube-node-lease/n1"
        );
        assert_eq!(leases.qualified_name(), "leases.coordination.k8s.io");
        assert_eq!(pods.singular_name(), "pod");
        assert_eq!(pods.list_kind(), "PodList");
    }

    #[test]
    fn prefixes_of_similar_names_do_not_overlap() {
        // "/registry/pods/" must never match keys of a resource named "podsx".
        let prefixes: Vec<String> = RESOURCES.iter().map(ResourceInfo::key_prefix).collect();
        for (i, a) in prefixes.iter().enumerate() {
            for (j, b) in prefixes.iter().enumerate() {
                assert!(
                    i == j || !b.starts_with(a.as_str()),
                    "{a} is a prefix of {b}"
                );
            }
        }
    }

    #[test]
    fn groups_are_listed_once() {
        assert_eq!(
            groups(),
            [("coordination.k8s.io", "v1"), ("storage.k8s.io", "v1")]
        );
    }
}
