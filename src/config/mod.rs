//! One `Config` for the whole server: documented defaults, overridden by
//! the TOML config file, overridden by `MULTILANG_SANDBOX_*` environment
//! variables. Every key (its variable, parsing, default and documentation)
//! is described once, in [`keys::KEYS`]; this module holds the typed result
//! and the checks between keys.

mod allow_file;
pub mod ca;
mod egress;
mod error;
mod folders;
pub mod keys;
mod layers;
mod show;
mod values;

pub use allow_file::{AllowEdit, AllowFileError, add_to_allow};
pub use egress::EgressSettings;
pub use error::ConfigError;
pub use folders::HostFolder;
pub use keys::KEYS;
use keys::KeyDefault;
use layers::Layers;
pub use layers::{ConfigFile, Source, config_file_path, env_name};
pub use show::Loaded;
use values::Machine;

use crate::runtime::Language;
use crate::security::audit::AuditSettings;
use crate::security::policy::PolicyMode;
use crate::security::seccomp::SeccompProfile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Effective configuration. Each field is set by the key named in its doc;
/// that key's entry in [`KEYS`] gives its variable, default and meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `image_prefix`: the images are `<prefix>/<language>:<hash>`.
    pub image_prefix: String,
    /// `base_image`: the sandbox base is built `FROM` it (with debootstrap when missing).
    pub base_image: String,
    /// `timeout_ms`, in milliseconds.
    pub default_timeout_ms: u64,
    /// `max_timeout_ms`, in milliseconds.
    pub max_timeout_ms: u64,
    /// `max_output_bytes`, per stream (stdout, stderr); the rest is dropped
    /// and the result says `truncated`.
    pub max_output_bytes: u64,
    /// `memory_mb`, in MiB per container (swap is set equal, so no swap).
    pub memory_mb: u64,
    /// `pids_limit`, per container.
    pub pids_limit: i64,
    /// `cpus`, per container (fractions allowed).
    pub cpus: f64,
    /// `tmpfs_mb`, in MiB per writable tmpfs mount.
    pub tmpfs_mb: u64,
    /// `session_storage`: tmpfs volumes with a hard size limit, whose files
    /// survive pause, resume and server restarts but not the container
    /// stopping; or Docker volumes with no size limit of their own.
    pub session_storage: SessionStorage,
    /// `session_storage_mb`, in MiB; counts as the session's memory too.
    pub session_storage_mb: u64,
    /// `runtime`: the OCI runtime; `None` is the engine's default.
    pub runtime: Option<String>,
    /// `pool_size`: warm containers per language (0 disables the pool for it).
    pub pool_sizes: BTreeMap<Language, usize>,
    /// `session_spares`: warm spare session containers per language.
    pub session_spares: BTreeMap<Language, usize>,
    /// `pool_max_size`: the most warm containers a language's pool grows
    /// to when calls come faster than it refills (never below `pool_size`).
    pub pool_max_size: usize,
    /// `pool_memory_mb`, in MiB: memory the pool's containers beyond the
    /// configured sizes may use, all languages together.
    pub pool_memory_mb: u64,
    /// `session_ttl_s`, in seconds.
    pub session_ttl_s: u64,
    /// `max_session_ttl_s`, in seconds.
    pub max_session_ttl_s: u64,
    /// `max_sessions` on the engine at once.
    pub max_sessions: usize,
    /// `snapshot_ttl_s`: how long a snapshot is kept, in seconds.
    pub snapshot_ttl_s: u64,
    /// `max_snapshots` of one session.
    pub max_snapshots: usize,
    /// `gc_interval_s`, in seconds.
    pub gc_interval_s: u64,
    /// `state_dir`: state shared by every server on this machine.
    pub state_dir: PathBuf,
    /// `templates_dir`: the user's own images, a folder each.
    pub templates_dir: PathBuf,
    /// `cache_keep`, per language.
    pub cache_keep_per_language: usize,
    /// `cache_max_mb`, in MiB.
    pub cache_max_mb: u64,
    /// `ca_bundle`: a PEM file on this machine; `None` trusts nothing extra.
    pub ca_bundle: Option<PathBuf>,
    /// `max_artifacts` per execute.
    pub max_artifacts: usize,
    /// `max_artifact_bytes` per execute.
    pub max_artifact_bytes: u64,
    /// `max_file_bytes`, at most [`MAX_FILE_BYTES_LIMIT`].
    pub max_file_bytes: u64,
    /// `host_folders`: nothing else on the host is reachable from a sandbox.
    pub host_folders: Vec<HostFolder>,
    /// `seccomp`: sessions may ask for a stricter profile.
    pub seccomp: SeccompProfile,
    /// `audit_log` (the path; `None` is off), `audit_max_mb`, `audit_keep`, `audit_log_code`.
    pub audit: AuditSettings,
    /// `policy`.
    pub policy: PolicyMode,
    /// `egress.allow`, `egress.allow_private`, `egress.ask`,
    /// `egress.budget_mb`, `egress.max_connections`.
    pub egress: EgressSettings,
    /// `jobs.detach_after_s`, `jobs.max_running`, `jobs.keep_s`.
    pub jobs: JobSettings,
    /// The config file, when the configuration was loaded (not a key).
    pub file: Option<FileOrigin>,
}

