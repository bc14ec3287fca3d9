//! One `Config` for the whole server: documented defaults, overridden by
//! the TOML config file, overridden by `MULTILANG_SANDBOX_*` environment
//! variables.

mod layers;
mod show;

use layers::Layers;
pub use layers::{ConfigFile, KEYS, Source, config_file_path, env_name};
pub use show::Loaded;

use crate::error::ConfigError;
use crate::runtime::Language;
use crate::security::audit::AuditSettings;
use crate::security::policy::PolicyMode;
use crate::security::seccomp::SeccompProfile;
use std::collections::BTreeMap;
use std::path::{Component, PathBuf};

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
    /// Size of the writable tmpfs mounts (`/tmp`, and a stateless run's
    /// `/workspace` and `/outputs`; a session's `/outputs` too), in MiB each.
    /// Env: `MULTILANG_SANDBOX_TMPFS_MB`. Default 256.
    pub tmpfs_mb: u64,
    /// Where a session's `/workspace` and `/outputs` live: `memory` (tmpfs
    /// volumes with a hard size limit; files survive pause, resume and server
    /// restarts, not the container stopping, as on an engine restart) or `disk` (Docker volumes with
    /// no size limit of their own: a session can fill the engine's disk).
    /// Env: `MULTILANG_SANDBOX_SESSION_STORAGE`. Default `memory`.
    pub session_storage: SessionStorage,
    /// Size of a session's `/workspace` in MiB when storage is `memory`. Its
    /// files count as the container's memory, so the session's memory limit
    /// grows by this much. Env: `MULTILANG_SANDBOX_SESSION_STORAGE_MB`. Default 512.
    pub session_storage_mb: u64,
    /// OCI runtime for sandbox containers (for example `runsc` for gVisor);
    /// empty means the engine's default. Env: `MULTILANG_SANDBOX_RUNTIME`. Default empty.
    pub runtime: Option<String>,
    /// Warm containers kept per language (0 disables the pool for it).
    /// Env: `MULTILANG_SANDBOX_POOL_SIZE`, either one number for every
    /// language or `python=2,go=1,...`. Default python 2, every other language 1.
    pub pool_sizes: BTreeMap<Language, usize>,
    /// Idle time to live of a session when `create` gives none, in seconds.
    /// Env: `MULTILANG_SANDBOX_SESSION_TTL_S`. Default 3600.
    pub session_ttl_s: u64,
    /// Largest session time to live, in seconds.
    /// Env: `MULTILANG_SANDBOX_MAX_SESSION_TTL_S`. Default 604800 (7 days).
    pub max_session_ttl_s: u64,
    /// Most sessions that may exist at once on the engine.
    /// Env: `MULTILANG_SANDBOX_MAX_SESSIONS`. Default 32.
    pub max_sessions: usize,
    /// How often expired sessions are garbage-collected, in seconds.
    /// Env: `MULTILANG_SANDBOX_GC_INTERVAL_S`. Default 30.
    pub gc_interval_s: u64,
    /// Folder for state shared by every server on this machine (session
    /// activity and extensions). Env: `MULTILANG_SANDBOX_STATE_DIR`.
    /// Default `$XDG_STATE_HOME/multilang-sandbox` (`~/.local/state/multilang-sandbox`).
    pub state_dir: PathBuf,
    /// `cache prune` keeps this many newest cached package images per language.
    /// Env: `MULTILANG_SANDBOX_CACHE_KEEP`. Default 5.
    pub cache_keep_per_language: usize,
    /// `cache prune` then removes the oldest images until the cache fits, in MiB.
    /// Env: `MULTILANG_SANDBOX_CACHE_MAX_MB`. Default 10240 (10 GiB).
    pub cache_max_mb: u64,
    /// CA bundle (PEM, on this machine) that install steps trust, so package
    /// downloads work behind a TLS-inspecting proxy. Env:
    /// `MULTILANG_SANDBOX_CA_BUNDLE` (`none` disables). Default: `$SSL_CERT_FILE`,
    /// else the system bundle (`/etc/ssl/certs/ca-certificates.crt`,
    /// `/etc/pki/tls/certs/ca-bundle.crt` or `/etc/ssl/cert.pem`) when present.
    pub ca_bundle: Option<PathBuf>,
    /// Most files from `/outputs` returned with one execute.
    /// Env: `MULTILANG_SANDBOX_MAX_ARTIFACTS`. Default 10.
    pub max_artifacts: usize,
    /// Most bytes of images returned with one execute.
    /// Env: `MULTILANG_SANDBOX_MAX_ARTIFACT_BYTES`. Default 8 MiB.
    pub max_artifact_bytes: u64,
    /// Largest file `sandbox_file_ops` reads or writes, in bytes.
    /// Env: `MULTILANG_SANDBOX_MAX_FILE_BYTES`. Default 10 MiB.
    pub max_file_bytes: u64,
    /// Host folders sessions may mount (`mounts` on session create), each at
    /// `/mnt/<name>`, read-only unless marked `:rw`. Nothing else on the host
    /// is reachable from a sandbox. Env: `MULTILANG_SANDBOX_HOST_FOLDERS`,
    /// for example `data=/home/me/data,results=/home/me/results:rw`. Default none.
    pub host_folders: Vec<HostFolder>,
    /// Seccomp profile of sandbox containers: `standard`, `strict`,
    /// `permissive`, `engine-default` (Docker's own) or the path of a profile
    /// file. Sessions may ask for a stricter one. Env: `MULTILANG_SANDBOX_SECCOMP`.
    /// Default `standard`.
    pub seccomp: SeccompProfile,
    /// The audit log. Env: `MULTILANG_SANDBOX_AUDIT_LOG` (a file, or `off`;
    /// default `$XDG_DATA_HOME/multilang-sandbox/audit/audit.jsonl`, that is
    /// `~/.local/share/...`), `MULTILANG_SANDBOX_AUDIT_MAX_MB` (rotation size,
    /// default 10), `MULTILANG_SANDBOX_AUDIT_KEEP` (rotated files kept,
    /// default 10), `MULTILANG_SANDBOX_AUDIT_LOG_CODE` (`1` records the code
    /// itself, default only its SHA-256 and size).
    pub audit: AuditSettings,
    /// What the code policy does with a match: `audit` (record a violation,
    /// run the code), `block` (refuse), `off`. Env: `MULTILANG_SANDBOX_POLICY`.
    /// Default `audit`.
    pub policy: PolicyMode,
}

