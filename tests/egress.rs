//! Network egress through the tools (issue #14), with real Docker and the
//! real binary: a local origin on the engine's bridge stands in for the
//! outside (the user allows it with `egress.allow_private`), sessions and
//! stateless executes reach it only through the egress proxy and only when
//! granted, and the ways around the proxy fail.

mod common;

use common::origin::{Origin, docker, note, pip_index_hosts, python_fetch, stdout};
use common::{
    TestSession, eventually, execute_with, instance_label, kill_nine, require_docker, session, session_network,
    start_server_process, tool_error_text, unique_name,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Python that tries the ways around the proxy; prints one line each.
const BYPASSES: &str = r#"
import os, socket
def attempt(name, action):
    try:
        action()
        print(name, "REACHED")
    except Exception as e:
        print(name, "blocked", type(e).__name__)
def direct():
    socket.create_connection((os.environ["ORIGIN"], 8080), timeout=3).close()
def lookup():
    socket.getaddrinfo("example.com", 443)
def raw_dns():
    for server in [line.split()[1] for line in open("/etc/resolv.conf") if line.startswith("nameserver")]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
        s.sendto(query, (server, 53))
        answer = s.recv(512)
        if answer[3] & 0x0F == 0 and int.from_bytes(answer[6:8], "big") > 0:
            return
        raise OSError("no answer for an outside name from " + server)
    raise OSError("no resolver")
def udp_out():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"x", (os.environ["ORIGIN"], 8080))
    s.recv(10)
def ipv6():
    socket.create_connection(("2001:db8::1", 80), timeout=3).close()
