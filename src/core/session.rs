//! Named, stateful sessions. A session is a long-lived container whose
//! kernel keeps interpreter state between executes (Python, JavaScript,
//! TypeScript, Bash) and whose `/workspace` is a named volume (every
//! language keeps its files). Docker is the registry: a session exists
//! exactly when its labelled container `multilang-sandbox-session-<name>`
//! exists, so a restarted server, or a second server running beside this
//! one, sees and uses the same sessions. Labels hold what never changes
//! (name, language, created, ttl); the [`SessionStore`] holds activity and
//! extensions. Executes in one session are serialized.

use super::connection::{RequestFailure, RunnerConnection};
use super::launcher::{Launcher, Purpose, READY_TIMEOUT};
use super::protocol::RunnerMessage;
use super::run::{
    CANCEL_GRACE, ExecuteRequest, ExecutionOutcome, RunFailure, cancelled_outcome, host_timeout_outcome,
    not_started_outcome, outcome, run_program,
};
use super::session_store::{SessionRecord, SessionStore};
use crate::clock::{rfc3339, unix_now};
use crate::config::{HostFolder, SessionStorage};
use crate::docker::{BindMount, ContainerState, DockerEngine, SandboxInfo, VolumeBacking, VolumeMount, labels};
use crate::error::{DockerError, ExecuteError, SessionError};
use crate::runtime::Language;
use crate::runtime::packages::SESSION_ROOT;
use crate::security::audit::AuditLog;
use crate::security::seccomp::SeccompProfile;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a file operation may wait for the session's runner (and for
/// the session's turn, when it must be resumed or started first).
const FILE_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Prefix of session container and volume names.
const NAME_PREFIX: &str = "multilang-sandbox-session-";
/// The kind label of a session's volumes.
const VOLUME_KIND: &str = "session-workspace";

/// A session as `sandbox_session` and `sandbox_inspect` show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct SessionInfo {
    pub name: String,
    pub language: String,
    /// running, paused, exited, …
    pub state: String,
    /// Creation time, RFC 3339 (UTC).
    pub created: String,
    /// Time of the last execute (or creation), RFC 3339 (UTC).
    pub last_used: String,
    /// When the session will be destroyed if unused, RFC 3339 (UTC).
    pub expires_at: String,
    /// Idle time to live in seconds: each execute pushes expiry to now + ttl.
    pub ttl_seconds: u64,
    /// Seconds until expiry.
    pub ttl_left_seconds: u64,
    /// Docker container id (first 12 characters).
    pub container: String,
    /// Seccomp profile the session runs under (standard, strict, …).
    pub seccomp: String,
    /// Where `/workspace` and `/outputs` live: "memory" (size-limited; lost
    /// when the container stops, as on an engine restart) or "disk".
    pub storage: String,
    /// Host folders mounted into the session (see `mounts` on create).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<SessionMount>,
}

/// A host folder mounted into a session.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SessionMount {
    /// The configured folder's name.
    pub name: String,
    /// Where code sees it, for example "/mnt/data".
    pub path: String,
    /// The folder on the host.
    pub host_path: String,
    /// False: code can read but not change it.
    pub writable: bool,
}

impl SessionMount {
    pub fn from_folder(folder: &HostFolder) -> Self {
        Self {
            name: folder.name.clone(),
            path: folder.mount_point(),
            host_path: folder.host_path.display().to_string(),
            writable: folder.writable,
        }
    }
}

struct SessionHandle {
    container_id: String,
    language: Language,
    /// Serializes executes, and file operations that must resume or start
    /// the container first.
    turn: tokio::sync::Mutex<()>,
    /// This server's connection to the session's runner (file operations
    /// use it while an execute runs).
    connection: Mutex<Option<Arc<RunnerConnection>>>,
    /// A paused session is resumed for a file operation just now.
    resumed_for_files: AtomicBool,
}

impl SessionHandle {
    fn new(container_id: String, language: Language, connection: Option<RunnerConnection>) -> Self {
        Self {
            container_id,
            language,
            turn: tokio::sync::Mutex::new(()),
            connection: Mutex::new(connection.map(Arc::new)),
            resumed_for_files: AtomicBool::new(false),
        }
    }

