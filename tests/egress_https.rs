//! HTTPS through the egress proxy (issue #14), with real Docker and the real
//! binary: a local origin serves HTTPS with a certificate from a CA made for
//! this test, the CA is handed to each session as a user would (written
//! into it with `sandbox_file_ops`, then named to the client), and Python's
//! `urllib`, Node's `https.get` and `fetch`, `curl` in bash and Go's
//! `net/http` reach the origin through the proxy's `CONNECT` tunnel. The
//! certificate they see is the origin's own (the proxy does not intercept
//! TLS). Before the origin is granted, the tunnel is refused with the
//! proxy's 403 and its reason, and the origin never saw a connection.

mod common;

use common::origin::{Origin, js_fetch, note, stdout};
use common::{TestSession, call, execute_with, require_docker, session, start_server_process, text_of, unique_name};
use serde_json::{Value, json};

/// Where each session is handed the test's CA.
const CA: &str = "/workspace/ca.pem";

/// Creates a session of `language` with `network`; removed on drop.
async fn create(client: &common::Client, prefix: &str, language: &str, network: Value) -> TestSession {
    let name = TestSession::adopt(unique_name(prefix));
    session(
        client,
        json!({"action": "create", "name": name, "language": language, "network": network}),
    )
    .await;
    name
}

/// Writes the CA into the session, as a user hands a file to a sandbox.
async fn hand_ca(client: &common::Client, name: &TestSession, pem: &str) {
    let written = call(
        client,
        "sandbox_file_ops",
        json!({"session": name.as_str(), "operation": "write", "path": CA, "content": pem}),
    )
    .await;
    assert_ne!(written.is_error, Some(true), "writing the CA: {}", text_of(&written));
}

async fn run(client: &common::Client, name: &TestSession, language: &str, code: String) -> Value {
    execute_with(
        client,
        json!({"language": language, "session": name.as_str(), "code": code}),
    )
    .await
}

/// The line of `result`'s stdout that starts with `label `.
fn line<'a>(result: &'a Value, label: &str) -> &'a str {
    stdout(result)
        .lines()
        .find(|line| line.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no `{label}` line in {result}"))
}

/// Python that gets `https://<target>/` with urllib (the CA as its
/// context's cafile), then opens a CONNECT tunnel to `target` by hand:
/// prints `urllib <status> <body>` (or `urllib failed <error>`), `connect
/// <proxy's status line>`, and then `peer <sha-256 of the certificate the
/// client saw>` when the tunnel opened or `reason <proxy's body>` when not.
fn python_https(target: &str) -> String {
    format!(
        r#"
import hashlib, os, socket, ssl, urllib.parse, urllib.request
target = "{target}"
context = ssl.create_default_context(cafile="{CA}")
try:
    with urllib.request.urlopen("https://" + target + "/", context=context, timeout=20) as r:
        print("urllib", r.status, r.read().decode().strip())
except Exception as e:
    print("urllib failed", e)
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
s = socket.create_connection((proxy.hostname, proxy.port), timeout=20)
s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    byte = s.recv(1)
    if not byte:
        break
    head += byte
status = head.split(b"\r\n")[0].decode()
print("connect", status)
if status.split(" ")[1:2] == ["200"]:
    with context.wrap_socket(s, server_hostname=target.rsplit(":", 1)[0]) as tls:
        print("peer", hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest())
else:
    body = b""
    while chunk := s.recv(4096):
        body += chunk
    print("reason", body.decode().strip())
"#
    )
}

/// JavaScript: `https.get` with the CA as its `ca` option (prints `https.get
/// <status> <body> <sha-256 of the peer's certificate>`), then `fetch` in a
/// node started with NODE_EXTRA_CA_CERTS (Node 20 reads it only at start;
/// prints `fetch <status> <body>`).
fn javascript_https(url: &str) -> String {
    let url = serde_json::to_string(url).unwrap();
    let fetch = serde_json::to_string(&js_fetch("fetch", &url)).unwrap();
    format!(
        r#"
const ca = require("fs").readFileSync("{CA}");
await new Promise((resolve) => {{
  const request = require("https").get({url}, {{ ca, timeout: 15000 }}, (response) => {{
    const peer = response.socket.getPeerCertificate().fingerprint256.replaceAll(":", "").toLowerCase();
    let body = "";
    response.setEncoding("utf8");
    response.on("data", (chunk) => (body += chunk));
    response.on("end", () => {{
      console.log("https.get", response.statusCode, body.trim(), peer);
      resolve();
    }});
  }});
  request.on("timeout", () => request.destroy(new Error("timed out")));
  request.on("error", (error) => {{
    console.log("https.get failed", error.code || error.message);
    resolve();
  }});
}});
const child = require("child_process").spawnSync(process.execPath, ["--input-type=module", "-e", {fetch}], {{
  env: {{ ...process.env, NODE_EXTRA_CA_CERTS: "{CA}" }},
  encoding: "utf8",
  timeout: 30000,
}});
console.log((child.stdout || "").trim());
if (child.stderr) console.log("child stderr", child.stderr.trim());
"#
    )
}