/// Where a session's files live (see [`Config::session_storage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStorage {
    Memory,
    Disk,
}

impl SessionStorage {
    pub fn name(self) -> &'static str {
        match self {
            SessionStorage::Memory => "memory",
            SessionStorage::Disk => "disk",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "memory" | "tmpfs" => Some(SessionStorage::Memory),
            "disk" | "volume" => Some(SessionStorage::Disk),
            _ => None,
        }
    }
}

/// Largest `max_file_bytes`: a file read travels base64 (4/3 of its size)
/// in one message from the runner, which the host bounds at 64 MiB.
pub const MAX_FILE_BYTES_LIMIT: u64 = 32 * 1024 * 1024;

/// A host folder that sessions may mount.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HostFolder {
    /// Name the session asks for; the folder appears at `/mnt/<name>`.
    pub name: String,
    /// Absolute path on the host (or on the Docker engine's machine).
    pub host_path: PathBuf,
    /// Code may change files in it (`:rw`); otherwise it is read-only.
    pub writable: bool,
}

impl HostFolder {
    /// Where the folder appears inside a session.
    pub fn mount_point(&self) -> String {
        format!("/mnt/{}", self.name)
    }
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
            session_storage: SessionStorage::Memory,
            session_storage_mb: 512,
            runtime: None,
            pool_sizes: Language::ALL
                .iter()
                .map(|language| (*language, if *language == Language::Python { 2 } else { 1 }))
                .collect(),
            session_ttl_s: 3600,
            max_session_ttl_s: 7 * 24 * 3600,
            max_sessions: 32,
            gc_interval_s: 30,
            state_dir: default_state_dir(|key| std::env::var(key).ok()),
            cache_keep_per_language: 5,
            cache_max_mb: 10 * 1024,
            ca_bundle: default_ca_bundle(|key| std::env::var(key).ok(), |path| path.is_file()),
            max_artifacts: 10,
            max_artifact_bytes: 8 * 1024 * 1024,
            max_file_bytes: 10 * 1024 * 1024,
            host_folders: Vec::new(),
            seccomp: SeccompProfile::Standard,
            audit: AuditSettings {
                path: Some(default_audit_path(|key| std::env::var(key).ok())),
                max_bytes: 10 * 1024 * 1024,
                keep_files: 10,
                log_code: false,
            },
            policy: PolicyMode::Audit,
        }
    }
}

