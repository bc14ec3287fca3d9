//! The stdio front answers every line: raw bytes through a pipe to the
//! real binary (no Docker needed) for lines rmcp would drop without a word
//! (unpaired surrogate escapes, invalid UTF-8, deep nesting, JSON that is
//! not JSON-RPC), and seeded random mutations of good requests, through
//! the in-process front and through the binary. After each line a `ping`
//! still answers.

mod common;

use common::*;
use multilang_sandbox::mcp::message_check::{MAX_DEPTH, top_level_id};
use multilang_sandbox::mcp::stdio::{Front, front};
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long any one answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// The binary over raw pipes, initialized, without Docker.
struct RawServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Bytes of a line whose read timed out part-way.
    partial: Vec<u8>,
}

impl RawServer {
    async fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
            .env("MULTILANG_SANDBOX_LOG", "error")
            .env("MULTILANG_SANDBOX_POOL_SIZE", "0")
            .env("MULTILANG_SANDBOX_AUDIT_LOG", test_audit_log())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut server = RawServer {
            child,
            stdin,
            stdout,
            partial: Vec::new(),
        };
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "stdio-front", "version": "1"}}});
        server.send(initialize.to_string().as_bytes()).await;
        let reply = server.line(ANSWER_WITHIN).await.expect("initialize is answered");
        assert_eq!(reply["id"], 1, "{reply}");
        server
            .send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        server
    }

    /// Writes `line` and a newline.
    async fn send(&mut self, line: &[u8]) {
        self.stdin.write_all(line).await.expect("write to the server");
        self.stdin.write_all(b"\n").await.expect("write to the server");
        self.stdin.flush().await.expect("write to the server");
    }

    /// The next output line, which must be JSON; `None` if none comes
    /// within `limit`.
    async fn line(&mut self, limit: Duration) -> Option<Value> {
        match tokio::time::timeout(limit, self.stdout.read_until(b'\n', &mut self.partial)).await {
            Err(_) => None,
            Ok(Ok(0)) => panic!("the server closed its output"),
            Ok(Ok(_)) => {
                let line = std::mem::take(&mut self.partial);
                Some(
                    serde_json::from_slice(&line).unwrap_or_else(|error| {
                        panic!("not a JSON line ({error}): {}", String::from_utf8_lossy(&line))
                    }),
                )
            }
            Ok(Err(error)) => panic!("cannot read the server's output: {error}"),
        }
    }

    /// Sends a ping with `id` and returns the other lines that came until
    /// its answer, waiting also for a line that is `awaited`, if given.
    async fn ping_after(&mut self, id: &str, awaited: Option<&dyn Fn(&Value) -> bool>) -> Vec<Value> {
        self.send(
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
                .to_string()
                .as_bytes(),
        )
        .await;
        let mut others = Vec::new();
        let mut pinged = false;
        let mut seen = awaited.is_none();
        while !(pinged && seen) {
            let line = self.line(ANSWER_WITHIN).await.unwrap_or_else(|| {
                let missing = if pinged { "the line before ping" } else { "ping" };
                panic!("no answer to {missing} {id}; other lines: {others:?}")
            });
            if line["id"] == id {
                assert_eq!(line["result"], json!({}), "{line}");
                assert!(!pinged, "ping {id} answered twice");
                pinged = true;
            } else {
                seen |= awaited.is_some_and(|awaited| awaited(&line));
                others.push(line);
            }
        }
        others
    }
}

