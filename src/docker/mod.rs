//! The Docker seam: the only module that imports `bollard`. It connects
//! lazily (so the MCP server answers `initialize` even when Docker is down),
//! negotiates the API version (Debian's engine speaks 1.41), and reconnects
//! after the engine comes back.

mod channel;
mod container;
mod error;
mod holder;
mod images;
mod inventory;
mod network;
mod volumes;

pub use channel::{RunnerChannel, RunnerReader, RunnerWriter};
pub use container::{BindMount, ContainerLimits, NetworkAccess, SandboxContainer, SandboxSpec, VolumeMount, labels};
pub use error::{DockerError, EngineFailure};
pub use holder::HolderSpec;
pub use images::{BuildContext, BuildEvent, ImageInfo};
pub use inventory::{ContainerState, EngineCapacity, MountedVolume, SandboxInfo, VolumeBacking};
pub use network::{IsolatedNetwork, NetworkMembers};
pub use volumes::LabelledVolume;

use bollard::Docker;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;

/// How long the engine may take to start answering one API request (a
/// commit of a large image is the slowest). Attached streams and build
/// output, once started, are not bound by it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A lazily connected, self-healing handle on the Docker engine.
#[derive(Default)]
pub struct DockerEngine {
    client: Mutex<Option<Docker>>,
    /// Removals of containers whose handle was dropped, still under way.
    removals: TaskTracker,
}

impl DockerEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits up to `limit` for removals started by dropped container
    /// handles; false when some were still under way at the limit.
    pub async fn wait_for_removals(&self, limit: Duration) -> bool {
        self.removals.close();
        let finished = tokio::time::timeout(limit, self.removals.wait()).await.is_ok();
        self.removals.reopen();
        finished
    }

    /// A connected client, negotiating the API version on first use.
    pub(super) async fn client(&self) -> Result<Docker, DockerError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        if let Some(problem) = std::env::var("DOCKER_HOST").ok().as_deref().and_then(ssh_port_problem) {
            return Err(DockerError::UnusableHost(problem));
        }
        let client = Docker::connect_with_defaults()
            .map_err(|error| DockerError::Unreachable(error.to_string()))?
            .with_timeout(REQUEST_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(|error| DockerError::Unreachable(describe_unreachable(&error)))?;
        tracing::info!(api = %client.client_version(), "connected to the Docker engine");
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the cached client after a connection failure, so the next call
    /// reconnects (and renegotiates) once the engine is back.
    pub async fn reset_if_disconnected(&self, error: &DockerError) {
        if error.is_connection_failure() {
            tracing::warn!(%error, "lost the Docker engine; will reconnect on next use");
            *self.client.lock().await = None;
        }
    }

    /// True when the engine runs on this machine (a Unix socket or named
    /// pipe), so host paths here are host paths there.
    pub fn is_local(&self) -> bool {
        engine_is_local(std::env::var("DOCKER_HOST").ok().as_deref())
    }

    /// Engine version and API version, for diagnostics.
    pub async fn describe(&self) -> Result<String, DockerError> {
        let facts = self.facts().await?;
        Ok(format!(
            "{} (API {}, negotiated {})",
            facts.product_and_version(),
            facts.api_version,
            facts.negotiated_api
        ))
    }
}

/// Which engine serves the Docker API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::IntoStaticStr)]
pub enum EngineProduct {
    #[default]
    Docker,
    Podman,
}

