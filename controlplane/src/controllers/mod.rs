//! Controllers of the control plane: loops that watch the API and drive objects toward what
//! their spec or the cluster's state calls for, talking to the API server only through a
//! kube-rs `Client`, as kube-controller-manager's controllers do.
pub mod namespace;
pub mod node_lifecycle;
pub mod persistent_volume;
