//! Bringing a snapshot back: into the session it was taken of (restore,
//! in place) or into a session just made for it (a fork, which the
//! executor makes with the snapshot's configuration). The session's
//! container is started afresh (every process the code left ends, the
//! kernel is new), the snapshot's files replace the session's, its cells
//! that succeeded run again, and the files are copied once more (a
//! replayed cell redoes what it did to files, such as appending to one).

use super::copy::{CopyContainer, Direction};
use super::replay::{ReplaySummary, replay};
use super::take::session_volumes;
use super::{SnapshotError, SnapshotFacts, SnapshotInfo};
use crate::core::connection::RunnerConnection;
use crate::core::error::SessionError;
use crate::core::session::{SessionInfo, SessionManager};
use crate::core::watch::Watch;
use crate::docker::ContainerState;
use crate::security::audit::{AuditEvent, SessionEvent};

/// What a restore or fork did.
pub struct Restored {
    pub session: SessionInfo,
    pub snapshot: SnapshotInfo,
    /// `None` for Go and Rust, and when the snapshot logged no cells.
    pub replay: Option<ReplaySummary>,
}

impl SessionManager {
    /// Rolls session `name` back to its snapshot `snapshot`.
    pub async fn restore(&self, name: &str, snapshot: &str, watch: &Watch) -> Result<Restored, SnapshotError> {
        let snap = self.find_snapshot(name, snapshot).await?;
        let handle = self.handle(name).await?;
        let _turn = self.snapshot_turn(&handle, name).await?;
        let facts = self.lookup(name).await?;
        if facts.info.id != handle.container_id {
            self.lock_handles().remove(name);
            return Err(SessionError::Unknown(name.to_string()).into());
        }
        if snap.language != facts.language {
            return Err(SnapshotError::LanguageMismatch {
                name: name.to_string(),
                snapshot: snapshot.to_string(),
                snapshot_language: snap.language.name().to_string(),
                session_language: facts.language.name().to_string(),
            });
        }
        if self.runs_job(&facts).await {
            return Err(SnapshotError::JobRunning { name: name.to_string() });
        }
        let volumes = session_volumes(&facts)?;
        let image = facts.info.image.clone().unwrap_or_else(|| snap.image.clone());
        let files = snap.files_volume();
        watch.progress(format!("restarting session {name} and copying snapshot {snapshot} in"));
        // The copy container starts while the session's container stops and
        // starts again.
        let (restarted, copy) = tokio::join!(
            async {
                let engine = self.launcher.engine();
                if facts.info.state == ContainerState::Paused {
                    engine.unpause_sandbox(&facts.info.id).await?;
                }
                engine.stop_sandbox(&facts.info.id).await?;
                handle.set_connection(None);
                self.start_again(&handle, &facts).await
            },
            CopyContainer::launch(
                &self.launcher,
                facts.language,
                &image,
                &files,
                &volumes,
                Direction::Restore
            ),
        );
        let copy = copy?;
        if let Err(error) = restarted {
            copy.remove(self.launcher.engine()).await;
            return Err(error.into());
        }
        let filled = async {
            self.serve_network(&facts, true).await?;
            let connection = handle.connect(self.launcher.engine()).await?;
            self.fill(&connection, &snap, &copy, name, watch).await
        }
        .await;
        copy.remove(self.launcher.engine()).await;
        self.touch(&facts.info.id);
        let replay = filled?;
        self.audit.record(AuditEvent::Session(SessionEvent::Restored {
            name: name.to_string(),
            snapshot: snapshot.to_string(),
            replayed: replay.as_ref().map_or(0, |replay| replay.replayed),
            failed: replay.as_ref().map_or(0, |replay| replay.failed.len()),
        }));
        Ok(Restored {
            session: self.get(name).await?,
            snapshot: snap.info(),
            replay,
        })
    }

    /// Fills session `name`, just made by a fork with `snap`'s
    /// configuration, with the snapshot's files and state.
    pub(crate) async fn fill_fork(
        &self,
        name: &str,
        snap: &SnapshotFacts,
        watch: &Watch,
    ) -> Result<Option<ReplaySummary>, SnapshotError> {
        let handle = self.handle(name).await?;
        let _turn = handle.turn.lock().await;
        let facts = self.lookup(name).await?;
        let volumes = session_volumes(&facts)?;
        let image = facts.info.image.clone().unwrap_or_else(|| snap.image.clone());
        let copy = CopyContainer::launch(
            &self.launcher,
            facts.language,
            &image,
            &snap.files_volume(),
            &volumes,
            Direction::Restore,
        )
        .await?;
        let filled = async {
            let connection = handle.connect(self.launcher.engine()).await?;
            self.fill(&connection, snap, &copy, name, watch).await
        }
        .await;
        copy.remove(self.launcher.engine()).await;
        filled
    }

    /// Copies the snapshot's files into the session, replays its cells in
    /// the session's fresh kernel, and copies the files again when cells
    /// ran.
    async fn fill(
        &self,
        connection: &RunnerConnection,
        snap: &SnapshotFacts,
        copy: &CopyContainer,
        name: &str,
        watch: &Watch,
    ) -> Result<Option<ReplaySummary>, SnapshotError> {
        let config = self.launcher.config();
        let broken = |error: SnapshotError| SnapshotError::RestoreBroken {
            name: name.to_string(),
            detail: error.to_string(),
        };
        let cells = match snap.language.kernel().is_some() && snap.cells > 0 {
            true => copy.read_cells(&snap.name).await?,
            false => Vec::new(),
        };
        copy.restore(config).await.map_err(broken)?;
        if cells.is_empty() {
            return Ok(None);
        }
        watch.progress(format!("replaying {} logged cell(s)", cells.len()));
        let summary = replay(connection, &cells, snap.cells_complete, watch).await?;
        if summary.replayed > 0 {
            copy.restore(config).await.map_err(broken)?;
        }
        Ok(Some(summary))
    }
}
