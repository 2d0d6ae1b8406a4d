//! Pods: kube-apiserver's defaults (plus the `ServiceAccount`, `DefaultTolerationSeconds` and
//! Priority admission plugins), validation, and what updates may change.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, KeyToPath, Pod, PodSecurityContext, PodSpec, PodStatus, Probe,
    ProjectedVolumeSource, ServiceAccountTokenProjection, Toleration, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::Kind;
use super::validation::{NameRule, name_errors};
use crate::api::error::FieldError;

/// Where the `ServiceAccount` admission plugin mounts the API credentials.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The name prefix of the projected API-credentials volume.
pub const KUBE_API_ACCESS_PREFIX: &str = "kube-api-access-";
/// The `ConfigMap` every namespace gets with the cluster CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

impl Kind for Pod {
    const FIELD_SELECTORS: &'static [&'static str] = &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];
    const HAS_SPEC: bool = false;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn prepare_for_create(&mut self) {
        let qos = self.spec.as_ref().map(qos_class);
        self.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: qos.map(str::to_owned),
            ..Default::default()
        });
        let mirror =
            self.metadata.annotations.as_ref().is_some_and(|a| {
                a.contains_key(crate::auth::node_restriction::MIRROR_POD_ANNOTATION)
            });
        if let Some(spec) = self.spec.as_mut() {
            // Like kube-apiserver's ServiceAccount admission, a mirror pod's spec is left as
            // its static pod's: the kubelet compares them.
            if !mirror {
                spec.service_account_name
                    .get_or_insert_with(|| "default".into());
                spec.service_account.clone_from(&spec.service_account_name);
                admit_service_account(
                    spec,
                    self.metadata
                        .generate_name
                        .as_deref()
                        .or(self.metadata.name.as_deref()),
                );
            }
            admit_default_tolerations(spec);
        }
    }

    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            default_spec(spec);
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status.clone_from(&old.status);
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
        self.metadata
            .deletion_timestamp
            .clone_from(&old.metadata.deletion_timestamp);
        self.metadata.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds;
        self.metadata
            .owner_references
            .clone_from(&old.metadata.owner_references);
    }

    fn validate(&self) -> Vec<FieldError> {
        match &self.spec {
            Some(spec) => validate_spec(spec),
            None => vec![FieldError::required("spec")],
        }
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        if mutable_masked(new) != mutable_masked(old) {
            errors.push(FieldError::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        let old_tolerations = old.tolerations.clone().unwrap_or_default();
        let new_tolerations = new.tolerations.clone().unwrap_or_default();
        if !old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
            errors.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
        if old.node_name.is_some() && new.node_name != old.node_name {
            errors.push(FieldError::forbidden(
                "spec.nodeName",
                "field is immutable once set",
            ));
        }
        errors
    }
}

/// The spec with the fields updates may change blanked out.
fn mutable_masked(spec: &PodSpec) -> Value {
    let mut spec = spec.clone();
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        c.image = None;
    }
    spec.active_deadline_seconds = None;
    spec.tolerations = None;
    spec.termination_grace_period_seconds = None;
    // The scheduler sets the node name through pods/binding.
    spec.node_name = None;
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// `Guaranteed`, `Burstable` or `BestEffort`, from requests and limits.
#[must_use]
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let resources = c.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            match (limits.get(resource), requests.get(resource)) {
                (Some(limit), Some(request)) if limit == request => {}
                (Some(_), None) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_probe(probe: &mut Option<Probe>) {
    if let Some(p) = probe.as_mut() {
        p.timeout_seconds.get_or_insert(1);
        p.period_seconds.get_or_insert(10);
        p.success_threshold.get_or_insert(1);
        p.failure_threshold.get_or_insert(3);
        if let Some(http) = p.http_get.as_mut() {
            http.scheme.get_or_insert_with(|| "HTTP".into());
            http.path.get_or_insert_with(|| "/".into());
        }
    }
}

fn default_container(c: &mut Container) {
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    if c.image_pull_policy.is_none() {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or_default()).into());
    }
    c.resources.get_or_insert_with(Default::default);
    for port in c.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(field_ref) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            field_ref.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    default_probe(&mut c.liveness_probe);
    default_probe(&mut c.readiness_probe);
    default_probe(&mut c.startup_probe);
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests included).
#[must_use]
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.enable_service_links.get_or_insert(true);
    spec.priority.get_or_insert(0);
    spec.preemption_policy
        .get_or_insert_with(|| "PreemptLowerPriority".into());
    if spec.service_account_name.is_none() {
        spec.service_account_name.clone_from(&spec.service_account);
    }
    spec.service_account.clone_from(&spec.service_account_name);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = volume.config_map.as_mut() {
            cm.default_mode.get_or_insert(0o644);
        }
        if let Some(secret) = volume.secret.as_mut() {
            secret.default_mode.get_or_insert(0o644);
        }
        if let Some(projected) = volume.projected.as_mut() {
            projected.default_mode.get_or_insert(0o644);
        }
        if let Some(downward) = volume.downward_api.as_mut() {
            downward.default_mode.get_or_insert(0o644);
        }
        if let Some(host_path) = volume.host_path.as_mut() {
            host_path.type_.get_or_insert_with(String::new);
        }
    }
}

