//! The egress group (`--egress`, issue #14): session create with network
//! grants, HTTP through the egress proxy against a container with full
//! network, download throughput. It starts a local origin container and a
//! direct container on the engine's default bridge and removes them
//! afterwards.

use crate::engine::{LABEL, Made, exec_output};
use crate::harness::{BoxError, Case, Client, Sessions, call, engine, execute, median, ms, start_server, stop_server};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::StartContainerOptions;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The origin's port, and the size of the small and the large file it serves.
pub const ORIGIN_PORT: u16 = 8080;
pub const SMALL_BYTES: u64 = 1024;
pub const LARGE_BYTES: u64 = 100 * 1024 * 1024;
/// Fetches of the small file per execute; the first of each is discarded.
pub const FETCHES: usize = 50;
/// Where the egress group's section of `BENCHMARKS.md` starts.
pub const EGRESS_HEADING: &str = "## Egress";

/// The egress group's timings, its comparisons against the targets, and
/// the settings it ran with.
pub struct EgressReport {
    pub cases: Vec<Case>,
    pub comparisons: String,
    pub settings: String,
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
        labels: Some([(LABEL.to_string(), "egress".to_string())].into()),
        host_config: Some(host_config),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let id = engine("create a container", docker.create_container(Some(options), body))
        .await?
        .id;
    made.containers.push(id.clone());
    engine(
        "start a container",
        docker.start_container(&id, None::<StartContainerOptions>),
    )
    .await?;
    Ok(id)
}

/// The origin's address on the default bridge.
async fn bridge_address(docker: &Docker, id: &str) -> Result<String, BoxError> {
    let inspected = engine("inspect the origin", docker.inspect_container(id, None)).await?;
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
pub async fn egress_group(docker: &Docker, image: &str, runs: usize) -> Result<EgressReport, BoxError> {
    let mut made = Made::default();
    let report = egress_with_containers(docker, image, runs, &mut made).await;
    made.clean(docker).await;
    report
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
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            internal: Some(true),
            options: Some([("com.docker.network.bridge.inhibit_ipv4".to_string(), "true".to_string())].into()),
            labels: Some([(LABEL.to_string(), "egress".to_string())].into()),
            ..Default::default()
        };
        engine("create a network", docker.create_network(request)).await?;
        let connect = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: None,
        };
        engine("connect a network", docker.connect_network(&name, connect)).await?;
        opens.push(started.elapsed());
        let started = Instant::now();
        let disconnect = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        engine("disconnect a network", docker.disconnect_network(&name, disconnect)).await?;
        engine("remove a network", docker.remove_network(&name)).await?;
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
    let mut sessions = Sessions::new(&client);
    let report = egress_cases(&client, docker, &direct, &allow, [&small, &large], runs, &mut sessions).await;
    sessions.close().await;
    let stopped = stop_server(client).await;
    let (mut cases, comparisons) = report?;
    stopped?;
    cases.extend(network_baselines(docker, &direct, runs, made).await?);
    Ok(EgressReport {
        cases,
        comparisons,
        settings,
    })
}

async fn egress_cases(
    client: &Client,
    docker: &Docker,
    direct: &str,
    allow: &str,
    [small, large]: [&str; 2],
    runs: usize,
    sessions: &mut Sessions<'_>,
) -> Result<(Vec<Case>, String), BoxError> {
    let stamp = std::process::id();
    // 1. Session create and destroy, with grants and without, alternating;
    // the warm-up pair starts the egress proxy.
    let (mut creates, mut destroys) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for run in 0..=runs {
        for (side, network) in [None, Some(allow)].into_iter().enumerate() {
            let name = format!("bench-egress-{stamp}-{run}-{side}");
            let created = sessions.create(python_session(&name, network)).await?;
            let destroyed = sessions.destroy(&name).await?;
            if run > 0 {
                creates[side].push(created);
                destroys[side].push(destroyed);
            }
        }
    }

    // 2. and 3. One session with grants against the direct container.
    let session = format!("bench-egress-{stamp}-fetch");
    sessions.create(python_session(&session, Some(allow))).await?;
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
    sessions.destroy(&session).await?;

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

/// `create` arguments for a python session, with `network` when given.
fn python_session(name: &str, network: Option<&str>) -> Value {
    let mut arguments = json!({"name": name, "language": "python"});
    if let Some(host) = network {
        arguments["network"] = json!([host]);
    }
    arguments
}
