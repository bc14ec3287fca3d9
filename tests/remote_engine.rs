//! A Docker engine reached over TCP (`DOCKER_HOST=tcp://…`), as when the
//! sandboxes live on a bigger machine: a TCP front to the local engine's
//! socket stands in for the remote machine, and the server runs code,
//! keeps a session and moves files through it.

mod common;

use common::*;
use serde_json::json;
use tokio::net::{TcpListener, UnixStream};

/// The local engine's socket (from a `unix://` DOCKER_HOST, or the default).
fn local_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => host.trim_start_matches("unix://").to_string(),
        _ => "/var/run/docker.sock".to_string(),
    }
}

/// Forwards TCP connections on a loopback port to the engine's socket;
/// returns `tcp://127.0.0.1:<port>`.
async fn tcp_front() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    let socket = local_socket();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    format!("tcp://{address}")
}

#[tokio::test]
async fn a_tcp_engine_runs_code_sessions_and_files() {
    require_docker().await;
    let host = tcp_front().await;
    let client = start_server_with_env(&[("DOCKER_HOST", &host), ("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    let result = execute(&client, "python", "print(6 * 7)").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    let name = create_session(&client, "remote", "python").await;
    let write = call(
        &client,
        "sandbox_file_ops",
        json!({"session": name, "operation": "write", "path": "data.txt", "content": "over tcp"}),
    )
    .await;
    assert_ne!(write.is_error, Some(true), "{}", text_of(&write));
    let read = execute_in(&client, &name, "python", "print(open('data.txt').read())").await;
    assert_eq!(read["stdout"], "over tcp\n", "{read}");
    let state = inspect(&client, "sessions").await;
    assert!(state.to_string().contains(name.as_str()), "{state}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}