/// The `ServiceAccount` admission plugin: the projected `kube-api-access-*` volume (token,
/// cluster CA, namespace) mounted in every container, unless automounting is off.
fn admit_service_account(spec: &mut PodSpec, seed: Option<&str>) {
    if spec.automount_service_account_token == Some(false) {
        return;
    }
    let already = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.mount_path == SERVICE_ACCOUNT_MOUNT_PATH);
    if already {
        return;
    }
    let name = format!("{KUBE_API_ACCESS_PREFIX}{}", random_suffix(seed));
    let projected = ProjectedVolumeSource {
        default_mode: Some(0o644),
        sources: Some(vec![
            VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    expiration_seconds: Some(3607),
                    path: "token".into(),
                    audience: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                config_map: Some(k8s_openapi::api::core::v1::ConfigMapProjection {
                    name: ROOT_CA_CONFIGMAP.into(),
                    items: Some(vec![KeyToPath {
                        key: "ca.crt".into(),
                        path: "ca.crt".into(),
                        mode: None,
                    }]),
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(k8s_openapi::api::core::v1::DownwardAPIProjection {
                    items: Some(vec![k8s_openapi::api::core::v1::DownwardAPIVolumeFile {
                        path: "namespace".into(),
                        field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                            api_version: Some("v1".into()),
                            field_path: "metadata.namespace".into(),
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]),
    };
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: name.clone(),
        projected: Some(projected),
        ..Default::default()
    });
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: name.clone(),
                mount_path: SERVICE_ACCOUNT_MOUNT_PATH.into(),
                read_only: Some(true),
                ..Default::default()
            });
    }
}

/// Five characters of kube's name-suffix alphabet (no vowels, no look-alikes).
fn random_suffix(_seed: Option<&str>) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A suffix for generateName.
#[must_use]
pub fn generated_name_suffix() -> String {
    random_suffix(None)
}

/// The `DefaultTolerationSeconds` admission plugin: pods tolerate not-ready and unreachable
/// nodes for 300 s unless they say otherwise.
fn admit_default_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            (t.key.as_deref() == Some(key)
                || (t.key.is_none() && t.operator.as_deref() == Some("Exists")))
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
}

