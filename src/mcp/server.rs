//! The MCP server: tool routing, the `initialize` answer (given at once,
//! whatever the state of Docker), and the audit event of every tool call.

use super::progress::LogLevel;
use super::resources::Subscriptions;
use super::tasks::TaskRegistry;
use super::tools::{OutcomeSlot, validate_arguments};
use crate::core::Executor;
use crate::images::templates;
use crate::security::audit::{
    AuditEvent, CallArguments, MAX_CODE_CHARS, MAX_FIELD_CHARS, Outcome, ToolCall, clip, clip_text, hash_hex,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult, Implementation,
    JsonObject, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use serde_json::Value;
use std::sync::Arc;

const INSTRUCTIONS: &str = "Runs code safely in Docker sandboxes (no network, non-root, resource limits). \
Use sandbox_execute with `language` (python, javascript, typescript, go, rust, bash) and `code`; \
the result has stdout, stderr, exit_code, duration_ms, timed_out and truncated. \
Without `session` each execute gets a fresh container and nothing persists; create a session with \
sandbox_session (action create) to keep variables and files between executes; sandbox_file_ops reads \
and writes files in a session; sandbox_install adds packages. sandbox_inspect shows the warm pool, \
package cache and sessions; sandbox_security shows the audit log. Session files are resources too: \
sandbox://sessions/<session>/<path>, for example sandbox://sessions/demo/outputs/figure-1.png.";

/// The MCP server state shared by all tool handlers.
#[derive(Clone)]
pub struct SandboxServer {
    pub(crate) executor: Arc<Executor>,
    pub(crate) instance_id: String,
    /// The lowest level of logging notifications this client wants.
    pub(crate) log_level: LogLevel,
    /// The session files this client subscribed to.
    pub(crate) subscriptions: Subscriptions,
    /// The process's MCP tasks (shared by every client's server).
    pub(crate) tasks: Arc<TaskRegistry>,
    tool_router: ToolRouter<Self>,
}

impl SandboxServer {
    pub fn new(executor: Arc<Executor>, instance_id: String, tasks: Arc<TaskRegistry>) -> Self {
        let mut tool_router = Self::tools();
        let templates = templates::discover(&executor.config().templates_dir);
        super::tools::templates::name_templates(&mut tool_router, &templates);
        Self {
            executor,
            instance_id,
            log_level: LogLevel::default(),
            subscriptions: Subscriptions::default(),
            tasks,
            tool_router,
        }
    }

    /// Every tool this server serves, with schemas every client accepts.
    pub(crate) fn tools() -> ToolRouter<Self> {
        super::tools::schema::portable_router(
            Self::execute_router()
                + Self::session_router()
                + Self::install_router()
                + Self::file_ops_router()
                + Self::inspect_router()
                + Self::security_router()
                + Self::job_router(),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SandboxServer {
    // Logging is deprecated by SEP-2577, yet it is how clients show a
    // server's warnings today.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tasks()
                .build(),
        )
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

    /// Session files: those directly in each session's /outputs.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.list_session_resources().await
    }

    /// Any session file: `sandbox://sessions/{name}/{+path}`.
    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(self.resource_templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        Ok(self.read_session_resource(&request.uri).await?.into())
    }

    /// Legacy subscriptions (`resources/subscribe`): an execute that
    /// changes a subscribed file in /outputs sends
    /// `notifications/resources/updated` to this client.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        super::resources::parse(&request.uri).map_err(|error| ErrorData::invalid_params(error.to_string(), None))?;
        self.subscriptions.add(request.uri);
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.remove(&request.uri);
        Ok(())
    }

    /// A task (an execute that runs on as a job, for a client that takes
    /// tasks): working, or its end with the execute's result inline.
    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(self.tasks.detailed(&request.task_id)?))
    }

    /// Asks a task's job to stop; `tasks/get` then shows it cancelled.
    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.cancel_task_job(&request.task_id).await
    }

    /// Arguments that do not match a tool's schema are a malformed request:
    /// a JSON-RPC invalid-params error, checked before the tool runs. Every
    /// call is audited with the outcome its tool reported.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = std::time::Instant::now();
        let tool = request.name.to_string();
        let arguments = describe_call(request.arguments.as_ref(), self.executor.audit().logs_code());
        let slot = OutcomeSlot::default();
        context.extensions.insert(slot.clone());
        let response = match validate_arguments(&request.name, request.arguments.as_ref()) {
            Ok(()) => {
                let call = ToolCallContext::new(self, request, context);
                self.tool_router.call(call).await
            }
            Err(error) => Err(error),
        };
        let outcome = match &response {
            // No tool ran: an unknown tool, or arguments that do not fit.
            Err(error) => Outcome::InvalidRequest {
                error: error.message.to_string(),
            },
            // Every tool handler answers through the slot.
            Ok(_) => slot.outcome().unwrap_or_else(|| {
                tracing::warn!(tool, "a tool answered without reporting its outcome");
                Outcome::tool_error("the tool did not report how the call ended")
            }),
        };
        self.executor.audit().record(AuditEvent::ToolCall(Box::new(ToolCall {
            tool,
            instance: self.instance_id.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            arguments,
            outcome,
        })));
        response
    }
}

/// The audit fields of a tool call's arguments: the ones that say what it
/// did, and the code as its SHA-256 and size (the text too when code
/// logging is on).
fn describe_call(arguments: Option<&JsonObject>, log_code: bool) -> CallArguments {
    let Some(arguments) = arguments else {
        return CallArguments::default();
    };
    let pick = |key: &str| arguments.get(key).map(|value| clip(value, MAX_FIELD_CHARS));
    let code = arguments.get("code").and_then(Value::as_str);
    CallArguments {
        action: pick("action"),
        operation: pick("operation"),
        session: pick("session"),
        name: pick("name"),
        language: pick("language"),
        path: pick("path"),
        packages: pick("packages"),
        target: pick("target"),
        ml: pick("ml"),
        template: pick("template"),
        timeout: pick("timeout"),
        code_sha256: code.map(|code| hash_hex(code.as_bytes())),
        code_bytes: code.map(str::len),
        code: code.filter(|_| log_code).map(|code| clip_text(code, MAX_CODE_CHARS)),
        content_bytes: arguments.get("content").and_then(Value::as_str).map(str::len),
    }
}
