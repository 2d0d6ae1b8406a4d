//! The ferrolet node agent: a kubelet that runs the pods bound to its node through a CRI
//! runtime and reports their status, the node's status and its lease to the API server.
//!
//! It speaks only the standard Kubernetes API (through kube-rs) and the CRI, so it works
//! against ferrolet's control plane and a real kube-apiserver alike, over containerd,
//! CRI-O or ferrolet's own runtime.

pub mod config;
pub mod csi;
pub mod downward;
pub mod events;
pub mod images;
pub mod kubelet;
pub mod kuberuntime;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod pleg;
pub mod pods;
pub mod prober;
pub mod quantity;
pub mod server;
pub mod sources;
pub mod status;
pub mod volumes;
