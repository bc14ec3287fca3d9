//! `multilang-sandbox config show`: the effective configuration as a TOML
//! file (ready to copy into the config file), each line saying where its
//! value came from.

use super::keys::{Key, KeyDefault};
use super::{Config, KEYS, Source, env_name};
use crate::security::egress::ALLOW_KEY;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A configuration and where its values came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub sources: BTreeMap<&'static str, Source>,
    /// Keys the file sets that the environment overrides.
    pub overridden: Vec<&'static str>,
    /// The config file that was looked for.
    pub file: PathBuf,
    pub file_found: bool,
}

impl Loaded {
    /// The effective configuration as TOML, with a comment per line naming
    /// its source (and the default when it differs).
    pub fn render(&self) -> String {
        let found = if self.file_found { "" } else { " (not found)" };
        let mut text = format!(
            "# multilang-sandbox configuration: environment (MULTILANG_SANDBOX_*) over\n\
             # {}{found} over defaults.\n",
            self.file.display()
        );
        for name in &self.overridden {
            text.push_str(&format!(
                "# warning: {} overrides `{name}` in the file, whose value is not used while it is set{}.\n",
                env_name(name),
                if *name == ALLOW_KEY {
                    " (hosts the user allowed \"always\" are added to the file)"
                } else {
                    ""
                }
            ));
        }
        for key in KEYS {
            let value = (key.get)(&self.config);
            let source = self.sources.get(key.name).cloned().unwrap_or(Source::Default);
            let mut comment = source.describe(key.name);
            if source != Source::Default
                && let Some(default) = shown_default(key, &value)
            {
                comment.push_str(&format!(" (default {default})"));
            }
            text.push_str(&format!("{} = {}  # {comment}\n", key.name, key.toml_value(&value)));
        }
        text
    }
}

