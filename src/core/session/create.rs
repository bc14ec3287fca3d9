//! Creating a session: checks, volumes, the container with its labels.

use super::super::launcher::Purpose;
use super::super::session_store::SessionRecord;
use super::labels::{
    NAME_PREFIX, VOLUME_KIND, mounts_label, outputs_volume, packages_volume, validate_name, workspace_volume,
};
use super::{NewSession, SessionHandle, SessionInfo, SessionManager};
use crate::clock::unix_now;
use crate::config::SessionStorage;
use crate::core::egress::{OpenedNetwork, Owner};
use crate::core::error::SessionError;
use crate::docker::DockerError;
use crate::docker::{BindMount, DockerEngine, VolumeBacking, VolumeMount, labels};
use crate::runtime::packages::SESSION_ROOT;
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
        let engine = self.launcher.engine();
        let container_name = format!("{NAME_PREFIX}{name}");
        let existing = engine.list_sandboxes(&[(labels::KIND, "session")]).await?;
        if existing.len() >= config.max_sessions {
            return Err(SessionError::TooMany {
                max: config.max_sessions,
            });
        }
        let created = unix_now();
        let volume_labels = HashMap::from([
            (labels::KIND.to_string(), VOLUME_KIND.to_string()),
            (labels::SESSION.to_string(), name.to_string()),
        ]);
        let storage = config.session_storage;
        let (files_backing, outputs_backing, extra_memory_mb) = match storage {
            SessionStorage::Memory => (
                VolumeBacking::Memory {
                    size_mb: config.session_storage_mb,
                },
                VolumeBacking::Memory {
                    size_mb: config.tmpfs_mb,
                },
                config.session_storage_mb,
            ),
            SessionStorage::Disk => (VolumeBacking::Disk, VolumeBacking::Disk, 0),
        };
        // Volumes left by an earlier session of this name (a failed removal)
        // would be reused with their old options: start from none.
        remove_session_volumes(engine, name).await?;
        let volumes_made = async {
            engine
                .create_volume(&workspace_volume(name), &volume_labels, files_backing)
                .await?;
            engine
                .create_volume(&packages_volume(name), &volume_labels, VolumeBacking::Disk)
                .await?;
            engine
                .create_volume(&outputs_volume(name), &volume_labels, outputs_backing)
                .await
        };
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
                self.discard(name, opened.ok().flatten().as_ref().map(|network| (network, &owner)))
                    .await;
                return Err(error.into());
            }
            (Ok(()), Err(error)) => {
                self.discard(name, None).await;
                return Err(error.into());
            }
        };
        let mount = |volume: String, target: &str, read_only: bool| VolumeMount {
            volume,
            target: target.to_string(),
            read_only,
        };
        let purpose = Purpose::Session {
            name,
            container_name: &container_name,
            volumes: vec![
                mount(workspace_volume(name), "/workspace", false),
                // Only install containers write packages: code cannot fill
                // this disk-backed volume.
                mount(packages_volume(name), SESSION_ROOT, true),
                mount(outputs_volume(name), "/outputs", false),
            ],
            extra_memory_mb,
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
        };
        let made_network = network.as_ref().map(|network| (network, &owner));
        let sandbox = match self.launcher.launch_from(language, image, purpose).await {
            Ok(sandbox) => sandbox,
            // Another server made a session of this name meanwhile: its
            // volumes are that session's now; the network was this create's.
            Err(DockerError::NameInUse(_)) => {
                if let Some((network, owner)) = made_network {
                    let _ = self.egress.close_network(&network.name, owner).await;
                }
                return Err(SessionError::Exists(name.to_string()));
            }
            Err(error) => {
                self.discard(name, made_network).await;
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
            },
        );
        let handle = Arc::new(SessionHandle::new(
            container_id.clone(),
            language,
            Some(sandbox.connection),
        ));
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
    /// Removes what a failed create made: the volumes and, when it was
    /// made, the session's network.
    async fn discard(&self, name: &str, network: Option<(&OpenedNetwork, &Owner)>) {
        if let Some((network, owner)) = network {
            let _ = self.egress.close_network(&network.name, owner).await;
        }
        let _ = remove_session_volumes(self.launcher.engine(), name).await;
    }
}

/// Removes a session's workspace, packages and outputs volumes: the ones
/// labelled with its name, whatever they are called (sessions made before
/// the `.` separator named them `<prefix><name>-outputs` and the like).
pub(super) async fn remove_session_volumes(engine: &DockerEngine, name: &str) -> Result<(), DockerError> {
    engine
        .remove_volumes_labelled(&[(labels::KIND, VOLUME_KIND), (labels::SESSION, name)])
        .await
}
