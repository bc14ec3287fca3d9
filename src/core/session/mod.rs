//! Named, stateful sessions. A session is a long-lived container whose
//! kernel keeps interpreter state between executes (Python, JavaScript,
//! TypeScript, Bash) and whose `/workspace` is a named volume (every
//! language keeps its files). Docker is the registry: a session exists
//! exactly when its labelled container `multilang-sandbox-session-<name>`
//! exists (a destroyed one is renamed at once, then removed), so a
//! restarted server, or a second server running beside this one, sees and
//! uses the same sessions. Labels hold what never changes
//! (name, language, created, ttl); the [`SessionStore`] holds activity and
//! extensions. Executes in one session are serialized.
//!
//! One operation per file: `create.rs`, `execute.rs`, `file_request.rs`,
//! `gc.rs`, `remove.rs` (destroying); the label format in `labels.rs`, this
//! server's per-session connection in `handle.rs`; snapshots, restores and
//! forks in `snapshot/`.

mod create;
mod execute;
mod file_request;
mod gc;
mod handle;
mod labels;
mod remove;
mod snapshot;
mod spares;

pub use labels::validate_name;
pub(crate) use snapshot::SnapshotFacts;
pub use snapshot::{ReplayFailure, ReplaySummary, Restored, SnapshotError, SnapshotInfo, validate_snapshot_name};
pub use spares::SpareStats;

use super::background::Background;
use super::connection::RunnerConnection;
use super::launcher::Launcher;
use super::session_store::SessionStore;
use crate::clock::unix_now;
use crate::config::{HostFolder, SessionStorage};
use crate::core::egress::{EgressError, EgressGateway, EgressTotals, NetworkPlace, Owner};
use crate::core::error::SessionError;
use crate::docker::{ContainerState, SandboxInfo, labels as label_keys};
use crate::runtime::Language;
use crate::security::audit::{AuditEvent, AuditLog, SessionEvent};
use crate::security::egress::HostPattern;
use crate::security::seccomp::SeccompProfile;
use handle::SessionHandle;
use labels::{NAME_PREFIX, SessionFacts, parse_grants};
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use spares::SPARE_KIND;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

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
    /// The user's template the session started from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Seccomp profile the session runs under (standard, strict, …).
    pub seccomp: String,
    /// Where `/workspace` and `/outputs` live: "memory" (size-limited; lost
    /// when the container stops, as on an engine restart) or "disk".
    pub storage: String,
    /// Host folders mounted into the session (see `mounts` on create).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<SessionMount>,
    /// Present when the session has network: the hosts it was granted
    /// (hosts in the user's `egress.allow` are reachable too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Vec<String>>,
    /// What the session moved through the egress proxy (sessions with
    /// network, as this server saw it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressTotals>,
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

/// A session as file operations see it.
pub struct FileTarget {
    pub name: String,
    pub container_id: String,
    pub mounts: Vec<SessionMount>,
    pub state: ContainerState,
}

/// What an install into a session needs.
#[derive(Debug, Clone)]
pub struct InstallTarget {
    pub language: Language,
    /// The image the session's container runs.
    pub image: String,
    /// The session's packages volume, which install containers write.
    pub packages_volume: String,
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
    /// Network grants (already reviewed); `None`: no network at all.
    pub grants: Option<Vec<HostPattern>>,
}

/// Creates, finds, runs code in, and garbage-collects sessions.
pub struct SessionManager {
    launcher: Arc<Launcher>,
    audit: Arc<AuditLog>,
    egress: Arc<EgressGateway>,
    store: SessionStore,
    handles: Mutex<HashMap<String, Arc<SessionHandle>>>,
    /// Where destroyed sessions are removed (the server's background work,
    /// from [`SessionManager::start_gc`]); without it, removals are awaited.
    removals: OnceLock<Background>,
    /// Runner connections of the spares this server made (a claim takes
    /// its spare's).
    spare_connections: Mutex<HashMap<String, Arc<RunnerConnection>>>,
    /// Creates served with a spare, per language.
    spares_claimed: Mutex<HashMap<Language, u64>>,
    /// Spares the last gc round saw taken (by a claim or removal).
    taken_seen: Mutex<std::collections::HashSet<String>>,
    /// Held while this server claims a spare.
    claim_turn: tokio::sync::Mutex<()>,
    /// Wakes the spare maker after a claim.
    spare_wanted: tokio::sync::Notify,
}

