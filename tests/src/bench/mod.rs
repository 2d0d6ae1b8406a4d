//! The parts of `ferrolet-bench-controlplane`: the processes under test, the simulated
//! nodes, the observer of watch events, the workload of one run, and the report.

pub mod cluster;
pub mod fake_node;
pub mod load;
pub mod metrics;
pub mod observer;
pub mod report;
pub mod workload;
