//! Container and sandbox security settings (`security_context.go`,
//! `security_context_others.go`, `kuberuntime_security_profile.go`, `pkg/securitycontext`,
//! `kuberuntime/util`).

use ferrolet_cri::api::{
    Capability, Int64Value, LinuxContainerSecurityContext, NamespaceMode, NamespaceOption,
    SeLinuxOption, SecurityProfile, SupplementalGroupsPolicy, security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, Pod, SELinuxOptions, SeccompProfile, SecurityContext,
};

use super::qos::all_containers;
use super::{ConfigError, format_pod};

/// Paths the runtime masks in every container unless `procMount: Unmasked`
/// (kept in sync with moby's defaults, as upstream's `defaultMaskedPaths`).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths the runtime makes read-only unless `procMount: Unmasked`.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The kubelet's default `--seccomp-profile-root` (`<root-dir>/seccomp`).
pub const DEFAULT_SECCOMP_PROFILE_ROOT: &str = "/var/lib/kubelet/seccomp";

/// Inputs of the container security context that are not in the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityContextInputs {
    /// The image config's `User` (`1000`, `1000:1000`, `nobody`); `None` or empty when the
    /// image names none, which means root.
    pub image_user: Option<String>,
    /// `--seccomp-default`: `RuntimeDefault` instead of `Unconfined` when the pod sets no
    /// seccomp profile.
    pub seccomp_default: bool,
    /// `--seccomp-profile-root`, the base of `Localhost` seccomp profiles.
    pub seccomp_profile_root: String,
    /// For an ephemeral container with `targetContainerName`: the runtime ID of the target,
    /// whose PID namespace it joins.
    pub target_container_id: Option<String>,
    /// Groups the volumes require (`GetExtraSupplementalGroupsForPod`, e.g. a PV's
    /// `pv.beta.kubernetes.io/gid`).
    pub extra_supplemental_groups: Vec<i64>,
}

impl Default for SecurityContextInputs {
    fn default() -> Self {
        Self {
            image_user: None,
            seccomp_default: false,
            seccomp_profile_root: DEFAULT_SECCOMP_PROFILE_ROOT.to_owned(),
            target_container_id: None,
            extra_supplemental_groups: Vec::new(),
        }
    }
}

/// The user an image runs as, as the runtime reports it in `ImageStatus` (containerd's
/// `getUserFromImage`): a numeric uid, or a user name, from the part before `:`. An image
/// without a user runs as uid 0.
#[must_use]
pub fn image_user(user: Option<&str>) -> (Option<i64>, String) {
    let user = user.unwrap_or_default();
    if user.is_empty() {
        return (Some(0), String::new());
    }
    let name = user.split(':').next().unwrap_or_default();
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, name.to_owned()),
    }
}

/// The container's security context with the pod's defaults filled in
/// (`DetermineEffectiveSecurityContext`): `seLinuxOptions`, `runAsUser`, `runAsGroup` and
/// `runAsNonRoot` come from the pod unless the container sets them.
#[must_use]
pub fn effective_security_context(pod: &Pod, container: &Container) -> SecurityContext {
    let mut effective = container.security_context.clone().unwrap_or_default();
    if let Some(pod_sc) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) {
        if effective.se_linux_options.is_none() {
            effective
                .se_linux_options
                .clone_from(&pod_sc.se_linux_options);
        }
        if effective.windows_options.is_none() {
            effective
                .windows_options
                .clone_from(&pod_sc.windows_options);
        }
        effective.run_as_user = effective.run_as_user.or(pod_sc.run_as_user);
        effective.run_as_group = effective.run_as_group.or(pod_sc.run_as_group);
        effective.run_as_non_root = effective.run_as_non_root.or(pod_sc.run_as_non_root);
    }
    effective
}

/// The `runAsNonRoot` check the kubelet makes before creating a container
/// (`verifyRunAsNonRoot`): with `runAsNonRoot: true`, `runAsUser` must not be 0, or when it
/// is unset the image must run as a numeric, non-zero uid.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image_user_name: Option<&str>,
) -> Result<(), ConfigError> {
    let effective = effective_security_context(pod, container);
    if effective.run_as_non_root != Some(true) {
        return Ok(());
    }
    let names = || (format_pod(pod), container.name.clone());
    if let Some(uid) = effective.run_as_user {
        if uid == 0 {
            let (pod, container) = names();
            return Err(ConfigError::RunAsUserIsRoot { pod, container });
        }
        return Ok(());
    }
    match image_user(image_user_name) {
        (Some(0), _) => {
            let (pod, container) = names();
            Err(ConfigError::ImageRunsAsRoot { pod, container })
        }
        (None, user) if !user.is_empty() => {
            let (pod, container) = names();
            Err(ConfigError::NonNumericImageUser {
                user,
                pod,
                container,
            })
        }
        _ => Ok(()),
    }
}

