//! Network holders: a tiny container that holds a sandbox's place (its
//! network namespace and address) on an isolated network, so the sandbox
//! joins that namespace (`container:<holder>`) instead of having one made
//! for it at start, which is what makes a sandbox with network start as
//! fast as one without. A holder runs only `sleep`, as nobody, with every
//! capability dropped; it is named after its network.

use super::{DockerEngine, DockerError};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use std::collections::HashMap;

/// What a network holder is made from.
#[derive(Debug, Clone)]
pub struct HolderSpec<'a> {
    /// The holder's container name, which is also its network's.
    pub network: &'a str,
    /// An image with `sleep` (the egress proxy's).
    pub image: &'a str,
    pub labels: HashMap<String, String>,
}

impl HolderSpec<'_> {
    fn container_body(&self) -> ContainerCreateBody {
        let host_config = HostConfig {
            network_mode: Some(self.network.to_string()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            // Room for the runtime's own start in the container's cgroup
            // (its threads count as processes); `sleep` needs one.
            memory: Some(64 * 1024 * 1024),
            memory_swap: Some(64 * 1024 * 1024),
            pids_limit: Some(16),
            nano_cpus: Some(100_000_000),
            // Back by itself after an engine restart, so the sandboxes that
            // share its namespace can be started again.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.to_string()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            user: Some("65534:65534".into()),
            labels: Some(self.labels.clone()),
            // `sleep` ignores SIGTERM: stop it at once instead of after the
            // engine's grace period (an engine restart would wait for it).
            stop_signal: Some("SIGKILL".into()),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

impl DockerEngine {
    /// Creates and starts the holder of `spec.network`; returns its id.
    /// A failed start removes what was created.
    pub async fn start_network_holder(&self, spec: &HolderSpec<'_>) -> Result<String, DockerError> {
        let client = self.client().await?;
        let options = CreateContainerOptionsBuilder::default().name(spec.network).build();
        let created = client.create_container(Some(options), spec.container_body()).await?;
        if let Err(error) = client.start_container(&created.id, None::<StartContainerOptions>).await {
            self.remove_sandbox(&created.id).await?;
            return Err(error.into());
        }
        Ok(created.id)
    }

    /// Starts the holder `name` if it is not running (someone stopped it:
    /// an engine restart starts it by itself).
    pub async fn start_network_holder_again(&self, name: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        match client.start_container(name, None::<StartContainerOptions>).await {
            Ok(()) => Ok(()),
            // Running already.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
