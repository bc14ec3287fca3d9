//! One module per MCP tool: its argument struct (whose doc comments become
//! the JSON schema a model reads), its result shape, and its handler. Each
//! handler decides how its call ended (an audit [`Outcome`]) where it knows
//! it, and reports it with its answer through the call's [`OutcomeSlot`].

pub mod execute;
pub mod file_ops;
pub mod inspect;
pub mod install;
pub mod job;
mod next_step;
pub(crate) mod schema;
pub mod security;
pub mod session;
pub(crate) mod templates;

use crate::security::audit::Outcome;
use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, JsonObject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, OnceLock};

/// A tool's answer to the client and how its call ended, decided together.
pub(crate) struct ToolAnswer {
    result: CallToolResult,
    outcome: Outcome,
}

impl ToolAnswer {
    /// The result, for an answer that goes elsewhere than the call's reply
    /// (a task's result).
    pub(crate) fn into_result(self) -> CallToolResult {
        self.result
    }
}

/// The message of a failed call: what went wrong and the tool to use next.
pub(crate) fn error_message(error: &(dyn std::error::Error + 'static)) -> String {
    next_step::explain(error)
}

/// Where a tool reports how its call ended: the server puts a fresh one in
/// each call's extensions and writes the call's audit event from it.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutcomeSlot(Arc<OnceLock<Outcome>>);

impl OutcomeSlot {
    /// Records the answer's outcome; the result goes to the client.
    pub(crate) fn report(&self, answer: ToolAnswer) -> Reported {
        // A call runs one handler, which answers once: the slot is empty.
        let _ = self.0.set(answer.outcome);
        Reported(answer.result.into())
    }

    /// Records that the call answered with a task (MCP Tasks): the code
    /// runs on; its end is the job's audit events.
    pub(crate) fn report_task(&self, task: CreateTaskResult) -> Reported {
        let _ = self.0.set(Outcome::Ok);
        Reported(task.into())
    }

    /// What the tool reported, if it ran.
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.0.get().cloned()
    }
}

/// A tool's result with its outcome reported. Tool handlers return this,
/// which only [`OutcomeSlot::report`] makes, so no tool answers without
/// saying how its call ended.
pub(crate) struct Reported(CallToolResponse);

impl IntoCallToolResult for Reported {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(self.0)
    }
}

/// The answer of a tool: its output with a text rendering, or its error
/// (whose message says what to do next) as a tool error.
pub(crate) fn answer<T: Serialize, E: std::error::Error + 'static>(
    result: Result<T, E>,
    render: impl Fn(&T) -> String,
) -> ToolAnswer {
    match result {
        Ok(output) => {
            let text = render(&output);
            structured_result(&output, text, Outcome::Ok)
        }
        Err(error) => refusal(&error),
    }
}

