//! Where each configuration value comes from: a `MULTILANG_SANDBOX_*`
//! environment variable, else the TOML config file, else the default.

use super::keys::{KEYS, Kind, key};
use crate::config::ConfigError;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable of a key: `egress.allow` is
/// `MULTILANG_SANDBOX_EGRESS_ALLOW`.
pub fn env_name(key: &str) -> String {
    format!("MULTILANG_SANDBOX_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Environment,
}

impl Source {
    /// For `config show`: "default", "file <path>", "env MULTILANG_SANDBOX_X".
    pub fn describe(&self, key: &str) -> String {
        match self {
            Source::Default => "default".to_string(),
            Source::File(path) => format!("file {}", path.display()),
            Source::Environment => format!("env {}", env_name(key)),
        }
    }
}

/// The config file's values, each turned into the text an environment
/// variable would hold (`[a, b]` → `a,b`; `{python = 2}` → `python=2`).
/// A dotted key is read from a TOML dotted key (`egress.allow = [...]`) or
/// a table (`[egress]` with `allow = [...]`), which TOML parses alike.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    values: BTreeMap<String, String>,
}

impl ConfigFile {
    /// Reads `path`; a missing file is `Ok(None)` unless `required`.
    pub fn read(path: &Path, required: bool) -> Result<Option<Self>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(error) => Err(ConfigError::File {
                path: path.to_path_buf(),
                reason: error.to_string(),
            }),
        }
    }

    /// The value the file gives the key `name`, as environment text.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file_error = |reason: String| ConfigError::File {
            path: path.to_path_buf(),
            reason,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|error: toml::de::Error| file_error(error.to_string()))?;
        let mut values = BTreeMap::new();
        read_table(&mut values, None, table).map_err(file_error)?;
        Ok(Self {
            path: path.to_path_buf(),
            values,
        })
    }
}

/// Adds the keys of `table` (the file, or the table of the group `group`)
/// to `values` by their full names; a table that is no key's value but a
/// group of keys (`egress`) is read the same way under its name.
fn read_table(values: &mut BTreeMap<String, String>, group: Option<&str>, table: toml::Table) -> Result<(), String> {
    for (name, value) in table {
        let name = match group {
            Some(group) => format!("{group}.{name}"),
            None => name,
        };
        if let Some(key) = key(&name) {
            let text = match (key.kind, &value) {
                (Kind::List, toml::Value::Table(_)) => None,
                _ => value_text(&value),
            };
            let text = text.ok_or_else(|| match key.kind {
                Kind::List => format!("`{name}` should be a list of strings, as in `{name} = [\"a\", \"b\"]`"),
                _ => format!(
                    "`{name}` should be a string, a number, a boolean, a list or (pool_size) a table of numbers"
                ),
            })?;
            if values.insert(name.clone(), text).is_some() {
                return Err(format!("`{name}` is given twice"));
            }
        } else if let toml::Value::Table(inner) = value
            && is_group(&name)
        {
            read_table(values, Some(&name), inner)?;
        } else {
            let names: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
            return Err(format!("unknown key `{name}`; the keys are: {}", names.join(", ")));
        }
    }
    Ok(())
}

/// Whether `name` is a group of keys: `egress` of `egress.allow`.
fn is_group(name: &str) -> bool {
    KEYS.iter()
        .any(|key| key.name.strip_prefix(name).is_some_and(|rest| rest.starts_with('.')))
}

fn value_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        toml::Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(value_text).collect();
            Some(parts?.join(","))
        }
        toml::Value::Table(table) => {
            let parts: Option<Vec<String>> = table
                .iter()
                .map(|(name, item)| match item {
                    toml::Value::Integer(number) => Some(format!("{name}={number}")),
                    _ => None,
                })
                .collect();
            Some(parts?.join(","))
        }
        toml::Value::Datetime(_) => None,
    }
}

/// Looks values up, environment first, and remembers where each came from.
pub struct Layers<'a> {
    environment: &'a dyn Fn(&str) -> Option<String>,
    file: Option<&'a ConfigFile>,
    sources: RefCell<BTreeMap<&'static str, Source>>,
}

impl<'a> Layers<'a> {
    pub fn new(environment: &'a dyn Fn(&str) -> Option<String>, file: Option<&'a ConfigFile>) -> Self {
        Self {
            environment,
            file,
            sources: RefCell::default(),
        }
    }

    /// The value of the key `name` (from [`KEYS`]) and how to name it in an
    /// error: the environment variable, or the key and the file.
    pub fn get(&self, name: &'static str) -> Option<(String, String)> {
        debug_assert!(key(name).is_some(), "{name} is not in KEYS");
        let variable = env_name(name);
        if let Some(value) = (self.environment)(&variable)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
        {
            self.sources.borrow_mut().insert(name, Source::Environment);
            return Some((variable, value));
        }
        let file = self.file?;
        let value = file.values.get(name)?.trim().to_string();
        if value.is_empty() {
            return None;
        }
        self.sources.borrow_mut().insert(name, Source::File(file.path.clone()));
        Some((format!("`{name}` in {}", file.path.display()), value))
    }

    /// How to name `key` in an error about its (validated) value.
    pub fn label(&self, key: &'static str) -> String {
        match self.sources.borrow().get(key) {
            Some(Source::File(path)) => format!("`{key}` in {}", path.display()),
            _ => env_name(key),
        }
    }

    /// Where every key's value came from.
    pub fn into_sources(self) -> BTreeMap<&'static str, Source> {
        let mut sources = self.sources.into_inner();
        for key in KEYS {
            sources.entry(key.name).or_insert(Source::Default);
        }
        sources
    }
}

