//! The executor: validates an execute and runs it either in a warm pooled
//! container (stateless: one execute per container, removed afterwards) or
//! in a session. Owns the pool and the session manager and their
//! background tasks.

mod create_session;
mod fork_session;
mod install;
mod jobs;

pub use create_session::{CreatedSession, SessionRequest, check_host_folder};
pub use fork_session::ForkRequest;
pub use install::{InstallReport, InstallRequest};

use super::background::Background;
use super::cache::PackageCache;
use super::egress::{EgressGateway, LeasedNetwork, Owner};
use super::jobs::{Detachable, Executed, JobPlace, JobTable, Ran};
use super::launcher::{Launcher, Purpose, Sandbox};
use super::pool::ContainerPool;
use super::run::{
    ExecuteRequest, ImageChoice, RunFailure, cancelled_outcome, host_timeout_outcome, not_started_outcome, outcome,
};
use super::session::SessionManager;
use super::templates::TemplateImages;
use super::watch::Watch;
use crate::config::Config;
use crate::core::error::{ExecuteError, PackageError};
use crate::docker::SandboxEngine;
use crate::images;
use crate::images::templates::{Template, TemplateError};
use crate::runtime::Language;
use crate::security::audit::{self, AuditEvent, AuditLog, JobEvent, MAX_FIELD_CHARS, hash_hex};
use crate::security::egress::HostPattern;
use crate::security::policy::{self, PolicyMode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long shutdown waits for background work (container starts and
/// removals) before giving up on it.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(15);

/// Runs code in sandbox containers.
pub struct Executor {
    engine: Arc<dyn SandboxEngine>,
    config: Arc<Config>,
    launcher: Arc<Launcher>,
    pool: Arc<ContainerPool>,
    sessions: Arc<SessionManager>,
    cache: Arc<PackageCache>,
    templates: TemplateImages,
    audit: Arc<AuditLog>,
    egress: Arc<EgressGateway>,
    jobs: Arc<JobTable>,
    background: Background,
}

impl Executor {
    pub fn new(engine: Arc<dyn SandboxEngine>, config: Arc<Config>, instance_id: String) -> Self {
        let launcher = Arc::new(Launcher::new(engine.clone(), config.clone(), instance_id));
        let jobs = Arc::new(JobTable::new(config.jobs.clone()));
        let audit = Arc::new(AuditLog::new(config.audit.clone()));
        let egress = Arc::new(EgressGateway::new(
            engine.clone(),
            config.clone(),
            launcher.instance_id().to_string(),
            audit.clone(),
        ));
        Self {
            engine,
            config,
            pool: ContainerPool::new(launcher.clone()),
            sessions: SessionManager::new(launcher.clone(), audit.clone(), egress.clone()),
            cache: PackageCache::new(launcher.clone(), egress.clone()),
            templates: TemplateImages::new(launcher.clone()),
            egress,
            audit,
            launcher,
            jobs,
            background: Background::new(),
        }
    }

    /// Starts pool warming and session garbage collection in the
    /// background, and, when the user allowed hosts (`egress.allow`), the
    /// egress proxy with spare sandbox networks.
    pub fn start_background_tasks(&self) {
        self.pool.start_maintenance(&self.background);
        self.sessions.start_gc(&self.background);
        self.sessions.start_spares(&self.background);
        self.start_job_sweep();
        if !self.config.egress.allow.is_empty() {
            self.egress.warm();
        }
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
            self.audit.record(AuditEvent::Violation(audit::Violation {
                rule: violation.rule.to_string(),
                description: violation.description.to_string(),
                matched: violation.matched.clone(),
                language: request.language.name().to_string(),
                session: request
                    .session
                    .as_deref()
                    .map(|name| name.chars().take(MAX_FIELD_CHARS).collect()),
                code_sha256: hash_hex(request.code.as_bytes()),
                mode: mode.name().to_string(),
                blocked: mode == PolicyMode::Block,
            }));
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

    /// The image to start `language` from: the standard one, the
    /// data-science image (Python only; it must have been built), or a
    /// template's (built first when its files changed, which `notes` says).
    pub async fn base_image(
        &self,
        language: Language,
        choice: &ImageChoice,
        watch: &Watch,
        notes: &mut Vec<String>,
    ) -> Result<String, ExecuteError> {
        match choice {
            ImageChoice::Standard => Ok(images::tag_for(language, &self.config)),
            ImageChoice::Ml => {
                if language != Language::Python {
                    return Err(PackageError::MlNotPython.into());
                }
                let image = images::ml_tag(&self.config);
                if !self.engine.image_exists(&image).await? {
                    return Err(PackageError::MlImageMissing.into());
                }
                Ok(image)
            }
            ImageChoice::Template(name) => {
                let image = self.templates.image_for(name, language, watch).await?;
                if let Some(took) = image.built_in {
                    notes.push(format!(
                        "Built template `{name}` in {:.1} s; its image is kept and reused until the template's files change.",
                        took.as_secs_f64()
                    ));
                }
                Ok(image.tag)
            }
        }
    }

    /// The language of the template `choice` names, if it names one.
    pub fn template_language(&self, choice: &ImageChoice) -> Result<Option<Language>, TemplateError> {
        let ImageChoice::Template(name) = choice else {
            return Ok(None);
        };
        Ok(Some(Template::find(&self.config.templates_dir, name)?.base.language()))
    }

    /// The user's templates.
    pub fn templates(&self) -> &TemplateImages {
        &self.templates
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

    /// Runs `request` in its session, or in a fresh pooled container; past
    /// its detach deadline (at once with `background`) it goes on as a job.
    pub async fn execute(&self, request: &ExecuteRequest) -> Result<Executed, ExecuteError> {
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
        if request.session.is_some() && (!request.packages.is_empty() || request.image != ImageChoice::Standard) {
            return Err(PackageError::SessionPackages.into());
        }
        if request.session.is_some() && request.network.is_some() {
            return Err(ExecuteError::NetworkInSession);
        }
        self.check_policy(request)?;
        let result = match &request.session {
            Some(session) => self.sessions.execute(session, request, &self.jobs).await,
            None => self.execute_stateless(request).await,
        };
        if let Err(ExecuteError::Docker(error)) = &result {
            self.engine.reset_if_disconnected(error).await;
        }
        if let Ok(Executed::Running(progress)) = &result {
            let event = if request.background {
                JobEvent::Started {
                    job: progress.info.job.clone(),
                    language: request.language.name().to_string(),
                }
            } else {
                JobEvent::Detached {
                    job: progress.info.job.clone(),
                    language: request.language.name().to_string(),
                }
            };
            self.audit.record(AuditEvent::Job(event));
        }
        result
    }

    async fn execute_stateless(&self, request: &ExecuteRequest) -> Result<Executed, ExecuteError> {
        let started = Instant::now();
        let mut notes = Vec::new();
        let grants = match &request.network {
            Some(requested) => Some(self.egress.review(requested, &[])?),
            None => None,
        };
        let (sandbox, network) = self.stateless_sandbox(request, grants, &mut notes).await?;
        let acquired = started.elapsed();
        let program = match sandbox.kernel {
            Some(kernel) => request.language.prepare_pooled(kernel, &request.code, &request.env),
            None => request.language.prepare(&request.code),
        };
        let asking = network.as_ref().and_then(|network| {
            self.egress.asking(
                network.owner(),
                &request.asker,
                Duration::from_millis(request.timeout_ms),
            )
        });
        let ran = Detachable {
            table: &self.jobs,
            config: &self.config,
            connection: sandbox.connection.clone(),
            request,
            program,
            kernel: sandbox.kernel,
            place: JobPlace::Stateless,
        }
        .run()
        .await;
        drop(asking);
        let container_id = sandbox.container.id().to_string();
        if let (Ok(Ran::Ended(_)), Some(network)) = (&ran, &network) {
            // What the code met at the proxy, before its network goes.
            notes.extend(network.refusals(&self.egress).await);
        }
        let egress = self.egress.clone();
        let container = sandbox.container;
        // A container with network goes at once: its grants end with the call.
        let waits_for_a_pause = network.is_none();
        let remove = async move {
            container.remove().await;
            if let Some(network) = network {
                network.close(&egress).await;
            }
        };
        // Removed in the background, after the stateless calls that keep
        // coming (see ContainerPool::until_calls_pause). Meanwhile its
        // runner holds it up: the end of the stream would end the container
        // at once, and the engine's work of ending it take the CPU those
        // calls need. What the code left running ends now (retire).
        let pool = self.pool.clone();
        let connection = sandbox.connection;
        let remove_later = |remove| async move {
            if waits_for_a_pause {
                connection.retire().await;
                pool.until_calls_pause().await;
            }
            remove.await;
            drop(connection);
        };
        let result = match ran {
            Ok(Ran::Ended(result)) => result,
            Ok(Ran::Job(started)) => {
                // Collecting the job removes it, without waiting.
                started.job.set_cleanup(Box::pin(remove));
                return Ok(Executed::Running(started.progress(request.language, notes)));
            }
            Err(error) => {
                self.background.spawn(remove_later(remove));
                return Err(error);
            }
        };
        self.background.spawn(remove_later(remove));
        tracing::debug!(
            container = %container_id,
            acquire_ms = acquired.as_secs_f64() * 1000.0,
            total_ms = started.elapsed().as_secs_f64() * 1000.0,
            "stateless execute finished"
        );
        let done = |outcome| Ok(Executed::Done(outcome));
        match result {
            Ok(run) => done(outcome(&self.config, request, run, notes)),
            Err(RunFailure::HostTimeout) => done(host_timeout_outcome(request)),
            Err(RunFailure::Cancelled) => done(cancelled_outcome(request)),
            Err(RunFailure::NotStarted) => done(not_started_outcome(request)),
            Err(failure) => Err(failure.into()),
        }
    }

    /// A fresh sandbox for a stateless execute: a warm one from the pool,
    /// or one started from the cached image of its packages; with `grants`,
    /// on a sandbox network of its own, made once the image is ready.
    async fn stateless_sandbox(
        &self,
        request: &ExecuteRequest,
        grants: Option<Vec<HostPattern>>,
        notes: &mut Vec<String>,
    ) -> Result<(Sandbox, Option<LeasedNetwork>), ExecuteError> {
        if request.packages.is_empty() && request.image == ImageChoice::Standard && grants.is_none() {
            return Ok((self.pool.acquire(request.language).await?, None));
        }
        let mut image = self
            .base_image(request.language, &request.image, &request.watch, notes)
            .await?;
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
        let Some(grants) = grants else {
            let sandbox = self
                .launcher
                .launch_from(request.language, &image, Purpose::Pool)
                .await?;
            return Ok((sandbox, None));
        };
        let network = LeasedNetwork::open(&self.egress, Owner::Execute).await?;
        let purpose = Purpose::Networked {
            network: &network.network,
        };
        let sandbox = match self.launcher.launch_from(request.language, &image, purpose).await {
            Ok(sandbox) => sandbox,
            Err(error) => {
                network.close(&self.egress).await;
                return Err(error.into());
            }
        };
        network.bind(&self.egress, sandbox.container.id(), grants);
        Ok((sandbox, Some(network)))
    }

    /// Stops the background tasks, removes idle pooled containers, and
    /// waits for container starts and removals still under way. Sessions
    /// are kept.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
        // Stateless jobs go with this server (their sandboxes are its own);
        // a session's job stays in the session.
        for job in self.jobs.all() {
            if job.place == JobPlace::Stateless {
                if let Some(run) = job.run() {
                    run.watch.cancel.cancel();
                }
                self.jobs.remove(&job.id).await;
            }
        }
        let tasks_done = self.background.shutdown(SHUTDOWN_LIMIT).await;
        let removals_done = self.engine.wait_for_removals(SHUTDOWN_LIMIT).await;
        self.egress.shutdown().await;
        if !(tasks_done && removals_done) {
            tracing::warn!("some sandbox containers were still being started or removed at shutdown");
        }
    }
}

/// Environment variable names: letters, digits, `_`, not starting with a digit.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
        let config = Arc::new(Config::default());
        let executor = Executor::new(
            Arc::new(crate::docker::DockerEngine::new(&config.state_dir)),
            config,
            "test".into(),
        );
        assert_eq!(executor.timeout_ms(None).unwrap(), 30_000);
        assert_eq!(executor.timeout_ms(Some(2000)).unwrap(), 2000);
        assert!(executor.timeout_ms(Some(0)).is_err());
        assert!(executor.timeout_ms(Some(10_000_000)).is_err());
    }
}
