//! `sandbox_file_ops`: files in a session's /workspace and /outputs.

use super::{OutcomeSlot, Reported, answer};
use crate::core::error::FileError;
use crate::core::files::{Done, FileEntry};
use crate::mcp::SandboxServer;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// A file operation.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum FileOperation {
    Read,
    Write,
    List,
    Delete,
    Mkdir,
}

/// How `content` is encoded.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ContentEncoding {
    #[default]
    Utf8,
    Base64,
}

/// Arguments of `sandbox_file_ops`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileOpsParams {
    /// Session whose files to work on.
    pub session: String,
    /// read, write, list, delete or mkdir.
    pub operation: FileOperation,
    /// Path relative to the session's /workspace (for example `data/input.csv`), or an absolute
    /// path under /workspace, /outputs or a mounted host folder (/mnt/<name>; read-only unless
    /// the user made it writable). `..` is refused. Use "." to list /workspace.
    pub path: String,
    /// write: the content (text, or base64 with `encoding: base64`). At most 10 MiB by default.
    #[serde(default)]
    pub content: Option<String>,
    /// utf8 (default) or base64 (binary files such as images, archives, spreadsheets).
    #[serde(default)]
    pub encoding: Option<ContentEncoding>,
}

/// Result of `sandbox_file_ops`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileOpsOutput {
    pub operation: FileOperation,
    /// The absolute path acted on.
    pub path: String,
    /// list: the entries; write, mkdir, delete: the entry acted on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<FileEntry>,
    /// read: the content, in `encoding`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<ContentEncoding>,
    /// read: size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Set when the session's container had stopped and was started again
    /// for this operation: says what was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[tool_router(router = file_ops_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_file_ops",
        description = "Files in a session (create one with sandbox_session): read, write, list, delete, mkdir \
in /workspace (relative paths start there), /outputs and the session's mounted host folders \
(/mnt/<name>). Works while code runs in the session, and in paused sessions (resumed for the moment \
it takes). Done as the sandbox user: files the code may not read or write are refused the same way. \
Text is utf8 by default; pass encoding base64 for binary content. write creates missing folders. \
Files up to 10 MiB; a listing shows up to 20000 entries.",
        output_schema = schema_for_output::<FileOpsOutput>(),
        title = "Session files",
        // write overwrites and delete removes; the same call again leaves
        // the files as the first left them. Closed world: only the session's
        // own folders and the host folders the user mounted into it.
        annotations(
            title = "Session files",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn sandbox_file_ops(
        &self,
        Parameters(params): Parameters<FileOpsParams>,
        Extension(slot): Extension<OutcomeSlot>,
    ) -> Reported {
        let span = tracing::info_span!("sandbox_file_ops", session = %params.session, operation = ?params.operation);
        async move { slot.report(answer(self.run_file_op(&params).await, render)) }
            .instrument(span)
            .await
    }
}

impl SandboxServer {
    async fn run_file_op(&self, params: &FileOpsParams) -> Result<FileOpsOutput, FileError> {
        let files = self.executor.files();
        let encoding = params.encoding.unwrap_or_default();
        let session = params.session.as_str();
        let mut output = FileOpsOutput {
            operation: params.operation,
            path: params.path.clone(),
            entries: Vec::new(),
            content: None,
            encoding: None,
            size: None,
            note: None,
        };
        match params.operation {
            FileOperation::Read => {
                let done = files.read(session, &params.path).await?;
                output.note = done.note;
                let read = done.value;
                output.size = Some(read.bytes.len() as u64);
                output.content = Some(match encoding {
                    ContentEncoding::Base64 => STANDARD.encode(&read.bytes),
                    ContentEncoding::Utf8 => {
                        String::from_utf8(read.bytes).map_err(|_| FileError::NotUtf8(read.path.clone()))?
                    }
                });
                output.encoding = Some(encoding);
                output.path = read.path;
            }
            FileOperation::Write => {
                let content = params.content.as_deref().ok_or(FileError::ContentRequired)?;
                let bytes = match encoding {
                    ContentEncoding::Utf8 => content.as_bytes().to_vec(),
                    ContentEncoding::Base64 => STANDARD
                        .decode(content.trim())
                        .map_err(|error| FileError::BadBase64(error.to_string()))?,
                };
                output.entry(files.write(session, &params.path, &bytes).await?);
            }
            FileOperation::List => {
                let done = files.list(session, &params.path).await?;
                output.note = done.note;
                output.entries = done.value;
            }
            FileOperation::Mkdir => {
                output.entry(files.mkdir(session, &params.path).await?);
            }
            FileOperation::Delete => {
                output.entry(files.delete(session, &params.path).await?);
            }
        }
        Ok(output)
    }
}

impl FileOpsOutput {
    /// Takes the one entry a write, mkdir or delete acted on.
    fn entry(&mut self, done: Done<FileEntry>) {
        self.path = done.value.path.clone();
        self.entries = vec![done.value];
        self.note = done.note;
    }
}

fn render(output: &FileOpsOutput) -> String {
    let text = render_operation(output);
    match &output.note {
        Some(note) => format!("{note}\n{text}"),
        None => text,
    }
}

fn render_operation(output: &FileOpsOutput) -> String {
    match output.operation {
        FileOperation::Read => {
            let mut text = format!("{} ({} bytes", output.path, output.size.unwrap_or(0));
            if output.encoding == Some(ContentEncoding::Base64) {
                text.push_str(", base64");
            }
            text.push_str("):\n");
            text.push_str(output.content.as_deref().unwrap_or_default());
            text
        }
        FileOperation::List => {
            let mut text = format!("{} entries:", output.entries.len());
            for entry in &output.entries {
                text.push_str(&format!(
                    "\n{} {} {} bytes {}",
                    entry.kind, entry.name, entry.size, entry.modified
                ));
            }
            text
        }
        FileOperation::Write => format!(
            "Wrote {} ({} bytes).",
            output.path,
            output.entries.first().map_or(0, |entry| entry.size)
        ),
        FileOperation::Mkdir => format!("Folder {} exists.", output.path),
        FileOperation::Delete => format!("Deleted {}.", output.path),
    }
}
