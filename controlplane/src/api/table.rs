//! `meta.k8s.io/v1` Table responses: the columns `kubectl get` prints, computed by the server
//! as kube-apiserver's printers do.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// A column: name, type, format, whether only `-o wide` shows it (priority 1).
struct Column(&'static str, &'static str, &'static str, u8);

fn columns(kind: &str) -> Vec<Column> {
    let name = Column("Name", "string", "name", 0);
    let age = Column("Age", "string", "", 0);
    match kind {
        "Pod" => vec![
            name,
            Column("Ready", "string", "", 0),
            Column("Status", "string", "", 0),
            Column("Restarts", "string", "", 0),
            age,
            Column("IP", "string", "", 1),
            Column("Node", "string", "", 1),
            Column("Nominated Node", "string", "", 1),
            Column("Readiness Gates", "string", "", 1),
        ],
        "Node" => vec![
            name,
            Column("Status", "string", "", 0),
            Column("Roles", "string", "", 0),
            age,
            Column("Version", "string", "", 0),
            Column("Internal-IP", "string", "", 1),
            Column("External-IP", "string", "", 1),
            Column("OS-Image", "string", "", 1),
            Column("Kernel-Version", "string", "", 1),
            Column("Container-Runtime", "string", "", 1),
        ],
        "Namespace" => vec![name, Column("Status", "string", "", 0), age],
        "Service" => vec![
            name,
            Column("Type", "string", "", 0),
            Column("Cluster-IP", "string", "", 0),
            Column("External-IP", "string", "", 0),
            Column("Port(s)", "string", "", 0),
            age,
            Column("Selector", "string", "", 1),
        ],
        "ConfigMap" => vec![name, Column("Data", "integer", "", 0), age],
        "Secret" => vec![
            name,
            Column("Type", "string", "", 0),
            Column("Data", "integer", "", 0),
            age,
        ],
        "ServiceAccount" => vec![name, Column("Secrets", "integer", "", 0), age],
        "Endpoints" => vec![name, Column("Endpoints", "string", "", 0), age],
        "Event" => vec![
            Column("Last Seen", "string", "", 0),
            Column("Type", "string", "", 0),
            Column("Reason", "string", "", 0),
            Column("Object", "string", "", 0),
            Column("Message", "string", "", 0),
        ],
        "Lease" => vec![name, Column("Holder", "string", "", 0), age],
        "PersistentVolume" => vec![
            name,
            Column("Capacity", "string", "", 0),
            Column("Access Modes", "string", "", 0),
            Column("Reclaim Policy", "string", "", 0),
            Column("Status", "string", "", 0),
            Column("Claim", "string", "", 0),
            Column("StorageClass", "string", "", 0),
            Column("Reason", "string", "", 0),
            age,
        ],
        "PersistentVolumeClaim" => vec![
            name,
            Column("Status", "string", "", 0),
            Column("Volume", "string", "", 0),
            Column("Capacity", "string", "", 0),
            Column("Access Modes", "string", "", 0),
            Column("StorageClass", "string", "", 0),
            age,
        ],
        "CSINode" => vec![name, Column("Drivers", "integer", "", 0), age],
        "StorageClass" => vec![
            name,
            Column("Provisioner", "string", "", 0),
            Column("ReclaimPolicy", "string", "", 0),
            Column("VolumeBindingMode", "string", "", 0),
            age,
        ],
        _ => vec![name, age],
    }
}

/// kube's `HumanDuration`: `45s`, `3m20s`, `65m`, `5h10m`, `40h`, `3d4h`, `90d`, `2y30d`.
#[must_use]
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let secs = seconds.max(0);
    let (mins, hours) = (secs / 60, secs / 3600);
    let days = hours / 24;
    let years = days / 365;
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        pair(mins, "m", secs % 60, "s")
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        pair(hours, "h", mins % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        pair(days, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        pair(years, "y", days % 365, "d")
    } else {
        format!("{years}y")
    }
}

fn since(timestamp: &Value, now: Timestamp) -> Option<i64> {
    let t: Timestamp = timestamp.as_str()?.parse().ok()?;
    Some(now.as_second() - t.as_second())
}

fn age(object: &Value, now: Timestamp) -> Value {
    json!(
        since(&object["metadata"]["creationTimestamp"], now)
            .map_or_else(|| "<unknown>".to_owned(), human_duration)
    )
}

fn str_or<'a>(value: &'a Value, default: &'a str) -> &'a str {
    value.as_str().filter(|s| !s.is_empty()).unwrap_or(default)
}

/// Restart count and the age of the most recent restart over container statuses.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<i64>,
}