/// Go: net/http through the proxy variables, with a cert pool read from the
/// CA file; prints `go <status> <body> <sha-256 of the peer's certificate>`.
fn go_https(url: &str) -> String {
    format!(
        r#"package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {{
	pem, err := os.ReadFile("{CA}")
	if err != nil {{
		panic(err)
	}}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {{
		panic("no certificate in the CA file")
	}}
	client := &http.Client{{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{{RootCAs: pool}}}},
	}}
	resp, err := client.Get("{url}")
	if err != nil {{
		fmt.Println("go failed", err)
		return
	}}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	peer := sha256.Sum256(resp.TLS.PeerCertificates[0].Raw)
	fmt.Println("go", resp.StatusCode, strings.TrimSpace(string(body)), hex.EncodeToString(peer[:]))
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_node_curl_and_go_reach_an_https_origin_through_connect_with_its_own_ca() {
    require_docker().await;
    let origin = Origin::start_with_tls();
    let tls = origin.tls.as_ref().expect("the origin serves HTTPS");
    let https = origin.https_allow();
    let env = origin.server_env(&https, &[]);
    let (client, _) = start_server_process(&env).await;
    let hello = "origin-says-hello";

    // One session per language; Python's starts with network but no host.
    let (python, javascript, go, bash) = tokio::join!(
        create(&client, "https-py", "python", json!([])),
        create(&client, "https-js", "javascript", json!([https])),
        create(&client, "https-go", "go", json!([https])),
        create(&client, "https-sh", "bash", json!([https])),
    );
    for name in [&python, &javascript, &go, &bash] {
        hand_ca(&client, name, &tls.ca_pem).await;
    }

    // Not granted (egress.allow and allow_private cover it, but nobody
    // requested it for this session): the tunnel is refused with the
    // proxy's 403 and its reason, the note says how to get it, and the
    // proxy never connected to the origin.
    let refused = run(&client, &python, "python", python_https(&https)).await;
    assert!(line(&refused, "urllib").starts_with("urllib failed"), "{refused}");
    assert!(line(&refused, "urllib").contains("403"), "{refused}");
    assert!(
        line(&refused, "connect").starts_with("connect HTTP/1.1 403"),
        "{refused}"
    );
    assert!(
        line(&refused, "reason").contains(&format!("{https} is not allowed for this sandbox")),
        "{refused}"
    );
    assert!(
        note(&refused).contains(&https) && note(&refused).contains("request it with `network`"),
        "{refused}"
    );
    assert_eq!(
        origin.accepted(8443),
        0,
        "the origin saw a connection: {}",
        origin.log()
    );

    // Granted: urllib with the CA as cafile, and a tunnel by hand whose TLS
    // peer is the origin's own certificate.
    session(
        &client,
        json!({"action": "network", "name": python, "network": [https]}),
    )
    .await;
    let python_reached = run(&client, &python, "python", python_https(&https)).await;
    assert_eq!(
        line(&python_reached, "urllib"),
        format!("urllib 200 {hello}"),
        "{python_reached}"
    );
    assert!(
        line(&python_reached, "connect").starts_with("connect HTTP/1.1 200"),
        "{python_reached}"
    );
    assert_eq!(
        line(&python_reached, "peer"),
        format!("peer {}", tls.cert_sha256),
        "{python_reached}"
    );

    // Node: https.get with the CA, fetch with NODE_EXTRA_CA_CERTS.
    let node = run(
        &client,
        &javascript,
        "javascript",
        javascript_https(&origin.https_url()),
    )
    .await;
    assert_eq!(
        line(&node, "https.get"),
        format!("https.get 200 {hello} {}", tls.cert_sha256),
        "{node}"
    );
    assert_eq!(line(&node, "fetch"), format!("fetch 200 {hello}"), "{node}");
    assert!(!stdout(&node).contains("child stderr"), "{node}");

    // curl with --cacert; without it the origin's certificate is not
    // trusted (nothing in between presents another one); a port nobody
    // allowed is refused at CONNECT.
    let curled = run(
        &client,
        &bash,
        "bash",
        format!(
            "curl -sS --max-time 15 --cacert {CA} {url}\n\
             curl -s --max-time 15 -o /dev/null {url}; echo \"without-ca $?\"\n\
             curl -s --max-time 15 --cacert {CA} -o /dev/null -w 'refused %{{http_connect}}\\n' https://{address}:8080/\n",
            url = origin.https_url(),
            address = origin.address,
        ),
    )
    .await;
    // curl's exit 60: the peer's certificate cannot be verified.
    assert_eq!(
        stdout(&curled).trim(),
        format!("{hello}\nwithout-ca 60\nrefused 403"),
        "{curled}"
    );
    assert!(note(&curled).contains(&origin.allow()), "{curled}");

    // Go: net/http with a cert pool from the file.
    let go_reached = run(&client, &go, "go", go_https(&origin.https_url())).await;
    assert_eq!(
        line(&go_reached, "go"),
        format!("go 200 {hello} {}", tls.cert_sha256),
        "{go_reached}"
    );

    // The refused port was never connected to; the granted one was, once
    // by each client above (urllib, the tunnel, https.get, fetch, curl
    // twice, Go).
    assert_eq!(origin.accepted(8080), 0, "{}", origin.log());
    assert!(origin.accepted(8443) >= 7, "{}", origin.log());
}
