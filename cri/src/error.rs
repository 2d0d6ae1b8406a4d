//! Errors of the CRI client: each names the step that failed and keeps the runtime's gRPC
//! code and message, so that callers can tell "not found" from "the runtime is down".

use std::time::Duration;

/// The result of a CRI client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed CRI operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime endpoint string is not a usable `unix://` address.
    #[error("invalid container runtime endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    /// No connection could be made to the runtime's socket within the connect timeout.
    #[error(
        "connect to container runtime at {endpoint} failed after {attempts} attempts: {reason}"
    )]
    ConnectFailed {
        endpoint: String,
        attempts: u32,
        reason: String,
    },

    /// The runtime answered, but not with CRI `runtime.v1`.
    #[error("container runtime at {endpoint} does not serve CRI runtime.v1: {reason}")]
    UnsupportedApiVersion { endpoint: String, reason: String },

    /// The runtime answered a call with a gRPC error status.
    #[error("{operation} {target}: {code:?}: {message}")]
    Rpc {
        /// The CRI method, e.g. `RunPodSandbox`.
        operation: &'static str,
        /// What the call was about, e.g. `image "busybox:1.35"` or `pod sandbox "4f1c…"`.
        target: String,
        code: tonic::Code,
        message: String,
    },

    /// The call did not complete within its deadline.
    #[error("{operation} {target}: no answer within {timeout:?}")]
    DeadlineExceeded {
        operation: &'static str,
        target: String,
        timeout: Duration,
    },

    /// The runtime answered with a response that breaks the CRI contract.
    #[error("{operation} {target}: invalid response from runtime: {reason}")]
    InvalidResponse {
        operation: &'static str,
        target: String,
        reason: String,
    },
}

impl Error {
    /// The gRPC status code of the failure, as the runtime reported it or as it maps for
    /// client-side failures (`Unavailable` for connection problems, `DeadlineExceeded` for
    /// timeouts).
    #[must_use]
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::InvalidEndpoint { .. } => tonic::Code::InvalidArgument,
            Error::ConnectFailed { .. } => tonic::Code::Unavailable,
            Error::UnsupportedApiVersion { .. } => tonic::Code::Unimplemented,
            Error::Rpc { code, .. } => *code,
            Error::DeadlineExceeded { .. } => tonic::Code::DeadlineExceeded,
            Error::InvalidResponse { .. } => tonic::Code::Internal,
        }
    }

    /// Whether the object the call named does not exist in the runtime.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.code() == tonic::Code::NotFound
    }

    /// Whether the runtime does not implement the call (for example `GetContainerEvents` on
    /// runtimes without evented PLEG support).
    #[must_use]
    pub fn is_unimplemented(&self) -> bool {
        self.code() == tonic::Code::Unimplemented
    }

    pub(crate) fn from_status(
        operation: &'static str,
        target: String,
        status: &tonic::Status,
    ) -> Self {
        Error::Rpc {
            operation,
            target,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        tonic::Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_error_message_names_operation_and_object() {
        let err = Error::from_status(
            "PullImage",
            "image \"docker.io/library/nope:1\"".into(),
            &tonic::Status::not_found("failed to resolve reference"),
        );
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "PullImage image \"docker.io/library/nope:1\": NotFound: failed to resolve reference"
        );
        let status: tonic::Status = err.into();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().contains("nope:1"));
    }

    #[test]
    fn client_side_failures_map_to_grpc_codes() {
        let timeout = Error::DeadlineExceeded {
            operation: "Version",
            target: "runtime".into(),
            timeout: Duration::from_secs(2),
        };
        assert_eq!(timeout.code(), tonic::Code::DeadlineExceeded);
        let connect = Error::ConnectFailed {
            endpoint: "unix:///nope.sock".into(),
            attempts: 3,
            reason: "no such file".into(),
        };
        assert_eq!(connect.code(), tonic::Code::Unavailable);
        assert!(!connect.is_not_found());
    }
}
