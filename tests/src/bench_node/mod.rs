//! The parts of `ferrolet-bench-node`: pod startup through the agent, the CRI floor beside
//! it, and the report.

pub mod floor;
pub mod report;
pub mod startup;
