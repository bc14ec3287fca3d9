//! Bringing a snapshot back: into the session it was taken of (restore,
//! in place) or into a session just made for it (a fork, which the
//! executor makes with the snapshot's configuration). The copy container
//! starts first (so a failure there leaves the session as it was, and its
//! mounts keep files in memory alive), then the session's container is
//! started afresh (every process the code left ends, the kernel is new),
//! the snapshot's files replace the session's, its cells that succeeded
//! run again, and the files are copied once more (a replayed cell redoes
//! what it did to files, such as appending to one). The session is paused
//! while files are copied, so nothing in it races the copy.

use super::copy::{CopyContainer, Direction};
use super::replay::{ReplaySummary, replay};
use super::take::session_volumes;
use super::{SnapshotError, SnapshotFacts, SnapshotInfo};
use crate::core::protocol::LoggedCell;
use crate::core::session::handle::Raised;
use crate::core::session::labels::SessionFacts;
use crate::core::session::{SessionHandle, SessionInfo, SessionManager};
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
        let facts = self.idle_session(name, &handle, false).await?;
        if snap.language != facts.language {
            return Err(SnapshotError::LanguageMismatch {
                name: name.to_string(),
                snapshot: snapshot.to_string(),
                snapshot_language: snap.language.name().to_string(),
                session_language: facts.language.name().to_string(),
            });
        }
        // A long replay must not let another server's gc take the session.
        self.touch(&facts.info.id);
        let _files_wait = Raised::raise(&handle.files_take_turn);
        watch.progress(format!("copying snapshot {snapshot} into session {name}"));
        let copy = self.copy_container(&facts, &snap).await?;
        let filled = async {
            // Read before anything changes: a snapshot deleted meanwhile
            // leaves the session as it was.
            let cells = self.snapshot_cells(&snap, &copy).await?;
            self.start_afresh(&handle, &facts).await?;
            self.fill(&handle, &facts, &snap, &copy, cells, watch).await
        }
        .await;
        copy.remove(self.launcher.engine().as_ref()).await;
        self.touch(&facts.info.id);
        if matches!(filled, Err(SnapshotError::Vanished)) {
            self.discard_made_by_mount(&snap.files_volume()).await;
        }
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
        let _files_wait = Raised::raise(&handle.files_take_turn);
        let facts = self.lookup(name).await?;
        let copy = self.copy_container(&facts, snap).await?;
        let filled = async {
            let cells = self.snapshot_cells(snap, &copy).await?;
            self.fill(&handle, &facts, snap, &copy, cells, watch).await
        }
        .await;
        copy.remove(self.launcher.engine().as_ref()).await;
        if matches!(filled, Err(SnapshotError::Vanished)) {
            self.discard_made_by_mount(&snap.files_volume()).await;
        }
        filled
    }

    /// Removes the empty volume the engine made when a copy container
    /// mounted a snapshot deleted meanwhile (it has none of our labels).
    async fn discard_made_by_mount(&self, volume: &str) {
        let engine = self.launcher.engine();
        if let Ok(Some(labels)) = engine.volume_labels(volume).await
            && !labels.contains_key(crate::docker::labels::KIND)
            && let Err(error) = engine.remove_volume(volume).await
        {
            tracing::debug!(%volume, %error, "could not remove an empty volume a copy made");
        }
    }

    /// A copy container from the snapshot into the session's volumes.
    async fn copy_container(&self, facts: &SessionFacts, snap: &SnapshotFacts) -> Result<CopyContainer, SnapshotError> {
        let image = facts.info.image.clone().unwrap_or_else(|| snap.image.clone());
        CopyContainer::launch(
            &self.launcher,
            facts.language,
            &image,
            &snap.files_volume(),
            &session_volumes(facts)?,
            Direction::Restore,
        )
        .await
    }

    /// Stops the session's container (every process in it ends) and starts
    /// it again with a fresh runner and kernel.
    async fn start_afresh(&self, handle: &SessionHandle, facts: &SessionFacts) -> Result<(), SnapshotError> {
        let engine = self.launcher.engine();
        if facts.info.state == ContainerState::Paused {
            engine.unpause_sandbox(&facts.info.id).await?;
        }
        engine.stop_sandbox(&facts.info.id).await?;
        handle.set_connection(None);
        self.start_again(handle, facts).await?;
        self.serve_network(facts, true).await?;
        Ok(())
    }

    /// The snapshot's cell log (none for Go and Rust); `Vanished` when the
    /// snapshot was deleted before the copy container mounted it.
    async fn snapshot_cells(
        &self,
        snap: &SnapshotFacts,
        copy: &CopyContainer,
    ) -> Result<Vec<LoggedCell>, SnapshotError> {
        let cells = copy.read_cells(&snap.name).await?;
        match snap.language.kernel() {
            Some(_) => Ok(cells),
            None => Ok(Vec::new()),
        }
    }

    /// Copies the snapshot's files into the session (whose container was
    /// just started: only its idle runner runs), replays `cells` in its
    /// fresh kernel, and copies the files again, the session paused, when
    /// cells may have run (also when the replay failed).
    async fn fill(
        &self,
        handle: &SessionHandle,
        facts: &SessionFacts,
        snap: &SnapshotFacts,
        copy: &CopyContainer,
        cells: Vec<LoggedCell>,
        watch: &Watch,
    ) -> Result<Option<ReplaySummary>, SnapshotError> {
        let config = self.launcher.config();
        copy.restore(config).await.map_err(|error| broken(facts, error))?;
        if cells.is_empty() {
            return Ok(None);
        }
        watch.progress(format!("replaying {} logged cell(s)", cells.len()));
        let engine = self.launcher.engine();
        let connection = handle.connect(engine.as_ref()).await?;
        let replayed = replay(&connection, &cells, snap.cells_complete, watch).await;
        if replayed.as_ref().is_ok_and(|summary| summary.replayed == 0) {
            return replayed.map(Some);
        }
        // What the replayed cells started runs: it is frozen while the
        // files are copied.
        let _copying = Raised::raise(&handle.copying);
        engine.pause_sandbox(&facts.info.id).await?;
        let copied = copy.restore(config).await.map_err(|error| broken(facts, error));
        let resumed = engine.unpause_sandbox(&facts.info.id).await;
        copied?;
        resumed?;
        replayed.map(Some)
    }
}

/// A copy into the session that failed after it began to clear its files.
fn broken(facts: &SessionFacts, error: SnapshotError) -> SnapshotError {
    SnapshotError::RestoreBroken {
        name: facts.name.clone(),
        detail: error.to_string(),
    }
}
