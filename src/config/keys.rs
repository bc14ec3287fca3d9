//! Every configuration key in one table: its name (the file key, dotted for
//! a group such as `egress.allow`, which a file may also write as an
//! `[egress]` table; the variable is `MULTILANG_SANDBOX_` + the name in upper
//! case with `.` as `_`), how its value is parsed into [`Config`] and written
//! back, its default and its documentation. Loading, `config show`, the
//! unknown-key error and the README's Configuration table (checked by
//! `tests/config.rs`) all read it. The file is longer than most because the
//! table is one on purpose; the parsing of longer values lives beside it
//! (`values.rs`, `folders.rs`, `egress.rs`).
//!
//! A table of our own rather than `figment`: our values are texts in one
//! syntax whether they come from the file or a variable (the comma lists
//! `python=2,go=1` and `data=/x,results=/y:rw` included), defaults such as
//! the state folder are rules about the machine rather than values, and
//! errors name the variable or the key and its file. Figment would still
//! need this table for the docs, the rules and the comma lists, and adds a
//! dependency whose own errors and environment splitting differ from ours.

use super::egress::{
    parse_allow, parse_allow_private, parse_ask_timeout, parse_budget, parse_max_connections, render_allow,
    render_allow_private, render_budget,
};
use super::folders::{parse_host_folders, render_host_folders};
use super::values::{
    Machine, audit_log_on, ca_bundle_on, flag, invalid, list, number, parse_pool_sizes, path_unless, render_pool_sizes,
    state_dir_on, templates_dir_on, text, text_of,
};
use super::{Config, MAX_FILE_BYTES_LIMIT, SessionStorage};
use crate::config::ConfigError;
use crate::security::egress::{ALLOW_KEY, ALLOW_PRIVATE_KEY};
use crate::security::policy::PolicyMode;
use crate::security::seccomp::SeccompProfile;
use std::path::PathBuf;
use std::time::Duration;

/// One configuration key.
pub struct Key {
    /// The key in the config file.
    pub name: &'static str,
    /// How the value is written in TOML and in the README.
    pub kind: Kind,
    pub default: KeyDefault,
    /// What the key sets, as the README's Configuration table says it.
    pub doc: &'static str,
    /// Sets the key's field from a value's text; errors name `label` (the
    /// variable, or the key and its file).
    pub(super) set: fn(config: &mut Config, value: &str, label: &str) -> Result<(), ConfigError>,
    /// The key's field as text that `set` reads back.
    pub(super) get: fn(config: &Config) -> String,
}

/// How a value is written: numbers and flags bare, texts quoted, lists as
/// arrays of quoted texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    Flag,
    Text,
    /// A comma list (`a,b` in a variable, `["a", "b"]` in the file).
    List,
}

