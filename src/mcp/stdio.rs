//! The stdio front of the MCP server. Every line from stdin is checked
//! ([`check_message`]) before rmcp sees it, and every line that needs an
//! answer gets one; a line over [`MAX_LINE_BYTES`] is drained without being
//! kept and refused with -32600 and its id when the first bytes hold it.
//! Good lines go on to rmcp through an in-memory pipe; rmcp's output and
//! the refusals are merged onto stdout one whole line at a time.

use super::message_check::{BadMessage, ID_PREFIX_BYTES, Refusal, check_message, top_level_id};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// Largest request line accepted, without its newline (rmcp's own limit
/// is 16 MiB with the newline).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024 - 1;
/// Buffer of the pipes between this front and rmcp.
const PIPE_BYTES: usize = 1024 * 1024;

/// The front's two halves: what rmcp reads and writes, and the task that
/// writes to the real output (await it after rmcp stops, so the last
/// replies are flushed).
pub struct Front {
    pub rmcp_reads: DuplexStream,
    pub rmcp_writes: DuplexStream,
    pub output_task: tokio::task::JoinHandle<()>,
}

/// Starts the front over `input` and `output`.
pub fn front<R, W>(input: R, output: W) -> Front
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_rmcp, rmcp_reads) = tokio::io::duplex(PIPE_BYTES);
    let (rmcp_writes, from_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (errors, error_lines) = mpsc::channel::<String>(64);
    tokio::spawn(filter_input(input, to_rmcp, errors));
    let output_task = tokio::spawn(merge_output(from_rmcp, error_lines, output));
    Front {
        rmcp_reads,
        rmcp_writes,
        output_task,
    }
}

/// One line read with the size cap.
enum Line {
    Complete(Vec<u8>),
    /// Over the cap: its first bytes and its whole size.
    TooLong {
        prefix: Vec<u8>,
        size: usize,
    },
    End,
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut size = 0usize;
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(match (size, too_long) {
                (0, _) => Line::End,
                (_, false) => Line::Complete(line),
                (_, true) => Line::TooLong { prefix: line, size },
            });
        }
        let (chunk, done) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(at) => (&buffer[..at], Some(at + 1)),
            None => (buffer, None),
        };
        size += chunk.len();
        if !too_long && size > max {
            too_long = true;
            line.truncate(ID_PREFIX_BYTES);
        }
        if !too_long {
            line.extend_from_slice(chunk);
        } else if line.len() < ID_PREFIX_BYTES {
            let room = ID_PREFIX_BYTES - line.len();
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        let consumed = done.unwrap_or(buffer.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if too_long {
                Line::TooLong { prefix: line, size }
            } else {
                Line::Complete(line)
            });
        }
    }
}

async fn filter_input<R: AsyncRead + Unpin>(input: R, mut to_rmcp: DuplexStream, errors: mpsc::Sender<String>) {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    loop {
        let line = match read_line(&mut reader, MAX_LINE_BYTES).await {
            Ok(line) => line,
            Err(error) => {
                tracing::warn!(%error, "cannot read stdin; ending the session");
                return;
            }
        };
        let reply = match line {
            Line::End => return,
            Line::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Complete(bytes) => match check_message(&bytes) {
                // A notification needs no answer; rmcp skips one it does not know.
                Ok(())
                | Err(Refusal {
                    reason: BadMessage::BadNotification(_),
                    ..
                }) => {
                    let forwarded = async {
                        to_rmcp.write_all(&bytes).await?;
                        to_rmcp.write_all(b"\n").await
                    };
                    if forwarded.await.is_err() {
                        return; // rmcp has stopped
                    }
                    continue;
                }
                Err(refusal) => {
                    tracing::warn!(error = %refusal, "malformed JSON-RPC message");
                    refusal.response()
                }
            },
            Line::TooLong { prefix, size } => {
                tracing::warn!(size, "oversized JSON-RPC message discarded");
                Refusal {
                    id: top_level_id(&prefix).unwrap_or(Value::Null),
                    reason: BadMessage::TooLarge {
                        size,
                        limit: MAX_LINE_BYTES,
                    },
                }
                .response()
            }
        };
        if errors.send(reply).await.is_err() {
            return;
        }
    }
}

async fn merge_output<W: AsyncWrite + Unpin>(
    from_rmcp: DuplexStream,
    mut errors: mpsc::Receiver<String>,
    mut output: W,
) {
    let mut rmcp_lines = BufReader::new(from_rmcp);
    let mut line = Vec::new();
    let mut rmcp_open = true;
    let mut errors_open = true;
    loop {
        tokio::select! {
            read = rmcp_lines.read_until(b'\n', &mut line), if rmcp_open => {
                match read {
                    Ok(0) | Err(_) => rmcp_open = false,
                    Ok(_) => {
                        if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                            return;
                        }
                        line.clear();
                    }
                }
            }
            reply = errors.recv(), if errors_open => {
                let Some(reply) = reply else {
                    errors_open = false;
                    continue;
                };
                if output.write_all(format!("{reply}\n").as_bytes()).await.is_err() || output.flush().await.is_err() {
                    return;
                }
            }
            else => return,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_lines_get_errors_and_good_ones_pass() {
        let (mut client, server_side) = tokio::io::duplex(64 * 1024);
        let (server_in, server_out) = tokio::io::split(server_side);
        let Front {
            mut rmcp_reads,
            mut rmcp_writes,
            ..
        } = front(server_in, server_out);
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":5,\"params\":\"{}\"}}\n",
            "x".repeat(MAX_LINE_BYTES)
        );
        let writer = tokio::spawn(async move {
            client.write_all(b"{not json\n").await.unwrap();
            client.write_all(big.as_bytes()).await.unwrap();
            client
                .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\",\"params\":{\"x\":\"\\udc00\"}}\n")
                .await
                .unwrap();
            client
                .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}\n")
                .await
                .unwrap();
            let mut replies = BufReader::new(client);
            let mut first = String::new();
            replies.read_line(&mut first).await.unwrap();
            let mut second = String::new();
            replies.read_line(&mut second).await.unwrap();
            let mut surrogate = String::new();
            replies.read_line(&mut surrogate).await.unwrap();
            (first, second, surrogate, replies)
        });
        let mut forwarded = String::new();
        BufReader::new(&mut rmcp_reads).read_line(&mut forwarded).await.unwrap();
        assert_eq!(forwarded, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}\n");
        let (first, second, surrogate, mut replies) = writer.await.unwrap();
        let first: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(first["error"]["code"], -32700);
        assert_eq!(first["id"], Value::Null);
        let second: Value = serde_json::from_str(&second).unwrap();
        assert_eq!(second["error"]["code"], -32600);
        assert_eq!(second["id"], 5);
        let surrogate: Value = serde_json::from_str(&surrogate).unwrap();
        assert_eq!(surrogate["error"]["code"], -32700);
        assert_eq!(surrogate["id"], 8);
        rmcp_writes.write_all(b"{\"reply\":1}\n").await.unwrap();
        let mut third = String::new();
        replies.read_line(&mut third).await.unwrap();
        assert_eq!(third, "{\"reply\":1}\n");
    }
}
