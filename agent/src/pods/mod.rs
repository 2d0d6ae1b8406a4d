//! Pods on this node: one worker per pod UID converging the runtime to the pod's spec, and
//! the status manager reporting what it sees.

pub mod admission;
pub mod cgroups;
pub mod env_sources;
pub mod node_context;
pub mod runtime_view;
pub mod start;
pub mod status_manager;
pub mod sync;
pub mod workers;