    /// The connection, while its stream is open.
    fn live(&self) -> Option<Arc<RunnerConnection>> {
        self.lock_connection()
            .as_ref()
            .filter(|connection| connection.is_alive())
            .cloned()
    }

    fn set_connection(&self, connection: Option<RunnerConnection>) {
        *self.lock_connection() = connection.map(Arc::new);
    }

    /// The live connection, attaching a new one when there is none.
    async fn connect(&self, engine: &DockerEngine) -> Result<Arc<RunnerConnection>, SessionError> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let fresh = Arc::new(RunnerConnection::new(engine.attach_sandbox(&self.container_id).await?));
        *self.lock_connection() = Some(fresh.clone());
        Ok(fresh)
    }

    fn lock_connection(&self) -> std::sync::MutexGuard<'_, Option<Arc<RunnerConnection>>> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Facts read from a session container's labels plus its record.
struct SessionFacts {
    info: SandboxInfo,
    name: String,
    language: Language,
    created: u64,
    ttl: u64,
    mounts: Vec<SessionMount>,
    record: SessionRecord,
}

impl SessionFacts {
    fn last_used(&self) -> u64 {
        self.record.last_used.unwrap_or(self.created).max(self.created)
    }

    fn expires_at(&self) -> u64 {
        (self.last_used() + self.ttl).max(self.record.extended_until.unwrap_or(0))
    }

    fn to_info(&self, now: u64) -> SessionInfo {
        let expires_at = self.expires_at();
        SessionInfo {
            name: self.name.clone(),
            language: self.language.name().to_string(),
            state: self.info.state.name().to_string(),
            created: rfc3339(self.created),
            last_used: rfc3339(self.last_used()),
            expires_at: rfc3339(expires_at),
            ttl_seconds: self.ttl,
            ttl_left_seconds: expires_at.saturating_sub(now),
            container: self.info.id.chars().take(12).collect(),
            seccomp: self
                .info
                .labels
                .get(labels::SECCOMP)
                .cloned()
                .unwrap_or_else(|| "engine-default".to_string()),
            storage: self.storage().name().to_string(),
            mounts: self.mounts.clone(),
        }
    }

    /// Where the session's files live (sessions made before the label
    /// existed used disk volumes).
    fn storage(&self) -> SessionStorage {
        self.info
            .labels
            .get(labels::STORAGE)
            .and_then(|label| SessionStorage::parse(label))
            .unwrap_or(SessionStorage::Disk)
    }
}

/// A session as file operations see it.
pub struct FileTarget {
    pub name: String,
    pub container_id: String,
    pub mounts: Vec<SessionMount>,
    pub state: ContainerState,
}

/// What a new session is made of.
pub struct NewSession<'a> {
    pub name: &'a str,
    pub language: Language,
    /// The standard image, the data-science one, or a cached package image.
    pub image: &'a str,
    pub ttl: Option<u64>,
    /// Configured host folders to mount.
    pub folders: &'a [HostFolder],
    pub seccomp: SeccompProfile,
}

/// Creates, finds, runs code in, and garbage-collects sessions.
pub struct SessionManager {
    launcher: Arc<Launcher>,
    audit: Arc<AuditLog>,
    store: SessionStore,
    handles: Mutex<HashMap<String, Arc<SessionHandle>>>,
}

