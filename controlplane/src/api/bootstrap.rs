//! System objects: the namespaces every cluster starts with, each namespace's `default`
//! `ServiceAccount` and `kube-root-ca.crt`, and the `kubernetes` Service in `default`.

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::handlers::{encode_for_store, now_rfc3339};
use super::server::ApiServer;
use crate::registry::pod::ROOT_CA_CONFIGMAP;
use crate::resources;
use crate::store;

/// The namespaces created at start.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// Creates an object through its strategy unless one with its name exists.
    pub async fn ensure_object(
        &self,
        plural: &str,
        namespace: Option<&str>,
        mut object: Value,
    ) -> ApiResult<()> {
        let resource = resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .ok_or_else(|| ApiError::internal(format!("no resource {plural}")))?;
        let strategy = self
            .registry
            .get(plural)
            .ok_or_else(|| ApiError::internal(format!("no strategy for {plural}")))?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(ns) = namespace {
            object["metadata"]["namespace"] = json!(ns);
        }
        object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        let mut object = strategy.decode(&object)?.value;
        strategy.create(&mut object)?;
        match self
            .store
            .create(&resource.key(namespace, &name), encode_for_store(&object))
            .await
        {
            Ok(_) | Err(store::Error::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// What every namespace gets: its `default` `ServiceAccount` and the cluster CA.
    pub async fn populate_namespace(&self, namespace: &str) {
        let account =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        if let Err(err) = self
            .ensure_object("serviceaccounts", Some(namespace), account)
            .await
        {
            tracing::error!(namespace, %err, "create the default ServiceAccount");
        }
        if let Some(ca) = &self.config.ca_pem {
            let configmap = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": ca},
            });
            if let Err(err) = self
                .ensure_object("configmaps", Some(namespace), configmap)
                .await
            {
                tracing::error!(namespace, %err, "publish the cluster CA");
            }
        }
    }

    /// Creates the system namespaces and the `kubernetes` Service.
    pub async fn bootstrap(&self) -> ApiResult<()> {
        for namespace in SYSTEM_NAMESPACES {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            self.ensure_object("namespaces", None, object).await?;
            self.populate_namespace(namespace).await;
        }
        let port: i32 = self
            .config
            .advertise_address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(6443);
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": self.services.first().to_string(),
                "clusterIPs": [self.services.first().to_string()],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
            },
        });
        self.ensure_object("services", Some("default"), service)
            .await
    }
}
