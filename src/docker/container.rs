//! Sandbox containers: created locked down (no network, non-root, no
//! capabilities, no-new-privileges, read-only root, resource limits), started
//! with the runner attached, and always removed — explicitly, or in the
//! background when the handle is dropped on any error path.

use super::{RunnerChannel, is_not_found};
use crate::error::DockerError;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};
use std::collections::HashMap;

/// Label keys every sandbox container carries; Docker is the registry of
/// what exists.
pub mod labels {
    /// `exec` (one stateless execute), later `pool`, `session`, `install`.
    pub const KIND: &str = "multilang-sandbox.kind";
    /// Id of the server instance that created the container.
    pub const INSTANCE: &str = "multilang-sandbox.instance";
    /// Language the container runs.
    pub const LANGUAGE: &str = "multilang-sandbox.language";
}

/// Resource limits of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLimits {
    pub memory_bytes: i64,
    pub pids: i64,
    pub nano_cpus: i64,
    pub tmpfs_mb: u64,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub image: String,
    pub labels: HashMap<String, String>,
    pub limits: ContainerLimits,
    pub runtime: Option<String>,
}

impl SandboxSpec {
    fn container_body(&self) -> ContainerCreateBody {
        let tmpfs =
            |extra: &str| format!("rw,exec,nosuid,nodev,size={}m{extra}", self.limits.tmpfs_mb);
        let host_config = HostConfig {
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([
                ("/tmp".to_string(), tmpfs(",mode=1777")),
                (
                    "/workspace".to_string(),
                    tmpfs(",uid=1000,gid=1000,mode=0755"),
                ),
                (
                    "/outputs".to_string(),
                    tmpfs(",uid=1000,gid=1000,mode=0755"),
                ),
            ])),
            memory: Some(self.limits.memory_bytes),
            memory_swap: Some(self.limits.memory_bytes),
            pids_limit: Some(self.limits.pids),
            nano_cpus: Some(self.limits.nano_cpus),
            runtime: self.runtime.clone(),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            user: Some("1000:1000".into()),
            working_dir: Some("/workspace".into()),
            labels: Some(self.labels.clone()),
            network_disabled: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(false),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

/// A running sandbox container with its runner attached. Removed when
/// [`SandboxContainer::remove`] is called or, failing that, when dropped.
pub struct SandboxContainer {
    id: String,
    client: Docker,
    channel: RunnerChannel,
    removed: bool,
}

impl SandboxContainer {
    /// Creates, attaches and starts a container.
    pub async fn start(client: Docker, spec: &SandboxSpec) -> Result<Self, DockerError> {
        let created = client
            .create_container(None::<CreateContainerOptions>, spec.container_body())
            .await
            .map_err(|error| {
                if is_not_found(&error) {
                    DockerError::ImageMissing {
                        image: spec.image.clone(),
                    }
                } else {
                    DockerError::Api(error)
                }
            })?;
        let id = created.id;
        let mut guard = RemoveOnDrop {
            id: Some(id.clone()),
            client: client.clone(),
        };
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = client.attach_container(&id, Some(options)).await?;
        client
            .start_container(&id, None::<StartContainerOptions>)
            .await?;
        guard.id = None;
        Ok(Self {
            id,
            client,
            channel: RunnerChannel::new(attached.input, attached.output),
            removed: false,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn channel(&mut self) -> &mut RunnerChannel {
        &mut self.channel
    }

    /// Force-removes the container now (whatever runs in it is killed).
    pub async fn remove(mut self) {
        self.removed = true;
        remove_container(&self.client, &self.id).await;
    }
}

impl Drop for SandboxContainer {
    fn drop(&mut self) {
        if !self.removed {
            spawn_remove(self.client.clone(), self.id.clone());
        }
    }
}

/// Removes a half-set-up container if `start` fails after creating it.
struct RemoveOnDrop {
    id: Option<String>,
    client: Docker,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            spawn_remove(self.client.clone(), id);
        }
    }
}

fn spawn_remove(client: Docker, id: String) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move { remove_container(&client, &id).await });
        }
        Err(_) => tracing::warn!(container = %id, "cannot remove container: no async runtime"),
    }
}

async fn remove_container(client: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match client.remove_container(id, Some(options)).await {
        Ok(()) => tracing::debug!(container = %id, "removed container"),
        Err(error) if is_not_found(&error) => {}
        Err(error) => tracing::warn!(container = %id, %error, "failed to remove container"),
    }
}
