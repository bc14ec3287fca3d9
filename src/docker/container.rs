//! Sandbox containers: created locked down (no network, non-root, no
//! capabilities, no-new-privileges, read-only root, resource limits), started
//! with the runner attached, and removed explicitly or, on any error path,
//! in the background when the handle is dropped.

use super::DockerError;
use super::channel::RunnerOutput;
use super::{DockerEngine, EngineProduct, RunnerChannel, is_not_found};
use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
    WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Label keys every sandbox container carries; Docker is the registry of
/// what exists.
pub mod labels {
    /// `pool` (one stateless execute), `session`, or `spare` (a warm
    /// session container not yet claimed, or claimed: then it has a
    /// session's container name).
    pub const KIND: &str = "multilang-sandbox.kind";
    /// Id of the server instance that created the container.
    pub const INSTANCE: &str = "multilang-sandbox.instance";
    /// Language the container runs.
    pub const LANGUAGE: &str = "multilang-sandbox.language";
    /// Session name (sessions only).
    pub const SESSION: &str = "multilang-sandbox.session";
    /// Creation time, Unix seconds (sessions only).
    pub const CREATED: &str = "multilang-sandbox.created";
    /// Idle time to live in seconds (sessions only).
    pub const TTL: &str = "multilang-sandbox.ttl";
    /// Host folders mounted into a session (JSON list; sessions only).
    pub const MOUNTS: &str = "multilang-sandbox.mounts";
    /// Name of the seccomp profile the container runs under.
    pub const SECCOMP: &str = "multilang-sandbox.seccomp";
    /// Where a session's files live: `memory` (bounded tmpfs volumes) or
    /// `disk` (plain volumes); sessions only.
    pub const STORAGE: &str = "multilang-sandbox.storage";
    /// The host patterns a session was created with (JSON list); present
    /// only on sessions with network (sessions only).
    pub const NETWORK: &str = "multilang-sandbox.network";
    /// A hash of everything that shapes a spare session container (spares
    /// only): a spare is claimed only by a server whose config gives the same.
    pub const SPARE_HASH: &str = "multilang-sandbox.spare-hash";
    /// How many spares of its language the server that made a spare keeps
    /// (others trim surplus spares only beyond the largest such count).
    pub const SPARE_TARGET: &str = "multilang-sandbox.spare-target";
    /// The sandbox network a container with network grants is on (through
    /// the network's holder, which has its name).
    pub const NETWORK_NAME: &str = "multilang-sandbox.network-name";
    /// A snapshot's name (snapshot volumes only; `SESSION` names the
    /// session it was taken of).
    pub const SNAPSHOT: &str = "multilang-sandbox.snapshot";
    /// The image a snapshot's session ran (snapshot volumes only).
    pub const IMAGE: &str = "multilang-sandbox.image";
    /// How many logged cells a snapshot holds, and whether the log was
    /// whole (snapshot volumes only).
    pub const CELLS: &str = "multilang-sandbox.cells";
    pub const CELLS_COMPLETE: &str = "multilang-sandbox.cells-complete";
    /// Bytes a snapshot's files take (snapshot volumes only).
    pub const SIZE: &str = "multilang-sandbox.size";
    /// When a snapshot is deleted, Unix seconds (snapshot volumes only).
    pub const EXPIRES: &str = "multilang-sandbox.expires";
    /// Unique to one snapshot's making: a create that found a volume of
    /// the same name made by another tells it was not its own.
    pub const TOKEN: &str = "multilang-sandbox.token";
    /// `true` on the snapshot a fork of a session's current state takes
    /// (listed nowhere, deleted after the fork).
    pub const TEMPORARY: &str = "multilang-sandbox.temporary";
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMount {
    pub volume: String,
    /// Mount point inside the container.
    pub target: String,
    pub read_only: bool,
}

/// A host folder bind-mounted into a container.
#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    /// Absolute path on the engine's machine.
    pub source: String,
    /// Mount point inside the container.
    pub target: String,
    pub read_only: bool,
}

