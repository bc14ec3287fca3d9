//! One `Config` for the whole server: documented defaults overridden by
//! `MULTILANG_SANDBOX_*` environment variables.

use crate::error::ConfigError;

/// Effective configuration. Every field has a default; see [`Config::from_env`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Repository prefix of the sandbox images (`<prefix>/<language>:<hash>`).
    /// Env: `MULTILANG_SANDBOX_IMAGE_PREFIX`. Default `multilang-sandbox`.
    pub image_prefix: String,
    /// Image the sandbox base is built `FROM`. Built offline with debootstrap
    /// when missing. Env: `MULTILANG_SANDBOX_BASE_IMAGE`. Default `debian:trixie-slim`.
    pub base_image: String,
    /// Timeout of an execute when the caller gives none, in milliseconds.
    /// Env: `MULTILANG_SANDBOX_TIMEOUT_MS`. Default 30000.
    pub default_timeout_ms: u64,
    /// Largest timeout a caller may ask for, in milliseconds.
    /// Env: `MULTILANG_SANDBOX_MAX_TIMEOUT_MS`. Default 600000 (10 minutes).
    pub max_timeout_ms: u64,
    /// Bytes kept per output stream (stdout, stderr); the rest is dropped and
    /// the result says `truncated`. Env: `MULTILANG_SANDBOX_MAX_OUTPUT_BYTES`. Default 1 MiB.
    pub max_output_bytes: u64,
    /// Memory limit per container in MiB (swap is set equal, so no swap).
    /// Env: `MULTILANG_SANDBOX_MEMORY_MB`. Default 512.
    pub memory_mb: u64,
    /// Process/thread limit per container. Env: `MULTILANG_SANDBOX_PIDS_LIMIT`. Default 256.
    pub pids_limit: i64,
    /// CPUs per container (fractions allowed). Env: `MULTILANG_SANDBOX_CPUS`. Default 1.
    pub cpus: f64,
    /// Size of the writable tmpfs mounts `/tmp` and `/workspace`, in MiB each.
    /// Env: `MULTILANG_SANDBOX_TMPFS_MB`. Default 256.
    pub tmpfs_mb: u64,
    /// OCI runtime for sandbox containers (for example `runsc` for gVisor);
    /// empty means the engine's default. Env: `MULTILANG_SANDBOX_RUNTIME`. Default empty.
    pub runtime: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            image_prefix: "multilang-sandbox".to_string(),
            base_image: "debian:trixie-slim".to_string(),
            default_timeout_ms: 30_000,
            max_timeout_ms: 600_000,
            max_output_bytes: 1024 * 1024,
            memory_mb: 512,
            pids_limit: 256,
            cpus: 1.0,
            tmpfs_mb: 256,
            runtime: None,
        }
    }
}

impl Config {
    /// Defaults overridden by the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Defaults overridden by `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let get = |name: &str| {
            let key = format!("MULTILANG_SANDBOX_{name}");
            lookup(&key)
                .map(|value| (key, value.trim().to_string()))
                .filter(|(_, value)| !value.is_empty())
        };
        if let Some((_, value)) = get("IMAGE_PREFIX") {
            config.image_prefix = value;
        }
        if let Some((_, value)) = get("BASE_IMAGE") {
            config.base_image = value;
        }
        if let Some((key, value)) = get("TIMEOUT_MS") {
            config.default_timeout_ms = parse(&key, &value)?;
        }
        if let Some((key, value)) = get("MAX_TIMEOUT_MS") {
            config.max_timeout_ms = parse(&key, &value)?;
        }
        if let Some((key, value)) = get("MAX_OUTPUT_BYTES") {
            config.max_output_bytes = parse(&key, &value)?;
        }
        if let Some((key, value)) = get("MEMORY_MB") {
            config.memory_mb = parse(&key, &value)?;
        }
        if let Some((key, value)) = get("PIDS_LIMIT") {
            config.pids_limit = parse(&key, &value)?;
        }
        if let Some((key, value)) = get("CPUS") {
            config.cpus = parse(&key, &value)?;
        }
        if let Some((key, value)) = get("TMPFS_MB") {
            config.tmpfs_mb = parse(&key, &value)?;
        }
        if let Some((_, value)) = get("RUNTIME") {
            config.runtime = Some(value);
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("MULTILANG_SANDBOX_{key}"),
            reason: reason.to_string(),
        };
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return Err(invalid(
                "TIMEOUT_MS",
                "must be at least 1 and at most MULTILANG_SANDBOX_MAX_TIMEOUT_MS",
            ));
        }
        if self.memory_mb < 16 {
            return Err(invalid("MEMORY_MB", "must be at least 16"));
        }
        if self.pids_limit < 8 {
            return Err(invalid("PIDS_LIMIT", "must be at least 8"));
        }
        if !(self.cpus > 0.0 && self.cpus <= 64.0) {
            return Err(invalid("CPUS", "must be greater than 0 and at most 64"));
        }
        if self.max_output_bytes < 1024 {
            return Err(invalid("MAX_OUTPUT_BYTES", "must be at least 1024"));
        }
        Ok(())
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_string(),
        reason: format!("`{value}` is not a valid number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_apply_without_environment() {
        assert_eq!(from(&[]).unwrap(), Config::default());
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = from(&[
            ("MULTILANG_SANDBOX_MEMORY_MB", "256"),
            ("MULTILANG_SANDBOX_CPUS", "0.5"),
            ("MULTILANG_SANDBOX_RUNTIME", "runsc"),
        ])
        .unwrap();
        assert_eq!(config.memory_mb, 256);
        assert_eq!(config.cpus, 0.5);
        assert_eq!(config.runtime.as_deref(), Some("runsc"));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let error = from(&[("MULTILANG_SANDBOX_PIDS_LIMIT", "lots")]).unwrap_err();
        assert!(error.to_string().contains("MULTILANG_SANDBOX_PIDS_LIMIT"));
        let error = from(&[("MULTILANG_SANDBOX_TIMEOUT_MS", "0")]).unwrap_err();
        assert!(error.to_string().contains("TIMEOUT_MS"));
    }
}
