//! The Kubernetes API over HTTPS.

pub mod access;
pub(crate) mod admission;
pub mod bootstrap;
pub mod discovery;
pub mod error;
pub(crate) mod handlers;
pub mod openapi;
pub mod options;
pub mod patching;
pub mod protobuf;
pub mod proxy;
pub mod request;
pub(crate) mod reviews;
pub mod selectors;
pub mod serve;
pub mod server;
pub mod table;
pub(crate) mod watch;
pub(crate) mod write;

pub use server::{ApiConfig, ApiServer};
