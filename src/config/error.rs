//! Why the configuration could not be read: the message names the key and
//! the file or variable that set it.

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