#[tokio::test]
async fn lines_rmcp_would_drop_are_answered_and_the_next_request_is_not_blocked() {
    let deep = |closed: bool| {
        let mut line = br#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":"#.to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        if closed {
            line.extend(std::iter::repeat_n(b']', 100_000));
            line.push(b'}');
        }
        line
    };
    let cases: Vec<(&str, Vec<u8>, i64, Value)> = vec![
        (
            "lone high surrogate",
            execute_call(10, br#""\ud800""#),
            -32700,
            json!(10),
        ),
        (
            "lone low surrogate",
            execute_call(11, br#""\udc00""#),
            -32700,
            json!(11),
        ),
        (
            "high surrogate before a non-low one",
            execute_call(12, br#""\ud800\u0041""#),
            -32700,
            json!(12),
        ),
        (
            "raw invalid UTF-8 in a string",
            execute_call(13, b"\"print(1) \xff\xfe \xc0\x80\""),
            -32700,
            json!(13),
        ),
        ("100,000 nested [ (closed)", deep(true), -32600, json!(14)),
        ("100,000 nested [ (unclosed)", deep(false), -32600, json!(14)),
        (
            "JSON but not JSON-RPC, with an id",
            br#"{"id":15,"hello":"world"}"#.to_vec(),
            -32600,
            json!(15),
        ),
        (
            "a request with params of the wrong type",
            br#"{"jsonrpc":"2.0","id":"p","method":"tools/call","params":"x"}"#.to_vec(),
            -32600,
            json!("p"),
        ),
    ];
    let mut server = RawServer::start().await;
    for (index, (name, line, code, id)) in cases.iter().enumerate() {
        server.send(line).await;
        let others = server
            .ping_after(&format!("after-{index}"), Some(&|line: &Value| line["id"] == *id))
            .await;
        let answers: Vec<&Value> = others.iter().filter(|line| line.get("method").is_none()).collect();
        assert_eq!(answers.len(), 1, "{name}: {answers:?}");
        let answer = answers[0];
        assert_eq!(answer["jsonrpc"], "2.0", "{name}: {answer}");
        assert_eq!(answer["id"], *id, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], *code, "{name}: {answer}");
        assert!(
            answer["error"]["message"].as_str().is_some_and(|m| m.len() > 20),
            "{name}: {answer}"
        );
    }
    drop(server.stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("the server exits when stdin closes")
        .expect("wait for the server");
    assert!(status.success(), "{status}");
}

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Good messages the random lines start from (none touches Docker for
/// long: without an engine, tools fail at once).
const TEMPLATES: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    r#"{"jsonrpc":"2.0","id":"s-2","method":"tools/list","params":{}}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sandbox_execute","arguments":{"language":"python","code":"print('h\u00e9llo \ud83d\ude00 \"q\" \\\\')","env":{"A":"b"},"packages":[]}}}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"no_such_tool","arguments":{"x":[1,[2,{"y":null}]]}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99,"reason":"x"}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    r#"{"jsonrpc":"2.0","id":"r-5","result":{}}"#,
];

/// Pieces inserted by mutation: JSON syntax, escapes, surrogates, brackets
/// and bytes that are not UTF-8.
const PIECES: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\\"",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\\uDBFF\\u0041",
    b"\\ud83d\\ude00",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"null",
    b"\"id\":",
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
];

/// One random line: a template mutated one to four times, or (one time
/// in ten) random bytes. Never a newline, never only whitespace.
fn random_line(rng: &mut Rng) -> Vec<u8> {
    let mut line = if rng.below(10) == 0 {
        (0..1 + rng.below(120)).map(|_| rng.next() as u8).collect()
    } else {
        TEMPLATES[rng.below(TEMPLATES.len())].as_bytes().to_vec()
    };
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(line.len() + 1);
        match rng.below(8) {
            0 if at < line.len() => line[at] = rng.next() as u8,
            1 if at < line.len() => line[at] ^= 1 << rng.below(8),
            2 => line.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(8)).min(line.len());
                line.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(line.len());
                let copy = line[at..end].to_vec();
                line.splice(at..at, copy);
            }
            5 => {
                let brackets = if rng.below(2) == 0 { b"[" } else { b"{" }.repeat(1 + rng.below(200));
                line.splice(at..at, brackets);
            }
            _ => {
                let piece = PIECES[rng.below(PIECES.len())];
                line.splice(at..at, piece.iter().copied());
            }
        }
    }
    for byte in &mut line {
        if *byte == b'\n' {
            *byte = b'n';
        }
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        line.push(b'x');
    }
    line
}

/// Nesting depth of a JSON value (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What the front must do with a line, judged independently of it.
#[derive(Debug)]
enum Expected {
    /// Passed to rmcp, which reads it; a request (with its id) gets one
    /// answer from rmcp, a notification or response at most one.
    Passed { request: Option<Value> },
    /// Refused by the front with one error line: -32600 for JSON, -32700
    /// or -32600 (too deep) otherwise, and the id when it is a request's.
    Refused { json: bool, id: Option<Value> },
}

fn expected(line: &[u8]) -> Expected {
    let value = serde_json::from_slice::<Value>(line).ok();
    let shallow = value.as_ref().is_some_and(|value| depth(value) <= MAX_DEPTH);
    let field = |name: &str| value.as_ref().and_then(|value| value.get(name));
    if shallow && let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        let request = match message {
            ClientJsonRpcMessage::Request(request) => Some(serde_json::to_value(&request.id).expect("an id is JSON")),
            _ => None,
        };
        return Expected::Passed { request };
    }
    let notification = value.as_ref().is_some_and(Value::is_object)
        && field("id").is_none()
        && field("method").is_some_and(Value::is_string);
    if shallow && notification {
        return Expected::Passed { request: None };
    }
    let response = field("method").is_none() && (field("result").is_some() || field("error").is_some());
    let id = match field("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) if !response => id.clone(),
        _ => Value::Null,
    };
    Expected::Refused {
        json: value.is_some(),
        id: value.is_some().then_some(id),
    }
}

/// Checks the front's error line for a refused `line`.
fn check_refusal(line: &[u8], answer: &Value, json: bool, id: &Option<Value>) {
    let shown = String::from_utf8_lossy(line);
    assert_eq!(answer["jsonrpc"], "2.0", "{shown}: {answer}");
    let code = answer["error"]["code"].as_i64();
    if json {
        assert_eq!(code, Some(-32600), "{shown}: {answer}");
    } else {
        assert!(matches!(code, Some(-32700 | -32600)), "{shown}: {answer}");
    }
    match id {
        Some(id) => assert_eq!(answer["id"], *id, "{shown}: {answer}"),
        // Not JSON: the id is read from the text when it can be.
        None => assert!(
            answer["id"].is_null() || Some(&answer["id"]) == top_level_id(line).as_ref(),
            "{shown}: {answer}"
        ),
    }
}

