//! File operations sent to a session's runner: at once while it runs, or
//! in the session's turn when it must be resumed or started first.

use super::super::connection::{RequestFailure, RunnerConnection};
use super::super::protocol::RunnerMessage;
use super::handle::Raised;
use super::{FileTarget, SessionManager};
use crate::core::error::SessionError;
use crate::docker::ContainerState;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a file operation may wait for the session's runner (and for
/// the session's turn, when it must be resumed or started first).
const FILE_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl SessionManager {
    /// Sends a file operation (`payload`, whose id is `id`) to the session's
    /// runner and waits for its answer. A running session answers at once,
    /// even while code runs; a paused one is resumed for the moment it
    /// takes and paused again; a stopped one is started (the note says what
    /// was lost).
    pub async fn file_request(
        &self,
        target: &FileTarget,
        id: &str,
        payload: &[u8],
    ) -> Result<(RunnerMessage, Option<String>), SessionError> {
        let name = target.name.as_str();
        let mut handle = self.handle(name).await?;
        if handle.container_id != target.container_id {
            // The session was destroyed and created again by another server.
            self.lock_handles().remove(name);
            handle = self.handle(name).await?;
        }
        let engine = self.launcher.engine();
        if target.state == ContainerState::Running && !handle.files_take_turn.load(Ordering::SeqCst) {
            let live = handle.connect(engine.as_ref()).await?;
            return Ok((send_file_request(&live, name, id, payload).await?, None));
        }
        let _turn = tokio::time::timeout(FILE_REQUEST_TIMEOUT, handle.turn.lock())
            .await
            .map_err(|_| SessionError::FileTimeout {
                name: name.to_string(),
                seconds: FILE_REQUEST_TIMEOUT.as_secs(),
            })?;
        let facts = self.lookup(name).await?;
        let paused = facts.info.state == ContainerState::Paused;
        // Other file operations wait for the turn instead of taking the
        // running session's fast path while it is briefly resumed (cleared
        // however this ends, a dropped future included).
        let _resumed = paused.then(|| Raised::raise(&handle.files_take_turn));
        if paused {
            engine.unpause_sandbox(&facts.info.id).await?;
        }
        let answered = async {
            let note = self.start_if_stopped(&handle, &facts).await?;
            let live = handle.connect(engine.as_ref()).await?;
            Ok::<_, SessionError>((send_file_request(&live, name, id, payload).await?, note))
        }
        .await;
        if paused {
            // The operation's own answer stands whether or not this works.
            if let Err(error) = engine.pause_sandbox(&facts.info.id).await {
                tracing::warn!(session = name, %error, "could not pause the session again after a file operation");
            }
        }
        answered
    }
}

/// Sends one file request on `connection` and waits for its answer.
async fn send_file_request(
    connection: &RunnerConnection,
    name: &str,
    id: &str,
    payload: &[u8],
) -> Result<RunnerMessage, SessionError> {
    match connection.request(id, payload, FILE_REQUEST_TIMEOUT).await {
        Ok(message) => Ok(message),
        Err(RequestFailure::Timeout) => Err(SessionError::FileTimeout {
            name: name.to_string(),
            seconds: FILE_REQUEST_TIMEOUT.as_secs(),
        }),
        Err(RequestFailure::Gone(error)) => Err(error.into()),
    }
}
