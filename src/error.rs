//! Error enums, one per layer. Every message a user can see says what to do next.

pub use crate::core::error::{ExecuteError, FileError, PackageError, SessionError};
pub use crate::docker::DockerError;
pub use crate::images::ImageError;
pub use crate::runtime::UnknownLanguage;
use thiserror::Error;

/// Configuration could not be read.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid configuration {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error(
        "cannot use the config file {path}: {reason}. Fix or remove it (the README's Configuration section lists every key)"
    )]
    File { path: std::path::PathBuf, reason: String },
}

/// Failures of the audit log.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error(
        "audit log {path}: {source}. Make the folder writable, or choose another file with MULTILANG_SANDBOX_AUDIT_LOG (`off` disables the log)"
    )]
    Io { path: String, source: std::io::Error },
    #[error("the audit log is damaged: {0}")]
    Corrupt(String),
}

impl AuditError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