impl SessionManager {
    pub fn new(launcher: Arc<Launcher>, audit: Arc<AuditLog>) -> Arc<Self> {
        let store = SessionStore::new(&launcher.config().state_dir);
        Arc::new(Self {
            launcher,
            audit,
            store,
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Starts the background garbage collector of expired sessions.
    pub fn start_gc(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        let interval = Duration::from_secs(manager.launcher.config().gc_interval_s);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match manager.collect_expired().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "garbage-collected expired sessions"),
                    Err(error) => tracing::debug!(%error, "session garbage collection skipped"),
                }
            }
        })
    }

    /// Checks a create request before any work (such as a package install)
    /// is done for it. Returns the ttl to use.
    pub async fn check_create(&self, name: &str, ttl: Option<u64>) -> Result<u64, SessionError> {
        validate_name(name)?;
        let config = self.launcher.config();
        let ttl = ttl.unwrap_or(config.session_ttl_s);
        if ttl == 0 || ttl > config.max_session_ttl_s {
            return Err(SessionError::InvalidTtl {
                given: ttl,
                max: config.max_session_ttl_s,
            });
        }
        if self
            .launcher
            .engine()
            .inspect_sandbox(&format!("{NAME_PREFIX}{name}"))
            .await?
            .is_some()
        {
            return Err(SessionError::Exists(name.to_string()));
        }
        Ok(ttl)
    }

    /// Creates a session and starts its kernel.
    pub async fn create(&self, new: NewSession<'_>) -> Result<SessionInfo, SessionError> {
        let NewSession {
            name,
            language,
            image,
            ttl,
            folders,
            seccomp,
        } = new;
        let ttl = self.check_create(name, ttl).await?;
        let config = self.launcher.config();
        let engine = self.launcher.engine();
        let container_name = format!("{NAME_PREFIX}{name}");
        let existing = engine.list_sandboxes(&[(labels::KIND, "session")]).await?;
        if existing.len() >= config.max_sessions {
            return Err(SessionError::TooMany {
                max: config.max_sessions,
            });
        }
        let created = unix_now();
        let volume_labels = HashMap::from([
            (labels::KIND.to_string(), VOLUME_KIND.to_string()),
            (labels::SESSION.to_string(), name.to_string()),
        ]);
        let storage = config.session_storage;
        let (files_backing, outputs_backing, extra_memory_mb) = match storage {
            SessionStorage::Memory => (
                VolumeBacking::Memory {
                    size_mb: config.session_storage_mb,
                },
                VolumeBacking::Memory {
                    size_mb: config.tmpfs_mb,
                },
                config.session_storage_mb,
            ),
            SessionStorage::Disk => (VolumeBacking::Disk, VolumeBacking::Disk, 0),
        };
        // Volumes left by an earlier session of this name (a failed removal)
        // would be reused with their old options: start from none.
        remove_session_volumes(engine, name).await?;
        let volumes_made = async {
            engine
                .create_volume(&workspace_volume(name), &volume_labels, files_backing)
                .await?;
            engine
                .create_volume(&packages_volume(name), &volume_labels, VolumeBacking::Disk)
                .await?;
            engine
                .create_volume(&outputs_volume(name), &volume_labels, outputs_backing)
                .await
        };
        if let Err(error) = volumes_made.await {
            let _ = remove_session_volumes(engine, name).await;
            return Err(error.into());
        }
        let mount = |volume: String, target: &str, read_only: bool| VolumeMount {
            volume,
            target: target.to_string(),
            read_only,
        };
        let purpose = Purpose::Session {
            name,
            container_name: &container_name,
            volumes: vec![
                mount(workspace_volume(name), "/workspace", false),
                // Only install containers write packages: code cannot fill
                // this disk-backed volume.
                mount(packages_volume(name), SESSION_ROOT, true),
                mount(outputs_volume(name), "/outputs", false),
            ],
            extra_memory_mb,
            binds: folders
                .iter()
                .map(|folder| BindMount {
                    source: folder.host_path.display().to_string(),
                    target: folder.mount_point(),
                    read_only: !folder.writable,
                })
                .collect(),
            extra_labels: HashMap::from([
                (labels::CREATED.to_string(), created.to_string()),
                (labels::TTL.to_string(), ttl.to_string()),
                (labels::MOUNTS.to_string(), mounts_label(folders)),
                (labels::STORAGE.to_string(), storage.name().to_string()),
            ]),
            seccomp,
        };
        let sandbox = match self.launcher.launch_from(language, image, purpose).await {
            Ok(sandbox) => sandbox,
            Err(DockerError::NameInUse(_)) => return Err(SessionError::Exists(name.to_string())),
            Err(error) => {
                let _ = remove_session_volumes(engine, name).await;
                return Err(error.into());
            }
        };
        let container_id = sandbox.container.keep();
        self.store.save(
            &container_id,
            &SessionRecord {
                last_used: Some(created),
                extended_until: None,
            },
        );
        let handle = Arc::new(SessionHandle::new(
            container_id.clone(),
            language,
            Some(sandbox.connection),
        ));
        self.lock_handles().insert(name.to_string(), handle);
        let info = self.get(name).await?;
        self.audit.record(
            "session",
            serde_json::json!({
                "action": "created",
                "name": name,
                "language": language.name(),
                "image": image,
                "seccomp": info.seccomp,
                "mounts": info.mounts,
            }),
        );
        Ok(info)
    }

    /// Every session on the engine, newest first.
    pub async fn list(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let now = unix_now();
        let mut sessions: Vec<SessionFacts> = self
            .launcher
            .engine()
            .list_sandboxes(&[(labels::KIND, "session")])
            .await?
            .into_iter()
            .filter_map(|info| self.facts(info))
            .collect();
        sessions.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
        Ok(sessions.iter().map(|facts| facts.to_info(now)).collect())
    }

    /// One session.
    pub async fn get(&self, name: &str) -> Result<SessionInfo, SessionError> {
        Ok(self.lookup(name).await?.to_info(unix_now()))
    }

    /// Freezes the session's processes (no CPU use); state is kept.
    pub async fn pause(&self, name: &str) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        if facts.info.state == ContainerState::Running {
            self.launcher.engine().pause_sandbox(&facts.info.id).await?;
        }
        self.get(name).await
    }

    /// Unfreezes a paused session.
    pub async fn resume(&self, name: &str) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        if facts.info.state == ContainerState::Paused {
            self.launcher.engine().unpause_sandbox(&facts.info.id).await?;
        }
        self.get(name).await
    }

    /// Pushes the expiry `seconds` further (default: the session's ttl).
    pub async fn extend(&self, name: &str, seconds: Option<u64>) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        let max = self.launcher.config().max_session_ttl_s;
        let seconds = seconds.unwrap_or(facts.ttl);
        if seconds == 0 || seconds > max {
            return Err(SessionError::InvalidTtl { given: seconds, max });
        }
        let now = unix_now();
        let until = (facts.expires_at().max(now) + seconds).min(now + max);
        let mut record = facts.record;
        record.extended_until = Some(until);
        self.store.save(&facts.info.id, &record);
        self.get(name).await
    }

    /// Removes the session's container, workspace volume and record.
    pub async fn destroy(&self, name: &str) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        let info = facts.to_info(unix_now());
        self.remove(&facts).await?;
        self.audit.record(
            "session",
            serde_json::json!({"action": "destroyed", "name": name, "language": info.language}),
        );
        Ok(info)
    }

    /// What file operations need, from one lookup: the container, the host
    /// folders, and the container's state.
    pub async fn file_target(&self, name: &str) -> Result<FileTarget, SessionError> {
        let facts = self.lookup(name).await?;
        let stopped = matches!(
            facts.info.state,
            ContainerState::Exited | ContainerState::Created | ContainerState::Dead
        );
        if stopped && facts.storage() == SessionStorage::Memory {
            // Its files went with the container's memory; starting it for a
            // file operation would only show empty folders.
            return Err(SessionError::StoppedInMemory { name: name.to_string() });
        }
        Ok(FileTarget {
            name: facts.name,
            state: facts.info.state,
            container_id: facts.info.id,
            mounts: facts.mounts,
        })
    }

    /// What an install into this session needs: its language, the image its
    /// container runs, and its packages volume.
    pub async fn install_target(&self, name: &str) -> Result<(Language, String, String), SessionError> {
        let facts = self.lookup(name).await?;
        let image = facts.info.image.clone().ok_or_else(|| SessionError::Unusable {
            name: name.to_string(),
            state: "without a known image".into(),
        })?;
        Ok((facts.language, image, packages_volume(&facts.name)))
    }

    /// Runs code in a session (serialized with its other executes).
    pub async fn execute(&self, name: &str, request: &ExecuteRequest) -> Result<ExecutionOutcome, ExecuteError> {
        let handle = self.handle(name).await?;
        let program = if request.language == handle.language {
            request.language.prepare_cell(&request.code)
        } else if request.language == Language::Bash {
            Language::Bash.prepare(&request.code)
        } else {
            return Err(SessionError::LanguageMismatch {
                name: name.to_string(),
                session_language: handle.language.name().to_string(),
            }
            .into());
        };
        let kernel = handle.language.kernel().filter(|_| program.uses_kernel());
        let wait = Duration::from_millis(request.timeout_ms);
        let _turn = tokio::select! {
            locked = tokio::time::timeout(wait, handle.turn.lock()) => {
                locked.map_err(|_| SessionError::Busy { name: name.to_string() })?
            }
            // Cancelled while waiting for the session's previous execute.
            () = request.watch.cancel.cancelled() => return Ok(not_started_outcome(request)),
        };
        let mut notes = Vec::new();
        let facts = self.lookup(name).await?;
        if facts.info.id != handle.container_id {
            // The session was destroyed and created again by another server.
            self.lock_handles().remove(name);
            return Err(SessionError::Unknown(name.to_string()).into());
        }
        if facts.expires_at() <= unix_now() {
            self.remove(&facts).await?;
            return Err(SessionError::Expired(name.to_string()).into());
        }
        let engine = self.launcher.engine();
        match facts.info.state {
            ContainerState::Paused => {
                engine
                    .unpause_sandbox(&facts.info.id)
                    .await
                    .map_err(SessionError::from)?;
                notes.push("The session was paused; it was resumed to run this code.".to_string());
            }
            state => {
                if let Some(note) = self.start_if_stopped(&handle, &facts, state).await? {
                    request.watch.warn(format!("Session {name}: {note}"));
                    notes.push(note);
                }
            }
        }
        let live = handle.connect(engine).await?;
        let config = self.launcher.config();
        self.touch(&facts.info.id);
        let result = run_program(&live, &program, kernel, request, config).await;
        self.touch(&facts.info.id);
        match result {
            Ok(run) => Ok(outcome(config, request, run, notes)),
            Err(RunFailure::HostTimeout) => {
                handle.set_connection(None);
                Ok(host_timeout_outcome(request))
            }
            Err(RunFailure::Cancelled) => {
                // The runner did not confirm the stop in time: it may be
                // restarting the interpreter.
                handle.set_connection(None);
                request.watch.warn(format!(
                    "Session {name}: the cancelled code did not stop within {} s; its interpreter may be restarting, and variables may be lost.",
                    CANCEL_GRACE.as_secs()
                ));
                Ok(cancelled_outcome(request))
            }
            Err(RunFailure::NotStarted) => Ok(not_started_outcome(request)),
            Err(failure @ RunFailure::Gone(_)) => {
                handle.set_connection(None);
                let still_there = engine.inspect_sandbox(&facts.info.id).await.ok().flatten().is_some();
                if !still_there {
                    self.lock_handles().remove(name);
                    return Err(SessionError::Unknown(name.to_string()).into());
                }
                Err(failure.into())
            }
        }
    }

    /// Starts the session's container again when it has stopped (for
    /// example the engine restarted), with a fresh connection; returns the
    /// note saying what was lost. Running containers are left alone;
    /// paused ones are the caller's to resume.
    async fn start_if_stopped(
        &self,
        handle: &SessionHandle,
        facts: &SessionFacts,
        state: ContainerState,
    ) -> Result<Option<String>, SessionError> {
        match state {
            ContainerState::Running | ContainerState::Paused => Ok(None),
            ContainerState::Exited | ContainerState::Created | ContainerState::Dead => {
                let engine = self.launcher.engine();
                let fresh = RunnerConnection::new(engine.attach_sandbox(&facts.info.id).await?);
                engine.restart_sandbox(&facts.info.id).await?;
                fresh.wait_ready(READY_TIMEOUT).await?;
                handle.set_connection(Some(fresh));
                let files = match facts.storage() {
                    SessionStorage::Memory => {
                        "files in /workspace and /outputs were lost (they live in memory); installed packages were kept"
                    }
                    SessionStorage::Disk => "files in /workspace and installed packages were kept",
                };
                Ok(Some(format!(
                    "The session's container had stopped (for example the Docker engine restarted); it was started again: variables were lost, {files}."
                )))
            }
            state => Err(SessionError::Unusable {
                name: facts.name.clone(),
                state: state.name().to_string(),
            }),
        }
    }

    /// Sends a file operation (`payload`, whose id is `id`) to the session's
    /// runner and waits for its answer. A running session answers at once,
    /// even while code runs; a paused one is resumed for the moment it
    /// takes and paused again; a stopped one is started (the note says what
    /// was lost).
    pub async fn file_request(
        &self,
        target: &FileTarget,
        id: &str,
        payload: &[u8],
    ) -> Result<(RunnerMessage, Option<String>), SessionError> {
        let name = target.name.as_str();
        let mut handle = self.handle(name).await?;
        if handle.container_id != target.container_id {
            // The session was destroyed and created again by another server.
            self.lock_handles().remove(name);
            handle = self.handle(name).await?;
        }
        let engine = self.launcher.engine();
        if target.state == ContainerState::Running && !handle.resumed_for_files.load(Ordering::SeqCst) {
            let live = handle.connect(engine).await?;
            return Ok((send_file_request(&live, name, id, payload).await?, None));
        }
        let _turn = tokio::time::timeout(FILE_REQUEST_TIMEOUT, handle.turn.lock())
            .await
            .map_err(|_| SessionError::FileTimeout {
                name: name.to_string(),
                seconds: FILE_REQUEST_TIMEOUT.as_secs(),
            })?;
        let facts = self.lookup(name).await?;
        let paused = facts.info.state == ContainerState::Paused;
        if paused {
            // Other file operations wait for the turn instead of taking the
            // running session's fast path while it is briefly resumed.
            handle.resumed_for_files.store(true, Ordering::SeqCst);
            if let Err(error) = engine.unpause_sandbox(&facts.info.id).await {
                handle.resumed_for_files.store(false, Ordering::SeqCst);
                return Err(error.into());
            }
        }
        let answered = async {
            let note = self.start_if_stopped(&handle, &facts, facts.info.state).await?;
            let live = handle.connect(engine).await?;
            Ok::<_, SessionError>((send_file_request(&live, name, id, payload).await?, note))
        }
        .await;
        if paused {
            // The operation's own answer stands whether or not this works.
            if let Err(error) = engine.pause_sandbox(&facts.info.id).await {
                tracing::warn!(session = name, %error, "could not pause the session again after a file operation");
            }
            handle.resumed_for_files.store(false, Ordering::SeqCst);
        }
        answered
    }

    /// Destroys every expired session; returns how many.
    pub async fn collect_expired(&self) -> Result<usize, SessionError> {
        let now = unix_now();
        let all = self
            .launcher
            .engine()
            .list_sandboxes(&[(labels::KIND, "session")])
            .await?;
        let ids: Vec<String> = all.iter().map(|info| info.id.clone()).collect();
        let mut removed = 0;
        for facts in all.into_iter().filter_map(|info| self.facts(info)) {
            if facts.expires_at() <= now && !self.is_busy(&facts.name) {
                tracing::info!(session = %facts.name, "session expired");
                self.remove(&facts).await?;
                self.audit.record(
                    "session",
                    serde_json::json!({"action": "expired", "name": facts.name, "language": facts.language.name()}),
                );
                removed += 1;
            }
        }
        self.store.retain(&ids);
        Ok(removed)
    }

    /// Records activity now (before a run, so a long run is not collected
    /// as idle, and after it). Reloads the record so concurrent extensions
    /// are kept.
    fn touch(&self, container_id: &str) {
        let mut record = self.store.load(container_id);
        record.last_used = Some(unix_now());
        self.store.save(container_id, &record);
    }

    /// True when this server is running code in the session right now.
    fn is_busy(&self, name: &str) -> bool {
        self.lock_handles()
            .get(name)
            .is_some_and(|handle| handle.turn.try_lock().is_err())
    }

    async fn remove(&self, facts: &SessionFacts) -> Result<(), SessionError> {
        self.lock_handles().remove(&facts.name);
        let engine = self.launcher.engine();
        engine.remove_sandbox(&facts.info.id).await?;
        remove_session_volumes(engine, &facts.name).await?;
        self.store.remove(&facts.info.id);
        Ok(())
    }

    /// This server's handle on a session, adopting it from Docker if needed.
    async fn handle(&self, name: &str) -> Result<Arc<SessionHandle>, SessionError> {
        validate_name(name)?;
        if let Some(handle) = self.lock_handles().get(name) {
            return Ok(handle.clone());
        }
        let facts = self.lookup(name).await?;
        let handle = Arc::new(SessionHandle::new(facts.info.id.clone(), facts.language, None));
        Ok(self.lock_handles().entry(name.to_string()).or_insert(handle).clone())
    }

    async fn lookup(&self, name: &str) -> Result<SessionFacts, SessionError> {
        validate_name(name)?;
        let info = self
            .launcher
            .engine()
            .inspect_sandbox(&format!("{NAME_PREFIX}{name}"))
            .await?
            .ok_or_else(|| SessionError::Unknown(name.to_string()))?;
        self.facts(info).ok_or_else(|| SessionError::Unknown(name.to_string()))
    }

    fn facts(&self, info: SandboxInfo) -> Option<SessionFacts> {
        if info.labels.get(labels::KIND).map(String::as_str) != Some("session") {
            return None;
        }
        let name = info.labels.get(labels::SESSION)?.clone();
        let language = Language::parse(info.labels.get(labels::LANGUAGE)?).ok()?;
        let created = info.labels.get(labels::CREATED)?.parse().ok()?;
        let ttl = info.labels.get(labels::TTL)?.parse().ok()?;
        let mounts = info
            .labels
            .get(labels::MOUNTS)
            .and_then(|label| serde_json::from_str(label).ok())
            .unwrap_or_default();
        let record = self.store.load(&info.id);
        Some(SessionFacts {
            info,
            name,
            language,
            created,
            ttl,
            mounts,
            record,
        })
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SessionHandle>>> {
        self.handles.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes a session's workspace, packages and outputs volumes: the ones
/// labelled with its name, whatever they are called (sessions made before
/// the `.` separator named them `<prefix><name>-outputs` and the like).
async fn remove_session_volumes(engine: &DockerEngine, name: &str) -> Result<(), DockerError> {
    engine
        .remove_volumes_labelled(&[(labels::KIND, VOLUME_KIND), (labels::SESSION, name)])
        .await
}

/// The volume of one of a session's folders. The `.` before `folder` cannot
/// appear in a session name, so no session's volume can be another's
/// (`x` with `x-outputs`) or be squatted by a session named after it.
fn session_volume(name: &str, folder: &str) -> String {
    format!("{NAME_PREFIX}{name}.{folder}")
}

/// The volume holding a session's `/workspace`.
fn workspace_volume(name: &str) -> String {
    session_volume(name, "workspace")
}

/// The volume holding a session's own installed packages (mounted at
/// `/packages/session`; packages from a cached image stay in the image).
pub fn packages_volume(name: &str) -> String {
    session_volume(name, "packages")
}

/// The volume holding a session's `/outputs`.
pub fn outputs_volume(name: &str) -> String {
    session_volume(name, "outputs")
}

/// The label recording a session's host folders (JSON, so paths with any
/// characters survive).
fn mounts_label(folders: &[HostFolder]) -> String {
    let mounts: Vec<SessionMount> = folders.iter().map(SessionMount::from_folder).collect();
    serde_json::to_string(&mounts).unwrap_or_else(|_| "[]".to_string())
}

/// Session names: 1–63 of `[A-Za-z0-9_-]`, starting with a letter or digit
/// (safe in container names, labels and file names).
pub fn validate_name(name: &str) -> Result<(), SessionError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SessionError::InvalidName(name.to_string()))
    }
}

/// Sends one file request on `connection` and waits for its answer.
async fn send_file_request(
    connection: &RunnerConnection,
    name: &str,
    id: &str,
    payload: &[u8],
) -> Result<RunnerMessage, SessionError> {
    match connection.request(id, payload, FILE_REQUEST_TIMEOUT).await {
        Ok(message) => Ok(message),
        Err(RequestFailure::Timeout) => Err(SessionError::FileTimeout {
            name: name.to_string(),
            seconds: FILE_REQUEST_TIMEOUT.as_secs(),
        }),
        Err(RequestFailure::Gone(error)) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted_to_a_safe_set() {
        for good in ["a", "data-1", "My_Session", "x".repeat(63).as_str()] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "a b",
            "a;rm -rf /",
            "a/b",
            "ä",
            "a=b",
            "x".repeat(64).as_str(),
            "a\n",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
