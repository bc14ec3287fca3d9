//! Failures while building the sandbox images.

use crate::docker::DockerError;
use thiserror::Error;

/// Failures while building the sandbox images.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("building image `{image}` failed: {message}")]
    BuildFailed { image: String, message: String },
    #[error("base image `{image}` is missing and could not be pulled ({pull_error}). {bootstrap_hint}")]
    BaseUnavailable {
        image: String,
        pull_error: String,
        bootstrap_hint: String,
    },
    #[error("building the base image with debootstrap failed: {0}")]
    Bootstrap(String),
    #[error("I/O error while preparing the image build: {0}")]
    Io(#[from] std::io::Error),
}