fn default_ca_bundle(
    lookup: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&std::path::Path) -> bool,
) -> Option<PathBuf> {
    let from_env = lookup("SSL_CERT_FILE")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from);
    from_env
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        )
        .find(|path| exists(path))
}

fn default_audit_path(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    let base = lookup("XDG_DATA_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("multilang-sandbox/audit/audit.jsonl")
}

fn default_state_dir(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    let base = lookup("XDG_STATE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("multilang-sandbox")
}

/// Parses `3` (every language) or `python=2,go=0` (the others keep their default).
fn parse_pool_sizes(
    key: &str,
    value: &str,
    defaults: &BTreeMap<Language, usize>,
) -> Result<BTreeMap<Language, usize>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: key.to_string(),
        reason,
    };
    if let Ok(size) = value.parse::<usize>() {
        return Ok(Language::ALL.iter().map(|language| (*language, size)).collect());
    }
    let mut sizes = defaults.clone();
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (name, size) = entry
            .split_once('=')
            .ok_or_else(|| invalid(format!("`{entry}` should look like `python=2`")))?;
        let language = Language::parse(name).map_err(|error| invalid(error.to_string()))?;
        let size = size
            .trim()
            .parse()
            .map_err(|_| invalid(format!("`{size}` is not a valid number")))?;
        sizes.insert(language, size);
    }
    Ok(sizes)
}

/// Parses `data=/srv/data,results=/srv/results:rw`. Names are 1–32 of
/// `[a-z0-9_-]` (they become `/mnt/<name>`); paths must be absolute.
fn parse_host_folders(key: &str, value: &str) -> Result<Vec<HostFolder>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: key.to_string(),
        reason,
    };
    let mut folders: Vec<HostFolder> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (name, path) = entry.split_once('=').ok_or_else(|| {
            invalid(format!(
                "`{entry}` should look like `data=/home/me/data` or `out=/srv/out:rw`"
            ))
        })?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(invalid(format!(
                "folder name `{name}` must be 1 to 32 of a-z, 0-9, `-` or `_`"
            )));
        }
        let path = path.trim();
        let (path, writable) = match path.rsplit_once(':') {
            Some((folder, access)) if access.eq_ignore_ascii_case("rw") => (folder.trim(), true),
            Some((folder, access)) if access.eq_ignore_ascii_case("ro") => (folder.trim(), false),
            _ => (path, false),
        };
        let host_path = PathBuf::from(path);
        if !host_path.is_absolute() {
            return Err(invalid(format!("`{path}` for `{name}` must be an absolute path")));
        }
        if host_path
            .components()
            .any(|part| matches!(part, Component::ParentDir | Component::CurDir))
        {
            return Err(invalid(format!(
                "`{path}` for `{name}` contains `.` or `..`; give the folder's plain absolute path"
            )));
        }
        if folders.iter().any(|folder| folder.name == name) {
            return Err(invalid(format!("folder name `{name}` is given twice")));
        }
        folders.push(HostFolder {
            name: name.to_string(),
            host_path,
            writable,
        });
    }
    if let Some((outer, inner)) = nested_in_writable(&folders) {
        return Err(invalid(format!(
            "folder `{}` ({}) lies inside the writable folder `{}` ({}): code in a session that mounts `{}` \
             could replace part of `{}`'s path with a symbolic link and so mount any host folder. \
             Make `{}` read-only, or configure folders that do not lie inside writable ones",
            inner.name,
            inner.host_path.display(),
            outer.name,
            outer.host_path.display(),
            outer.name,
            inner.name,
            outer.name,
        )));
    }
    Ok(folders)
}