/// A failed call's answer: the error's message with the tool to use next
/// (the client gets that; the log keeps every detail).
pub(crate) fn refusal(error: &(dyn std::error::Error + 'static)) -> ToolAnswer {
    tracing::info!(detail = ?error, "tool call failed");
    tool_error(next_step::explain(error))
}

/// A tool-level failure the model can act on (`isError: true`).
pub(crate) fn tool_error(message: impl Into<String>) -> ToolAnswer {
    let message = message.into();
    ToolAnswer {
        outcome: Outcome::tool_error(&message),
        result: CallToolResult::error(vec![ContentBlock::text(message)]),
    }
}

/// A result with `structuredContent` and a text rendering; `isError`
/// unless `outcome` is ok.
pub(crate) fn structured_result<T: Serialize>(output: &T, text: String, outcome: Outcome) -> ToolAnswer {
    let mut result = if outcome.is_error() {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = serde_json::to_value(output).ok();
    ToolAnswer { result, outcome }
}

/// Checks a tool call's arguments against the tool's argument struct.
/// Unknown tool names pass through (the router reports them).
pub(crate) fn validate_arguments(tool: &str, arguments: Option<&JsonObject>) -> Result<(), ErrorData> {
    match argument_check(tool) {
        Some(check) => check(tool, arguments),
        None => Ok(()),
    }
}

/// A check of each tool's arguments against its parameter type (a test
/// makes sure every served tool has one).
type ArgumentCheck = fn(&str, Option<&JsonObject>) -> Result<(), ErrorData>;

fn argument_check(tool: &str) -> Option<ArgumentCheck> {
    Some(match tool {
        "sandbox_execute" => check::<execute::ExecuteParams>,
        "sandbox_session" => check::<session::SessionParams>,
        "sandbox_install" => check::<install::InstallParams>,
        "sandbox_file_ops" => check::<file_ops::FileOpsParams>,
        "sandbox_inspect" => check::<inspect::InspectParams>,
        "sandbox_security" => check::<security::SecurityParams>,
        "sandbox_job" => check::<job::JobParams>,
        _ => return None,
    })
}

fn check<T: DeserializeOwned>(tool: &str, arguments: Option<&JsonObject>) -> Result<(), ErrorData> {
    let value = serde_json::Value::Object(arguments.cloned().unwrap_or_default());
    serde_json::from_value::<T>(value).map(|_| ()).map_err(|error| {
        ErrorData::invalid_params(
            format!("invalid arguments for {tool}: {error}. See the tool's input schema in tools/list"),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> JsonObject {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_served_tool_has_its_arguments_checked() {
        let tools = crate::mcp::SandboxServer::tools().list_all();
        assert_eq!(
            tools.len(),
            7,
            "{:?}",
            tools.iter().map(|tool| &tool.name).collect::<Vec<_>>()
        );
        for tool in tools {
            assert!(
                argument_check(&tool.name).is_some(),
                "{} has no argument check in validate_arguments",
                tool.name
            );
        }
        assert!(argument_check("no_such_tool").is_none());
    }

    #[test]
    fn missing_required_fields_are_invalid_params() {
        let error = validate_arguments("sandbox_execute", Some(&object(json!({"language": "python"})))).unwrap_err();
        assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(error.message.contains("missing field `code`"), "{}", error.message);
        assert!(validate_arguments("sandbox_execute", None).is_err());
    }

    #[test]
    fn well_formed_arguments_pass() {
        let arguments = object(json!({"language": "go", "code": "x", "timeout": 5, "env": {"A": "1"}}));
        assert!(validate_arguments("sandbox_execute", Some(&arguments)).is_ok());
        assert!(validate_arguments("sandbox_session", Some(&object(json!({"action": "list"})))).is_ok());
        assert!(validate_arguments("sandbox_session", Some(&object(json!({"action": "explode"})))).is_err());
        assert!(validate_arguments("no_such_tool", None).is_ok());
    }

    #[test]
    fn the_slot_holds_what_the_tool_reported_and_is_error_follows_it() {
        let slot = OutcomeSlot::default();
        let kept_by_the_server = slot.clone();
        assert_eq!(kept_by_the_server.outcome(), None);
        let Reported(CallToolResponse::Complete(result)) = slot.report(tool_error("no session named `x`")) else {
            panic!("a tool error is a complete result")
        };
        assert_eq!(result.is_error, Some(true));
        assert_eq!(
            kept_by_the_server.outcome(),
            Some(Outcome::ToolError {
                error: "no session named `x`".into()
            })
        );
        let code_error = Outcome::CodeError {
            exit_code: 1,
            timed_out: false,
        };
        let answer = structured_result(&json!({"exit_code": 1}), "failed".into(), code_error.clone());
        assert_eq!((answer.result.is_error, answer.outcome), (Some(true), code_error));
        assert!(answer.result.structured_content.is_some());
        let answer = answer_of(Ok(json!({"a": 1})));
        assert_eq!((answer.result.is_error, answer.outcome), (Some(false), Outcome::Ok));
        let answer = answer_of(Err(std::io::Error::other("x".repeat(900))));
        assert_eq!(answer.result.is_error, Some(true));
        assert_eq!(answer.outcome, Outcome::tool_error(&"x".repeat(900)));
    }

    fn answer_of(result: Result<serde_json::Value, std::io::Error>) -> ToolAnswer {
        answer(result, |value| value.to_string())
    }
}
