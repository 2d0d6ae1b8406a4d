//! Starting one container: its image by pull policy, its environment, its mounts and
//! kubelet-managed files, then `CreateContainer` and `StartContainer`, with the events the
//! kubelet records at each step and the waiting reason when a step fails.

use std::collections::BTreeMap;

use ferrolet_cri::api;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::env_sources::PrefetchedSources;
use super::sync::PodSyncer;
use crate::events::EventType;
use crate::images::{ImageError, Pulled, auth_for};
use crate::kuberuntime::{
    self, ContainerContext, EnvContext, EtcHostsContext, SecurityContextInputs,
};
use crate::status::backoff::{ImageKey, image_pull_back_off};
use crate::status::{ContainerKey, WaitingReason};
use crate::volumes::PodVolumes;

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// Where the container runs.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub sandbox_id: &'a str,
    pub sandbox_config: &'a api::PodSandboxConfig,
    pub pod_ips: &'a [String],
    pub volumes: &'a PodVolumes,
}

impl PodSyncer {
    /// Records a failed step as the kubelet does (`Failed`, `Error: <reason>`) and returns
    /// the waiting reason for the status.
    fn failed(&self, pod: &Pod, name: &str, reason: &str, message: String) -> WaitingReason {
        self.record(
            pod,
            Some(name),
            EventType::Warning,
            "Failed",
            format!("Error: {message}"),
        );
        WaitingReason::new(reason, message)
    }

    /// The image, present by pull policy: its reference and the user it runs as.
    async fn ensure_image(
        &self,
        pod: &Pod,
        container: &Container,
        sandbox_config: &api::PodSandboxConfig,
        now: Timestamp,
    ) -> Result<(String, Option<String>), WaitingReason> {
        let name = container.name.as_str();
        let image = container.image.clone().unwrap_or_default();
        let key = ImageKey::new(uid(pod), image.clone());
        let in_backoff = self
            .image_backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .in_backoff(&key, now)
            .is_some();
        if in_backoff {
            self.record(
                pod,
                Some(name),
                EventType::Normal,
                "BackOff",
                format!("Back-off pulling image {image:?}"),
            );
            self.record(
                pod,
                Some(name),
                EventType::Warning,
                "Failed",
                "Error: ImagePullBackOff".to_owned(),
            );
            return Err(image_pull_back_off(&image));
        }
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let present = self
            .images
            .service()
            .image_status(&ferrolet_cri::image_spec(&image), false)
            .await
            .ok()
            .and_then(|s| s.image);
        if policy == "Always" || (present.is_none() && policy != "Never") {
            self.record(
                pod,
                Some(name),
                EventType::Normal,
                "Pulling",
                format!("Pulling image {image:?}"),
            );
        }
        let secrets = self.pull_secrets(pod).await;
        let auths = auth_for(&image, &secrets);
        let pulled = match self
            .images
            .ensure(&image, &policy, &auths, Some(sandbox_config))
            .await
        {
            Ok(pulled) => pulled,
            Err(err) => {
                // The cause as the kubelet's image manager reports it, then the step's
                // `Error: <reason>` as kuberuntime does.
                let event_reason = match &err {
                    ImageError::Pull { .. } => "Failed",
                    ImageError::NeverPull { .. } => "ErrImageNeverPull",
                    ImageError::InvalidName { .. } => "InspectFailed",
                };
                self.record(
                    pod,
                    Some(name),
                    EventType::Warning,
                    event_reason,
                    err.to_string(),
                );
                self.record(
                    pod,
                    Some(name),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {}", err.reason()),
                );
                if matches!(err, ImageError::Pull { .. }) {
                    self.image_backoff
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .record_failure(key, now);
                }
                return Err(WaitingReason::new(err.reason(), err.to_string()));
            }
        };
        let message = match &pulled {
            Pulled::AlreadyPresent { .. } => {
                format!("Container image {image:?} already present on machine")
            }
            Pulled::Pulled { elapsed, size, .. } => format!(
                "Successfully pulled image {image:?} in {:.3}s. Image size: {size} bytes.",
                elapsed.as_secs_f64()
            ),
        };
        self.record(pod, Some(name), EventType::Normal, "Pulled", message);
        Ok((pulled.image_ref().to_owned(), self.image_user(&image).await))
    }

    async fn image_user(&self, image: &str) -> Option<String> {
        let status = self
            .images
            .service()
            .image_status(&ferrolet_cri::image_spec(image), false)
            .await
            .ok()?;
        let image = status.image?;
        if !image.username.is_empty() {
            return Some(image.username);
        }
        image.uid.map(|uid| uid.value.to_string())
    }

    /// The data of the pod's `imagePullSecrets`.
    async fn pull_secrets(&self, pod: &Pod) -> Vec<BTreeMap<String, Vec<u8>>> {
        let Some(client) = &self.client else {
            return Vec::new();
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client.clone(), &namespace);
        let mut secrets = Vec::new();
        for reference in pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
        {
            if let Ok(Some(secret)) = api.get_opt(&reference.name).await {
                secrets.push(
                    secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                );
            }
        }
        secrets
    }

