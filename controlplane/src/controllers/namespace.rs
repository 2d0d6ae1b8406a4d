//! The namespace controller: once a namespace is being deleted, it deletes everything in
//! it, and when nothing is left, removes the `kubernetes` finalizer so the namespace goes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use tokio_util::sync::CancellationToken;

use crate::resources::RESOURCES;

/// Errors of one pass of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("list namespaces")]
    ListNamespaces(#[source] kube::Error),
    #[error("list {resource} in namespace {namespace}")]
    ListContent {
        resource: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalize namespace {namespace}")]
    Finalize {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// How often terminating namespaces are looked at.
const PERIOD: Duration = Duration::from_secs(1);

/// Runs until `cancel`.
pub async fn run(client: Client, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = pass(&client).await {
            tracing::warn!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "namespace controller");
        }
    }
}

/// One look at every terminating namespace.
pub async fn pass(client: &Client) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let list = namespaces
        .list(&ListParams::default())
        .await
        .map_err(Error::ListNamespaces)?;
    for ns in list
        .items
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
    {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if empty_namespace(client, &name).await? {
            finalize(&namespaces, ns.clone()).await?;
        }
    }
    Ok(())
}

/// Deletes what is left in a namespace; true once nothing is left.
async fn empty_namespace(client: &Client, namespace: &str) -> Result<bool, Error> {
    let mut empty = true;
    for resource in RESOURCES.iter().filter(|r| r.namespaced) {
        let gvk = GroupVersionKind::gvk(resource.group, resource.version, resource.kind);
        let api_resource = ApiResource::from_gvk_with_plural(&gvk, resource.plural);
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource);
        let objects =
            api.list(&ListParams::default())
                .await
                .map_err(|source| Error::ListContent {
                    resource: resource.plural.to_owned(),
                    namespace: namespace.to_owned(),
                    source,
                })?;
        for object in &objects.items {
            empty = false;
            if object.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = object.metadata.name.clone().unwrap_or_default();
            if let Err(err) = api.delete(&name, &DeleteParams::default()).await {
                tracing::debug!(namespace, resource = resource.plural, name, %err, "delete namespace content");
            }
        }
    }
    Ok(empty)
}

async fn finalize(namespaces: &Api<Namespace>, mut ns: Namespace) -> Result<(), Error> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    if let Some(finalizers) = ns.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        finalizers.retain(|f| f != "kubernetes");
    }
    namespaces
        .replace_subresource("finalize", &name, &PostParams::default(), &ns)
        .await
        .map(drop)
        .map_err(|source| Error::Finalize {
            namespace: name,
            source,
        })
}
