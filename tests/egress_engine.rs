//! The egress mechanism on the real engine, below the tools (issue #14's
//! first slice; the tools and the server's side come next): the proxy image
//! on a session-style internal network, a sandbox-style container (every
//! capability dropped) reaching a local origin only through it, and the
//! ways around it that must fail. The test plays the server's side of the
//! proxy's protocol over the container's attached stdin/stdout.

mod common;

use common::origin::{DOCKER_LIMIT, docker};
use common::require_docker;
use multilang_sandbox::config::Config;
use multilang_sandbox::docker::DockerEngine;
use multilang_sandbox::images::{self, EGRESS};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Removes what the test made (containers first, then networks) even when
/// an assertion fails.
struct Made {
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", container]).output();
        }
        for network in &self.networks {
            let _ = Command::new("docker").args(["network", "rm", network]).output();
        }
    }
}

fn address_on(container: &str, network: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
}

/// Runs `code` with python3 in a sandbox-like container on `network`: no
/// capabilities, non-root, read-only root. Returns stdout and stderr.
fn sandbox_python(image: &str, network: &str, env: &[(&str, &str)], code: &str) -> (String, String) {
    let mut args: Vec<String> = [
        "run",
        "--rm",
        "--network",
        network,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--user",
        "1000:1000",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    for (key, value) in env {
        args.push("-e".into());
        args.push(format!("{key}={value}"));
    }
    args.extend([image.to_string(), "python3".into(), "-c".into(), code.into()]);
    let output = Command::new("timeout")
        .arg(DOCKER_LIMIT.as_secs().to_string())
        .arg("docker")
        .args(&args)
        .output()
        .expect("cannot run the docker CLI");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// Multi-threaded: the test's docker commands block their thread while the
// task playing the server answers the proxy on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_proxy_is_reachable_and_it_enforces_the_servers_decisions() {
    require_docker().await;
    let config = Config::from_env().expect("configuration");
    let proxy_image = images::tag(&EGRESS, &config);
    let python_image = images::tag_for(multilang_sandbox::runtime::Language::Python, &config);
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let inside = format!("mls-egress-test-in-{id}");
    let outside = format!("mls-egress-test-out-{id}");
    let origin = format!("mls-egress-test-origin-{id}");
    let proxy = format!("mls-egress-test-proxy-{id}");
    let mut made = Made {
        containers: Vec::new(),
        networks: Vec::new(),
    };
    // The session's network, as the server makes it: internal, and the
    // bridge owns no host address.
    let engine = DockerEngine::new(&std::env::temp_dir());
    let test_label = HashMap::from([("multilang-sandbox.test".to_string(), format!("egress-{id}"))]);
    made.networks.push(inside.clone());
    let network = engine
        .create_isolated_network(&inside, &test_label, None)
        .await
        .expect("create the session network");
    assert_eq!(network.name, inside);
    assert!(network.subnet.is_some(), "{network:?}");
    assert_eq!(
        docker(&[
            "network",
            "inspect",
            "-f",
            "{{.Internal}} {{index .Options \"com.docker.network.bridge.inhibit_ipv4\"}}",
            &inside,
        ]),
        "true true"
    );
    // Where the local origin lives (stands in for the outside world).
    docker(&[
        "network",
        "create",
        "--label",
        "multilang-sandbox.test=egress",
        &outside,
    ]);
    made.networks.push(outside.clone());
    made.containers.push(origin.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &origin,
        "--network",
        &outside,
        "--label",
        "multilang-sandbox.test=egress",
        &python_image,
        "sh",
        "-c",
        "mkdir -p /tmp/site && echo origin-says-hello > /tmp/site/index.html && cd /tmp/site && exec python3 -m http.server 8080",
    ]);
    let outside_subnet = docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        &outside,
    ]);
    let origin_address = address_on(&origin, &outside);

    // The proxy: attached stdin/stdout is its channel to "the server" (us).
    made.containers.push(proxy.clone());
    let mut proxy_process = tokio::process::Command::new("docker")
        .args([
            "run",
            "-i",
            "--rm",
            "--name",
            &proxy,
            "--network",
            &outside,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--label",
            "multilang-sandbox.test=egress",
            &proxy_image,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the proxy container");
    let mut to_proxy = proxy_process.stdin.take().expect("proxy stdin");
    let mut from_proxy = BufReader::new(proxy_process.stdout.take().expect("proxy stdout")).lines();
    let ready: Value = serde_json::from_str(
        &tokio::time::timeout(DOCKER_LIMIT, from_proxy.next_line())
            .await
            .expect("the proxy is ready in time")
            .expect("proxy stdout")
            .expect("a ready line"),
    )
    .expect("ready is JSON");
    assert_eq!(ready["type"], "ready", "{ready}");
    engine
        .connect_to_network(&inside, &proxy, None)
        .await
        .expect("connect the proxy to the session network");
    let proxy_address = engine
        .address_on_network(&proxy, &inside)
        .await
        .expect("inspect the proxy")
        .expect("the proxy has an address on the session network");
    assert_eq!(proxy_address, address_on(&proxy, &inside));
    let configure = json!({"type": "configure", "allow_private": [outside_subnet], "ask_timeout_ms": 10_000});
    to_proxy
        .write_all(format!("{configure}\n").as_bytes())
        .await
        .expect("configure the proxy");

    // The server's side: allow the origin's name, refuse everything else,
    // and collect every `closed` report.
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<Value>();
    let (asks_tx, mut asks_rx) = mpsc::unbounded_channel::<Value>();
    let allowed_host = origin.clone();
    let server = tokio::spawn(async move {
        while let Ok(Some(line)) = from_proxy.next_line().await {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match message["type"].as_str() {
                Some("ask") => {
                    let allow = message["host"] == allowed_host.as_str();
                    let decision = if allow {
                        json!({"type": "decision", "id": message["id"], "allow": true, "session": "test", "budget_bytes": 1_000_000})
                    } else {
                        json!({"type": "decision", "id": message["id"], "allow": false, "session": "test", "reason": "not granted to this session"})
                    };
                    let _ = asks_tx.send(message);
                    if to_proxy.write_all(format!("{decision}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
                Some("closed") => {
                    let _ = closed_tx.send(message);
                }
                _ => {}
            }
        }
    });

    let proxy_url = format!("http://{proxy_address}:3128");
    let through_proxy = [("HTTP_PROXY", proxy_url.as_str()), ("http_proxy", proxy_url.as_str())];
    // Granted: plain HTTP through the proxy, and a CONNECT tunnel.
    let fetch = format!(
        r#"
import http.client, urllib.error, urllib.request
try:
    print(urllib.request.urlopen("http://{origin}:8080/", timeout=20).read().decode().strip())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode().strip())
tunnel = http.client.HTTPConnection("{proxy_address}", 3128, timeout=20)
tunnel.set_tunnel("{origin}", 8080)
tunnel.request("GET", "/")
print("tunnel", tunnel.getresponse().read().decode().strip())
"#
    );
    let (stdout, stderr) = sandbox_python(&python_image, &inside, &through_proxy, &fetch);
    assert_eq!(
        stdout, "origin-says-hello\ntunnel origin-says-hello\n",
        "granted fetches failed: {stderr}"
    );

    // Not granted: a 403 with the reason, and the proxy never connected
    // (nor looked the name up: the host does not exist at all).
    let refused = r#"
import urllib.request, urllib.error
try:
    urllib.request.urlopen("http://not-granted.invalid:8080/", timeout=20)
    print("reached")
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode().strip())
"#;
    let (stdout, stderr) = sandbox_python(&python_image, &inside, &through_proxy, refused);
    assert!(
        stdout.starts_with("403 ") && stdout.contains("not granted to this session"),
        "a host outside the grants was not refused: {stdout} {stderr}"
    );

    // The ways around the proxy: a direct connection to the origin, the
    // host's bridge addresses, the engine's resolver for an outside name
    // (by name and by a raw UDP query), and the proxy variables unset.
    let gateway = docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        &outside,
    ]);
    // A service on the host, listening on every address: reaching it at
    // any of the host's bridge addresses would be a way out.
    let host_service = std::net::TcpListener::bind("0.0.0.0:0").expect("a host port");
    let host_port = host_service.local_addr().expect("its address").port();
    // The same probes, for `name` (an outside name for the sandbox).
    let probes = |name: &str| {
        format!(
            r#"
import socket, urllib.request
def attempt(what, action):
    try:
        action()
        print(what, "REACHED")
    except ConnectionRefusedError:
        # A refusal means the packets got there.
        print(what, "REACHED (refused)")
    except Exception as error:
        print(what, "blocked", type(error).__name__)
def tcp(address, port):
    return lambda: socket.create_connection((address, port), timeout=3).close()
attempt("origin", tcp("{origin_address}", 8080))
attempt("gateway", tcp("{gateway}", {host_port}))
attempt("docker0", tcp("172.17.0.1", {host_port}))
def lookup():
    socket.getaddrinfo("{name}", 443)
attempt("lookup", lookup)
def raw_dns():
    labels = b"".join(bytes([len(part)]) + part.encode() for part in "{name}".split("."))
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x00\x01\x00\x01"
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(3)
    udp.sendto(query, ("127.0.0.11", 53))
    answer = udp.recv(512)
    if answer[3] & 15 != 0 or answer[7] == 0:
        raise OSError("no answer")
attempt("raw dns", raw_dns)
attempt("no proxy", lambda: urllib.request.urlopen("http://{origin_address}:8080/", timeout=3))
"#
        )
    };
    // Control: from the origin's own network every probe gets through, so
    // a "blocked" below is the network's doing, not a broken probe.
    let (stdout, stderr) = sandbox_python(&python_image, &outside, &[], &probes(&origin));
    for what in ["origin", "gateway", "lookup", "raw dns", "no proxy"] {
        assert!(
            stdout.contains(&format!("{what} REACHED")),
            "the control probe {what} failed:\n{stdout}\n{stderr}"
        );
    }
    let (stdout, stderr) = sandbox_python(&python_image, &inside, &[], &probes("example.com"));
    for what in ["origin", "gateway", "docker0", "lookup", "raw dns", "no proxy"] {
        assert!(
            stdout.contains(&format!("{what} blocked")),
            "{what} was not blocked:\n{stdout}\n{stderr}"
        );
    }
    assert!(!stdout.contains("REACHED"), "{stdout}");
    drop(host_service);

    // What the server was asked and told: the granted host three times
    // (plain, tunnel) with its bytes, the refused one never connected.
    let mut reports = Vec::new();
    while reports.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), closed_rx.recv()).await {
            Ok(Some(report)) => reports.push(report),
            _ => break,
        }
    }
    let granted: Vec<&Value> = reports
        .iter()
        .filter(|report| report["host"] == origin.as_str())
        .collect();
    assert_eq!(granted.len(), 2, "{reports:?}");
    for report in &granted {
        assert_eq!(report["allowed"], true, "{report}");
        assert!(report["bytes_down"].as_u64().unwrap_or(0) > 0, "{report}");
    }
    let denied = reports
        .iter()
        .find(|report| report["host"] == "not-granted.invalid")
        .expect("the refused connection is reported");
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["address"], Value::Null, "refused before any lookup: {denied}");
    let mut clients = Vec::new();
    while let Ok(ask) = asks_rx.try_recv() {
        clients.push(ask["client"].as_str().unwrap_or_default().to_string());
        assert_eq!(ask["via"], proxy_address.as_str(), "{ask}");
    }
    assert_eq!(clients.len(), 3, "{clients:?}");

    // Removal as the server will do it: containers first, then the network
    // (found by its label).
    for container in made.containers.drain(..) {
        docker(&["rm", "-f", &container]);
    }
    let label = format!("egress-{id}");
    let labelled = engine
        .networks_labelled(&[("multilang-sandbox.test", &label)])
        .await
        .expect("list networks");
    assert_eq!(labelled, std::slice::from_ref(&inside));
    engine
        .remove_network(&inside)
        .await
        .expect("remove the session network");
    engine.remove_network(&inside).await.expect("removing it again is fine");
    assert!(
        engine
            .networks_labelled(&[("multilang-sandbox.test", &label)])
            .await
            .expect("list networks")
            .is_empty()
    );
    drop(made);
    let _ = tokio::time::timeout(Duration::from_secs(20), proxy_process.wait()).await;
    server.abort();
}
