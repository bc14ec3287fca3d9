//! What exists on the engine: listing and inspecting sandbox containers by
//! label, pausing, resuming and renaming them, and session workspace volumes.

use super::DockerError;
use super::{DockerEngine, EngineProduct, is_not_found, list_again_while};
use bollard::Docker;
use bollard::models::{ContainerSummary, MountPoint, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptions, ListContainersOptionsBuilder, RemoveVolumeOptionsBuilder, RenameContainerOptionsBuilder,
    StartContainerOptions, StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

/// Run state of a container, as the engine reports it (its name is the
/// engine's own word: `created`, `running`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl ContainerState {
    /// Created, exited or dead: not running, and can be started (again).
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            ContainerState::Created | ContainerState::Exited | ContainerState::Dead
        )
    }

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The state the engine names in `word`; `Unknown` for a word it does
    /// not use today.
    fn from_engine(word: impl std::fmt::Display) -> Self {
        word.to_string().parse().unwrap_or(ContainerState::Unknown)
    }
}

/// A sandbox container as listed by the engine.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub id: String,
    pub state: ContainerState,
    pub labels: HashMap<String, String>,
    /// Creation time in Unix seconds (listings only).
    pub created: Option<i64>,
    /// The image the container was created from.
    pub image: Option<String>,
    /// The container's name (without Docker's leading `/`).
    pub name: Option<String>,
    /// The named volumes mounted into it.
    pub volumes: Vec<MountedVolume>,
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    pub name: String,
    /// Where it is mounted inside the container.
    pub target: String,
}

/// The named volumes among a container's mounts.
fn mounted_volumes(mounts: Option<Vec<MountPoint>>) -> Vec<MountedVolume> {
    mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|mount| mount.typ.as_deref() == Some("volume"))
        .filter_map(|mount| {
            Some(MountedVolume {
                name: mount.name?,
                target: mount.destination?,
            })
        })
        .collect()
}

/// A container name as Docker reports it, without the leading `/`.
fn container_name(name: &str) -> String {
    name.trim_start_matches('/').to_string()
}

/// What a volume's files are stored on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeBacking {
    /// The engine's disk (no size limit of its own).
    Disk,
    /// A tmpfs of at most `size_mb` MiB owned by the sandbox user. Docker
    /// mounts it when a container using it starts, so its files last as long
    /// as the container runs or is paused, and are gone after an engine restart.
    Memory { size_mb: u64 },
    /// A tmpfs of at most `size_mb` MiB anyone may write, as `/tmp` (mode
    /// 1777), lasting as [`VolumeBacking::Memory`] does.
    Scratch { size_mb: u64 },
}

impl VolumeBacking {
    /// Options of the `local` volume driver of `product`.
    fn driver_options(self, product: EngineProduct) -> Option<HashMap<String, String>> {
        let tmpfs = |size_mb: u64, rest: &str| {
            // Podman takes `size` in these options for a disk quota (and
            // refuses it without one), so it gets the tmpfs's own
            // `nr_blocks` in 4 KiB pages (x86-64's and most arm64 kernels').
            let size = match product {
                EngineProduct::Docker => format!("size={size_mb}m"),
                EngineProduct::Podman => format!("nr_blocks={}", size_mb * 256),
            };
            Some(HashMap::from([
                ("type".to_string(), "tmpfs".to_string()),
                ("device".to_string(), "tmpfs".to_string()),
                ("o".to_string(), format!("{size},{rest},nosuid,nodev")),
            ]))
        };
        match self {
            VolumeBacking::Disk => None,
            VolumeBacking::Memory { size_mb } => tmpfs(size_mb, "uid=1000,gid=1000,mode=0755"),
            VolumeBacking::Scratch { size_mb } => tmpfs(size_mb, "mode=1777"),
        }
    }
}

/// The containers `options` select. Podman lists a container that has
/// just stopped as `stopped`, a state Docker's API does not have, which
/// fails the whole listing; a moment later it says `exited`, so such a
/// listing is asked again (for up to about five seconds).
async fn list_containers(
    client: &Docker,
    options: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, DockerError> {
    let stopped = |error: &bollard::errors::Error| {
        matches!(error, bollard::errors::Error::JsonDataError { message, .. }
            if message.contains("unknown variant `stopped`"))
    };
    Ok(list_again_while(50, stopped, || client.list_containers(Some(options.clone()))).await?)
}

/// What the engine's machine has, for sizing the warm pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineCapacity {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<usize>,
}

