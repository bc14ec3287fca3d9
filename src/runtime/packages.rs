//! Package managers: which one serves a language, how package specs are
//! validated and normalized (so the cache key is stable and no spec can
//! smuggle in options or shell syntax), and the commands that install them
//! into `/packages` inside an install container.
//!
//! Where packages land (the images point their tools there), under
//! `/packages` in a cached image and `/packages/session` (a volume) in a
//! session, so a session made from a cached image never copies the cached
//! packages:
//! - pip: `<root>/python` (on `PYTHONPATH`)
//! - npm: `<root>/node/node_modules` (`NODE_PATH`; `/node_modules` links to the cached one for ES modules)
//! - cargo: `<root>/rust` (a library crate whose build outputs `rustc` is pointed at)
//! - go modules: `<root>/go` (module cache; needs the Go module proxy)
//! - apt: the image itself (root, only when preparing a cached image)

use super::{Language, Phase, Step, step};
use thiserror::Error;

/// Where a cached image's packages are installed.
pub const CACHE_ROOT: &str = "/packages";
/// Where a session's own installs go (its packages volume).
pub const SESSION_ROOT: &str = "/packages/session";

/// Longest accepted package spec.
const MAX_SPEC_LEN: usize = 200;
/// Most packages in one request.
const MAX_PACKAGES: usize = 50;

/// A package list that is refused before anything is installed.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("`packages` is empty: list the packages to install, for example [\"requests\"]")]
    NoPackages,
    #[error("too many packages in one request (at most {max})")]
    TooMany { max: usize },
    #[error(
        "package spec `{spec}` is refused: {reason}. Pass plain registry names with an optional version, like `requests==2.32.3` or `lodash@4`"
    )]
    InvalidSpec { spec: String, reason: String },
}

/// The package manager that installs packages for a language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum PackageManager {
    Pip,
    Npm,
    Cargo,
    #[strum(serialize = "go modules")]
    GoModules,
    Apt,
}

impl PackageManager {
    pub fn for_language(language: Language) -> PackageManager {
        match language {
            Language::Python => PackageManager::Pip,
            Language::JavaScript | Language::TypeScript => PackageManager::Npm,
            Language::Rust => PackageManager::Cargo,
            Language::Go => PackageManager::GoModules,
            Language::Bash => PackageManager::Apt,
        }
    }

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// True when installing needs root and changes the image itself, so it
    /// cannot be done into a running session (only into a cached image).
    pub fn needs_root(self) -> bool {
        self == PackageManager::Apt
    }

    /// Validates and normalizes specs: trimmed, deduplicated, sorted, and
    /// lower-cased where the manager is case-insensitive (pip, apt).
    pub fn normalize(self, specs: &[String]) -> Result<Vec<String>, SpecError> {
        if specs.is_empty() {
            return Err(SpecError::NoPackages);
        }
        if specs.len() > MAX_PACKAGES {
            return Err(SpecError::TooMany { max: MAX_PACKAGES });
        }
        let mut normalized = Vec::with_capacity(specs.len());
        for spec in specs {
            let spec = spec.trim();
            validate_spec(spec, self == PackageManager::GoModules)?;
            if self == PackageManager::Npm {
                validate_npm_source(spec)?;
            }
            let spec = match self {
                PackageManager::Pip | PackageManager::Apt => spec.to_ascii_lowercase(),
                _ => spec.to_string(),
            };
            normalized.push(spec);
        }
        normalized.sort();
        normalized.dedup();
        Ok(normalized)
    }

    /// The steps that install `specs` (already normalized) under `root`:
    /// [`CACHE_ROOT`] for a cached image, [`SESSION_ROOT`] for a session.
    pub fn install_steps(self, specs: &[String], root: &str) -> Vec<Step> {
        let python_target = format!("{root}/python");
        let node_prefix = format!("{root}/node");
        let with = |prefix: &[&str]| {
            let mut argv: Vec<String> = prefix.iter().map(|arg| arg.to_string()).collect();
            argv.extend(specs.iter().cloned());
            Step::new(Phase::Run, argv)
        };
        match self {
            PackageManager::Pip => vec![with(&[
                "python3",
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--break-system-packages",
                "--upgrade",
                "--target",
                &python_target,
                "--",
            ])],
            PackageManager::Npm => vec![
                step(Phase::Run, &["mkdir", "-p", &node_prefix]),
                with(&[
                    "npm",
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-update-notifier",
                    "--prefix",
                    &node_prefix,
                    "--",
                ]),
            ],
            PackageManager::Cargo => vec![with(&["sh", "/opt/sandbox/cargo-install.sh", root])],
            PackageManager::GoModules => vec![with(&["sh", "/opt/sandbox/go-install.sh", root])],
            PackageManager::Apt => vec![
                step(Phase::Run, &["apt-get", "update", "-qq"]),
                with(&["apt-get", "install", "-y", "-qq", "--no-install-recommends"]),
                step(Phase::Run, &["sh", "-c", "rm -rf /var/lib/apt/lists/*"]),
            ],
        }
    }
}

