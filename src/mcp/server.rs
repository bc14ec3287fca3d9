//! The MCP server: tool routing and the `initialize` answer (given at once,
//! whatever the state of Docker).

use super::progress::LogLevel;
use super::tools::validate_arguments;
use crate::core::Executor;
use crate::security::audit::{MAX_CODE_CHARS, MAX_FIELD_CHARS, clip, hash_hex};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, JsonObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use serde_json::{Map, Value};
use std::sync::Arc;

const INSTRUCTIONS: &str = "Runs code safely in Docker sandboxes (no network, non-root, resource limits). \
Use sandbox_execute with `language` (python, javascript, typescript, go, rust, bash) and `code`; \
the result has stdout, stderr, exit_code, duration_ms, timed_out and truncated. \
Without `session` each execute gets a fresh container and nothing persists; create a session with \
sandbox_session (action create) to keep variables and files between executes; sandbox_file_ops reads \
and writes files in a session; sandbox_install adds packages. sandbox_inspect shows the warm pool, \
package cache and sessions; sandbox_security shows the audit log.";

/// The MCP server state shared by all tool handlers.
#[derive(Clone)]
pub struct SandboxServer {
    pub(crate) executor: Arc<Executor>,
    pub(crate) instance_id: String,
    /// The lowest level of logging notifications this client wants.
    pub(crate) log_level: LogLevel,
    tool_router: ToolRouter<Self>,
}

impl SandboxServer {
    pub fn new(executor: Arc<Executor>, instance_id: String) -> Self {
        Self {
            executor,
            instance_id,
            log_level: LogLevel::default(),
            tool_router: Self::tools(),
        }
    }

    /// Every tool this server serves.
    pub(crate) fn tools() -> ToolRouter<Self> {
        Self::execute_router()
            + Self::session_router()
            + Self::install_router()
            + Self::file_ops_router()
            + Self::inspect_router()
            + Self::security_router()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SandboxServer {
    // Logging is deprecated by SEP-2577, yet it is how clients show a
    // server's warnings today.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_logging().build())
            .with_server_info(Implementation::new("multilang-sandbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// Warnings (lost session state, a restarted container) are sent as
    /// logging notifications at or above this level.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log_level.set(request.level);
        Ok(())
    }

    /// Arguments that do not match a tool's schema are a malformed request:
    /// a JSON-RPC invalid-params error, checked before the tool runs.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = std::time::Instant::now();
        let tool = request.name.to_string();
        let mut event = describe_call(&tool, request.arguments.as_ref(), self.executor.audit().logs_code());
        let response = match validate_arguments(&request.name, request.arguments.as_ref()) {
            Ok(()) => {
                let call = ToolCallContext::new(self, request, context);
                self.tool_router.call(call).await
            }
            Err(error) => Err(error),
        };
        event.insert("instance".into(), Value::from(self.instance_id.clone()));
        event.insert("duration_ms".into(), Value::from(started.elapsed().as_millis() as u64));
        let outcome = match &response {
            Ok(CallToolResponse::Complete(result)) if result.is_error != Some(true) => "ok",
            Ok(CallToolResponse::Complete(result)) => {
                let structured = result.structured_content.as_ref();
                if let Some(exit_code) = structured.and_then(|value| value.get("exit_code")) {
                    event.insert("exit_code".into(), exit_code.clone());
                    event.insert(
                        "timed_out".into(),
                        structured
                            .and_then(|value| value.get("timed_out"))
                            .cloned()
                            .unwrap_or_default(),
                    );
                    "code_error"
                } else {
                    let message = result
                        .content
                        .iter()
                        .find_map(|content| content.as_text().map(|text| text.text.clone()))
                        .unwrap_or_default();
                    event.insert(
                        "error".into(),
                        Value::from(message.chars().take(500).collect::<String>()),
                    );
                    "tool_error"
                }
            }
            Ok(_) => "ok",
            Err(error) => {
                event.insert("error".into(), Value::from(error.message.to_string()));
                "invalid_request"
            }
        };
        event.insert("outcome".into(), Value::from(outcome));
        self.executor.audit().record("tool_call", Value::Object(event));
        response
    }
}

/// The audit fields of a tool call: which tool, and the arguments that say
/// what it did (the code as its SHA-256 and size unless code logging is on).
fn describe_call(tool: &str, arguments: Option<&JsonObject>, log_code: bool) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("tool".into(), Value::from(tool));
    let Some(arguments) = arguments else {
        return event;
    };
    for key in [
        "action",
        "operation",
        "session",
        "name",
        "language",
        "path",
        "packages",
        "target",
        "ml",
        "timeout",
    ] {
        if let Some(value) = arguments.get(key) {
            event.insert(key.into(), clip(value, MAX_FIELD_CHARS));
        }
    }
    if let Some(code) = arguments.get("code").and_then(Value::as_str) {
        event.insert("code_sha256".into(), Value::from(hash_hex(code.as_bytes())));
        event.insert("code_bytes".into(), Value::from(code.len()));
        if log_code {
            event.insert("code".into(), clip(&Value::from(code), MAX_CODE_CHARS));
        }
    }
    if let Some(content) = arguments.get("content").and_then(Value::as_str) {
        event.insert("content_bytes".into(), Value::from(content.len()));
    }
    event
}
