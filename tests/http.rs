//! The streamable HTTP transport through the real binary: it refuses to
//! start without a token, answers 401 without the right bearer token, and
//! serves a full tool call to rmcp's HTTP client with it.

mod common;

use common::*;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const TOKEN: &str = "test-token-0123456789abcdef";

fn server_command(extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"));
    command
        .arg("serve")
        .args(extra)
        .env("MULTILANG_SANDBOX_LOG", "info,rmcp=warn")
        .env("MULTILANG_SANDBOX_POOL_SIZE", "0")
        .env("MULTILANG_SANDBOX_AUDIT_LOG", test_audit_log())
        .env_remove("MULTILANG_SANDBOX_HTTP_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `serve --http 127.0.0.1:0` with the token and returns the
/// process and the address it listens on (read from its log).
async fn start_http_server() -> (Child, String) {
    let mut child = server_command(&["--http", "127.0.0.1:0"])
        .env("MULTILANG_SANDBOX_HTTP_TOKEN", TOKEN)
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("serving MCP over HTTP")
                && let Some(address) = line.split("address=").nth(1)
            {
                return address.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the server logs the address it listens on");
    // Keep draining the log so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, address)
}

/// A raw JSON-RPC initialize POST; returns the status line and headers.
async fn post_initialize(address: &str, authorization: Option<&str>) -> String {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}
    })
    .to_string();
    let auth = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    text.split("\r\n\r\n").next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn http_refuses_to_start_without_a_token() {
    let output = server_command(&["--http", "127.0.0.1:0"])
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MULTILANG_SANDBOX_HTTP_TOKEN"), "{stderr}");
    let output = server_command(&["--http", "0.0.0.0:0", "--no-auth"])
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[tokio::test]
async fn http_answers_401_without_the_token_and_serves_tools_with_it() {
    require_docker().await;
    let (mut server, address) = start_http_server().await;
    for authorization in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
        let head = post_initialize(&address, authorization).await;
        assert!(head.starts_with("HTTP/1.1 401"), "{authorization:?}: {head}");
        assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    }
    let head = post_initialize(&address, Some(&format!("Bearer {TOKEN}"))).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // rmcp's HTTP client with a wrong token cannot initialize...
    let wrong = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{address}/mcp"))
            .auth_header("wrong-token-0123456789"),
    );
    let error = ().serve(wrong).await.expect_err("a wrong token is refused");
    assert!(error.to_string().to_lowercase().contains("auth"), "{error}");
    // ...and with the token runs code end to end.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{address}/mcp")).auth_header(TOKEN),
    );
    let client = ().serve(transport).await.expect("initialize over HTTP");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), 6, "{tools:?}");
    let result = execute(&client, "python", "print(6 * 7)").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    let name = create_session(&client, "http", "python").await;
    execute_in(&client, &name, "python", "x = 1").await;
    let again = execute_in(&client, &name, "python", "print(x + 1)").await;
    assert_eq!(again["stdout"], "2\n", "{again}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
    server.kill().await.ok();
}
