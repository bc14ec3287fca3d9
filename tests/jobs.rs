//! Long-running work (issue #16): background executes, executes detached at
//! their deadline, collecting them with `sandbox_job` from a client whose
//! own request timeout is short, cancel, the caps, a session's job across a
//! `kill -9` of the server, and a job that runs out of memory. Real binary,
//! rmcp's client, real Docker.

mod common;

use common::{
    create_session, execute_with, instance_label, kill_nine, require_docker, start_server, start_server_process,
    start_server_with_env, text_of, wait_for_none,
};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::Peer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The client's own request timeout in these tests, as short as the
/// clients that cut calls first: every call must answer within it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A tool call that the client gives up on after [`CLIENT_TIMEOUT`].
async fn impatient_call(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    let call = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments));
    tokio::time::timeout(CLIENT_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{tool} did not answer within the client's {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|error| panic!("{tool} failed at the protocol level: {error}"))
}

async fn structured(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> Value {
    let result = impatient_call(client, tool, arguments.clone()).await;
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("{tool} {arguments}: no structured result: {}", text_of(&result)))
}

async fn error_text(client: &Peer<RoleClient>, tool: &str, arguments: Value) -> String {
    let result = impatient_call(client, tool, arguments.clone()).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} {arguments} should fail: {}",
        text_of(&result)
    );
    text_of(&result)
}

fn job_of(result: &Value) -> String {
    result["job"]["job"]
        .as_str()
        .unwrap_or_else(|| panic!("no job handle in {result}"))
        .to_string()
}

/// Waits for the job in pieces of `piece` seconds until it ends; returns
/// the final result and everything its reads printed, in order.
async fn collect(client: &Peer<RoleClient>, job: &str, piece: u64, limit: Duration) -> (Value, String) {
    let deadline = Instant::now() + limit;
    let mut printed = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "job {job} did not end within {limit:?}; printed {printed:?}"
        );
        let got = structured(
            client,
            "sandbox_job",
            json!({"action": "wait", "job": job, "wait": piece}),
        )
        .await;
        let result = &got["result"];
        printed.push_str(result["stdout"].as_str().unwrap_or(""));
        if result.get("exit_code").is_some() {
            return (result.clone(), printed);
        }
        assert_eq!(result["job"]["state"], "running", "{got}");
    }
}

