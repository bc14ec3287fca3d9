//! What can go wrong giving a sandbox network through the egress proxy.

use crate::docker::DockerError;
use crate::security::egress::PatternError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EgressError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("the egress proxy did not start: {0}; check that the images are built (`multilang-sandbox images build`)")]
    ProxyStart(String),
    #[error("the egress proxy has no address on network `{0}`")]
    NoAddress(String),
    #[error("network: {0}")]
    BadPattern(#[from] PatternError),
    /// A requested host the user's configuration does not cover.
    #[error("network: {0}")]
    NotCovered(String),
    #[error(
        "session `{0}` was created without network, so it has no way to the egress proxy; \
         create a new session with `network: [...]`"
    )]
    NoNetwork(String),
}