/// The pod's namespace modes (`NamespacesForPod`): network and IPC are the node's with
/// `hostNetwork`/`hostIPC`, else the pod's; PID is the node's with `hostPID`, the pod's with
/// `shareProcessNamespace`, else the container's own.
#[must_use]
pub fn namespace_options(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
        spec.and_then(f).unwrap_or(false)
    };
    let mode = |host: bool| {
        if host {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        }
    };
    let pid = if flag(|s| s.host_pid) {
        NamespaceMode::Node
    } else if flag(|s| s.share_process_namespace) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    NamespaceOption {
        network: mode(flag(|s| s.host_network)).into(),
        pid: pid.into(),
        ipc: mode(flag(|s| s.host_ipc)).into(),
        ..NamespaceOption::default()
    }
}

/// True if any init, regular or ephemeral container is privileged (the sandbox must be too).
#[must_use]
pub fn has_privileged_container(pod: &Pod) -> bool {
    let privileged = |sc: Option<&SecurityContext>| sc.and_then(|sc| sc.privileged) == Some(true);
    all_containers(pod).any(|c| privileged(c.security_context.as_ref()))
        || pod
            .spec
            .iter()
            .flat_map(|s| s.ephemeral_containers.iter().flatten())
            .any(|c| privileged(c.security_context.as_ref()))
}

/// `spec.securityContext.supplementalGroupsPolicy` as the CRI enum.
pub fn supplemental_groups_policy(pod: &Pod) -> Result<i32, ConfigError> {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.supplemental_groups_policy.as_deref());
    match policy {
        None | Some("Merge") => Ok(SupplementalGroupsPolicy::Merge.into()),
        Some("Strict") => Ok(SupplementalGroupsPolicy::Strict.into()),
        Some(other) => Err(ConfigError::UnsupportedSupplementalGroupsPolicy {
            pod: format_pod(pod),
            policy: other.to_owned(),
        }),
    }
}

/// The pod's supplemental groups: `fsGroup`, then `supplementalGroups`, then the groups the
/// volumes need.
#[must_use]
pub fn pod_supplemental_groups(pod: &Pod, extra: &[i64]) -> Vec<i64> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let mut groups: Vec<i64> = pod_sc.and_then(|sc| sc.fs_group).into_iter().collect();
    groups.extend(
        pod_sc
            .and_then(|sc| sc.supplemental_groups.clone())
            .unwrap_or_default(),
    );
    groups.extend_from_slice(extra);
    groups
}

pub(crate) fn selinux_option(options: Option<&SELinuxOptions>) -> Option<SeLinuxOption> {
    options.map(|o| SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    })
}

