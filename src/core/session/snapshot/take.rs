//! Taking a snapshot: in the session's turn (no execute or job running),
//! the runner's cell log is asked for, the snapshot's files volume is made,
//! a copy container copies the session's folders and the log into it, and
//! the snapshot's record is made. A failed copy removes the files volume:
//! nothing half-made is kept, and the session, only read, is unharmed.

use super::copy::{CopyContainer, Direction, SessionVolumes};
use super::{FILES_KIND, SnapshotError, SnapshotFacts, SnapshotInfo, TEMPORARY_KEEP, generated_name, record_volume};
use crate::clock::unix_now;
use crate::config::SessionStorage;
use crate::core::connection::RequestFailure;
use crate::core::error::SessionError;
use crate::core::protocol::{HostMessage, LoggedCell, RunnerMessage};
use crate::core::run::new_run_id;
use crate::core::session::handle::Raised;
use crate::core::session::labels::{OUTPUTS, PACKAGES, SessionFacts, TMP, WORKSPACE};
use crate::core::session::{SessionHandle, SessionManager};
use crate::docker::{ContainerState, VolumeBacking, labels};
use crate::security::audit::{AuditEvent, SessionEvent};
use std::collections::HashMap;
use std::time::Duration;

/// The time left between resuming a paused session (to ask for its cell
/// log) and pausing it again for the copy.
const PAUSE_GAP: Duration = Duration::from_millis(100);
/// How long the runner may take to send its cell log.
const CELLS_TIMEOUT: Duration = Duration::from_secs(30);

impl SessionManager {
    /// Takes a snapshot of session `name`, called `snapshot` (or a name
    /// made from the time).
    pub async fn snapshot(&self, name: &str, snapshot: Option<&str>) -> Result<SnapshotInfo, SnapshotError> {
        let made = self.take_snapshot(name, snapshot, false).await?;
        self.audit.record(AuditEvent::Session(SessionEvent::Snapshot {
            name: name.to_string(),
            snapshot: made.name.clone(),
        }));
        Ok(made.info())
    }

    /// Takes a snapshot; a `temporary` one (a fork's of the current state)
    /// gets a name of its own, is listed nowhere and expires within the
    /// hour. A paused session is resumed to ask for its cell log and is
    /// paused again; a running one is paused while its files are copied,
    /// so nothing in it changes them meanwhile (or races the copy).
    pub(crate) async fn take_snapshot(
        &self,
        name: &str,
        snapshot: Option<&str>,
        temporary: bool,
    ) -> Result<SnapshotFacts, SnapshotError> {
        if let Some(snapshot) = snapshot {
            super::validate_snapshot_name(snapshot)?;
        }
        let handle = self.handle(name).await?;
        let _turn = self.snapshot_turn(&handle, name).await?;
        let facts = self.lookup(name).await?;
        let engine = self.launcher.engine();
        // Go and Rust keep no cell log: nothing to resume a paused one for.
        let was_paused = facts.info.state == ContainerState::Paused && facts.language.kernel().is_some();
        if was_paused {
            engine.unpause_sandbox(&facts.info.id).await?;
        }
        let taken = self.take_unpaused(name, snapshot, temporary, &handle, was_paused).await;
        // A paused session is left paused whatever happened (a snapshot
        // taken leaves it so).
        let resumed = |now: SessionFacts| now.info.state == ContainerState::Running;
        if was_paused
            && taken.is_err()
            && self.lookup(name).await.is_ok_and(resumed)
            && let Err(error) = engine.pause_sandbox(&facts.info.id).await
        {
            tracing::warn!(session = name, %error, "could not pause the session again after its snapshot");
        }
        taken
    }