impl DockerEngine {
    /// Containers (any state) carrying every `key=value` label given.
    pub async fn list_sandboxes(&self, labels: &[(&str, &str)]) -> Result<Vec<SandboxInfo>, DockerError> {
        let client = self.client().await?;
        let filters: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("label".to_string(), filters)]))
            .build();
        let containers = list_containers(&client, options).await?;
        Ok(containers
            .into_iter()
            .filter_map(|summary| {
                Some(SandboxInfo {
                    id: summary.id?,
                    state: summary
                        .state
                        .map(ContainerState::from_engine)
                        .unwrap_or(ContainerState::Unknown),
                    labels: summary.labels.unwrap_or_default(),
                    created: summary.created,
                    image: summary.image,
                    name: summary
                        .names
                        .and_then(|names| names.first().map(|name| container_name(name))),
                    volumes: mounted_volumes(summary.mounts),
                })
            })
            .collect())
    }

    /// The values of label `key` on the containers (any state) carrying it.
    pub async fn label_values(&self, key: &str) -> Result<HashSet<String>, DockerError> {
        let client = self.client().await?;
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("label".to_string(), vec![key.to_string()])]))
            .build();
        Ok(list_containers(&client, options)
            .await?
            .into_iter()
            .filter_map(|summary| summary.labels?.remove(key))
            .collect())
    }

    /// One container by id or name, or `None` when it does not exist.
    pub async fn inspect_sandbox(&self, id_or_name: &str) -> Result<Option<SandboxInfo>, DockerError> {
        let client = self.client().await?;
        match client.inspect_container(id_or_name, None).await {
            Ok(inspect) => Ok(Some(SandboxInfo {
                image: inspect.config.as_ref().and_then(|config| config.image.clone()),
                id: inspect.id.unwrap_or_default(),
                state: inspect
                    .state
                    .and_then(|state| state.status)
                    .map(ContainerState::from_engine)
                    .unwrap_or(ContainerState::Unknown),
                labels: inspect.config.and_then(|config| config.labels).unwrap_or_default(),
                created: None,
                name: inspect.name.as_deref().map(container_name),
                volumes: mounted_volumes(inspect.mounts),
            })),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The memory a running container uses, in bytes, as `docker stats`
    /// counts it: its cgroup's usage less the page cache it could drop.
    /// `None` when the engine reports no figure (or the container is gone).
    pub async fn memory_in_use(&self, id: &str) -> Result<Option<u64>, DockerError> {
        let options = StatsOptionsBuilder::new().stream(false).one_shot(true).build();
        let client = self.client().await?;
        let mut stats = client.stats(id, Some(options));
        let Some(reading) = stats.next().await else {
            return Ok(None);
        };
        let memory = match reading {
            Ok(reading) => reading.memory_stats,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let Some(memory) = memory else {
            return Ok(None);
        };
        let droppable = memory.stats.as_ref().and_then(|stats| {
            ["total_inactive_file", "inactive_file"]
                .iter()
                .find_map(|key| stats.get(*key).copied())
        });
        Ok(memory.usage.map(|usage| usage.saturating_sub(droppable.unwrap_or(0))))
    }

    /// The engine machine's memory in bytes and its CPUs, as far as it says.
    pub async fn capacity(&self) -> Result<EngineCapacity, DockerError> {
        let info = self.client().await?.info().await?;
        Ok(EngineCapacity {
            memory_bytes: info.mem_total.and_then(|total| u64::try_from(total).ok()),
            cpus: info.ncpu.and_then(|cpus| usize::try_from(cpus).ok()),
        })
    }

    pub async fn pause_sandbox(&self, id: &str) -> Result<(), DockerError> {
        Ok(self.client().await?.pause_container(id).await?)
    }

    /// Resumes a paused container. The engine can hold a container as
    /// paused whose processes run (runc then refuses the resume with
    /// "cannot resume a running process"; seen under load on cgroup v1):
    /// it runs, which is what the resume is for.
    pub async fn unpause_sandbox(&self, id: &str) -> Result<(), DockerError> {
        match self.client().await?.unpause_container(id).await {
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("cannot resume a running process") =>
            {
                tracing::debug!(container = id, "the engine held a running container as paused");
                Ok(())
            }
            resumed => Ok(resumed?),
        }
    }

    /// Stops a container at once (SIGKILL to every process in it) and
    /// returns when it has stopped; a container already stopped is fine.
    pub async fn stop_sandbox(&self, id: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = StopContainerOptionsBuilder::default().t(0).build();
        match client.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: it was not running.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Starts a stopped container again.
    pub async fn restart_sandbox(&self, id: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        Ok(client.start_container(id, None::<StartContainerOptions>).await?)
    }

    /// Creates a labelled named volume (idempotent).
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        backing: VolumeBacking,
    ) -> Result<(), DockerError> {
        let client = self.client().await?;
        client
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                driver: Some("local".to_string()),
                driver_opts: backing.driver_options(self.traits().await?.product),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Renames a container, found by its id or its current name.
    /// `Ok(false)`: it is gone (or no longer has that name), or the name is
    /// taken (another server renamed it first).
    pub async fn rename_sandbox(&self, id: &str, name: &str) -> Result<bool, DockerError> {
        let client = self.client().await?;
        let options = RenameContainerOptionsBuilder::default().name(name).build();
        match client.rename_container(id, options).await {
            Ok(()) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes a volume; an absent volume is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match client.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStateStatusEnum, ContainerSummaryStateEnum};

    #[test]
    fn memory_volumes_are_sized_as_each_engine_takes_it() {
        let options = |backing: VolumeBacking, product| backing.driver_options(product).expect("tmpfs")["o"].clone();
        assert_eq!(
            options(VolumeBacking::Memory { size_mb: 64 }, EngineProduct::Docker),
            "size=64m,uid=1000,gid=1000,mode=0755,nosuid,nodev"
        );
        assert_eq!(
            options(VolumeBacking::Scratch { size_mb: 64 }, EngineProduct::Podman),
            "nr_blocks=16384,mode=1777,nosuid,nodev"
        );
        assert!(VolumeBacking::Disk.driver_options(EngineProduct::Podman).is_none());
    }

    #[test]
    fn engine_states_are_read_from_both_listings_and_inspections() {
        assert_eq!(
            ContainerState::from_engine(ContainerSummaryStateEnum::RUNNING),
            ContainerState::Running
        );
        assert_eq!(
            ContainerState::from_engine(ContainerStateStatusEnum::EXITED),
            ContainerState::Exited
        );
        assert_eq!(
            ContainerState::from_engine(ContainerStateStatusEnum::PAUSED),
            ContainerState::Paused
        );
        assert_eq!(ContainerState::from_engine("frozen"), ContainerState::Unknown);
        assert_eq!(ContainerState::Removing.name(), "removing");
    }
}
