//! `sandbox_session`: named, stateful sandboxes (arrives with the sessions feature).

use super::tool_error;
use crate::mcp::SandboxServer;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// What to do with a session.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionAction {
    Create,
    List,
    Get,
    Pause,
    Resume,
    Extend,
    Destroy,
}

/// Arguments of `sandbox_session`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SessionParams {
    /// create, list, get, pause, resume, extend or destroy.
    pub action: SessionAction,
    /// Session name: letters, digits, `-` and `_` (required for every action but list).
    #[serde(default)]
    pub name: Option<String>,
    /// Language of the session's kernel, for create: python, javascript, typescript, go, rust, bash.
    #[serde(default)]
    pub language: Option<String>,
    /// Time to live in seconds (create: default 3600; extend: seconds to add).
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Packages to install when creating the session, for example `["pandas"]`.
    #[serde(default)]
    pub packages: Option<Vec<String>>,
}

#[tool_router(router = session_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_session",
        description = "Manage named, stateful sandboxes whose variables and files persist between \
sandbox_execute calls: create, list, get, pause, resume, extend, destroy. \
Not available yet in this version: use sandbox_execute without `session`."
    )]
    async fn sandbox_session(
        &self,
        Parameters(_params): Parameters<SessionParams>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(tool_error(
            "sandbox_session is not available yet in this version of multilang-sandbox. \
Use sandbox_execute without `session`; each call runs in a fresh sandbox.",
        ))
    }
}
