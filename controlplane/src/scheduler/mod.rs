//! The scheduler: places pending pods on nodes, as kube-scheduler's default profile does for
//! the plugins ferrolet implements (`NodeUnschedulable`, `NodeName`, `TaintToleration`,
//! `NodeAffinity`, `NodePorts`, `NodeResourcesFit`; scoring by `LeastAllocated`,
//! `PreferNoSchedule` taints and preferred node affinity).
//!
//! The core is pure and unit-tested: [`quantity`] and [`resources`] do the arithmetic,
//! [`filters`] and [`score`] judge one node, [`algorithm`] makes one decision and formats the
//! unschedulable message ([`fit_error`]), [`queue`] and [`state`] keep the state between
//! decisions: the pods waiting and when to try them, and every node with its pods, updated
//! from watch events and as pods are assumed. [`pass`] and [`mod@run`] wire it to the API through a kube-rs `Client` only, so the
//! scheduler works against ferrolet's API server and a real kube-apiserver alike.

pub mod affinity;
pub mod algorithm;
pub mod cache;
pub mod filters;
pub mod fit_error;
pub mod node_info;
pub mod objects;
pub mod pass;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod run;
pub mod score;
pub mod state;
pub mod taints;

pub use algorithm::{ScheduleError, ScheduleResult, schedule_pod};
pub use fit_error::FitError;
pub use node_info::NodeInfo;
pub use run::{Error, Result, SchedulerConfig, run};
