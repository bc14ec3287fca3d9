//! Shared helpers for the integration tests: start the real binary as a
//! child process, talk to it with rmcp's client, and look at real Docker.
#![allow(dead_code)]

pub mod origin;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{Peer, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::process::Command;

pub type Client = RunningService<RoleClient, ()>;

/// Connects to Docker or fails the test with a message saying how to fix it.
pub async fn require_docker() -> Docker {
    let docker = Docker::connect_with_defaults().expect("Docker client configuration is invalid (check DOCKER_HOST)");
    match docker.negotiate_version().await {
        Ok(docker) => docker,
        Err(error) => panic!(
            "these tests need a running Docker engine and the sandbox images: {error}. \
             Start Docker and run `multilang-sandbox images build` (or `.ci/run`)."
        ),
    }
}

/// Starts the server binary with extra environment variables and connects to it.
pub async fn start_server_with_env(env: &[(&str, &str)]) -> Client {
    start_server_process(env).await.0
}

/// Starts the server binary and returns the client and the server's pid.
pub async fn start_server_process(env: &[(&str, &str)]) -> (Client, u32) {
    start_server_with_handler((), env).await
}

/// Starts the server binary and connects `handler` (a client that listens
/// for notifications) to it; returns the client and the server's pid.
pub async fn start_server_with_handler<H: rmcp::ClientHandler>(
    handler: H,
    env: &[(&str, &str)],
) -> (RunningService<RoleClient, H>, u32) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"));
    command.env("MULTILANG_SANDBOX_LOG", "warn");
    // Test servers keep their audit events out of the user's own log.
    command.env("MULTILANG_SANDBOX_AUDIT_LOG", test_audit_log());
    // No warm spare sessions unless a test asks for them (a claimed spare's
    // volumes and labels are not named after its session).
    command.env("MULTILANG_SANDBOX_SESSION_SPARES", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    let transport = TokioChildProcess::new(command).expect("cannot start the multilang-sandbox binary");
    let pid = transport.id().expect("the server has a pid");
    let client = handler.serve(transport).await.expect("MCP initialize failed");
    (client, pid)
}

/// Kills the server `pid` with SIGKILL, as a crash would.
pub fn kill_nine(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}: {status}");
}

/// An audit log for this test process (shared by its servers).
pub fn test_audit_log() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "multilang-sandbox-test-audit-{}/audit.jsonl",
        std::process::id()
    ))
}

/// `sandbox_session` with arbitrary arguments; panics on tool errors.
pub async fn session(client: &Peer<RoleClient>, arguments: Value) -> Value {
    let result = call(client, "sandbox_session", arguments.clone()).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "sandbox_session {arguments} failed: {}",
        text_of(&result)
    );
    result
        .structured_content
        .expect("sandbox_session returns structured content")
}

/// A session a test made: its container and volumes are removed when this
/// is dropped, so a failed assertion leaves nothing behind. Reads as the
/// session's name.
pub struct TestSession(String);

