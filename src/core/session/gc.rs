//! Garbage collection of expired sessions and snapshots (and of what
//! destroyed sessions left), in the background.

use super::SessionManager;
use super::labels::SessionFacts;
use crate::clock::unix_now;
use crate::core::background::Background;
use crate::core::error::SessionError;
use crate::core::jobs;
use crate::core::protocol::JobState;
use crate::docker::ContainerState;
use crate::security::audit::{AuditEvent, SessionEvent};
use std::sync::Arc;
use std::time::Duration;

impl SessionManager {
    /// Starts the background garbage collector of expired sessions; it ends
    /// when `background` shuts down (a collection under way finishes first).
    pub fn start_gc(self: &Arc<Self>, background: &Background) {
        let manager = self.clone();
        let interval = Duration::from_secs(manager.launcher.config().gc_interval_s);
        let stop = background.clone();
        let _ = manager.removals.set(background.clone());
        background.spawn(async move {
            // What a server killed before removing it goes at once.
            manager.sweep().await;
            manager.collect_networks().await;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = stop.stopping() => return,
                }
                match manager.collect_expired().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "garbage-collected expired sessions"),
                    Err(error) => tracing::debug!(%error, "session garbage collection skipped"),
                }
                if let Err(error) = manager.remove_expired_snapshots().await {
                    tracing::debug!(%error, "snapshot garbage collection skipped");
                }
            }
        });
    }

    /// Destroys every expired session; returns how many.
    pub async fn collect_expired(&self) -> Result<usize, SessionError> {
        let now = unix_now();
        let all = self.session_containers().await?;
        let ids: Vec<String> = all.iter().map(|info| info.id.clone()).collect();
        let mut removed = 0;
        for facts in all.into_iter().filter_map(|info| self.facts(info)) {
            if facts.expires_at() <= now && !self.is_busy(&facts.name) && !self.runs_job(&facts).await {
                tracing::info!(session = %facts.name, "session expired");
                match self.retire(&facts).await {
                    Ok(()) => {}
                    // Destroyed meanwhile (by another server).
                    Err(SessionError::Unknown(_)) => continue,
                    Err(error) => return Err(error),
                }
                self.audit.record(AuditEvent::Session(SessionEvent::Expired {
                    name: facts.name.clone(),
                    language: facts.language.name().to_string(),
                }));
                removed += 1;
            }
        }
        self.store.retain(&ids);
        match self.collect_stale_spares().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed spare sessions no config claims"),
            Err(error) => tracing::debug!(%error, "collecting stale spare sessions skipped"),
        }
        self.sweep().await;
        self.collect_networks().await;
        Ok(removed)
    }

    /// Removes what destroyed sessions left (see `remove.rs`).
    async fn sweep(&self) {
        match self.sweep_remains().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed what destroyed sessions left behind"),
            Err(error) => tracing::debug!(%error, "sweeping destroyed sessions skipped"),
        }
    }

    /// True when a job runs in the session (any server's): it is kept
    /// until the job ends, whatever its time to live.
    pub(super) async fn runs_job(&self, facts: &SessionFacts) -> bool {
        if facts.info.state != ContainerState::Running {
            return false;
        }
        let Ok(connection) = self.runner(&facts.name).await else {
            return false;
        };
        let running = jobs::list(&connection)
            .await
            .is_ok_and(|jobs| jobs.iter().any(|job| job.state == JobState::Running));
        if running {
            self.touch(&facts.info.id);
        }
        running
    }

    /// Removes sandbox networks nothing uses any more.
    async fn collect_networks(&self) {
        match self.egress.collect_orphans().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed unused sandbox networks"),
            Err(error) => tracing::debug!(%error, "collecting unused sandbox networks skipped"),
        }
    }
}
