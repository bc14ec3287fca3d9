//! Creating a session: checks, volumes, the container with its labels.

use super::super::connection::RunnerConnection;
use super::super::launcher::Purpose;
use super::super::session_store::SessionRecord;
use super::labels::{
    FOLDERS, NAME_PREFIX, OUTPUTS, PACKAGES, TMP, VOLUME_KIND, WORKSPACE, mounts_label, session_volume, validate_name,
};
use super::{NewSession, SessionHandle, SessionInfo, SessionManager};
use crate::clock::unix_now;
use crate::config::{Config, SessionStorage};
use crate::core::egress::{OpenedNetwork, Owner};
use crate::core::error::SessionError;
use crate::docker::DockerError;
use crate::docker::{BindMount, VolumeBacking, VolumeMount, labels};
use crate::images;
use crate::runtime::Language;
use crate::security::audit::{AuditEvent, MountRecord, SessionEvent};
use std::collections::HashMap;
use std::sync::Arc;

impl SessionManager {
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
            grants,
        } = new;
        let ttl = self.check_create(name, ttl).await?;
        let config = self.launcher.config();
        let container_name = format!("{NAME_PREFIX}{name}");
        let existing = self.session_containers().await?;
        let live = existing.into_iter().filter_map(|info| self.facts(info)).count();
        if live >= config.max_sessions {
            return Err(SessionError::TooMany {
                max: config.max_sessions,
            });
        }
        // A plain create (the standard image, no host folders, no network,
        // the configured seccomp and ttl) claims a warm spare when one runs.
        let plain = image == images::tag_for(language, config)
            && folders.is_empty()
            && grants.is_none()
            && seccomp == config.seccomp
            && ttl == config.session_ttl_s;
        if plain && let Some((container_id, connection)) = self.claim_spare(name, language).await {
            return self.created(name, language, image, container_id, connection).await;
        }
        let created = unix_now();
        let volume_labels = HashMap::from([
            (labels::KIND.to_string(), VOLUME_KIND.to_string()),
            (labels::SESSION.to_string(), name.to_string()),
            (labels::CREATED.to_string(), created.to_string()),
        ]);
        let storage = config.session_storage;
        // Named for this container alone: the volumes of a destroyed session
        // of this name may still be being removed.
        let instance = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let volume = |(folder, _): (&str, &str)| session_volume(name, &instance, folder);
        let volume_names = FOLDERS.map(volume);
        let volumes_made = self.make_volumes(&volume_names, &volume_labels);
        let owner = Owner::Session(name.to_string());
        let mut extra_labels = HashMap::from([
            (labels::CREATED.to_string(), created.to_string()),
            (labels::TTL.to_string(), ttl.to_string()),
            (labels::MOUNTS.to_string(), mounts_label(folders)),
            (labels::STORAGE.to_string(), storage.name().to_string()),
        ]);
        if let Some(grants) = &grants {
            let texts: Vec<String> = grants.iter().map(ToString::to_string).collect();
            extra_labels.insert(
                labels::NETWORK.to_string(),
                serde_json::to_string(&texts).unwrap_or_default(),
            );
        }
        // The sandbox network (a spare, usually) is taken while the volumes
        // are made.
        let network_opened = async {
            match grants {
                Some(_) => self.egress.open_network().await.map(Some),
                None => Ok(None),
            }
        };
        let (volumes, opened) = tokio::join!(volumes_made, network_opened);
        let network = match (volumes, opened) {
            (Ok(()), Ok(network)) => network,
            (Err(error), opened) => {
                self.discard(
                    &volume_names,
                    opened.ok().flatten().as_ref().map(|network| (network, &owner)),
                )
                .await;
                return Err(error.into());
            }
            (Ok(()), Err(error)) => {
                self.discard(&volume_names, None).await;
                return Err(error.into());
            }
        };
        let purpose = Purpose::Session {
            name,
            container_name: &container_name,
            volumes: volume_mounts(&volume_names),
            extra_memory_mb: files_memory_mb(config),
            binds: folders
                .iter()
                .map(|folder| BindMount {
                    source: folder.host_path.display().to_string(),
                    target: folder.mount_point(),
                    read_only: !folder.writable,
                })
                .collect(),
            extra_labels,
            seccomp,
            network: network.as_ref(),
            spare: false,
        };
        let made_network = network.as_ref().map(|network| (network, &owner));
        let sandbox = match self.launcher.launch_from(language, image, purpose).await {
            Ok(sandbox) => sandbox,
            // Another server made a session of this name meanwhile.
            Err(DockerError::NameInUse(_)) => {
                self.discard(&volume_names, made_network).await;
                return Err(SessionError::Exists(name.to_string()));
            }
            Err(error) => {
                self.discard(&volume_names, made_network).await;
                return Err(error.into());
            }
        };
        if let (Some(network), Some(grants)) = (&network, &grants) {
            self.egress
                .bind(&owner, network, sandbox.container.id(), grants.clone());
        }
        let container_id = sandbox.container.keep();
        self.store.save(
            &container_id,
            &SessionRecord {
                last_used: Some(created),
                extended_until: None,
                grants: None,
                created: None,
            },
        );
        self.created(name, language, image, container_id, Some(sandbox.connection))
            .await
    }

    /// What follows a create, made or claimed: this server's handle on the
    /// session, its info, the audit record.
    async fn created(
        &self,
        name: &str,
        language: Language,
        image: &str,
        container_id: String,
        connection: Option<Arc<RunnerConnection>>,
    ) -> Result<SessionInfo, SessionError> {
        let handle = Arc::new(SessionHandle::new(container_id, language, connection));
        self.lock_handles().insert(name.to_string(), handle);
        let info = self.get(name).await?;
        self.audit.record(AuditEvent::Session(SessionEvent::Created {
            name: name.to_string(),
            language: language.name().to_string(),
            image: image.to_string(),
            seccomp: info.seccomp.clone(),
            mounts: info
                .mounts
                .iter()
                .map(|mount| MountRecord {
                    name: mount.name.clone(),
                    path: mount.path.clone(),
                    host_path: mount.host_path.clone(),
                    writable: mount.writable,
                })
                .collect(),
        }));
        Ok(info)
    }
}