    /// [`SessionManager::take_snapshot`] once a paused session is resumed;
    /// `leave_paused`: pause it at the end.
    async fn take_unpaused(
        &self,
        name: &str,
        snapshot: Option<&str>,
        temporary: bool,
        handle: &SessionHandle,
        leave_paused: bool,
    ) -> Result<SnapshotFacts, SnapshotError> {
        let facts = self.idle_session(name, handle, leave_paused).await?;
        let config = self.launcher.config();
        let existing = self.snapshot_facts(Some(name)).await?;
        let taken: Vec<String> = existing.iter().map(|facts| facts.name.clone()).collect();
        let snapshot = match (snapshot, temporary) {
            (_, true) => format!("fork-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            (Some(snapshot), false) => snapshot.to_string(),
            (None, false) => generated_name(&taken),
        };
        if taken.contains(&snapshot) {
            return Err(SnapshotError::Exists {
                session: name.to_string(),
                snapshot,
            });
        }
        if !temporary && existing.len() >= config.max_snapshots {
            return Err(SnapshotError::TooMany {
                session: name.to_string(),
                max: config.max_snapshots,
            });
        }
        let volumes = session_volumes(&facts)?;
        let image = facts.info.image.clone().ok_or_else(|| SessionError::Unusable {
            name: name.to_string(),
            state: "without a known image".to_string(),
        })?;
        let seccomp = facts
            .info
            .labels
            .get(labels::SECCOMP)
            .cloned()
            .ok_or_else(|| SessionError::Unusable {
                name: name.to_string(),
                state: "without a known seccomp profile".to_string(),
            })?;
        let (cells, cells_complete) = self.cell_log(handle, &facts).await?;
        let now = unix_now();
        let keep = if temporary {
            TEMPORARY_KEEP.as_secs()
        } else {
            config.snapshot_ttl_s
        };
        let mut made = SnapshotFacts {
            session: name.to_string(),
            name: snapshot.clone(),
            language: facts.language,
            image: image.clone(),
            created: now,
            expires_at: now + keep,
            ttl: facts.ttl,
            seccomp,
            mounts: facts.mounts.clone(),
            grants: facts
                .grants
                .as_ref()
                .map(|grants| grants.iter().map(ToString::to_string).collect()),
            cells: cells.len(),
            cells_complete,
            size_bytes: 0,
            temporary,
        };
        let engine = self.launcher.engine();
        let files = made.files_volume();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let files_labels = HashMap::from([
            (labels::KIND.to_string(), FILES_KIND.to_string()),
            (labels::SESSION.to_string(), name.to_string()),
            (labels::SNAPSHOT.to_string(), snapshot.clone()),
            (labels::CREATED.to_string(), now.to_string()),
            (labels::TOKEN.to_string(), token.clone()),
        ]);
        engine.create_volume(&files, &files_labels, VolumeBacking::Disk).await?;
        // The engine hands back a volume of that name when one exists: a
        // snapshot of that name being made (by another server) or deleted.
        let ours = engine
            .volume_labels(&files)
            .await?
            .and_then(|labels| labels.get(labels::TOKEN).cloned());
        if ours.as_deref() != Some(token.as_str()) {
            return Err(SnapshotError::NameBusy {
                session: name.to_string(),
                snapshot,
            });
        }
        let running = facts.info.state == ContainerState::Running;
        let copied = async {
            // File operations wait, and pause and resume refuse, while the
            // session is frozen for the copy.
            let _files_wait = Raised::raise(&handle.files_take_turn);
            let _copying = Raised::raise(&handle.copying);
            let copy = CopyContainer::launch(
                &self.launcher,
                facts.language,
                &image,
                &files,
                &volumes,
                Direction::Take,
            )
            .await?;
            if leave_paused {
                // Apart from the resume, so the engine's late resume event
                // does not undo its record of this pause.
                tokio::time::sleep(PAUSE_GAP).await;
            }
            let paused = match running {
                true => engine.pause_sandbox(&facts.info.id).await,
                false => Ok(()),
            };
            let frozen = paused.is_ok();
            let copied = match paused {
                Ok(()) => copy.take(&cells, config).await,
                Err(error) => Err(error.into()),
            };
            copy.remove(engine.as_ref()).await;
            if running && frozen && !leave_paused {
                engine.unpause_sandbox(&facts.info.id).await?;
            }
            made.size_bytes = copied?;
            // Destroyed meanwhile: its volumes may have gone before the copy
            // mounted them.
            if self.lookup(name).await.map(|now| now.info.id).ok() != Some(facts.info.id.clone()) {
                return Err(SessionError::Unknown(name.to_string()).into());
            }
            // The record makes the snapshot exist.
            engine
                .create_volume(&record_volume(name, &snapshot), &made.labels(), VolumeBacking::Disk)
                .await?;
            Ok::<(), SnapshotError>(())
        }
        .await;
        if let Err(error) = copied {
            if let Err(removal) = engine.remove_volume(&files).await {
                tracing::warn!(volume = %files, %removal, "could not remove a snapshot whose copy failed");
            }
            return Err(error);
        }
        Ok(made)
    }

    /// The cells the session's runner ran (none for Go and Rust, which
    /// keep no interpreter state), and whether the log is whole. A stopped
    /// session has no interpreter state (nor files, when they lived in
    /// memory).
    async fn cell_log(
        &self,
        handle: &SessionHandle,
        facts: &SessionFacts,
    ) -> Result<(Vec<LoggedCell>, bool), SnapshotError> {
        match facts.info.state {
            state if state.is_stopped() => {
                if facts.storage() == SessionStorage::Memory {
                    return Err(SessionError::StoppedInMemory {
                        name: facts.name.clone(),
                    }
                    .into());
                }
                Ok((Vec::new(), true))
            }
            _ if facts.language.kernel().is_none() => Ok((Vec::new(), true)),
            ContainerState::Running => self.ask_cells(handle, facts).await,
            state => Err(SessionError::Unusable {
                name: facts.name.clone(),
                state: state.name().to_string(),
            }
            .into()),
        }
    }

    async fn ask_cells(
        &self,
        handle: &SessionHandle,
        facts: &SessionFacts,
    ) -> Result<(Vec<LoggedCell>, bool), SnapshotError> {
        let connection = handle.connect(self.launcher.engine().as_ref()).await?;
        let id = new_run_id();
        let payload = HostMessage::Cells { id: &id }.encode()?;
        match connection.request(&id, &payload, CELLS_TIMEOUT).await {
            Ok(RunnerMessage::Cells { cells, complete, .. }) => Ok((cells, complete)),
            Ok(_) => Err(SnapshotError::NoLog {
                name: facts.name.clone(),
            }),
            Err(RequestFailure::Timeout) => Err(SnapshotError::CopyFailed {
                detail: format!(
                    "the session's runner did not send its cell log within {} s",
                    CELLS_TIMEOUT.as_secs()
                ),
            }),
            Err(RequestFailure::Gone(error)) => Err(error.into()),
        }
    }
}

/// The session's workspace, outputs, packages and `/tmp` volumes.
pub(super) fn session_volumes(facts: &SessionFacts) -> Result<SessionVolumes, SnapshotError> {
    let at = |target: &str| {
        facts
            .info
            .volumes
            .iter()
            .find(|volume| volume.target == target)
            .map(|volume| volume.name.clone())
            .ok_or_else(|| SessionError::Unusable {
                name: facts.name.clone(),
                state: format!("without a volume at {target}"),
            })
    };
    Ok(SessionVolumes {
        workspace: at(WORKSPACE.1)?,
        outputs: at(OUTPUTS.1)?,
        packages: at(PACKAGES.1)?,
        tmp: at(TMP.1).ok(),
    })
}
