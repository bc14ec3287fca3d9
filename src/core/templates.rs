//! The user's templates as sandboxes use them: a template's image is built
//! the first time it is asked for after its files change (once at a time in
//! this server), under a tag of its own until it has passed the checks and
//! a sandbox started from it has answered; only then does it get the
//! template's tag, so an image under that tag has always been checked.

use super::launcher::{Launcher, Purpose};
use super::watch::Watch;
use crate::config::Config;
use crate::docker::{DockerError, ImageFacts};
use crate::images::ImageBuilder;
use crate::images::templates::{self, Template, TemplateError, TemplateSource};
use crate::runtime::Language;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A template's image, ready to start sandboxes from.
#[derive(Debug, Clone)]
pub struct TemplateImage {
    pub tag: String,
    /// How long building it took, when this call built it.
    pub built_in: Option<Duration>,
}

/// One template as `sandbox_inspect` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplateSummary {
    pub name: String,
    /// The language its sandboxes run (pass it as `language`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// True when the image for its current files is built (otherwise the
    /// first use builds it, which takes as long as its Dockerfile's steps).
    pub built: bool,
    /// Size of the built image, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// What is wrong with it, when it cannot be used as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Builds and checks template images for this server.
pub struct TemplateImages {
    launcher: Arc<Launcher>,
    /// One build at a time per template.
    building: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl TemplateImages {
    pub fn new(launcher: Arc<Launcher>) -> Self {
        Self {
            launcher,
            building: Mutex::new(HashMap::new()),
        }
    }

    /// The image of template `name` for `language`, built (and tried) first
    /// when its files changed since the last build.
    pub async fn image_for(
        &self,
        name: &str,
        language: Language,
        watch: &Watch,
    ) -> Result<TemplateImage, TemplateError> {
        let source = read_template(self.launcher.config(), name).await?;
        let template_language = source.template.base.language();
        if template_language != language {
            return Err(TemplateError::WrongLanguage {
                name: name.to_string(),
                language: template_language.name(),
                asked: language.name(),
            });
        }
        let built_in = self
            .ensure_built(&source, false, |step| {
                watch.progress(format!("template {name}: {step}"))
            })
            .await?;
        Ok(TemplateImage {
            tag: source.tag,
            built_in,
        })
    }

    /// Builds `source` unless its image exists (always with `force`); an
    /// existing one is checked again. The time the build took, when there
    /// was one.
    pub async fn ensure_built(
        &self,
        source: &TemplateSource,
        force: bool,
        on_step: impl FnMut(&str) + Send,
    ) -> Result<Option<Duration>, TemplateError> {
        let lock = self
            .building
            .lock()
            .await
            .entry(source.template.name.clone())
            .or_default()
            .clone();
        let _building = lock.lock().await;
        if !force && self.check_image(source).await?.is_some() {
            return Ok(None);
        }
        let started = Instant::now();
        let engine = self.launcher.engine();
        let builder = ImageBuilder::new(engine.as_ref(), self.launcher.config());
        let unchecked = source.unchecked_tag();
        builder.build_template(source, &unchecked, on_step).await?;
        let tagged = match self.try_runner(source, &unchecked).await {
            Ok(()) => engine
                .tag_image(&unchecked, &source.tag)
                .await
                .map_err(TemplateError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = tagged {
            builder.discard(&unchecked).await;
            return Err(error);
        }
        // Only the tag goes: a forced removal would take the image too (and
        // on Podman, its other tags with it).
        if let Err(error) = engine.remove_image_if_unused(&unchecked).await {
            tracing::warn!(image = %unchecked, %error, "could not remove a checked build's own tag");
        }
        self.remove_older_builds(source).await;
        Ok(Some(started.elapsed()))
    }

    /// The checks a build passes, again on the image under the template's
    /// tag (a check made stricter since it was built applies to it too);
    /// `None` when the image for its current files is not built.
    async fn check_image(&self, source: &TemplateSource) -> Result<Option<ImageFacts>, TemplateError> {
        ImageBuilder::new(self.launcher.engine().as_ref(), self.launcher.config())
            .check_template_image(source, &source.tag)
            .await
    }

    /// Checks a template's built image as a build does, its runner
    /// included; `None` when the image for its current files is not built.
    pub async fn check(&self, source: &TemplateSource) -> Result<Option<ImageFacts>, TemplateError> {
        let Some(built) = self.check_image(source).await? else {
            return Ok(None);
        };
        self.try_runner(source, &source.tag).await?;
        Ok(Some(built))
    }

    /// Starts one sandbox from `image`: its runner must say it is ready (a
    /// template that deleted or broke it is refused). An engine that fails
    /// is the engine's error, not the template's.
    async fn try_runner(&self, source: &TemplateSource, image: &str) -> Result<(), TemplateError> {
        let language = source.template.base.language();
        match self.launcher.launch_from(language, image, Purpose::Pool).await {
            Ok(sandbox) => {
                sandbox.container.remove().await;
                Ok(())
            }
            Err(error @ (DockerError::ContainerGone(_) | DockerError::Protocol(_))) => Err(TemplateError::Refused {
                name: source.template.name.clone(),
                reason: format!(
                    "a sandbox started from its image did not answer ({error}); keep /opt/sandbox and the {} tools of the image it builds on as they are",
                    language.name()
                ),
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the template's earlier builds that nothing uses (a session's
    /// container, or a cached or snapshot image built on one, keeps it).
    async fn remove_older_builds(&self, source: &TemplateSource) {
        let engine = self.launcher.engine();
        let listed = match (
            engine.image_id(&source.tag).await,
            engine.list_images(source.repository()).await,
        ) {
            (Ok(Some(current)), Ok(images)) => images
                .into_iter()
                .filter(|image| image.id != current)
                .collect::<Vec<_>>(),
            (Ok(None), _) => return,
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(template = %source.template.name, %error, "could not list the template's earlier builds");
                return;
            }
        };
        // Told by id: Podman lists tags with a registry in front. Builds
        // being checked (here or by another server) are not earlier.
        for image in listed {
            for tag in image.tags.iter().filter(|tag| !tag.contains(templates::UNCHECKED)) {
                if let Err(error) = engine.remove_image_if_unused(tag).await {
                    tracing::warn!(%tag, %error, "could not remove an earlier template build");
                }
            }
        }
    }

    /// Every template in the templates folder, with its state.
    pub async fn list(&self) -> Vec<TemplateSummary> {
        let config = self.launcher.config().clone();
        let found = tokio::task::spawn_blocking(move || templates::read_all(&config))
            .await
            .unwrap_or_default();
        let mut summaries = Vec::new();
        for (name, source) in found {
            let summary = match source {
                Ok(source) => {
                    let (built, size_bytes, problem) = match self.check_image(&source).await {
                        Ok(Some(facts)) => (true, Some(facts.size_bytes), None),
                        Ok(None) => (false, None, None),
                        Err(error) => (false, None, Some(error.to_string())),
                    };
                    TemplateSummary {
                        name,
                        language: Some(source.template.base.language().name().to_string()),
                        built,
                        size_bytes,
                        problem,
                    }
                }
                Err(error) => TemplateSummary {
                    name,
                    language: None,
                    built: false,
                    size_bytes: None,
                    problem: Some(error.to_string()),
                },
            };
            summaries.push(summary);
        }
        summaries
    }
}

/// Finds and reads template `name` off the async threads (its folder may
/// hold up to 64 MiB).
async fn read_template(config: &Arc<Config>, name: &str) -> Result<TemplateSource, TemplateError> {
    let folder: PathBuf = config.templates_dir.clone();
    let path = folder.join(name).display().to_string();
    let (config, owned_name) = (config.clone(), name.to_string());
    tokio::task::spawn_blocking(move || Template::find(&folder, &owned_name)?.read(&config))
        .await
        .map_err(|error| TemplateError::Read {
            name: name.to_string(),
            path,
            error: std::io::Error::other(error),
        })?
}
