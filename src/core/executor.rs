//! The executor: validates an execute and runs it either in a warm pooled
//! container (stateless: one execute per container, removed afterwards) or
//! in a session. Owns the pool and the session manager and their
//! background tasks.

use super::cache::{CachedImage, PackageCache};
use super::launcher::{Launcher, Purpose};
use super::pool::ContainerPool;
use super::run::{
    ExecuteRequest, ExecutionOutcome, RunFailure, cancelled_outcome, host_timeout_outcome, not_started_outcome,
    outcome, run_program,
};
use super::session::{NewSession, SessionInfo, SessionManager};
use super::watch::Watch;
use crate::config::{Config, HostFolder};
use crate::docker::DockerEngine;
use crate::error::{ExecuteError, PackageError, SessionError};
use crate::images;
use crate::runtime::Language;
use crate::security::audit::{AuditLog, MAX_FIELD_CHARS, hash_hex};
use crate::security::policy::{self, PolicyMode};
use crate::security::seccomp::SeccompProfile;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

/// A `sandbox_session create` request.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub name: String,
    pub language: Language,
    pub ttl: Option<u64>,
    /// Packages to start with (served from the package cache).
    pub packages: Vec<String>,
    /// Python: the data-science image.
    pub ml: bool,
    /// Names of configured host folders to mount.
    pub mounts: Vec<String>,
    /// A built-in seccomp profile name; `None` keeps the configured one.
    pub seccomp: Option<String>,
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

/// Runs code in sandbox containers.
pub struct Executor {
    engine: Arc<DockerEngine>,
    config: Arc<Config>,
    launcher: Arc<Launcher>,
    pool: Arc<ContainerPool>,
    sessions: Arc<SessionManager>,
    cache: Arc<PackageCache>,
    audit: Arc<AuditLog>,
    background: TaskTracker,
}

impl Executor {
    pub fn new(engine: Arc<DockerEngine>, config: Arc<Config>, instance_id: String) -> Self {
        let launcher = Arc::new(Launcher::new(engine.clone(), config.clone(), instance_id));
        let audit = Arc::new(AuditLog::new(config.audit.clone()));
        Self {
            engine,
            config,
            pool: ContainerPool::new(launcher.clone()),
            sessions: SessionManager::new(launcher.clone(), audit.clone()),
            audit,
            cache: PackageCache::new(launcher.clone()),
            launcher,
            background: TaskTracker::new(),
        }
    }

    /// Starts pool warming and session garbage collection in the background.
    pub fn start_background_tasks(&self) {
        self.pool.start_maintenance();
        self.sessions.start_gc();
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn pool(&self) -> &ContainerPool {
        &self.pool
    }

    pub fn sessions(&self) -> &SessionManager {
        &self.sessions
    }

    pub fn cache(&self) -> &PackageCache {
        &self.cache
    }

    /// The audit log (shared by every server on this machine).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Runs the code policy: records each match as a violation and, in
    /// block mode, refuses the code.
    fn check_policy(&self, request: &ExecuteRequest) -> Result<(), ExecuteError> {
        let mode = self.config.policy;
        if mode == PolicyMode::Off {
            return Ok(());
        }
        let violations = policy::check(request.language, &request.code);
        for violation in &violations {
            tracing::warn!(rule = violation.rule, "code policy violation");
            self.audit.record(
                "violation",
                serde_json::json!({
                    "rule": violation.rule,
                    "description": violation.description,
                    "matched": violation.matched,
                    "language": request.language.name(),
                    "session": request.session.as_deref().map(|name| name.chars().take(MAX_FIELD_CHARS).collect::<String>()),
                    "code_sha256": hash_hex(request.code.as_bytes()),
                    "mode": mode.name(),
                    "blocked": mode == PolicyMode::Block,
                }),
            );
        }
        match violations.into_iter().next() {
            Some(violation) if mode == PolicyMode::Block => Err(ExecuteError::PolicyBlocked {
                rule: violation.rule,
                description: violation.description,
            }),
            _ => Ok(()),
        }
    }

    /// File operations on sessions.
    pub fn files(&self) -> super::files::Files<'_> {
        super::files::Files {
            sessions: &self.sessions,
            max_file_bytes: self.config.max_file_bytes,
        }
    }

    /// The image to start `language` from: the standard one, or the
    /// data-science image with `ml` (Python only; it must have been built).
    pub async fn base_image(&self, language: Language, ml: bool) -> Result<String, PackageError> {
        if !ml {
            return Ok(images::tag_for(language, &self.config));
        }
        if language != Language::Python {
            return Err(PackageError::MlNotPython);
        }
        let image = images::ml_tag(&self.config);
        if !self.engine.image_exists(&image).await? {
            return Err(PackageError::MlImageMissing);
        }
        Ok(image)
    }

    /// Validates a caller's timeout (milliseconds), applying the default.
    pub fn timeout_ms(&self, requested: Option<u64>) -> Result<u64, ExecuteError> {
        let timeout = requested.unwrap_or(self.config.default_timeout_ms);
        if timeout == 0 || timeout > self.config.max_timeout_ms {
            return Err(ExecuteError::InvalidTimeout {
                given: timeout,
                max: self.config.max_timeout_ms,
                default: self.config.default_timeout_ms,
            });
        }
        Ok(timeout)
    }

