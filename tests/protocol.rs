//! MCP protocol behaviour of the real binary: the tool list, request
//! validation, and answering without Docker.

mod common;

use common::*;
use rmcp::service::ServiceError;
use serde_json::json;

#[tokio::test]
async fn tools_list_shows_seven_tools_with_schemas() {
    // Listing tools must not need Docker.
    let client = start_server_with_env(&[]).await;
    let tools = tokio::time::timeout(CALL_LIMIT, client.list_all_tools())
        .await
        .expect("tools/list answers within the call limit")
        .expect("tools/list failed");
    let mut names: Vec<String> = tools.iter().map(|tool| tool.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "sandbox_execute",
            "sandbox_file_ops",
            "sandbox_inspect",
            "sandbox_install",
            "sandbox_job",
            "sandbox_security",
            "sandbox_session"
        ]
    );
    let execute = tools
        .iter()
        .find(|tool| tool.name == "sandbox_execute")
        .expect("sandbox_execute listed");
    let properties = execute
        .input_schema
        .get("properties")
        .expect("input schema has properties");
    for field in [
        "language", "code", "session", "timeout", "stdin", "env", "ml", "packages",
    ] {
        assert!(properties.get(field).is_some(), "input schema lacks `{field}`");
    }
    let mut required: Vec<&str> = execute.input_schema["required"]
        .as_array()
        .expect("input schema lists required fields")
        .iter()
        .filter_map(|field| field.as_str())
        .collect();
    required.sort();
    assert_eq!(required, ["code", "language"]);
    let output = execute
        .output_schema
        .as_ref()
        .expect("sandbox_execute declares an output schema");
    let output_properties = output.get("properties").expect("output schema has properties");
    for field in [
        "language",
        "stdout",
        "stderr",
        "exit_code",
        "duration_ms",
        "timed_out",
        "truncated",
    ] {
        assert!(output_properties.get(field).is_some(), "output schema lacks `{field}`");
    }
    for tool in &tools {
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            description.len() > 40,
            "{} needs a description a model can act on",
            tool.name
        );
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_call_without_code_is_an_invalid_params_error() {
    let client = start_server_with_env(&[]).await;
    let error = try_call(&client, "sandbox_execute", json!({"language": "python"}))
        .await
        .expect_err("a call without `code` must be rejected");
    match error {
        ServiceError::McpError(data) => {
            assert_eq!(data.code.0, -32602, "expected invalid params, got {data:?}");
            assert!(data.message.contains("code"), "{}", data.message);
        }
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn without_docker_the_server_answers_and_explains() {
    let client = start_server_with_env(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]).await;
    let text = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "print(1)"}),
    )
    .await;
    assert!(text.contains("cannot reach the Docker engine"), "{text}");
    assert!(text.contains("Start Docker"), "{text}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_audit_log_answers_even_without_docker() {
    let client = start_server_with_env(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]).await;
    let result = call(&client, "sandbox_security", json!({"action": "verify"})).await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let report = result.structured_content.expect("structured result");
    assert_eq!(report["verify"]["ok"], true, "{report}");
    client.cancel().await.ok();
}
