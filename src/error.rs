//! Error enums, one per layer. Every message a user can see says what to do next.

pub use crate::config::ConfigError;
pub use crate::core::error::{ExecuteError, FileError, PackageError, SessionError};
pub use crate::docker::DockerError;
pub use crate::images::ImageError;
pub use crate::runtime::UnknownLanguage;
pub use crate::security::audit::AuditError;
