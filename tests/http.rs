//! The streamable HTTP transport through the real binary: it refuses to
//! start without a token, answers 401 without the right bearer token,
//! answers bodies rmcp cannot read with JSON-RPC errors, and serves a full
//! tool call to rmcp's HTTP client with it.

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
        .env("MULTILANG_SANDBOX_SESSION_SPARES", "0")
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
    let mut command = server_command(&["--http", "127.0.0.1:0"]);
    command.env("MULTILANG_SANDBOX_HTTP_TOKEN", TOKEN);
    spawn_http_server(command).await
}

/// Starts the server `command` describes and returns it with the address
/// it listens on (read from its log).
async fn spawn_http_server(mut command: Command) -> (Child, String) {
    let mut child = command.spawn().expect("the server starts");
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
    let auth = authorization.map(|value| ("Authorization", value.to_string()));
    post_initialize_with(address, auth.as_slice()).await
}

/// A raw JSON-RPC initialize POST with `headers`; returns the status line
/// and headers.
async fn post_initialize_with(address: &str, headers: &[(&str, String)]) -> String {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}
    })
    .to_string();
    let mut all = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
    ];
    all.extend_from_slice(headers);
    raw_request(address, "POST", &all, &body).await
}

/// A raw HTTP request to `/mcp`; returns the status line and headers.
async fn raw_request(address: &str, method: &str, headers: &[(&str, String)], body: &str) -> String {
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    text.split("\r\n\r\n").next().unwrap_or_default().to_string()
}

/// The value of header `name` in a response head.
fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

/// A raw POST to `/mcp` with the token (and the session, if given);
/// returns the status line with the headers, and the body.
async fn post_raw(address: &str, session: Option<&str>, body: &[u8]) -> (String, Vec<u8>) {
    let session = session
        .map(|id| format!("Mcp-Session-Id: {id}\r\nMcp-Protocol-Version: 2025-06-18\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n{session}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (mut reader, mut writer) = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects")
        .into_split();
    // Write while reading: a refused large body is answered before it is
    // all sent, and the server may close without reading the rest. The
    // task keeps the writing half open (closing it would end the request).
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let writing = tokio::spawn(async move {
        let sent = writer.write_all(&request).await.is_ok();
        (writer, sent)
    });
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => return,
                Ok(count) => response.extend_from_slice(&chunk[..count]),
                // A reset after the answer (the unread rest of a refused body).
                Err(_) if !response.is_empty() => return,
                Err(error) => panic!("cannot read the answer: {error}"),
            }
        }
    })
    .await;
    read.expect("the server answers");
    writing.abort();
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("an HTTP response");
    (
        String::from_utf8_lossy(&response[..split]).to_string(),
        response[split + 4..].to_vec(),
    )
}

#[tokio::test]
async fn http_answers_bodies_rmcp_cannot_read_with_json_rpc_errors() {
    let (mut server, address) = start_http_server().await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}
    });
    let (head, _) = post_raw(&address, None, initialize.to_string().as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let session = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_string())
        })
        .expect("initialize gives a session id");
    let initialized = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (head, _) = post_raw(&address, Some(&session), initialized).await;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");

    let mut deep = br#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":"#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.push(b'}');
    let large = execute_call(16, format!("\"{}\"", "x".repeat(17 * 1024 * 1024)).as_bytes());
    let cases: Vec<(&str, Vec<u8>, u16, i64, serde_json::Value)> = vec![
        (
            "lone high surrogate",
            execute_call(10, br#""\ud800""#),
            400,
            -32700,
            json!(10),
        ),
        (
            "lone low surrogate",
            execute_call(11, br#""\udc00""#),
            400,
            -32700,
            json!(11),
        ),
        (
            "high surrogate before a non-low one",
            execute_call(12, br#""\ud800\u0041""#),
            400,
            -32700,
            json!(12),
        ),
        (
            "raw invalid UTF-8",
            execute_call(13, b"\"\xff\xfe\""),
            400,
            -32700,
            json!(13),
        ),
        ("100,000 nested [", deep, 400, -32600, json!(14)),
        ("not JSON", b"{not json".to_vec(), 400, -32700, json!(null)),
        (
            "JSON but not JSON-RPC",
            br#"{"id":15,"hello":"world"}"#.to_vec(),
            400,
            -32600,
            json!(15),
        ),
        (
            "a notification with bad params",
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":5}"#.to_vec(),
            400,
            -32600,
            json!(null),
        ),
        ("17 MiB", large, 413, -32600, json!(16)),
    ];
    for (index, (name, body, status, code, id)) in cases.into_iter().enumerate() {
        let (head, answer) = post_raw(&address, Some(&session), &body).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{name}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("content-type: application/json"),
            "{name}: {head}"
        );
        let answer: serde_json::Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|error| panic!("{name}: not JSON ({error}): {}", String::from_utf8_lossy(&answer)));
        assert_eq!(answer["jsonrpc"], "2.0", "{name}: {answer}");
        assert_eq!(answer["id"], id, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
        // The session still answers.
        let ping = json!({"jsonrpc": "2.0", "id": format!("after-{index}"), "method": "ping"});
        let (head, answer) = post_raw(&address, Some(&session), ping.to_string().as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{name}: {head}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.contains(&format!(r#""id":"after-{index}","result":{{}}"#)),
            "{name}: {answer}"
        );
    }
    server.kill().await.ok();
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
    let tools = tokio::time::timeout(CALL_LIMIT, client.list_all_tools())
        .await
        .expect("tools/list answers within the call limit")
        .expect("tools/list");
    assert_eq!(tools.len(), 7, "{tools:?}");
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

#[tokio::test]
async fn http_without_a_token_takes_its_own_origin_and_answers_404_for_unknown_sessions() {
    let (mut server, address) = spawn_http_server(server_command(&["--http", "127.0.0.1:0", "--no-auth"])).await;
    let port = address.rsplit(':').next().expect("a port");
    // A page of this server's own loopback origin, and a client sending no
    // Origin at all, are served...
    for origin in [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")] {
        let head = post_initialize_with(&address, &[("Origin", origin.clone())]).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{origin}: {head}");
    }
    let head = post_initialize_with(&address, &[]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // ...any other origin (a web page elsewhere, or on another port) is not.
    let other_port = port.parse::<u16>().expect("a port number").wrapping_add(1);
    for origin in [
        "http://evil.example".to_string(),
        format!("http://127.0.0.1:{other_port}"),
    ] {
        let head = post_initialize_with(&address, &[("Origin", origin.clone())]).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{origin}: {head}");
    }

    // DELETE ends a session once; an unknown or ended one is a 404.
    let session = header_value(&head_of_new_session(&address).await, "mcp-session-id").expect("a session id");
    let delete = |id: String| {
        let address = address.clone();
        async move {
            let headers = [
                ("Mcp-Session-Id", id),
                ("Mcp-Protocol-Version", "2025-06-18".to_string()),
            ];
            raw_request(&address, "DELETE", &headers, "").await
        }
    };
    let ended = delete(session.clone()).await;
    assert!(ended.starts_with("HTTP/1.1 202"), "{ended}");
    let again = delete(session).await;
    assert!(again.starts_with("HTTP/1.1 404"), "{again}");
    let unknown = delete("no-such-session".to_string()).await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    server.kill().await.ok();
}

/// Initializes an MCP session over raw HTTP; returns the response head.
async fn head_of_new_session(address: &str) -> String {
    let head = post_initialize_with(address, &[]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    head
}