/// A spec is a package name with an optional version constraint, extras or
/// npm scope: letters, digits and `. _ - @ / = < > ! ~ [ ] , + : * ^`. It
/// must start with a letter, digit or `@` (so never an option), and may not
/// be a URL or a path. `/` is allowed in npm scopes (`@scope/name`) and in Go
/// module paths (`example.com/mod@v1`).
fn validate_spec(spec: &str, module_path: bool) -> Result<(), SpecError> {
    let invalid = |reason: &str| SpecError::InvalidSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    if spec.is_empty() {
        return Err(invalid("it is empty"));
    }
    if spec.len() > MAX_SPEC_LEN {
        return Err(invalid("it is too long"));
    }
    let first = spec.chars().next().unwrap_or('-');
    if !(first.is_ascii_alphanumeric() || first == '@') {
        return Err(invalid(
            "it must start with a letter, digit or @ (options are not allowed)",
        ));
    }
    if let Some(bad) = spec
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-@/=<>!~[],+:*^".contains(*c)))
    {
        return Err(invalid(&format!("the character {bad:?} is not allowed")));
    }
    if spec.contains("://") || spec.contains("..") || spec.contains(" -") {
        return Err(invalid(
            "URLs and paths are not allowed; name a package from the registry",
        ));
    }
    let scoped = spec.starts_with('@') && spec.matches('/').count() == 1;
    if spec.contains('/') && !scoped && !module_path {
        return Err(invalid(
            "only npm scopes (@scope/name) and Go module paths may contain `/`",
        ));
    }
    Ok(())
}

/// npm reads many specs as something other than a registry package:
/// `x@file:dir`, `x@link:dir`, `x@git+ssh:…`, `x@github:u/r`, `gist:id`,
/// `x@http:…`, a tarball path. Only names with a version range, a tag, or an
/// `npm:` alias (another registry package) are accepted.
fn validate_npm_source(spec: &str) -> Result<(), SpecError> {
    let invalid = |reason: &str| SpecError::InvalidSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    // The version follows the first `@` that does not start a scope.
    let version = spec
        .char_indices()
        .find(|(at, c)| *c == '@' && *at > 0)
        .map(|(at, _)| &spec[at + 1..]);
    let name = match version {
        Some(version) => &spec[..spec.len() - version.len() - 1],
        None => spec,
    };
    let source = version.unwrap_or_default();
    let alias = source.strip_prefix("npm:");
    if name.contains(':') || (source.contains(':') && alias.is_none_or(|target| target.contains(':'))) {
        return Err(invalid(
            "npm would fetch it from a file, link, git host, gist or URL; name a package from the registry (an `npm:` alias is fine)",
        ));
    }
    let lower = spec.to_ascii_lowercase();
    if [".tgz", ".tar", ".tar.gz"].iter().any(|end| lower.ends_with(end)) {
        return Err(invalid(
            "npm would read it as a tarball on disk; name a package from the registry",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn common_specs_are_accepted_and_normalized() {
        let pip = PackageManager::Pip
            .normalize(&specs(&[
                "Requests==2.32.3",
                " six",
                "numpy<2",
                "rich[jupyter]>=13",
                "six",
            ]))
            .unwrap();
        assert_eq!(pip, ["numpy<2", "requests==2.32.3", "rich[jupyter]>=13", "six"]);
        let npm = PackageManager::Npm
            .normalize(&specs(&["lodash@4.17.21", "@types/node@^20", "left-pad"]))
            .unwrap();
        assert_eq!(npm, ["@types/node@^20", "left-pad", "lodash@4.17.21"]);
        assert!(PackageManager::Cargo.normalize(&specs(&["serde@1.0", "rand"])).is_ok());
        assert!(PackageManager::Apt.normalize(&specs(&["jq", "libxml2-utils"])).is_ok());
        assert!(
            PackageManager::GoModules
                .normalize(&specs(&["github.com/google/uuid@v1.6.0"]))
                .is_ok()
        );
        assert!(PackageManager::Npm.normalize(&specs(&["@a/b/c"])).is_err());
    }

    #[test]
    fn npm_specs_from_anywhere_but_the_registry_are_rejected() {
        for bad in [
            "x@file:abc",
            "x@link:abc",
            "x@gist:abc123",
            "gist:abc123",
            "x@github:user",
            "x@git+ssh:host",
            "x@http:host",
            "x@npm:y@file:z",
            "@scope/x@file:abc",
            "x.tgz",
            "pkg.tar.gz",
        ] {
            assert!(
                PackageManager::Npm.normalize(&specs(&[bad])).is_err(),
                "{bad:?} was accepted"
            );
        }
        for good in [
            "lodash",
            "lodash@^4",
            "@types/node@20",
            "x@npm:lodash@4",
            "react@latest",
        ] {
            assert!(
                PackageManager::Npm.normalize(&specs(&[good])).is_ok(),
                "{good:?} was refused"
            );
        }
    }

    #[test]
    fn injection_and_options_are_rejected() {
        for bad in [
            "six; rm -rf /",
            "--index-url=http://evil",
            "-e .",
            "six && curl x",
            "$(id)",
            "`id`",
            "git+https://example.com/x.git",
            "../local",
            "/abs/path",
            "a b",
            "six\n--pre",
            "requests @ file:///tmp/x",
            "evil/pkg",
            "",
        ] {
            assert!(
                PackageManager::Pip.normalize(&specs(&[bad])).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(matches!(PackageManager::Pip.normalize(&[]), Err(SpecError::NoPackages)));
    }

    #[test]
    fn install_steps_end_options_before_the_specs() {
        let steps = PackageManager::Pip.install_steps(&specs(&["six"]), CACHE_ROOT);
        let argv = &steps[0].argv;
        assert_eq!(argv.last().map(String::as_str), Some("six"));
        assert_eq!(argv[argv.len() - 2], "--");
        assert!(argv.contains(&"/packages/python".to_string()));
        let session = PackageManager::Pip.install_steps(&specs(&["six"]), SESSION_ROOT);
        assert!(session[0].argv.contains(&"/packages/session/python".to_string()));
        let npm = PackageManager::Npm.install_steps(&specs(&["lodash"]), CACHE_ROOT);
        assert_eq!(npm.last().map(|s| s.argv[s.argv.len() - 2].as_str()), Some("--"));
    }
}
