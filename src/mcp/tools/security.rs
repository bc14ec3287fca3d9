//! `sandbox_security`: audit events, violations, stats, chain verification (arrives with the security feature).

use super::tool_error;
use crate::mcp::SandboxServer;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// What to report.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecurityAction {
    Events,
    Violations,
    Stats,
    Verify,
}

/// Arguments of `sandbox_security`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SecurityParams {
    /// events (recent audit events), violations, stats or verify (check the audit chain).
    pub action: SecurityAction,
    /// How many recent events to return (events and violations). Default 20.
    #[serde(default)]
    pub count: Option<u32>,
}

#[tool_router(router = security_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_security",
        description = "Audit log and security events: recent events, policy violations, counts, and \
verification of the tamper-evident chain. Not available yet in this version."
    )]
    async fn sandbox_security(
        &self,
        Parameters(_params): Parameters<SecurityParams>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(tool_error(
            "sandbox_security is not available yet in this version of multilang-sandbox.",
        ))
    }
}