    /// The container's environment, with the `ConfigMaps` and Secrets it names.
    async fn environment(
        &self,
        pod: &Pod,
        container: &Container,
        pod_ips: &[String],
    ) -> Result<Vec<api::KeyValue>, WaitingReason> {
        let sources = PrefetchedSources::fetch(self.client.as_ref(), pod, container).await;
        let env_ctx = EnvContext {
            host_ips: self.node.node_ips.clone(),
            pod_ips: pod_ips.to_vec(),
            sources: &sources,
            service_env: BTreeMap::new(),
            node_allocatable: self.node.allocatable.clone(),
        };
        let env = kuberuntime::container_env(pod, container, &env_ctx).map_err(|e| {
            self.failed(
                pod,
                &container.name,
                "CreateContainerConfigError",
                e.to_string(),
            )
        })?;
        for warning in env.warnings {
            self.record(
                pod,
                Some(&container.name),
                EventType::Warning,
                warning.reason,
                warning.message,
            );
        }
        Ok(env.value)
    }

    /// The kubelet-managed files of a container instance: the pod's `/etc/hosts` (when
    /// managed) and the termination message file.
    fn managed_files(
        &self,
        pod: &Pod,
        container: &Container,
        attempt: u32,
        pod_ips: &[String],
    ) -> Result<(Option<String>, Option<String>), WaitingReason> {
        let config_error = |message: String| {
            self.failed(pod, &container.name, "CreateContainerConfigError", message)
        };
        let etc_hosts = if kuberuntime::manages_etc_hosts(container, pod_ips) {
            let hosts = kuberuntime::hosts_file(
                pod,
                &EtcHostsContext {
                    pod_ips: pod_ips.to_vec(),
                    cluster_domain: self.node.dns.cluster_domain.clone(),
                    node_hosts_file: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                },
            )
            .map_err(|e| config_error(e.to_string()))?;
            let path = kuberuntime::hosts::etc_hosts_host_path(&self.node.root_dir, uid(pod));
            write_file(&path, hosts.as_bytes())
                .map_err(|e| config_error(format!("write {path}: {e}")))?;
            Some(path)
        } else {
            None
        };
        let path = kuberuntime::container::termination_message_host_path(
            &self.node.root_dir,
            uid(pod),
            &container.name,
            attempt,
        );
        let termination = write_file(&path, b"").ok().map(|()| path);
        Ok((etc_hosts, termination))
    }

    /// Pulls the image and creates and starts one container; the waiting reason on failure.
    pub(crate) async fn start_container(
        &self,
        pod: &Pod,
        container: &Container,
        attempt: u32,
        placement: Placement<'_>,
        last_finished: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), WaitingReason> {
        let name = container.name.as_str();
        let (image_ref, image_user) = self
            .ensure_image(pod, container, placement.sandbox_config, now)
            .await?;
        let env = self.environment(pod, container, placement.pod_ips).await?;
        let lookup = |key: &str| {
            env.iter()
                .rev()
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.clone())
        };
        let mounts = placement
            .volumes
            .mounts_for(container, &lookup)
            .map_err(|e| self.failed(pod, name, "CreateContainerConfigError", e.to_string()))?;
        let (etc_hosts_path, termination_message_host_path) =
            self.managed_files(pod, container, attempt, placement.pod_ips)?;
        let ctx = ContainerContext {
            attempt,
            image_ref,
            env,
            mounts,
            etc_hosts_path,
            termination_message_host_path,
            selinux_enabled: false,
            resources: self.node.resources.clone(),
            security: SecurityContextInputs {
                image_user,
                ..SecurityContextInputs::default()
            },
        };
        let config = kuberuntime::container_config(pod, container, &ctx)
            .map_err(|e| self.failed(pod, name, "CreateContainerConfigError", e.to_string()))?;
        let id = self
            .runtime
            .create_container(placement.sandbox_id, &config, placement.sandbox_config)
            .await
            .map_err(|e| self.failed(pod, name, "CreateContainerError", e.to_string()))?;
        self.record(
            pod,
            Some(name),
            EventType::Normal,
            "Created",
            format!("Created container: {name}"),
        );
        self.runtime
            .start_container(&id)
            .await
            .map_err(|e| self.failed(pod, name, "RunContainerError", e.to_string()))?;
        self.record(
            pod,
            Some(name),
            EventType::Normal,
            "Started",
            format!("Started container {name}"),
        );
        // A start after an exit counts towards the crash-loop back-off.
        if let Some(finished) = last_finished {
            let mut backoff = self
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            backoff.next_delay(ContainerKey::new(uid(pod), name), finished, now);
        }
        self.post_start(
            pod,
            container,
            &id,
            placement.pod_ips.first().map(String::as_str),
        )
        .await
        .map_err(|e| WaitingReason::new("PostStartHookError", e.to_string()))
    }
}

fn write_file(path: &str, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
}
