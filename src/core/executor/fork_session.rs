//! Forking a session: a new session made with a snapshot's configuration
//! (language, image, seccomp profile, host folders, network grants, each
//! checked again as a create checks it) and filled with the snapshot's
//! files and state. Without a snapshot name the source session's state now
//! is forked, through a temporary snapshot deleted afterwards.

use super::Executor;
use crate::core::error::ExecuteError;
use crate::core::session::{NewSession, Restored, SnapshotError, SnapshotFacts};
use crate::core::watch::Watch;
use crate::security::audit::{AuditEvent, SessionEvent};

/// A `sandbox_session fork` request.
#[derive(Debug, Clone)]
pub struct ForkRequest {
    /// The session forked (or whose snapshot is).
    pub source: String,
    /// The snapshot to fork; `None`: the source session's state now.
    pub snapshot: Option<String>,
    pub new_name: String,
    /// The new session's ttl; `None`: the source's (at most the largest allowed).
    pub ttl: Option<u64>,
}

impl Executor {
    /// Makes session `new_name` from a snapshot of `source`.
    pub async fn fork_session(&self, request: &ForkRequest, watch: &Watch) -> Result<Restored, ExecuteError> {
        // A taken name is refused before any copy is made.
        self.sessions.check_create(&request.new_name, request.ttl).await?;
        let (snapshot, temporary) = match &request.snapshot {
            Some(snapshot) => (self.sessions.find_snapshot(&request.source, snapshot).await?, false),
            None => {
                watch.progress(format!("taking a snapshot of session {}", request.source));
                (self.sessions.take_snapshot(&request.source, None, true).await?, true)
            }
        };
        let forked = self.fork_from(&snapshot, request, watch).await;
        if temporary && let Err(error) = self.sessions.remove_snapshot(&snapshot).await {
            tracing::warn!(snapshot = %snapshot.name, %error, "could not delete a fork's temporary snapshot; it expires within the hour");
        }
        let forked = forked?;
        self.audit.record(AuditEvent::Session(SessionEvent::Forked {
            name: request.new_name.clone(),
            from: request.source.clone(),
            snapshot: request.snapshot.clone(),
            replayed: forked.replay.as_ref().map_or(0, |replay| replay.replayed),
            failed: forked.replay.as_ref().map_or(0, |replay| replay.failed.len()),
        }));
        Ok(forked)
    }

    async fn fork_from(
        &self,
        snapshot: &SnapshotFacts,
        request: &ForkRequest,
        watch: &Watch,
    ) -> Result<Restored, ExecuteError> {
        if !self.engine.image_exists(&snapshot.image).await? {
            return Err(SnapshotError::ImageGone {
                snapshot: snapshot.name.clone(),
                image: snapshot.image.clone(),
            }
            .into());
        }
        let mount_names: Vec<String> = snapshot.mounts.iter().map(|mount| mount.name.clone()).collect();
        let folders = self.host_folders(&mount_names)?;
        let seccomp = match snapshot.seccomp == self.config.seccomp.name() {
            true => self.config.seccomp.clone(),
            false => self.session_seccomp(Some(&snapshot.seccomp))?,
        };
        let grants = match &snapshot.grants {
            Some(hosts) => Some(self.egress.review(hosts, &[])?),
            None => None,
        };
        let ttl = request
            .ttl
            .unwrap_or_else(|| snapshot.ttl.min(self.config.max_session_ttl_s));
        watch.progress(format!("creating session {}", request.new_name));
        self.sessions
            .create(NewSession {
                name: &request.new_name,
                language: snapshot.language,
                image: &snapshot.image,
                ttl: Some(ttl),
                folders: &folders,
                seccomp,
                grants,
            })
            .await?;
        match self.sessions.fill_fork(&request.new_name, snapshot, watch).await {
            Ok(replay) => Ok(Restored {
                session: self.sessions.get(&request.new_name).await?,
                snapshot: snapshot.info(),
                replay,
            }),
            Err(error) => {
                if let Err(destroy) = self.sessions.destroy(&request.new_name).await {
                    tracing::warn!(session = %request.new_name, error = %destroy, "could not remove a fork that failed");
                }
                Err(error.into())
            }
        }
    }
}
