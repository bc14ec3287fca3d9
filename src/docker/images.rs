//! Image operations on the engine: inspect, pull, build from an in-memory
//! context, and import a root filesystem tarball.

use super::DockerError;
use super::{DockerEngine, is_not_found, list_again_while};
use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CommitContainerOptionsBuilder, CreateImageOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptions, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::collections::HashMap;

/// How many times a listing that raced a removal is asked again.
const LIST_ATTEMPTS: u32 = 5;

/// A build context: files (path, mode, content) packed into a tar in memory.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    files: Vec<(String, u32, Vec<u8>)>,
}

impl BuildContext {
    pub fn add(&mut self, path: &str, content: &[u8]) {
        self.add_with_mode(path, 0o644, content);
    }

    /// Adds a file with its permission bits (an executable script stays one).
    pub fn add_with_mode(&mut self, path: &str, mode: u32, content: &[u8]) {
        self.files.push((path.to_string(), mode, content.to_vec()));
    }

    fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, mode, content) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, content.as_slice())?;
        }
        builder.into_inner()
    }
}

/// A local image, as listed.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size_bytes: i64,
    pub labels: HashMap<String, String>,
}

/// What an image says about how its containers start, as a template check
/// reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageFacts {
    /// `USER` (empty: root).
    pub user: String,
    pub entrypoint: Vec<String>,
    /// `VOLUME` mount points.
    pub volumes: Vec<String>,
    /// `HEALTHCHECK` test, if any.
    pub healthcheck: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Layer digests, bottom first.
    pub layers: Vec<String>,
    pub size_bytes: i64,
}

/// Progress of a build, as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A line of build output (`Step 2/5 : RUN …`, command output).
    Output(String),
}

impl DockerEngine {
    /// True when the image exists locally.
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        let client = self.client().await?;
        match client.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Id (`sha256:…`) of a local image.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        let client = self.client().await?;
        match client.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// How an image's containers start, and its layers; `None` when absent.
    pub async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, DockerError> {
        let client = self.client().await?;
        let inspect = match client.inspect_image(image).await {
            Ok(inspect) => inspect,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let config = inspect.config.unwrap_or_default();
        Ok(Some(ImageFacts {
            user: config.user.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            volumes: config.volumes.unwrap_or_default(),
            healthcheck: config.healthcheck.and_then(|check| check.test).unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            layers: inspect.root_fs.and_then(|root| root.layers).unwrap_or_default(),
            size_bytes: inspect.size.unwrap_or(0),
        }))
    }

    /// Commits a container's filesystem as `repository:tag`, with labels.
    pub async fn commit(
        &self,
        container_id: &str,
        repository: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, DockerError> {
        let client = self.client().await?;
        let options = CommitContainerOptionsBuilder::default()
            .container(container_id)
            .repo(repository)
            .tag(tag)
            .pause(true)
            .build();
        let config = ContainerConfig {
            labels: Some(labels.clone()),
            ..Default::default()
        };
        Ok(client.commit_container(options, config).await?.id)
    }

    /// Local images whose reference matches `reference` (e.g. `repo/*`).
    pub async fn list_images(&self, reference: &str) -> Result<Vec<ImageInfo>, DockerError> {
        let client = self.client().await?;
        let options = ListImagesOptionsBuilder::default()
            .filters(&HashMap::from([("reference".to_string(), vec![reference.to_string()])]))
            .build();
        // Podman fails a listing that meets an image removed while it
        // lists ("image not known"): asked again.
        let removed_meanwhile = |error: &bollard::errors::Error| {
            matches!(error, bollard::errors::Error::DockerResponseServerError { message, .. }
                if message.contains("image not known"))
        };
        let listed = list_again_while(LIST_ATTEMPTS, removed_meanwhile, || {
            client.list_images(Some(options.clone()))
        })
        .await?;
        Ok(listed
            .into_iter()
            .map(|image| ImageInfo {
                id: image.id,
                tags: image.repo_tags,
                created: image.created,
                size_bytes: image.size,
                labels: image.labels,
            })
            .collect())
    }

    /// Gives `image` the tag `target` (`repository:tag`).
    pub async fn tag_image(&self, image: &str, target: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let (repository, tag) = target.rsplit_once(':').unwrap_or((target, "latest"));
        let options = TagImageOptionsBuilder::default().repo(repository).tag(tag).build();
        Ok(client.tag_image(image, Some(options)).await?)
    }

    /// Removes a tag, and the image when no container uses it and nothing
    /// builds on it (then only the tag goes); false when the engine
    /// refused because a container uses it.
    pub async fn remove_image_if_unused(&self, image: &str) -> Result<bool, DockerError> {
        let client = self.client().await?;
        match client.remove_image(image, None::<RemoveImageOptions>, None).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes an image by tag or id; an absent image is fine.
    pub async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match client.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Pulls an image from its registry.
    pub async fn pull(&self, image: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = CreateImageOptionsBuilder::default().from_image(image).build();
        let mut stream = client.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            item?;
        }
        Ok(())
    }

    /// Builds `tag` from `context`, passing each line of output to `on_event`.
    pub async fn build(
        &self,
        tag: &str,
        context: &BuildContext,
        build_args: &HashMap<String, String>,
        labels: &HashMap<String, String>,
        mut on_event: impl FnMut(BuildEvent),
    ) -> Result<(), DockerError> {
        let client = self.client().await?;
        let tar = context
            .to_tar()
            .map_err(|e| DockerError::Protocol(format!("cannot pack the build context: {e}")))?;
        let options = BuildImageOptionsBuilder::default()
            .t(tag)
            .rm(true)
            .forcerm(true)
            .buildargs(build_args)
            .labels(labels)
            .build();
        let mut stream = client.build_image(options, None, Some(bollard::body_full(Bytes::from(tar))));
        while let Some(item) = stream.next().await {
            let info = item?;
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_else(|| "unknown build error".into());
                return Err(DockerError::Protocol(message));
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|line| !line.trim().is_empty()) {
                    on_event(BuildEvent::Output(line.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Imports a root filesystem tarball as `repository:tag` (`docker import`).
    pub async fn import_rootfs<S>(&self, repository: &str, tag: &str, tarball: S) -> Result<(), DockerError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let client = self.client().await?;
        // The tag goes in `repo`: Podman's Docker-compatible import ignores
        // the `tag` parameter (the image would be `repository:latest`).
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(&format!("{repository}:{tag}"))
            .build();
        let mut stream = client.create_image(Some(options), Some(bollard::body_try_stream(tarball)), None);
        while let Some(item) = stream.next().await {
            let info = item?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Protocol(
                    detail.message.unwrap_or_else(|| "import failed".into()),
                ));
            }
        }
        Ok(())
    }
}
