//! `sandbox_inspect`: pool, cache, sessions and audit state (arrives with the pool feature).

use super::tool_error;
use crate::mcp::SandboxServer;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// What to inspect.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InspectTarget {
    #[default]
    All,
    Pool,
    Cache,
    Sessions,
    Audit,
}

/// Arguments of `sandbox_inspect`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InspectParams {
    /// all (default), pool, cache, sessions or audit.
    #[serde(default)]
    pub target: Option<InspectTarget>,
}

#[tool_router(router = inspect_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_inspect",
        description = "Show the sandbox's state: warm pool, package cache, sessions, audit log. \
Not available yet in this version."
    )]
    async fn sandbox_inspect(
        &self,
        Parameters(_params): Parameters<InspectParams>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(tool_error(
            "sandbox_inspect is not available yet in this version of multilang-sandbox.",
        ))
    }
}
