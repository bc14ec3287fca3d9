//! The executor: runs one piece of code in a fresh, locked-down container.
//! The container's runner receives the program over the attached stream,
//! enforces the timeout and output caps, and answers; the container is then
//! removed in the background (tracked, so shutdown waits for it).

use super::protocol::{PROTOCOL, RunRequest, RunResult, RunnerMessage};
use crate::config::Config;
use crate::docker::{
    ContainerLimits, DockerEngine, RunnerChannel, SandboxContainer, SandboxSpec, labels,
};
use crate::error::{DockerError, ExecuteError};
use crate::images;
use crate::runtime::Language;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

/// How long a new container may take to report ready (Go copies its warm
/// build cache first).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Slack on top of the caller's timeout before the host gives up on the
/// runner and kills the container itself.
const HOST_GRACE: Duration = Duration::from_secs(5);

/// One execute, validated.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    pub language: Language,
    pub code: String,
    pub timeout_ms: u64,
    pub stdin: Option<String>,
    pub env: BTreeMap<String, String>,
}

/// What happened to the code.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub language: Language,
    pub stdout: String,
    pub stderr: String,
    /// Exit code of the step that ran last; 128+N when killed by signal N.
    pub exit_code: i64,
    /// Wall time of the program (build and run) inside the container.
    pub duration_ms: u64,
    pub timed_out: bool,
    pub truncated: bool,
    /// `build` when compilation failed, `run` otherwise.
    pub phase: String,
    /// Plain-words explanation of an abnormal end (timeout, out of memory).
    pub note: Option<String>,
}

