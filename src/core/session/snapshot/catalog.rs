//! Finding, listing, deleting and expiring snapshots (their records'
//! labels are the catalog).

use super::{
    FILES_KIND, ORPHAN_AGE, SNAPSHOT_KIND, SnapshotError, SnapshotFacts, SnapshotInfo, record_volume,
    validate_snapshot_name,
};
use crate::clock::unix_now;
use crate::core::error::SessionError;
use crate::core::session::SessionManager;
use crate::core::session::labels::validate_name;
use crate::docker::{LabelledVolume, labels};
use crate::security::audit::{AuditEvent, SessionEvent};

impl SessionManager {
    /// The snapshots on the engine (of `session` when given), oldest
    /// first, temporary ones left out.
    pub(super) async fn snapshot_facts(&self, session: Option<&str>) -> Result<Vec<SnapshotFacts>, SessionError> {
        let mut wanted = vec![(labels::KIND, SNAPSHOT_KIND)];
        if let Some(session) = session {
            wanted.push((labels::SESSION, session));
        }
        let mut found: Vec<SnapshotFacts> = self
            .launcher
            .engine()
            .labelled_volumes(&wanted)
            .await?
            .iter()
            .filter_map(SnapshotFacts::from_volume)
            .filter(|facts| !facts.temporary)
            .collect();
        found.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(found)
    }

    /// One snapshot of a session.
    pub(crate) async fn find_snapshot(&self, session: &str, snapshot: &str) -> Result<SnapshotFacts, SnapshotError> {
        validate_name(session)?;
        validate_snapshot_name(snapshot)?;
        let unknown = || SnapshotError::Unknown {
            session: session.to_string(),
            snapshot: snapshot.to_string(),
        };
        let volume = record_volume(session, snapshot);
        let labels = self
            .launcher
            .engine()
            .volume_labels(&volume)
            .await?
            .ok_or_else(unknown)?;
        SnapshotFacts::from_volume(&LabelledVolume { name: volume, labels }).ok_or_else(unknown)
    }

    /// A session's snapshots, oldest first. The session itself may be
    /// gone: its snapshots stay until they expire.
    pub async fn snapshots(&self, session: &str) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        validate_name(session)?;
        Ok(self
            .snapshot_facts(Some(session))
            .await?
            .iter()
            .map(SnapshotFacts::info)
            .collect())
    }

    /// Deletes a snapshot.
    pub async fn delete_snapshot(&self, session: &str, snapshot: &str) -> Result<SnapshotInfo, SnapshotError> {
        let facts = self.find_snapshot(session, snapshot).await?;
        self.remove_snapshot(&facts).await?;
        self.audit.record(AuditEvent::Session(SessionEvent::SnapshotDeleted {
            name: session.to_string(),
            snapshot: snapshot.to_string(),
        }));
        Ok(facts.info())
    }

    /// Deletes every snapshot of a session (destroy with `snapshots`);
    /// returns those deleted and those that could not be.
    pub async fn delete_snapshots(&self, session: &str) -> Result<(Vec<SnapshotInfo>, Vec<String>), SnapshotError> {
        let (mut deleted, mut failed) = (Vec::new(), Vec::new());
        for facts in self.snapshot_facts(Some(session)).await? {
            match self.remove_snapshot(&facts).await {
                Ok(()) => {
                    self.audit.record(AuditEvent::Session(SessionEvent::SnapshotDeleted {
                        name: session.to_string(),
                        snapshot: facts.name.clone(),
                    }));
                    deleted.push(facts.info());
                }
                Err(error) => failed.push(format!("{} ({error})", facts.name)),
            }
        }
        Ok((deleted, failed))
    }

    /// Removes snapshots past their expiry (temporary ones included),
    /// records whose labels do not read back, and files volumes a copy cut
    /// short left; returns how many went. A snapshot a copy container
    /// still reads is left for the next round.
    pub(in crate::core::session) async fn remove_expired_snapshots(&self) -> Result<usize, SessionError> {
        let engine = self.launcher.engine();
        let now = unix_now();
        let mut removed = 0;
        let mut recorded = Vec::new();
        for record in engine.labelled_volumes(&[(labels::KIND, SNAPSHOT_KIND)]).await? {
            let Some(facts) = SnapshotFacts::from_volume(&record) else {
                tracing::warn!(volume = %record.name, "removing a snapshot record whose labels do not read back");
                if engine.remove_volume(&record.name).await.is_ok() {
                    removed += 1;
                }
                continue;
            };
            if facts.expires_at > now {
                recorded.push(facts.files_volume());
                continue;
            }
            match self.remove_snapshot(&facts).await {
                Ok(()) => {
                    tracing::info!(session = %facts.session, snapshot = %facts.name, "snapshot expired");
                    if !facts.temporary {
                        self.audit.record(AuditEvent::Session(SessionEvent::SnapshotExpired {
                            name: facts.session.clone(),
                            snapshot: facts.name.clone(),
                        }));
                    }
                    removed += 1;
                }
                Err(error) => {
                    recorded.push(facts.files_volume());
                    tracing::debug!(snapshot = %facts.name, %error, "could not remove an expired snapshot");
                }
            }
        }
        for files in engine.labelled_volumes(&[(labels::KIND, FILES_KIND)]).await? {
            let made = files
                .labels
                .get(labels::CREATED)
                .and_then(|created| created.parse::<u64>().ok())
                .unwrap_or(0);
            if recorded.contains(&files.name) || now.saturating_sub(made) < ORPHAN_AGE.as_secs() {
                continue;
            }
            match engine.remove_volume(&files.name).await {
                Ok(()) => removed += 1,
                Err(error) => tracing::debug!(volume = %files.name, %error, "could not remove a snapshot's left files"),
            }
        }
        Ok(removed)
    }

    /// Removes a snapshot: its record first (it no longer exists for any
    /// server), then its files.
    pub(crate) async fn remove_snapshot(&self, facts: &SnapshotFacts) -> Result<(), SnapshotError> {
        let engine = self.launcher.engine();
        engine
            .remove_volume(&record_volume(&facts.session, &facts.name))
            .await?;
        if let Err(error) = engine.remove_volume(&facts.files_volume()).await {
            // A restore or fork may be copying from it; the gc removes it.
            tracing::debug!(snapshot = %facts.name, %error, "a deleted snapshot's files are removed later");
        }
        Ok(())
    }
}
