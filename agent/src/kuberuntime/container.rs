//! The CRI `ContainerConfig` for one container of a pod (`generateContainerConfig`,
//! `makeMounts`, `buildContainerLogsPath` in `kuberuntime_container.go` and `helpers.go`).

use std::collections::BTreeMap;

use ferrolet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig, Mount,
};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::expansion::expand;
use super::hosts::ETC_HOSTS_PATH;
use super::labels::{container_annotations, container_labels};
use super::qos::qos_class;
use super::resources::{ResourceContext, linux_container_resources};
use super::security::{SecurityContextInputs, linux_security_context, verify_run_as_non_root};
use super::{ConfigError, to_hash_map};

/// What the pod worker resolved for this container before creating it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerContext {
    /// The restart count: the CRI attempt and the log file name.
    pub attempt: u32,
    /// The image as the runtime resolved it (image ID or digest reference) after the pull.
    pub image_ref: String,
    /// The environment from [`super::container_env`].
    pub env: Vec<KeyValue>,
    /// The volume mounts the volume manager prepared, in `volumeMounts` order.
    pub mounts: Vec<Mount>,
    /// The host path of the pod's managed hosts file when the kubelet manages `/etc/hosts`
    /// for this container (see [`super::manages_etc_hosts`]).
    pub etc_hosts_path: Option<String>,
    /// The host file created for this container instance's termination message
    /// (see [`termination_message_host_path`]); `None` when it could not be created.
    pub termination_message_host_path: Option<String>,
    /// Whether `SELinux` is enabled on the host; kubelet-managed files are relabeled then.
    pub selinux_enabled: bool,
    /// Node facts for cgroup resources.
    pub resources: ResourceContext,
    /// Security inputs: the image's user, seccomp defaults, ephemeral container target.
    pub security: SecurityContextInputs,
}

/// The `ContainerConfig` for `container`.
///
/// Fails like the kubelet's `CreateContainerConfigError` when `runAsNonRoot` cannot be
/// honoured or a field is invalid. `command` and `args` get `$(VAR)` expansion against the
/// container's environment; the log path is `<name>/<attempt>.log` relative to the sandbox's
/// log directory.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<ContainerConfig, ConfigError> {
    verify_run_as_non_root(pod, container, ctx.security.image_user.as_deref())?;
    let env_map: BTreeMap<&str, &str> = ctx
        .env
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();
    let expand_all = |items: Option<&Vec<String>>| -> Vec<String> {
        items
            .into_iter()
            .flatten()
            .map(|item| expand(item, |name| env_map.get(name).copied()))
            .collect()
    };
    let qos = qos_class(pod);
    let linux = LinuxContainerConfig {
        resources: Some(linux_container_resources(
            pod,
            container,
            qos,
            &ctx.resources,
        )?),
        security_context: Some(linux_security_context(pod, container, &ctx.security)?),
    };
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: container.name.clone(),
            attempt: ctx.attempt,
        }),
        image: Some(ImageSpec {
            image: ctx.image_ref.clone(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..ImageSpec::default()
        }),
        command: expand_all(container.command.as_ref()),
        args: expand_all(container.args.as_ref()),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: ctx.env.clone(),
        mounts: container_mounts(container, ctx),
        labels: to_hash_map(container_labels(pod, container)),
        annotations: to_hash_map(container_annotations(pod, container, ctx.attempt)),
        log_path: container_log_path(&container.name, ctx.attempt),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(linux),
        ..ContainerConfig::default()
    })
}

/// Volume mounts, then the managed `/etc/hosts`, then the termination message file.
fn container_mounts(container: &Container, ctx: &ContainerContext) -> Vec<Mount> {
    let mut mounts = ctx.mounts.clone();
    let mounts_own_hosts = container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == ETC_HOSTS_PATH);
    if let Some(hosts) = ctx.etc_hosts_path.as_ref().filter(|_| !mounts_own_hosts) {
        mounts.push(Mount {
            container_path: ETC_HOSTS_PATH.to_owned(),
            host_path: hosts.clone(),
            readonly: false,
            selinux_relabel: ctx.selinux_enabled,
            ..Mount::default()
        });
    }
    let message_path = container
        .termination_message_path
        .as_deref()
        .unwrap_or_default();
    if let Some(host_path) = ctx.termination_message_host_path.as_ref()
        && !message_path.is_empty()
    {
        mounts.push(Mount {
            container_path: message_path.to_owned(),
            host_path: host_path.clone(),
            selinux_relabel: ctx.selinux_enabled,
            ..Mount::default()
        });
    }
    mounts
}

/// The container's log path relative to the sandbox log directory: `<name>/<attempt>.log`.
#[must_use]
pub fn container_log_path(container_name: &str, attempt: u32) -> String {
    format!("{container_name}/{attempt}.log")
}

/// The sandbox's log directory: `<pod logs dir>/<namespace>_<name>_<uid>`.
#[must_use]
pub fn pod_log_directory(pod_logs_dir: &str, namespace: &str, name: &str, uid: &str) -> String {
    format!(
        "{}/{namespace}_{name}_{uid}",
        pod_logs_dir.trim_end_matches('/')
    )
}

/// The directory holding a container's log files, which the caller creates before
/// `CreateContainer`: `<pod log directory>/<container name>`.
#[must_use]
pub fn container_log_directory(
    pod_logs_dir: &str,
    namespace: &str,
    name: &str,
    uid: &str,
    container_name: &str,
) -> String {
    format!(
        "{}/{container_name}",
        pod_log_directory(pod_logs_dir, namespace, name, uid)
    )
}

/// The per-container directory under the kubelet root: `<root>/pods/<uid>/containers/<name>`.
#[must_use]
pub fn pod_container_dir(kubelet_root_dir: &str, pod_uid: &str, container_name: &str) -> String {
    format!(
        "{}/pods/{pod_uid}/containers/{container_name}",
        kubelet_root_dir.trim_end_matches('/')
    )
}

/// The host file for one container instance's termination message:
/// `<pod container dir>/<instance as 8 hex digits>`. Upstream picks `instance` at random so
/// every restart gets a fresh, empty file; the caller supplies it (and creates the file with
/// mode 0666) to keep this function pure.
#[must_use]
pub fn termination_message_host_path(
    kubelet_root_dir: &str,
    pod_uid: &str,
    container_name: &str,
    instance: u32,
) -> String {
    format!(
        "{}/{instance:08x}",
        pod_container_dir(kubelet_root_dir, pod_uid, container_name)
    )
}

/// The path inside the container where the termination message is read from; the API
/// server defaults it to `/dev/termination-log`.
#[must_use]
pub fn termination_message_path(container: &Container) -> &str {
    container
        .termination_message_path
        .as_deref()
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
}

/// The API default of `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
