//! MCP Tasks (the tasks extension rmcp 3.11 implements) through rmcp's
//! client: a client that declares the extension gets a task for a
//! background execute and for one still running at its detach deadline,
//! polls it with `tasks/get` to the execute's result, hears its progress
//! and its status notification, and cancels one with `tasks/cancel`. A
//! client that does not declare it keeps getting job handles (tests/jobs.rs).

mod common;

use common::{require_docker, start_server_with_handler};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ClientCapabilities, ClientConfig,
    ClientRequest, CustomRequest, DetailedTask, ErrorCode, GetTaskParams, Implementation, ProgressNotificationParam,
    TaskPayload, TaskStatus, TaskStatusNotificationParams,
};
use rmcp::service::{NotificationContext, Peer, RunningService, ServiceError};
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every call in these tests answers within this.
const LIMIT: Duration = Duration::from_secs(30);

/// A client that takes tasks and keeps the progress and task status
/// notifications it hears.
#[derive(Clone, Default)]
struct TaskClient {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    statuses: Arc<Mutex<Vec<TaskStatusNotificationParams>>>,
}

impl ClientHandler for TaskClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("task-test-client", "1.0"),
        )
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_task_status(&self, params: TaskStatusNotificationParams, _context: NotificationContext<RoleClient>) {
        self.statuses.lock().unwrap().push(params);
    }
}

async fn start() -> (RunningService<RoleClient, TaskClient>, TaskClient) {
    require_docker().await;
    let client = TaskClient::default();
    let (service, _) = start_server_with_handler(client.clone(), &[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    (service, client)
}

/// Calls `sandbox_execute` expecting a task; returns its id.
async fn execute_as_task(peer: &Peer<RoleClient>, arguments: Value) -> String {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    let params = CallToolRequestParams::new("sandbox_execute").with_arguments(arguments);
    let answer = tokio::time::timeout(LIMIT, peer.call_tool_once(params))
        .await
        .expect("the call answers at once")
        .expect("sandbox_execute");
    let CallToolResponse::Task(created) = answer else {
        panic!("expected a task, got {answer:?}")
    };
    assert_eq!(created.task.status, TaskStatus::Working);
    assert!(created.task.poll_interval_ms.is_some());
    created.task.task_id.clone()
}

/// Polls `tasks/get` until the task ends.
async fn until_done(peer: &Peer<RoleClient>, task: &str, limit: Duration) -> DetailedTask {
    let deadline = Instant::now() + limit;
    loop {
        let got = tokio::time::timeout(LIMIT, peer.get_task(GetTaskParams::new(task.to_string())))
            .await
            .expect("tasks/get answers")
            .expect("tasks/get");
        if got.task.status().is_terminal() {
            return got.task;
        }
        assert!(Instant::now() < deadline, "task {task} still working after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn completed(task: DetailedTask) -> Value {
    let TaskPayload::Completed { result } = task.payload else {
        panic!("expected completed, got {:?}", task.status())
    };
    let result: CallToolResult = serde_json::from_value(Value::Object(result)).expect("a tool result");
    result.structured_content.expect("structured content")
}

#[tokio::test]
async fn a_background_execute_is_a_task_polled_to_its_result() {
    let (service, client) = start().await;
    let peer = service.peer();
    let code =
        "import time\nfor step in range(3):\n    print(f'step {step}', flush=True)\n    time.sleep(1.5)\nprint('done')";
    let task = execute_as_task(
        peer,
        json!({"language": "python", "code": code, "background": true, "timeout": 60000}),
    )
    .await;
    let result = completed(until_done(peer, &task, Duration::from_secs(60)).await);
    assert_eq!(
        result["stdout"], "step 0\nstep 1\nstep 2\ndone\n",
        "all of it, once: {result}"
    );
    assert_eq!(result["exit_code"], 0, "{result}");
    // The follower reported progress while it ran, then the end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.statuses.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let statuses = client.statuses.lock().unwrap().clone();
    assert!(
        statuses
            .iter()
            .any(|status| status.task.task.task_id == task && status.status() == TaskStatus::Completed),
        "{statuses:?}"
    );
    let progress = client.progress.lock().unwrap().clone();
    assert!(
        progress.iter().any(|report| report
            .message
            .as_deref()
            .is_some_and(|message| message.contains("step"))),
        "progress with the latest output: {progress:?}"
    );
    // The result stays for tasks/get; tasks/list is not part of this design.
    let again = completed(until_done(peer, &task, LIMIT).await);
    assert_eq!(again["stdout"], result["stdout"]);
    let listed = peer
        .send_request(ClientRequest::CustomRequest(CustomRequest::new("tasks/list", None)))
        .await;
    assert!(
        matches!(&listed, Err(ServiceError::McpError(error)) if error.code == ErrorCode::METHOD_NOT_FOUND),
        "{listed:?}"
    );
    let unknown = peer.get_task(GetTaskParams::new("no-such-task".to_string())).await;
    assert!(
        matches!(&unknown, Err(ServiceError::McpError(error)) if error.code == ErrorCode::INVALID_PARAMS),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn an_execute_past_its_deadline_becomes_a_task_and_tasks_cancel_stops_it() {
    let (service, _) = start().await;
    let peer = service.peer();
    let quick = {
        let params = CallToolRequestParams::new("sandbox_execute").with_arguments(
            json!({"language": "python", "code": "print(1)"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        tokio::time::timeout(LIMIT, peer.call_tool_once(params))
            .await
            .expect("answers")
            .expect("sandbox_execute")
    };
    assert!(
        matches!(&quick, CallToolResponse::Complete(result) if result.structured_content.as_ref().is_some_and(|s| s["stdout"] == "1\n")),
        "a quick execute answers as always: {quick:?}"
    );
    let code = "import time\nprint('waiting', flush=True)\ntime.sleep(120)";
    let started = Instant::now();
    let task = execute_as_task(
        peer,
        json!({"language": "python", "code": code, "detach_after": 2, "timeout": 300000}),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    tokio::time::timeout(LIMIT, peer.cancel_task(CancelTaskParams::new(task.clone())))
        .await
        .expect("tasks/cancel answers")
        .expect("tasks/cancel");
    let ended = until_done(peer, &task, Duration::from_secs(30)).await;
    assert_eq!(ended.status(), TaskStatus::Cancelled, "{ended:?}");
}

#[tokio::test]
async fn an_install_still_going_at_the_deadline_is_a_task() {
    require_docker().await;
    let client = TaskClient::default();
    let (service, _) = start_server_with_handler(
        client,
        &[
            ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
            ("MULTILANG_SANDBOX_JOBS_DETACH_AFTER_S", "1"),
        ],
    )
    .await;
    let peer = service.peer();
    // A spec unique to this run, so pip really installs (seconds).
    let six = format!("six!=0.0.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000);
    let params = CallToolRequestParams::new("sandbox_install").with_arguments(
        json!({"language": "python", "packages": [six]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let answer = tokio::time::timeout(LIMIT, peer.call_tool_once(params))
        .await
        .expect("the call answers by its deadline")
        .expect("sandbox_install");
    let CallToolResponse::Task(created) = answer else {
        panic!("expected a task, got {answer:?}")
    };
    let result = completed(until_done(peer, &created.task.task_id, Duration::from_secs(240)).await);
    assert_eq!(result["packages"], json!([six]), "{result}");
    assert_eq!(result["cache_hit"], false, "{result}");
}
