//! Who is calling the API server, and may they do what they ask: the cluster's PKI,
//! kubeconfig files, authentication and authorization, modelled on kube-apiserver and
//! kubeadm so that the real `kubectl` and real kubelets connect unchanged.
//!
//! - [`pki`]: the cluster CA, the API server's serving certificate, the admin client
//!   certificate and the service-account signing key, created on first start and loaded
//!   afterwards; client certificates for nodes (directly or from a CSR); the rustls
//!   [`ServerConfig`](rustls::ServerConfig) that asks for, but does not require, a client
//!   certificate.
//! - [`kubeconfig`]: kubeconfig files for the admin and for token users.
//! - [`user`], [`token_file`], [`service_account`], [`authenticator`]: a request's
//!   [`UserInfo`] from its client certificate, a static token (`--token-auth-file`) or a
//!   service-account JWT, or anonymous.
//! - [`authorizer`], [`node_authorizer`], [`node_restriction`]: `system:masters` may do
//!   everything, nodes what kube-apiserver's Node authorizer and `NodeRestriction` admission
//!   allow a kubelet, everyone the discovery and health endpoints; RBAC comes later.

pub mod authenticator;
pub mod authorizer;
pub mod clock;
mod digest;
mod files;
pub mod kubeconfig;
pub mod lookup;
pub mod node_authorizer;
pub mod node_restriction;
pub mod pki;
pub mod service_account;
pub mod token_file;
pub mod user;

pub use authenticator::{AuthenticationError, Authenticator};
pub use authorizer::{
    Decision, RequestAttributes, authorize, forbidden_message, forbidden_message_with_reason,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use kubeconfig::{Kubeconfig, KubeconfigCredentials, KubeconfigError};
pub use lookup::{InMemoryObjectLookup, ObjectLookup, PodBinding};
pub use pki::{ClusterPki, IssuedCertificate, PkiError, ServingIdentity};
pub use service_account::{
    ServiceAccountClaims, ServiceAccountIssuerConfig, ServiceAccountTokenIssuer,
    ServiceAccountTokenRequest, TokenError,
};
pub use token_file::{StaticTokens, TokenFileError};
pub use user::UserInfo;