impl SessionManager {
    pub fn new(launcher: Arc<Launcher>, audit: Arc<AuditLog>, egress: Arc<EgressGateway>) -> Arc<Self> {
        let store = SessionStore::new(&launcher.config().state_dir);
        Arc::new(Self {
            launcher,
            audit,
            egress,
            store,
            handles: Mutex::new(HashMap::new()),
            removals: OnceLock::new(),
            spare_connections: Mutex::new(HashMap::new()),
            spares_claimed: Mutex::new(HashMap::new()),
            claim_turn: tokio::sync::Mutex::new(()),
            taken_seen: Mutex::new(std::collections::HashSet::new()),
            spare_wanted: tokio::sync::Notify::new(),
        })
    }

    /// The containers that may be sessions: those made as sessions and
    /// spares (claimed ones are sessions; [`SessionManager::facts`] tells).
    async fn session_containers(&self) -> Result<Vec<SandboxInfo>, SessionError> {
        let engine = self.launcher.engine();
        let (mut sessions, spares) = tokio::try_join!(
            engine.list_sandboxes(&[(label_keys::KIND, "session")]),
            engine.list_sandboxes(&[(label_keys::KIND, SPARE_KIND)]),
        )?;
        sessions.extend(spares);
        Ok(sessions)
    }

    /// Every session on the engine, newest first.
    pub async fn list(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let now = unix_now();
        let mut sessions: Vec<SessionFacts> = self
            .session_containers()
            .await?
            .into_iter()
            .filter_map(|info| self.facts(info))
            .collect();
        sessions.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
        Ok(sessions.iter().map(|facts| self.info(facts, now)).collect())
    }

