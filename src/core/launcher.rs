//! Starts sandbox containers for the pool and for sessions: the image, the
//! runner command (with the right kernel), labels and limits, then waits
//! until the runner says it is ready.

use super::connection::RunnerConnection;
use super::egress::{self, OpenedNetwork};
use crate::config::Config;
use crate::docker::DockerError;
use crate::docker::{
    BindMount, ContainerLimits, NetworkAccess, SandboxContainer, SandboxEngine, SandboxSpec, VolumeMount, labels,
};
use crate::images;
use crate::runtime::packages::SESSION_ROOT;
use crate::runtime::{Kernel, Language};
use crate::security::seccomp::SeccompProfile;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a new container may take to report ready (Go copies its warm
/// build cache; kernels load).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The kind label of the containers that copy a session's files into or
/// out of a snapshot.
pub const COPY_KIND: &str = "snapshot-copy";

/// A started container with its runner connected and ready.
pub struct Sandbox {
    pub container: SandboxContainer,
    pub connection: Arc<RunnerConnection>,
    pub language: Language,
    /// The kernel the runner pre-started, if any.
    pub kernel: Option<Kernel>,
}

/// Puts a sandbox on `network` (sharing its holder's namespace) with the
/// proxy variables set, and labels it with the network it uses.
fn join(network: &OpenedNetwork, spec: &mut SandboxSpec, container_labels: &mut HashMap<String, String>) {
    spec.network = NetworkAccess::Holder(network.name.clone());
    spec.env = egress::sandbox_env(network.via);
    container_labels.insert(labels::NETWORK_NAME.to_string(), network.name.clone());
}

/// What a container is for.
pub enum Purpose<'a> {
    /// One stateless execute, then removed.
    Pool,
    /// One stateless execute with network grants, on its own sandbox
    /// network (never pooled: its network is made for it).
    Networked { network: &'a OpenedNetwork },
    /// A named session.
    Session {
        name: &'a str,
        container_name: &'a str,
        /// The workspace, packages, outputs and `/tmp` volumes.
        volumes: Vec<VolumeMount>,
        /// Memory on top of the configured limit: the session's files when
        /// they live in memory-backed volumes (their pages count as the
        /// container's memory).
        extra_memory_mb: u64,
        /// Configured host folders the session asked for.
        binds: Vec<BindMount>,
        /// The session's seccomp profile (checked to be no weaker than the configured one).
        seccomp: SeccompProfile,
        extra_labels: HashMap<String, String>,
        /// The session's sandbox network, when it has network grants.
        network: Option<&'a OpenedNetwork>,
        /// A warm spare (kind `spare`, no session label; `name` is its
        /// token): a plain create claims it by renaming it.
        spare: bool,
    },
    /// A short-lived container that installs packages, either into a
    /// session's packages volume or into its own filesystem (to be
    /// committed as a cache image). Its network is a sandbox network of its
    /// own: it reaches its package manager's registries through the egress
    /// proxy, nothing else (core/cache/install.rs).
    Install {
        packages_volume: Option<&'a str>,
        as_root: bool,
        network: &'a OpenedNetwork,
    },
    /// A short-lived container that copies files between a session's
    /// volumes and a snapshot's (core/session/snapshot/copy.rs). It runs as
    /// root with the capabilities a faithful copy needs (reading every
    /// file, keeping owners and modes), no network, and only those volumes.
    Copy { volumes: Vec<VolumeMount> },
}

/// Creates sandbox containers for this server instance.
pub struct Launcher {
    engine: Arc<dyn SandboxEngine>,
    config: Arc<Config>,
    instance_id: String,
}

impl Launcher {
    pub fn new(engine: Arc<dyn SandboxEngine>, config: Arc<Config>, instance_id: String) -> Self {
        Self {
            engine,
            config,
            instance_id,
        }
    }

    pub fn engine(&self) -> &Arc<dyn SandboxEngine> {
        &self.engine
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Starts a container for `language` from its standard image and waits
    /// for its runner.
    pub async fn launch(&self, language: Language, purpose: Purpose<'_>) -> Result<Sandbox, DockerError> {
        self.launch_from(language, &images::tag_for(language, &self.config), purpose)
            .await
    }

    /// Starts a container for `language` from `image` (a cached package
    /// image, or the data-science image) and waits for its runner.
    pub async fn launch_from(
        &self,
        language: Language,
        image: &str,
        purpose: Purpose<'_>,
    ) -> Result<Sandbox, DockerError> {
        let (kernel, spec) = self.spec(language, image, purpose);
        let (container, channel) = match self.engine.start_sandbox(&spec).await {
            Ok(started) => started,
            Err(error) => {
                self.engine.reset_if_disconnected(&error).await;
                return Err(error);
            }
        };
        let connection = RunnerConnection::new(channel);
        if let Err(error) = connection.wait_ready(READY_TIMEOUT).await {
            container.remove().await;
            return Err(error);
        }
        Ok(Sandbox {
            container,
            connection: Arc::new(connection),
            language,
            kernel,
        })
    }

    fn spec(&self, language: Language, image: &str, purpose: Purpose<'_>) -> (Option<Kernel>, SandboxSpec) {
        let mut labels = HashMap::from([
            (labels::INSTANCE.to_string(), self.instance_id.clone()),
            (labels::LANGUAGE.to_string(), language.name().to_string()),
        ]);
        let mut spec = SandboxSpec {
            image: image.to_string(),
            command: Vec::new(),
            name: None,
            labels: HashMap::new(),
            limits: ContainerLimits {
                memory_bytes: (self.config.memory_mb * 1024 * 1024) as i64,
                pids: self.config.pids_limit,
                nano_cpus: (self.config.cpus * 1e9) as i64,
                tmpfs_mb: self.config.tmpfs_mb,
            },
            runtime: self.config.runtime.clone(),
            volumes: Vec::new(),
            binds: Vec::new(),
            seccomp: None,
            one_shot: true,
            network: NetworkAccess::None,
            env: Vec::new(),
            writable_root: false,
            run_as_root: false,
        };
        let mut profile = self.config.seccomp.clone();
        let kernel = match purpose {
            Purpose::Pool => {
                labels.insert(labels::KIND.to_string(), "pool".to_string());
                language.pool_kernel()
            }
            Purpose::Networked { network } => {
                labels.insert(labels::KIND.to_string(), "pool".to_string());
                join(network, &mut spec, &mut labels);
                language.pool_kernel()
            }
            Purpose::Session {
                name,
                container_name,
                volumes,
                extra_memory_mb,
                binds,
                seccomp,
                extra_labels,
                network,
                spare,
            } => {
                if let Some(network) = network {
                    join(network, &mut spec, &mut labels);
                }
                spec.limits.memory_bytes += (extra_memory_mb * 1024 * 1024) as i64;
                profile = seccomp;
                if spare {
                    labels.insert(labels::KIND.to_string(), "spare".to_string());
                } else {
                    labels.insert(labels::KIND.to_string(), "session".to_string());
                    labels.insert(labels::SESSION.to_string(), name.to_string());
                }
                labels.extend(extra_labels);
                spec.name = Some(container_name.to_string());
                spec.volumes = volumes;
                spec.binds = binds;
                spec.one_shot = false;
                language.kernel()
            }
            Purpose::Install {
                packages_volume,
                as_root,
                network,
            } => {
                labels.insert(labels::KIND.to_string(), "install".to_string());
                join(network, &mut spec, &mut labels);
                spec.run_as_root = as_root;
                match packages_volume {
                    Some(volume) => {
                        spec.volumes = vec![VolumeMount {
                            volume: volume.to_string(),
                            target: SESSION_ROOT.to_string(),
                            read_only: false,
                        }]
                    }
                    None => spec.writable_root = true,
                }
                // Package managers need more room and time than a program.
                spec.limits.memory_bytes = spec.limits.memory_bytes.max(2048 * 1024 * 1024);
                spec.limits.pids = spec.limits.pids.max(1024);
                None
            }
            Purpose::Copy { volumes } => {
                labels.insert(labels::KIND.to_string(), COPY_KIND.to_string());
                spec.run_as_root = true;
                spec.volumes = volumes;
                // What it writes into a session's memory-backed volumes
                // (workspace, outputs, /tmp) counts as its memory.
                let copied_mb = self.config.session_storage_mb + 2 * self.config.tmpfs_mb;
                spec.limits.memory_bytes += (copied_mb * 1024 * 1024) as i64;
                None
            }
        };
        // -E -s: the runner ignores PYTHONPATH and user site folders, so no
        // installed package can shadow a module it imports (it holds the
        // stream to this server); its kernels still get the environment.
        let mut command: Vec<String> = ["python3", "-E", "-s", "/opt/sandbox/runner.py"]
            .map(String::from)
            .to_vec();
        if let Some(kernel) = kernel {
            command.extend(["--kernel".to_string(), kernel.name().to_string()]);
        }
        spec.command = command;
        spec.seccomp = profile.json().map(String::from);
        labels.insert(labels::SECCOMP.to_string(), profile.name());
        spec.labels = labels;
        (kernel, spec)
    }
}
