//! The Kubernetes API over HTTPS.

pub mod error;
pub mod request;
pub mod selectors;