/// The first pair (writable folder, another folder inside it), if any.
fn nested_in_writable(folders: &[HostFolder]) -> Option<(&HostFolder, &HostFolder)> {
    folders.iter().filter(|outer| outer.writable).find_map(|outer| {
        folders
            .iter()
            .find(|inner| inner.host_path != outer.host_path && inner.host_path.starts_with(&outer.host_path))
            .map(|inner| (outer, inner))
    })
}

impl Config {
    /// Defaults, overridden by the config file, overridden by the process
    /// environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&|key| std::env::var(key).ok()).map(|loaded| loaded.config)
    }

    /// Reads the config file `lookup` points at (see [`config_file_path`])
    /// and applies `lookup`'s `MULTILANG_SANDBOX_*` variables over it.
    pub fn load(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
        let (path, required) = config_file_path(lookup);
        let file = ConfigFile::read(&path, required)?;
        let layers = Layers::new(lookup, file.as_ref());
        let config = Self::from_layers(&layers, lookup)?;
        Ok(Loaded {
            config,
            sources: layers.into_sources(),
            file: path,
            file_found: file.is_some(),
        })
    }

    /// Defaults overridden by `lookup` alone (tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let layers = Layers::new(&lookup, None);
        Self::from_layers(&layers, &lookup)
    }

    fn from_layers(layers: &Layers<'_>, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some((_, value)) = layers.get("image_prefix") {
            config.image_prefix = value;
        }
        if let Some((_, value)) = layers.get("base_image") {
            config.base_image = value;
        }
        if let Some((key, value)) = layers.get("timeout_ms") {
            config.default_timeout_ms = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("max_timeout_ms") {
            config.max_timeout_ms = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("max_output_bytes") {
            config.max_output_bytes = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("memory_mb") {
            config.memory_mb = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("pids_limit") {
            config.pids_limit = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("cpus") {
            config.cpus = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("tmpfs_mb") {
            config.tmpfs_mb = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("session_storage") {
            config.session_storage = SessionStorage::parse(&value).ok_or_else(|| ConfigError::Invalid {
                key,
                reason: format!("`{value}` is not a session storage: use memory or disk"),
            })?;
        }
        if let Some((key, value)) = layers.get("session_storage_mb") {
            config.session_storage_mb = parse(&key, &value)?;
        }
        if let Some((_, value)) = layers.get("runtime") {
            config.runtime = Some(value);
        }
        if let Some((key, value)) = layers.get("pool_size") {
            config.pool_sizes = parse_pool_sizes(&key, &value, &config.pool_sizes)?;
        }
        if let Some((key, value)) = layers.get("session_ttl_s") {
            config.session_ttl_s = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("max_session_ttl_s") {
            config.max_session_ttl_s = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("max_sessions") {
            config.max_sessions = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("gc_interval_s") {
            config.gc_interval_s = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("cache_keep") {
            config.cache_keep_per_language = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("cache_max_mb") {
            config.cache_max_mb = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("max_artifacts") {
            config.max_artifacts = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("max_file_bytes") {
            config.max_file_bytes = parse(&key, &value)?;
            // A file travels base64 in one runner message (bounded at 64 MiB).
            if config.max_file_bytes == 0 || config.max_file_bytes > MAX_FILE_BYTES_LIMIT {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("use 1 to {MAX_FILE_BYTES_LIMIT} bytes (32 MiB)"),
                });
            }
        }
        if let Some((key, value)) = layers.get("max_artifact_bytes") {
            config.max_artifact_bytes = parse(&key, &value)?;
        }
        if let Some((key, value)) = layers.get("seccomp") {
            config.seccomp = SeccompProfile::from_config(&key, &value)?;
        }
        config.audit.path = match layers.get("audit_log") {
            Some((_, value)) if value == "off" || value == "none" => None,
            Some((_, value)) => Some(PathBuf::from(value)),
            None => Some(default_audit_path(lookup)),
        };
        if let Some((key, value)) = layers.get("audit_max_mb") {
            config.audit.max_bytes = parse::<u64>(&key, &value)?.max(1) * 1024 * 1024;
        }
        if let Some((key, value)) = layers.get("audit_keep") {
            config.audit.keep_files = parse(&key, &value)?;
        }
        if let Some((_, value)) = layers.get("audit_log_code") {
            config.audit.log_code = matches!(value.as_str(), "1" | "true" | "yes");
        }
        if let Some((key, value)) = layers.get("policy") {
            config.policy = PolicyMode::parse(&value).ok_or_else(|| ConfigError::Invalid {
                key,
                reason: format!("`{value}` is not a policy mode: use audit, block or off"),
            })?;
        }
        if let Some((key, value)) = layers.get("host_folders") {
            config.host_folders = parse_host_folders(&key, &value)?;
        }
        config.ca_bundle = match layers.get("ca_bundle") {
            Some((_, value)) if value == "none" => None,
            Some((_, value)) => Some(PathBuf::from(value)),
            None => default_ca_bundle(lookup, |path| path.is_file()),
        };
        config.state_dir = match layers.get("state_dir") {
            Some((_, value)) => PathBuf::from(value),
            None => default_state_dir(lookup),
        };
        config.validate(layers)?;
        Ok(config)
    }

    fn validate(&self, layers: &Layers<'_>) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: &str| ConfigError::Invalid {
            key: layers.label(key),
            reason: reason.to_string(),
        };
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return Err(invalid(
                "timeout_ms",
                "must be at least 1 and at most MULTILANG_SANDBOX_MAX_TIMEOUT_MS",
            ));
        }
        if !(16..=MAX_MB).contains(&self.memory_mb) {
            return Err(invalid("memory_mb", "must be at least 16 and at most 1048576 (1 TiB)"));
        }
        if !(16..=MAX_MB).contains(&self.session_storage_mb) {
            return Err(invalid(
                "session_storage_mb",
                "must be at least 16 and at most 1048576 (1 TiB)",
            ));
        }
        if !(1..=MAX_MB).contains(&self.tmpfs_mb) {
            return Err(invalid("tmpfs_mb", "must be at least 1 and at most 1048576 (1 TiB)"));
        }
        if self.pids_limit < 8 {
            return Err(invalid("pids_limit", "must be at least 8"));
        }
        if !(self.cpus > 0.0 && self.cpus <= 64.0) {
            return Err(invalid("cpus", "must be greater than 0 and at most 64"));
        }
        if self.max_output_bytes < 1024 {
            return Err(invalid("max_output_bytes", "must be at least 1024"));
        }
        if self.session_ttl_s == 0 || self.session_ttl_s > self.max_session_ttl_s {
            return Err(invalid(
                "session_ttl_s",
                "must be at least 1 and at most MULTILANG_SANDBOX_MAX_SESSION_TTL_S",
            ));
        }
        if self.gc_interval_s == 0 {
            return Err(invalid("gc_interval_s", "must be at least 1"));
        }
        Ok(())
    }
}

/// Largest memory or storage size in MiB (1 TiB), so byte counts never overflow.
const MAX_MB: u64 = 1024 * 1024;

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
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_apply_without_environment() {
        let config = from(&[]).unwrap();
        assert_eq!(config.memory_mb, 512);
        assert_eq!(config.pool_sizes[&Language::Python], 2);
        assert_eq!(config.pool_sizes[&Language::Go], 1);
        assert_eq!(config.session_ttl_s, 3600);
    }

    #[test]
    fn pool_sizes_take_one_number_or_a_list() {
        let config = from(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).unwrap();
        assert!(config.pool_sizes.values().all(|size| *size == 0));
        let config = from(&[("MULTILANG_SANDBOX_POOL_SIZE", "python=4, rs=0")]).unwrap();
        assert_eq!(config.pool_sizes[&Language::Python], 4);
        assert_eq!(config.pool_sizes[&Language::Rust], 0);
        assert_eq!(config.pool_sizes[&Language::Bash], 1);
        assert!(from(&[("MULTILANG_SANDBOX_POOL_SIZE", "cobol=1")]).is_err());
    }

    #[test]
    fn ca_bundle_prefers_the_environment_then_the_system_bundle() {
        let exists = |path: &std::path::Path| path.to_str() != Some("/missing.pem");
        let env = |key: &str| (key == "SSL_CERT_FILE").then(|| "/custom.pem".to_string());
        assert_eq!(default_ca_bundle(env, exists), Some(PathBuf::from("/custom.pem")));
        assert_eq!(
            default_ca_bundle(|_| None, exists),
            Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt"))
        );
        assert_eq!(default_ca_bundle(|_| None, |_| false), None);
        let config = from(&[("MULTILANG_SANDBOX_CA_BUNDLE", "none")]).unwrap();
        assert_eq!(config.ca_bundle, None);
    }

    #[test]
    fn state_dir_follows_xdg_then_home() {
        assert_eq!(
            default_state_dir(|key| (key == "XDG_STATE_HOME").then(|| "/x".to_string())),
            PathBuf::from("/x/multilang-sandbox")
        );
        assert_eq!(
            default_state_dir(|key| (key == "HOME").then(|| "/home/u".to_string())),
            PathBuf::from("/home/u/.local/state/multilang-sandbox")
        );
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
    fn host_folders_parse_with_read_only_default() {
        let config = from(&[(
            "MULTILANG_SANDBOX_HOST_FOLDERS",
            "data=/srv/data, results=/srv/out :RW,logs=/var/log:ro",
        )])
        .unwrap();
        let folders = &config.host_folders;
        assert_eq!(folders.len(), 3);
        assert_eq!(folders[0].name, "data");
        assert_eq!(folders[0].host_path, PathBuf::from("/srv/data"));
        assert!(!folders[0].writable);
        assert!(folders[1].writable);
        assert_eq!(folders[1].host_path, PathBuf::from("/srv/out"));
        assert!(!folders[2].writable);
        assert_eq!(folders[1].mount_point(), "/mnt/results");
        for bad in ["data", "data=relative/path", "Bad Name=/x", "../x=/x", "a=/x,a=/y"] {
            let error = from(&[("MULTILANG_SANDBOX_HOST_FOLDERS", bad)]).unwrap_err();
            assert!(error.to_string().contains("HOST_FOLDERS"), "{bad}: {error}");
        }
    }

    #[test]
    fn folders_inside_writable_folders_are_refused() {
        for nested in [
            "proj=/x/proj:rw,inner=/x/proj/inner",
            "inner=/x/proj/inner:rw,proj=/x/proj:rw",
            "all=/:rw,data=/srv/data",
        ] {
            let error = from(&[("MULTILANG_SANDBOX_HOST_FOLDERS", nested)]).unwrap_err();
            assert!(
                error.to_string().contains("lies inside the writable folder"),
                "{nested}: {error}"
            );
        }
        for fine in [
            // A writable folder inside a read-only one cannot change the outer's path.
            "proj=/x/proj,inner=/x/proj/inner:rw",
            // Siblings sharing a name prefix are not nested.
            "a=/x/proj:rw,b=/x/project",
            "a=/x/proj:rw,b=/x/proj",
        ] {
            assert!(from(&[("MULTILANG_SANDBOX_HOST_FOLDERS", fine)]).is_ok(), "{fine}");
        }
        let error = from(&[("MULTILANG_SANDBOX_HOST_FOLDERS", "a=/x/../etc")]).unwrap_err();
        assert!(error.to_string().contains("`..`"), "{error}");
    }

    #[test]
    fn file_sizes_stay_within_one_runner_message() {
        assert!(from(&[("MULTILANG_SANDBOX_MAX_FILE_BYTES", "33554432")]).is_ok());
        for bad in ["33554433", "0"] {
            let error = from(&[("MULTILANG_SANDBOX_MAX_FILE_BYTES", bad)]).unwrap_err();
            assert!(
                error.to_string().contains("MULTILANG_SANDBOX_MAX_FILE_BYTES"),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let error = from(&[("MULTILANG_SANDBOX_PIDS_LIMIT", "lots")]).unwrap_err();
        assert!(error.to_string().contains("MULTILANG_SANDBOX_PIDS_LIMIT"));
        let error = from(&[("MULTILANG_SANDBOX_TIMEOUT_MS", "0")]).unwrap_err();
        assert!(error.to_string().contains("TIMEOUT_MS"));
    }
}
