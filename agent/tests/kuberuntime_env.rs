//! Container environments as the kubelet's `makeEnvironmentVariables` builds them.

use std::collections::BTreeMap;

use ferrolet_agent::kuberuntime::{EnvContext, EnvError, EnvSource, container_env};
use ferrolet_cri::api::KeyValue;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

/// The `ConfigMap`s and Secrets of namespace `default`.
#[derive(Default)]
struct Objects {
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Objects {
    fn config_map(mut self, name: &str, data: &[(&str, &str)]) -> Self {
        let data = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.config_maps.insert(name.to_owned(), data);
        self
    }

    fn secret(mut self, name: &str, data: &[(&str, &[u8])]) -> Self {
        let data = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        self.secrets.insert(name.to_owned(), data);
        self
    }
}

impl EnvSource for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        (namespace == "default")
            .then(|| self.config_maps.get(name).cloned())
            .flatten()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        (namespace == "default")
            .then(|| self.secrets.get(name).cloned())
            .flatten()
    }
}

fn pod_with(container: serde_json::Value) -> Pod {
    let mut value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "6f1c2b3a-1111-2222-3333-444455556666",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"team": "core", "note": "line1\nline2 \"q\""}
        },
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "web-sa"
        }
    });
    value["spec"]["containers"] = serde_json::Value::Array(vec![container]);
    serde_json::from_value(value).expect("valid pod")
}

fn first_container(pod: &Pod) -> &Container {
    &pod.spec.as_ref().expect("spec").containers[0]
}

fn ctx(objects: &Objects) -> EnvContext<'_> {
    EnvContext {
        host_ips: vec!["192.168.1.10".to_owned(), "fd00::10".to_owned()],
        pod_ips: vec!["fd00:10::5".to_owned(), "10.244.1.5".to_owned()],
        sources: objects,
        service_env: BTreeMap::new(),
        node_allocatable: [
            ("cpu", "4"),
            ("memory", "8Gi"),
            ("ephemeral-storage", "100Gi"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
        .collect(),
    }
}

fn pairs(vars: &[KeyValue]) -> Vec<(&str, &str)> {
    vars.iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect()
}

fn env_of(container: serde_json::Value, objects: &Objects) -> Vec<KeyValue> {
    let pod = pod_with(container);
    container_env(&pod, first_container(&pod), &ctx(objects))
        .expect("environment")
        .value
}

#[test]
fn expands_references_to_earlier_variables() {
    let vars = env_of(
        json!({
            "name": "app",
            "env": [
                {"name": "A", "value": "alpha"},
                {"name": "B", "value": "beta"},
                {"name": "JOINED", "value": "$(A)-$(B)"},
                {"name": "ESCAPED", "value": "$$(A)"},
                {"name": "UNRESOLVED", "value": "$(NOPE)/$(LATER)"},
                {"name": "LATER", "value": "late"},
                {"name": "PARTIAL", "value": "$(A"},
                {"name": "EMPTY"}
            ]
        }),
        &Objects::default(),
    );
    assert_eq!(
        pairs(&vars),
        [
            ("A", "alpha"),
            ("B", "beta"),
            ("JOINED", "alpha-beta"),
            ("ESCAPED", "$(A)"),
            // Only variables defined before the reference expand.
            ("UNRESOLVED", "$(NOPE)/$(LATER)"),
            ("LATER", "late"),
            ("PARTIAL", "$(A"),
            ("EMPTY", ""),
        ]
    );
}

#[test]
fn env_from_prefixes_keys_and_env_overrides_in_place() {
    let objects = Objects::default()
        .config_map("settings", &[("MODE", "prod"), ("LEVEL", "3")])
        .secret("creds", &[("USER", b"admin"), ("PASS", b"s3cret")]);
    let vars = env_of(
        json!({
            "name": "app",
            "envFrom": [
                {"configMapRef": {"name": "settings"}},
                {"prefix": "DB_", "secretRef": {"name": "creds"}},
                {"configMapRef": {"name": "absent", "optional": true}}
            ],
            "env": [
                {"name": "MODE", "value": "debug"},
                {"name": "URL", "value": "db://$(DB_USER):$(DB_PASS)@db"}
            ]
        }),
        &objects,
    );
    assert_eq!(
        pairs(&vars),
        [
            ("LEVEL", "3"),
            ("MODE", "debug"),
            ("DB_PASS", "s3cret"),
            ("DB_USER", "admin"),
            ("URL", "db://admin:s3cret@db"),
        ]
    );
}

#[test]
fn env_from_skips_keys_that_cannot_be_variable_names() {
    let objects = Objects::default().config_map("cfg", &[("ok.key", "1"), ("bad=key", "2")]);
    let pod = pod_with(json!({
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "cfg"}}]
    }));
    let env = container_env(&pod, first_container(&pod), &ctx(&objects)).expect("environment");
    // Relaxed validation (GA in 1.34) admits dots; `=` can never be in a name.
    assert_eq!(pairs(&env.value), [("ok.key", "1")]);
    assert_eq!(env.warnings.len(), 1);
    assert_eq!(env.warnings[0].reason, "InvalidEnvironmentVariableNames");
    assert_eq!(
        env.warnings[0].message,
        "Keys [bad=key] from the EnvFrom configMap default/cfg were skipped since they are \
         considered invalid environment variable names."
    );
}

