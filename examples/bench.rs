//! Latency benchmark, through a real MCP client against the real server and
//! real Docker, with the engine's own baselines measured in the same run.
//! Prints medians and p95 and writes them to `BENCHMARKS.md`.
//!
//! ```text
//! cargo build --release     # the server binary the benchmark starts
//! cargo run --release --example bench -- [RUNS]     # default 30 runs per case
//! ```

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptionsBuilder, StartContainerOptions};
use futures::StreamExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Command;

type Client = RunningService<RoleClient, ()>;
type BoxError = Box<dyn std::error::Error>;

struct Case {
    name: String,
    samples: Vec<Duration>,
}

impl Case {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MULTILANG_SANDBOX_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("multilang-sandbox")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("multilang-sandbox"))
}

async fn execute(client: &Client, arguments: Value) -> Result<Value, BoxError> {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let result = client
        .call_tool(CallToolRequestParams::new("sandbox_execute").with_arguments(arguments))
        .await?;
    let structured = result.structured_content.ok_or("no structured result")?;
    if structured["exit_code"] != 0 {
        return Err(format!("execute failed: {structured}").into());
    }
    Ok(structured)
}

async fn call(client: &Client, tool: &str, arguments: Value) -> Result<Value, BoxError> {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await?;
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {:?}", result.content).into());
    }
    Ok(result.structured_content.unwrap_or_default())
}

/// Waits until the pool holds `count` idle containers for `language` and
/// starts none, so the next execute is a hit and no start competes with it.
async fn wait_for_warm_pool(client: &Client, language: &str, count: u64) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = call(client, "sandbox_inspect", json!({"target": "pool"})).await?;
        let entry = state["pool"]
            .as_array()
            .and_then(|pool| pool.iter().find(|entry| entry["language"] == language))
            .cloned()
            .unwrap_or_default();
        if entry["idle"].as_u64().unwrap_or(0) >= count && entry["starting"].as_u64() == Some(0) {
            // Let the background removal of the previous container finish too.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the pool never warmed: {state}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn time_execute(
    client: &Client,
    name: &str,
    runs: usize,
    arguments: Value,
    warm_pool: Option<(&str, u64)>,
) -> Result<Case, BoxError> {
    execute(client, arguments.clone()).await?; // warm-up
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        if let Some((language, count)) = warm_pool {
            wait_for_warm_pool(client, language, count).await?;
        }
        let started = Instant::now();
        execute(client, arguments.clone()).await?;
        samples.push(started.elapsed());
    }
    Ok(Case {
        name: name.to_string(),
        samples,
    })
}

async fn start_server(env: &[(&str, &str)]) -> Result<Client, BoxError> {
    let mut command = Command::new(server_binary());
    command.env("MULTILANG_SANDBOX_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    Ok(().serve(TokioChildProcess::new(command)?).await?)
}

/// Session create with a package set: the first install of the set (a
/// spec unique to each run forces a cache miss) against creating a session
/// from the cached set.
async fn package_cases(client: &Client, package: &str, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut installs = Vec::new();
    let mut cached = Vec::new();
    let stamp = std::process::id();
    for run in 0..runs {
        let spec = format!("{package}!=0.0.{stamp}{run}");
        for (attempt, samples) in [(0, &mut installs), (1, &mut cached)] {
            let name = format!("bench-pkg-{stamp}-{run}-{attempt}");
            let started = Instant::now();
            call(
                client,
                "sandbox_session",
                json!({"action": "create", "name": name, "language": "python", "packages": [spec]}),
            )
            .await?;
            samples.push(started.elapsed());
            call(client, "sandbox_session", json!({"action": "destroy", "name": name})).await?;
        }
    }
    Ok(vec![
        Case {
            name: format!("session create with `{package}`, first install (cache miss)"),
            samples: installs,
        },
        Case {
            name: format!("session create with `{package}`, from the package cache (hit)"),
            samples: cached,
        },
    ])
}

/// `sandbox_file_ops` write and read of a 100 KB binary file in a session.
async fn file_cases(client: &Client, session: &str, runs: usize) -> Result<Vec<Case>, BoxError> {
    use base64::Engine;
    let content = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 100 * 1024]);
    let write = json!({"session": session, "operation": "write", "path": "bench/blob.bin", "content": content, "encoding": "base64"});
    let read = json!({"session": session, "operation": "read", "path": "bench/blob.bin", "encoding": "base64"});
    let mut cases = Vec::new();
    for (name, arguments) in [
        ("`sandbox_file_ops` write of 100 KB (base64) in a session", write),
        ("`sandbox_file_ops` read of 100 KB (base64) in a session", read),
    ] {
        call(client, "sandbox_file_ops", arguments.clone()).await?; // warm-up
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            call(client, "sandbox_file_ops", arguments.clone()).await?;
            samples.push(started.elapsed());
        }
        cases.push(Case {
            name: name.to_string(),
            samples,
        });
    }
    Ok(cases)
}

