//! The audit log and the code policy through the real server: tool calls,
//! session lifecycle and policy violations are recorded in a hash chain that
//! `sandbox_security verify` and `multilang-sandbox audit verify` check; an
//! edited line is found and named; block mode refuses matching code.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn fresh_log(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "multilang-sandbox-audit-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .join("audit.jsonl")
}

async fn security(client: &Client, arguments: Value) -> (bool, Value) {
    let result = call(client, "sandbox_security", arguments).await;
    let failed = result.is_error == Some(true);
    let text = text_of(&result);
    (failed, result.structured_content.unwrap_or_else(|| panic!("{text}")))
}

fn verify_with_cli(log: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .args(["audit", "verify"])
        .env("MULTILANG_SANDBOX_AUDIT_LOG", log)
        .output()
        .expect("run multilang-sandbox audit verify")
}

#[tokio::test]
async fn calls_sessions_and_violations_are_chained_and_tampering_is_found() {
    require_docker().await;
    let log = fresh_log("chain");
    let log_text = log.display().to_string();
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_AUDIT_LOG", &log_text),
    ])
    .await;
    let code = "print('audited')";
    assert_eq!(execute(&client, "python", code).await["stdout"], "audited\n");
    // Each tool says how its call ended: code that failed, a refusal, and a
    // request no tool took.
    assert_eq!(execute(&client, "bash", "exit 3").await["exit_code"], 3);
    tool_error_text(&client, "sandbox_session", json!({"action": "get", "name": "no-such"})).await;
    let malformed = try_call(&client, "sandbox_execute", json!({"language": "bash"})).await;
    assert!(malformed.is_err(), "{malformed:?}");
    let name = create_session(&client, "audit", "bash").await;
    // Audit mode: the tripwire records the match and the code still runs.
    let flagged = execute_in(&client, &name, "bash", "echo probing /var/run/docker.sock").await;
    assert_eq!(flagged["exit_code"], 0, "{flagged}");
    session(&client, json!({"action": "destroy", "name": name})).await;

    let (_, events) = security(&client, json!({"action": "events", "count": 100})).await;
    let events = events["events"].as_array().unwrap().clone();
    let execute_event = events
        .iter()
        .find(|e| e["type"] == "tool_call" && e["tool"] == "sandbox_execute" && e["language"] == "python")
        .unwrap_or_else(|| panic!("no execute event in {events:?}"));
    let expected_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(code.as_bytes()));
    assert_eq!(execute_event["code_sha256"], expected_hash);
    assert_eq!(execute_event["code_bytes"], code.len());
    assert_eq!(execute_event["outcome"], "ok");
    assert!(
        execute_event.get("code").is_none(),
        "code text is logged only when configured"
    );
    assert!(events.iter().any(|e| e["type"] == "server_start"));
    let ended = |outcome: &str| {
        events
            .iter()
            .find(|e| e["type"] == "tool_call" && e["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} call in {events:?}"))
    };
    let failed = ended("code_error");
    assert_eq!(
        (&failed["exit_code"], &failed["timed_out"]),
        (&json!(3), &json!(false)),
        "{failed}"
    );
    let refused = ended("tool_error");
    assert_eq!(refused["tool"], "sandbox_session");
    assert!(refused["error"].as_str().unwrap().contains("no-such"), "{refused}");
    let malformed = ended("invalid_request");
    assert!(
        malformed["error"].as_str().unwrap().contains("missing field `code`"),
        "{malformed}"
    );
    for action in ["created", "destroyed"] {
        assert!(
            events
                .iter()
                .any(|e| e["type"] == "session" && e["action"] == action && e["name"] == name.as_str()),
            "no session {action} event"
        );
    }
    let (_, violations) = security(&client, json!({"action": "violations"})).await;
    let violation = &violations["events"][0];
    assert_eq!(violation["rule"], "docker-socket", "{violations}");
    assert_eq!(violation["blocked"], false);
    assert_eq!(violation["session"], name.as_str());
    let (_, stats) = security(&client, json!({"action": "stats"})).await;
    assert!(
        stats["stats"]["by_tool"]["sandbox_execute"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert_eq!(stats["stats"]["by_type"]["violation"], 1, "{stats}");
    let (failed, verified) = security(&client, json!({"action": "verify"})).await;
    assert!(!failed && verified["verify"]["ok"] == true, "{verified}");
    client.cancel().await.ok();

    let output = verify_with_cli(&log);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Edit one event in the middle: the next line's `prev` no longer matches.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines.len() >= 6, "{text}");
    lines[2] = lines[2].replacen("\"seq\":3", "\"seq\":3,\"note\":\"edited\"", 1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let output = verify_with_cli(&log);
    assert!(!output.status.success(), "an edited log must fail verification");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("line 4") && message.contains("edited"), "{message}");

    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_AUDIT_LOG", &log_text),
    ])
    .await;
    let (failed, verified) = security(&client, json!({"action": "verify"})).await;
    assert!(failed, "a broken chain is a tool error");
    assert_eq!(verified["verify"]["ok"], false);
    assert_eq!(verified["verify"]["first_bad"]["line"], 4, "{verified}");
    client.cancel().await.ok();
    let _ = std::fs::remove_dir_all(log.parent().unwrap());
}

#[tokio::test]
async fn block_mode_refuses_matching_code_and_names_the_rule() {
    require_docker().await;
    let log = fresh_log("block");
    let log_text = log.display().to_string();
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_POLICY", "block"),
        ("MULTILANG_SANDBOX_AUDIT_LOG", &log_text),
        ("MULTILANG_SANDBOX_AUDIT_LOG_CODE", "1"),
    ])
    .await;
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": ":(){ :|:& };:"}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("fork-bomb") && text.contains("code policy"), "{text}");
    assert!(result.structured_content.is_none(), "nothing ran: {text}");
    let fine = execute(&client, "bash", "echo fine").await;
    assert_eq!(fine["stdout"], "fine\n");
    let (_, violations) = security(&client, json!({"action": "violations"})).await;
    assert_eq!(violations["events"][0]["blocked"], true, "{violations}");
    assert_eq!(violations["policy"], "block");
    let (_, events) = security(&client, json!({"action": "events", "type": "tool_call"})).await;
    let logged = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == "echo fine")
        .cloned();
    assert!(logged.is_some(), "code text is logged when configured: {events}");
    client.cancel().await.ok();
    let _ = std::fs::remove_dir_all(log.parent().unwrap());
}
