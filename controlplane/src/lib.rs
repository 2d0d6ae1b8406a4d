//! ferrolet's companion control plane: a Kubernetes API server with an embedded store (or
//! etcd), a scheduler and a few controllers, enough for the ordinary `kubectl` and for real
//! kubelets (ferrolet's or upstream's) to drive a cluster.

pub mod patch;
pub mod store;
