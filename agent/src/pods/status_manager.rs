//! The status manager: keeps the last status reported for each pod and patches
//! `pods/<name>/status` only when the generated status differs, as a strategic merge patch
//! with a UID precondition, like the kubelet's.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::status::status_patch;

/// Where a pod's status goes: the pod in the API (its namespace, name and UID); for a static
/// pod, its mirror pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTarget {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl StatusTarget {
    #[must_use]
    pub fn of(pod: &Pod) -> Self {
        StatusTarget {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// Errors sending a status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("build the status patch for pod {namespace}/{name}")]
    BuildPatch {
        namespace: String,
        name: String,
        #[source]
        source: crate::status::Error,
    },
    #[error("patch the status of pod {namespace}/{name}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The status manager.
pub struct StatusManager {
    client: Option<kube::Client>,
    /// What the API server has, as far as this agent knows, by pod UID.
    reported: Mutex<HashMap<String, PodStatus>>,
}

impl std::fmt::Debug for StatusManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusManager").finish_non_exhaustive()
    }
}

impl StatusManager {
    /// A manager patching through `client`; `None` only records (unit tests, no API).
    #[must_use]
    pub fn new(client: Option<kube::Client>) -> Self {
        StatusManager {
            client,
            reported: Mutex::new(HashMap::new()),
        }
    }

    fn reported(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodStatus>> {
        self.reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last status generated for a pod.
    #[must_use]
    pub fn last(&self, uid: &str) -> Option<PodStatus> {
        self.reported().get(uid).cloned()
    }

    /// Sends `status` for `target` if it differs from what the API has (`api_status`, the
    /// status in the pod object the agent last saw, when nothing was sent yet). Returns
    /// whether a patch was sent.
    pub async fn update(
        &self,
        target: &StatusTarget,
        api_status: Option<&PodStatus>,
        status: &PodStatus,
    ) -> Result<bool, StatusError> {
        if status.phase.as_deref() == Some("Running") {
            crate::metrics::kubelet_metrics().pod_running(&target.uid);
        }
        let old = self
            .last(&target.uid)
            .or_else(|| api_status.cloned())
            .unwrap_or_default();
        let patch =
            status_patch(&target.uid, &old, status).map_err(|source| StatusError::BuildPatch {
                namespace: target.namespace.clone(),
                name: target.name.clone(),
                source,
            })?;
        let Some(patch) = patch else {
            self.reported().insert(target.uid.clone(), status.clone());
            return Ok(false);
        };
        if let Some(client) = &self.client {
            let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
            match api
                .patch_status(
                    &target.name,
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                Ok(_) => {}
                // The pod is gone, or was replaced by another with the same name: nothing to
                // report to.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    tracing::debug!(pod = %format!("{}/{}", target.namespace, target.name), code = e.code, "status not sent");
                    self.forget(&target.uid);
                    return Ok(false);
                }
                Err(source) => {
                    // Keep the old baseline: the next sync sends the difference again.
                    return Err(StatusError::Patch {
                        namespace: target.namespace.clone(),
                        name: target.name.clone(),
                        source,
                    });
                }
            }
        }
        self.reported().insert(target.uid.clone(), status.clone());
        Ok(true)
    }

    /// Forgets a pod (it is gone).
    pub fn forget(&self, uid: &str) {
        crate::metrics::kubelet_metrics().pod_forgotten(uid);
        crate::metrics::kubelet_metrics().forget_probes(uid);
        self.reported().remove(uid);
    }
}
