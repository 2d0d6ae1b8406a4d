//! ferrolet's companion control plane: a Kubernetes API server with an embedded store (or
//! etcd), a scheduler and a few controllers, enough for the ordinary `kubectl` and for real
//! kubelets (ferrolet's or upstream's) to drive a cluster.

pub mod api;
pub mod auth;
pub mod cache;
pub mod controllers;
pub mod patch;
pub mod registry;
pub mod resources;
pub mod run;
pub mod scheduler;
pub mod store;
