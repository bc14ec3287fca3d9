//! The Docker seam: the only module that imports `bollard`, and the
//! engine trait `core/` uses ([`SandboxEngine`], in `engine.rs`). It connects
//! lazily (so the MCP server answers `initialize` even when Docker is down),
//! negotiates the API version (Debian's engine speaks 1.41), and reconnects
//! after the engine comes back.

mod channel;
mod container;
mod engine;
mod error;
mod holder;
mod images;
mod inventory;
mod network;
mod seccomp_files;
mod volumes;

pub use channel::{RunnerChannel, RunnerOutput, RunnerOutputStream, RunnerReader, RunnerWriter};
pub use container::{
    BindMount, ContainerLimits, ContainerRemover, NetworkAccess, SandboxContainer, SandboxSpec, VolumeMount, labels,
};
pub use engine::{RootfsStream, SandboxEngine};
pub use error::{DockerError, EngineFailure};
pub use holder::HolderSpec;
pub use images::{BuildContext, BuildEvent, ImageFacts, ImageInfo};
pub use inventory::{ContainerState, EngineCapacity, MountedVolume, SandboxInfo, VolumeBacking};
pub use network::{IsolatedNetwork, NetworkMembers};
pub use volumes::LabelledVolume;

use bollard::Docker;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;

/// How long the engine may take to start answering one API request (a
/// commit of a large image is the slowest). Attached streams and build
/// output, once started, are not bound by it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A lazily connected, self-healing handle on the Docker engine.
pub struct DockerEngine {
    client: Mutex<Option<Docker>>,
    /// What the engine is and can do, once asked (cleared with the client).
    traits: Mutex<Option<EngineTraits>>,
    /// Removals of containers whose handle was dropped, still under way.
    removals: TaskTracker,
    /// Where seccomp profiles are written for Podman (seccomp_files.rs).
    profile_folder: PathBuf,
}

impl DockerEngine {
    /// An engine handle; `state_dir` is the server's state folder (Podman's
    /// seccomp profiles are written there).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            client: Mutex::new(None),
            traits: Mutex::new(None),
            removals: TaskTracker::new(),
            profile_folder: seccomp_files::profile_folder(state_dir),
        }
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
        let client = Docker::connect_with_host(&docker_host())
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
            *self.traits.lock().await = None;
        }
    }

    /// True when the engine runs on this machine (a Unix socket or named
    /// pipe), so host paths here are host paths there.
    pub fn is_local(&self) -> bool {
        engine_is_local(Some(&docker_host()))
    }

    /// What the engine is and can do (asked once per connection).
    pub async fn traits(&self) -> Result<EngineTraits, DockerError> {
        if let Some(traits) = *self.traits.lock().await {
            return Ok(traits);
        }
        let traits = self.facts().await?.traits();
        *self.traits.lock().await = Some(traits);
        Ok(traits)
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

/// What the engine is, and whether it can hold a sandbox to its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTraits {
    pub product: EngineProduct,
    pub rootless: bool,
    /// The engine enforces memory and process-count limits (a rootless
    /// engine on cgroup v1 cannot: it would drop them).
    pub limits_enforced: bool,
}