    /// Creates a session, from the cached image of `packages` when given
    /// (installing them on a cache miss) and the data-science image with `ml`.
    pub async fn create_session(
        &self,
        request: &SessionRequest,
        watch: &Watch,
    ) -> Result<(SessionInfo, Option<CachedImage>), ExecuteError> {
        let name = request.name.as_str();
        self.sessions.check_create(name, request.ttl).await?;
        let folders = self.host_folders(&request.mounts)?;
        let seccomp = self.session_seccomp(request.seccomp.as_deref())?;
        let mut image = self.base_image(request.language, request.ml).await?;
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
            })
            .await?;
        if watch.is_cancelled() {
            // The caller gave up and will never learn the name is taken.
            if let Err(error) = self.sessions.destroy(name).await {
                tracing::warn!(session = name, %error, "could not remove a session whose create was cancelled");
            }
            return Err(ExecuteError::Cancelled);
        }
        Ok((session, cached))
    }

    /// The seccomp profile a session asked for: a built-in one no weaker
    /// than the configured profile (a model must not loosen the sandbox).
    fn session_seccomp(&self, asked: Option<&str>) -> Result<SeccompProfile, SessionError> {
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
    fn host_folders(&self, names: &[String]) -> Result<Vec<HostFolder>, SessionError> {
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

    /// Installs packages into a session, or prepares the cached image of
    /// (`language`, `packages`) when no session is given.
    pub async fn install(
        &self,
        packages: &[String],
        session: Option<&str>,
        language: Option<Language>,
        ml: bool,
        watch: &Watch,
    ) -> Result<InstallReport, ExecuteError> {
        match session {
            Some(name) => {
                let (session_language, image, volume) = self.sessions.install_target(name).await?;
                if let Some(language) = language
                    && language != session_language
                {
                    return Err(SessionError::LanguageMismatch {
                        name: name.to_string(),
                        session_language: session_language.name().to_string(),
                    }
                    .into());
                }
                let installed = self
                    .cache
                    .install_into_session(session_language, &image, &volume, packages, watch)
                    .await?;
                Ok(InstallReport {
                    language: session_language,
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
                let base = self.base_image(language, ml).await?;
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

    /// Runs `request` in its session, or in a fresh pooled container.
    pub async fn execute(&self, request: &ExecuteRequest) -> Result<ExecutionOutcome, ExecuteError> {
        if request.code.trim().is_empty() {
            return Err(ExecuteError::EmptyCode);
        }
        for (name, value) in &request.env {
            if !valid_env_name(name) {
                return Err(ExecuteError::InvalidEnvName(name.clone()));
            }
            if value.contains('\0') {
                return Err(ExecuteError::InvalidEnvValue(name.clone()));
            }
        }
        if request.session.is_some() && (!request.packages.is_empty() || request.ml) {
            return Err(PackageError::SessionPackages.into());
        }
        self.check_policy(request)?;
        let result = match &request.session {
            Some(session) => self.sessions.execute(session, request).await,
            None => self.execute_stateless(request).await,
        };
        if let Err(ExecuteError::Docker(error)) = &result {
            self.engine.reset_if_disconnected(error).await;
        }
        result
    }

    async fn execute_stateless(&self, request: &ExecuteRequest) -> Result<ExecutionOutcome, ExecuteError> {
        let started = Instant::now();
        let mut notes = Vec::new();
        let sandbox = if request.packages.is_empty() && !request.ml {
            self.pool.acquire(request.language).await?
        } else {
            let mut image = self.base_image(request.language, request.ml).await?;
            if !request.packages.is_empty() {
                let cached = self
                    .cache
                    .image_for(request.language, &image, &request.packages, &request.watch)
                    .await?;
                if !cached.hit {
                    notes.push(format!(
                        "Installed {} in {:.1} s; the set is cached, so the next execute with the same packages starts at once.",
                        cached.packages.join(", "),
                        cached.elapsed.as_secs_f64()
                    ));
                }
                image = cached.image;
            }
            self.launcher
                .launch_from(request.language, &image, Purpose::Pool)
                .await?
        };
        let acquired = started.elapsed();
        let program = match sandbox.kernel {
            Some(_) => request.language.prepare_cell(&request.code),
            None => request.language.prepare(&request.code),
        };
        let result = run_program(
            &sandbox.connection,
            &program,
            sandbox.kernel,
            request.run_spec(),
            &self.config,
        )
        .await;
        let container_id = sandbox.container.id().to_string();
        self.background.spawn(sandbox.container.remove());
        tracing::debug!(
            container = %container_id,
            acquire_ms = acquired.as_secs_f64() * 1000.0,
            total_ms = started.elapsed().as_secs_f64() * 1000.0,
            "stateless execute finished"
        );
        match result {
            Ok(run) => Ok(outcome(&self.config, request, run, notes)),
            Err(RunFailure::HostTimeout) => Ok(host_timeout_outcome(request)),
            Err(RunFailure::Cancelled) => Ok(cancelled_outcome(request)),
            Err(RunFailure::NotStarted) => Ok(not_started_outcome(request)),
            Err(RunFailure::Gone(error)) => Err(ExecuteError::Docker(error)),
        }
    }

    /// Stops the background tasks' work, removes idle pooled containers, and
    /// waits for container removals still under way. Sessions are kept.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
        self.background.close();
        if tokio::time::timeout(Duration::from_secs(10), self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sandbox containers were still being removed at shutdown");
        }
    }
}

/// Environment variable names: letters, digits, `_`, not starting with a digit.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_checked() {
        assert!(valid_env_name("PATH"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A=B"));
        assert!(!valid_env_name(""));
        assert!(!valid_env_name("A B"));
    }

    #[tokio::test]
    async fn timeouts_are_validated_with_the_default_applied() {
        let executor = Executor::new(
            Arc::new(DockerEngine::new()),
            Arc::new(Config::default()),
            "test".into(),
        );
        assert_eq!(executor.timeout_ms(None).unwrap(), 30_000);
        assert_eq!(executor.timeout_ms(Some(2000)).unwrap(), 2000);
        assert!(executor.timeout_ms(Some(0)).is_err());
        assert!(executor.timeout_ms(Some(10_000_000)).is_err());
    }
}
