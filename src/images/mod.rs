//! The sandbox images: their Dockerfiles (embedded from `images/` at compile
//! time, so the binary is self-contained) and content-hash tags, so a stale
//! image is rebuilt and a fresh one is reused.

mod bootstrap;
mod build;
mod error;
pub mod templates;

pub use error::ImageError;

pub use build::{BuildReport, ImageBuilder};

use crate::config::Config;
use crate::runtime::Language;
use sha2::{Digest, Sha256};

/// Label carrying the content hash on every image we build.
pub const HASH_LABEL: &str = "multilang-sandbox.content-hash";

/// Label naming what an image we build is (`python`, `template-<name>`, …).
pub const IMAGE_LABEL: &str = "multilang-sandbox.image";

/// The repository part of an image reference `repository:tag` (all of it
/// when it has no tag).
pub fn repository_of(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(repository, _)| repository)
}

/// One image: a Dockerfile plus the files its build context needs.
#[derive(Debug)]
pub struct ImageDefinition {
    /// Short name: `base` or a language name.
    pub name: &'static str,
    pub dockerfile: &'static str,
    pub files: &'static [(&'static str, &'static str)],
}

/// The shared base: Debian trixie, user `sandbox`, the runner and its kernels.
pub const BASE: ImageDefinition = ImageDefinition {
    name: "base",
    dockerfile: include_str!("../../images/base/Dockerfile"),
    files: &[
        ("runner.py", include_str!("../../images/runner/runner.py")),
        (
            "runner_protocol.py",
            include_str!("../../images/runner/runner_protocol.py"),
        ),
        (
            "runner_channel.py",
            include_str!("../../images/runner/runner_channel.py"),
        ),
        (
            "runner_capture.py",
            include_str!("../../images/runner/runner_capture.py"),
        ),
        (
            "runner_processes.py",
            include_str!("../../images/runner/runner_processes.py"),
        ),
        (
            "runner_artifacts.py",
            include_str!("../../images/runner/runner_artifacts.py"),
        ),
        (
            "runner_imports.py",
            include_str!("../../images/runner/runner_imports.py"),
        ),
        ("runner_jobs.py", include_str!("../../images/runner/runner_jobs.py")),
        (
            "runner_esbuild.py",
            include_str!("../../images/runner/runner_esbuild.py"),
        ),
        ("runner_cells.py", include_str!("../../images/runner/runner_cells.py")),
        ("fileops.py", include_str!("../../images/runner/fileops.py")),
        ("python_kernel.py", include_str!("../../images/runner/python_kernel.py")),
        ("kernel.js", include_str!("../../images/runner/kernel.js")),
        ("node_main.js", include_str!("../../images/runner/node_main.js")),
        ("kernel.sh", include_str!("../../images/runner/kernel.sh")),
        ("kernel_cell.sh", include_str!("../../images/runner/kernel_cell.sh")),
        ("node-proxy.js", include_str!("../../images/runner/node-proxy.js")),
        (
            "sandbox_mpl.py",
            include_str!("../../images/runner/python/sandbox_mpl.py"),
        ),
    ],
};

const PYTHON: ImageDefinition = ImageDefinition {
    name: "python",
    dockerfile: include_str!("../../images/python/Dockerfile"),
    files: &[],
};
const JAVASCRIPT: ImageDefinition = ImageDefinition {
    name: "javascript",
    dockerfile: include_str!("../../images/javascript/Dockerfile"),
    files: &[],
};
const TYPESCRIPT: ImageDefinition = ImageDefinition {
    name: "typescript",
    dockerfile: include_str!("../../images/typescript/Dockerfile"),
    files: &[],
};
const GO: ImageDefinition = ImageDefinition {
    name: "go",
    dockerfile: include_str!("../../images/go/Dockerfile"),
    files: &[
        ("warm.go", include_str!("../../images/go/warm.go")),
        ("go-install.sh", include_str!("../../images/go/go-install.sh")),
        ("go-build.sh", include_str!("../../images/go/go-build.sh")),
    ],
};
const RUST: ImageDefinition = ImageDefinition {
    name: "rust",
    dockerfile: include_str!("../../images/rust/Dockerfile"),
    files: &[("cargo-install.sh", include_str!("../../images/rust/cargo-install.sh"))],
};

/// The data-science Python image (`ml: true`), built on the Python image.
pub const PYTHON_ML: ImageDefinition = ImageDefinition {
    name: "python-ml",
    dockerfile: include_str!("../../images/python-ml/Dockerfile"),
    files: &[],
};
const BASH: ImageDefinition = ImageDefinition {
    name: "bash",
    dockerfile: include_str!("../../images/bash/Dockerfile"),
    files: &[],
};