/// What `doctor` reports about the engine.
#[derive(Debug, Clone, Default)]
pub struct EngineFacts {
    /// Docker, or Podman serving Docker's API.
    pub product: EngineProduct,
    /// The engine runs as an unprivileged user (rootless Docker or Podman).
    pub rootless: bool,
    /// The control group version the engine uses ("1" or "2").
    pub cgroup_version: String,
    /// The engine says it can limit memory and the number of processes.
    pub memory_limit: bool,
    pub pids_limit: bool,
    /// The OCI runtime containers get when none is named.
    pub default_runtime: String,
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
        let product = EngineProduct::from_components(components.iter().map(|component| component.name.as_str()));
        let storage = info.docker_root_dir.unwrap_or_default();
        Ok(EngineFacts {
            product,
            rootless: is_rootless(product, &security_options, &storage),
            cgroup_version: info
                .cgroup_version
                .map(|version| version.to_string())
                .unwrap_or_default(),
            memory_limit: info.memory_limit.unwrap_or(false),
            pids_limit: info.pids_limit.unwrap_or(false),
            default_runtime: info.default_runtime.unwrap_or_default(),
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

impl EngineTraits {
    /// For example "Docker" or "rootless Podman".
    pub fn describe(&self) -> String {
        let rootless = if self.rootless { "rootless " } else { "" };
        format!("{rootless}{}", self.product.name())
    }
}

impl EngineFacts {
    pub fn traits(&self) -> EngineTraits {
        let rootless_on_v1 = self.rootless && self.cgroup_version == "1";
        EngineTraits {
            product: self.product,
            rootless: self.rootless,
            limits_enforced: self.memory_limit && self.pids_limit && !rootless_on_v1,
        }
    }

    /// For example "Docker 20.10.24" or "Podman 4.3.1 (rootless)".
    pub fn product_and_version(&self) -> String {
        let rootless = if self.rootless { " (rootless)" } else { "" };
        format!("{} {}{rootless}", self.product.name(), self.version)
    }
}

/// Docker says it runs rootless among its security options. Podman 4.3's
/// Docker-compatible answer does not (its own `Rootless` field is not
/// Docker's, and bollard drops it), so a Podman counts as rootful only
/// with its storage where a rootful one keeps it (`/var/lib/containers`):
/// one that cannot be told apart is taken for rootless, whose limits may
/// not hold.
fn is_rootless(product: EngineProduct, security_options: &[String], storage: &str) -> bool {
    security_options.iter().any(|option| option.contains("name=rootless"))
        || (product == EngineProduct::Podman && !storage.starts_with("/var/lib/containers/"))
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

/// Where the engine is: `DOCKER_HOST`; else Docker's socket, unless Docker
/// is not installed and a Podman socket exists (the user's rootless one,
/// then the system's). Where Docker is installed its socket is the answer
/// even when dockerd is down, so the user is told Docker is not running
/// rather than silently served by another engine.
fn docker_host() -> String {
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR").ok();
    let docker_installed = which::which("dockerd").is_ok() || which::which("docker").is_ok();
    engine_host(
        std::env::var("DOCKER_HOST").ok(),
        runtime_dir.as_deref(),
        docker_installed,
        |path| std::path::Path::new(path).exists(),
    )
}

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn engine_host(
    docker_host: Option<String>,
    runtime_dir: Option<&str>,
    docker_installed: bool,
    exists: impl Fn(&str) -> bool,
) -> String {
    if let Some(host) = docker_host.filter(|host| !host.is_empty()) {
        return host;
    }
    if docker_installed || exists(DOCKER_SOCKET) {
        return format!("unix://{DOCKER_SOCKET}");
    }
    let rootless_podman = runtime_dir
        .filter(|folder| !folder.is_empty())
        .map(|folder| format!("{folder}/podman/podman.sock"));
    [rootless_podman, Some("/run/podman/podman.sock".to_string())]
        .into_iter()
        .flatten()
        .find(|socket| exists(socket))
        .map_or_else(
            || format!("unix://{DOCKER_SOCKET}"),
            |socket| format!("unix://{socket}"),
        )
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

/// Runs a listing, and again (every 100 ms, up to `attempts` times in all
/// before a last try) while it fails in a way Podman's listings do for a
/// moment (`transient`); Docker's never do.
pub(crate) async fn list_again_while<T, Listing>(
    attempts: u32,
    transient: impl Fn(&bollard::errors::Error) -> bool,
    mut list: impl FnMut() -> Listing,
) -> Result<T, bollard::errors::Error>
where
    Listing: Future<Output = Result<T, bollard::errors::Error>>,
{
    for _ in 0..attempts {
        match list().await {
            Err(error) if transient(&error) => tokio::time::sleep(Duration::from_millis(100)).await,
            listed => return listed,
        }
    }
    list().await
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
    fn without_docker_host_docker_comes_first_and_podman_only_where_docker_is_not_installed() {
        fn present(sockets: &'static [&'static str]) -> impl Fn(&str) -> bool {
            move |path| sockets.contains(&path)
        }
        const PODMAN_USER: &str = "/run/user/1000/podman/podman.sock";
        const PODMAN_SYSTEM: &str = "/run/podman/podman.sock";
        let docker = format!("unix://{DOCKER_SOCKET}");
        assert_eq!(
            engine_host(Some("ssh://me@box".into()), Some("/run/user/1000"), true, present(&[])),
            "ssh://me@box"
        );
        assert_eq!(
            engine_host(
                None,
                Some("/run/user/1000"),
                true,
                present(&[DOCKER_SOCKET, PODMAN_USER])
            ),
            docker
        );
        // Docker installed but stopped: its socket, so doctor says it is down.
        assert_eq!(
            engine_host(
                None,
                Some("/run/user/1000"),
                true,
                present(&[PODMAN_USER, PODMAN_SYSTEM])
            ),
            docker
        );
        assert_eq!(
            engine_host(
                None,
                Some("/run/user/1000"),
                false,
                present(&[PODMAN_USER, PODMAN_SYSTEM])
            ),
            format!("unix://{PODMAN_USER}")
        );
        assert_eq!(
            engine_host(Some(String::new()), None, false, present(&[PODMAN_SYSTEM])),
            format!("unix://{PODMAN_SYSTEM}")
        );
        assert_eq!(engine_host(None, None, false, present(&[])), docker);
    }

    #[test]
    fn rootless_engines_are_told_by_their_security_options_or_podmans_storage() {
        let rootless_docker = ["name=seccomp,profile=builtin".to_string(), "name=rootless".to_string()];
        assert!(is_rootless(
            EngineProduct::Docker,
            &rootless_docker,
            "/home/me/.local/share/docker"
        ));
        assert!(!is_rootless(EngineProduct::Docker, &[], "/var/lib/docker"));
        let seccomp = ["name=seccomp,profile=default".to_string()];
        assert!(is_rootless(EngineProduct::Podman, &seccomp, "/srv/containers/storage"));
        assert!(is_rootless(
            EngineProduct::Podman,
            &seccomp,
            "/home/me/.local/share/containers/storage"
        ));
        assert!(!is_rootless(
            EngineProduct::Podman,
            &seccomp,
            "/var/lib/containers/storage"
        ));
    }

    #[test]
    fn limits_count_as_enforced_only_when_the_engine_can_and_is_not_rootless_on_cgroup_v1() {
        let rootful = EngineFacts {
            cgroup_version: "1".to_string(),
            memory_limit: true,
            pids_limit: true,
            ..EngineFacts::default()
        };
        assert!(rootful.traits().limits_enforced);
        let rootless_v1 = EngineFacts {
            rootless: true,
            ..rootful.clone()
        };
        assert!(!rootless_v1.traits().limits_enforced);
        let rootless_v2 = EngineFacts {
            cgroup_version: "2".to_string(),
            ..rootless_v1.clone()
        };
        assert!(rootless_v2.traits().limits_enforced);
        let no_pids = EngineFacts {
            pids_limit: false,
            ..rootless_v2
        };
        assert!(!no_pids.traits().limits_enforced);
        assert_eq!(rootless_v1.traits().describe(), "rootless Docker");
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
