//! Package installs as the executor does them: into a session's packages
//! volume, or into the cached image of a language and package set.

use super::Executor;
use crate::core::error::{ExecuteError, PackageError, SessionError};
use crate::core::run::ImageChoice;
use crate::core::watch::Watch;
use crate::runtime::Language;

/// A `sandbox_install` request.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    pub packages: Vec<String>,
    /// Install into this session; without one, prepare the cached image.
    pub session: Option<String>,
    /// Required without a session; with one, it must be the session's.
    pub language: Option<Language>,
    /// Without a session: the image to cache on top of.
    pub image: ImageChoice,
}

/// What an install did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    pub language: Language,
    pub packages: Vec<String>,
    pub session: Option<String>,
    /// The cached image (installs without a session).
    pub image: Option<String>,
    pub cache_hit: bool,
    pub elapsed: std::time::Duration,
    /// The package manager's output (the end of it).
    pub output: String,
}

impl Executor {
    /// Installs packages into a session, or prepares the cached image of
    /// (`language`, `packages`) when no session is given.
    pub async fn install(&self, request: &InstallRequest, watch: &Watch) -> Result<InstallReport, ExecuteError> {
        let packages = &request.packages;
        let language = request.language;
        match request.session.as_deref() {
            Some(_) if request.image != ImageChoice::Standard => Err(PackageError::ImageInSession.into()),
            Some(name) => {
                let target = self.sessions.install_target(name).await?;
                if let Some(language) = language
                    && language != target.language
                {
                    return Err(SessionError::LanguageMismatch {
                        name: name.to_string(),
                        session_language: target.language.name().to_string(),
                    }
                    .into());
                }
                let installed = self.cache.install_into_session(&target, packages, watch).await?;
                Ok(InstallReport {
                    language: target.language,
                    packages: installed.packages,
                    session: Some(name.to_string()),
                    image: None,
                    cache_hit: false,
                    elapsed: installed.elapsed,
                    output: installed.output,
                })
            }
            None => {
                let language = language.ok_or(PackageError::LanguageRequired)?;
                let base = self
                    .base_image(language, &request.image, watch, &mut Vec::new())
                    .await?;
                let cached = self.cache.image_for(language, &base, packages, watch).await?;
                Ok(InstallReport {
                    language,
                    packages: cached.packages,
                    session: None,
                    image: Some(cached.image),
                    cache_hit: cached.hit,
                    elapsed: cached.elapsed,
                    output: cached.output.unwrap_or_default(),
                })
            }
        }
    }
}
