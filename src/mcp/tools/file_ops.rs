//! `sandbox_file_ops`: files in a session's workspace (arrives with the files feature).

use super::tool_error;
use crate::mcp::SandboxServer;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// A file operation.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileOperation {
    Read,
    Write,
    List,
    Delete,
    Mkdir,
}

/// How `content` is encoded.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
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
    /// Path relative to the session workspace (`/workspace`), for example `data/input.csv`.
    pub path: String,
    /// Content to write (write only).
    #[serde(default)]
    pub content: Option<String>,
    /// utf8 (default) or base64 for binary content.
    #[serde(default)]
    pub encoding: Option<ContentEncoding>,
}

#[tool_router(router = file_ops_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_file_ops",
        description = "Read, write, list, delete files and make folders in a session's workspace. \
Not available yet in this version: sessions come first."
    )]
    async fn sandbox_file_ops(
        &self,
        Parameters(_params): Parameters<FileOpsParams>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(tool_error(
            "sandbox_file_ops is not available yet in this version of multilang-sandbox. \
Within one sandbox_execute call, code can write and read files under /workspace and /tmp.",
        ))
    }
}