/// The config file to read: `MULTILANG_SANDBOX_CONFIG` (which must exist),
/// else `$XDG_CONFIG_HOME/multilang-sandbox/config.toml`
/// (`~/.config/multilang-sandbox/config.toml`), which may be absent.
pub fn config_file_path(lookup: &dyn Fn(&str) -> Option<String>) -> (PathBuf, bool) {
    if let Some(path) = lookup("MULTILANG_SANDBOX_CONFIG").filter(|value| !value.trim().is_empty()) {
        return (PathBuf::from(path.trim()), true);
    }
    let base = lookup("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(std::env::temp_dir);
    (base.join("multilang-sandbox/config.toml"), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_become_environment_text() {
        let file = ConfigFile::parse(
            Path::new("/c.toml"),
            "memory_mb = 256\ncpus = 0.5\npool_size = { python = 3, go = 0 }\n\
             host_folders = [\"data=/srv/data\", \"out=/srv/out:rw\"]\naudit_log_code = true\n",
        )
        .unwrap();
        assert_eq!(file.values["memory_mb"], "256");
        assert_eq!(file.values["cpus"], "0.5");
        assert_eq!(file.values["pool_size"], "go=0,python=3");
        assert_eq!(file.values["host_folders"], "data=/srv/data,out=/srv/out:rw");
        assert_eq!(file.values["audit_log_code"], "true");
    }

    #[test]
    fn a_group_is_read_from_dotted_keys_or_a_table() {
        let dotted = ConfigFile::parse(
            Path::new("/c.toml"),
            "memory_mb = 256\negress.allow = [\"api.github.com\", \"*.example.org\"]\negress.ask = false\n",
        )
        .unwrap();
        let table = ConfigFile::parse(
            Path::new("/c.toml"),
            "memory_mb = 256\n[egress]\nallow = [\"api.github.com\", \"*.example.org\"]\nask = false\n",
        )
        .unwrap();
        let quoted = ConfigFile::parse(
            Path::new("/c.toml"),
            "memory_mb = 256\n\"egress.allow\" = [\"api.github.com\", \"*.example.org\"]\n\"egress.ask\" = false\n",
        )
        .unwrap();
        for file in [&dotted, &table, &quoted] {
            assert_eq!(file.values["egress.allow"], "api.github.com,*.example.org");
            assert_eq!(file.values["egress.ask"], "false");
            assert_eq!(file.values["memory_mb"], "256");
            assert_eq!(file.values.len(), 3);
        }
        // A key's own table is its value, not a group.
        let file = ConfigFile::parse(Path::new("/c.toml"), "[pool_size]\npython = 3\n").unwrap();
        assert_eq!(file.values["pool_size"], "python=3");
    }

    #[test]
    fn an_unknown_key_in_a_group_is_an_error_listing_the_keys() {
        for text in [
            "[egress]\nfoo = 1\n",
            "egress.foo = 1\n",
            "[egress.deep]\nallow = []\n",
            "egress = 1\n",
        ] {
            let error = ConfigFile::parse(Path::new("/c.toml"), text).unwrap_err().to_string();
            assert!(
                error.contains("/c.toml") && error.contains("unknown key `egress"),
                "{text}: {error}"
            );
            assert!(error.contains("egress.allow, egress.allow_private"), "{text}: {error}");
        }
        let error = ConfigFile::parse(Path::new("/c.toml"), "egress.allow.deep = 1\n").unwrap_err();
        assert!(
            error.to_string().contains("`egress.allow` should be a list of strings"),
            "{error}"
        );
        let error =
            ConfigFile::parse(Path::new("/c.toml"), "\"egress.ask\" = true\n[egress]\nask = false\n").unwrap_err();
        assert!(error.to_string().contains("`egress.ask` is given twice"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_syntax_are_errors_naming_the_file() {
        let error = ConfigFile::parse(Path::new("/c.toml"), "memory = 1").unwrap_err();
        assert!(error.to_string().contains("/c.toml") && error.to_string().contains("unknown key `memory`"));
        let error = ConfigFile::parse(Path::new("/c.toml"), "memory_mb = ").unwrap_err();
        assert!(error.to_string().contains("/c.toml"), "{error}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = ConfigFile::parse(Path::new("/c.toml"), "memory_mb = 256\ncpus = 2").unwrap();
        let environment = |key: &str| (key == "MULTILANG_SANDBOX_CPUS").then(|| "0.5".to_string());
        let layers = Layers::new(&environment, Some(&file));
        assert_eq!(layers.get("cpus").map(|(_, value)| value).as_deref(), Some("0.5"));
        let (label, value) = layers.get("memory_mb").unwrap();
        assert_eq!((label.as_str(), value.as_str()), ("`memory_mb` in /c.toml", "256"));
        assert_eq!(layers.get("tmpfs_mb"), None);
        let sources = layers.into_sources();
        assert_eq!(sources["cpus"], Source::Environment);
        assert_eq!(sources["memory_mb"], Source::File(PathBuf::from("/c.toml")));
        assert_eq!(sources["tmpfs_mb"], Source::Default);
    }

    #[test]
    fn config_file_path_follows_the_variable_then_xdg() {
        let explicit = |key: &str| (key == "MULTILANG_SANDBOX_CONFIG").then(|| "/etc/ms.toml".to_string());
        assert_eq!(config_file_path(&explicit), (PathBuf::from("/etc/ms.toml"), true));
        let home = |key: &str| (key == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            config_file_path(&home),
            (PathBuf::from("/home/u/.config/multilang-sandbox/config.toml"), false)
        );
    }
}