    /// One session.
    pub async fn get(&self, name: &str) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        Ok(self.info(&facts, unix_now()))
    }

    fn info(&self, facts: &SessionFacts, now: u64) -> SessionInfo {
        let mut info = facts.to_info(now);
        if facts.grants.is_some() {
            info.egress = Some(self.egress.totals(&Owner::Session(facts.name.clone())));
        }
        info
    }

    /// Replaces a session's network grants with `requested` (reviewed
    /// against `egress.allow`; what the session holds stays allowed).
    pub async fn set_grants(&self, name: &str, requested: &[String]) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        let Some(held) = &facts.grants else {
            return Err(EgressError::NoNetwork(name.to_string()).into());
        };
        let grants = self.egress.review(requested, held)?;
        let mut record = self.store.load(&facts.info.id);
        record.grants = Some(grants.iter().map(ToString::to_string).collect());
        self.store.save(&facts.info.id, &record);
        self.egress.set_grants(&Owner::Session(name.to_string()), grants);
        self.get(name).await
    }

    /// Makes sure this server's egress proxy serves the session (after a
    /// restart, for another server's session, or after the container was
    /// started again: `refresh` reads its address anew).
    async fn serve_network(&self, facts: &SessionFacts, refresh: bool) -> Result<(), SessionError> {
        let (Some(grants), Some(network)) = (&facts.grants, facts.network()) else {
            return Ok(());
        };
        let owner = Owner::Session(facts.name.clone());
        if refresh {
            self.egress.forget(&owner);
        }
        let place = NetworkPlace {
            network: &network.name,
            holder: &network.holder,
            sandbox: &facts.info.id,
        };
        self.egress.adopt(&owner, place, grants.clone()).await?;
        Ok(())
    }

    /// Freezes the session's processes (no CPU use); state is kept.
    pub async fn pause(&self, name: &str) -> Result<SessionInfo, SessionError> {
        self.refuse_while_copying(name).await?;
        let facts = self.lookup(name).await?;
        if facts.info.state == ContainerState::Running {
            self.launcher.engine().pause_sandbox(&facts.info.id).await?;
        }
        self.get(name).await
    }

    /// Unfreezes a paused session.
    pub async fn resume(&self, name: &str) -> Result<SessionInfo, SessionError> {
        self.refuse_while_copying(name).await?;
        let facts = self.lookup(name).await?;
        if facts.info.state == ContainerState::Paused {
            self.launcher.engine().unpause_sandbox(&facts.info.id).await?;
        }
        self.get(name).await
    }

    /// Refuses a pause or resume while this server copies the session's
    /// files (the copy pauses and resumes it itself).
    async fn refuse_while_copying(&self, name: &str) -> Result<(), SessionError> {
        if self
            .handle(name)
            .await?
            .copying
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(SessionError::Copying { name: name.to_string() });
        }
        Ok(())
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

    /// Destroys the session: it is gone and its name free when this
    /// returns; its container, volumes and network are removed in the
    /// background.
    pub async fn destroy(&self, name: &str) -> Result<SessionInfo, SessionError> {
        let facts = self.lookup(name).await?;
        let info = facts.to_info(unix_now());
        self.retire(&facts).await?;
        self.audit.record(AuditEvent::Session(SessionEvent::Destroyed {
            name: name.to_string(),
            language: info.language.clone(),
        }));
        Ok(info)
    }

    /// What file operations need, from one lookup: the container, the host
    /// folders, and the container's state.
    pub async fn file_target(&self, name: &str) -> Result<FileTarget, SessionError> {
        let facts = self.lookup(name).await?;
        if facts.info.state.is_stopped() && facts.storage() == SessionStorage::Memory {
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

    /// What an install into this session needs.
    pub async fn install_target(&self, name: &str) -> Result<InstallTarget, SessionError> {
        let facts = self.lookup(name).await?;
        let unusable = |what: &str| SessionError::Unusable {
            name: name.to_string(),
            state: format!("without a known {what}"),
        };
        let image = facts.info.image.clone().ok_or_else(|| unusable("image"))?;
        let packages_volume = facts.packages_volume().ok_or_else(|| unusable("packages volume"))?;
        Ok(InstallTarget {
            language: facts.language,
            image,
            packages_volume: packages_volume.to_string(),
        })
    }

    /// Records activity now (before a run, so a long run is not collected
    /// as idle, and after it). Reloads the record so concurrent extensions
    /// are kept.
    fn touch(&self, container_id: &str) {
        let mut record = self.store.load(container_id);
        record.last_used = Some(unix_now());
        self.store.save(container_id, &record);
    }

    /// The names of the sessions whose containers run.
    pub async fn running_names(&self) -> Result<Vec<String>, SessionError> {
        Ok(self
            .session_containers()
            .await?
            .into_iter()
            .filter(|info| info.state == ContainerState::Running)
            .filter_map(|info| self.facts(info).map(|facts| facts.name))
            .collect())
    }

    /// A live connection to the session's runner (for its jobs); the
    /// session must be running.
    pub async fn runner(&self, name: &str) -> Result<Arc<RunnerConnection>, SessionError> {
        let handle = self.handle(name).await?;
        if let Some(live) = handle.live() {
            return Ok(live);
        }
        let facts = self.lookup(name).await?;
        if facts.info.state != ContainerState::Running {
            return Err(SessionError::Unusable {
                name: name.to_string(),
                state: facts.info.state.name().to_string(),
            });
        }
        handle.connect(self.launcher.engine().as_ref()).await
    }

    /// Records activity in the session now (a job of it being collected).
    pub async fn note_activity(&self, name: &str) {
        if let Ok(facts) = self.lookup(name).await {
            self.touch(&facts.info.id);
        }
    }

    /// True when this server is running code in the session right now.
    fn is_busy(&self, name: &str) -> bool {
        self.lock_handles()
            .get(name)
            .is_some_and(|handle| handle.turn.try_lock().is_err())
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
        let name = match info.labels.get(label_keys::KIND).map(String::as_str) {
            Some("session") => {
                let name = info.labels.get(label_keys::SESSION)?.clone();
                // A destroyed session's container keeps its labels under a
                // tombstone name until it is removed.
                if info
                    .name
                    .as_ref()
                    .is_some_and(|container| *container != format!("{NAME_PREFIX}{name}"))
                {
                    return None;
                }
                name
            }
            // A claimed spare: its name is its session's (an unclaimed
            // spare is never a session).
            Some(SPARE_KIND) => info.name.as_deref()?.strip_prefix(NAME_PREFIX)?.to_string(),
            _ => return None,
        };
        let language = Language::parse(info.labels.get(label_keys::LANGUAGE)?).ok()?;
        let record = self.store.load(&info.id);
        let created = match record.created {
            Some(created) => created,
            None => info.labels.get(label_keys::CREATED)?.parse().ok()?,
        };
        let ttl = info.labels.get(label_keys::TTL)?.parse().ok()?;
        let mounts = info
            .labels
            .get(label_keys::MOUNTS)
            .and_then(|label| serde_json::from_str(label).ok())
            .unwrap_or_default();
        let grants = parse_grants(
            record.grants.as_deref(),
            info.labels.get(label_keys::NETWORK).map(String::as_str),
        );
        Some(SessionFacts {
            grants,
            info,
            name,
            language,
            created,
            ttl,
            mounts,
            record,
        })
    }

    fn lock_handles(&self) -> MutexGuard<'_, HashMap<String, Arc<SessionHandle>>> {
        self.handles.lock()
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