#[test]
fn missing_config_map_key_names_key_and_object() {
    let objects = Objects::default().config_map("settings", &[("MODE", "prod")]);
    let pod = pod_with(json!({
        "name": "app",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "missing"}}}]
    }));
    let err = container_env(&pod, first_container(&pod), &ctx(&objects)).expect_err("must fail");
    assert!(matches!(err, EnvError::ConfigMapKeyNotFound { .. }));
    assert_eq!(
        err.to_string(),
        "couldn't find key missing in ConfigMap default/settings"
    );

    let pod = pod_with(json!({
        "name": "app",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    }));
    let objects = Objects::default().secret("creds", &[("user", b"u")]);
    let err = container_env(&pod, first_container(&pod), &ctx(&objects)).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "couldn't find key token in Secret default/creds"
    );

    let err = container_env(&pod, first_container(&pod), &ctx(&Objects::default()))
        .expect_err("must fail");
    assert!(
        matches!(&err, EnvError::SecretNotFound { namespace, name } if namespace == "default" && name == "creds"),
        "{err}"
    );
}

#[test]
fn optional_key_refs_define_nothing_when_missing() {
    let objects = Objects::default()
        .config_map("settings", &[("MODE", "prod")])
        .secret("creds", &[("token", b"t0k")]);
    let vars = env_of(
        json!({
            "name": "app",
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
                {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x", "optional": true}}},
                {"name": "NOCM", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": true}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
            ]
        }),
        &objects,
    );
    assert_eq!(pairs(&vars), [("MODE", "prod"), ("TOKEN", "t0k")]);
}

#[test]
fn field_refs_resolve_pod_and_node_facts() {
    let field =
        |path: &str| json!({"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}});
    let names = [
        ("NAME", "metadata.name"),
        ("NS", "metadata.namespace"),
        ("UID", "metadata.uid"),
        ("APP", "metadata.labels['app']"),
        ("NOLABEL", "metadata.labels['missing']"),
        ("TEAM", "metadata.annotations['team']"),
        ("LABELS", "metadata.labels"),
        ("ANNOTATIONS", "metadata.annotations"),
        ("NODE", "spec.nodeName"),
        ("SA", "spec.serviceAccountName"),
        ("HOST_IP", "status.hostIP"),
        ("HOST_IPS", "status.hostIPs"),
        ("POD_IP", "status.podIP"),
        ("POD_IPS", "status.podIPs"),
    ];
    let env: Vec<_> = names
        .iter()
        .map(|(name, path)| {
            let mut var = field(path);
            var["name"] = json!(name);
            var
        })
        .collect();
    let vars = env_of(json!({"name": "app", "env": env}), &Objects::default());
    assert_eq!(
        pairs(&vars),
        [
            ("NAME", "web-0"),
            ("NS", "default"),
            ("UID", "6f1c2b3a-1111-2222-3333-444455556666"),
            ("APP", "web"),
            ("NOLABEL", ""),
            ("TEAM", "core"),
            ("LABELS", "app=\"web\"\ntier=\"front\""),
            (
                "ANNOTATIONS",
                "note=\"line1\\nline2 \\\"q\\\"\"\nteam=\"core\""
            ),
            ("NODE", "node-a"),
            ("SA", "web-sa"),
            ("HOST_IP", "192.168.1.10"),
            ("HOST_IPS", "192.168.1.10,fd00::10"),
            // The node is IPv4-first, so the pod's IPv4 address is its primary IP.
            ("POD_IP", "10.244.1.5"),
            ("POD_IPS", "10.244.1.5,fd00:10::5"),
        ]
    );
}

#[test]
fn unsupported_field_paths_are_errors() {
    for path in [
        "spec.restartPolicy",
        "metadata.generateName",
        "status.phase",
    ] {
        let pod = pod_with(json!({
            "name": "app",
            "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}]
        }));
        let err =
            container_env(&pod, first_container(&pod), &ctx(&Objects::default())).expect_err(path);
        assert_eq!(
            err.to_string(),
            format!("env X: unsupported fieldPath: {path}")
        );
    }
}

#[test]
fn resource_field_refs_apply_divisor_and_default_limits_to_allocatable() {
    let resource = |name: &str, resource: &str, divisor: Option<&str>| {
        let mut selector = json!({"resource": resource});
        if let Some(divisor) = divisor {
            selector["divisor"] = json!(divisor);
        }
        json!({"name": name, "valueFrom": {"resourceFieldRef": selector}})
    };
    let vars = env_of(
        json!({
            "name": "app",
            "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"memory": "128Mi"}
            },
            "env": [
                resource("MEM_LIMIT_MI", "limits.memory", Some("1Mi")),
                resource("MEM_LIMIT", "limits.memory", None),
                resource("MEM_REQUEST_MI", "requests.memory", Some("1Mi")),
                resource("CPU_REQUEST", "requests.cpu", None),
                resource("CPU_REQUEST_M", "requests.cpu", Some("1m")),
                resource("CPU_LIMIT", "limits.cpu", None),
                resource("CPU_LIMIT_M", "limits.cpu", Some("1m")),
                resource("STORAGE_LIMIT_GI", "limits.ephemeral-storage", Some("1Gi")),
                resource("STORAGE_REQUEST", "requests.ephemeral-storage", None)
            ]
        }),
        &Objects::default(),
    );
    assert_eq!(
        pairs(&vars),
        [
            ("MEM_LIMIT_MI", "128"),
            ("MEM_LIMIT", "134217728"),
            ("MEM_REQUEST_MI", "64"),
            // 250m rounded up to whole CPUs.
            ("CPU_REQUEST", "1"),
            ("CPU_REQUEST_M", "250"),
            // No CPU limit: the node's allocatable (4 CPUs) stands in.
            ("CPU_LIMIT", "4"),
            ("CPU_LIMIT_M", "4000"),
            ("STORAGE_LIMIT_GI", "100"),
            ("STORAGE_REQUEST", "0"),
        ]
    );
}

#[test]
fn resource_field_refs_can_name_another_container() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {
            "containers": [
                {"name": "app", "env": [
                    {"name": "SIDE_MEM", "valueFrom": {"resourceFieldRef": {"containerName": "side", "resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "BAD", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}
                ]},
                {"name": "side", "resources": {"limits": {"memory": "256Mi"}}}
            ]
        }
    }))
    .expect("pod");
    let app = &pod.spec.as_ref().expect("spec").containers[0];
    let err = container_env(&pod, app, &ctx(&Objects::default())).expect_err("limits.gpu");
    assert_eq!(
        err.to_string(),
        "env BAD: unsupported container resource : limits.gpu"
    );

    let mut pod = pod;
    pod.spec.as_mut().expect("spec").containers[0]
        .env
        .as_mut()
        .expect("env")
        .truncate(1);
    let app = &pod.spec.as_ref().expect("spec").containers[0];
    let vars = container_env(&pod, app, &ctx(&Objects::default()))
        .expect("env")
        .value;
    assert_eq!(pairs(&vars), [("SIDE_MEM", "256")]);
}

#[test]
fn service_variables_come_last_and_never_override() {
    let objects = Objects::default();
    let mut context = ctx(&objects);
    context.service_env = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("DB_SERVICE_HOST", "10.96.0.20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let pod = pod_with(json!({
        "name": "app",
        "env": [
            {"name": "KUBERNETES_SERVICE_PORT", "value": "8443"},
            {"name": "DB", "value": "$(DB_SERVICE_HOST):5432"}
        ]
    }));
    let vars = container_env(&pod, first_container(&pod), &context)
        .expect("env")
        .value;
    assert_eq!(
        pairs(&vars),
        [
            ("KUBERNETES_SERVICE_PORT", "8443"),
            ("DB", "10.96.0.20:5432"),
            ("DB_SERVICE_HOST", "10.96.0.20"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ]
    );
}

#[test]
fn non_utf8_secret_values_are_rejected() {
    let objects = Objects::default().secret("bin", &[("blob", &[0xff, 0xfe])]);
    let pod = pod_with(json!({
        "name": "app",
        "env": [{"name": "BLOB", "valueFrom": {"secretKeyRef": {"name": "bin", "key": "blob"}}}]
    }));
    let err = container_env(&pod, first_container(&pod), &ctx(&objects)).expect_err("binary");
    assert_eq!(
        err.to_string(),
        "value of key blob in Secret default/bin is not valid UTF-8"
    );
}
