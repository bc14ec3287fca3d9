//! Live progress, warnings and cancellation through a real MCP client:
//! long executes and installs send progress notifications with their latest
//! output, `notifications/cancelled` stops the code at once, a cancelled
//! session stays usable, and lost state is announced as a logging warning.
#![allow(deprecated)] // MCP logging (SEP-2577) is what the server sends warnings with.

mod common;

use common::*;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, LoggingMessageNotificationParam, ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RequestHandle};
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A client that keeps every progress and logging notification.
#[derive(Clone, Default)]
struct Listener {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    logs: Arc<Mutex<Vec<LoggingMessageNotificationParam>>>,
}

impl ClientHandler for Listener {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params);
    }
}

impl Listener {
    fn messages_for(&self, handle_token: &rmcp::model::ProgressToken) -> Vec<String> {
        self.progress
            .lock()
            .unwrap()
            .iter()
            .filter(|progress| &progress.progress_token == handle_token)
            .filter_map(|progress| progress.message.clone())
            .collect()
    }

    fn warnings(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|log| log.data.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

async fn start(env: &[(&str, &str)]) -> (rmcp::service::RunningService<RoleClient, Listener>, Listener) {
    require_docker().await;
    let listener = Listener::default();
    let mut all = vec![("MULTILANG_SANDBOX_POOL_SIZE", "0")];
    all.extend_from_slice(env);
    let (client, _) = start_server_with_handler(listener.clone(), &all).await;
    (client, listener)
}

/// Sends a tool call that can be cancelled; returns its handle.
async fn send(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> RequestHandle<RoleClient> {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    let request = CallToolRequest::new(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments));
    client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(request),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("the request was sent")
}

/// Waits until `check` holds, up to `limit`.
async fn eventually(limit: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test]
async fn long_executes_report_progress_with_their_latest_output() {
    let (client, listener) = start(&[]).await;
    let code = "for i in 1 2 3 4; do echo \"step $i\"; sleep 1; done";
    let handle = send(&client, "sandbox_execute", json!({"language": "bash", "code": code})).await;
    let token = handle.progress_token.clone();
    let response = tokio::time::timeout(CALL_LIMIT, handle.await_response())
        .await
        .expect("the execute answers within the call limit")
        .expect("the execute answers");
    assert!(format!("{response:?}").contains("step 4"), "{response:?}");
    let messages = listener.messages_for(&token);
    assert!(
        messages.len() >= 2,
        "a 4 s run reports progress each second: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|message| message.contains("running for") && message.contains("step")),
        "progress carries the latest output: {messages:?}"
    );
    let values: Vec<f64> = listener
        .progress
        .lock()
        .unwrap()
        .iter()
        .filter(|progress| progress.progress_token == token)
        .map(|progress| progress.progress)
        .collect();
    assert!(
        values.windows(2).all(|pair| pair[0] < pair[1]),
        "progress increases: {values:?}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn installs_report_their_steps() {
    let (client, listener) = start(&[]).await;
    let name = create_session(&client, "progress-install", "python").await;
    let handle = send(
        &client,
        "sandbox_install",
        json!({"session": name, "packages": ["six"]}),
    )
    .await;
    let token = handle.progress_token.clone();
    let response = tokio::time::timeout(CALL_LIMIT, handle.await_response())
        .await
        .expect("the install answers within the call limit")
        .expect("the install answers");
    assert!(
        !format!("{response:?}").contains("is_error: Some(true)"),
        "{response:?}"
    );
    let messages = listener.messages_for(&token);
    assert!(
        messages
            .iter()
            .any(|message| message.contains("installing six with pip into the session")),
        "{messages:?}"
    );
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn cancelling_stops_a_session_execute_and_the_session_stays_usable() {
    let (client, _listener) = start(&[]).await;
    let name = create_session(&client, "cancel", "python").await;
    let setup = execute_in(&client, &name, "python", "x = 42").await;
    assert_eq!(setup["exit_code"], 0, "{setup}");
    let handle = send(
        &client,
        "sandbox_execute",
        json!({"language": "python", "session": name, "code": "import time\nwhile True: time.sleep(1)"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cancelled = Instant::now();
    handle
        .cancel(Some("the user stopped it".into()))
        .await
        .expect("cancel sent");
    let next = execute_in(&client, &name, "python", "print(x)").await;
    let usable_after = cancelled.elapsed();
    assert_eq!(next["stdout"], "42\n", "the interpreter kept its state: {next}");
    eprintln!("session usable {} ms after the cancel", usable_after.as_millis());
    assert!(
        usable_after < Duration::from_secs(1),
        "the session answered {} ms after the cancel",
        usable_after.as_millis()
    );
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_cancel_sent_right_after_the_request_is_not_lost() {
    let (client, _listener) = start(&[]).await;
    // A cancel that reaches the interpreter before it runs the cell must
    // neither be lost (the cell would run on) nor end the interpreter.
    let cases = [
        ("python", "x = 7", "print(x)", "import time\nwhile True: time.sleep(1)"),
        ("javascript", "var x = 7", "console.log(x)", "for (;;) {}"),
        ("bash", "x=7", "echo $x", "while :; do sleep 1; done"),
    ];
    for (language, define, show, endless) in cases {
        let name = create_session(&client, "cancel-at-once", language).await;
        execute_in(&client, &name, language, define).await;
        for _ in 0..3 {
            let handle = send(
                &client,
                "sandbox_execute",
                json!({"language": language, "session": name, "code": endless, "timeout": 120000}),
            )
            .await;
            handle.cancel(None).await.expect("cancel sent");
            let started = Instant::now();
            let next = execute_in(&client, &name, language, show).await;
            assert_eq!(next["stdout"], "7\n", "{language}: {next}");
            assert_eq!(next["state_lost"], false, "{language}: {next}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{language}: the cancelled code kept the session busy for {} ms",
                started.elapsed().as_millis()
            );
        }
        session(&client, json!({"action": "destroy", "name": name})).await;
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn code_that_ignores_the_interrupt_is_killed_and_the_user_is_warned() {
    let (client, listener) = start(&[]).await;
    let name = create_session(&client, "cancel-stubborn", "python").await;
    let code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(1)";
    let handle = send(
        &client,
        "sandbox_execute",
        json!({"language": "python", "session": name, "code": code}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    handle.cancel(None).await.expect("cancel sent");
    let next = execute_in(&client, &name, "python", "print('alive')").await;
    assert_eq!(next["stdout"], "alive\n", "{next}");
    // The cancelled execute's result reached no one: the next one tells.
    assert_eq!(next["state_lost"], true, "{next}");
    let warned = eventually(Duration::from_secs(3), || {
        listener
            .warnings()
            .iter()
            .any(|warning| warning.contains(name.as_str()) && warning.contains("interpreter had to be restarted"))
    })
    .await;
    assert!(
        warned,
        "a logging warning says the state was lost: {:?}",
        listener.warnings()
    );
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn cancelling_a_stateless_execute_leaves_no_container() {
    let docker = require_docker().await;
    let (client, _listener) = start(&[]).await;
    let ours = instance_label(&client).await;
    let handle = send(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": "sleep 600"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    handle.cancel(None).await.expect("cancel sent");
    let left = wait_for_none(&docker, &[&ours], Duration::from_secs(10)).await;
    assert!(left.is_empty(), "containers left after the cancel: {left:?}");
    let after = execute(&client, "bash", "echo still here").await;
    assert_eq!(after["stdout"], "still here\n", "{after}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_cancelled_session_create_leaves_no_session() {
    let docker = require_docker().await;
    let (client, _listener) = start(&[]).await;
    let name = TestSession::adopt(unique_name("cancel-create"));
    let handle = send(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": name, "language": "python"}),
    )
    .await;
    handle.cancel(None).await.expect("cancel sent");
    // The create goes on (a container start is not interrupted), then sees
    // the cancel and removes what it made.
    let label = format!("multilang-sandbox.session={name}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sandbox_containers(&docker, &[&label]).await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = wait_for_none(&docker, &[&label], Duration::from_secs(15)).await;
    assert!(left.is_empty(), "the cancelled create left a session behind: {left:?}");
    // The name is free again.
    let created = session(&client, json!({"action": "create", "name": name, "language": "python"})).await;
    assert_eq!(created["sessions"][0]["name"], name.as_str(), "{created}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}
