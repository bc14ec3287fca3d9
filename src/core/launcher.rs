//! Starts sandbox containers for the pool and for sessions: the image, the
//! runner command (with the right kernel), labels and limits, then waits
//! until the runner says it is ready.

use super::connection::RunnerConnection;
use crate::config::Config;
use crate::docker::{ContainerLimits, DockerEngine, SandboxContainer, SandboxSpec, labels};
use crate::error::DockerError;
use crate::images;
use crate::runtime::{Kernel, Language};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a new container may take to report ready (Go copies its warm
/// build cache; kernels load).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A started container with its runner connected and ready.
pub struct Sandbox {
    pub container: SandboxContainer,
    pub connection: RunnerConnection,
    pub language: Language,
    /// The kernel the runner pre-started, if any.
    pub kernel: Option<Kernel>,
}

/// What a container is for.
pub enum Purpose<'a> {
    /// One stateless execute, then removed.
    Pool,
    /// A named session.
    Session {
        name: &'a str,
        container_name: &'a str,
        volume: &'a str,
        extra_labels: HashMap<String, String>,
    },
}

/// Creates sandbox containers for this server instance.
pub struct Launcher {
    engine: Arc<DockerEngine>,
    config: Arc<Config>,
    instance_id: String,
}

impl Launcher {
    pub fn new(engine: Arc<DockerEngine>, config: Arc<Config>, instance_id: String) -> Self {
        Self {
            engine,
            config,
            instance_id,
        }
    }

    pub fn engine(&self) -> &Arc<DockerEngine> {
        &self.engine
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Starts a container for `language` and waits for its runner.
    pub async fn launch(
        &self,
        language: Language,
        purpose: Purpose<'_>,
    ) -> Result<Sandbox, DockerError> {
        let (kernel, spec) = self.spec(language, purpose);
        let (container, channel) = match self.engine.start_sandbox(&spec).await {
            Ok(started) => started,
            Err(error) => {
                self.engine.reset_if_disconnected(&error).await;
                return Err(error);
            }
        };
        let connection = RunnerConnection::new(channel);
        connection.wait_ready(READY_TIMEOUT).await?;
        Ok(Sandbox {
            container,
            connection,
            language,
            kernel,
        })
    }

    fn spec(&self, language: Language, purpose: Purpose<'_>) -> (Option<Kernel>, SandboxSpec) {
        let mut labels = HashMap::from([
            (labels::INSTANCE.to_string(), self.instance_id.clone()),
            (labels::LANGUAGE.to_string(), language.name().to_string()),
        ]);
        let (kernel, name, volume, one_shot) = match purpose {
            Purpose::Pool => {
                labels.insert(labels::KIND.to_string(), "pool".to_string());
                (language.pool_kernel(), None, None, true)
            }
            Purpose::Session {
                name,
                container_name,
                volume,
                extra_labels,
            } => {
                labels.insert(labels::KIND.to_string(), "session".to_string());
                labels.insert(labels::SESSION.to_string(), name.to_string());
                labels.extend(extra_labels);
                (
                    language.kernel(),
                    Some(container_name.to_string()),
                    Some(volume.to_string()),
                    false,
                )
            }
        };
        let mut command = vec!["python3".to_string(), "/opt/sandbox/runner.py".to_string()];
        if let Some(kernel) = kernel {
            command.extend(["--kernel".to_string(), kernel.name().to_string()]);
        }
        let spec = SandboxSpec {
            image: images::tag_for(language, &self.config),
            command,
            name,
            labels,
            limits: ContainerLimits {
                memory_bytes: (self.config.memory_mb * 1024 * 1024) as i64,
                pids: self.config.pids_limit,
                nano_cpus: (self.config.cpus * 1e9) as i64,
                tmpfs_mb: self.config.tmpfs_mb,
            },
            runtime: self.config.runtime.clone(),
            workspace_volume: volume,
            one_shot,
        };
        (kernel, spec)
    }
}
