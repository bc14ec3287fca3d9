//! `multilang-sandbox images build`: makes sure the base image exists
//! (pulling it, or building it offline with debootstrap), then builds the
//! shared sandbox base and one image per language, skipping images whose
//! content hash is already present. Progress goes to stderr.

use super::templates::{self, TemplateError, TemplateSource};
use super::{
    BASE, EGRESS, HASH_LABEL, IMAGE_LABEL, ImageDefinition, PYTHON_ML, bootstrap, content_hash, definition_for,
    parent_of, repository_of, tag,
};
use crate::config::{Config, ca};
use crate::docker::{BuildContext, BuildEvent, ImageFacts, SandboxEngine};
use crate::images::ImageError;
use crate::runtime::Language;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How many of a failed template build's last output lines its error keeps.
const BUILD_ERROR_LINES: usize = 20;

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
    engine: &'a dyn SandboxEngine,
    config: &'a Config,
}

impl<'a> ImageBuilder<'a> {
    pub fn new(engine: &'a dyn SandboxEngine, config: &'a Config) -> Self {
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
            (IMAGE_LABEL.to_string(), definition.name.to_string()),
        ]);
        let started = Instant::now();
        let spinner = spinner(&format!("{:<11} building", definition.name));
        let interactive = std::io::stderr().is_terminal();
        let name = definition.name;
        let result = self
            .engine
            .build(image, &context, &build_args, &labels, &mut |BuildEvent::Output(
                line,
            )| {
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

    /// Builds a template's image as `unchecked_tag` and checks it
    /// ([`Self::check_template_image`]); a refused image is removed. Each
    /// `Step` line of the build goes to `on_step`; a failed build's error
    /// ends with the last lines of its output.
    pub async fn build_template(
        &self,
        source: &TemplateSource,
        unchecked_tag: &str,
        mut on_step: impl FnMut(&str) + Send,
    ) -> Result<(), TemplateError> {
        let template = &source.template;
        let parent = template.base.image(self.config);
        if !self.engine.image_exists(&parent).await? {
            return Err(TemplateError::parent_missing(template, self.config));
        }
        let mut build_args = templates::build_args(self.config);
        if let Some(bundle) = &source.ca_bundle {
            let trusting = self.trusting(&template.name, &parent, bundle).await?;
            build_args.insert(template.base.argument(), trusting);
        }
        let mut last_lines = std::collections::VecDeque::new();
        let built = self
            .engine
            .build(
                unchecked_tag,
                &source.context,
                &build_args,
                &templates::build_labels(source),
                &mut |BuildEvent::Output(line)| {
                    // Docker says `Step 2/5 :`, Podman `STEP 2/5:`.
                    if line.get(..5).is_some_and(|start| start.eq_ignore_ascii_case("step ")) {
                        on_step(&line);
                    }
                    if last_lines.len() == BUILD_ERROR_LINES {
                        last_lines.pop_front();
                    }
                    last_lines.push_back(line);
                },
            )
            .await;
        if let Err(error) = built {
            // A failed build may still have tagged nothing; remove in case.
            self.discard(unchecked_tag).await;
            let output: Vec<String> = last_lines.into_iter().collect();
            return Err(TemplateError::BuildFailed {
                name: template.name.clone(),
                message: format!("{error}\n{}", output.join("\n")),
            });
        }
        let checked = match self.check_template_image(source, unchecked_tag).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(TemplateError::BuildFailed {
                name: template.name.clone(),
                message: format!("the engine reported success but has no image {unchecked_tag}"),
            }),
            Err(error) => Err(error),
        };
        if checked.is_err() {
            self.discard(unchecked_tag).await;
        }
        checked
    }

    /// Checks `image`, a build of `source`, against the image it builds on
    /// ([`templates::check_built`]); `None` when `image` does not exist.
    pub async fn check_template_image(
        &self,
        source: &TemplateSource,
        image: &str,
    ) -> Result<Option<ImageFacts>, TemplateError> {
        let Some(built) = self.engine.image_facts(image).await? else {
            return Ok(None);
        };
        let parent = source.template.base.image(self.config);
        let parent_facts = self
            .engine
            .image_facts(&parent)
            .await?
            .ok_or_else(|| TemplateError::parent_missing(&source.template, self.config))?;
        templates::check_built(&source.template.name, &built, &parent_facts)?;
        Ok(Some(built))
    }

    /// `parent` trusting the machine's CA bundle (built once per parent and
    /// bundle): a template's steps that download (pip, npm, curl) work
    /// behind a TLS-inspecting proxy, as installs do, and so do its
    /// sandboxes' clients.
    async fn trusting(&self, template: &str, parent: &str, bundle: &str) -> Result<String, TemplateError> {
        let mut hasher = Sha256::new();
        hasher.update(parent.as_bytes());
        hasher.update([0]);
        hasher.update(bundle.as_bytes());
        let hash = hex::encode(hasher.finalize());
        let repository = repository_of(parent);
        let name = repository.rsplit('/').next().unwrap_or(repository);
        let tag = format!("{}/ca-{name}:{}", self.config.image_prefix, &hash[..16]);
        if self.engine.image_exists(&tag).await? {
            return Ok(tag);
        }
        let path = "/etc/ssl/certs/multilang-sandbox-ca-bundle.pem";
        let variables: Vec<String> = ca::VARIABLES
            .iter()
            .map(|variable| format!("{variable}={path}"))
            .collect();
        let dockerfile = format!(
            "ARG BASE\nFROM ${{BASE}}\nUSER root\nCOPY ca-bundle.pem {path}\nENV {}\nUSER sandbox\n",
            variables.join(" ")
        );
        let mut context = BuildContext::default();
        context.add("Dockerfile", dockerfile.as_bytes());
        context.add("ca-bundle.pem", bundle.as_bytes());
        let build_args = HashMap::from([("BASE".to_string(), parent.to_string())]);
        self.engine
            .build(&tag, &context, &build_args, &HashMap::new(), &mut |_| {})
            .await
            .map_err(|error| TemplateError::BuildFailed {
                name: template.to_string(),
                message: format!("giving {parent} the machine's CA bundle failed: {error}"),
            })?;
        Ok(tag)
    }

    /// Removes an image this builder made and must not keep.
    pub async fn discard(&self, image: &str) {
        if let Err(error) = self.engine.remove_image(image).await {
            tracing::warn!(%image, %error, "could not remove an image that failed its checks");
        }
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
