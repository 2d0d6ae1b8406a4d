//! The Container Runtime Interface as ferrolet uses it.
//!
//! [`RemoteRuntime`] is the client: it dials a runtime's unix socket (containerd, CRI-O or
//! ferrolet's own), checks that it serves CRI `runtime.v1`, and turns every call into a typed
//! [`Error`] that keeps the gRPC code and the runtime's message. The agent depends only on the
//! [`RuntimeService`] and [`ImageService`] traits, so its unit tests use the recording
//! `fake::FakeRuntime` (feature `fake`) instead of a runtime.

mod client;
mod endpoint;
mod error;
pub mod image_ref;
mod service;

#[cfg(any(test, feature = "fake"))]
pub mod contract;
#[cfg(any(test, feature = "fake"))]
pub mod fake;

pub use client::{ConnectOptions, RemoteRuntime};
pub use endpoint::RuntimeEndpoint;
pub use error::{Error, Result};
pub use service::{ContainerEventStream, ImageService, RuntimeService, image_spec};

/// gRPC status codes, as [`Error::code`] reports them.
pub use tonic::Code;

/// The CRI `runtime.v1` messages and generated clients.
pub use ferrolet_proto::runtime::v1 as api;
