//! Container runtime endpoints as the kubelet spells them: `unix:///run/containerd/containerd.sock`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The address of a CRI server: a unix socket path.
///
/// Accepts `unix:///abs/path.sock` and, like the kubelet did for years, a bare absolute path.
/// Other schemes (`tcp://`, `npipe://`) are refused: the kubelet on Linux only dials unix
/// sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEndpoint {
    path: PathBuf,
}

impl RuntimeEndpoint {
    /// Parses an endpoint string.
    pub fn parse(endpoint: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: reason.to_owned(),
        };
        let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
            rest
        } else if let Some((scheme, _)) = endpoint.split_once("://") {
            return Err(invalid(&format!(
                "scheme {scheme:?} is not supported, use unix:///path/to/socket"
            )));
        } else {
            endpoint
        };
        if path.is_empty() {
            return Err(invalid("the socket path is empty"));
        }
        if !path.starts_with('/') {
            return Err(invalid("the socket path must be absolute"));
        }
        Ok(RuntimeEndpoint {
            path: PathBuf::from(path),
        })
    }

    /// The socket path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for RuntimeEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix://{}", self.path.display())
    }
}

impl std::str::FromStr for RuntimeEndpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unix_urls_and_bare_paths() {
        let url = RuntimeEndpoint::parse("unix:///run/containerd/containerd.sock").unwrap();
        assert_eq!(url.path(), Path::new("/run/containerd/containerd.sock"));
        assert_eq!(url.to_string(), "unix:///run/containerd/containerd.sock");
        let bare = RuntimeEndpoint::parse("/run/crio/crio.sock").unwrap();
        assert_eq!(bare.path(), Path::new("/run/crio/crio.sock"));
    }

    #[test]
    fn rejects_other_schemes_and_relative_paths() {
        for (endpoint, needle) in [
            ("tcp://127.0.0.1:1234", "scheme \"tcp\""),
            ("unix://", "empty"),
            ("unix://relative.sock", "absolute"),
            ("run/containerd.sock", "absolute"),
        ] {
            let err = RuntimeEndpoint::parse(endpoint).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(endpoint), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
    }
}
