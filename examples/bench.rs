//! Latency benchmark, through a real MCP client against the real server and
//! real Docker, with the engine's own baselines measured in the same run.
//! Prints medians and p95 and writes them to `BENCHMARKS.md`.
//!
//! Two groups of cases, each run on its own and each rewriting only its own
//! part of `BENCHMARKS.md`: by default the latency cases; with `--egress`
//! only the egress cases (issue #14: session create with network grants,
//! HTTP through the egress proxy against a container with full network,
//! download throughput), which start a local origin container and a direct
//! container on the engine's default bridge and remove them afterwards.
//!
//! ```text
//! cargo build --release     # the server binary the benchmark starts
//! cargo run --release --example bench -- [RUNS]     # default 30 runs per case
//! cargo run --release --example bench -- --egress [RUNS]     # default 10 (each moves 100 MiB twice)
//! ```
//!
//! One file over ~450 lines: an example is one file (cargo would take a
//! second file beside it for another example).

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

/// `print(1)` in a session started with `background: true`, then collected
/// at once with `sandbox_job wait`: both calls, to compare with the plain
/// execute in the same session.
async fn job_case(client: &Client, session: &str, runs: usize) -> Result<Case, BoxError> {
    let background = json!({"language": "python", "session": session, "code": "print(1)", "background": true});
    let mut samples = Vec::with_capacity(runs + 1);
    for _ in 0..=runs {
        let started = Instant::now();
        let job = call(client, "sandbox_execute", background.clone()).await?;
        let handle = job["job"]["job"]
            .as_str()
            .ok_or_else(|| format!("no job handle: {job}"))?;
        let collected = call(
            client,
            "sandbox_job",
            json!({"action": "wait", "job": handle, "wait": 10}),
        )
        .await?;
        if collected["result"]["exit_code"] != 0 || collected["result"]["stdout"] != "1\n" {
            return Err(format!("the job did not print 1: {collected}").into());
        }
        samples.push(started.elapsed());
    }
    samples.remove(0); // warm-up
    Ok(Case {
        name: "`print(1)` in a python session with `background: true`, then `sandbox_job` `wait`".to_string(),
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
    cases.push(job_case(&client, &session, runs).await?);
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

/// The origin's port, and the size of the small and the large file it serves.
const ORIGIN_PORT: u16 = 8080;
const SMALL_BYTES: u64 = 1024;
const LARGE_BYTES: u64 = 100 * 1024 * 1024;
/// Fetches of the small file per execute; the first of each is discarded.
const FETCHES: usize = 50;
/// Where the egress group's section of `BENCHMARKS.md` starts.
const EGRESS_HEADING: &str = "## Egress";

/// The egress group's timings, its comparisons against the targets, and
/// the settings it ran with.
struct EgressReport {
    cases: Vec<Case>,
    comparisons: String,
    settings: String,
}

fn median(samples: &[Duration]) -> Duration {
    Case {
        name: String::new(),
        samples: samples.to_vec(),
    }
    .percentile(0.5)
}

/// Python that fetches `url` `count` times with urllib (a new connection
/// each), checks the size, and prints each fetch's seconds as JSON. It
/// refuses to run unless the proxy variables are set exactly when `proxied`.
fn fetch_code(url: &str, count: usize, expected: u64, proxied: bool) -> String {
    let proxied = if proxied { "True" } else { "False" };
    format!(
        r#"
import json, time, urllib.request
if bool(urllib.request.getproxies().get("http")) != {proxied}:
    raise RuntimeError("unexpected proxy settings: %r" % urllib.request.getproxies())
times = []
for _ in range({count}):
    started = time.perf_counter()
    size = 0
    with urllib.request.urlopen("{url}", timeout=60) as response:
        while chunk := response.read(1 << 20):
            size += len(chunk)
    times.append(time.perf_counter() - started)
    if size != {expected}:
        raise RuntimeError("got %d bytes" % size)
print(json.dumps(times))
"#
    )
}

fn seconds(stdout: &str) -> Result<Vec<Duration>, BoxError> {
    let times: Vec<f64> = serde_json::from_str(stdout.trim()).map_err(|error| format!("{error}: {stdout}"))?;
    Ok(times.into_iter().map(Duration::from_secs_f64).collect())
}

/// Runs `cmd` in container `id` and returns its stdout (an error unless it
/// exits 0).
async fn exec_output(docker: &Docker, id: &str, cmd: Vec<String>) -> Result<String, BoxError> {
    use bollard::container::LogOutput;
    let exec = docker
        .create_exec(
            id,
            CreateExecOptions::<String> {
                cmd: Some(cmd),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await? {
        while let Some(item) = output.next().await {
            match item? {
                LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                _ => {}
            }
        }
    }
    let exit_code = docker.inspect_exec(&exec.id).await?.exit_code;
    if exit_code != Some(0) {
        return Err(format!("exec exited {exit_code:?}: {}", String::from_utf8_lossy(&stderr)).into());
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Creates and starts a container of `image` on the engine's default
/// bridge (full network), noting its id in `made` first so the caller
/// removes it whatever happens next.
async fn start_on_bridge(
    docker: &Docker,
    image: &str,
    name: &str,
    cmd: &[&str],
    host_config: HostConfig,
    made: &mut Made,
) -> Result<String, BoxError> {
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(cmd.iter().map(|part| part.to_string()).collect()),
        labels: Some([("multilang-sandbox.bench".to_string(), "egress".to_string())].into()),
        host_config: Some(host_config),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let id = docker.create_container(Some(options), body).await?.id;
    made.containers.push(id.clone());
    docker.start_container(&id, None::<StartContainerOptions>).await?;
    Ok(id)
}

/// The origin's address on the default bridge.
async fn bridge_address(docker: &Docker, id: &str) -> Result<String, BoxError> {
    let inspected = docker.inspect_container(id, None).await?;
    inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .and_then(|mut networks| networks.remove("bridge"))
        .and_then(|endpoint| endpoint.ip_address)
        .filter(|address| !address.is_empty())
        .ok_or_else(|| "the origin has no address on the default bridge".into())
}

/// The egress group (`--egress`): a local origin (the python sandbox image
/// running `python3 -m http.server` on the engine's default bridge) reached
/// from python sessions with grants through the egress proxy, against the
/// same code in a container of the same image on the default bridge with
/// full network and no proxy, and the engine's cost of a network per
/// session. Every container, network and session it makes is removed, on
/// error too.
async fn egress_group(docker: &Docker, image: &str, runs: usize) -> Result<EgressReport, BoxError> {
    let mut made = Made::default();
    let report = egress_with_containers(docker, image, runs, &mut made).await;
    for id in made.containers {
        if let Err(error) = remove(docker, &id).await {
            eprintln!("could not remove container {id}: {error}");
        }
    }
    for name in made.networks {
        if let Err(error) = docker.remove_network(&name).await {
            eprintln!("could not remove network {name}: {error}");
        }
    }
    report
}

/// What the egress group made on the engine, to remove whatever happens.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    networks: Vec<String>,
}

/// The engine's own cost of what a session with grants adds: an internal
/// network (no host address on its bridge, as the server makes them)
/// created and a running container connected to it, then disconnected
/// and the network removed.
async fn network_baselines(
    docker: &Docker,
    container: &str,
    runs: usize,
    made: &mut Made,
) -> Result<Vec<Case>, BoxError> {
    use bollard::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let name = format!("mls-bench-network-{}-{run}", std::process::id());
        made.networks.push(name.clone());
        let started = Instant::now();
        docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                internal: Some(true),
                options: Some([("com.docker.network.bridge.inhibit_ipv4".to_string(), "true".to_string())].into()),
                labels: Some([("multilang-sandbox.bench".to_string(), "egress".to_string())].into()),
                ..Default::default()
            })
            .await?;
        let connect = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: None,
        };
        docker.connect_network(&name, connect).await?;
        opens.push(started.elapsed());
        let started = Instant::now();
        let disconnect = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        docker.disconnect_network(&name, disconnect).await?;
        docker.remove_network(&name).await?;
        closes.push(started.elapsed());
        made.networks.retain(|held| held != &name);
    }
    Ok(vec![
        Case {
            name: "baseline: internal network create + connect a running container".into(),
            samples: opens,
        },
        Case {
            name: "baseline: disconnect that container + network remove".into(),
            samples: closes,
        },
    ])
}

async fn egress_with_containers(
    docker: &Docker,
    image: &str,
    runs: usize,
    made: &mut Made,
) -> Result<EgressReport, BoxError> {
    let stamp = std::process::id();
    let serve = format!(
        "mkdir -p /tmp/site && cd /tmp/site && head -c {SMALL_BYTES} /dev/zero > small \
         && head -c {LARGE_BYTES} /dev/zero > large && exec python3 -m http.server {ORIGIN_PORT}"
    );
    let origin_id = start_on_bridge(
        docker,
        image,
        &format!("mls-bench-origin-{stamp}"),
        &["sh", "-c", &serve],
        HostConfig::default(),
        made,
    )
    .await?;
    let origin = bridge_address(docker, &origin_id).await?;
    // The sessions' own limits (1 CPU, 512 MiB), so the proxy is the difference.
    let limits = HostConfig {
        nano_cpus: Some(1_000_000_000),
        memory: Some(512 * 1024 * 1024),
        ..Default::default()
    };
    let direct = start_on_bridge(
        docker,
        image,
        &format!("mls-bench-direct-{stamp}"),
        &["sleep", "3600"],
        limits,
        made,
    )
    .await?;
    let small = format!("http://{origin}:{ORIGIN_PORT}/small");
    let large = format!("http://{origin}:{ORIGIN_PORT}/large");
    // Ready once the small file is served (the large one is written first).
    let ready = format!(
        "import time, urllib.request\nfor _ in range(300):\n    try:\n        urllib.request.urlopen('{small}', timeout=2).read()\n        break\n    except OSError:\n        time.sleep(0.1)\nelse:\n    raise RuntimeError('the origin never answered')\n"
    );
    exec_output(docker, &direct, vec!["python3".into(), "-c".into(), ready]).await?;

    let allow = format!("{origin}:{ORIGIN_PORT}");
    // Each run downloads the large file once, plus a warm-up, plus the small fetches.
    let budget_mb = ((runs as u64 + 2) * LARGE_BYTES / (1024 * 1024) + 1024).to_string();
    let env = [
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_EGRESS_ALLOW", allow.as_str()),
        ("MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE", origin.as_str()),
        ("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", budget_mb.as_str()),
    ];
    let settings = format!(
        "`MULTILANG_SANDBOX_POOL_SIZE=0`, `MULTILANG_SANDBOX_EGRESS_ALLOW=<origin>:{ORIGIN_PORT}`, \
         `MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE=<origin>`, `MULTILANG_SANDBOX_EGRESS_BUDGET_MB={budget_mb}`"
    );
    let client = start_server(&env).await?;
    let mut live = Vec::new();
    let report = egress_cases(&client, docker, &direct, &allow, [&small, &large], runs, &mut live).await;
    for name in live {
        if let Err(error) = call(&client, "sandbox_session", json!({"action": "destroy", "name": name})).await {
            eprintln!("could not destroy session {name}: {error}");
        }
    }
    client.cancel().await?;
    let (mut cases, comparisons) = report?;
    cases.extend(network_baselines(docker, &direct, runs, made).await?);
    Ok(EgressReport {
        cases,
        comparisons,
        settings,
    })
}

/// Creates a python session (with `network` when given), noting it in
/// `live` until it is destroyed; returns how long the create took.
async fn create_session(
    client: &Client,
    name: &str,
    network: Option<&str>,
    live: &mut Vec<String>,
) -> Result<Duration, BoxError> {
    let mut arguments = json!({"action": "create", "name": name, "language": "python"});
    if let Some(host) = network {
        arguments["network"] = json!([host]);
    }
    live.push(name.to_string());
    let started = Instant::now();
    call(client, "sandbox_session", arguments).await?;
    Ok(started.elapsed())
}

async fn destroy_session(client: &Client, name: &str, live: &mut Vec<String>) -> Result<Duration, BoxError> {
    let started = Instant::now();
    call(client, "sandbox_session", json!({"action": "destroy", "name": name})).await?;
    let elapsed = started.elapsed();
    live.retain(|held| held != name);
    Ok(elapsed)
}

async fn egress_cases(
    client: &Client,
    docker: &Docker,
    direct: &str,
    allow: &str,
    [small, large]: [&str; 2],
    runs: usize,
    live: &mut Vec<String>,
) -> Result<(Vec<Case>, String), BoxError> {
    let stamp = std::process::id();
    // 1. Session create and destroy, with grants and without, alternating;
    // the warm-up pair starts the egress proxy.
    let (mut creates, mut destroys) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for run in 0..=runs {
        for (side, network) in [None, Some(allow)].into_iter().enumerate() {
            let name = format!("bench-egress-{stamp}-{run}-{side}");
            let created = create_session(client, &name, network, live).await?;
            let destroyed = destroy_session(client, &name, live).await?;
            if run > 0 {
                creates[side].push(created);
                destroys[side].push(destroyed);
            }
        }
    }

    // 2. and 3. One session with grants against the direct container.
    let session = format!("bench-egress-{stamp}-fetch");
    create_session(client, &session, Some(allow), live).await?;
    let in_session =
        |code: String| json!({"language": "python", "session": session, "code": code, "timeout_ms": 300000});
    let in_direct = |code: String| vec!["python3".to_string(), "-c".to_string(), code];
    let (mut proxied_gets, mut direct_gets) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let output = execute(client, in_session(fetch_code(small, FETCHES + 1, SMALL_BYTES, true))).await?;
        proxied_gets.extend(
            seconds(output["stdout"].as_str().unwrap_or_default())?
                .into_iter()
                .skip(1),
        );
        let output = exec_output(
            docker,
            direct,
            in_direct(fetch_code(small, FETCHES + 1, SMALL_BYTES, false)),
        )
        .await?;
        direct_gets.extend(seconds(&output)?.into_iter().skip(1));
    }
    let (mut proxied_downloads, mut direct_downloads) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let output = execute(client, in_session(fetch_code(large, 1, LARGE_BYTES, true))).await?;
        let proxied = seconds(output["stdout"].as_str().unwrap_or_default())?;
        let output = exec_output(docker, direct, in_direct(fetch_code(large, 1, LARGE_BYTES, false))).await?;
        let direct = seconds(&output)?;
        if run > 0 {
            proxied_downloads.extend(proxied);
            direct_downloads.extend(direct);
        }
    }
    // The session's bytes went through the proxy: its totals count them.
    let got = call(client, "sandbox_session", json!({"action": "get", "name": session})).await?;
    let down = got["sessions"][0]["egress"]["bytes_down"].as_u64().unwrap_or(0);
    if down < (runs as u64 + 1) * LARGE_BYTES {
        return Err(format!("the proxy counted only {down} bytes down: {got}").into());
    }
    destroy_session(client, &session, live).await?;

    let ms_of = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let mib_s = |duration: Duration| LARGE_BYTES as f64 / (1024.0 * 1024.0) / duration.as_secs_f64();
    let met = |ok: bool| if ok { "yes" } else { "no" };
    let create_ratio = ms_of(median(&creates[1])) / ms_of(median(&creates[0]));
    let get_overhead = ms_of(median(&proxied_gets)) - ms_of(median(&direct_gets));
    let throughput_ratio = mib_s(median(&proxied_downloads)) / mib_s(median(&direct_downloads));
    let comparisons = format!(
        "| comparison (medians) | through egress | baseline | result | target | met |\n|---|---|---|---|---|---|\n\
         | session create, with grants vs without | {} ms | {} ms | {create_ratio:.2}× | ≤ 1.2× | {} |\n\
         | HTTP GET of 1 KiB, through the proxy vs direct | {} ms | {} ms | {get_overhead:+.2} ms | ≤ +2 ms | {} |\n\
         | 100 MiB download throughput, through the proxy vs direct | {:.0} MiB/s | {:.0} MiB/s | {throughput_ratio:.2}× | ≥ 0.8× | {} |\n",
        ms(median(&creates[1])),
        ms(median(&creates[0])),
        met(create_ratio <= 1.2),
        ms(median(&proxied_gets)),
        ms(median(&direct_gets)),
        met(get_overhead <= 2.0),
        mib_s(median(&proxied_downloads)),
        mib_s(median(&direct_downloads)),
        met(throughput_ratio >= 0.8),
    );
    let [create_plain, create_granted] = creates;
    let [destroy_plain, destroy_granted] = destroys;
    let case = |name: &str, samples: Vec<Duration>| Case {
        name: name.to_string(),
        samples,
    };
    let granted = format!("with grants (`network: [\"<origin>:{ORIGIN_PORT}\"]`)");
    Ok((
        vec![
            case("session create (python), without network", create_plain),
            case(&format!("session create (python), {granted}"), create_granted),
            case("session destroy (python), without network", destroy_plain),
            case(&format!("session destroy (python), {granted}"), destroy_granted),
            case(
                "HTTP GET of 1 KiB from the origin, direct from a container on the default bridge (per fetch)",
                direct_gets,
            ),
            case(
                "HTTP GET of 1 KiB from the origin, through the egress proxy from a session with grants (per fetch)",
                proxied_gets,
            ),
            case(
                "download of 100 MiB from the origin, direct from a container on the default bridge",
                direct_downloads,
            ),
            case(
                "download of 100 MiB from the origin, through the egress proxy from a session with grants",
                proxied_downloads,
            ),
        ],
        comparisons,
    ))
}

