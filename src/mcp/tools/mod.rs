//! One module per MCP tool: its argument struct (whose doc comments become
//! the JSON schema a model reads), its result shape, and its handler.

pub mod execute;
pub mod file_ops;
pub mod inspect;
pub mod install;
pub mod security;
pub mod session;

use rmcp::model::{CallToolResult, ContentBlock};

/// A tool-level failure the model can act on (`isError: true`).
pub(crate) fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}