/// From `notifications/cancelled` for a busy session execute to the answer
/// of the next execute in that session (the interpreter is interrupted and
/// keeps its state).
async fn cancel_case(client: &Client, session: &str, runs: usize) -> Result<Case, BoxError> {
    use rmcp::model::{CallToolRequest, ClientRequest};
    use rmcp::service::PeerRequestOptions;
    let busy = json!({"language": "python", "session": session, "code": "import time\nwhile True: time.sleep(0.05)"});
    let next = json!({"language": "python", "session": session, "code": "print(1)"});
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let arguments = busy.as_object().cloned().unwrap_or_default();
        let request = CallToolRequest::new(CallToolRequestParams::new("sandbox_execute").with_arguments(arguments));
        let handle = client
            .send_cancellable_request(
                ClientRequest::CallToolRequest(request),
                PeerRequestOptions::no_options(),
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        handle.cancel(None).await?;
        execute(client, next.clone()).await?;
        samples.push(started.elapsed());
    }
    Ok(Case {
        name: "cancel a busy session execute, then `print(1)` answered in that session".to_string(),
        samples,
    })
}

/// Stateless `print(1)` on a pool hit through the streamable HTTP transport.
async fn http_case(runs: usize) -> Result<Case, BoxError> {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let token = "bench-token-0123456789abcdef";
    let mut server = Command::new(server_binary())
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("MULTILANG_SANDBOX_LOG", "info,rmcp=warn")
        .env("MULTILANG_SANDBOX_HTTP_TOKEN", token)
        .env(
            "MULTILANG_SANDBOX_POOL_SIZE",
            "python=2,bash=0,javascript=0,typescript=0,go=0,rust=0",
        )
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(server.stderr.take().ok_or("no stderr")?).lines();
    let mut address = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line
            .split("address=")
            .nth(1)
            .filter(|_| line.contains("serving MCP over HTTP"))
        {
            address = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let address = address.ok_or("the HTTP server did not say where it listens")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{address}/mcp")).auth_header(token),
    );
    let client = ().serve(transport).await?;
    let case = time_execute(
        &client,
        "stateless `print(1)` (python), pool hit, over streamable HTTP",
        runs,
        json!({"language": "python", "code": "print(1)"}),
        Some(("python", 2)),
    )
    .await;
    client.cancel().await?;
    server.kill().await?;
    case
}

/// A matplotlib line plot returned as PNG image content, in a data-science
/// session (matplotlib already imported, so this is the plot and its return).
async fn plot_case(client: &Client, runs: usize) -> Result<Case, BoxError> {
    let session = format!("bench-plot-{}", std::process::id());
    call(
        client,
        "sandbox_session",
        json!({"action": "create", "name": session, "language": "python", "ml": true}),
    )
    .await?;
    let plot = json!({"language": "python", "session": session,
        "code": "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])\nplt.show()"});
    let case = time_execute(
        client,
        "matplotlib plot returned as a PNG image, in an `ml` python session",
        runs,
        plot,
        None,
    )
    .await;
    call(client, "sandbox_session", json!({"action": "destroy", "name": session})).await?;
    case
}