/// Resource limits of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLimits {
    pub memory_bytes: i64,
    pub pids: i64,
    pub nano_cpus: i64,
    pub tmpfs_mb: u64,
}

/// The network a container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkAccess {
    /// No network at all (every sandbox without grants).
    None,
    /// The engine's default bridge, with a route out (install containers
    /// and the egress proxy).
    Bridge,
    /// The network namespace of the holder container of that name: sandboxes
    /// with network grants (`docker/holder.rs`).
    Holder(String),
}

impl NetworkAccess {
    fn mode(&self) -> String {
        match self {
            NetworkAccess::None => "none".to_string(),
            NetworkAccess::Bridge => "bridge".to_string(),
            NetworkAccess::Holder(holder) => format!("container:{holder}"),
        }
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub image: String,
    /// Command of the container's main process (the runner).
    pub command: Vec<String>,
    /// Container name (sessions), or none for an engine-chosen name.
    pub name: Option<String>,
    pub labels: HashMap<String, String>,
    pub limits: ContainerLimits,
    pub runtime: Option<String>,
    /// Named volumes (sessions: `/workspace`, `/outputs`, `/tmp` and,
    /// read-only, `/packages/session`). A new volume takes the ownership of
    /// the image's (empty) folder. `/tmp`, `/workspace` and `/outputs` are
    /// tmpfs unless a volume is mounted there.
    pub volumes: Vec<VolumeMount>,
    /// Host folders (sessions with configured host folders only).
    pub binds: Vec<BindMount>,
    /// The seccomp profile's JSON; `None` keeps the engine's default.
    pub seccomp: Option<String>,
    /// One-shot containers: stdin closes when our attach ends (so the runner
    /// exits if this server dies) and the engine removes the exited container.
    pub one_shot: bool,
    /// Which network the container joins.
    pub network: NetworkAccess,
    /// Extra environment variables, `NAME=value` (the egress proxy's
    /// address for sandboxes with network grants).
    pub env: Vec<String>,
    /// Writable root filesystem (only install containers, whose result is committed).
    pub writable_root: bool,
    /// Run as root (only apt installs into a cached image).
    pub run_as_root: bool,
}

impl SandboxSpec {
    /// The body of the create request for `product`; `seccomp` is the
    /// `seccomp=` security option in the form it takes (seccomp_files.rs).
    fn container_body(&self, product: EngineProduct, seccomp: Option<String>) -> ContainerCreateBody {
        let tmpfs = |extra: &str| format!("rw,exec,nosuid,nodev,size={}m{extra}", self.limits.tmpfs_mb);
        // Owned by the sandbox user: Podman's tmpfs takes no uid or gid,
        // but `U` makes it the container user's.
        let owned = match product {
            EngineProduct::Docker => ",uid=1000,gid=1000,mode=0755",
            EngineProduct::Podman => ",U,mode=0755",
        };
        let mut tmpfs_mounts = HashMap::new();
        for (folder, options) in [("/tmp", ",mode=1777"), ("/workspace", owned), ("/outputs", owned)] {
            if !self.volumes.iter().any(|mount| mount.target == folder) {
                tmpfs_mounts.insert(folder.to_string(), tmpfs(options));
            }
        }
        let volumes = self.volumes.iter().map(|mount| Mount {
            target: Some(mount.target.clone()),
            source: Some(mount.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(mount.read_only),
            ..Default::default()
        });
        let binds = self.binds.iter().map(|bind| Mount {
            target: Some(bind.target.clone()),
            source: Some(bind.source.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(bind.read_only),
            ..Default::default()
        });
        let mounts: Vec<Mount> = volumes.chain(binds).collect();
        let mut capabilities_added = Vec::new();
        if self.run_as_root {
            // apt needs to change file ownership and drop to its own user.
            capabilities_added.extend(["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"].map(String::from));
        }
        let host_config = HostConfig {
            network_mode: Some(self.network.mode()),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: (!capabilities_added.is_empty()).then_some(capabilities_added),
            security_opt: Some(
                std::iter::once("no-new-privileges:true".to_string())
                    .chain(seccomp)
                    .collect(),
            ),
            readonly_rootfs: Some(!self.writable_root),
            tmpfs: Some(tmpfs_mounts),
            mounts: (!mounts.is_empty()).then_some(mounts),
            memory: Some(self.limits.memory_bytes),
            memory_swap: Some(self.limits.memory_bytes),
            pids_limit: Some(self.limits.pids),
            nano_cpus: Some(self.limits.nano_cpus),
            runtime: self.runtime.clone(),
            auto_remove: Some(self.one_shot),
            // No engine init: the runner is PID 1 and forks its own reaper
            // (images/runner/runner.py `become_init`). Docker's init would
            // be a dumpable process of the code's uid holding the runner's
            // stream, which code could open through /proc/1/fd.
            init: Some(false),
            // Runner messages are the protocol, not logs: keep none on disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(self.command.clone()),
            user: Some(if self.run_as_root { "0:0" } else { "1000:1000" }.into()),
            working_dir: Some("/workspace".into()),
            labels: Some(self.labels.clone()),
            network_disabled: Some(self.network == NetworkAccess::None),
            env: (!self.env.is_empty()).then(|| self.env.clone()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(self.one_shot),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

/// A sandbox container this server created. Removed when
/// [`SandboxContainer::remove`] is called or, failing that, when dropped
/// (unless [`SandboxContainer::keep`] was called: sessions outlive handles).
pub struct SandboxContainer {
    id: String,
    remover: Arc<dyn ContainerRemover>,
    removed: bool,
    /// Where a removal started by `Drop` runs, so shutdown waits for it.
    removals: TaskTracker,
}

/// How a container handle removes its container, in its engine's way.
#[async_trait]
pub trait ContainerRemover: Send + Sync {
    /// Force-removes container `id` with its anonymous volumes; an absent
    /// one, or one the engine is already removing, is fine (failures are
    /// logged: there is no one to tell).
    async fn remove_container(&self, id: &str);
}

/// Docker's (and Podman's) container removal.
struct DockerRemover(Docker);

#[async_trait]
impl ContainerRemover for DockerRemover {
    async fn remove_container(&self, id: &str) {
        remove_container(&self.0, id).await;
    }
}

impl SandboxContainer {
    /// A handle that removes container `id` through `remover` (on
    /// [`SandboxContainer::remove`], or in `removals` when dropped).
    pub fn new(id: String, remover: Arc<dyn ContainerRemover>, removals: TaskTracker) -> Self {
        Self {
            id,
            remover,
            removed: false,
            removals,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Force-removes the container now (whatever runs in it is killed).
    pub async fn remove(mut self) {
        self.removed = true;
        self.remover.remove_container(&self.id).await;
    }

    /// Gives up ownership: the container stays when the handle is dropped.
    pub fn keep(mut self) -> String {
        self.removed = true;
        std::mem::take(&mut self.id)
    }
}

impl Drop for SandboxContainer {
    fn drop(&mut self) {
        if !self.removed {
            spawn_remove(&self.removals, self.remover.clone(), self.id.clone());
        }
    }
}

impl DockerEngine {
    /// Creates, attaches and starts a sandbox container.
    pub async fn start_sandbox(&self, spec: &SandboxSpec) -> Result<(SandboxContainer, RunnerChannel), DockerError> {
        let client = self.client().await?;
        let mut options = CreateContainerOptionsBuilder::default();
        if let Some(name) = &spec.name {
            options = options.name(name);
        }
        let traits = self.traits().await?;
        if !traits.limits_enforced {
            return Err(DockerError::LimitsUnenforced {
                engine: traits.describe(),
            });
        }
        if let (EngineProduct::Podman, Some(runtime)) = (traits.product, &spec.runtime) {
            return Err(DockerError::PodmanRuntime {
                runtime: runtime.clone(),
            });
        }
        let seccomp = match &spec.seccomp {
            Some(json) => Some(self.seccomp_option(json, traits).await?),
            None => None,
        };
        let created = client
            .create_container(Some(options.build()), spec.container_body(traits.product, seccomp))
            .await
            .map_err(|error| match error {
                error if is_not_found(&error) => DockerError::ImageMissing {
                    image: spec.image.clone(),
                },
                bollard::errors::Error::DockerResponseServerError { status_code: 409, .. } => {
                    DockerError::NameInUse(spec.name.clone().unwrap_or_default())
                }
                bollard::errors::Error::DockerResponseServerError { ref message, .. }
                    if spec.runtime.is_some()
                        && (message.contains("Unknown runtime") || message.contains("unknown or invalid runtime")) =>
                {
                    DockerError::RuntimeMissing {
                        runtime: spec.runtime.clone().unwrap_or_default(),
                        message: message.clone(),
                    }
                }
                error => DockerError::from(error),
            })?;
        let container = SandboxContainer::new(
            created.id,
            Arc::new(DockerRemover(client.clone())),
            self.removals.clone(),
        );
        let started = async {
            let channel = attach(&client, &container.id).await?;
            client
                .start_container(&container.id, None::<StartContainerOptions>)
                .await?;
            Ok::<_, DockerError>(channel)
        }
        .await;
        match started {
            Ok(channel) => Ok((container, channel)),
            Err(error) => {
                container.remove().await;
                Err(error)
            }
        }
    }

    /// Attaches to an existing container's stdin/stdout (new output only).
    pub async fn attach_sandbox(&self, id: &str) -> Result<RunnerChannel, DockerError> {
        let client = self.client().await?;
        attach(&client, id).await
    }

    /// Force-removes a container by id or name; absent containers are fine.
    pub async fn remove_sandbox(&self, id: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        remove_container(&client, id).await;
        Ok(())
    }

    /// Waits up to `limit` until the container is gone (its volumes free):
    /// a removal the engine already had under way (an auto-removal)
    /// answers a removal request before it is done. False on timeout.
    pub async fn wait_removed(&self, id: &str, limit: std::time::Duration) -> bool {
        let Ok(client) = self.client().await else {
            return false;
        };
        let options = WaitContainerOptionsBuilder::default().condition("removed").build();
        let mut waiting = client.wait_container(id, Some(options));
        // Any answer ends the wait: the container's exit (bollard reports a
        // non-zero exit code as an error), or its absence.
        tokio::time::timeout(limit, futures::StreamExt::next(&mut waiting))
            .await
            .is_ok()
    }
}

async fn attach(client: &Docker, id: &str) -> Result<RunnerChannel, DockerError> {
    let options = AttachContainerOptionsBuilder::default()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let attached = client.attach_container(id, Some(options)).await?;
    let output = attached.output.filter_map(|item| async move {
        match item {
            Ok(LogOutput::StdOut { message }) => Some(Ok(RunnerOutput::Stdout(message))),
            Ok(LogOutput::StdErr { message }) => Some(Ok(RunnerOutput::Stderr(message))),
            Ok(_) => None,
            Err(error) => Some(Err(std::io::Error::other(error))),
        }
    });
    Ok(RunnerChannel::new(attached.input, Box::pin(output)))
}

fn spawn_remove(removals: &TaskTracker, remover: Arc<dyn ContainerRemover>, id: String) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            removals.spawn_on(async move { remover.remove_container(&id).await }, &handle);
        }
        Err(_) => tracing::warn!(container = %id, "cannot remove container: no async runtime"),
    }
}

async fn remove_container(client: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match client.remove_container(id, Some(options)).await {
        Ok(()) => tracing::debug!(container = %id, "removed container"),
        Err(error) if is_not_found(&error) => {}
        // 409: the engine is already removing it (auto-remove of a one-shot container).
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
        Err(error) => tracing::warn!(container = %id, %error, "failed to remove container"),
    }
}