impl SessionManager {
    /// Makes a session's workspace, packages, outputs and `/tmp` volumes
    /// (named in that order, as [`FOLDERS`]), backed as the config says.
    pub(super) async fn make_volumes(
        &self,
        names: &[String; 4],
        volume_labels: &HashMap<String, String>,
    ) -> Result<(), DockerError> {
        let engine = self.launcher.engine();
        let config = self.launcher.config();
        let (files_backing, outputs_backing) = backings(config);
        tokio::try_join!(
            engine.create_volume(&names[0], volume_labels, files_backing),
            engine.create_volume(&names[1], volume_labels, VolumeBacking::Disk),
            engine.create_volume(&names[2], volume_labels, outputs_backing),
            engine.create_volume(
                &names[3],
                volume_labels,
                VolumeBacking::Scratch {
                    size_mb: config.tmpfs_mb
                }
            ),
        )
        .map(|_| ())
    }

    /// Removes what a failed create made: its volumes and, when it was
    /// made, the session's network.
    pub(super) async fn discard(&self, volumes: &[String], network: Option<(&OpenedNetwork, &Owner)>) {
        if let Some((network, owner)) = network {
            let _ = self.egress.close_network(&network.name, owner).await;
        }
        for volume in volumes {
            let _ = self.launcher.engine().remove_volume(volume).await;
        }
    }
}

/// The backing of a session's workspace and outputs volumes.
fn backings(config: &Config) -> (VolumeBacking, VolumeBacking) {
    match config.session_storage {
        SessionStorage::Memory => (
            VolumeBacking::Memory {
                size_mb: config.session_storage_mb,
            },
            VolumeBacking::Memory {
                size_mb: config.tmpfs_mb,
            },
        ),
        SessionStorage::Disk => (VolumeBacking::Disk, VolumeBacking::Disk),
    }
}

/// The memory a session's container gets on top of the limit: files in
/// memory count as its memory.
pub(super) fn files_memory_mb(config: &Config) -> u64 {
    match config.session_storage {
        SessionStorage::Memory => config.session_storage_mb,
        SessionStorage::Disk => 0,
    }
}

/// The mounts of a session's workspace, packages, outputs and `/tmp`
/// volumes (named in that order).
pub(super) fn volume_mounts(names: &[String; 4]) -> Vec<VolumeMount> {
    let mount = |volume: &String, target: &str, read_only: bool| VolumeMount {
        volume: volume.clone(),
        target: target.to_string(),
        read_only,
    };
    vec![
        mount(&names[0], WORKSPACE.1, false),
        // Only install containers write packages: code cannot fill this
        // disk-backed volume.
        mount(&names[1], PACKAGES.1, true),
        mount(&names[2], OUTPUTS.1, false),
        mount(&names[3], TMP.1, false),
    ]
}
