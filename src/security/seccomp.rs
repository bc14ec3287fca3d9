//! Seccomp profiles: the three built into the binary (`seccomp/*.json`,
//! Docker's profile format), the engine's own default, or a profile file the
//! user names. `standard` is the default; see `seccomp/README.md` for what
//! each one denies.

use std::path::PathBuf;
use thiserror::Error;

const STANDARD: &str = include_str!("../../seccomp/standard.json");
const STRICT: &str = include_str!("../../seccomp/strict.json");
const PERMISSIVE: &str = include_str!("../../seccomp/permissive.json");

/// A configured profile that cannot be used; the text says why.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UnusableProfile(String);

/// Which seccomp profile sandbox containers run under.
#[derive(Debug, Clone, PartialEq)]
pub enum SeccompProfile {
    /// Only what reaches the machine itself is denied; allows debuggers.
    Permissive,
    /// The default: Docker's dangerous-syscall set plus namespaces, tracing,
    /// keyrings, bpf, perf, userfaultfd and io_uring denied.
    Standard,
    /// Standard plus what none of the six languages needs.
    Strict,
    /// The Docker engine's own default profile.
    EngineDefault,
    /// A profile file in Docker's format, read when the configuration loads.
    Custom { path: PathBuf, json: String },
}

impl SeccompProfile {
    /// Names a model may pass per session.
    pub const BUILT_IN: [&'static str; 3] = ["permissive", "standard", "strict"];

    /// Parses a configuration value: a built-in name, `engine-default`, or
    /// the path of a profile file (read and checked to be JSON now).
    pub fn from_setting(value: &str) -> Result<Self, UnusableProfile> {
        if let Some(profile) = Self::built_in(value) {
            return Ok(profile);
        }
        if value == "engine-default" {
            return Ok(Self::EngineDefault);
        }
        let invalid = UnusableProfile;
        if !value.contains('/') {
            return Err(invalid(format!(
                "`{value}` is not a profile: use standard, strict, permissive, engine-default or the path of a profile file"
            )));
        }
        let path = PathBuf::from(value);
        let json = std::fs::read_to_string(&path)
            .map_err(|error| invalid(format!("cannot read the profile file {value}: {error}")))?;
        serde_json::from_str::<serde_json::Value>(&json)
            .map_err(|error| invalid(format!("{value} is not JSON: {error}")))?;
        Ok(Self::Custom { path, json })
    }

    /// One of the built-in profiles by name.
    pub fn built_in(name: &str) -> Option<Self> {
        match name {
            "permissive" => Some(Self::Permissive),
            "standard" => Some(Self::Standard),
            "strict" => Some(Self::Strict),
            _ => None,
        }
    }

    /// The name shown in session listings and container labels.
    pub fn name(&self) -> String {
        match self {
            Self::Permissive => "permissive".into(),
            Self::Standard => "standard".into(),
            Self::Strict => "strict".into(),
            Self::EngineDefault => "engine-default".into(),
            Self::Custom { path, .. } => format!("file:{}", path.display()),
        }
    }

    /// How much the profile denies, to keep a session from loosening the
    /// configured one (custom files and the engine default rank as standard).
    pub fn strictness(&self) -> u8 {
        match self {
            Self::Permissive => 0,
            Self::Standard | Self::EngineDefault | Self::Custom { .. } => 1,
            Self::Strict => 2,
        }
    }

    /// The profile's JSON for the container (`None`: the engine's default).
    pub fn json(&self) -> Option<&str> {
        match self {
            Self::Permissive => Some(PERMISSIVE),
            Self::Standard => Some(STANDARD),
            Self::Strict => Some(STRICT),
            Self::EngineDefault => None,
            Self::Custom { json, .. } => Some(json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn denied(profile: &str) -> Vec<String> {
        let parsed: Value = serde_json::from_str(profile).unwrap();
        assert_eq!(parsed["defaultAction"], "SCMP_ACT_ALLOW");
        parsed["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule["args"].is_null())
            .flat_map(|rule| rule["names"].as_array().unwrap().iter())
            .map(|name| name.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn standard_denies_what_the_issue_names() {
        let standard = denied(STANDARD);
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "ptrace",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "swapon",
            "swapoff",
            "pivot_root",
            "acct",
            "open_by_handle_at",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ] {
            assert!(standard.contains(&name.to_string()), "standard must deny {name}");
        }
    }

    #[test]
    fn strict_denies_everything_standard_does_and_more() {
        let standard = denied(STANDARD);
        let strict = denied(STRICT);
        assert!(standard.iter().all(|name| strict.contains(name)));
        assert!(strict.len() > standard.len());
        assert!(denied(PERMISSIVE).len() < standard.len());
    }

    #[test]
    fn configuration_values_parse() {
        assert_eq!(SeccompProfile::from_setting("strict").unwrap(), SeccompProfile::Strict);
        assert_eq!(
            SeccompProfile::from_setting("engine-default").unwrap(),
            SeccompProfile::EngineDefault
        );
        assert!(SeccompProfile::from_setting("lax").is_err());
        let missing = SeccompProfile::from_setting("/nonexistent/profile.json").unwrap_err();
        assert!(missing.to_string().contains("cannot read"));
        assert!(SeccompProfile::EngineDefault.json().is_none());
        assert!(SeccompProfile::Standard.json().unwrap().starts_with('{'));
    }
}
