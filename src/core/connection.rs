//! A live connection to one container's runner: a reader task parses every
//! message and hands replies to the request that carries the same id, so
//! requests never read each other's replies and the stream is always drained
//! (a second server attached to the same session sees, and ignores, ours).

use super::protocol::{HostMessage, PROTOCOL, RunnerMessage};
use super::watch::Watch;
use crate::docker::DockerError;
use crate::docker::{RunnerChannel, RunnerReader, RunnerWriter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// Who waits for a request's reply, and who hears its progress.
struct Waiter {
    reply: oneshot::Sender<RunnerMessage>,
    progress: Option<Watch>,
}

type Pending = Arc<Mutex<HashMap<String, Waiter>>>;

/// A request sent to the runner whose reply has not come yet.
pub struct PendingReply<'a> {
    connection: &'a RunnerConnection,
    id: String,
    receiver: oneshot::Receiver<RunnerMessage>,
}

impl PendingReply<'_> {
    /// Waits up to `limit` for the reply. A timeout leaves the request
    /// pending (wait again, for example after sending a cancel).
    pub async fn wait(&mut self, limit: Duration) -> Result<RunnerMessage, RequestFailure> {
        match tokio::time::timeout(limit, &mut self.receiver).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => Err(RequestFailure::Gone(DockerError::ContainerGone(
                "it was destroyed, or the engine stopped".into(),
            ))),
            Err(_) => Err(RequestFailure::Timeout),
        }
    }
}

impl Drop for PendingReply<'_> {
    fn drop(&mut self) {
        self.connection.forget(&self.id);
    }
}

/// Why a request got no reply.
#[derive(Debug)]
pub enum RequestFailure {
    /// No reply within the time allowed.
    Timeout,
    /// The container or its stream went away.
    Gone(DockerError),
}

/// The longest a retire may wait for the container's stream to take it.
const RETIRE_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// One attached runner.
pub struct RunnerConnection {
    writer: tokio::sync::Mutex<RunnerWriter>,
    pending: Pending,
    ready: Mutex<Option<oneshot::Receiver<u32>>>,
    alive: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl RunnerConnection {
    pub fn new(channel: RunnerChannel) -> Self {
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader = tokio::spawn(read_messages(channel.reader, pending.clone(), alive.clone(), ready_tx));
        Self {
            writer: tokio::sync::Mutex::new(channel.writer),
            pending,
            ready: Mutex::new(Some(ready_rx)),
            alive,
            reader,
        }
    }

    /// False once the container's stream has ended.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Waits for the runner's `ready` (a freshly started container only).
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), DockerError> {
        let receiver = self.ready.lock().take();
        let Some(receiver) = receiver else {
            return Ok(());
        };
        match tokio::time::timeout(limit, receiver).await {
            Ok(Ok(protocol)) if protocol == PROTOCOL => Ok(()),
            Ok(Ok(protocol)) => Err(DockerError::Protocol(format!(
                "the image's runner speaks protocol {protocol}, this server {PROTOCOL}; \
                 rebuild the images with `multilang-sandbox images build`"
            ))),
            Ok(Err(_)) => Err(DockerError::ContainerGone(
                "the runner exited before it was ready".into(),
            )),
            Err(_) => Err(DockerError::ContainerGone(format!(
                "the runner did not start within {} s",
                limit.as_secs()
            ))),
        }
    }

    /// Sends `payload` (a JSON message whose id is `id`) and waits up to
    /// `limit` for the reply with the same id.
    pub async fn request(&self, id: &str, payload: &[u8], limit: Duration) -> Result<RunnerMessage, RequestFailure> {
        self.start(id, payload, None).await?.wait(limit).await
    }

    /// Sends `payload` (a JSON message whose id is `id`); its progress
    /// messages go to `progress`, its reply to the returned [`PendingReply`].
    pub async fn start(
        &self,
        id: &str,
        payload: &[u8],
        progress: Option<Watch>,
    ) -> Result<PendingReply<'_>, RequestFailure> {
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().insert(
            id.to_string(),
            Waiter {
                reply: sender,
                progress,
            },
        );
        let reply = PendingReply {
            connection: self,
            id: id.to_string(),
            receiver,
        };
        if !self.is_alive() {
            return Err(RequestFailure::Gone(DockerError::ContainerGone(
                "its output stream closed (the container exited or was removed)".into(),
            )));
        }
        self.send(payload).await.map_err(RequestFailure::Gone)?;
        Ok(reply)
    }

    /// Sends a message that expects no reply (a cancel).
    pub async fn send(&self, payload: &[u8]) -> Result<(), DockerError> {
        self.writer.lock().await.send_line(payload).await
    }

    /// Tells the runner of a used pooled container, which stays until the
    /// pool removes it, to end every process the code left (see
    /// `HostMessage::Retire`). A runner already gone needs nothing.
    pub async fn retire(&self) {
        let Ok(payload) = (HostMessage::Retire { id: "retire" }).encode() else {
            return;
        };
        match tokio::time::timeout(RETIRE_WRITE_LIMIT, self.send(&payload)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "a used container's runner is gone before its retire"),
            Err(_) => tracing::debug!("a used container's stream took no retire; it is removed as it is"),
        }
    }

    fn forget(&self, id: &str) {
        self.pending.lock().remove(id);
    }
}

impl Drop for RunnerConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_messages(
    mut reader: RunnerReader,
    pending: Pending,
    alive: Arc<AtomicBool>,
    ready: oneshot::Sender<u32>,
) {
    let mut ready = Some(ready);
    loop {
        let line = match reader.read_line().await {
            Ok(line) => line,
            Err(error) => {
                tracing::debug!(%error, "runner stream ended");
                break;
            }
        };
        let message: RunnerMessage = match serde_json::from_slice(&line) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, line = %String::from_utf8_lossy(&line[..line.len().min(200)]), "unreadable runner message");
                continue;
            }
        };
        if let RunnerMessage::Ready { protocol, .. } = message {
            if let Some(sender) = ready.take() {
                let _ = sender.send(protocol);
            }
            continue;
        }
        let Some(id) = message.id().map(str::to_string) else {
            tracing::debug!(?message, "runner message without id");
            continue;
        };
        if let RunnerMessage::Progress(progress) = &message {
            let watch = pending.lock().get(&id).and_then(|waiter| waiter.progress.clone());
            if let Some(watch) = watch {
                watch.progress(progress.describe());
            }
            continue;
        }
        let waiter = pending.lock().remove(&id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.reply.send(message);
            }
            None => tracing::trace!(%id, "reply for another client or an abandoned request"),
        }
    }
    alive.store(false, Ordering::SeqCst);
    pending.lock().clear();
}
