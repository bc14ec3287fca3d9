//! Timeouts, output floods, memory and cleanup. The pool is off here, so
//! any container of this server still there after an execute is a leak.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn limits_hold_and_nothing_is_left_behind() {
    let docker = require_docker().await;
    let client = start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    let ours = instance_label(&client).await;

    // An endless loop is killed at its timeout and reported as timed out.
    let started = Instant::now();
    let result = execute_with(
        &client,
        json!({"language": "python", "code": "while True: pass", "timeout": 2000}),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(result["timed_out"], true, "{result}");
    assert!(elapsed < Duration::from_secs(15), "timeout took {elapsed:?}");
    assert!(
        result["note"]
            .as_str()
            .unwrap_or_default()
            .contains("Timed out after 2000 ms"),
        "{result}"
    );
    let left = wait_for_none(&docker, &[&ours], Duration::from_secs(10)).await;
    assert!(left.is_empty(), "containers left after a timeout: {left:?}");

    // A background process that outlives the program does not hold the result.
    let result = execute_with(
        &client,
        json!({"language": "bash", "code": "sleep 100 & echo started", "timeout": 5000}),
    )
    .await;
    assert_eq!(result["stdout"], "started\n", "{result}");
    assert_eq!(result["timed_out"], false, "{result}");

    // A 50 MB flood is cut at the cap and the server stays usable.
    let result = execute_with(
        &client,
        json!({"language": "python", "code": "import sys\nchunk = 'x' * 1_000_000 + '\\n'\nfor _ in range(50): sys.stdout.write(chunk)\nprint('done', file=sys.stderr)"}),
    )
    .await;
    assert_eq!(result["truncated"], true, "flood not reported as truncated");
    let stdout_len = result["stdout"].as_str().unwrap().len();
    assert!(stdout_len <= 1024 * 1024, "stdout kept {stdout_len} bytes");
    assert!(stdout_len >= 1_000_000, "stdout kept only {stdout_len} bytes");
    assert_eq!(result["stderr"], "done\n");
    assert_eq!(result["exit_code"], 0);
    let after = execute(&client, "python", "print('still here')").await;
    assert_eq!(after["stdout"], "still here\n");

    // Memory beyond the limit is killed and explained.
    let result = execute_with(
        &client,
        json!({"language": "python", "code": "blocks = []\nwhile True: blocks.append(b'x' * (50 * 1024 * 1024))", "timeout": 20000}),
    )
    .await;
    assert_ne!(result["exit_code"], 0, "{result}");
    assert!(
        result["note"].as_str().unwrap_or_default().contains("out of memory"),
        "{result}"
    );

    client.cancel().await.ok();
    let left = wait_for_none(&docker, &[&ours], Duration::from_secs(10)).await;
    assert!(left.is_empty(), "containers left behind: {left:?}");
}
