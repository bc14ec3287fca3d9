//! Failures of the audit log.

use thiserror::Error;

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
