//! The first call after a server start, with the pool's python containers
//! ready: a fresh server per sample. rmcp's client exchanges `initialize`
//! only, so the timed `sandbox_execute` carries no `tools/list` with it.
//! Two ways to know the pool is ready: `sandbox_inspect` (the brief's way;
//! then the execute is the first execute but not the first tool call), or
//! the engine's view of the server's pool containers (then it is the first
//! tool call of all). Each sample is checked to be a pool hit afterwards.

use crate::calls::print_one;
use crate::harness::{
    BoxError, Case, Client, ENGINE_TIMEOUT, engine, execute_expecting, pool_entry, server_binary, stop_server,
    wait_for_warm_pool, within,
};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Warm python containers the servers here keep (and no other language).
const POOL: &str = "python=2,bash=0,javascript=0,typescript=0,go=0,rust=0";
const POOL_PYTHON: usize = 2;
/// Once the engine shows the pool's containers running, how long their
/// kernels get before the first call.
pub const KERNEL_GRACE: Duration = Duration::from_secs(3);

/// `starts` fresh servers for each way of waiting, taken in turn.
pub async fn first_call_cases(docker: &Docker, starts: usize) -> Result<Vec<Case>, BoxError> {
    let (mut firsts, mut seconds, mut first_tools) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..starts {
        let (first, second) = after_inspect().await?;
        firsts.push(first);
        seconds.push(second);
        first_tools.push(first_tool_call(docker).await?);
    }
    Ok(vec![
        Case::new(
            "first stateless `print(1)` (python) after a server start, pool ready (waited for with `sandbox_inspect`)",
            firsts,
        ),
        Case::new(
            "the next stateless `print(1)` (python) on that server, pool ready again",
            seconds,
        ),
        Case::new(
            "first tool call of all after a server start: stateless `print(1)` (python), pool ready \
             (seen through the engine)",
            first_tools,
        ),
    ])
}

/// A server started with [`POOL`] and its log on a pipe; returns the
/// client and the instance id the server logged.
async fn start_logged() -> Result<(Client, String), BoxError> {
    let mut command = Command::new(server_binary());
    command
        .env("MULTILANG_SANDBOX_LOG", "info,rmcp=warn")
        .env("MULTILANG_SANDBOX_POOL_SIZE", POOL);
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(stderr.ok_or("the server's stderr was not captured")?).lines();
    let find_instance = async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("multilang-sandbox starting")
                && let Some(rest) = line.split("instance=").nth(1)
            {
                return Ok(rest.split_whitespace().next().map(str::to_string));
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let instance = within(ENGINE_TIMEOUT, "the server's start line", find_instance)
        .await?
        .ok_or("the server did not log its instance id")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = within(ENGINE_TIMEOUT, "starting the server", ().serve(transport)).await?;
    Ok((client, instance))
}

/// Fails unless the server's pool served every python execute so far.
async fn check_hits(client: &Client, executes: u64) -> Result<(), BoxError> {
    let entry = pool_entry(client, "python").await?;
    if entry["misses"] != 0 || entry["hits"] != executes {
        return Err(format!("the first-call server's executes were not all pool hits: {entry}").into());
    }
    Ok(())
}

/// Waits with `sandbox_inspect`, then times the first execute and, once
/// the pool is full again, the second.
async fn after_inspect() -> Result<(Duration, Duration), BoxError> {
    let (client, _) = start_logged().await?;
    let timed = async {
        wait_for_warm_pool(&client, "python", Some(POOL_PYTHON as u64)).await?;
        let started = Instant::now();
        execute_expecting(&client, print_one(), "1\n").await?;
        let first = started.elapsed();
        wait_for_warm_pool(&client, "python", Some(POOL_PYTHON as u64)).await?;
        let started = Instant::now();
        execute_expecting(&client, print_one(), "1\n").await?;
        let second = started.elapsed();
        check_hits(&client, 2).await?;
        Ok::<_, BoxError>((first, second))
    }
    .await;
    let stopped = stop_server(client).await;
    let timed = timed?;
    stopped?;
    Ok(timed)
}

/// Waits until the engine shows the server's python pool containers
/// running, gives their kernels [`KERNEL_GRACE`], then times the first
/// tool call of all.
async fn first_tool_call(docker: &Docker) -> Result<Duration, BoxError> {
    let (client, instance) = start_logged().await?;
    let timed = async {
        let deadline = Instant::now() + Duration::from_secs(90);
        let filters = HashMap::from([
            (
                "label".to_string(),
                vec![
                    "multilang-sandbox.kind=pool".to_string(),
                    format!("multilang-sandbox.instance={instance}"),
                    "multilang-sandbox.language=python".to_string(),
                ],
            ),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        loop {
            let options = ListContainersOptionsBuilder::default().filters(&filters).build();
            let running = engine("list the pool's containers", docker.list_containers(Some(options))).await?;
            if running.len() >= POOL_PYTHON {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("the engine never showed {POOL_PYTHON} pool containers of {instance}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(KERNEL_GRACE).await;
        let started = Instant::now();
        execute_expecting(&client, print_one(), "1\n").await?;
        let first = started.elapsed();
        check_hits(&client, 1).await?;
        Ok::<_, BoxError>(first)
    }
    .await;
    let stopped = stop_server(client).await;
    let timed = timed?;
    stopped?;
    Ok(timed)
}
