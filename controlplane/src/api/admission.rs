//! What kube-apiserver's admission plugins and post-create hooks add on create: `ClusterIP`
//! and `NodePort` allocation for Services, and for every new namespace its `default`
//! `ServiceAccount` and the `kube-root-ca.crt` `ConfigMap`.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, FieldError};
use super::handlers::Context;
use crate::registry::ServiceIpAllocator;
use crate::registry::service::used_addresses;
use crate::resources::ResourceInfo;

/// Checks and completes a new object before it is stored.
pub(crate) async fn admit_create(
    ctx: &Context,
    resource: &ResourceInfo,
    object: &mut Value,
) -> ApiResult<()> {
    if resource.kind == "Service" {
        allocate_service_addresses(ctx, resource, object).await?;
    }
    Ok(())
}

async fn allocate_service_addresses(
    ctx: &Context,
    resource: &ResourceInfo,
    service: &mut Value,
) -> ApiResult<()> {
    let name = service["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let kind = service["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_owned();
    if kind == "ExternalName" {
        return Ok(());
    }
    // One allocation at a time; the list below comes from the store, so it includes every
    // address already written.
    let _guard = ctx.server.service_lock.lock().await;
    let listed = ctx.server.store.list(&resource.key_prefix()).await?;
    let services: Vec<Value> = listed
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    let (used_ips, used_ports) = used_addresses(services.iter());
    let allocator = &ctx.server.services;
    let requested = service["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ip = if requested == "None" {
        None
    } else if requested.is_empty() {
        Some(allocator.allocate(&used_ips).ok_or_else(|| {
            ApiError::internal(format!(
                "failed to allocate a serviceIP: range {} is full",
                ctx.server.config.service_cidr
            ))
        })?)
    } else {
        let ip: Ipv4Addr = requested.parse().map_err(|_| {
            ApiError::invalid(
                resource,
                &name,
                &[FieldError::invalid(
                    "spec.clusterIPs[0]",
                    &json!(requested),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )],
            )
        })?;
        if !allocator.contains(ip) {
            return Err(ApiError::invalid(
                resource,
                &name,
                &[FieldError::invalid(
                    "spec.clusterIPs[0]",
                    &json!(requested),
                    &format!(
                        "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                        ctx.server.config.service_cidr
                    ),
                )],
            ));
        }
        if used_ips.contains(&ip) {
            return Err(ApiError::invalid(
                resource,
                &name,
                &[FieldError::invalid(
                    "spec.clusterIPs[0]",
                    &json!(requested),
                    &format!("failed to allocate IP {requested}: provided IP is already allocated"),
                )],
            ));
        }
        Some(ip)
    };
    if let Some(ip) = ip {
        service["spec"]["clusterIP"] = json!(ip.to_string());
        service["spec"]["clusterIPs"] = json!([ip.to_string()]);
    } else {
        service["spec"]["clusterIP"] = json!("None");
        service["spec"]["clusterIPs"] = json!(["None"]);
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        let mut used = used_ports;
        for port in service["spec"]["ports"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            match port["nodePort"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
            {
                Some(p) if used.contains(&p) => {
                    return Err(ApiError::invalid(
                        resource,
                        &name,
                        &[FieldError::invalid(
                            "spec.ports[0].nodePort",
                            &json!(p),
                            "provided port is already allocated",
                        )],
                    ));
                }
                Some(p) => {
                    used.insert(p);
                }
                None => {
                    let p = ServiceIpAllocator::allocate_node_port(&used).ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                    used.insert(p);
                    port["nodePort"] = json!(p);
                }
            }
        }
    }
    Ok(())
}

/// Objects every namespace gets once it exists.
pub(crate) async fn after_create(ctx: &Context, resource: &ResourceInfo, object: &Value) {
    if resource.kind == "Namespace" {
        let namespace = object["metadata"]["name"].as_str().unwrap_or_default();
        ctx.server.populate_namespace(namespace).await;
    }
}