fn table(cases: &[Case], runs: &str) -> String {
    let mut table = format!("| case | {runs} | median ms | p95 ms |\n|---|---|---|---|\n");
    for case in cases {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            case.name,
            case.samples.len(),
            ms(case.percentile(0.5)),
            ms(case.percentile(0.95))
        ));
    }
    table
}

/// Writes one group's part of `BENCHMARKS.md` and keeps the other's: the
/// egress group owns everything from [`EGRESS_HEADING`] on, the latency
/// group everything before it.
fn write_report(egress: bool, text: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string("BENCHMARKS.md").unwrap_or_default();
    let split = existing.find(EGRESS_HEADING).unwrap_or(existing.len());
    let (head, tail) = existing.split_at(split);
    let report = if egress {
        let head = head.trim_end();
        let head = if head.is_empty() { "# Benchmarks" } else { head };
        format!("{head}\n\n{}\n", text.trim_end())
    } else if tail.is_empty() {
        format!("{}\n", text.trim_end())
    } else {
        format!("{}\n\n{}\n", text.trim_end(), tail.trim_end())
    };
    std::fs::write("BENCHMARKS.md", report)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut egress = false;
    let mut runs = None;
    for argument in std::env::args().skip(1) {
        match argument.as_str() {
            "--egress" => egress = true,
            count => runs = Some(count.parse::<usize>()?),
        }
    }
    let runs = runs.unwrap_or(if egress { 10 } else { 30 });
    let config = multilang_sandbox::config::Config::from_env()?;
    let python_image = multilang_sandbox::images::tag_for(multilang_sandbox::runtime::Language::Python, &config);
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let version = docker.version().await?;
    let machine = format!(
        "{} ({} cores; Docker {} API {})",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default(),
    );

    if egress {
        let figures = egress_group(&docker, &python_image, runs).await?;
        let timings = table(&figures.cases, "samples");
        println!("{timings}\n{}", figures.comparisons);
        let report = format!(
            "{EGRESS_HEADING}\n\nProduced by `cargo build --release && cargo run --release --example bench -- --egress {runs}` \
             on {machine}, with the server started with {}. The origin is a container of the python sandbox image \
             running `python3 -m http.server` on the engine's default bridge, serving a {SMALL_BYTES}-byte and a \
             {LARGE_BYTES}-byte file of zeros, allowed by its address. Through egress: python sessions created with \
             `network: [\"<origin>:{ORIGIN_PORT}\"]`, whose urllib goes through the egress proxy (`HTTP_PROXY`). \
             Direct: a container of the same image on the default bridge with full network, no proxy variables \
             and the sessions' limits (1 CPU, 512 MiB), running the same code with `docker exec`.\n\n\
             Session create and destroy are wall time through rmcp's client over stdio to the release binary, \
             one session with grants and one without in turn ({runs} runs each, after one warm-up pair that \
             also starts the proxy; each destroyed right after its create). A session with grants takes one of \
             the two sandbox networks the server keeps ready (made at its start, since `egress.allow` names the \
             origin, and made again in the background after each is taken). HTTP figures are measured inside \
             the sandbox with `time.perf_counter` around each urllib fetch (a new connection each, on both \
             sides, body read to the end): {FETCHES} fetches of 1 KiB per execute after one discarded, \
             {runs} executes per side taken in turn; one 100 MiB download per execute read in 1 MiB chunks \
             and discarded, {runs} per side in turn after one warm-up each. The network baselines are measured through \
             the Docker API on the same engine in the same run, with the direct container as the one connected.\n\n{timings}\n{}",
            figures.settings, figures.comparisons,
        );
        write_report(true, &report)?;
        eprintln!("wrote the egress section of BENCHMARKS.md");
        return Ok(());
    }

    let mut cases = mcp_cases(runs).await?;
    cases.extend(baselines(&docker, &python_image, runs).await?);
    let table = table(&cases, "runs");
    println!("{table}");
    let report = format!(
        "# Benchmarks\n\nProduced by `cargo build --release && cargo run --release --example bench -- {runs}` on {machine}. \
         Every figure is wall time seen by the caller: \
         MCP cases through rmcp's client over stdio (HTTP where it says so) to the release binary (pool-hit cases wait \
         until the pool is refilled before each run, so each run is a hit); baselines through \
         the Docker API on the same engine in the same run. The `background: true` case is both calls, the execute \
         that returns the job's handle and the `sandbox_job` `wait` that collects it, in the same session as the \
         plain `print(1)` above.\n\n{table}",
    );
    write_report(false, &report)?;
    eprintln!("wrote BENCHMARKS.md");
    Ok(())
}