/// In place of rmcp: answers each line passed on with
/// `{"passed": <the line>}`.
async fn echo_rmcp(rmcp_reads: DuplexStream, mut rmcp_writes: DuplexStream) {
    let mut lines = BufReader::new(rmcp_reads);
    let mut line = Vec::new();
    while let Ok(read) = lines.read_until(b'\n', &mut line).await
        && read > 0
    {
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).to_string();
        let echo = format!("{}\n", json!({ "passed": text }));
        if rmcp_writes.write_all(echo.as_bytes()).await.is_err() {
            return;
        }
        line.clear();
    }
}

#[tokio::test]
async fn random_lines_through_the_front_each_get_one_answer() {
    let (mut client, front_input) = tokio::io::duplex(64 * 1024);
    let (front_output, client_output) = tokio::io::duplex(64 * 1024);
    let Front {
        rmcp_reads,
        rmcp_writes,
        ..
    } = front(front_input, front_output);
    tokio::spawn(echo_rmcp(rmcp_reads, rmcp_writes));
    let mut output = BufReader::new(client_output);
    let mut next_output = async || -> Value {
        let mut line = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), output.read_until(b'\n', &mut line))
            .await
            .expect("every line gets one answer")
            .expect("read the front's output");
        serde_json::from_slice(&line)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {}", String::from_utf8_lossy(&line)))
    };
    let mut rng = Rng(0x5eed_0f57_41d1);
    let (mut passed, mut refused) = (0, 0);
    for _ in 0..4000 {
        let line = random_line(&mut rng);
        client.write_all(&line).await.unwrap();
        client.write_all(b"\n").await.unwrap();
        let answer = next_output().await;
        let shown = String::from_utf8_lossy(&line);
        match expected(&line) {
            Expected::Passed { .. } => {
                passed += 1;
                assert_eq!(
                    answer["passed"].as_str(),
                    Some(&*shown),
                    "passed on changed, or refused: {answer}"
                );
            }
            Expected::Refused { json, id } => {
                refused += 1;
                assert!(answer.get("passed").is_none(), "passed on instead of refused: {shown}");
                check_refusal(&line, &answer, json, &id);
            }
        }
    }
    // Nothing is left over: the next answer is the next line's.
    let ping = r#"{"jsonrpc":"2.0","id":"last","method":"ping"}"#;
    client.write_all(format!("{ping}\n").as_bytes()).await.unwrap();
    assert_eq!(next_output().await["passed"], ping);
    assert!(passed > 200 && refused > 2000, "passed {passed}, refused {refused}");
}

#[tokio::test]
async fn random_lines_through_the_binary_each_get_one_answer() {
    let mut server = RawServer::start().await;
    let mut rng = Rng(0xb14a_270f_5eed);
    for round in 0..300 {
        let line = random_line(&mut rng);
        server.send(&line).await;
        let expected = expected(&line);
        let answer_to_request = |line: &Value| match &expected {
            Expected::Passed { request: Some(id) } => line.get("method").is_none() && line["id"] == *id,
            _ => line.get("method").is_none(),
        };
        let awaited: Option<&dyn Fn(&Value) -> bool> = match &expected {
            Expected::Passed { request: None } => None,
            _ => Some(&answer_to_request),
        };
        let others = server.ping_after(&format!("probe-{round}"), awaited).await;
        // Server notifications (progress, logging) are not answers.
        let answers: Vec<&Value> = others.iter().filter(|line| line.get("method").is_none()).collect();
        let shown = String::from_utf8_lossy(&line);
        match expected {
            Expected::Passed { request: Some(id) } => {
                assert_eq!(answers.len(), 1, "{shown}: {answers:?}");
                assert_eq!(answers[0]["id"], id, "{shown}: {answers:?}");
            }
            // rmcp may answer a notification it cannot read with an
            // id-less invalid request error, and nothing else.
            Expected::Passed { request: None } => {
                assert!(answers.len() <= 1, "{shown}: {answers:?}");
                if let Some(answer) = answers.first() {
                    assert_eq!(answer["error"]["code"], -32600, "{shown}: {answer}");
                    assert!(answer["id"].is_null(), "{shown}: {answer}");
                }
            }
            Expected::Refused { json, id } => {
                assert_eq!(answers.len(), 1, "{shown}: {answers:?}");
                check_refusal(&line, answers[0], json, &id);
            }
        }
    }
    // Nothing comes late: the next line out is the last ping's answer.
    let others = server.ping_after("last", None).await;
    assert!(others.iter().all(|line| line.get("method").is_some()), "{others:?}");
    assert_eq!(server.line(Duration::from_millis(300)).await, None);
}