#[tokio::test]
async fn a_ninety_second_job_is_collected_by_a_client_with_a_ten_second_timeout() {
    let client = start_server().await;
    let name = create_session(&client, "job-long", "python").await;
    // Ten lines over 90 s, then a file in /outputs.
    let code = "import time\n\
                for step in range(10):\n    print(f'step {step}', flush=True)\n    time.sleep(9)\n\
                open('/outputs/model.txt', 'w').write('trained')\nprint('done')";
    let started = structured(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "session": name, "background": true, "timeout": 150000}),
    )
    .await;
    let job = job_of(&started);
    assert!(job.starts_with(&format!("{name}/")), "{job}");
    assert_eq!(started["job"]["state"], "running", "{started}");
    assert!(started.get("exit_code").is_none(), "{started}");
    let listed = structured(&client, "sandbox_job", json!({"action": "list"})).await;
    let entry = listed["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|entry| entry["job"] == job.as_str()))
        .unwrap_or_else(|| panic!("{job} not in {listed}"));
    assert_eq!(entry["code"], "import time", "{entry}");
    let inspected = common::inspect(&client, "jobs").await;
    assert!(
        inspected["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|entry| entry["job"] == job.as_str())),
        "sandbox_inspect shows {job}: {inspected}"
    );
    let (result, printed) = collect(&client, &job, 8, Duration::from_secs(150)).await;
    let expected: String = (0..10).map(|step| format!("step {step}\n")).collect::<String>() + "done\n";
    assert_eq!(printed, expected, "every line once, in order");
    assert_eq!(result["exit_code"], 0, "{result}");
    assert!(result["duration_ms"].as_u64().unwrap_or(0) >= 90_000, "{result}");
    let artifacts = result["artifacts"].as_array().cloned().unwrap_or_default();
    assert!(
        artifacts
            .iter()
            .any(|artifact| artifact["path"] == "/outputs/model.txt"),
        "the job's file: {result}"
    );
    // Collected: it is gone, and the session takes code again.
    let gone = error_text(&client, "sandbox_job", json!({"action": "wait", "job": job})).await;
    assert!(gone.contains("no job"), "{gone}");
    let after = execute_with(
        &client,
        json!({"language": "python", "code": "print(step)", "session": name}),
    )
    .await;
    assert_eq!(
        after["stdout"], "9\n",
        "the job ran in the session's interpreter: {after}"
    );
}

#[tokio::test]
async fn an_execute_still_running_at_its_deadline_becomes_a_job() {
    let docker = require_docker().await;
    let client = start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    let mine = instance_label(&client).await;
    let code = "import time\nprint('before', flush=True)\ntime.sleep(6)\nprint('after')";
    let call_started = Instant::now();
    let detached = structured(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "detach_after": 3, "timeout": 60000}),
    )
    .await;
    let waited = call_started.elapsed();
    assert!(waited >= Duration::from_secs(3), "detached after {waited:?}");
    assert_eq!(detached["stdout"], "before\n", "the output so far: {detached}");
    assert!(
        detached["note"].as_str().unwrap_or("").contains("sandbox_job"),
        "it says how to collect it: {detached}"
    );
    let job = job_of(&detached);
    assert!(!job.contains('/'), "a stateless job's handle: {job}");
    let status = structured(&client, "sandbox_job", json!({"action": "status", "job": job})).await;
    assert_eq!(status["jobs"][0]["state"], "running", "{status}");
    let (result, printed) = collect(&client, &job, 5, Duration::from_secs(60)).await;
    assert_eq!(printed, "after\n", "nothing repeated from the detached call's answer");
    assert_eq!(result["exit_code"], 0, "{result}");
    assert_eq!(result["job"]["job"], job.as_str(), "{result}");
    // Its sandbox went with the collection.
    let left = wait_for_none(
        &docker,
        &[&mine, "multilang-sandbox.kind=pool"],
        Duration::from_secs(20),
    )
    .await;
    assert!(left.is_empty(), "the job's sandbox is still there: {left:?}");

    // A short execute still returns as before, with no job.
    let quick = structured(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "print(1)", "detach_after": 3, "timeout": 60000}),
    )
    .await;
    assert_eq!(
        (quick["stdout"].as_str(), quick.get("job")),
        (Some("1\n"), None),
        "{quick}"
    );
}

#[tokio::test]
async fn a_running_job_holds_its_session_until_cancelled() {
    let client = start_server().await;
    let name = create_session(&client, "job-cancel", "python").await;
    let code = "import time\nkept = 42\nprint('started', flush=True)\ntime.sleep(120)\nprint('never')";
    let started = structured(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "session": name, "background": true, "timeout": 300000}),
    )
    .await;
    let job = job_of(&started);
    let first = structured(&client, "sandbox_job", json!({"action": "wait", "job": job, "wait": 5})).await;
    assert_eq!(first["result"]["stdout"], "started\n", "{first}");
    for (language, code) in [("python", "print(kept)"), ("bash", "ls /workspace")] {
        let refused = error_text(
            &client,
            "sandbox_execute",
            json!({"language": language, "code": code, "session": name}),
        )
        .await;
        assert!(
            refused.contains(&job) && refused.contains("cancel"),
            "{language}: {refused}"
        );
    }
    let cancelled = structured(&client, "sandbox_job", json!({"action": "cancel", "job": job})).await;
    let result = &cancelled["result"];
    assert_ne!(result["exit_code"], 0, "{cancelled}");
    assert!(
        result["note"].as_str().unwrap_or("").contains("Cancelled"),
        "{cancelled}"
    );
    assert_eq!(
        result["stdout"], "",
        "what was read before is not repeated: {cancelled}"
    );
    // The interrupted cell kept the session's interpreter.
    let after = execute_with(
        &client,
        json!({"language": "python", "code": "print(kept)", "session": name}),
    )
    .await;
    assert_eq!(after["stdout"], "42\n", "{after}");
    let unknown = error_text(&client, "sandbox_job", json!({"action": "status", "job": "nope"})).await;
    assert!(
        unknown.contains("no job `nope`") && unknown.contains("list"),
        "{unknown}"
    );
}