impl TestSession {
    /// Takes charge of removing the session `name`.
    pub fn adopt(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for TestSession {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TestSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl serde::Serialize for TestSession {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Drop for TestSession {
    fn drop(&mut self) {
        use std::process::Command;
        let container = format!("multilang-sandbox-session-{}", self.0);
        let network = session_network(&container);
        let _ = Command::new("docker").args(["rm", "-f", &container]).output();
        if let Some(network) = network {
            // Its holder container has its name.
            let _ = Command::new("docker").args(["rm", "-f", &network]).output();
            remove_network(&network);
        }
        let label = format!("label=multilang-sandbox.session={}", self.0);
        if let Ok(listed) = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter", &label])
            .output()
        {
            for volume in String::from_utf8_lossy(&listed.stdout).lines() {
                let _ = Command::new("docker").args(["volume", "rm", "-f", volume]).output();
            }
        }
    }
}

/// Removes a Docker network, disconnecting what is still on it (egress
/// proxies) first; an absent network is fine.
/// The sandbox network a session container (or any sandbox with network)
/// is on, from its label.
pub fn session_network(container: &str) -> Option<String> {
    let output = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{index .Config.Labels \"multilang-sandbox.network-name\"}}",
            container,
        ])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !name.is_empty() && name != "<no value>").then_some(name)
}

pub fn remove_network(network: &str) {
    use std::process::Command;
    let members = Command::new("docker")
        .args([
            "network",
            "inspect",
            "-f",
            "{{range $id, $_ := .Containers}}{{$id}} {{end}}",
            network,
        ])
        .output();
    let Ok(members) = members else { return };
    for member in String::from_utf8_lossy(&members.stdout).split_whitespace() {
        let _ = Command::new("docker")
            .args(["network", "disconnect", "-f", network, member])
            .output();
    }
    let _ = Command::new("docker").args(["network", "rm", network]).output();
}

/// A session name unique to this test run.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Creates a session (the name is made unique per test run); it is removed
/// when the returned guard is dropped.
pub async fn create_session(client: &Peer<RoleClient>, prefix: &str, language: &str) -> TestSession {
    let name = TestSession::adopt(unique_name(prefix));
    session(
        client,
        serde_json::json!({"action": "create", "name": name, "language": language}),
    )
    .await;
    name
}

/// Runs code in a session; returns the structured result.
pub async fn execute_in(client: &Peer<RoleClient>, session: &str, language: &str, code: &str) -> Value {
    execute_with(
        client,
        serde_json::json!({"language": language, "code": code, "session": session}),
    )
    .await
}

/// `sandbox_inspect` with a target; returns the structured result.
pub async fn inspect(client: &Peer<RoleClient>, target: &str) -> Value {
    let result = call(client, "sandbox_inspect", serde_json::json!({"target": target})).await;
    result
        .structured_content
        .expect("sandbox_inspect returns structured content")
}

/// Checks Docker, then starts a server without a warm pool (tests run many
/// servers in parallel; the pool has tests of its own in `lifecycle.rs`).
pub async fn start_server() -> Client {
    require_docker().await;
    start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await
}

/// Calls a tool that must answer with a tool error (`isError: true`);
/// returns the error's text.
pub async fn tool_error_text(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> String {
    let result = call(client, tool, arguments.clone()).await;
    let text = text_of(&result);
    assert_eq!(result.is_error, Some(true), "{tool} {arguments} should fail: {text}");
    text
}

/// Calls a tool; panics on protocol errors.
pub async fn call(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> CallToolResult {
    try_call(client, tool, arguments)
        .await
        .unwrap_or_else(|error| panic!("{tool} failed at the protocol level: {error}"))
}

/// Longest any one tool call in a test may take (the slowest, a first
/// install of a large package, takes seconds): a hung server fails the test
/// here instead of holding CI to its time limit.
pub const CALL_LIMIT: Duration = Duration::from_secs(300);

/// Calls a tool, returning protocol errors; panics when no answer comes
/// within [`CALL_LIMIT`].
pub async fn try_call(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> Result<CallToolResult, ServiceError> {
    let arguments: Map<String, Value> = match arguments {
        Value::Object(map) => map,
        other => panic!("tool arguments must be an object, got {other}"),
    };
    let call = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments));
    tokio::time::timeout(CALL_LIMIT, call)
        .await
        .unwrap_or_else(|_| panic!("{tool} got no answer within {CALL_LIMIT:?}"))
}

/// `sandbox_execute` with language and code; returns the structured result.
pub async fn execute(client: &Peer<RoleClient>, language: &str, code: &str) -> Value {
    execute_with(client, serde_json::json!({"language": language, "code": code})).await
}

/// `sandbox_execute` with arbitrary arguments; returns the structured result.
pub async fn execute_with(client: &Peer<RoleClient>, arguments: Value) -> Value {
    let result = call(client, "sandbox_execute", arguments).await;
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured result; the tool said: {}", text_of(&result)))
}

/// All text content of a result, joined.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|content| content.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Ids of the sandbox containers (any state) whose labels match `filters`.
pub async fn sandbox_containers(docker: &Docker, filters: &[&str]) -> Vec<String> {
    let mut labels = vec!["multilang-sandbox.kind".to_string()];
    labels.extend(filters.iter().map(|f| f.to_string()));
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&HashMap::from([("label".to_string(), labels)]))
        .build();
    // Podman lists a container that has just stopped as `stopped`, a state
    // Docker's API does not have: asked again, as the server does.
    for _ in 0..50 {
        match docker.list_containers(Some(options.clone())).await {
            Err(bollard::errors::Error::JsonDataError { message, .. })
                if message.contains("unknown variant `stopped`") =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            listed => {
                return listed
                    .expect("cannot list containers")
                    .into_iter()
                    .filter_map(|container| container.id)
                    .collect();
            }
        }
    }
    panic!("the engine listed a container as `stopped` for five seconds");
}

/// The engine is Podman (serving Docker's API), which closes a container's
/// stdin when the connection attached to it ends.
pub async fn engine_is_podman(docker: &Docker) -> bool {
    let version = docker.version().await.expect("the engine's version");
    version
        .components
        .unwrap_or_default()
        .iter()
        .any(|component| component.name.to_ascii_lowercase().contains("podman"))
}

/// Waits up to `limit` for no container with all of `filters` to exist.
pub async fn wait_for_none(docker: &Docker, filters: &[&str], limit: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = sandbox_containers(docker, filters).await;
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// This server's instance label filter (`multilang-sandbox.instance=<id>`).
pub async fn instance_label(client: &Peer<RoleClient>) -> String {
    let state = inspect(client, "pool").await;
    format!(
        "multilang-sandbox.instance={}",
        state["instance"]
            .as_str()
            .expect("sandbox_inspect reports the instance id")
    )
}

/// True when the suite runs under gVisor (`MULTILANG_SANDBOX_RUNTIME=runsc`),
/// where a few behaviours differ as SECURITY.md says.
pub fn gvisor() -> bool {
    std::env::var("MULTILANG_SANDBOX_RUNTIME").is_ok_and(|runtime| runtime == "runsc")
}

/// The raw JSON-RPC text of a `tools/call` of `sandbox_execute` whose
/// `code` is `code` (raw JSON text, quotes included: it may be malformed on
/// purpose).
pub fn execute_call(id: u64, code: &[u8]) -> Vec<u8> {
    let mut line = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"sandbox_execute","arguments":{{"language":"python","code":"#
    )
    .into_bytes();
    line.extend_from_slice(code);
    line.extend_from_slice(b"}}}");
    line
}

/// Names of the volumes (in use or not) labelled with session `name`.
pub async fn session_volumes(docker: &Docker, name: &str) -> Vec<String> {
    let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
        .filters(&HashMap::from([(
            "label".to_string(),
            vec![format!("multilang-sandbox.session={name}")],
        )]))
        .build();
    let mut names: Vec<String> = docker
        .list_volumes(Some(options))
        .await
        .expect("cannot list volumes")
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|volume| volume.name)
        .collect();
    names.sort();
    names
}

/// Names of the named volumes mounted into container `id`.
pub async fn mounted_volumes(docker: &Docker, id: &str) -> Vec<String> {
    let inspected = docker
        .inspect_container(id, None)
        .await
        .expect("cannot inspect the container");
    let mut names: Vec<String> = inspected
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mount| mount.name)
        .collect();
    names.sort();
    names
}

/// Polls `check` every 100 ms until it returns true or `limit` passes;
/// returns its last answer.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