impl EngineProduct {
    /// The engine that reports these version components (Podman names
    /// its own "Podman Engine"; Docker's are "Engine", "containerd", …).
    fn from_components<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let podman = names
            .into_iter()
            .any(|name| name.to_ascii_lowercase().contains("podman"));
        if podman {
            EngineProduct::Podman
        } else {
            EngineProduct::Docker
        }
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What `doctor` reports about the engine.
#[derive(Debug, Clone, Default)]
pub struct EngineFacts {
    /// Docker, or Podman serving Docker's API.
    pub product: EngineProduct,
    /// The engine runs as an unprivileged user (rootless Docker or Podman).
    pub rootless: bool,
    pub version: String,
    pub api_version: String,
    pub negotiated_api: String,
    /// Where the engine is (`DOCKER_HOST`, or the default socket).
    pub host: String,
    pub os: String,
    /// `name=seccomp,profile=default`, `name=apparmor`, …
    pub security_options: Vec<String>,
    /// OCI runtimes the engine knows (runc, runsc, …).
    pub runtimes: Vec<String>,
}

impl DockerEngine {
    /// The engine's version, security options and runtimes.
    pub async fn facts(&self) -> Result<EngineFacts, DockerError> {
        let client = self.client().await?;
        let version = client
            .version()
            .await
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        let info = client.info().await?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        let security_options = info.security_options.unwrap_or_default();
        let components = version.components.unwrap_or_default();
        Ok(EngineFacts {
            product: EngineProduct::from_components(components.iter().map(|component| component.name.as_str())),
            rootless: security_options.iter().any(|option| option.contains("name=rootless")),
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            negotiated_api: client.client_version().to_string(),
            host: docker_host(),
            os: info.operating_system.unwrap_or_default(),
            security_options,
            runtimes,
        })
    }
}

impl EngineFacts {
    /// For example "Docker 20.10.24" or "Podman 4.3.1 (rootless)".
    pub fn product_and_version(&self) -> String {
        let rootless = if self.rootless { " (rootless)" } else { "" };
        format!("{} {}{rootless}", self.product.name(), self.version)
    }
}

/// bollard hands ssh only `user@host`, so a port in an `ssh://` DOCKER_HOST
/// would be taken as part of the host name: say how to set it instead.
fn ssh_port_problem(docker_host: &str) -> Option<String> {
    let authority = docker_host.strip_prefix("ssh://")?.split('/').next()?;
    let host_part = authority.rsplit('@').next()?;
    let (host, port) = host_part.rsplit_once(':')?;
    if host.ends_with(']') || port.parse::<u16>().is_err() || host.contains(':') {
        return None;
    }
    Some(format!(
        "{docker_host} names port {port}, which the ssh transport cannot pass on; \
         add `Host {host}` with `Port {port}` to ~/.ssh/config and use ssh://{} instead",
        authority.trim_end_matches(&format!(":{port}"))
    ))
}

/// The engine the client connects to: `DOCKER_HOST`, or the default socket.
fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn engine_is_local(docker_host: Option<&str>) -> bool {
    match docker_host {
        None | Some("") => true,
        Some(host) => host.starts_with("unix://") || host.starts_with("npipe://"),
    }
}

fn describe_unreachable(error: &bollard::errors::Error) -> String {
    format!("{error} (at {})", docker_host())
}

/// True when the engine answered 404 (no such image or container).
pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_is_told_from_docker_by_its_version_components() {
        assert_eq!(
            EngineProduct::from_components(["Podman Engine", "Conmon", "OCI Runtime (runc)"]),
            EngineProduct::Podman
        );
        assert_eq!(
            EngineProduct::from_components(["Engine", "containerd", "runc", "docker-init"]),
            EngineProduct::Docker
        );
        assert_eq!(EngineProduct::from_components([]), EngineProduct::Docker);
        let facts = EngineFacts {
            product: EngineProduct::Podman,
            rootless: true,
            version: "4.3.1".to_string(),
            ..EngineFacts::default()
        };
        assert_eq!(facts.product_and_version(), "Podman 4.3.1 (rootless)");
    }

    #[test]
    fn ssh_ports_are_refused_with_the_way_out() {
        let problem = ssh_port_problem("ssh://me@big-box:2222").unwrap();
        assert!(
            problem.contains("Port 2222") && problem.contains("ssh://me@big-box instead"),
            "{problem}"
        );
        assert_eq!(ssh_port_problem("ssh://me@big-box"), None);
        assert_eq!(ssh_port_problem("tcp://big-box:2376"), None);
        assert_eq!(ssh_port_problem("unix:///var/run/docker.sock"), None);
    }

    #[test]
    fn only_socket_engines_are_local() {
        assert!(engine_is_local(None));
        assert!(engine_is_local(Some("unix:///var/run/docker.sock")));
        assert!(!engine_is_local(Some("tcp://10.0.0.5:2376")));
        assert!(!engine_is_local(Some("ssh://me@big-box")));
    }
}
