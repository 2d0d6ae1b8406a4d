//! The CSI drivers registered on this node (`pkg/volume/csi`'s `csiDrivers` and
//! `nodeinfomanager`): the plugin watcher hands each driver that registers to
//! [`CsiRegistration`], which asks it `NodeGetInfo`, remembers it for the volume manager, and
//! publishes it in the API: the node's `CSINode` object (`spec.drivers`) and its
//! `csi.volume.kubernetes.io/nodeid` annotation. A driver that goes away is removed from both.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferrolet_csi::{CsiClient, RegistrationHandler};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::CSINode;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// The node annotation mapping driver names to their node ids (JSON object).
pub const NODE_ID_ANNOTATION: &str = "csi.volume.kubernetes.io/nodeid";

/// One registered driver.
#[derive(Debug, Clone)]
pub struct RegisteredDriver {
    pub client: CsiClient,
    /// The driver's id for this node (`NodeGetInfo`).
    pub node_id: String,
}

/// The drivers registered on this node, by name.
#[derive(Debug, Default)]
pub struct CsiDrivers {
    drivers: Mutex<HashMap<String, RegisteredDriver>>,
}

impl CsiDrivers {
    /// The driver `name`, if registered.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<RegisteredDriver> {
        self.lock().get(name).cloned()
    }

    /// Registers (or replaces) the driver `name`.
    pub fn insert(&self, name: &str, driver: RegisteredDriver) {
        self.lock().insert(name.to_owned(), driver);
    }

    /// Forgets the driver `name`.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The names of the registered drivers.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RegisteredDriver>> {
        self.drivers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The plugin watcher's handler for CSI drivers.
pub struct CsiRegistration {
    drivers: Arc<CsiDrivers>,
    client: Option<kube::Client>,
    node_name: String,
}

impl std::fmt::Debug for CsiRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsiRegistration")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl CsiRegistration {
    /// Registers into `drivers`, publishing to the API through `client` (none: static pods
    /// only) for the node `node_name`.
    #[must_use]
    pub fn new(drivers: Arc<CsiDrivers>, client: Option<kube::Client>, node_name: &str) -> Self {
        CsiRegistration {
            drivers,
            client,
            node_name: node_name.to_owned(),
        }
    }

    /// Sets (`Some`) or removes the driver in the node annotation and the `CSINode` object.
    async fn publish(&self, driver: &str, node_id: Option<&str>) -> Result<(), String> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let nodes: Api<Node> = Api::all(client.clone());
        let node = nodes
            .get(&self.node_name)
            .await
            .map_err(|e| format!("get node {}: {e}", self.node_name))?;
        let mut ids: BTreeMap<String, String> = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_ID_ANNOTATION))
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        match node_id {
            Some(id) => ids.insert(driver.to_owned(), id.to_owned()),
            None => ids.remove(driver),
        };
        let value = if ids.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::String(serde_json::to_string(&ids).unwrap_or_default())
        };
        nodes
            .patch(
                &self.node_name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "metadata": { "annotations": { NODE_ID_ANNOTATION: value } }
                })),
            )
            .await
            .map_err(|e| format!("annotate node {}: {e}", self.node_name))?;
        // Read-modify-write of the CSINode, again on a conflict.
        let csi_nodes: Api<CSINode> = Api::all(client.clone());
        for _ in 0..5 {
            let existing = csi_nodes
                .get_opt(&self.node_name)
                .await
                .map_err(|e| format!("get csinode {}: {e}", self.node_name))?;
            let result = match existing {
                None => {
                    let Some(id) = node_id else { return Ok(()) };
                    let object: CSINode = serde_json::from_value(serde_json::json!({
                        "apiVersion": "storage.k8s.io/v1",
                        "kind": "CSINode",
                        "metadata": {
                            "name": self.node_name,
                            "ownerReferences": [{
                                "apiVersion": "v1", "kind": "Node", "name": self.node_name,
                                "uid": node.metadata.uid.clone().unwrap_or_default()
                            }]
                        },
                        "spec": { "drivers": [{ "name": driver, "nodeID": id }] }
                    }))
                    .map_err(|e| e.to_string())?;
                    csi_nodes
                        .create(&PostParams::default(), &object)
                        .await
                        .map(drop)
                }
                Some(mut object) => {
                    let drivers = &mut object.spec.drivers;
                    drivers.retain(|d| d.name != driver);
                    if let Some(id) = node_id {
                        drivers.push(
                            serde_json::from_value(
                                serde_json::json!({ "name": driver, "nodeID": id }),
                            )
                            .map_err(|e| e.to_string())?,
                        );
                    }
                    csi_nodes
                        .replace(&self.node_name, &PostParams::default(), &object)
                        .await
                        .map(drop)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(format!("update csinode {}: {e}", self.node_name)),
            }
        }
        Err(format!("update csinode {}: conflicts", self.node_name))
    }
}

#[async_trait]
impl RegistrationHandler for CsiRegistration {
    async fn register(
        &self,
        name: &str,
        endpoint: &Path,
        _versions: &[String],
    ) -> Result<(), String> {
        let client = CsiClient::new(endpoint);
        let info = client.node_get_info().await.map_err(|e| e.to_string())?;
        if info.node_id.is_empty() {
            return Err(format!("driver {name} returned an empty node id"));
        }
        self.publish(name, Some(&info.node_id)).await?;
        self.drivers.insert(
            name,
            RegisteredDriver {
                client,
                node_id: info.node_id.clone(),
            },
        );
        tracing::info!(driver = %name, node_id = %info.node_id, endpoint = %endpoint.display(), "CSI driver registered");
        Ok(())
    }

    async fn deregister(&self, name: &str) {
        self.drivers.remove(name);
        if let Err(err) = self.publish(name, None).await {
            tracing::warn!(driver = %name, %err, "remove the CSI driver from the node");
        }
        tracing::info!(driver = %name, "CSI driver deregistered");
    }
}