impl ExecutionOutcome {
    /// True when the code ran to completion with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// Runs code in sandbox containers.
pub struct Executor {
    engine: Arc<DockerEngine>,
    config: Arc<Config>,
    instance_id: String,
    background: TaskTracker,
}

impl Executor {
    pub fn new(engine: Arc<DockerEngine>, config: Arc<Config>, instance_id: String) -> Self {
        Self {
            engine,
            config,
            instance_id,
            background: TaskTracker::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Validates a caller's timeout (milliseconds), applying the default.
    pub fn timeout_ms(&self, requested: Option<u64>) -> Result<u64, ExecuteError> {
        let timeout = requested.unwrap_or(self.config.default_timeout_ms);
        if timeout == 0 || timeout > self.config.max_timeout_ms {
            return Err(ExecuteError::InvalidTimeout {
                given: timeout,
                max: self.config.max_timeout_ms,
                default: self.config.default_timeout_ms,
            });
        }
        Ok(timeout)
    }

    /// Runs `request` in a fresh container and removes the container afterwards.
    pub async fn execute(
        &self,
        request: &ExecuteRequest,
    ) -> Result<ExecutionOutcome, ExecuteError> {
        if request.code.trim().is_empty() {
            return Err(ExecuteError::EmptyCode);
        }
        for name in request.env.keys() {
            if !valid_env_name(name) {
                return Err(ExecuteError::InvalidEnvName(name.clone()));
            }
        }
        let started = Instant::now();
        let mut container = match self.start_container(request.language).await {
            Ok(container) => container,
            Err(error) => {
                self.engine.reset_if_disconnected(&error).await;
                return Err(error.into());
            }
        };
        let container_ready = started.elapsed();
        let result = self.run_in(container.channel(), request).await;
        let container_id = container.id().to_string();
        self.background.spawn(container.remove());
        tracing::debug!(
            container = %container_id,
            start_ms = container_ready.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "execute finished"
        );
        match result {
            Ok(run) => Ok(self.outcome(request, run)),
            Err(RunFailure::HostTimeout) => Ok(self.host_timeout_outcome(request)),
            Err(RunFailure::Docker(error)) => {
                self.engine.reset_if_disconnected(&error).await;
                Err(error.into())
            }
        }
    }

    /// Waits until every background container removal has finished.
    pub async fn shutdown(&self) {
        self.background.close();
        if tokio::time::timeout(Duration::from_secs(10), self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sandbox containers were still being removed at shutdown");
        }
    }

    async fn start_container(&self, language: Language) -> Result<SandboxContainer, DockerError> {
        let client = self.engine.client().await?;
        let spec = SandboxSpec {
            image: images::tag_for(language, &self.config),
            labels: HashMap::from([
                (labels::KIND.to_string(), "exec".to_string()),
                (labels::INSTANCE.to_string(), self.instance_id.clone()),
                (labels::LANGUAGE.to_string(), language.name().to_string()),
            ]),
            limits: ContainerLimits {
                memory_bytes: (self.config.memory_mb * 1024 * 1024) as i64,
                pids: self.config.pids_limit,
                nano_cpus: (self.config.cpus * 1e9) as i64,
                tmpfs_mb: self.config.tmpfs_mb,
            },
            runtime: self.config.runtime.clone(),
        };
        SandboxContainer::start(client, &spec).await
    }

    async fn run_in(
        &self,
        channel: &mut RunnerChannel,
        request: &ExecuteRequest,
    ) -> Result<RunResult, RunFailure> {
        wait_ready(channel).await?;
        let program = request.language.prepare(&request.code);
        let id = uuid::Uuid::new_v4().to_string();
        let mut run = RunRequest::new(&id, &program, &request.env);
        run.stdin = request.stdin.as_deref();
        run.timeout_ms = request.timeout_ms;
        run.max_output_bytes = self.config.max_output_bytes;
        let line = serde_json::to_vec(&run).map_err(|e| {
            RunFailure::Docker(DockerError::Protocol(format!("cannot encode request: {e}")))
        })?;
        channel.send_line(&line).await?;
        let deadline = Duration::from_millis(request.timeout_ms) + HOST_GRACE;
        let reply = tokio::time::timeout(deadline, read_message(channel))
            .await
            .map_err(|_| RunFailure::HostTimeout)??;
        match reply {
            RunnerMessage::Result(result) => Ok(result),
            RunnerMessage::Error { message, .. } => {
                Err(RunFailure::Docker(DockerError::Protocol(message)))
            }
            other => Err(RunFailure::Docker(DockerError::Protocol(format!(
                "expected a result, got {other:?}"
            )))),
        }
    }

    fn outcome(&self, request: &ExecuteRequest, run: RunResult) -> ExecutionOutcome {
        let note = if run.timed_out {
            Some(format!(
                "Timed out after {} ms: the program was killed. Make it faster or pass a larger `timeout` (milliseconds, up to {}).",
                request.timeout_ms, self.config.max_timeout_ms
            ))
        } else if run.signal == Some(9) {
            Some(format!(
                "The program was killed (SIGKILL), most likely because it ran out of memory (limit {} MiB).",
                self.config.memory_mb
            ))
        } else if run.truncated {
            Some(format!(
                "Output was longer than {} bytes per stream and was cut.",
                self.config.max_output_bytes
            ))
        } else {
            None
        };
        ExecutionOutcome {
            language: request.language,
            stdout: run.stdout,
            stderr: run.stderr,
            exit_code: run.exit_code,
            duration_ms: run.duration_ms,
            timed_out: run.timed_out,
            truncated: run.truncated,
            phase: run.phase,
            note,
        }
    }

    fn host_timeout_outcome(&self, request: &ExecuteRequest) -> ExecutionOutcome {
        ExecutionOutcome {
            language: request.language,
            stdout: String::new(),
            stderr: String::new(),
            exit_code: 137,
            duration_ms: request.timeout_ms,
            timed_out: true,
            truncated: false,
            phase: "run".into(),
            note: Some(format!(
                "Timed out after {} ms and the sandbox stopped answering, so its container was removed; no output could be recovered.",
                request.timeout_ms
            )),
        }
    }
}

enum RunFailure {
    HostTimeout,
    Docker(DockerError),
}

impl From<DockerError> for RunFailure {
    fn from(error: DockerError) -> Self {
        RunFailure::Docker(error)
    }
}

async fn read_message(channel: &mut RunnerChannel) -> Result<RunnerMessage, DockerError> {
    let line = channel.read_line().await?;
    serde_json::from_slice(&line).map_err(|error| {
        DockerError::Protocol(format!(
            "unreadable message ({error}): {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        ))
    })
}

async fn wait_ready(channel: &mut RunnerChannel) -> Result<(), DockerError> {
    let message = tokio::time::timeout(READY_TIMEOUT, read_message(channel))
        .await
        .map_err(|_| {
            DockerError::ContainerGone(format!(
                "the runner did not start within {} s",
                READY_TIMEOUT.as_secs()
            ))
        })??;
    match message {
        RunnerMessage::Ready { protocol } if protocol == PROTOCOL => Ok(()),
        RunnerMessage::Ready { protocol } => Err(DockerError::Protocol(format!(
            "the image's runner speaks protocol {protocol}, this server {PROTOCOL}; rebuild the images with `multilang-sandbox images build`"
        ))),
        other => Err(DockerError::Protocol(format!(
            "expected ready, got {other:?}"
        ))),
    }
}

/// Environment variable names: letters, digits, `_`, not starting with a digit.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_checked() {
        assert!(valid_env_name("PATH"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A=B"));
        assert!(!valid_env_name(""));
        assert!(!valid_env_name("A B"));
    }

    #[test]
    fn timeouts_are_validated_with_the_default_applied() {
        let executor = Executor::new(
            Arc::new(DockerEngine::new()),
            Arc::new(Config::default()),
            "test".into(),
        );
        assert_eq!(executor.timeout_ms(None).unwrap(), 30_000);
        assert_eq!(executor.timeout_ms(Some(2000)).unwrap(), 2000);
        assert!(executor.timeout_ms(Some(0)).is_err());
        assert!(executor.timeout_ms(Some(10_000_000)).is_err());
    }
}
