//! What the runtime has of one pod, as the status and action logic sees it: the pod's
//! sandboxes and containers (found by the pod UID label) with their full statuses.

use std::collections::HashMap;

use ferrolet_cri::{RuntimeService, api};

use crate::pleg::POD_UID_LABEL;
use crate::status::{PodRuntimeStatus, RuntimeContainer, SandboxStatus};

fn by_uid(uid: &str) -> HashMap<String, String> {
    HashMap::from([(POD_UID_LABEL.to_owned(), uid.to_owned())])
}

/// The sandboxes and containers of pod `uid`, newest information from the runtime.
pub async fn pod_runtime_status(
    runtime: &dyn RuntimeService,
    uid: &str,
) -> Result<PodRuntimeStatus, ferrolet_cri::Error> {
    let mut status = PodRuntimeStatus::default();
    let sandboxes = runtime
        .list_pod_sandbox(Some(api::PodSandboxFilter {
            label_selector: by_uid(uid),
            ..Default::default()
        }))
        .await?;
    for sandbox in sandboxes {
        match runtime.pod_sandbox_status(&sandbox.id, false).await {
            Ok(response) => {
                if let Some(s) = response.status {
                    status.sandboxes.push(SandboxStatus::from_cri(&s));
                }
            }
            // Removed between the list and the status call.
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err),
        }
    }
    let containers = runtime
        .list_containers(Some(api::ContainerFilter {
            label_selector: by_uid(uid),
            ..Default::default()
        }))
        .await?;
    for container in containers {
        match runtime.container_status(&container.id, false).await {
            Ok(response) => {
                if let Some(s) = response.status {
                    let mut c = RuntimeContainer::from_cri(&s);
                    c.sandbox_id = Some(container.pod_sandbox_id.clone());
                    status.containers.push(c);
                }
            }
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err),
        }
    }
    Ok(status)
}
