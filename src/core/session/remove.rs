//! Destroying a session: the container is renamed to a tombstone name at
//! once (the session's name is free, no server finds it as the session any
//! more), then it, its volumes and its network are removed in the
//! background. Tombstones and unused session volumes a server left when it
//! died mid-removal are swept by any server.

use super::SessionManager;
use super::labels::{SessionFacts, TOMBSTONE_PREFIX, VOLUME_KIND, tombstone_name};
use super::spares::taken_name;
use crate::clock::unix_now;
use crate::core::egress::Owner;
use crate::core::error::SessionError;
use crate::docker::{SandboxInfo, labels};
use std::sync::Arc;
use std::time::Duration;

/// A session volume no container uses and older than this is left over (a
/// create makes its volumes just before its container).
const UNUSED_VOLUME_AGE: Duration = Duration::from_secs(120);

/// What is left to remove of a destroyed session.
struct Remains {
    container_id: String,
    volumes: Vec<String>,
    network: Option<String>,
}

impl Remains {
    fn of(info: &SandboxInfo, network: Option<String>) -> Self {
        Self {
            container_id: info.id.clone(),
            volumes: info.volumes.iter().map(|volume| volume.name.clone()).collect(),
            network,
        }
    }
}

impl SessionManager {
    /// Takes the session away at once: its container gets a tombstone
    /// name, this server forgets it, and its removal starts in the
    /// background (owned by the server's background work, so shutdown
    /// waits for it). Fails when the engine cannot be reached, or when the
    /// session is already being destroyed (by another server).
    pub(super) async fn retire(&self, facts: &SessionFacts) -> Result<(), SessionError> {
        let engine = self.launcher.engine();
        if !engine
            .rename_sandbox(&facts.info.id, &tombstone_name(&facts.info.id))
            .await?
        {
            return Err(SessionError::Unknown(facts.name.clone()));
        }
        self.lock_handles().remove(&facts.name);
        // A new session of this name may bind the same owner at once.
        self.egress.release(&Owner::Session(facts.name.clone()));
        self.store.remove(&facts.info.id);
        let remains = Remains::of(&facts.info, facts.network().map(|network| network.name));
        match self.removals.get() {
            Some(background) => {
                let manager = self.removal_context();
                background.spawn(async move { manager.remove_remains(remains).await });
            }
            None => self.removal_context().remove_remains(remains).await,
        }
        Ok(())
    }

    /// Takes an unclaimed spare away (a tombstone name, so no create
    /// claims it) and removes it with its volumes. False when it was
    /// claimed or removed meanwhile.
    pub(super) async fn remove_spare(&self, spare: &SandboxInfo) -> Result<bool, SessionError> {
        // Taken first, as a claim takes it: a spare claimed meanwhile is a
        // session and must stay.
        if !self.take_spare(spare).await {
            return Ok(false);
        }
        self.remove_taken(spare, &taken_name(&spare.id)).await
    }

    /// Removes a spare left taken (a server died mid-claim). False when it
    /// is gone or was claimed meanwhile.
    pub(super) async fn remove_taken_spare(&self, spare: &SandboxInfo) -> Result<bool, SessionError> {
        match spare.name.as_deref() {
            Some(taken) => self.remove_taken(spare, taken).await,
            None => Ok(false),
        }
    }

    /// Tombstones a taken spare, found by its name `taken` (one claimed
    /// meanwhile has another), and removes it with its volumes.
    async fn remove_taken(&self, spare: &SandboxInfo, taken: &str) -> Result<bool, SessionError> {
        if !self
            .launcher
            .engine()
            .rename_sandbox(taken, &tombstone_name(&spare.id))
            .await?
        {
            return Ok(false);
        }
        self.spare_connections.lock().remove(&spare.id);
        self.removal_context().remove_remains(Remains::of(spare, None)).await;
        Ok(true)
    }

    fn removal_context(&self) -> Removal {
        Removal {
            launcher: self.launcher.clone(),
            egress: self.egress.clone(),
        }
    }

    /// Removes tombstoned session containers (with their volumes and
    /// networks): those whose server died before removing them, and any
    /// still being removed (by this server or another: the engine removes
    /// each once, the slower removal only logs), and session volumes no
    /// container uses (a create or removal cut short). Returns how many
    /// containers and volumes went.
    pub(super) async fn sweep_remains(&self) -> Result<usize, SessionError> {
        let engine = self.launcher.engine();
        let removal = self.removal_context();
        let mut removed = 0;
        for info in self.session_containers().await? {
            if info
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with(TOMBSTONE_PREFIX))
            {
                tracing::info!(container = %info.id, "removing a destroyed session left behind");
                let network = info.labels.get(labels::NETWORK_NAME).cloned();
                removal.remove_remains(Remains::of(&info, network)).await;
                removed += 1;
            }
        }
        let now = unix_now();
        for unused in engine.unused_volumes(&[(labels::KIND, VOLUME_KIND)]).await? {
            let volume = unused.name;
            // Volumes made before the label are old enough.
            let made = unused
                .labels
                .get(labels::CREATED)
                .and_then(|created| created.parse::<u64>().ok())
                .unwrap_or(0);
            if now.saturating_sub(made) >= UNUSED_VOLUME_AGE.as_secs() {
                match engine.remove_volume(&volume).await {
                    Ok(()) => removed += 1,
                    Err(error) => tracing::debug!(%volume, %error, "could not remove an unused session volume"),
                }
            }
        }
        Ok(removed)
    }
}

/// What a removal in the background needs.
struct Removal {
    launcher: Arc<super::Launcher>,
    egress: Arc<crate::core::egress::EgressGateway>,
}

impl Removal {
    /// Removes the container, then its network and volumes (both once it
    /// is gone). Failures are logged; the sweep tries again.
    async fn remove_remains(&self, remains: Remains) {
        let engine = self.launcher.engine();
        if let Err(error) = engine.remove_sandbox(&remains.container_id).await {
            tracing::warn!(container = %remains.container_id, %error, "could not remove a destroyed session");
            return;
        }
        if let Some(network) = &remains.network
            && let Err(error) = self.egress.remove_unused_network(network).await
        {
            tracing::warn!(%network, %error, "could not remove a destroyed session's network");
        }
        for volume in &remains.volumes {
            if let Err(error) = engine.remove_volume(volume).await {
                tracing::warn!(%volume, %error, "could not remove a destroyed session's volume");
            }
        }
        tracing::debug!(container = %remains.container_id, "removed a destroyed session");
    }
}