impl Restarts {
    fn note(&mut self, status: &Value, now: Timestamp) {
        self.count += status["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) = since(&status["lastState"]["terminated"]["finishedAt"], now) {
            self.last = Some(self.last.map_or(t, |l| l.min(t)));
        }
    }

    fn cell(&self) -> String {
        match self.last {
            Some(ago) if self.count > 0 => format!("{} ({} ago)", self.count, human_duration(ago)),
            _ => self.count.to_string(),
        }
    }
}

fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
        Some(r) => format!("{prefix}{r}"),
        None if terminated["signal"].as_i64().unwrap_or(0) != 0 => {
            format!("{prefix}Signal:{}", terminated["signal"])
        }
        None => format!(
            "{prefix}ExitCode:{}",
            terminated["exitCode"].as_i64().unwrap_or(0)
        ),
    }
}

/// The status of a pod still running its init containers, if it is.
fn init_reason(pod: &Value, restarts: &mut Restarts, now: Timestamp) -> Option<String> {
    let init_specs = pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let restartable = |name: &Value| {
        init_specs
            .iter()
            .any(|c| c["name"] == *name && c["restartPolicy"] == "Always")
    };
    let statuses = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, c) in statuses.iter().enumerate() {
        restarts.note(c, now);
        let terminated = &c["state"]["terminated"];
        if terminated.is_object() && terminated["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if restartable(&c["name"]) && c["started"] == true {
            continue;
        }
        let waiting = c["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty() && *r != "PodInitializing");
        return Some(if terminated.is_object() {
            terminated_reason(terminated, "Init:")
        } else if let Some(r) = waiting {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        });
    }
    None
}

/// Kubectl's pod STATUS and READY columns (the logic of its pod printer).
fn pod_status(pod: &Value, restarts: &mut Restarts, now: Timestamp) -> (String, usize) {
    let status = &pod["status"];
    let mut reason = status["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .or_else(|| status["phase"].as_str())
        .unwrap_or_default()
        .to_owned();
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let condition_true = |t: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    let init = init_reason(pod, restarts, now);
    let initializing = init.is_some();
    if let Some(init) = init {
        reason = init;
    }
    let mut ready = 0;
    if !initializing || condition_true("Initialized") {
        let mut has_running = false;
        for c in status["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
        {
            restarts.note(c, now);
            let state = &c["state"];
            if let Some(r) = state["waiting"]["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                r.clone_into(&mut reason);
            } else if state["terminated"].is_object() {
                reason = terminated_reason(&state["terminated"], "");
            } else if c["ready"] == true && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    // Sidecars (restartable init containers) count as containers when ready.
    let init_specs = pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in status["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let sidecar = init_specs
            .iter()
            .any(|s| s["name"] == c["name"] && s["restartPolicy"] == "Always");
        if sidecar && c["ready"] == true && c["state"]["running"].is_object() {
            ready += 1;
        }
    }
    if pod["metadata"]["deletionTimestamp"].is_string() {
        reason = if status["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    (reason, ready)
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let mut restarts = Restarts::default();
    let (reason, ready) = pod_status(pod, &mut restarts, now);
    let total = spec["containers"].as_array().map_or(0, Vec::len)
        + spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["restartPolicy"] == "Always")
            .count();
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let gates = spec["readinessGates"].as_array().map_or_else(
        || "<none>".to_owned(),
        |gates| {
            let met = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                })
                .count();
            format!("{met}/{}", gates.len())
        },
    );
    vec![
        pod["metadata"]["name"].clone(),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.cell()),
        age(pod, now),
        json!(str_or(&status["podIP"], "<none>")),
        json!(str_or(&spec["nodeName"], "<none>")),
        json!(str_or(&status["nominatedNodeName"], "<none>")),
        json!(gates),
    ]
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = match conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].clone())
    {
        Some(s) if s == "True" => "Ready".to_owned(),
        Some(s) if s == "False" => "NotReady".to_owned(),
        _ => "Unknown".to_owned(),
    };
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_owned)
                .or_else(|| {
                    (k == "kubernetes.io/role").then(|| v.as_str().unwrap_or_default().to_owned())
                })
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let address = |kind: &str| {
        node["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_owned()
    };
    let info = &node["status"]["nodeInfo"];
    vec![
        node["metadata"]["name"].clone(),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_owned()
        } else {
            roles.join(",")
        }),
        age(node, now),
        json!(str_or(&info["kubeletVersion"], "")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(str_or(&info["osImage"], "<unknown>")),
        json!(str_or(&info["kernelVersion"], "<unknown>")),
        json!(str_or(&info["containerRuntimeVersion"], "<unknown>")),
    ]
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &svc["spec"];
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = str_or(&p["protocol"], "TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector: Vec<String> = spec["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let kind = str_or(&spec["type"], "ClusterIP");
    let external = match kind {
        "ExternalName" => str_or(&spec["externalName"], "<none>").to_owned(),
        "LoadBalancer" => "<pending>".to_owned(),
        _ => "<none>".to_owned(),
    };
    vec![
        svc["metadata"]["name"].clone(),
        json!(kind),
        json!(str_or(&spec["clusterIP"], "<none>")),
        json!(external),
        json!(if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports.join(",")
        }),
        age(svc, now),
        json!(if selector.is_empty() {
            "<none>".to_owned()
        } else {
            selector.join(",")
        }),
    ]
}

