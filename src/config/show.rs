//! `multilang-sandbox config show`: the effective configuration as a TOML
//! file (ready to copy into the config file), each line saying where its
//! value came from.

use super::{Config, KEYS, Source};
use crate::security::seccomp::SeccompProfile;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A configuration and where its values came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub sources: BTreeMap<&'static str, Source>,
    /// The config file that was looked for.
    pub file: PathBuf,
    pub file_found: bool,
}

impl Loaded {
    /// The effective configuration as TOML, with a comment per line naming
    /// its source (and the default when it differs).
    pub fn render(&self) -> String {
        let defaults: BTreeMap<&str, String> = entries(&Config::default()).into_iter().collect();
        let found = if self.file_found { "" } else { " (not found)" };
        let mut text = format!(
            "# multilang-sandbox configuration: environment (MULTILANG_SANDBOX_*) over\n\
             # {}{found} over defaults.\n",
            self.file.display()
        );
        for (key, value) in entries(&self.config) {
            let source = self.sources.get(key).cloned().unwrap_or(Source::Default);
            let mut comment = source.describe(key);
            if source != Source::Default && defaults.get(key) != Some(&value) {
                let default = defaults.get(key).map(String::as_str).unwrap_or_default();
                comment.push_str(&format!(" (default {})", toml_value(key, default)));
            }
            text.push_str(&format!("{key} = {}  # {comment}\n", toml_value(key, &value)));
        }
        text
    }
}

/// Every key with its value, written as its environment variable would be.
pub fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let path = |path: &Option<PathBuf>, none: &str| {
        path.as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| none.to_string())
    };
    let entries = vec![
        ("image_prefix", config.image_prefix.clone()),
        ("base_image", config.base_image.clone()),
        ("timeout_ms", config.default_timeout_ms.to_string()),
        ("max_timeout_ms", config.max_timeout_ms.to_string()),
        ("max_output_bytes", config.max_output_bytes.to_string()),
        ("memory_mb", config.memory_mb.to_string()),
        ("pids_limit", config.pids_limit.to_string()),
        ("cpus", config.cpus.to_string()),
        ("tmpfs_mb", config.tmpfs_mb.to_string()),
        ("session_storage", config.session_storage.name().to_string()),
        ("session_storage_mb", config.session_storage_mb.to_string()),
        ("runtime", config.runtime.clone().unwrap_or_default()),
        (
            "pool_size",
            config
                .pool_sizes
                .iter()
                .map(|(language, size)| format!("{}={size}", language.name()))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("session_ttl_s", config.session_ttl_s.to_string()),
        ("max_session_ttl_s", config.max_session_ttl_s.to_string()),
        ("max_sessions", config.max_sessions.to_string()),
        ("gc_interval_s", config.gc_interval_s.to_string()),
        ("state_dir", config.state_dir.display().to_string()),
        ("cache_keep", config.cache_keep_per_language.to_string()),
        ("cache_max_mb", config.cache_max_mb.to_string()),
        ("ca_bundle", path(&config.ca_bundle, "none")),
        ("max_artifacts", config.max_artifacts.to_string()),
        ("max_artifact_bytes", config.max_artifact_bytes.to_string()),
        ("max_file_bytes", config.max_file_bytes.to_string()),
        (
            "host_folders",
            config
                .host_folders
                .iter()
                .map(|folder| {
                    let access = if folder.writable { ":rw" } else { "" };
                    format!("{}={}{access}", folder.name, folder.host_path.display())
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "seccomp",
            match &config.seccomp {
                SeccompProfile::Custom { path, .. } => path.display().to_string(),
                profile => profile.name(),
            },
        ),
        ("audit_log", path(&config.audit.path, "off")),
        ("audit_max_mb", (config.audit.max_bytes / (1024 * 1024)).to_string()),
        ("audit_keep", config.audit.keep_files.to_string()),
        ("audit_log_code", config.audit.log_code.to_string()),
        ("policy", config.policy.name().to_string()),
    ];
    debug_assert_eq!(entries.len(), KEYS.len());
    entries
}

/// A value as TOML: numbers and booleans bare, everything else a string.
fn toml_value(key: &str, value: &str) -> String {
    let numeric = value.parse::<i64>().is_ok() || (key == "cpus" && value.parse::<f64>().is_ok());
    if numeric || value == "true" || value == "false" {
        value.to_string()
    } else {
        toml::Value::String(value.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    #[test]
    fn every_key_is_shown_in_order() {
        let keys: Vec<&str> = entries(&Config::default()).into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn the_rendering_is_a_config_file_that_reads_back_the_same() {
        let loaded = Loaded {
            config: Config::from_lookup(|key| {
                (key == "MULTILANG_SANDBOX_HOST_FOLDERS").then(|| "data=/srv/d,out=/srv/o:rw".to_string())
            })
            .unwrap(),
            sources: BTreeMap::new(),
            file: PathBuf::from("/c.toml"),
            file_found: false,
        };
        let text = loaded.render();
        assert!(text.contains("memory_mb = 512  # default\n"), "{text}");
        let file = ConfigFile::parse(&PathBuf::from("/shown.toml"), &text).unwrap();
        let layers = super::super::Layers::new(&|_| None, Some(&file));
        let again = Config::from_layers(&layers, &|_| None).unwrap();
        assert_eq!(entries(&again), entries(&loaded.config));
    }
}
