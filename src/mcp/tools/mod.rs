//! One module per MCP tool: its argument struct (whose doc comments become
//! the JSON schema a model reads), its result shape, and its handler.

pub mod execute;
pub mod file_ops;
pub mod inspect;
pub mod install;
mod next_step;
pub mod security;
pub mod session;

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The answer of a tool: its output with a text rendering, or its error
/// (whose message says what to do next) as a tool error.
pub(crate) fn answer<T: Serialize, E: std::error::Error + 'static>(
    result: Result<T, E>,
    render: impl Fn(&T) -> String,
) -> CallToolResult {
    match result {
        Ok(output) => {
            let text = render(&output);
            structured_result(&output, text, false)
        }
        Err(error) => {
            // The client gets the message; the log keeps every detail.
            tracing::info!(detail = ?error, "tool call failed");
            tool_error(next_step::explain(&error))
        }
    }
}

/// A tool-level failure the model can act on (`isError: true`).
pub(crate) fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// A result with `structuredContent` and a text rendering.
pub(crate) fn structured_result<T: Serialize>(output: &T, text: String, is_error: bool) -> CallToolResult {
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = serde_json::to_value(output).ok();
    result
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
            6,
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
}