#[tokio::test]
async fn the_running_job_cap_refuses_more_with_a_clear_error() {
    require_docker().await;
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_JOBS_MAX_RUNNING", "1"),
    ])
    .await;
    let background = |code: &str| json!({"language": "bash", "code": code, "background": true, "timeout": 120000});
    let first = structured(&client, "sandbox_execute", background("sleep 60")).await;
    let job = job_of(&first);
    let refused = error_text(&client, "sandbox_execute", background("echo second")).await;
    assert!(
        refused.contains("1 background jobs are running already") && refused.contains("jobs.max_running"),
        "{refused}"
    );
    structured(&client, "sandbox_job", json!({"action": "cancel", "job": job})).await;
    let second = structured(&client, "sandbox_execute", background("echo second")).await;
    let (result, printed) = collect(&client, &job_of(&second), 5, Duration::from_secs(30)).await;
    assert_eq!(
        (printed.as_str(), &result["exit_code"]),
        ("second\n", &json!(0)),
        "{result}"
    );
}

#[tokio::test]
async fn a_sessions_job_outlives_a_killed_server() {
    require_docker().await;
    let env = [("MULTILANG_SANDBOX_POOL_SIZE", "0")];
    let (client, pid) = start_server_process(&env).await;
    let name = create_session(&client, "job-kill", "python").await;
    let code = "import time\nprint('one', flush=True)\ntime.sleep(8)\nprint('two')";
    let started = structured(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "session": name, "background": true, "timeout": 60000}),
    )
    .await;
    let job = job_of(&started);
    kill_nine(pid);
    drop(client);
    let (client, _) = start_server_process(&env).await;
    let listed = structured(&client, "sandbox_job", json!({"action": "list"})).await;
    assert!(
        listed["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|entry| entry["job"] == job.as_str())),
        "the restarted server finds {job}: {listed}"
    );
    let (result, printed) = collect(&client, &job, 5, Duration::from_secs(60)).await;
    assert_eq!(printed, "one\ntwo\n", "{result}");
    assert_eq!(result["exit_code"], 0, "{result}");
}

#[tokio::test]
async fn a_job_that_runs_out_of_memory_says_so() {
    let client = start_server().await;
    let started = structured(
        &client,
        "sandbox_execute",
        json!({"language": "python", "background": true, "timeout": 60000,
               "code": "print('allocating', flush=True)\nblocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))"}),
    )
    .await;
    let (result, printed) = collect(&client, &job_of(&started), 5, Duration::from_secs(60)).await;
    assert_eq!(printed, "allocating\n", "{result}");
    assert_eq!(result["exit_code"], 137, "{result}");
    assert!(
        result["note"].as_str().unwrap_or("").contains("ran out of memory"),
        "{result}"
    );
}

#[tokio::test]
async fn a_background_execute_is_a_job_however_soon_it_ends() {
    let client = start_server().await;
    let name = create_session(&client, "job-quick", "python").await;
    for round in 0..3 {
        let started = structured(
            &client,
            "sandbox_execute",
            json!({"language": "python", "code": format!("print({round})"), "session": name, "background": true}),
        )
        .await;
        let job = job_of(&started);
        let (result, printed) = collect(&client, &job, 5, Duration::from_secs(30)).await;
        assert_eq!(
            (printed, &result["exit_code"]),
            (format!("{round}\n"), &json!(0)),
            "{result}"
        );
    }
    // Other tests' sessions may hold jobs of their own.
    let listed = structured(&client, "sandbox_job", json!({"action": "list"})).await;
    let left = listed["jobs"]
        .as_array()
        .is_some_and(|jobs| jobs.iter().any(|entry| entry["session"] == name.as_str()));
    assert!(!left, "every job was collected: {listed}");
}
