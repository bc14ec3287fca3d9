//! How the key table reads values: numbers, texts, paths that a word
//! turns off, pool sizes, and the rules that find a default on the machine.

use crate::config::ConfigError;
use crate::runtime::Language;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a default rule may read: environment variables, which files exist,
/// the temporary folder.
pub struct Machine<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub is_file: &'a dyn Fn(&Path) -> bool,
    pub temp_dir: PathBuf,
}

impl Machine<'static> {
    /// A machine with no environment and no files, for [`Config::default`].
    pub fn bare() -> Self {
        fn no_variable(_: &str) -> Option<String> {
            None
        }
        fn no_file(_: &Path) -> bool {
            false
        }
        Self {
            var: &no_variable,
            is_file: &no_file,
            temp_dir: PathBuf::from("/tmp"),
        }
    }
}

pub(super) fn invalid(label: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: label.to_string(),
        reason,
    }
}

/// A text value as is (every text is valid), shaped like the parsers.
pub(super) fn text(value: &str) -> Result<String, ConfigError> {
    Ok(value.to_string())
}

pub(super) fn number<T: std::str::FromStr>(value: &str, label: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(label, format!("`{value}` is not a valid number")))
}

/// A flag: `true`, `1`, `yes`, `on` or `false`, `0`, `no`, `off` (any case).
pub(super) fn flag(value: &str, label: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(label, format!("`{value}` is not a flag: use true or false"))),
    }
}

/// The entries of a comma list, trimmed, empty ones skipped.
pub(super) fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|entry| !entry.is_empty())
}

pub(super) fn text_of(path: impl AsRef<Path>) -> String {
    path.as_ref().display().to_string()
}

/// A path, or `None` when the value is one of `off` words.
pub(super) fn path_unless(value: String, off: &[&str]) -> Option<PathBuf> {
    (!off.contains(&value.as_str())).then(|| PathBuf::from(value))
}

/// `$variable`, else `$HOME/<under_home>`, else the temporary folder.
fn xdg_folder(machine: &Machine<'_>, variable: &str, under_home: &str) -> PathBuf {
    (machine.var)(variable)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| (machine.var)("HOME").map(|home| PathBuf::from(home).join(under_home)))
        .unwrap_or_else(|| machine.temp_dir.clone())
}

/// The state folder: `$XDG_STATE_HOME/multilang-sandbox`.
pub(super) fn state_dir_on(machine: &Machine<'_>) -> String {
    text_of(xdg_folder(machine, "XDG_STATE_HOME", ".local/state").join("multilang-sandbox"))
}

/// The templates folder: `$XDG_CONFIG_HOME/multilang-sandbox/templates`.
pub(super) fn templates_dir_on(machine: &Machine<'_>) -> String {
    text_of(xdg_folder(machine, "XDG_CONFIG_HOME", ".config").join("multilang-sandbox/templates"))
}

/// The audit log: `$XDG_DATA_HOME/multilang-sandbox/audit/audit.jsonl`.
pub(super) fn audit_log_on(machine: &Machine<'_>) -> String {
    text_of(xdg_folder(machine, "XDG_DATA_HOME", ".local/share").join("multilang-sandbox/audit/audit.jsonl"))
}

/// `$SSL_CERT_FILE`, else the first system bundle present, else `none`.
pub(super) fn ca_bundle_on(machine: &Machine<'_>) -> String {
    let from_env = (machine.var)("SSL_CERT_FILE")
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
        .find(|path| (machine.is_file)(path))
        .map_or("none".to_string(), text_of)
}

/// Parses `3` (every language) or `python=2,go=0` (the others keep `current`).
pub(super) fn parse_pool_sizes(
    label: &str,
    value: &str,
    current: &BTreeMap<Language, usize>,
) -> Result<BTreeMap<Language, usize>, ConfigError> {
    if let Ok(size) = value.parse::<usize>() {
        return Ok(Language::ALL.iter().map(|language| (*language, size)).collect());
    }
    let mut sizes = current.clone();
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (name, size) = entry
            .split_once('=')
            .ok_or_else(|| invalid(label, format!("`{entry}` should look like `python=2`")))?;
        let language = Language::parse(name).map_err(|error| invalid(label, error.to_string()))?;
        let size = size
            .trim()
            .parse()
            .map_err(|_| invalid(label, format!("`{size}` is not a valid number")))?;
        sizes.insert(language, size);
    }
    Ok(sizes)
}

/// Pool sizes as [`parse_pool_sizes`] reads them.
pub(super) fn render_pool_sizes(sizes: &BTreeMap<Language, usize>) -> String {
    let entries: Vec<String> = sizes
        .iter()
        .map(|(language, size)| format!("{}={size}", language.name()))
        .collect();
    entries.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine<'a>(var: &'a dyn Fn(&str) -> Option<String>, is_file: &'a dyn Fn(&Path) -> bool) -> Machine<'a> {
        Machine {
            var,
            is_file,
            temp_dir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn ca_bundle_prefers_the_environment_then_the_system_bundle() {
        let exists = |path: &Path| path.to_str() != Some("/missing.pem");
        let env = |key: &str| (key == "SSL_CERT_FILE").then(|| "/custom.pem".to_string());
        assert_eq!(ca_bundle_on(&machine(&env, &exists)), "/custom.pem");
        assert_eq!(
            ca_bundle_on(&machine(&|_| None, &exists)),
            "/etc/ssl/certs/ca-certificates.crt"
        );
        assert_eq!(ca_bundle_on(&machine(&|_| None, &|_| false)), "none");
    }

    #[test]
    fn state_and_data_folders_follow_xdg_then_home_then_the_temporary_folder() {
        let xdg = |key: &str| (key == "XDG_STATE_HOME").then(|| "/x".to_string());
        assert_eq!(state_dir_on(&machine(&xdg, &|_| false)), "/x/multilang-sandbox");
        let home = |key: &str| (key == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            state_dir_on(&machine(&home, &|_| false)),
            "/home/u/.local/state/multilang-sandbox"
        );
        assert_eq!(
            audit_log_on(&machine(&home, &|_| false)),
            "/home/u/.local/share/multilang-sandbox/audit/audit.jsonl"
        );
        assert_eq!(state_dir_on(&Machine::bare()), "/tmp/multilang-sandbox");
    }
}
