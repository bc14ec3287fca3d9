//! Session create as the executor does it: the image (standard,
//! data-science or a cached package image), the host folders and the
//! seccomp profile a session may have, checked before the container exists.

use super::Executor;
use crate::config::HostFolder;
use crate::core::cache::CachedImage;
use crate::core::error::{ExecuteError, SessionError};
use crate::core::run::ImageChoice;
use crate::core::session::{NewSession, SessionInfo};
use crate::core::watch::Watch;
use crate::runtime::Language;
use crate::security::seccomp::SeccompProfile;

/// A `sandbox_session create` request.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub name: String,
    pub language: Language,
    pub ttl: Option<u64>,
    /// Packages to start with (served from the package cache).
    pub packages: Vec<String>,
    /// The image to start from.
    pub image: ImageChoice,
    /// Names of configured host folders to mount.
    pub mounts: Vec<String>,
    /// A built-in seccomp profile name; `None` keeps the configured one.
    pub seccomp: Option<String>,
    /// Hosts the session asks to reach (`None`: no network at all).
    pub network: Option<Vec<String>>,
}

/// A session just created, and how its image was come by.
#[derive(Debug)]
pub struct CreatedSession {
    pub session: SessionInfo,
    /// Its packages' cached image, when it asked for packages.
    pub cached: Option<CachedImage>,
    /// What was unusual (a template built first).
    pub notes: Vec<String>,
}

impl Executor {
    /// Creates a session, from the cached image of `packages` when given
    /// (installing them on a cache miss), on the image `request` chose.
    pub async fn create_session(
        &self,
        request: &SessionRequest,
        watch: &Watch,
    ) -> Result<CreatedSession, ExecuteError> {
        let name = request.name.as_str();
        self.sessions.check_create(name, request.ttl).await?;
        let folders = self.host_folders(&request.mounts)?;
        let seccomp = self.session_seccomp(request.seccomp.as_deref())?;
        let grants = match &request.network {
            Some(requested) => Some(self.egress.review(requested, &[])?),
            None => None,
        };
        let mut notes = Vec::new();
        let mut image = self
            .base_image(request.language, &request.image, watch, &mut notes)
            .await?;
        let mut cached = None;
        if !request.packages.is_empty() {
            let found = self
                .cache
                .image_for(request.language, &image, &request.packages, watch)
                .await?;
            image = found.image.clone();
            cached = Some(found);
        }
        let session = self
            .sessions
            .create(NewSession {
                name,
                language: request.language,
                image: &image,
                ttl: request.ttl,
                folders: &folders,
                seccomp,
                grants,
            })
            .await?;
        if watch.is_cancelled() {
            // The caller gave up and will never learn the name is taken.
            if let Err(error) = self.sessions.destroy(name).await {
                tracing::warn!(session = name, %error, "could not remove a session whose create was cancelled");
            }
            return Err(ExecuteError::Cancelled);
        }
        Ok(CreatedSession { session, cached, notes })
    }

    /// The seccomp profile a session asked for: a built-in one no weaker
    /// than the configured profile (a model must not loosen the sandbox).
    pub(super) fn session_seccomp(&self, asked: Option<&str>) -> Result<SeccompProfile, SessionError> {
        let configured = &self.config.seccomp;
        let Some(name) = asked else {
            return Ok(configured.clone());
        };
        let profile = SeccompProfile::built_in(name).ok_or_else(|| SessionError::UnknownSeccomp(name.to_string()))?;
        if profile.strictness() < configured.strictness() {
            return Err(SessionError::WeakerSeccomp {
                asked: name.to_string(),
                configured: configured.name(),
            });
        }
        Ok(profile)
    }

    /// The configured host folders named in `names`, each checked to exist.
    pub(super) fn host_folders(&self, names: &[String]) -> Result<Vec<HostFolder>, SessionError> {
        let mut folders: Vec<HostFolder> = Vec::new();
        for name in names {
            let folder = self
                .config
                .host_folders
                .iter()
                .find(|folder| &folder.name == name)
                .ok_or_else(|| SessionError::UnknownHostFolder {
                    name: name.clone(),
                    configured: if self.config.host_folders.is_empty() {
                        "none".to_string()
                    } else {
                        self.config
                            .host_folders
                            .iter()
                            .map(|folder| folder.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                })?;
            // Checked here, on this machine, when the engine is local: the
            // engine would otherwise fail with a less helpful message, and
            // would follow links in the path.
            if self.engine.is_local() {
                check_host_folder(folder)?;
            }
            if !folders.iter().any(|known| known.name == folder.name) {
                folders.push(folder.clone());
            }
        }
        Ok(folders)
    }
}

/// A host folder may be mounted when it is a folder whose real path is its
/// configured path: no component is a symbolic link, so what the engine
/// mounts is what the session lists (no configured folder lies inside a
/// writable one, so code cannot plant a link in the path meanwhile).
pub fn check_host_folder(folder: &HostFolder) -> Result<(), SessionError> {
    let path = folder.host_path.display().to_string();
    let missing = || SessionError::HostFolderMissing {
        name: folder.name.clone(),
        path: path.clone(),
    };
    let real = std::fs::canonicalize(&folder.host_path).map_err(|_| missing())?;
    if real != folder.host_path {
        return Err(SessionError::HostFolderLinked {
            name: folder.name.clone(),
            path: path.clone(),
            real: real.display().to_string(),
        });
    }
    if !real.is_dir() {
        return Err(missing());
    }
    Ok(())
}
