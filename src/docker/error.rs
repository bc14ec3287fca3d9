//! Failures talking to the Docker engine. bollard's error type stops here:
//! the rest of the server sees an [`EngineFailure`] that says whether the
//! engine itself is gone, in words safe to show a client.

use thiserror::Error;

/// Failures talking to the Docker engine.
#[derive(Debug, Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine: {0}. Start Docker (for example `sudo systemctl start docker`, \
         or open Docker Desktop) and try again; `DOCKER_HOST` selects another engine"
    )]
    Unreachable(String),
    #[error("cannot use DOCKER_HOST: {0}")]
    UnusableHost(String),
    #[error(
        "Podman reads a seccomp profile from a file on its own machine, and this engine is remote. \
         Run multilang-sandbox on the engine's machine, or set `seccomp = \"engine-default\"` to use Podman's own profile"
    )]
    PodmanSeccompRemote,
    #[error(
        "the engine ({engine}) cannot enforce memory and process-count limits, so a sandbox would run without them; \
         refusing to start one. Use a rootful engine (Podman: `sudo podman system service --time=0`, then \
         DOCKER_HOST=unix:///run/podman/podman.sock), or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)"
    )]
    LimitsUnenforced { engine: String },
    #[error(
        "Podman's Docker-compatible API ignores a runtime named per container, so `{runtime}` would not be used; \
         refusing to start a sandbox without it. Set `runtime = \"{runtime}\"` under [engine] in \
         /etc/containers/containers.conf (every Podman container then uses it) and unset MULTILANG_SANDBOX_RUNTIME"
    )]
    PodmanRuntime { runtime: String },
    #[error("cannot write the seccomp profile file {} for Podman: {reason}. Check that the state folder is writable (`state_dir`)", path.display())]
    SeccompFile { path: std::path::PathBuf, reason: String },
    #[error("sandbox image `{image}` is missing. Build the images with `multilang-sandbox images build`")]
    ImageMissing { image: String },
    /// Shown without the engine's own paths (its storage and state folders);
    /// the full error is logged where a tool call fails.
    #[error("Docker engine error: {}", .0.shown)]
    Api(EngineFailure),
    #[error("the sandbox container stopped before answering ({0}); try again")]
    ContainerGone(String),
    #[error("the sandbox runner broke protocol: {0}")]
    Protocol(String),
    #[error("a container named `{0}` already exists")]
    NameInUse(String),
    #[error(
        "the Docker engine cannot use the OCI runtime `{runtime}` ({message}). Register it in /etc/docker/daemon.json (for gVisor: {{\"runtimes\": {{\"runsc\": {{\"path\": \"/usr/bin/runsc\", \"runtimeArgs\": [\"--network=none\"]}}}}}}) and reload Docker, or unset MULTILANG_SANDBOX_RUNTIME"
    )]
    RuntimeMissing { runtime: String, message: String },
    #[error(
        "the sandbox runner could not run the request ({0}); try again, and in a session destroy and recreate it if this repeats"
    )]
    RunnerFailed(String),
}

/// An engine API call that failed.
#[derive(Debug)]
pub struct EngineFailure {
    /// The connection to the engine broke (not a refused request): the
    /// client is dropped and the next call reconnects.
    pub connection_lost: bool,
    /// What the engine or the transport said, in full (for the log).
    pub detail: String,
    /// The same without the engine's paths (for the client).
    pub shown: String,
}

impl From<bollard::errors::Error> for DockerError {
    fn from(error: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        let connection_lost = matches!(
            error,
            E::HyperResponseError { .. }
                | E::IOError { .. }
                | E::SocketNotFoundError(_)
                | E::RequestTimeoutError
                | E::HyperLegacyError { .. }
        );
        let text = match &error {
            E::DockerResponseServerError { status_code, message } => format!("{message} (HTTP {status_code})"),
            other => other.to_string(),
        };
        DockerError::Api(EngineFailure {
            connection_lost,
            detail: format!("{error:?}"),
            shown: without_engine_paths(&text),
        })
    }
}

impl DockerError {
    /// True for errors that mean the engine itself is gone, not a bad request.
    pub fn is_connection_failure(&self) -> bool {
        match self {
            DockerError::Unreachable(_) => true,
            DockerError::Api(failure) => failure.connection_lost,
            _ => false,
        }
    }

    /// True when the engine refused a fixed address on a network because
    /// another endpoint holds it (it says "Address already in use").
    pub fn is_address_in_use(&self) -> bool {
        matches!(self, DockerError::Api(failure) if failure.detail.contains("Address already in use"))
    }
}

/// An engine error in words for the client: the engine's storage and state
/// paths (`/var/lib/docker/overlay2/<layer>/merged/…`, a runtime's state
/// under `/run`) say nothing the model can act on and reveal the host's
/// layout, so they are replaced.
fn without_engine_paths(text: &str) -> String {
    static ENGINE_PATH: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?:/var)?/(?:lib|run)/(?:docker|containerd|containers|podman|runc|runsc)\b[^\s"',;:]*|/run/user/\d+/[^\s"',;:]*|/[^\s"',;:]*overlay2?/[^\s"',;:]*"#,
        )
        .ok()
    });
    match ENGINE_PATH.as_ref() {
        Some(pattern) => pattern.replace_all(text, "<engine path>").into_owned(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_paths_are_not_shown() {
        let error = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "readlink /var/lib/docker/overlay2/4f2a/merged/workspace/x: invalid argument; \
                      state at /run/containerd/io.containerd.runtime.v2.task/moby/abc, \
                      bind source path does not exist: /home/me/data"
                .into(),
        };
        let error = DockerError::from(error);
        assert_eq!(
            error.to_string(),
            "Docker engine error: readlink <engine path>: invalid argument; state at <engine path>, \
             bind source path does not exist: /home/me/data (HTTP 500)"
        );
        assert!(!error.is_connection_failure());
        let DockerError::Api(failure) = &error else {
            panic!("expected an engine failure, got {error:?}");
        };
        assert!(
            failure.detail.contains("/var/lib/docker/overlay2/4f2a"),
            "{}",
            failure.detail
        );
    }

    #[test]
    fn broken_connections_are_told_apart_from_refusals() {
        assert!(DockerError::from(bollard::errors::Error::RequestTimeoutError).is_connection_failure());
        assert!(DockerError::Unreachable("gone".into()).is_connection_failure());
        let refused = bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "conflict".into(),
        };
        assert!(!DockerError::from(refused).is_connection_failure());
    }
}