/// The config file a configuration was loaded from, or the place it was
/// looked for (absent then): where the user's "always" answers to egress
/// questions are added to `egress.allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOrigin {
    pub path: PathBuf,
    /// `egress.allow` came from its environment variable, which overrides
    /// the file's (what is added there counts only without the variable).
    pub allow_overridden: bool,
}

/// Long-running work (the `jobs.*` keys): executes that outlive the call
/// that started them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSettings {
    /// `jobs.detach_after_s`: an execute still running after this long
    /// becomes a job and the call returns its handle; zero never detaches.
    pub detach_after: std::time::Duration,
    /// `jobs.max_running`: jobs running at once (this server's).
    pub max_running: usize,
    /// `jobs.keep_s`: how long a finished job's result waits to be
    /// collected before it is dropped (and its stateless sandbox removed).
    pub keep: std::time::Duration,
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

impl Default for Config {
    /// Every key's default from [`KEYS`], the rules (state folder, audit
    /// log, CA bundle) as on a machine with no environment and no files: it
    /// reads nothing, so it is the same everywhere. Loading resolves the
    /// rules on the real machine.
    fn default() -> Self {
        let mut config = Self::unset();
        let machine = Machine::bare();
        for key in KEYS {
            // Cannot fail: the defaults are constants, and the unit tests set each one.
            if let Err(error) = (key.set)(&mut config, &key.default_text(&machine), key.name) {
                unreachable!("the default of {} does not parse: {error}", key.name);
            }
        }
        config
    }
}

impl Config {
    /// The shape [`Config::default`] fills in; every value here is replaced
    /// by its key's default.
    fn unset() -> Self {
        Self {
            image_prefix: String::new(),
            base_image: String::new(),
            default_timeout_ms: 0,
            max_timeout_ms: 0,
            max_output_bytes: 0,
            memory_mb: 0,
            pids_limit: 0,
            cpus: 0.0,
            tmpfs_mb: 0,
            session_storage: SessionStorage::Memory,
            session_storage_mb: 0,
            runtime: None,
            pool_sizes: BTreeMap::new(),
            session_spares: BTreeMap::new(),
            pool_max_size: 0,
            pool_memory_mb: 0,
            session_ttl_s: 0,
            max_session_ttl_s: 0,
            max_sessions: 0,
            snapshot_ttl_s: 0,
            max_snapshots: 0,
            gc_interval_s: 0,
            state_dir: PathBuf::new(),
            templates_dir: PathBuf::new(),
            cache_keep_per_language: 0,
            cache_max_mb: 0,
            ca_bundle: None,
            max_artifacts: 0,
            max_artifact_bytes: 0,
            max_file_bytes: 0,
            host_folders: Vec::new(),
            seccomp: SeccompProfile::Standard,
            audit: AuditSettings {
                path: None,
                max_bytes: 0,
                keep_files: 0,
                log_code: false,
            },
            policy: PolicyMode::Audit,
            egress: EgressSettings::default(),
            jobs: JobSettings::default(),
            file: None,
        }
    }

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
        let mut config = Self::from_layers(&layers, &this_machine(lookup))?;
        let sources = layers.into_sources();
        let from_environment = |name: &str| sources.get(name) == Some(&Source::Environment);
        config.file = Some(FileOrigin {
            path: path.clone(),
            allow_overridden: from_environment(crate::security::egress::ALLOW_KEY),
        });
        let overridden = KEYS
            .iter()
            .map(|key| key.name)
            .filter(|name| from_environment(name) && file.as_ref().is_some_and(|file| file.value(name).is_some()))
            .collect();
        Ok(Loaded {
            config,
            sources,
            overridden,
            file: path,
            file_found: file.is_some(),
        })
    }

    /// Defaults overridden by `lookup` alone (tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let layers = Layers::new(&lookup, None);
        Self::from_layers(&layers, &this_machine(&lookup))
    }

    /// Each key from the environment, else the file, else its default (a
    /// rule resolved on `machine`); then the checks between keys.
    fn from_layers(layers: &Layers<'_>, machine: &Machine<'_>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for key in KEYS {
            match layers.get(key.name) {
                Some((label, value)) => (key.set)(&mut config, &value, &label)?,
                None if matches!(key.default, KeyDefault::Rule { .. }) => {
                    (key.set)(&mut config, &key.default_text(machine), &key.variable())?
                }
                None => {}
            }
        }
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
        if self.snapshot_ttl_s == 0 {
            return Err(invalid("snapshot_ttl_s", "must be at least 1"));
        }
        if self.max_snapshots == 0 {
            return Err(invalid("max_snapshots", "must be at least 1"));
        }
        let templates = canonical(&self.templates_dir);
        let writable = self.host_folders.iter().filter(|folder| folder.writable);
        if let Some(folder) = writable.filter(|_| !templates.as_os_str().is_empty()).find(|folder| {
            let folder = canonical(&folder.host_path);
            templates.starts_with(&folder) || folder.starts_with(&templates)
        }) {
            return Err(invalid(
                "host_folders",
                &format!(
                    "the writable folder `{}` ({}) holds or lies in the templates folder ({}): code in a session could write a template, and template builds run outside the sandbox. Make `{}` read-only, or move the templates folder (templates_dir)",
                    folder.name,
                    folder.host_path.display(),
                    self.templates_dir.display(),
                    folder.name
                ),
            ));
        }
        Ok(())
    }
}

