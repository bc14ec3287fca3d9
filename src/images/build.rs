//! `multilang-sandbox images build`: makes sure the base image exists
//! (pulling it, or building it offline with debootstrap), then builds the
//! shared sandbox base and one image per language, skipping images whose
//! content hash is already present. Progress goes to stderr.

use super::{
    BASE, EGRESS, HASH_LABEL, ImageDefinition, PYTHON_ML, bootstrap, content_hash, definition_for, parent_of, tag,
};
use crate::config::Config;
use crate::docker::{BuildContext, BuildEvent, DockerEngine};
use crate::images::ImageError;
use crate::runtime::Language;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long to wait for a pull of the base image before building it offline.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a build run did, per image.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub built: Vec<String>,
    pub up_to_date: Vec<String>,
}

/// Builds the sandbox images.
pub struct ImageBuilder<'a> {
    engine: &'a DockerEngine,
    config: &'a Config,
}

impl<'a> ImageBuilder<'a> {
    pub fn new(engine: &'a DockerEngine, config: &'a Config) -> Self {
        Self { engine, config }
    }

    /// Builds every image that is missing or stale (all of them with
    /// `force`), and the data-science image with `ml`.
    pub async fn build_all(&self, force: bool, ml: bool) -> Result<BuildReport, ImageError> {
        let mut report = BuildReport::default();
        let mut definitions: Vec<&ImageDefinition> = vec![&BASE];
        definitions.extend(Language::ALL.iter().map(|language| definition_for(*language)));
        definitions.push(&EGRESS);
        if ml {
            definitions.push(&PYTHON_ML);
        }
        let missing = self.missing(&definitions, force).await?;
        if missing.iter().any(|definition| definition.name == BASE.name) {
            self.ensure_base_image().await?;
        }
        for definition in definitions {
            let image = tag(definition, self.config);
            if !missing.iter().any(|m| m.name == definition.name) {
                eprintln!("  {:<11} up to date ({image})", definition.name);
                report.up_to_date.push(image);
                continue;
            }
            self.build_one(definition, &image).await?;
            report.built.push(image);
        }
        Ok(report)
    }

    /// Definitions whose tagged image is absent (a stale base makes every
    /// language image stale too, through the content hash).
    async fn missing(
        &self,
        definitions: &[&'static ImageDefinition],
        force: bool,
    ) -> Result<Vec<&'static ImageDefinition>, ImageError> {
        let mut missing = Vec::new();
        for definition in definitions {
            if force || !self.engine.image_exists(&tag(definition, self.config)).await? {
                missing.push(*definition);
            }
        }
        Ok(missing)
    }

    async fn ensure_base_image(&self) -> Result<(), ImageError> {
        let base = &self.config.base_image;
        if self.engine.image_exists(base).await? {
            return Ok(());
        }
        eprintln!("  base image {base} is missing; trying to pull it");
        let pull_error = match tokio::time::timeout(PULL_TIMEOUT, self.engine.pull(base)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} s", PULL_TIMEOUT.as_secs()),
        };
        if !base.starts_with("debian:trixie") {
            return Err(ImageError::BaseUnavailable {
                image: base.clone(),
                pull_error,
                bootstrap_hint: "Only a Debian trixie base can be built offline; pull or load the image, \
                                 or unset MULTILANG_SANDBOX_BASE_IMAGE"
                    .into(),
            });
        }
        eprintln!("  pull failed ({pull_error}); building {base} offline with debootstrap (about a minute)");
        let spinner = spinner("debootstrap --variant=minbase trixie");
        let started = Instant::now();
        let result = bootstrap::bootstrap_base(self.engine, base).await;
        spinner.finish_and_clear();
        result?;
        eprintln!("  built {base} with debootstrap in {:.0?}", started.elapsed());
        Ok(())
    }

    async fn build_one(&self, definition: &ImageDefinition, image: &str) -> Result<(), ImageError> {
        let mut context = BuildContext::default();
        context.add("Dockerfile", definition.dockerfile.as_bytes());
        for (path, content) in definition.files {
            context.add(path, content.as_bytes());
        }
        let parent = if definition.name == BASE.name {
            self.config.base_image.clone()
        } else {
            tag(parent_of(definition), self.config)
        };
        let build_args = HashMap::from([("BASE".to_string(), parent)]);
        let labels = HashMap::from([
            (HASH_LABEL.to_string(), content_hash(definition, self.config)),
            ("multilang-sandbox.image".to_string(), definition.name.to_string()),
        ]);
        let started = Instant::now();
        let spinner = spinner(&format!("{:<11} building", definition.name));
        let interactive = std::io::stderr().is_terminal();
        let name = definition.name;
        let result = self
            .engine
            .build(image, &context, &build_args, &labels, |BuildEvent::Output(line)| {
                if line.starts_with("Step ") {
                    if interactive {
                        spinner.set_message(format!("{name:<11} {}", truncate(&line, 90)));
                    } else {
                        eprintln!("  {name:<11} {}", truncate(&line, 120));
                    }
                }
            })
            .await;
        spinner.finish_and_clear();
        result.map_err(|error| ImageError::BuildFailed {
            image: image.to_string(),
            message: error.to_string(),
        })?;
        eprintln!("  {:<11} built {image} in {:.1?}", definition.name, started.elapsed());
        Ok(())
    }
}

fn spinner(message: &str) -> ProgressBar {
    let spinner = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]") {
        spinner.set_style(style);
    }
    spinner.set_message(message.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

fn truncate(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max).collect();
    format!("{cut}…")
}
