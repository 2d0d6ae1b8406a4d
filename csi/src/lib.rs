//! CSI on the node, as the kubelet and a driver's sidecars do it:
//!
//! - [`socket`]: dialling and serving gRPC on unix sockets.
//! - [`client`]: the kubelet's side of a CSI driver's `Identity` and `Node` services.
//! - [`watcher`]: the kubelet plugin watcher on `<root>/plugins_registry` (the
//!   `pluginregistration` handshake: `GetInfo`, then `NotifyRegistrationStatus`).
//! - [`driver`]: `ferrolet csi-hostpath`, a real CSI driver keeping volumes as directories,
//!   with the registrar (node-driver-registrar's job) and a provisioner (external-provisioner's
//!   job) built in.

pub mod client;
pub mod driver;
pub mod socket;
pub mod watcher;

pub use client::{CsiClient, CsiError, PublishSpec};
pub use watcher::{PluginWatcher, RegistrationHandler};

/// The `volume_context` key a kubelet sets to `"true"` for an inline ephemeral volume.
pub const EPHEMERAL_CONTEXT_KEY: &str = "csi.storage.k8s.io/ephemeral";
