//! Pods in end-to-end tests: building them from JSON, creating them, and waiting for what
//! the node reports.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};

/// The image every test pod runs (imported by hack/images).
pub const BUSYBOX: &str = "busybox:1.35";

/// A pod from its JSON form (`metadata` and `spec` as in a manifest).
pub fn pod(value: serde_json::Value) -> Result<Pod> {
    serde_json::from_value(value).context("a pod manifest")
}

/// A one-container busybox pod running `sh -c script` under `restart_policy`.
pub fn shell_pod(name: &str, restart_policy: &str, script: &str) -> Result<Pod> {
    pod(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 2,
            "containers": [{ "name": "main", "image": BUSYBOX, "command": ["sh", "-c", script] }]
        }
    }))
}

/// Creates `pod` in `namespace`.
pub async fn create(client: &kube::Client, namespace: &str, pod: &Pod) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), pod)
        .await
        .with_context(|| {
            format!(
                "creating pod {namespace}/{}",
                pod.metadata.name.as_deref().unwrap_or_default()
            )
        })
}

/// Polls the pod every 200 ms until `check` accepts it; fails after `limit` with `what` and
/// the pod's last status.
pub async fn wait_for(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    limit: Duration,
    what: &str,
    mut check: impl FnMut(&Pod) -> bool,
) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        if let Ok(pod) = api.get(name).await {
            if check(&pod) {
                return Ok(pod);
            }
            last = Some(pod);
        }
        if Instant::now() > deadline {
            bail!(
                "{namespace}/{name}: not {what} within {limit:?}; last status: {}",
                serde_json::to_string(&last.and_then(|p| p.status)).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the pod object is gone; returns how long that took.
pub async fn wait_gone(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<Duration> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let began = Instant::now();
    while began.elapsed() < limit {
        if api.get_opt(name).await?.is_none() {
            return Ok(began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{namespace}/{name} still exists after {limit:?}")
}

/// The pod's phase.
#[must_use]
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The status of condition `type_` (`"True"`, `"False"`), if present.
#[must_use]
pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The status of app container `name`.
#[must_use]
pub fn container<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

/// The status of init container `name`.
#[must_use]
pub fn init_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

/// The waiting reason of a container status, if waiting.
#[must_use]
pub fn waiting_reason(status: &ContainerStatus) -> Option<&str> {
    status.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

/// The events about a pod, oldest first.
pub async fn events(client: &kube::Client, namespace: &str, name: &str) -> Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut events = api
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?
        .items;
    events.sort_by_key(|e| e.first_timestamp.clone().map(|t| t.0));
    Ok(events)
}

/// The CRI id of the running container `name` of the pod with UID `pod_uid`.
pub async fn running_container_id(pod_uid: &str, name: &str) -> Result<String> {
    use ferrolet_cri::{RuntimeService, api};
    let filter = api::ContainerFilter {
        label_selector: [
            ("io.kubernetes.pod.uid".to_owned(), pod_uid.to_owned()),
            ("io.kubernetes.container.name".to_owned(), name.to_owned()),
        ]
        .into(),
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning.into(),
        }),
        ..Default::default()
    };
    let containers = crate::containerd()
        .await
        .list_containers(Some(filter))
        .await?;
    containers
        .into_iter()
        .next()
        .map(|c| c.id)
        .with_context(|| format!("no running container {name} in pod {pod_uid}"))
}

/// Runs `command` in the running container `name` of the pod with UID `pod_uid` (CRI
/// ExecSync): what the container sees. Returns the exit code and stdout; stderr is appended
/// to a failure's message.
pub async fn exec(pod_uid: &str, name: &str, command: &[&str]) -> Result<(i32, String)> {
    use ferrolet_cri::RuntimeService;
    let id = running_container_id(pod_uid, name).await?;
    let command: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
    let response = crate::containerd()
        .await
        .exec_sync(&id, &command, Duration::from_secs(20))
        .await
        .with_context(|| format!("exec {command:?} in {name}"))?;
    Ok((
        response.exit_code,
        String::from_utf8_lossy(&response.stdout).into_owned()
            + &String::from_utf8_lossy(&response.stderr),
    ))
}