fn count(value: &Value) -> usize {
    value.as_object().map_or(0, serde_json::Map::len)
}

fn event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    let last = ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|f| since(&event[*f], now))
        .or_else(|| since(&event["metadata"]["creationTimestamp"], now));
    let object = &event["involvedObject"];
    vec![
        json!(last.map_or_else(|| "<unknown>".to_owned(), human_duration)),
        event["type"].clone(),
        event["reason"].clone(),
        json!(format!(
            "{}/{}",
            object["kind"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            object["name"].as_str().unwrap_or_default()
        )),
        json!(event["message"].as_str().unwrap_or_default().trim()),
    ]
}

fn cells(kind: &str, object: &Value, now: Timestamp) -> Vec<Value> {
    let name = object["metadata"]["name"].clone();
    match kind {
        "Pod" => pod_cells(object, now),
        "Node" => node_cells(object, now),
        "Service" => service_cells(object, now),
        "Event" => event_cells(object, now),
        "Namespace" => vec![
            name,
            json!(str_or(&object["status"]["phase"], "")),
            age(object, now),
        ],
        "ConfigMap" => vec![
            name,
            json!(count(&object["data"]) + count(&object["binaryData"])),
            age(object, now),
        ],
        "Secret" => vec![
            name,
            object["type"].clone(),
            json!(count(&object["data"])),
            age(object, now),
        ],
        "ServiceAccount" => vec![
            name,
            json!(object["secrets"].as_array().map_or(0, Vec::len)),
            age(object, now),
        ],
        "Endpoints" => endpoints_cells(object, now),
        "PersistentVolume" => pv_cells(object, now),
        "Lease" => vec![
            name,
            json!(str_or(&object["spec"]["holderIdentity"], "<unknown>")),
            age(object, now),
        ],
        "PersistentVolumeClaim" => vec![
            name,
            json!(str_or(&object["status"]["phase"], "")),
            json!(str_or(&object["spec"]["volumeName"], "")),
            json!(str_or(&object["status"]["capacity"]["storage"], "")),
            json!(access_modes(&object["status"]["accessModes"])),
            json!(str_or(&object["spec"]["storageClassName"], "")),
            age(object, now),
        ],
        "CSINode" => vec![
            name,
            json!(object["spec"]["drivers"].as_array().map_or(0, Vec::len)),
            age(object, now),
        ],
        "StorageClass" => vec![
            name,
            object["provisioner"].clone(),
            json!(str_or(&object["reclaimPolicy"], "Delete")),
            json!(str_or(&object["volumeBindingMode"], "Immediate")),
            age(object, now),
        ],
        _ => vec![name, age(object, now)],
    }
}

fn endpoints_cells(object: &Value, now: Timestamp) -> Vec<Value> {
    let name = object["metadata"]["name"].clone();
    let endpoints: Vec<String> = object["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            let ports: Vec<i64> = s["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_i64())
                .collect();
            s["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(move |a| {
                    let ip = a["ip"].as_str().unwrap_or_default().to_owned();
                    if ports.is_empty() {
                        vec![ip]
                    } else {
                        ports.iter().map(|p| format!("{ip}:{p}")).collect()
                    }
                })
        })
        .collect();
    vec![
        name,
        json!(if endpoints.is_empty() {
            "<none>".to_owned()
        } else {
            endpoints.join(",")
        }),
        age(object, now),
    ]
}

fn pv_cells(object: &Value, now: Timestamp) -> Vec<Value> {
    let name = object["metadata"]["name"].clone();
    let claim = &object["spec"]["claimRef"];
    vec![
        name,
        json!(str_or(&object["spec"]["capacity"]["storage"], "")),
        json!(access_modes(&object["spec"]["accessModes"])),
        json!(str_or(&object["spec"]["persistentVolumeReclaimPolicy"], "")),
        json!(str_or(&object["status"]["phase"], "")),
        json!(if claim.is_object() {
            format!(
                "{}/{}",
                str_or(&claim["namespace"], ""),
                str_or(&claim["name"], "")
            )
        } else {
            String::new()
        }),
        json!(str_or(&object["spec"]["storageClassName"], "")),
        json!(str_or(&object["status"]["reason"], "")),
        age(object, now),
    ]
}

fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m.as_str()? {
            "ReadWriteOnce" => Some("RWO"),
            "ReadOnlyMany" => Some("ROX"),
            "ReadWriteMany" => Some("RWX"),
            "ReadWriteOncePod" => Some("RWOP"),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `PartialObjectMetadata` of an object, as table rows and metadata lists carry it.
#[must_use]
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

/// A Table of objects of one resource. `include_object` is `None`, `Metadata` (default) or
/// `Object`; `with_columns` false leaves out the column definitions (watch events after the
/// first).
#[must_use]
pub fn table(
    resource: &ResourceInfo,
    objects: &[&Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: Option<&str>,
    with_columns: bool,
) -> Value {
    let now = Timestamp::now();
    let column_definitions: Vec<Value> = columns(resource.kind)
        .into_iter()
        .map(|Column(name, kind, format, priority)| {
            json!({"name": name, "type": kind, "format": format, "description": column_description(name), "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(resource.kind, object, now)});
            match include_object {
                Some("None") => {}
                Some("Object") => row["object"] = (*object).clone(),
                _ => row["object"] = partial_metadata(object),
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "rows": rows,
    });
    if with_columns {
        table["columnDefinitions"] = json!(column_definitions);
    } else {
        table["columnDefinitions"] = json!(null);
    }
    table
}

fn column_description(name: &str) -> &'static str {
    match name {
        "Name" => {
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
        }
        "Age" => {
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
        }
        "Ready" => "The aggregate readiness state of this pod for accepting traffic.",
        "Status" => "The aggregate status of the containers in this pod.",
        "Restarts" => {
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."
        }
        "IP" => {
            "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
        }
        "Node" => "NodeName is a request to schedule this pod onto a specific node.",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn human_durations_match_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (300, "5m"),
            (3900, "65m"),
            (5 * 3600 + 600, "5h10m"),
            (40 * 3600, "40h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (90 * 86400, "90d"),
            (-5, "<invalid>"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    fn row(kind: &str, object: &Value) -> Vec<Value> {
        let resource = crate::resources::RESOURCES
            .iter()
            .find(|r| r.kind == kind)
            .unwrap();
        let t = table(resource, &[object], "1", None, None, true);
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    #[test]
    fn pod_status_column_follows_kubectl() {
        let pending = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let cells = row("Pod", &pending);
        assert_eq!(cells[0], "p");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "Pending");
        assert_eq!(cells[3], "0");
        assert_eq!(cells[5], "<none>");

        let crashing = json!({"metadata": {"name": "c"}, "spec": {"nodeName": "n1", "containers": [{"name": "a"}]}, "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": Timestamp::now().to_string()}}}]}});
        let cells = row("Pod", &crashing);
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert!(
            cells[3].as_str().unwrap().starts_with("4 ("),
            "{}",
            cells[3]
        );
        assert_eq!(cells[5], "10.0.0.5");
        assert_eq!(cells[6], "n1");

        let running = json!({"metadata": {"name": "r"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}, {"name": "b", "ready": true, "state": {"running": {}}}]}});
        assert_eq!(row("Pod", &running)[1], "2/2");

        let init = json!({"metadata": {"name": "i"}, "spec": {"initContainers": [{"name": "x"}, {"name": "y"}], "containers": [{"name": "a"}]}, "status": {"phase": "Pending", "initContainerStatuses": [{"name": "x", "state": {"terminated": {"exitCode": 0}}}, {"name": "y", "state": {"running": {}}}]}});
        assert_eq!(row("Pod", &init)[2], "Init:1/2");

        let terminating = json!({"metadata": {"name": "t", "deletionTimestamp": "2030-01-01T00:00:00Z"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}});
        assert_eq!(row("Pod", &terminating)[2], "Terminating");
    }

    #[test]
    fn node_columns() {
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}}, "spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0-ferrolet"}, "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}});
        let cells = row("Node", &node);
        assert_eq!(cells[1], "Ready,SchedulingDisabled");
        assert_eq!(cells[2], "control-plane");
        assert_eq!(cells[4], "v1.33.0-ferrolet");
        assert_eq!(cells[5], "10.0.0.2");
    }

    #[test]
    fn table_shape() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "uid": "u"}});
        let t = table(pods, &[&pod], "42", Some("tok"), None, true);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "42");
        assert_eq!(t["metadata"]["continue"], "tok");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["uid"], "u");
    }
}