fn validate_ports(field: &str, ports: &[ContainerPort], errors: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !(1..=65535).contains(&port.container_port) {
            errors.push(FieldError::invalid(
                format!("{field}[{i}].containerPort"),
                &json!(port.container_port),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(protocol) = &port.protocol
            && !["TCP", "UDP", "SCTP"].contains(&protocol.as_str())
        {
            errors.push(FieldError::not_supported(
                format!("{field}[{i}].protocol"),
                &json!(protocol),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if let Some(name) = port.name.as_ref().filter(|n| !n.is_empty())
            && !names.insert(name.clone())
        {
            errors.push(FieldError::duplicate(
                format!("{field}[{i}].name"),
                &json!(name),
            ));
        }
    }
}

fn validate_container(
    field: &str,
    c: &Container,
    volumes: &BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errors.push(FieldError::required(format!("{field}.name")));
    } else {
        errors.extend(name_errors(
            &format!("{field}.name"),
            &c.name,
            NameRule::Dns1123Label,
        ));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errors.push(FieldError::required(format!("{field}.image")));
    }
    if let Some(policy) = &c.image_pull_policy
        && !["Always", "IfNotPresent", "Never"].contains(&policy.as_str())
    {
        errors.push(FieldError::not_supported(
            format!("{field}.imagePullPolicy"),
            &json!(policy),
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    if let Some(policy) = &c.termination_message_policy
        && !["File", "FallbackToLogsOnError"].contains(&policy.as_str())
    {
        errors.push(FieldError::not_supported(
            format!("{field}.terminationMessagePolicy"),
            &json!(policy),
            &["FallbackToLogsOnError", "File"],
        ));
    }
    validate_ports(
        &format!("{field}.ports"),
        c.ports.as_deref().unwrap_or_default(),
        errors,
    );
    for (i, env) in c.env.iter().flatten().enumerate() {
        let valid = !env.name.is_empty()
            && env
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_'))
            && !env.name.starts_with(|ch: char| ch.is_ascii_digit());
        if !valid {
            errors.push(FieldError::invalid(
                format!("{field}.env[{i}].name"),
                &json!(env.name),
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            ));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
        if !volumes.contains(&mount.name) {
            errors.push(FieldError {
                reason: "FieldValueNotFound",
                field: format!("{field}.volumeMounts[{i}].name"),
                message: format!("Not found: {:?}", mount.name),
            });
        }
        if mount.mount_path.is_empty() {
            errors.push(FieldError::required(format!(
                "{field}.volumeMounts[{i}].mountPath"
            )));
        } else if !mount_paths.insert(mount.mount_path.clone()) {
            errors.push(FieldError::invalid(
                format!("{field}.volumeMounts[{i}].mountPath"),
                &json!(mount.mount_path),
                "must be unique",
            ));
        }
    }
    let resources = c.resources.clone().unwrap_or_default();
    let limits: BTreeMap<String, _> = resources.limits.unwrap_or_default();
    for (name, request) in resources.requests.unwrap_or_default() {
        if let Some(limit) = limits.get(&name)
            && let (Some(r), Some(l)) = (parse_quantity(&request.0), parse_quantity(&limit.0))
            && r > l
        {
            errors.push(FieldError::invalid(
                format!("{field}.resources.requests"),
                &json!(request.0),
                &format!("must be less than or equal to {name} limit of {}", limit.0),
            ));
        }
    }
}

/// A resource quantity as a float, enough to compare requests with limits.
fn parse_quantity(text: &str) -> Option<f64> {
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0_f64.powi(4)),
        ("Pi", 1024.0_f64.powi(5)),
        ("Ei", 1024.0_f64.powi(6)),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

fn validate_spec(spec: &PodSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}].name");
        errors.extend(name_errors(&field, &v.name, NameRule::Dns1123Label));
        if !volumes.insert(v.name.clone()) {
            errors.push(FieldError::duplicate(field, &json!(v.name)));
        }
    }
    if spec.containers.is_empty() {
        errors.push(FieldError::required("spec.containers"));
    }
    let mut names = BTreeSet::new();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c)),
        );
    for (field, c) in all {
        validate_container(&field, c, &volumes, &mut errors);
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errors.push(FieldError::duplicate(
                format!("{field}.name"),
                &json!(c.name),
            ));
        }
    }
    if let Some(policy) = &spec.restart_policy
        && !["Always", "OnFailure", "Never"].contains(&policy.as_str())
    {
        errors.push(FieldError::not_supported(
            "spec.restartPolicy",
            &json!(policy),
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(policy) = &spec.dns_policy
        && !["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
            .contains(&policy.as_str())
    {
        errors.push(FieldError::not_supported(
            "spec.dnsPolicy",
            &json!(policy),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    if spec.active_deadline_seconds.is_some_and(|s| s < 1) {
        errors.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &json!(spec.active_deadline_seconds),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    errors
}

#[cfg(test)]
// Helpers take JSON literals by value: the tests read better that way.
#[allow(clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn create(body: Value) -> Result<Value, crate::api::error::ApiError> {
        let registry = Registry::new();
        let strategy = registry.get("pods").unwrap();
        let mut value = strategy.decode(&body)?.value;
        strategy.create(&mut value)?;
        Ok(value)
    }

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": containers}})
    }

    #[test]
    fn defaults_like_kube_apiserver() {
        let created = create(pod(
            json!([{"name": "app", "image": "busybox:1.35", "ports": [{"containerPort": 80}]}]),
        ))
        .unwrap();
        let spec = &created["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["serviceAccountName"], "default");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["volumeMounts"][0]["mountPath"],
            SERVICE_ACCOUNT_MOUNT_PATH
        );
        assert!(
            spec["volumes"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with(KUBE_API_ACCESS_PREFIX)
        );
        let tolerations = spec["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(created["status"]["phase"], "Pending");
        assert_eq!(created["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.35"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn automount_off_adds_no_volume() {
        let mut body = pod(json!([{"name": "app", "image": "busybox:1.35"}]));
        body["spec"]["automountServiceAccountToken"] = json!(false);
        let created = create(body).unwrap();
        assert!(created["spec"].get("volumes").is_none());
    }

    #[test]
    fn a_mirror_pod_keeps_its_static_pods_spec() {
        let mut body = pod(json!([{"name": "app", "image": "busybox:1.35"}]));
        body["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "hash"});
        let created = create(body).unwrap();
        assert!(created["spec"].get("volumes").is_none());
        assert!(created["spec"].get("serviceAccountName").is_none());
        let plain = create(pod(json!([{"name": "app", "image": "busybox:1.35"}]))).unwrap();
        assert_eq!(plain["spec"]["serviceAccountName"], "default");
    }

    #[test]
    fn invalid_pods_list_every_bad_field() {
        let err = create(pod(json!([
            {"name": "app"},
            {"name": "app", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]},
        ])))
        .unwrap_err();
        assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<String> = err.status()["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            fields.contains(&"spec.containers[0].image".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.containers[1].name".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.containers[1].volumeMounts[0].name".to_owned()),
            "{fields:?}"
        );
    }

    #[test]
    fn wrong_types_are_bad_requests_naming_the_field() {
        let err = create(pod(json!([{"name": "app", "image": 42}]))).unwrap_err();
        assert_eq!(err.code, http::StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("spec.containers[0].image"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .starts_with("Pod in version \"v1\" cannot be handled as a Pod"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_fields_are_reported() {
        let registry = Registry::new();
        let decoded = registry
            .get("pods")
            .unwrap()
            .decode(&pod(json!([{"name": "app", "image": "x", "imagee": "y"}])))
            .unwrap();
        assert_eq!(decoded.unknown_fields, ["spec.containers[0].imagee"]);
    }

    #[test]
    fn updates_may_change_images_only() {
        let registry = Registry::new();
        let strategy = registry.get("pods").unwrap();
        let old = create(pod(json!([{"name": "app", "image": "busybox:1.35"}]))).unwrap();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("busybox:1.36");
        strategy.update(&mut new, &old, None).unwrap();
        let mut bad = old.clone();
        bad["spec"]["restartPolicy"] = json!("Never");
        let err = strategy.update(&mut bad, &old, None).unwrap_err();
        assert!(
            err.message.contains("pod updates may not change fields"),
            "{}",
            err.message
        );
        // A status update cannot touch the spec, and the main resource cannot touch status.
        let mut status = old.clone();
        status["status"]["phase"] = json!("Running");
        status["spec"]["containers"][0]["image"] = json!("evil");
        strategy.update(&mut status, &old, Some("status")).unwrap();
        assert_eq!(status["status"]["phase"], "Running");
        assert_eq!(status["spec"]["containers"][0]["image"], "busybox:1.35");
    }

    #[test]
    fn qos_classes() {
        let spec = |resources: Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [{"name": "a", "resources": resources}]}))
                .unwrap()
        };
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }
}
