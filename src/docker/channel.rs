//! A newline-framed message channel over a container's attached
//! stdin/stdout: the fast path to the runner (no `docker exec`). It splits
//! into a writer and a reader so one task can read while others write.

use super::DockerError;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Largest message accepted from a runner. Replies are bounded by the output
/// caps; anything larger means the runner is broken or hostile.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// One chunk of what a runner writes on its attached output.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerOutput {
    /// Messages (newline-framed JSON).
    Stdout(Bytes),
    /// The runner's own diagnostics (logged).
    Stderr(Bytes),
}

/// A runner's attached output, as the engine delivers it.
pub type RunnerOutputStream = Pin<Box<dyn Stream<Item = std::io::Result<RunnerOutput>> + Send>>;

/// Both ends of a container's attached stream.
pub struct RunnerChannel {
    pub writer: RunnerWriter,
    pub reader: RunnerReader,
}

impl RunnerChannel {
    /// The channel over a container's attached stdin and output (each
    /// engine turns its own attach stream into [`RunnerOutput`]s).
    pub fn new(input: Pin<Box<dyn AsyncWrite + Send>>, output: RunnerOutputStream) -> Self {
        Self {
            writer: RunnerWriter { input },
            reader: RunnerReader {
                output,
                buffer: Vec::new(),
                scanned: 0,
            },
        }
    }
}

/// The container's stdin.
pub struct RunnerWriter {
    input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl RunnerWriter {
    /// Sends one message; a newline is appended.
    pub async fn send_line(&mut self, message: &[u8]) -> Result<(), DockerError> {
        let gone = |e: std::io::Error| DockerError::ContainerGone(format!("writing to the runner failed: {e}"));
        let mut framed = Vec::with_capacity(message.len() + 1);
        framed.extend_from_slice(message);
        framed.push(b'\n');
        self.input.write_all(&framed).await.map_err(gone)?;
        self.input.flush().await.map_err(gone)
    }
}

/// The container's stdout (messages) and stderr (runner diagnostics, logged).
pub struct RunnerReader {
    output: RunnerOutputStream,
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline (each chunk is
    /// searched once, so a large message costs linear time).
    scanned: usize,
}

impl RunnerReader {
    /// Receives the next message (without its newline).
    pub async fn read_line(&mut self) -> Result<Vec<u8>, DockerError> {
        loop {
            if let Some(offset) = self.buffer[self.scanned..].iter().position(|&byte| byte == b'\n') {
                let end = self.scanned + offset;
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                self.scanned = 0;
                return Ok(line);
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > MAX_MESSAGE_BYTES {
                return Err(DockerError::Protocol(format!(
                    "message larger than {MAX_MESSAGE_BYTES} bytes"
                )));
            }
            match self.output.next().await {
                Some(Ok(RunnerOutput::Stdout(message))) => self.buffer.extend_from_slice(&message),
                Some(Ok(RunnerOutput::Stderr(message))) => {
                    tracing::debug!(runner_stderr = %String::from_utf8_lossy(&message).trim_end());
                }
                Some(Err(error)) => return Err(DockerError::ContainerGone(error.to_string())),
                None => {
                    return Err(DockerError::ContainerGone(
                        "its output stream closed (the container exited or was removed)".into(),
                    ));
                }
            }
        }
    }
}