/// Largest memory or storage size in MiB (1 TiB), so byte counts never overflow.
const MAX_MB: u64 = 1024 * 1024;

/// The machine `lookup` describes: its variables, the real files and
/// temporary folder.
fn this_machine<'a>(lookup: &'a dyn Fn(&str) -> Option<String>) -> Machine<'a> {
    Machine {
        var: lookup,
        is_file: &Path::is_file,
        temp_dir: std::env::temp_dir(),
    }
}

/// `path` with its links resolved where it exists (a folder configured
/// through a link is the folder it reaches).
fn canonical(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
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
    fn names_are_unique_and_fixed_defaults_read_back_as_written() {
        let config = Config::default();
        for (index, key) in KEYS.iter().enumerate() {
            assert!(
                KEYS[..index]
                    .iter()
                    .all(|other| other.name != key.name && other.variable() != key.variable()),
                "{} twice",
                key.name
            );
            match key.default {
                KeyDefault::Value(text) => assert_eq!((key.get)(&config), text, "{}", key.name),
                KeyDefault::Unset(_) => assert_eq!((key.get)(&config), "", "{}", key.name),
                KeyDefault::Rule { .. } => {}
            }
        }
    }

    #[test]
    fn the_default_reads_nothing_from_the_machine() {
        let config = Config::default();
        assert_eq!(config.state_dir, PathBuf::from("/tmp/multilang-sandbox"));
        assert_eq!(
            config.audit.path,
            Some(PathBuf::from("/tmp/multilang-sandbox/audit/audit.jsonl"))
        );
        // Even where $SSL_CERT_FILE or a system bundle exists.
        assert_eq!(config.ca_bundle, None);
    }

    #[test]
    fn default_rules_resolve_on_the_machine_when_loading() {
        let bundle = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let config = from(&[
            ("XDG_STATE_HOME", "/x"),
            ("XDG_DATA_HOME", "/d"),
            ("SSL_CERT_FILE", bundle),
        ])
        .unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/x/multilang-sandbox"));
        assert_eq!(
            config.audit.path,
            Some(PathBuf::from("/d/multilang-sandbox/audit/audit.jsonl"))
        );
        assert_eq!(config.ca_bundle, Some(PathBuf::from(bundle)));
        let config = from(&[
            ("SSL_CERT_FILE", bundle),
            ("MULTILANG_SANDBOX_CA_BUNDLE", "none"),
            ("MULTILANG_SANDBOX_AUDIT_LOG", "off"),
            ("MULTILANG_SANDBOX_STATE_DIR", "/s"),
        ])
        .unwrap();
        assert_eq!(config.ca_bundle, None);
        assert_eq!(config.audit.path, None);
        assert_eq!(config.state_dir, PathBuf::from("/s"));
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