/// The key's default for a comment, unless `value` is that default. A rule
/// is shown as the rule, the same on every machine.
fn shown_default(key: &Key, value: &str) -> Option<String> {
    match &key.default {
        KeyDefault::Value(default) => (*default != value).then(|| key.toml_value(default)),
        KeyDefault::Unset(_) => (!value.is_empty()).then(|| key.toml_value("")),
        KeyDefault::Rule { rule, .. } => Some(rule.replace('`', "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use crate::config::layers::Layers;

    #[test]
    fn the_rendering_is_a_config_file_that_reads_back_the_same() {
        let loaded = Loaded {
            config: Config::from_lookup(|key| {
                let value = match key {
                    "MULTILANG_SANDBOX_HOST_FOLDERS" => "data=/srv/d,out=/srv/o:rw",
                    "MULTILANG_SANDBOX_EGRESS_ALLOW" => "api.github.com,*.example.org,[2001:db8::1]:8443",
                    "MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE" => "10.9.0.0/16,192.168.1.7,intranet.example",
                    "MULTILANG_SANDBOX_EGRESS_ASK" => "no",
                    "MULTILANG_SANDBOX_EGRESS_BUDGET_MB" => "2048",
                    "MULTILANG_SANDBOX_EGRESS_MAX_CONNECTIONS" => "8",
                    _ => return None,
                };
                Some(value.to_string())
            })
            .unwrap(),
            sources: BTreeMap::new(),
            overridden: Vec::new(),
            file: PathBuf::from("/c.toml"),
            file_found: false,
        };
        let text = loaded.render();
        assert!(text.contains("memory_mb = 512  # default\n"), "{text}");
        for line in [
            "egress.allow = [\"api.github.com\", \"*.example.org\", \"[2001:db8::1]:8443\"]  # default\n",
            "egress.allow_private = [\"10.9.0.0/16\", \"192.168.1.7\", \"intranet.example\"]  # default\n",
            "egress.ask = false  # default\n",
            "egress.budget_mb = 2048  # default\n",
            "egress.max_connections = 8  # default\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let keys: Vec<&str> = text
            .lines()
            .skip(2)
            .map(|line| line.split(" = ").next().unwrap())
            .collect();
        let names: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
        assert_eq!(keys, names);
        let file = ConfigFile::parse(&PathBuf::from("/shown.toml"), &text).unwrap();
        let layers = Layers::new(&|_| None, Some(&file));
        let again = Config::from_layers(&layers, &crate::config::Machine::bare()).unwrap();
        assert_eq!(again, loaded.config);
        assert_ne!(again.egress, Config::default().egress);
    }

    #[test]
    fn the_default_rendering_reads_back_as_the_default() {
        let loaded = Loaded {
            config: Config::default(),
            sources: BTreeMap::new(),
            overridden: Vec::new(),
            file: PathBuf::from("/c.toml"),
            file_found: false,
        };
        let text = loaded.render();
        assert!(text.contains("egress.allow = []  # default\n"), "{text}");
        let file = ConfigFile::parse(&PathBuf::from("/shown.toml"), &text).unwrap();
        let layers = Layers::new(&|_| None, Some(&file));
        let again = Config::from_layers(&layers, &crate::config::Machine::bare()).unwrap();
        assert_eq!(again, Config::default());
    }

    #[test]
    fn a_value_from_elsewhere_names_its_default_a_rule_as_the_rule() {
        let mut sources = BTreeMap::new();
        for key in ["cpus", "runtime", "state_dir", "memory_mb", "egress.allow"] {
            sources.insert(key, Source::Environment);
        }
        let loaded = Loaded {
            config: Config {
                cpus: 2.0,
                runtime: Some("runsc".to_string()),
                state_dir: PathBuf::from("/s"),
                egress: crate::config::EgressSettings {
                    allow: vec!["api.github.com".parse().unwrap()],
                    ..Default::default()
                },
                ..Config::default()
            },
            sources,
            overridden: Vec::new(),
            file: PathBuf::from("/c.toml"),
            file_found: true,
        };
        let text = loaded.render();
        for line in [
            "cpus = 2  # env MULTILANG_SANDBOX_CPUS (default 1)\n",
            "runtime = \"runsc\"  # env MULTILANG_SANDBOX_RUNTIME (default \"\")\n",
            "state_dir = \"/s\"  # env MULTILANG_SANDBOX_STATE_DIR (default $XDG_STATE_HOME/multilang-sandbox)\n",
            "memory_mb = 512  # env MULTILANG_SANDBOX_MEMORY_MB\n",
            "tmpfs_mb = 256  # default\n",
            "egress.allow = [\"api.github.com\"]  # env MULTILANG_SANDBOX_EGRESS_ALLOW (default [])\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn a_key_the_environment_overrides_in_the_file_is_a_warning() {
        let path = std::env::temp_dir().join(format!("show-test-{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, "cpus = 2\negress.allow = [\"a.example\"]\nmemory_mb = 256\n").unwrap();
        let file = path.display().to_string();
        let loaded = Config::load(&|key| match key {
            "MULTILANG_SANDBOX_CONFIG" => Some(file.clone()),
            "MULTILANG_SANDBOX_EGRESS_ALLOW" => Some("b.example".to_string()),
            "MULTILANG_SANDBOX_CPUS" => Some("1".to_string()),
            "MULTILANG_SANDBOX_TMPFS_MB" => Some("64".to_string()),
            _ => None,
        })
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.overridden, vec!["cpus", "egress.allow"]);
        assert_eq!(
            loaded.config.file,
            Some(crate::config::FileOrigin {
                path: path.clone(),
                allow_overridden: true
            })
        );
        let text = loaded.render();
        assert!(
            text.contains(
                "# warning: MULTILANG_SANDBOX_EGRESS_ALLOW overrides `egress.allow` in the file, whose value is not \
                 used while it is set (hosts the user allowed \"always\" are added to the file).\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# warning: MULTILANG_SANDBOX_CPUS overrides `cpus` in the file, whose value is not used while it is set.\n"),
            "{text}"
        );
        assert!(
            !text.contains("`memory_mb` in the file") && !text.contains("`tmpfs_mb` in the file"),
            "{text}"
        );
        assert!(ConfigFile::parse(&PathBuf::from("/shown.toml"), &text).is_ok());
    }

    #[test]
    fn values_are_written_in_toml_by_kind() {
        let key = |name| crate::config::keys::key(name).unwrap();
        assert_eq!(key("cpus").toml_value("0.5"), "0.5");
        assert_eq!(key("cpus").toml_value("2"), "2");
        // Beyond TOML's integers: a string, which reads back the same.
        assert_eq!(
            key("max_output_bytes").toml_value("18446744073709551615"),
            "\"18446744073709551615\""
        );
        assert_eq!(key("audit_log_code").toml_value("true"), "true");
        assert_eq!(key("runtime").toml_value("42"), "\"42\"");
        assert_eq!(
            key("egress.allow").toml_value("a.example, b.example"),
            "[\"a.example\", \"b.example\"]"
        );
        assert_eq!(key("egress.allow").toml_value(""), "[]");
        assert_eq!(key("egress.ask").toml_value("false"), "false");
    }
}
