//! The MCP server: tool routing and the `initialize` answer (given at once,
//! whatever the state of Docker).

use super::tools::validate_arguments;
use crate::core::Executor;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use std::sync::Arc;

const INSTRUCTIONS: &str = "Runs code safely in Docker sandboxes (no network, non-root, resource limits). \
Use sandbox_execute with `language` (python, javascript, typescript, go, rust, bash) and `code`; \
the result has stdout, stderr, exit_code, duration_ms, timed_out and truncated. \
Without `session` each execute gets a fresh container and nothing persists; create a session with \
sandbox_session (action create) to keep variables and files between executes. sandbox_inspect shows \
the warm pool and the sessions.";

/// The MCP server state shared by all tool handlers.
#[derive(Clone)]
pub struct SandboxServer {
    pub(crate) executor: Arc<Executor>,
    pub(crate) instance_id: String,
    tool_router: ToolRouter<Self>,
}

impl SandboxServer {
    pub fn new(executor: Arc<Executor>, instance_id: String) -> Self {
        Self {
            executor,
            instance_id,
            tool_router: Self::execute_router()
                + Self::session_router()
                + Self::install_router()
                + Self::file_ops_router()
                + Self::inspect_router()
                + Self::security_router(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SandboxServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("multilang-sandbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// Arguments that do not match a tool's schema are a malformed request:
    /// a JSON-RPC invalid-params error, checked before the tool runs.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        validate_arguments(&request.name, request.arguments.as_ref())?;
        let call = ToolCallContext::new(self, request, context);
        self.tool_router.call(call).await
    }
}
