//! A Docker engine reached over TCP (`DOCKER_HOST=tcp://…`), as when the
//! sandboxes live on a bigger machine: a TCP front to the local engine's
//! socket stands in for the remote machine, and the server runs code,
//! keeps a session and moves files through it, and a session granted a
//! local origin reaches it through the egress proxy, which lives on the
//! engine next to the sandboxes, while a host it was not granted is refused.

mod common;

use common::origin::{Origin, note, python_fetch, stdout};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_engine_session_reaches_a_granted_origin_through_the_proxy_only() {
    require_docker().await;
    let origin = Origin::start();
    let allow = origin.allow();
    let host = tcp_front().await;
    let env = origin.server_env(&allow, &[("DOCKER_HOST", &host)]);
    let (client, _) = start_server_process(&env).await;
    let name = TestSession::adopt(unique_name("remote-egress"));
    session(
        &client,
        json!({"action": "create", "name": name, "language": "python", "network": [allow]}),
    )
    .await;
    let reached = execute_in(&client, &name, "python", &python_fetch(&origin.url())).await;
    assert_eq!(stdout(&reached).trim(), "status 200 origin-says-hello", "{reached}");
    // A host it was not granted: the proxy's 403 with its reason reaches
    // the program, and the note names the host and the config key.
    let refused = execute_in(&client, &name, "python", &python_fetch("http://example.com/")).await;
    assert!(stdout(&refused).starts_with("status 403"), "{refused}");
    assert!(
        stdout(&refused).contains("is not allowed for this sandbox"),
        "{refused}"
    );
    assert!(
        note(&refused).contains("example.com:80") && note(&refused).contains("egress.allow"),
        "{refused}"
    );
    // Only through the proxy: straight to the origin there is no route.
    let direct = execute_in(
        &client,
        &name,
        "python",
        &format!(
            "import socket\ntry:\n    socket.create_connection(('{}', 8080), timeout=3).close()\n    print('REACHED')\nexcept OSError as e:\n    print('blocked', type(e).__name__)\n",
            origin.address
        ),
    )
    .await;
    assert!(stdout(&direct).starts_with("blocked"), "{direct}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}
