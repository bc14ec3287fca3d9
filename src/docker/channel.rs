//! A newline-framed message channel over a container's attached
//! stdin/stdout: the fast path to the runner (no `docker exec`).

use crate::error::DockerError;
use bollard::container::LogOutput;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Largest message accepted from a runner. Replies are bounded by the output
/// caps; anything larger means the runner is broken or hostile.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

type OutputStream = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// Both ends of a container's attached stream.
pub struct RunnerChannel {
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: OutputStream,
    buffer: Vec<u8>,
}

impl RunnerChannel {
    pub(super) fn new(input: Pin<Box<dyn AsyncWrite + Send>>, output: OutputStream) -> Self {
        Self {
            input,
            output,
            buffer: Vec::new(),
        }
    }

    /// Sends one message; a newline is appended.
    pub async fn send_line(&mut self, message: &[u8]) -> Result<(), DockerError> {
        let gone = |e: std::io::Error| {
            DockerError::ContainerGone(format!("writing to the runner failed: {e}"))
        };
        self.input.write_all(message).await.map_err(gone)?;
        self.input.write_all(b"\n").await.map_err(gone)?;
        self.input.flush().await.map_err(gone)
    }

    /// Receives the next message (without its newline). The runner's own
    /// stderr is passed to the log.
    pub async fn read_line(&mut self) -> Result<Vec<u8>, DockerError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&byte| byte == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                return Ok(line);
            }
            if self.buffer.len() > MAX_MESSAGE_BYTES {
                return Err(DockerError::Protocol(format!(
                    "message larger than {MAX_MESSAGE_BYTES} bytes"
                )));
            }
            match self.output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => self.buffer.extend_from_slice(&message),
                Some(Ok(LogOutput::StdErr { message })) => {
                    tracing::debug!(runner_stderr = %String::from_utf8_lossy(&message).trim_end());
                }
                Some(Ok(_)) => {}
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
