//! The package registries an install may reach (issue #14, item 5): found
//! at run time inside the install container, from the package manager's own
//! configuration (`registries.py`, run by the runner before the install
//! steps), and read here into the exact `host:port` patterns the egress
//! proxy grants to that install. No registry is named in this code.
//!
//! Cargo's sparse index names its download host in its `config.json`, so
//! cargo takes a second step once the index host is granted
//! ([`download_steps`]).

use super::packages::PackageManager;
use super::{Phase, Step};
use crate::security::egress::{Host, HostPattern};

/// The discovery script, written into the install container's tmpfs (never
/// committed into a cached image).
pub const SCRIPT: &str = include_str!("registries.py");
/// Where the script is written.
pub const SCRIPT_PATH: &str = "/tmp/registries.py";

/// What discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registries {
    /// The destinations to grant, each once, in the order found.
    pub grants: Vec<HostPattern>,
    /// Sparse cargo indexes whose `config.json` names the download host.
    pub indexes: Vec<String>,
    /// What could not be read, or was found and not granted (for the error
    /// when nothing is granted).
    pub problems: Vec<String>,
}

impl Registries {
    /// Reads the script's output (see `registries.py`); lines it does not
    /// know are kept as problems.
    pub fn parse(output: &str) -> Registries {
        let mut found = Registries::default();
        for line in output.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "host" => found.host(rest),
                "config" if rest.starts_with("https://") || rest.starts_with("http://") => {
                    if !found.indexes.iter().any(|known| known == rest) {
                        found.indexes.push(rest.to_string());
                    }
                }
                "problem" => found.problems.push(rest.to_string()),
                _ => found.problems.push(format!("unexpected discovery output: {line}")),
            }
        }
        found
    }

    /// Adds what `other` found (cargo's second step).
    pub fn extend(&mut self, other: Registries) {
        for grant in other.grants {
            if !self.grants.contains(&grant) {
                self.grants.push(grant);
            }
        }
        self.problems.extend(other.problems);
    }

    /// The granted destinations as `host:port`, for messages and logs.
    pub fn listed(&self) -> String {
        self.grants
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn host(&mut self, rest: &str) {
        let mut words = rest.split_whitespace();
        let (Some(host), Some(port)) = (words.next(), words.next()) else {
            self.problems.push(format!("unreadable host line: {rest}"));
            return;
        };
        let found_in = words.collect::<Vec<_>>().join(" ");
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                self.problems
                    .push(format!("{found_in}: `{host}` has no valid port ({port})"));
                return;
            }
        };
        match Host::parse(host) {
            Some(host @ Host::Name(_)) => {
                let pattern = HostPattern::exact(&host, port);
                if !self.grants.contains(&pattern) {
                    self.grants.push(pattern);
                }
            }
            // As everywhere in the egress policy, an address is not a
            // name: installs reach registries by name only.
            Some(Host::Address(_)) => self.problems.push(format!(
                "{found_in}: `{host}` is an IP address; installs reach registries by host name only"
            )),
            None => self
                .problems
                .push(format!("{found_in}: `{host}` is not a valid host name")),
        }
    }
}

impl PackageManager {
    /// The steps that print the registries this manager is configured for
    /// (the script must be written to [`SCRIPT_PATH`] first).
    pub fn discovery_steps(self) -> Vec<Step> {
        let which = match self {
            PackageManager::Pip => "pip",
            PackageManager::Npm => "npm",
            PackageManager::Cargo => "cargo",
            PackageManager::GoModules => "go",
            PackageManager::Apt => "apt",
        };
        vec![script_step(&[which])]
    }

    /// Where the user looks when nothing is found.
    pub fn configuration_hint(self) -> &'static str {
        match self {
            PackageManager::Pip => {
                "index-url and extra-index-url in `pip config list` (pip.conf or PIP_INDEX_URL in the image)"
            }
            PackageManager::Npm => "`npm config get registry` (the image's npmrc or npm_config_registry)",
            PackageManager::Cargo => "cargo's registry or source replacement (config.toml in the image's CARGO_HOME)",
            PackageManager::GoModules => "`go env GOPROXY GOSUMDB` (GOROOT/go.env or the image's go env file)",
            PackageManager::Apt => "/etc/apt/sources.list and /etc/apt/sources.list.d/ in the image",
        }
    }
}

/// The step that prints the download host of the sparse cargo index at
/// `index` (run once the index host is granted).
pub fn download_steps(index: &str) -> Vec<Step> {
    vec![script_step(&["cargo-download", index])]
}

fn script_step(arguments: &[&str]) -> Step {
    // The image's own interpreter by its full path: an earlier install may
    // have put a `python3` of its own first on PATH.
    let mut argv: Vec<String> = ["/usr/bin/python3", "-E", "-s", SCRIPT_PATH].map(String::from).to_vec();
    argv.extend(arguments.iter().map(|argument| argument.to_string()));
    Step::new(Phase::Run, argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_exact_patterns_once_each() {
        let found = Registries::parse(
            "host Index.Example 443 pip global.index-url\n\
             host files.example 443 pip default file host\n\
             host index.example 443 pip again\n\
             host mirror.example 8080 apt /etc/apt/sources.list\n\
             config https://index.example/\n\
             config https://index.example/\n",
        );
        let listed: Vec<String> = found.grants.iter().map(ToString::to_string).collect();
        assert_eq!(
            listed,
            ["index.example:443", "files.example:443", "mirror.example:8080"]
        );
        assert_eq!(found.indexes, ["https://index.example/"]);
        assert!(found.problems.is_empty(), "{:?}", found.problems);
    }

    #[test]
    fn addresses_bad_names_and_noise_are_problems_not_grants() {
        let found = Registries::parse(
            "host 10.0.0.5 443 pip index-url\n\
             host [fd00::1] 443 npm registry\n\
             host bad_name! 443 npm registry\n\
             host ok.example 0 go GOPROXY\n\
             host ok.example\n\
             config file:///local\n\
             problem npm config list failed\n\
             Traceback (most recent call last):\n",
        );
        assert!(found.grants.is_empty(), "{:?}", found.grants);
        assert!(found.indexes.is_empty());
        assert_eq!(found.problems.len(), 8, "{:?}", found.problems);
        assert!(found.problems[0].contains("IP address"));
    }

    #[test]
    fn steps_run_the_script_for_each_manager() {
        for (manager, which) in [
            (PackageManager::Pip, "pip"),
            (PackageManager::Npm, "npm"),
            (PackageManager::Cargo, "cargo"),
            (PackageManager::GoModules, "go"),
            (PackageManager::Apt, "apt"),
        ] {
            let steps = manager.discovery_steps();
            assert_eq!(steps.len(), 1);
            assert_eq!(steps[0].argv[3], SCRIPT_PATH);
            assert_eq!(steps[0].argv[4], which);
        }
        let download = download_steps("https://index.example/");
        assert_eq!(download[0].argv[4..], ["cargo-download", "https://index.example/"]);
        assert!(SCRIPT.contains("def cargo_download"));
    }
}
