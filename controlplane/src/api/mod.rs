//! The Kubernetes API over HTTPS.

pub mod error;
pub mod request;
pub mod selectors;
pub mod options;
pub mod table;
pub(crate) mod admission;
pub mod bootstrap;
pub mod discovery;
pub(crate) mod handlers;
pub mod openapi;
pub mod patching;
pub mod serve;
pub mod server;
pub(crate) mod watch;
pub(crate) mod write;

pub use server::{ApiConfig, ApiServer};