async fn mcp_cases(runs: usize) -> Result<Vec<Case>, BoxError> {
    let python = json!({"language": "python", "code": "print(1)"});
    let pool = "python=2,bash=1,javascript=0,typescript=0,go=0,rust=0";
    let client = start_server(&[("MULTILANG_SANDBOX_POOL_SIZE", pool)]).await?;
    let mut cases = vec![
        time_execute(
            &client,
            "stateless `print(1)` (python), pool hit",
            runs,
            python.clone(),
            Some(("python", 2)),
        )
        .await?,
        time_execute(
            &client,
            "stateless `echo 1` (bash), pool hit",
            runs,
            json!({"language": "bash", "code": "echo 1"}),
            Some(("bash", 1)),
        )
        .await?,
    ];
    let session = format!("bench-{}", std::process::id());
    call(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": session, "language": "python"}),
    )
    .await?;
    let in_session = json!({"language": "python", "code": "print(1)", "session": session});
    cases.push(time_execute(&client, "`print(1)` in a python session", runs, in_session, None).await?);
    cases.extend(file_cases(&client, &session, runs).await?);
    cases.push(cancel_case(&client, &session, runs).await?);
    call(
        &client,
        "sandbox_session",
        json!({"action": "destroy", "name": session}),
    )
    .await?;
    cases.push(plot_case(&client, runs).await?);
    for package in ["requests", "pandas"] {
        cases.extend(package_cases(&client, package, runs.clamp(1, 3)).await?);
    }
    client.cancel().await?;
    cases.push(http_case(runs).await?);

    let cold = start_server(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await?;
    cases.push(
        time_execute(
            &cold,
            "stateless `print(1)` (python), pool miss (pool off)",
            runs,
            python,
            None,
        )
        .await?,
    );
    cold.cancel().await?;
    Ok(cases)
}

fn baseline_body(image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn remove(docker: &Docker, id: &str) -> Result<(), BoxError> {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(id, Some(options)).await?;
    Ok(())
}

async fn baselines(docker: &Docker, image: &str, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut create_start = Vec::new();
    let mut removals = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let id = docker
            .create_container(None::<CreateContainerOptions>, baseline_body(image))
            .await?
            .id;
        docker.start_container(&id, None::<StartContainerOptions>).await?;
        create_start.push(started.elapsed());
        let started = Instant::now();
        remove(docker, &id).await?;
        removals.push(started.elapsed());
    }
    let id = docker
        .create_container(None::<CreateContainerOptions>, baseline_body(image))
        .await?
        .id;
    docker.start_container(&id, None::<StartContainerOptions>).await?;
    let mut execs = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let exec = docker
            .create_exec(
                &id,
                CreateExecOptions::<String> {
                    cmd: Some(vec!["python3".into(), "-c".into(), "print(1)".into()]),
                    attach_stdout: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await? {
            while output.next().await.is_some() {}
        }
        execs.push(started.elapsed());
    }
    remove(docker, &id).await?;
    Ok(vec![
        Case {
            name: "baseline: container create + start".into(),
            samples: create_start,
        },
        Case {
            name: "baseline: container remove (force)".into(),
            samples: removals,
        },
        Case {
            name: "baseline: `docker exec python3 -c 'print(1)'`".into(),
            samples: execs,
        },
    ])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let runs: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(30);
    let config = multilang_sandbox::config::Config::from_env()?;
    let python_image = multilang_sandbox::images::tag_for(multilang_sandbox::runtime::Language::Python, &config);
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let version = docker.version().await?;

    let mut cases = mcp_cases(runs).await?;
    cases.extend(baselines(&docker, &python_image, runs).await?);

    let mut table = String::from("| case | runs | median ms | p95 ms |\n|---|---|---|---|\n");
    for case in &cases {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            case.name,
            case.samples.len(),
            ms(case.percentile(0.5)),
            ms(case.percentile(0.95))
        ));
    }
    println!("{table}");
    let report = format!(
        "# Benchmarks\n\nProduced by `cargo build --release && cargo run --release --example bench -- {runs}` on {} \
         ({} cores; Docker {} API {}). Every figure is wall time seen by the caller: \
         MCP cases through rmcp's client over stdio (HTTP where it says so) to the release binary (pool-hit cases wait \
         until the pool is refilled before each run, so each run is a hit); baselines through \
         the Docker API on the same engine in the same run.\n\n{table}",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default(),
    );
    std::fs::write("BENCHMARKS.md", report)?;
    eprintln!("wrote BENCHMARKS.md");
    Ok(())
}