/// The container's `LinuxContainerSecurityContext` (`determineEffectiveSecurityContext`).
///
/// Capabilities go to the runtime as written in the pod (`NET_ADMIN`); containerd and CRI-O
/// add the `CAP_` prefix themselves. `no_new_privs` is set only for
/// `allowPrivilegeEscalation: false`. Masked and read-only paths are the defaults unless
/// `procMount: Unmasked`. Without a profile in the pod, seccomp is `Unconfined` (or
/// `RuntimeDefault` with `--seccomp-default`) and `AppArmor` is left to the runtime.
pub fn linux_security_context(
    pod: &Pod,
    container: &Container,
    inputs: &SecurityContextInputs,
) -> Result<LinuxContainerSecurityContext, ConfigError> {
    let effective = effective_security_context(pod, container);
    let mut sc = LinuxContainerSecurityContext {
        capabilities: effective.capabilities.as_ref().map(|caps| Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged: effective.privileged.unwrap_or(false),
        selinux_options: selinux_option(effective.se_linux_options.as_ref()),
        run_as_user: effective.run_as_user.map(|value| Int64Value { value }),
        run_as_group: effective.run_as_group.map(|value| Int64Value { value }),
        readonly_rootfs: effective.read_only_root_filesystem.unwrap_or(false),
        no_new_privs: effective.allow_privilege_escalation == Some(false),
        ..LinuxContainerSecurityContext::default()
    };
    if sc.run_as_user.is_none() {
        match image_user(inputs.image_user.as_deref()) {
            (Some(uid), _) => sc.run_as_user = Some(Int64Value { value: uid }),
            (None, name) => sc.run_as_username = name,
        }
    }
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    sc.seccomp = Some(seccomp_profile(pod, container, inputs)?);
    let apparmor = apparmor_profile(pod, container)?;
    #[allow(deprecated)] // containerd 1.6 still reads the string form; upstream sets both.
    if let Some((profile, legacy)) = apparmor {
        sc.apparmor = Some(profile);
        sc.apparmor_profile = legacy;
    }
    let mut namespaces = namespace_options(pod);
    if let Some(target) = &inputs.target_container_id
        && namespaces.pid == i32::from(NamespaceMode::Container)
    {
        namespaces.pid = NamespaceMode::Target.into();
        namespaces.target_id.clone_from(target);
    }
    sc.namespace_options = Some(namespaces);
    sc.supplemental_groups = pod_supplemental_groups(pod, &inputs.extra_supplemental_groups);
    if pod_sc.is_some() {
        sc.supplemental_groups_policy = supplemental_groups_policy(pod)?;
    }
    if effective.proc_mount.as_deref() != Some("Unmasked") {
        sc.masked_paths = DEFAULT_MASKED_PATHS.iter().map(|&p| p.to_owned()).collect();
        sc.readonly_paths = DEFAULT_READONLY_PATHS
            .iter()
            .map(|&p| p.to_owned())
            .collect();
    }
    Ok(sc)
}

/// `getSeccompProfile`: the container's profile, else the pod's, else the default.
fn seccomp_profile(
    pod: &Pod,
    container: &Container,
    inputs: &SecurityContextInputs,
) -> Result<SecurityProfile, ConfigError> {
    let profile_of = |profile: &SeccompProfile| -> Result<SecurityProfile, ConfigError> {
        Ok(match profile.type_.as_str() {
            "RuntimeDefault" => security_profile(ProfileType::RuntimeDefault, String::new()),
            "Localhost" => {
                let name = profile
                    .localhost_profile
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| ConfigError::SeccompLocalhostProfileMissing {
                        pod: format_pod(pod),
                        container: container.name.clone(),
                    })?;
                let root = inputs.seccomp_profile_root.trim_end_matches('/');
                security_profile(ProfileType::Localhost, format!("{root}/{name}"))
            }
            _ => security_profile(ProfileType::Unconfined, String::new()),
        })
    };
    let container_profile = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_profile = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.seccomp_profile.as_ref());
    match container_profile.or(pod_profile) {
        Some(profile) => profile_of(profile),
        None if inputs.seccomp_default => {
            Ok(security_profile(ProfileType::RuntimeDefault, String::new()))
        }
        None => Ok(security_profile(ProfileType::Unconfined, String::new())),
    }
}

fn security_profile(profile_type: ProfileType, localhost_ref: String) -> SecurityProfile {
    SecurityProfile {
        profile_type: profile_type.into(),
        localhost_ref,
    }
}

/// `getAppArmorProfile`: the container's field, else the container's beta annotation, else
/// the pod's field; with the legacy string form (`runtime/default`, `unconfined`,
/// `localhost/<name>`).
fn apparmor_profile(
    pod: &Pod,
    container: &Container,
) -> Result<Option<(SecurityProfile, String)>, ConfigError> {
    let annotation_key = format!(
        "container.apparmor.security.beta.kubernetes.io/{}",
        container.name
    );
    let from_annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&annotation_key))
        .map(|value| match value.as_str() {
            "runtime/default" => AppArmorProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            },
            "unconfined" => AppArmorProfile {
                type_: "Unconfined".to_owned(),
                localhost_profile: None,
            },
            other => AppArmorProfile {
                type_: "Localhost".to_owned(),
                localhost_profile: other.strip_prefix("localhost/").map(str::to_owned),
            },
        });
    let profile = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.app_armor_profile.clone())
        .or(from_annotation)
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|sc| sc.app_armor_profile.clone())
        });
    let Some(profile) = profile else {
        return Ok(None);
    };
    let resolved = match profile.type_.as_str() {
        "RuntimeDefault" => (
            security_profile(ProfileType::RuntimeDefault, String::new()),
            "runtime/default".to_owned(),
        ),
        "Unconfined" => (
            security_profile(ProfileType::Unconfined, String::new()),
            "unconfined".to_owned(),
        ),
        "Localhost" => {
            let name = profile.localhost_profile.ok_or_else(|| {
                ConfigError::AppArmorLocalhostProfileMissing {
                    pod: format_pod(pod),
                    container: container.name.clone(),
                }
            })?;
            (
                security_profile(ProfileType::Localhost, name.clone()),
                format!("localhost/{name}"),
            )
        }
        other => {
            return Err(ConfigError::UnknownAppArmorProfileType {
                pod: format_pod(pod),
                container: container.name.clone(),
                profile_type: other.to_owned(),
            });
        }
    };
    Ok(Some(resolved))
}
