//! Warm spare sessions: containers made like a default session create
//! (volumes attached, runner and kernel ready), labelled kind `spare` with a
//! hash of what shapes them, which a plain create claims by renaming one to
//! the session's container name instead of creating a container. A spare
//! starts under a name no claim looks for and takes its spare name once its
//! runner is ready. This server's maker keeps `session_spares` of them per
//! language and removes its own unclaimed ones at shutdown.

use super::super::connection::RunnerConnection;
use super::super::launcher::Purpose;
use super::super::session_store::SessionRecord;
use super::SessionManager;
use super::labels::{FOLDERS, NAME_PREFIX, VOLUME_KIND, mounts_label};
use crate::clock::unix_now;
use crate::core::background::Background;
use crate::core::error::SessionError;
use crate::docker::{ContainerState, SandboxInfo, labels};
use crate::images;
use crate::runtime::Language;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Warm spare sessions of one language, as `sandbox_inspect` shows them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct SpareStats {
    pub language: String,
    /// Spares this server keeps (`session_spares`).
    pub configured: usize,
    /// Unclaimed running spares that fit this server's config (any
    /// server's).
    pub ready: usize,
    /// Creates this server served with a spare.
    pub claimed: u64,
}

/// Prefix of an unclaimed spare's container (and volume) names.
pub(super) const SPARE_PREFIX: &str = "multilang-sandbox-spare-";

/// Prefix of a spare's container name while it starts (no claim takes it
/// before its runner is ready).
const MAKING_PREFIX: &str = "multilang-sandbox-making-";

/// The kind label of spare containers (claimed or not).
pub(super) const SPARE_KIND: &str = "spare";

/// A spare that fits no language of this server's config and is older than
/// this is removed by its gc (its server's config changed, or it is gone).
const STALE_SPARE_AGE: Duration = Duration::from_secs(600);

/// An unclaimed spare not running, or one still starting (its server died
/// mid-start), older than this is removed by gc.
const STOPPED_SPARE_AGE: Duration = Duration::from_secs(120);

/// How often the maker checks its spares when no claim woke it.
const REFILL_INTERVAL: Duration = Duration::from_secs(30);

impl SessionManager {
    /// A hash of everything that shapes a spare of `language` under this
    /// server's config: the image, seccomp, storage and its size, limits,
    /// runtime and the default ttl (which the spare's label holds).
    pub(super) fn spare_hash(&self, language: Language) -> String {
        let config = self.launcher.config();
        let mut hasher = Sha256::new();
        let parts = [
            images::tag_for(language, config),
            config.seccomp.name(),
            config.session_storage.name().to_string(),
            config.session_storage_mb.to_string(),
            config.tmpfs_mb.to_string(),
            // The session's volumes (a spare made before `/tmp` was one
            // would make a session whose `/tmp` no snapshot copies).
            FOLDERS.map(|(folder, _)| folder).join(","),
            config.memory_mb.to_string(),
            config.cpus.to_string(),
            config.pids_limit.to_string(),
            config.runtime.clone().unwrap_or_default(),
            config.session_ttl_s.to_string(),
        ];
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    }

    /// Running, unclaimed spares of `language` that match this server's
    /// config (any server's: a dead server's spares are reused).
    pub(super) async fn idle_spares(&self, language: Language) -> Result<Vec<SandboxInfo>, SessionError> {
        let hash = self.spare_hash(language);
        Ok(self
            .launcher
            .engine()
            .list_sandboxes(&[
                (labels::KIND, SPARE_KIND),
                (labels::LANGUAGE, language.name()),
                (labels::SPARE_HASH, &hash),
            ])
            .await?
            .into_iter()
            .filter(|info| is_ready_spare(info, language, &hash))
            .collect())
    }