/// The egress proxy (the only service a sandbox with network grants
/// reaches; see `images/egress/egress_proxy.py`), on the shared base.
pub const EGRESS: ImageDefinition = ImageDefinition {
    name: "egress",
    dockerfile: include_str!("../../images/egress/Dockerfile"),
    files: &[
        ("egress_proxy.py", include_str!("../../images/egress/egress_proxy.py")),
        (
            "egress_protocol.py",
            include_str!("../../images/egress/egress_protocol.py"),
        ),
        (
            "egress_channel.py",
            include_str!("../../images/egress/egress_channel.py"),
        ),
        (
            "egress_connection.py",
            include_str!("../../images/egress/egress_connection.py"),
        ),
        ("egress_http.py", include_str!("../../images/egress/egress_http.py")),
        ("egress_relay.py", include_str!("../../images/egress/egress_relay.py")),
        ("egress_budget.py", include_str!("../../images/egress/egress_budget.py")),
        (
            "egress_address.py",
            include_str!("../../images/egress/egress_address.py"),
        ),
    ],
};

/// The image definition that runs `language`.
pub fn definition_for(language: Language) -> &'static ImageDefinition {
    match language {
        Language::Python => &PYTHON,
        Language::JavaScript => &JAVASCRIPT,
        Language::TypeScript => &TYPESCRIPT,
        Language::Go => &GO,
        Language::Rust => &RUST,
        Language::Bash => &BASH,
    }
}

/// Content hash of an image: its Dockerfile, its files, the base image it
/// builds on and (for language images) the base definition's own hash.
pub fn content_hash(definition: &ImageDefinition, config: &Config) -> String {
    let mut hasher = Sha256::new();
    let mut feed = |part: &str| {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    };
    feed(definition.name);
    feed(definition.dockerfile);
    for (path, content) in definition.files {
        feed(path);
        feed(content);
    }
    if definition.name == BASE.name {
        feed(&config.base_image);
    } else {
        feed(&content_hash(parent_of(definition), config));
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

/// The image a definition builds on: the data-science image on the Python
/// image, every other language image on the shared base.
pub fn parent_of(definition: &ImageDefinition) -> &'static ImageDefinition {
    if definition.name == PYTHON_ML.name {
        &PYTHON
    } else {
        &BASE
    }
}

/// The data-science image's tag.
pub fn ml_tag(config: &Config) -> String {
    tag(&PYTHON_ML, config)
}

/// The tag an image definition is built and run as: `<prefix>/<name>:<hash>`.
pub fn tag(definition: &ImageDefinition, config: &Config) -> String {
    format!(
        "{}/{}:{}",
        config.image_prefix,
        definition.name,
        content_hash(definition, config)
    )
}

/// The image that runs `language` under `config`.
pub fn tag_for(language: Language, config: &Config) -> String {
    tag(definition_for(language), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the runner (its modules, kernels and helpers; not its
    /// tests) is in the base image's build context and copied in by its
    /// Dockerfile: a missing module stops every container at start.
    #[test]
    fn the_base_image_has_every_runner_module() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("images/runner");
        let modules: Vec<String> = std::fs::read_dir(&folder)
            .expect("images/runner")
            .map(|entry| entry.expect("an entry"))
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| [".py", ".js", ".sh"].iter().any(|kind| name.ends_with(kind)) && !name.starts_with("test_"))
            .collect();
        assert!(modules.len() > 5, "{modules:?}");
        for module in &modules {
            assert!(
                BASE.files.iter().any(|(name, _)| name == module),
                "{module} is not in BASE.files"
            );
            let copied = BASE.dockerfile.split("COPY ").skip(1).any(|copy| {
                copy.split("/opt/sandbox")
                    .next()
                    .is_some_and(|sources| sources.split_whitespace().any(|word| word == module))
            });
            assert!(copied, "the base Dockerfile does not copy {module}");
        }
    }

    #[test]
    fn tags_are_stable_and_distinct_per_language() {
        let config = Config::default();
        let tags: Vec<String> = Language::ALL.iter().map(|l| tag_for(*l, &config)).collect();
        assert_eq!(tags[0], tag_for(Language::Python, &config));
        assert!(tags[0].starts_with("multilang-sandbox/python:"));
        let mut unique = tags.clone();
        unique.dedup();
        assert_eq!(unique.len(), tags.len());
    }

    #[test]
    fn every_runner_and_proxy_file_is_embedded_and_copied() {
        for (folder, definition) in [("images/runner", &BASE), ("images/egress", &EGRESS)] {
            let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
            for entry in std::fs::read_dir(folder).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let for_tests = name.starts_with("test_") || name.ends_with("_testing.py");
                let shipped = [".py", ".js", ".sh"].iter().any(|ext| name.ends_with(ext)) && !for_tests;
                if shipped {
                    assert!(
                        definition.files.iter().any(|(path, _)| *path == name),
                        "{name} is not embedded"
                    );
                    assert!(
                        definition.dockerfile.contains(&format!(" {name} ")),
                        "{name} is not copied"
                    );
                }
            }
        }
    }

    #[test]
    fn base_image_choice_changes_every_hash() {
        let other = Config {
            base_image: "example/other:1".into(),
            ..Config::default()
        };
        assert_ne!(tag_for(Language::Go, &Config::default()), tag_for(Language::Go, &other));
    }
}
