//! `sandbox_install`: packages into a session or the package cache (arrives with the packages feature).

use super::tool_error;
use crate::mcp::SandboxServer;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// Arguments of `sandbox_install`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InstallParams {
    /// Package specs, for example `["requests==2.32.3", "rich"]` (pip), `["lodash"]` (npm).
    pub packages: Vec<String>,
    /// Session to install into. Without it, the package set is prepared in the cache.
    #[serde(default)]
    pub session: Option<String>,
    /// Language whose package manager to use (python, javascript, typescript, go, rust, bash).
    #[serde(default)]
    pub language: Option<String>,
}

#[tool_router(router = install_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_install",
        description = "Install packages (pip, npm, cargo, go modules, apt) into a session or into the \
package cache. Not available yet in this version: use the standard library."
    )]
    async fn sandbox_install(
        &self,
        Parameters(_params): Parameters<InstallParams>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(tool_error(
            "sandbox_install is not available yet in this version of multilang-sandbox. \
Write code that uses only the language's standard library.",
        ))
    }
}