    /// Claims a running spare of `language` for the session `name` by
    /// renaming it; a spare gone or renamed by another server meanwhile is
    /// skipped. Returns the container id and, when this server made the
    /// spare, its runner connection. `None`: no spare (create a cold one).
    pub(super) async fn claim_spare(
        &self,
        name: &str,
        language: Language,
    ) -> Option<(String, Option<Arc<RunnerConnection>>)> {
        // This server's claims one at a time: each sees the others' done.
        let _turn = self.claim_turn.lock().await;
        let spares = match self.idle_spares(language).await {
            Ok(spares) => spares,
            Err(error) => {
                tracing::debug!(%error, "could not list spare sessions");
                return None;
            }
        };
        let engine = self.launcher.engine();
        let container_name = format!("{NAME_PREFIX}{name}");
        for spare in spares {
            if !self.take_spare(&spare).await {
                continue;
            }
            // Saved before the session's name makes it a session another
            // server's gc sees: its expiry counts from now, not from when
            // the spare was made.
            let claimed_at = unix_now();
            self.store.save(
                &spare.id,
                &SessionRecord {
                    last_used: Some(claimed_at),
                    extended_until: None,
                    grants: None,
                    created: Some(claimed_at),
                },
            );
            // By its taken name: one a gc tombstoned meanwhile stays so.
            let taken = taken_name(&spare.id);
            match engine.rename_sandbox(&taken, &container_name).await {
                Ok(true) => {}
                // The session's name was taken meanwhile: the spare is put
                // back, the create goes on (and finds the name taken).
                result => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "could not claim a spare session");
                    }
                    self.store.remove(&spare.id);
                    if let Some(spare_name) = &spare.name {
                        let _ = engine.rename_sandbox(&taken, spare_name).await;
                    }
                    return None;
                }
            }
            let connection = self.spare_connections.lock().remove(&spare.id);
            self.spares_claimed
                .lock()
                .entry(language)
                .and_modify(|count| *count += 1)
                .or_insert(1);
            self.spare_wanted.notify_one();
            tracing::debug!(session = name, container = %spare.id, "claimed a spare session");
            return Some((spare.id, connection));
        }
        None
    }

    /// Takes a listed spare for a claim or a removal: renames it, found by
    /// its spare name, to a name of its own while taken. The engine renames
    /// a container under its lock and refuses to rename it to the name it
    /// has, so of two servers taking the same spare only one succeeds (a
    /// spare renamed straight to a session name could be renamed again by
    /// a second claim that found it by its old name). False: taken by
    /// another, or gone.
    pub(super) async fn take_spare(&self, spare: &SandboxInfo) -> bool {
        let Some(spare_name) = spare.name.as_deref() else {
            return false;
        };
        match self
            .launcher
            .engine()
            .rename_sandbox(spare_name, &taken_name(&spare.id))
            .await
        {
            Ok(taken) => taken,
            Err(error) => {
                tracing::debug!(container = %spare.id, %error, "a spare session was taken by another");
                false
            }
        }
    }

    /// Spare figures for each language that has spares configured or
    /// running.
    pub async fn spare_stats(&self) -> Result<Vec<SpareStats>, SessionError> {
        let spares = self
            .launcher
            .engine()
            .list_sandboxes(&[(labels::KIND, SPARE_KIND)])
            .await?;
        let mut stats = Vec::new();
        for language in Language::ALL {
            let wanted = self.spare_target(language);
            let hash = self.spare_hash(language);
            let ready = spares
                .iter()
                .filter(|info| is_ready_spare(info, language, &hash))
                .count();
            let claimed = self.spares_claimed.lock().get(&language).copied().unwrap_or(0);
            if wanted > 0 || ready > 0 || claimed > 0 {
                stats.push(SpareStats {
                    language: language.name().to_string(),
                    configured: wanted,
                    ready,
                    claimed,
                });
            }
        }
        Ok(stats)
    }

    /// Makes one spare of `language`, as a default create would make a
    /// session (without a name).
    async fn make_spare(&self, language: Language) -> Result<(), SessionError> {
        let config = self.launcher.config();
        let token = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let container_name = format!("{SPARE_PREFIX}{token}");
        let making_name = format!("{MAKING_PREFIX}{token}");
        let created = unix_now();
        let volume_labels = HashMap::from([
            (labels::KIND.to_string(), VOLUME_KIND.to_string()),
            (labels::CREATED.to_string(), created.to_string()),
        ]);
        let volume = |(folder, _): (&str, &str)| format!("{container_name}.{folder}");
        let volume_names = FOLDERS.map(volume);
        if let Err(error) = self.make_volumes(&volume_names, &volume_labels).await {
            self.discard(&volume_names, None).await;
            return Err(error.into());
        }
        let extra_labels = HashMap::from([
            (labels::CREATED.to_string(), created.to_string()),
            (labels::TTL.to_string(), config.session_ttl_s.to_string()),
            (labels::MOUNTS.to_string(), mounts_label(&[])),
            (labels::STORAGE.to_string(), config.session_storage.name().to_string()),
            (labels::SPARE_HASH.to_string(), self.spare_hash(language)),
            (
                labels::SPARE_TARGET.to_string(),
                self.spare_target(language).to_string(),
            ),
        ]);
        let purpose = Purpose::Session {
            name: &token,
            container_name: &making_name,
            volumes: super::create::volume_mounts(&volume_names),
            extra_memory_mb: super::create::files_memory_mb(config),
            binds: Vec::new(),
            seccomp: config.seccomp.clone(),
            extra_labels,
            network: None,
            spare: true,
        };
        let sandbox = match self.launcher.launch(language, purpose).await {
            Ok(sandbox) => sandbox,
            Err(error) => {
                self.discard(&volume_names, None).await;
                return Err(error.into());
            }
        };
        // Ready: it takes its spare name, which claims look for.
        let id = sandbox.container.id().to_string();
        self.spare_connections
            .lock()
            .insert(id.clone(), sandbox.connection.clone());
        match self
            .launcher
            .engine()
            .rename_sandbox(&making_name, &container_name)
            .await
        {
            Ok(true) => {
                sandbox.container.keep();
                tracing::debug!(container = %id, language = language.name(), "made a spare session");
                Ok(())
            }
            renamed => {
                self.spare_connections.lock().remove(&id);
                sandbox.container.remove().await;
                self.discard(&volume_names, None).await;
                match renamed {
                    Err(error) => Err(error.into()),
                    Ok(_) => Err(SessionError::SpareGone),
                }
            }
        }
    }

    /// Drops the runner connections of this server's spares that are no
    /// longer unclaimed spares (claimed by another server, or removed).
    async fn forget_gone_spares(&self) {
        match self.own_spares().await {
            Ok(own) => {
                let waiting: HashSet<String> = own.into_iter().filter(is_unclaimed).map(|info| info.id).collect();
                self.spare_connections.lock().retain(|id, _| waiting.contains(id));
            }
            Err(error) => tracing::debug!(%error, "could not list this server's spare sessions"),
        }
    }

    /// The spares of `language` this server keeps.
    fn spare_target(&self, language: Language) -> usize {
        self.launcher
            .config()
            .session_spares
            .get(&language)
            .copied()
            .unwrap_or(0)
    }

    /// Starts the maker of spare sessions (when `session_spares` asks for
    /// any): it refills after each claim and every 30 s, and when
    /// `background` shuts down it removes this server's unclaimed spares.
    pub fn start_spares(self: &Arc<Self>, background: &Background) {
        let targets: Vec<(Language, usize)> = self
            .launcher
            .config()
            .session_spares
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(language, count)| (*language, *count))
            .collect();
        if targets.is_empty() {
            return;
        }
        let manager = self.clone();
        let stop = background.clone();
        background.spawn(async move {
            loop {
                manager.forget_gone_spares().await;
                for (language, target) in &targets {
                    manager.refill(*language, *target, &stop).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(REFILL_INTERVAL) => {}
                    () = manager.spare_wanted.notified() => {}
                    () = stop.stopping() => break,
                }
            }
            manager.remove_own_spares().await;
        });
    }

    /// Makes spares of `language` until `target` run (any server's count).
    async fn refill(&self, language: Language, target: usize, stop: &Background) {
        while !stop.is_stopping() {
            match self.idle_spares(language).await {
                Ok(spares) if spares.len() >= target => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "could not count spare sessions");
                    return;
                }
            }
            if let Err(error) = self.make_spare(language).await {
                // A shutdown cuts a spare's start short: nothing to say then.
                if stop.is_stopping() {
                    tracing::debug!(%error, language = language.name(), "a spare's start ended with the server");
                } else {
                    tracing::warn!(%error, language = language.name(), "could not make a spare session");
                }
                return;
            }
        }
    }

    /// Removes, and returns how many went: unclaimed spares that fit no
    /// language of this server's config and are older than 10 minutes (made
    /// under another config: no server with this one claims them); those
    /// that stopped, and those still starting after 2 minutes (their server
    /// died mid-start); other servers' spares beyond the most any server
    /// keeps of that language, once older than 10 minutes (left by a killed
    /// server); and spares a claim left taken a whole gc round.
    pub(super) async fn collect_stale_spares(&self) -> Result<usize, SessionError> {
        let hashes: Vec<String> = Language::ALL
            .iter()
            .map(|language| self.spare_hash(*language))
            .collect();
        let now = unix_now();
        let mut removed = 0;
        let spares = self
            .launcher
            .engine()
            .list_sandboxes(&[(labels::KIND, SPARE_KIND)])
            .await?;
        for spare in spares.iter().filter(|info| is_making(info)) {
            if made_at(spare).is_none_or(|made| now.saturating_sub(made) >= STOPPED_SPARE_AGE.as_secs())
                && self.remove_spare(spare).await?
            {
                removed += 1;
            }
        }
        for spare in spares.iter().filter(|info| is_unclaimed(info)) {
            let fits = spare
                .labels
                .get(labels::SPARE_HASH)
                .is_some_and(|hash| hashes.contains(hash));
            let age = now.saturating_sub(made_at(spare).unwrap_or(0));
            // Stopped (by an engine restart, say): never claimed, never
            // counted; one being started is younger.
            let stopped = spare.state != ContainerState::Running && age >= STOPPED_SPARE_AGE.as_secs();
            let stale = !fits && age >= STALE_SPARE_AGE.as_secs();
            if (stopped || stale) && self.remove_spare(spare).await? {
                removed += 1;
            }
        }
        // Spares a killed server left beyond what any server keeps (this
        // one, or what the ready ones' makers said): the oldest others' go
        // once they are older than 10 minutes.
        for (index, language) in Language::ALL.iter().enumerate() {
            let mut ready: Vec<&SandboxInfo> = spares
                .iter()
                .filter(|info| is_ready_spare(info, *language, &hashes[index]))
                .collect();
            let target = ready
                .iter()
                .filter_map(|info| info.labels.get(labels::SPARE_TARGET)?.parse::<usize>().ok())
                .max()
                .unwrap_or(0)
                .max(self.spare_target(*language));
            let surplus = ready.len().saturating_sub(target);
            ready.retain(|info| {
                info.labels.get(labels::INSTANCE).map(String::as_str) != Some(self.launcher.instance_id())
                    && made_at(info).is_some_and(|made| now.saturating_sub(made) >= STALE_SPARE_AGE.as_secs())
            });
            ready.sort_by_key(|info| made_at(info));
            for spare in ready.into_iter().take(surplus) {
                if self.remove_spare(spare).await? {
                    removed += 1;
                }
            }
        }
        // A spare still taken a whole gc round later was left by a server
        // killed mid-claim (a claim holds it for milliseconds).
        let taken: HashSet<String> = spares
            .iter()
            .filter(|info| info.name.as_deref().is_some_and(|name| name.starts_with(TAKEN_PREFIX)))
            .map(|info| info.id.clone())
            .collect();
        let seen_before = std::mem::replace(&mut *self.taken_seen.lock(), taken.clone());
        for spare in spares
            .iter()
            .filter(|info| taken.contains(&info.id) && seen_before.contains(&info.id))
        {
            tracing::info!(container = %spare.id, "removing a spare session a claim left taken");
            if self.remove_taken_spare(spare).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The spare containers this server made, claimed or not.
    async fn own_spares(&self) -> Result<Vec<SandboxInfo>, SessionError> {
        Ok(self
            .launcher
            .engine()
            .list_sandboxes(&[
                (labels::KIND, SPARE_KIND),
                (labels::INSTANCE, self.launcher.instance_id()),
            ])
            .await?)
    }

    /// Removes this server's unclaimed spares (at shutdown).
    async fn remove_own_spares(&self) {
        let own = match self.own_spares().await {
            Ok(own) => own,
            Err(error) => {
                tracing::warn!(%error, "could not list this server's spare sessions");
                return;
            }
        };
        for spare in own.iter().filter(|info| is_unclaimed(info)) {
            if let Err(error) = self.remove_spare(spare).await {
                tracing::warn!(container = %spare.id, %error, "could not remove a spare session");
            }
        }
    }
}

/// Prefix of the name a spare has while a claim or removal takes it (for
/// milliseconds; a server killed in between leaves it, and gc removes it).
const TAKEN_PREFIX: &str = "multilang-sandbox-taken-";

/// The name of a spare while it is taken.
pub(super) fn taken_name(container_id: &str) -> String {
    format!("{TAKEN_PREFIX}{}", container_id.chars().take(12).collect::<String>())
}

/// When a spare was made (its label), Unix seconds.
fn made_at(info: &SandboxInfo) -> Option<u64> {
    info.labels.get(labels::CREATED)?.parse().ok()
}

/// True for a spare container not yet claimed (still named as a spare).
fn is_unclaimed(info: &SandboxInfo) -> bool {
    info.name.as_deref().is_some_and(|name| name.starts_with(SPARE_PREFIX))
}

/// True for a running unclaimed spare of `language` made under the config
/// whose spare hash is `hash`: one a create may claim.
fn is_ready_spare(info: &SandboxInfo, language: Language, hash: &str) -> bool {
    info.state == ContainerState::Running
        && is_unclaimed(info)
        && info.labels.get(labels::LANGUAGE).map(String::as_str) == Some(language.name())
        && info.labels.get(labels::SPARE_HASH).map(String::as_str) == Some(hash)
}

/// True for a spare container still starting (not yet claimable).
fn is_making(info: &SandboxInfo) -> bool {
    info.name.as_deref().is_some_and(|name| name.starts_with(MAKING_PREFIX))
}