attempt("direct", direct)
attempt("lookup", lookup)
attempt("raw_dns", raw_dns)
attempt("udp", udp_out)
attempt("ipv6", ipv6)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_reach_granted_hosts_through_the_proxy_and_nothing_else() {
    require_docker().await;
    let origin = Origin::start();
    let allow = origin.allow();
    let env = origin.server_env(&allow, &[]);
    let (client, pid) = start_server_process(&env).await;

    // A host outside egress.allow cannot be requested.
    let refused = tool_error_text(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": unique_name("egress-no"), "language": "python",
               "network": ["example.org"]}),
    )
    .await;
    assert!(refused.contains("egress.allow"), "{refused}");

    let granted = TestSession::adopt(unique_name("egress-yes"));
    let created = session(
        &client,
        json!({"action": "create", "name": granted, "language": "python", "network": [allow]}),
    )
    .await;
    assert_eq!(created["sessions"][0]["network"], json!([allow]), "{created}");
    let plain = TestSession::adopt(unique_name("egress-none"));
    session(
        &client,
        json!({"action": "create", "name": plain, "language": "python"}),
    )
    .await;
    let empty = TestSession::adopt(unique_name("egress-empty"));
    session(
        &client,
        json!({"action": "create", "name": empty, "language": "python", "network": []}),
    )
    .await;

    let run = |name: &TestSession, code: String| json!({"language": "python", "session": name.as_str(), "code": code});
    // Granted: plain HTTP through the proxy, and a CONNECT tunnel.
    let reached = execute_with(&client, run(&granted, python_fetch(&origin.url()))).await;
    assert_eq!(stdout(&reached).trim(), "status 200 origin-says-hello", "{reached}");
    let tunnel = format!(
        r#"
import os, socket, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
s.sendall(b"CONNECT {allow} HTTP/1.1\r\nHost: {allow}\r\n\r\n")
head = s.recv(4096)
print(head.split(b"\r\n")[0].decode())
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.decode().split("\r\n\r\n", 1)[1].strip())
"#
    );
    let tunnelled = execute_with(&client, run(&granted, tunnel)).await;
    assert!(stdout(&tunnelled).contains(" 200 "), "{tunnelled}");
    assert!(stdout(&tunnelled).contains("origin-says-hello"), "{tunnelled}");

    // Not granted: the proxy's 403 reaches the program, the note the model.
    let outside = execute_with(&client, run(&granted, python_fetch("http://example.com/"))).await;
    assert!(stdout(&outside).starts_with("status 403"), "{outside}");
    assert!(
        note(&outside).contains("example.com:80") && note(&outside).contains("egress.allow"),
        "{outside}"
    );
    // The refused host was never looked up nor connected: the audit log's
    // egress event has no address.
    let audit = std::fs::read_to_string(common::test_audit_log()).expect("the test audit log");
    let refused_event = audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| {
            event["type"] == "egress" && event["host"] == "example.com" && event["session"] == json!(granted.as_str())
        })
        .unwrap_or_else(|| panic!("no egress event for example.com in the audit log"));
    assert_eq!(refused_event["allowed"], json!(false), "{refused_event}");
    assert_eq!(refused_event["address"], Value::Null, "{refused_event}");
    let other_port = execute_with(
        &client,
        run(&granted, python_fetch(&format!("http://{}:9999/", origin.address))),
    )
    .await;
    assert!(stdout(&other_port).starts_with("status 403"), "{other_port}");
    // A session with network but no grant: the origin is in egress.allow,
    // yet not requested for it, so it is refused (one session never uses
    // another's grants) with a note saying the model can request it; the
    // proxy never connected to the origin.
    let accepted = origin.accepted(8080);
    let not_requested = execute_with(&client, run(&empty, python_fetch(&origin.url()))).await;
    assert!(stdout(&not_requested).starts_with("status 403"), "{not_requested}");
    assert_eq!(origin.accepted(8080), accepted, "{}", origin.log());
    assert!(
        note(&not_requested).contains("request it with `network`"),
        "{not_requested}"
    );
    // No network at all: no proxy, no route.
    let isolated = execute_with(&client, run(&plain, python_fetch(&origin.url()))).await;
    assert!(stdout(&isolated).starts_with("failed"), "{isolated}");

    // The ways around the proxy.
    let bypass_code = format!("import os\nos.environ['ORIGIN'] = '{}'\n{BYPASSES}", origin.address);
    let bypasses = execute_with(&client, run(&granted, bypass_code)).await;
    let lines = stdout(&bypasses);
    assert_eq!(lines.matches("blocked").count(), 5, "{bypasses}");
    assert!(!lines.contains("REACHED"), "{bypasses}");

    // Go's net/http honours the proxy variables.
    let go = execute_with(
        &client,
        json!({"language": "go", "network": [allow], "code": format!(
            "package main\n\nimport (\n\t\"fmt\"\n\t\"io\"\n\t\"net/http\"\n\t\"strings\"\n)\n\nfunc main() {{\n\tresp, err := http.Get(\"{}\")\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tbody, _ := io.ReadAll(resp.Body)\n\tfmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))\n}}\n",
            origin.url())}),
    )
    .await;
    assert_eq!(stdout(&go).trim(), "200 origin-says-hello", "{go}");
    // Rust with the standard library only: a CONNECT tunnel by hand.
    let rust = execute_with(
        &client,
        json!({"language": "rust", "network": [allow], "code": format!(r#"
use std::io::{{Read, Write}};
use std::net::TcpStream;
fn main() {{
    let proxy = std::env::var("HTTP_PROXY").unwrap();
    let mut stream = TcpStream::connect(proxy.trim_start_matches("http://")).unwrap();
    write!(stream, "CONNECT {allow} HTTP/1.1\r\nHost: {allow}\r\n\r\n").unwrap();
    let mut head = [0u8; 1024];
    let n = stream.read(&mut head).unwrap();
    let status = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_string();
    write!(stream, "GET / HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    println!("{{status}} | {{}}", reply.split("\r\n\r\n").nth(1).unwrap_or_default().trim());
}}
"#)}),
    )
    .await;
    assert!(
        stdout(&rust).contains(" 200 ") && stdout(&rust).contains("| origin-says-hello"),
        "{rust}"
    );
    // Stateless: the execute's own network.
    let stateless = execute_with(
        &client,
        json!({"language": "python", "network": [allow], "code": python_fetch(&origin.url())}),
    )
    .await;
    assert_eq!(stdout(&stateless).trim(), "status 200 origin-says-hello", "{stateless}");
    let stateless_refused = execute_with(
        &client,
        json!({"language": "python", "network": [], "code": python_fetch("http://example.com/")}),
    )
    .await;
    assert!(note(&stateless_refused).contains("example.com"), "{stateless_refused}");

    // Stateless executes leave no network behind (this server's).
    let ours = format!("label={}", instance_label(&client).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let named = docker(&["network", "ls", "--filter", &ours, "--format", "{{.Name}}"]);
        let executes: Vec<&str> = named
            .lines()
            .filter(|name| name.starts_with("multilang-sandbox-execute-"))
            .collect();
        if executes.is_empty() || std::time::Instant::now() > deadline {
            assert!(executes.is_empty(), "stateless execute networks left: {executes:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What the session moved is shown with it.
    let got = session(&client, json!({"action": "get", "name": granted})).await;
    let totals = &got["sessions"][0]["egress"];
    assert!(totals["connections"].as_u64().unwrap_or(0) >= 2, "{got}");
    assert!(totals["refused"].as_u64().unwrap_or(0) >= 2, "{got}");
    assert!(totals["bytes_down"].as_u64().unwrap_or(0) > 0, "{got}");

    // Changing the grants: the origin is then reachable only via egress.allow.
    let changed = session(&client, json!({"action": "network", "name": granted, "network": []})).await;
    assert_eq!(changed["sessions"][0]["network"], json!([]), "{changed}");
    let no_network = tool_error_text(
        &client,
        "sandbox_session",
        json!({"action": "network", "name": plain, "network": [allow]}),
    )
    .await;
    assert!(no_network.contains("without network"), "{no_network}");

    // Grants survive the server: kill -9, start another, same session.
    session(
        &client,
        json!({"action": "network", "name": granted, "network": [allow]}),
    )
    .await;
    let killed = instance_label(&client).await;
    kill_nine(pid);
    drop(client);
    let restarted_env: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain([("MULTILANG_SANDBOX_GC_INTERVAL_S", "1")])
        .collect();
    let (client, _) = start_server_process(&restarted_env).await;
    let after = execute_with(&client, run(&granted, python_fetch(&origin.url()))).await;
    assert_eq!(stdout(&after).trim(), "status 200 origin-says-hello", "{after}");
    let got = session(&client, json!({"action": "get", "name": granted})).await;
    assert_eq!(got["sessions"][0]["network"], json!([allow]), "{got}");

    // Destroy removes the session's network and its holder.
    let network =
        session_network(&format!("multilang-sandbox-session-{granted}")).expect("the session's network label");
    // (in the background, just after destroy answers).
    session(&client, json!({"action": "destroy", "name": granted})).await;
    let left = || docker(&["network", "ls", "-q", "--filter", &format!("name=^{network}$")]);
    let gone = eventually(Duration::from_secs(30), || async { left().is_empty() }).await;
    assert!(gone, "the session's network is still there");
    let holder = docker(&["ps", "-aq", "--filter", &format!("name=^{network}$")]);
    assert!(holder.is_empty(), "the session's network holder is still there");

    // The killed server's spare networks are collected by the next server
    // (its proxy went with it), while the session it made kept its own.
    let spares = || {
        let holders = docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label={killed}"),
            "--filter",
            "label=multilang-sandbox.kind=network-holder",
        ]);
        let in_use = docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Label \"multilang-sandbox.network-name\"}}",
            "--filter",
            "label=multilang-sandbox.network-name",
        ]);
        let in_use: Vec<&str> = in_use.lines().collect();
        holders
            .lines()
            .filter(|holder| !in_use.contains(holder))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !spares().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let left = spares();
    assert!(
        left.is_empty(),
        "the killed server's spare networks are still there: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_used_its_byte_budget_is_refused_with_the_reason() {
    require_docker().await;
    let origin = Origin::start();
    let allow = origin.allow();
    let env = origin.server_env(&allow, &[("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", "1")]);
    let (client, _) = start_server_process(&env).await;
    let name = TestSession::adopt(unique_name("egress-budget"));
    session(
        &client,
        json!({"action": "create", "name": name, "language": "python", "network": [allow]}),
    )
    .await;
    // 3 MB from a session that may move 1 MiB: cut on the way.
    let big = execute_with(
        &client,
        json!({"language": "python", "session": name.as_str(), "code": python_fetch(&format!("{}big", origin.url()))}),
    )
    .await;
    assert!(stdout(&big).starts_with("failed"), "{big}");
    assert!(note(&big).contains("byte budget reached"), "{big}");
    // Then every new connection is refused, saying why.
    let after = execute_with(
        &client,
        json!({"language": "python", "session": name.as_str(), "code": python_fetch(&origin.url())}),
    )
    .await;
    assert!(stdout(&after).starts_with("status 403"), "{after}");
    assert!(stdout(&after).contains("byte budget reached"), "{after}");
    assert!(note(&after).contains("egress.budget_mb"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_installs_from_code_with_only_the_index_hosts_granted() {
    require_docker().await;
    let hosts = pip_index_hosts();
    assert!(!hosts.is_empty(), "pip names no index host");
    let allow = hosts.join(",");
    // Where these machines' index hosts resolve to a non-public address (a
    // local mirror), the user names them in allow_private too; where they
    // are public, that entry changes nothing.
    let (client, _) = start_server_process(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_EGRESS_ALLOW", allow.as_str()),
        ("MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE", allow.as_str()),
    ])
    .await;
    let name = TestSession::adopt(unique_name("egress-pip"));
    session(
        &client,
        json!({"action": "create", "name": name, "language": "python", "network": hosts}),
    )
    .await;
    // The CAs this machine trusts, handed to the sandbox as a user would
    // (a mirror on these machines has its own CA); the proxy never sees
    // inside the tunnel.
    let config = multilang_sandbox::config::Config::from_env().expect("configuration");
    let bundle = config
        .ca_bundle
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default();
    let mut cert = "";
    if bundle.contains("BEGIN CERTIFICATE") {
        let written = common::call(
            &client,
            "sandbox_file_ops",
            json!({"session": name.as_str(), "operation": "write", "path": "/workspace/ca.pem", "content": bundle}),
        )
        .await;
        assert_ne!(written.is_error, Some(true), "writing the CA bundle failed");
        cert = "/workspace/ca.pem";
    }
    let install = execute_with(
        &client,
        json!({"language": "python", "session": name.as_str(), "timeout": 120000, "env": {"CERT": cert}, "code": r#"
import os, subprocess, sys
cert = ["--cert", os.environ["CERT"]] if os.environ["CERT"] else []
done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *cert, "--target", "/workspace/pkgs", "six"],
                      capture_output=True, text=True)
print("pip", done.returncode, done.stderr[-500:])
sys.path.insert(0, "/workspace/pkgs")
import six
print("six", six.__version__)
"#}),
    )
    .await;
    assert!(stdout(&install).contains("pip 0"), "{install}");
    assert!(stdout(&install).contains("six "), "{install}");
    // Nothing else is reachable from it.
    let other = execute_with(
        &client,
        json!({"language": "python", "session": name.as_str(), "code": python_fetch("http://example.com/")}),
    )
    .await;
    assert!(stdout(&other).starts_with("status 403"), "{other}");
}
