//! The everyday HTTP clients behind the egress proxy (issue #14), with real
//! Docker and the real binary: Node's `fetch` and `http.get` (which Node 20
//! makes honour the proxy variables only through the images' preload,
//! `images/runner/node-proxy.js`), TypeScript's `fetch`, and `curl` in bash
//! reach a granted local origin; a refused host reaches the program as an
//! error (fetch) or the proxy's 403 (http.get) and the result's note names
//! it; Node without network behaves as before.

mod common;

use common::origin::{Origin, js_fetch, note, stdout};
use common::{TestSession, execute_with, require_docker, session, start_server_process, unique_name};
use serde_json::{Value, json};

fn stderr(result: &Value) -> &str {
    result["stderr"].as_str().unwrap_or_default()
}

/// JavaScript that gets `url` (a JavaScript expression) with `http.get`
/// and prints
/// `<label> <status> <body>`, or `<label> failed <code>`.
fn js_http_get(label: &str, url: &str) -> String {
    format!(
        r#"
await new Promise((resolve) => {{
  const request = require("http").get({url}, {{ timeout: 15000 }}, (response) => {{
    let body = "";
    response.setEncoding("utf8");
    response.on("data", (chunk) => (body += chunk));
    response.on("end", () => {{
      console.log("{label}", response.statusCode, body.trim());
      resolve();
    }});
  }});
  request.on("timeout", () => request.destroy(new Error("timed out")));
  request.on("error", (error) => {{
    console.log("{label} failed", error.code || error.message);
    resolve();
  }});
}});
"#
    )
}

/// `text` as a JavaScript string literal.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// The line of `result`'s stdout that starts with `label `.
fn line<'a>(result: &'a Value, label: &str) -> &'a str {
    stdout(result)
        .lines()
        .find(|line| line.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no `{label}` line in {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_typescript_and_curl_reach_granted_hosts_through_the_proxy() {
    require_docker().await;
    let origin = Origin::start();
    let allow = origin.allow();
    let env = origin.server_env(&allow, &[]);
    let (client, _) = start_server_process(&env).await;
    let hello = "origin-says-hello";

    // A JavaScript session: fetch and http.get, in the kernel.
    let js = TestSession::adopt(unique_name("egress-js"));
    session(
        &client,
        json!({"action": "create", "name": js, "language": "javascript", "network": [allow]}),
    )
    .await;
    let code = format!(
        "{}{}",
        js_fetch("fetch", &quoted(&origin.url())),
        js_http_get("http.get", &quoted(&origin.url()))
    );
    let reached = execute_with(
        &client,
        json!({"language": "javascript", "session": js.as_str(), "code": code}),
    )
    .await;
    assert_eq!(line(&reached, "fetch"), format!("fetch 200 {hello}"), "{reached}");
    assert_eq!(line(&reached, "http.get"), format!("http.get 200 {hello}"), "{reached}");
    assert_eq!(reached["exit_code"], 0, "{reached}");
    // The preload is silent (no experimental warning, nothing missing).
    assert_eq!(stderr(&reached), "", "{reached}");

    // Loopback stays direct (NO_PROXY): a server in the sandbox itself.
    let local = r#"
const server = require("http").createServer((_, response) => response.end("local-hello"));
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const local = `http://127.0.0.1:${server.address().port}/`;
"#;
    let local_code = format!(
        "{local}{}{}server.close();\n",
        js_fetch("local-fetch", "local"),
        js_http_get("local-get", "local")
    );
    let direct = execute_with(
        &client,
        json!({"language": "javascript", "session": js.as_str(), "code": local_code}),
    )
    .await;
    assert_eq!(line(&direct, "local-fetch"), "local-fetch 200 local-hello", "{direct}");
    assert_eq!(line(&direct, "local-get"), "local-get 200 local-hello", "{direct}");

    // A host nobody allowed: fetch fails (undici tunnels plain http with
    // CONNECT and shows only the status), http.get gets the proxy's 403
    // with its one-line reason, and the note names the host.
    let refused_code = format!(
        "{}{}",
        js_fetch("fetch", &quoted("http://example.com/")),
        js_http_get("http.get", &quoted("http://example.com/"))
    );
    let refused = execute_with(
        &client,
        json!({"language": "javascript", "session": js.as_str(), "code": refused_code}),
    )
    .await;
    let fetch_line = line(&refused, "fetch");
    assert!(fetch_line.starts_with("fetch failed "), "{refused}");
    assert!(fetch_line.contains("403"), "{refused}");
    let get_line = line(&refused, "http.get");
    assert!(get_line.starts_with("http.get 403 "), "{refused}");
    assert!(
        get_line.contains("example.com") && get_line.contains("is not allowed for this sandbox"),
        "{refused}"
    );
    assert!(
        note(&refused).contains("example.com:80") && note(&refused).contains("egress.allow"),
        "{refused}"
    );

    // TypeScript, stateless, with its own network: fetch (an ES module).
    let typescript = execute_with(
        &client,
        json!({"language": "typescript", "network": [allow], "code": format!(
            "const url: string = \"{}\";\nconst response: Response = await fetch(url);\nconsole.log(\"ts\", response.status, (await response.text()).trim());\n",
            origin.url())}),
    )
    .await;
    assert_eq!(stdout(&typescript).trim(), format!("ts 200 {hello}"), "{typescript}");
    assert_eq!(stderr(&typescript), "", "{typescript}");

    // curl in a bash session, with nothing but the proxy variables.
    let bash = TestSession::adopt(unique_name("egress-curl"));
    session(
        &client,
        json!({"action": "create", "name": bash, "language": "bash", "network": [allow]}),
    )
    .await;
    let curled = execute_with(
        &client,
        json!({"language": "bash", "session": bash.as_str(), "code": format!(
            "curl -sS --max-time 15 {}\ncurl -sS --max-time 15 -o /dev/null -w 'refused %{{http_code}}\\n' http://example.com/\n",
            origin.url())}),
    )
    .await;
    assert_eq!(stdout(&curled).trim(), format!("{hello}\nrefused 403"), "{curled}");
    assert!(note(&curled).contains("example.com:80"), "{curled}");

    // Without network, Node is as before: the preload does nothing.
    let plain = execute_with(
        &client,
        json!({"language": "javascript", "code":
            "console.log('plain', typeof fetch, require('http').globalAgent.constructor.name);"}),
    )
    .await;
    assert_eq!(stdout(&plain).trim(), "plain function Agent", "{plain}");
    assert_eq!(plain["exit_code"], 0, "{plain}");
    assert_eq!(stderr(&plain), "", "{plain}");
}