/// A key's default.
pub enum KeyDefault {
    /// A fixed value, written as its variable would hold it.
    Value(&'static str),
    /// No value; the text says what that means (for example "engine default").
    Unset(&'static str),
    /// Found on the machine when the configuration loads, as `rule` says.
    Rule {
        rule: &'static str,
        resolve: fn(&Machine<'_>) -> String,
    },
}

impl Key {
    /// The key's environment variable.
    pub fn variable(&self) -> String {
        super::env_name(self.name)
    }

    /// The default's text as `set` reads it, rules resolved on `machine`.
    pub fn default_text(&self, machine: &Machine<'_>) -> String {
        match &self.default {
            KeyDefault::Value(text) => text.to_string(),
            KeyDefault::Unset(_) => String::new(),
            KeyDefault::Rule { resolve, .. } => resolve(machine),
        }
    }

    /// The default as the README's table gives it.
    pub fn documented_default(&self) -> String {
        match (&self.default, self.kind) {
            (KeyDefault::Value(text), Kind::Text | Kind::List) => format!("`{text}`"),
            (KeyDefault::Value(text), _) => text.to_string(),
            (KeyDefault::Unset(meaning), _) => meaning.to_string(),
            (KeyDefault::Rule { rule, .. }, _) => rule.to_string(),
        }
    }

    /// `value` (this key's text) as a TOML value.
    pub fn toml_value(&self, value: &str) -> String {
        let bare = match self.kind {
            // Integers beyond i64 and decimals TOML would read differently stay strings.
            Kind::Number => value.parse::<i64>().is_ok() || (value.contains('.') && value.parse::<f64>().is_ok()),
            Kind::Flag => value == "true" || value == "false",
            Kind::Text => false,
            Kind::List => {
                let items = list(value).map(|item| toml::Value::String(item.to_string()));
                return toml::Value::Array(items.collect()).to_string();
            }
        };
        if bare {
            value.to_string()
        } else {
            toml::Value::String(value.to_string()).to_string()
        }
    }
}

/// The key called `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Every configuration key, in the order `config show` prints them.
pub static KEYS: &[Key] = &[
    Key {
        name: "image_prefix",
        kind: Kind::Text,
        default: KeyDefault::Value("multilang-sandbox"),
        doc: "repository prefix of the sandbox images",
        set: |config, value, _| text(value).map(|value| config.image_prefix = value),
        get: |config| config.image_prefix.clone(),
    },
    Key {
        name: "base_image",
        kind: Kind::Text,
        default: KeyDefault::Value("debian:trixie-slim"),
        doc: "image the sandbox base builds on",
        set: |config, value, _| text(value).map(|value| config.base_image = value),
        get: |config| config.base_image.clone(),
    },
    Key {
        name: "timeout_ms",
        kind: Kind::Number,
        default: KeyDefault::Value("30000"),
        doc: "time limit when the caller gives none",
        set: |config, value, label| number(value, label).map(|value| config.default_timeout_ms = value),
        get: |config| config.default_timeout_ms.to_string(),
    },
    Key {
        name: "max_timeout_ms",
        kind: Kind::Number,
        default: KeyDefault::Value("600000"),
        doc: "largest time limit a caller may ask for",
        set: |config, value, label| number(value, label).map(|value| config.max_timeout_ms = value),
        get: |config| config.max_timeout_ms.to_string(),
    },
    Key {
        name: "max_output_bytes",
        kind: Kind::Number,
        default: KeyDefault::Value("1048576"),
        doc: "bytes kept per output stream",
        set: |config, value, label| number(value, label).map(|value| config.max_output_bytes = value),
        get: |config| config.max_output_bytes.to_string(),
    },
    Key {
        name: "memory_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("512"),
        doc: "memory per container (swap disabled)",
        set: |config, value, label| number(value, label).map(|value| config.memory_mb = value),
        get: |config| config.memory_mb.to_string(),
    },
    Key {
        name: "pids_limit",
        kind: Kind::Number,
        default: KeyDefault::Value("256"),
        doc: "processes/threads per container",
        set: |config, value, label| number(value, label).map(|value| config.pids_limit = value),
        get: |config| config.pids_limit.to_string(),
    },
    Key {
        name: "cpus",
        kind: Kind::Number,
        default: KeyDefault::Value("1"),
        doc: "CPUs per container",
        set: |config, value, label| number(value, label).map(|value| config.cpus = value),
        get: |config| config.cpus.to_string(),
    },
    Key {
        name: "tmpfs_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("256"),
        doc: "size of each writable tmpfs (`/tmp`; a stateless run's `/workspace`; `/outputs`)",
        set: |config, value, label| number(value, label).map(|value| config.tmpfs_mb = value),
        get: |config| config.tmpfs_mb.to_string(),
    },
    Key {
        name: "session_storage",
        kind: Kind::Text,
        default: KeyDefault::Value("memory"),
        doc: "where a session's `/workspace` and `/outputs` live: `memory` (size-limited, lost when the session's \
              container stops, e.g. an engine or machine restart) or `disk` (survives engine restarts, no size limit)",
        set: |config, value, label| {
            let storage = SessionStorage::parse(value)
                .ok_or_else(|| invalid(label, format!("`{value}` is not a session storage: use memory or disk")))?;
            config.session_storage = storage;
            Ok(())
        },
        get: |config| config.session_storage.name().to_string(),
    },
    Key {
        name: "session_storage_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("512"),
        doc: "size of a session's `/workspace` with `memory` storage; the session's memory limit grows by as much",
        set: |config, value, label| number(value, label).map(|value| config.session_storage_mb = value),
        get: |config| config.session_storage_mb.to_string(),
    },
    Key {
        name: "runtime",
        kind: Kind::Text,
        default: KeyDefault::Unset("engine default"),
        doc: "OCI runtime, e.g. `runsc` for gVisor",
        set: |config, value, _| text(value).map(|value| config.runtime = (!value.is_empty()).then_some(value)),
        get: |config| config.runtime.clone().unwrap_or_default(),
    },
    Key {
        name: "pool_size",
        kind: Kind::Text,
        default: KeyDefault::Value("python=2,javascript=1,typescript=1,go=1,rust=1,bash=1"),
        doc: "warm containers per language: one number for all, or `python=2,go=0,…`; 0 disables",
        set: |config, value, label| {
            parse_pool_sizes(label, value, &config.pool_sizes).map(|sizes| config.pool_sizes = sizes)
        },
        get: |config| render_pool_sizes(&config.pool_sizes),
    },
    Key {
        name: "session_spares",
        kind: Kind::Text,
        default: KeyDefault::Value("python=1,javascript=0,typescript=0,go=0,rust=0,bash=0"),
        doc: "warm spare session containers per language, claimed by a session create with \
              no packages, mounts, network or other options: one number for all, or `python=1,bash=0,…`",
        set: |config, value, label| {
            parse_pool_sizes(label, value, &config.session_spares).map(|sizes| config.session_spares = sizes)
        },
        get: |config| render_pool_sizes(&config.session_spares),
    },
    Key {
        name: "pool_max_size",
        kind: Kind::Number,
        default: KeyDefault::Value("32"),
        doc: "most warm containers per language when calls come faster than the pool refills; \
              after a minute without a miss it shrinks back toward `pool_size`",
        set: |config, value, label| number(value, label).map(|value| config.pool_max_size = value),
        get: |config| config.pool_max_size.to_string(),
    },
    Key {
        name: "pool_memory_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("1024"),
        doc: "memory the containers a pool grows beyond `pool_size` may use, all languages \
              together (measured from idle ones; at most a quarter of the engine's memory)",
        set: |config, value, label| number(value, label).map(|value| config.pool_memory_mb = value),
        get: |config| config.pool_memory_mb.to_string(),
    },
    Key {
        name: "session_ttl_s",
        kind: Kind::Number,
        default: KeyDefault::Value("3600"),
        doc: "session idle time to live when `create` gives none",
        set: |config, value, label| number(value, label).map(|value| config.session_ttl_s = value),
        get: |config| config.session_ttl_s.to_string(),
    },
    Key {
        name: "max_session_ttl_s",
        kind: Kind::Number,
        default: KeyDefault::Value("604800"),
        doc: "largest session ttl",
        set: |config, value, label| number(value, label).map(|value| config.max_session_ttl_s = value),
        get: |config| config.max_session_ttl_s.to_string(),
    },
    Key {
        name: "max_sessions",
        kind: Kind::Number,
        default: KeyDefault::Value("32"),
        doc: "most sessions at once on the engine",
        set: |config, value, label| number(value, label).map(|value| config.max_sessions = value),
        get: |config| config.max_sessions.to_string(),
    },
    Key {
        name: "snapshot_ttl_s",
        kind: Kind::Number,
        default: KeyDefault::Value("604800"),
        doc: "how long a session snapshot is kept after it was taken (it outlives its session \
              until then, unless `destroy` is given `snapshots: true`)",
        set: |config, value, label| number(value, label).map(|value| config.snapshot_ttl_s = value),
        get: |config| config.snapshot_ttl_s.to_string(),
    },
    Key {
        name: "max_snapshots",
        kind: Kind::Number,
        default: KeyDefault::Value("20"),
        doc: "most snapshots kept of one session",
        set: |config, value, label| number(value, label).map(|value| config.max_snapshots = value),
        get: |config| config.max_snapshots.to_string(),
    },
    Key {
        name: "gc_interval_s",
        kind: Kind::Number,
        default: KeyDefault::Value("30"),
        doc: "how often expired sessions are removed",
        set: |config, value, label| number(value, label).map(|value| config.gc_interval_s = value),
        get: |config| config.gc_interval_s.to_string(),
    },
    Key {
        name: "state_dir",
        kind: Kind::Text,
        default: KeyDefault::Rule {
            rule: "`$XDG_STATE_HOME/multilang-sandbox`",
            resolve: state_dir_on,
        },
        doc: "session activity and extensions, shared by servers on this machine",
        set: |config, value, _| text(value).map(|value| config.state_dir = PathBuf::from(value)),
        get: |config| text_of(&config.state_dir),
    },
    Key {
        name: "templates_dir",
        kind: Kind::Text,
        default: KeyDefault::Rule {
            rule: "`$XDG_CONFIG_HOME/multilang-sandbox/templates`",
            resolve: templates_dir_on,
        },
        doc: "the user's own images (templates): a folder each, holding a Dockerfile",
        set: |config, value, _| text(value).map(|value| config.templates_dir = PathBuf::from(value)),
        get: |config| text_of(&config.templates_dir),
    },
    Key {
        name: "cache_keep",
        kind: Kind::Number,
        default: KeyDefault::Value("5"),
        doc: "`cache prune`: newest cached images kept per language",
        set: |config, value, label| number(value, label).map(|value| config.cache_keep_per_language = value),
        get: |config| config.cache_keep_per_language.to_string(),
    },
    Key {
        name: "cache_max_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("10240"),
        doc: "`cache prune`: total size bound",
        set: |config, value, label| number(value, label).map(|value| config.cache_max_mb = value),
        get: |config| config.cache_max_mb.to_string(),
    },
    Key {
        name: "ca_bundle",
        kind: Kind::Text,
        default: KeyDefault::Rule {
            rule: "`$SSL_CERT_FILE` or the system bundle",
            resolve: ca_bundle_on,
        },
        doc: "CA certificates install steps trust (`none` to disable)",
        set: |config, value, _| text(value).map(|value| config.ca_bundle = path_unless(value, &["none"])),
        get: |config| config.ca_bundle.as_ref().map_or("none".to_string(), text_of),
    },
    Key {
        name: "max_artifacts",
        kind: Kind::Number,
        default: KeyDefault::Value("10"),
        doc: "files from `/outputs` returned with one execute",
        set: |config, value, label| number(value, label).map(|value| config.max_artifacts = value),
        get: |config| config.max_artifacts.to_string(),
    },
    Key {
        name: "max_artifact_bytes",
        kind: Kind::Number,
        default: KeyDefault::Value("8388608"),
        doc: "bytes of images returned with one execute",
        set: |config, value, label| number(value, label).map(|value| config.max_artifact_bytes = value),
        get: |config| config.max_artifact_bytes.to_string(),
    },
    Key {
        name: "max_file_bytes",
        kind: Kind::Number,
        default: KeyDefault::Value("10485760"),
        doc: "largest file `sandbox_file_ops` reads or writes (at most 32 MiB)",
        set: |config, value, label| {
            let bytes: u64 = number(value, label)?;
            // A file travels base64 in one runner message (bounded at 64 MiB).
            if bytes == 0 || bytes > MAX_FILE_BYTES_LIMIT {
                return Err(invalid(
                    label,
                    format!("use 1 to {MAX_FILE_BYTES_LIMIT} bytes (32 MiB)"),
                ));
            }
            config.max_file_bytes = bytes;
            Ok(())
        },
        get: |config| config.max_file_bytes.to_string(),
    },
    Key {
        name: "host_folders",
        kind: Kind::Text,
        default: KeyDefault::Unset("none"),
        doc: "host folders sessions may mount: `name=/path[:rw],…` (read-only unless `:rw`)",
        set: |config, value, label| parse_host_folders(label, value).map(|folders| config.host_folders = folders),
        get: |config| render_host_folders(&config.host_folders),
    },
    Key {
        name: "seccomp",
        kind: Kind::Text,
        default: KeyDefault::Value("standard"),
        doc: "seccomp profile: `standard`, `strict`, `permissive`, `engine-default` or a profile file's path \
              (see `seccomp/README.md`)",
        set: |config, value, label| {
            let profile = SeccompProfile::from_setting(value).map_err(|error| invalid(label, error.to_string()))?;
            config.seccomp = profile;
            Ok(())
        },
        get: |config| match &config.seccomp {
            SeccompProfile::Custom { path, .. } => text_of(path),
            profile => profile.name(),
        },
    },
    Key {
        name: "audit_log",
        kind: Kind::Text,
        default: KeyDefault::Rule {
            rule: "`$XDG_DATA_HOME/multilang-sandbox/audit/audit.jsonl`",
            resolve: audit_log_on,
        },
        doc: "audit log file; `off` disables it",
        set: |config, value, _| text(value).map(|value| config.audit.path = path_unless(value, &["off", "none"])),
        get: |config| config.audit.path.as_ref().map_or("off".to_string(), text_of),
    },
    Key {
        name: "audit_max_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("10"),
        doc: "size at which the audit log rotates",
        set: |config, value, label| {
            number::<u64>(value, label).map(|size| config.audit.max_bytes = size.max(1) * 1024 * 1024)
        },
        get: |config| (config.audit.max_bytes / (1024 * 1024)).to_string(),
    },
    Key {
        name: "audit_keep",
        kind: Kind::Number,
        default: KeyDefault::Value("10"),
        doc: "rotated audit files kept",
        set: |config, value, label| number(value, label).map(|value| config.audit.keep_files = value),
        get: |config| config.audit.keep_files.to_string(),
    },
    Key {
        name: "audit_log_code",
        kind: Kind::Flag,
        default: KeyDefault::Value("false"),
        doc: "`true` (or `1`) records the code itself, not only its SHA-256 and size",
        set: |config, value, _| {
            text(value).map(|value| config.audit.log_code = matches!(value.as_str(), "1" | "true" | "yes"))
        },
        get: |config| config.audit.log_code.to_string(),
    },
    Key {
        name: "policy",
        kind: Kind::Text,
        default: KeyDefault::Value("audit"),
        doc: "code policy: `audit` (record, run), `block` (refuse), `off`",
        set: |config, value, label| {
            let mode = PolicyMode::parse(value).ok_or_else(|| {
                invalid(
                    label,
                    format!("`{value}` is not a policy mode: use audit, block or off"),
                )
            })?;
            config.policy = mode;
            Ok(())
        },
        get: |config| config.policy.name().to_string(),
    },
    Key {
        name: ALLOW_KEY,
        kind: Kind::List,
        default: KeyDefault::Unset("none"),
        doc: "hosts code with network may reach without asking: `api.github.com`, `*.example.org` (its subdomains), \
              `host.example:8080` (without a port: 80 and 443)",
        set: |config, value, label| parse_allow(label, value).map(|allow| config.egress.allow = allow),
        get: |config| render_allow(&config.egress.allow),
    },
    Key {
        name: ALLOW_PRIVATE_KEY,
        kind: Kind::List,
        default: KeyDefault::Unset("none"),
        doc: "non-global destinations the egress proxy may connect to (an intranet, a local test server): networks \
              such as `10.9.0.0/16`, addresses or hosts; never loopback",
        set: |config, value, label| {
            parse_allow_private(label, value).map(|allowance| config.egress.allow_private = allowance)
        },
        get: |config| render_allow_private(&config.egress.allow_private),
    },
    Key {
        name: "egress.ask",
        kind: Kind::Flag,
        default: KeyDefault::Value("true"),
        doc: "ask the user (MCP elicitation, when the client supports it) about hosts outside `egress.allow` and \
              the session's grants; `false` refuses them",
        set: |config, value, label| flag(value, label).map(|ask| config.egress.ask = ask),
        get: |config| config.egress.ask.to_string(),
    },
    Key {
        name: "egress.budget_mb",
        kind: Kind::Number,
        default: KeyDefault::Value("1024"),
        doc: "MiB one session (or stateless execute) may move through the egress proxy, both directions together",
        set: |config, value, label| parse_budget(label, value).map(|bytes| config.egress.budget_bytes = bytes),
        get: |config| render_budget(config.egress.budget_bytes),
    },
    Key {
        name: "egress.ask_timeout_s",
        kind: Kind::Number,
        default: KeyDefault::Value("60"),
        doc: "how long a connection to a host outside the grants waits for the user's answer (1 to 600 seconds)",
        set: |config, value, label| parse_ask_timeout(label, value).map(|timeout| config.egress.ask_timeout = timeout),
        get: |config| config.egress.ask_timeout.as_secs().to_string(),
    },
    Key {
        name: "egress.max_connections",
        kind: Kind::Number,
        default: KeyDefault::Value("64"),
        doc: "connections one session may hold open through the egress proxy at once",
        set: |config, value, label| {
            parse_max_connections(label, value).map(|count| config.egress.max_connections = count)
        },
        get: |config| config.egress.max_connections.to_string(),
    },
    Key {
        name: "jobs.detach_after_s",
        kind: Kind::Number,
        default: KeyDefault::Value("45"),
        doc: "an execute still running after this many seconds becomes a background job and the call returns its \
              handle (clients cut calls short, Claude Desktop after about 60 s); 0 never detaches",
        set: |config, value, label| {
            number(value, label).map(|seconds| config.jobs.detach_after = Duration::from_secs(seconds))
        },
        get: |config| config.jobs.detach_after.as_secs().to_string(),
    },
    Key {
        name: "jobs.max_running",
        kind: Kind::Number,
        default: KeyDefault::Value("4"),
        doc: "background jobs running at once",
        set: |config, value, label| positive(value, label).map(|count| config.jobs.max_running = count),
        get: |config| config.jobs.max_running.to_string(),
    },
    Key {
        name: "jobs.keep_s",
        kind: Kind::Number,
        default: KeyDefault::Value("3600"),
        doc: "seconds a finished job's result waits to be collected before it is dropped",
        set: |config, value, label| {
            positive(value, label).map(|seconds| config.jobs.keep = Duration::from_secs(seconds as u64))
        },
        get: |config| config.jobs.keep.as_secs().to_string(),
    },
];

/// A number of at least 1.
fn positive(value: &str, label: &str) -> Result<usize, ConfigError> {
    match number(value, label)? {
        0 => Err(invalid(label, "must be at least 1".into())),
        count => Ok(count),
    }
}
