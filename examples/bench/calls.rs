//! Latency of one call at a time: stateless hello in each language on a
//! pool hit, hello in a session of each language, session create and
//! destroy, the session cases (jobs, files, cancel, plots, packages), and
//! the stateless cases over streamable HTTP and with the pool off.

use crate::harness::{
    BoxError, CALL_TIMEOUT, Case, Client, Sessions, call, execute, execute_expecting, spare_line, start_server,
    stop_server, time_execute, unique, wait_for_spare, within,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The languages of the per-language rows, in the order.
pub const LANGUAGES: [&str; 6] = ["python", "bash", "javascript", "typescript", "go", "rust"];

/// A program that prints `hello` and a newline in `language`. Go and Rust
/// are whole programs, so nothing is wrapped or has its imports fixed.
pub fn hello(language: &str) -> &'static str {
    match language {
        "python" => "print(\"hello\")",
        "bash" => "echo hello",
        "javascript" => "console.log(\"hello\")",
        "typescript" => "const greeting: string = \"hello\";\nconsole.log(greeting)",
        "go" => "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello\")\n}",
        _ => "fn main() {\n    println!(\"hello\");\n}",
    }
}

/// Stateless hello in each language, each run on a pool hit: before each
/// run the pool is back to its target for that language with nothing
/// starting (the equivalent of calls ~1.5 s apart, and faster), and a run
/// the pool counts as a miss is an error.
pub async fn stateless_hello(client: &Client, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut cases = Vec::new();
    for language in LANGUAGES {
        let arguments = json!({"language": language, "code": hello(language)});
        execute_expecting(client, arguments.clone(), "hello\n").await?;
        cases.push(
            time_execute(
                client,
                &format!("stateless hello ({language}), pool hit"),
                runs,
                arguments,
                Some((language, None)),
            )
            .await?,
        );
    }
    Ok(cases)
}

/// Hello in a session of each language: one session per language, one
/// warm-up run, `runs` timed, then destroyed.
pub async fn session_hello(client: &Client, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut sessions = Sessions::new(client);
    let cases = session_hello_in(client, &mut sessions, runs).await;
    sessions.close().await;
    cases
}

async fn session_hello_in(client: &Client, sessions: &mut Sessions<'_>, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut cases = Vec::new();
    for language in LANGUAGES {
        let name = unique(&format!("hello-{language}"));
        sessions.create_plain(&name, language).await?;
        let arguments = json!({"language": language, "session": name, "code": hello(language)});
        let mut samples = Vec::with_capacity(runs);
        for run in 0..=runs {
            let started = Instant::now();
            execute_expecting(client, arguments.clone(), "hello\n").await?;
            if run > 0 {
                samples.push(started.elapsed());
            }
        }
        sessions.destroy(&name).await?;
        cases.push(Case::new(format!("hello in a {language} session"), samples));
    }
    Ok(cases)
}

/// Python session create and destroy, each destroy right after its
/// create, after one warm-up pair.
pub async fn session_lifecycle(client: &Client, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut sessions = Sessions::new(client);
    let result = async {
        let (mut creates, mut destroys) = (Vec::new(), Vec::new());
        for run in 0..=runs {
            let name = unique(&format!("life-{run}"));
            // Each create claims a warm spare (the default server keeps one).
            let claimed = wait_for_spare(client, "python").await?;
            let created = sessions.create_plain(&name, "python").await?;
            if spare_line(client, "python").await?["claimed"].as_u64() != Some(claimed + 1) {
                return Err(format!("create {run} did not claim the ready spare").into());
            }
            let destroyed = sessions.destroy(&name).await?;
            if run > 0 {
                creates.push(created);
                destroys.push(destroyed);
            }
        }
        Ok::<_, BoxError>(vec![
            Case::new("session create (python), on a warm spare", creates),
            Case::new("session destroy (python)", destroys),
        ])
    }
    .await;
    sessions.close().await;
    result
}

/// `print(1)`, `background: true` with `sandbox_job` `wait`, file
/// operations and cancel, all in one python session.
pub async fn session_cases(client: &Client, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut sessions = Sessions::new(client);
    let session = unique("session");
    let result = async {
        sessions.create_plain(&session, "python").await?;
        let in_session = json!({"language": "python", "code": "print(1)", "session": session});
        let mut cases = vec![time_execute(client, "`print(1)` in a python session", runs, in_session, None).await?];
        cases.push(job_case(client, &session, runs).await?);
        cases.extend(file_cases(client, &session, runs).await?);
        cases.push(cancel_case(client, &session, runs).await?);
        sessions.destroy(&session).await?;
        Ok::<_, BoxError>(cases)
    }
    .await;
    sessions.close().await;
    result
}

/// Session create with a package set: the first install of the set (a
/// spec unique to each run forces a cache miss) against creating a session
/// from the cached set.
pub async fn package_cases(client: &Client, package: &str, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut sessions = Sessions::new(client);
    let result = async {
        let (mut installs, mut cached) = (Vec::new(), Vec::new());
        let stamp = std::process::id();
        for run in 0..runs {
            let spec = format!("{package}!=0.0.{stamp}{run}");
            for (attempt, samples) in [(0, &mut installs), (1, &mut cached)] {
                let name = format!("bench-pkg-{stamp}-{run}-{attempt}");
                let arguments = json!({"name": name, "language": "python", "packages": [spec]});
                samples.push(sessions.create(arguments).await?);
                sessions.destroy(&name).await?;
            }
        }
        Ok::<_, BoxError>(vec![
            Case::new(
                format!("session create with `{package}`, first install (cache miss)"),
                installs,
            ),
            Case::new(
                format!("session create with `{package}`, from the package cache (hit)"),
                cached,
            ),
        ])
    }
    .await;
    sessions.close().await;
    result
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
        cases.push(Case::new(name, samples));
    }
    Ok(cases)
}

/// From `notifications/cancelled` for a busy session execute to the answer
/// of the next execute in that session (the interpreter is interrupted and
/// keeps its state).
async fn cancel_case(client: &Client, session: &str, runs: usize) -> Result<Case, BoxError> {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
    use rmcp::service::PeerRequestOptions;
    let busy = json!({"language": "python", "session": session, "code": "import time\nwhile True: time.sleep(0.05)"});
    let next = json!({"language": "python", "session": session, "code": "print(1)"});
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let arguments = busy.as_object().cloned().unwrap_or_default();
        let request = CallToolRequest::new(CallToolRequestParams::new("sandbox_execute").with_arguments(arguments));
        let handle = within(
            CALL_TIMEOUT,
            "sending the busy execute",
            client.send_cancellable_request(
                ClientRequest::CallToolRequest(request),
                PeerRequestOptions::no_options(),
            ),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        within(CALL_TIMEOUT, "cancelling the busy execute", handle.cancel(None)).await?;
        execute(client, next.clone()).await?;
        samples.push(started.elapsed());
    }
    Ok(Case::new(
        "cancel a busy session execute, then `print(1)` answered in that session",
        samples,
    ))
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
    Ok(Case::new(
        "`print(1)` in a python session with `background: true`, then `sandbox_job` `wait`",
        samples,
    ))
}

/// A matplotlib line plot returned as PNG image content, in a data-science
/// session (matplotlib already imported, so this is the plot and its return).
pub async fn plot_case(client: &Client, runs: usize) -> Result<Case, BoxError> {
    let mut sessions = Sessions::new(client);
    let session = unique("plot");
    let result = async {
        sessions
            .create(json!({"name": session, "language": "python", "ml": true}))
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
        .await?;
        sessions.destroy(&session).await?;
        Ok::<_, BoxError>(case)
    }
    .await;
    sessions.close().await;
    result
}

/// Stateless `print(1)` on a pool hit through the streamable HTTP transport.
pub async fn http_case(runs: usize) -> Result<Case, BoxError> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let token = "bench-token-0123456789abcdef";
    let mut server = Command::new(crate::harness::server_binary())
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
    let find_address = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line
                .split("address=")
                .nth(1)
                .filter(|_| line.contains("serving MCP over HTTP"))
            {
                return Ok(rest.split_whitespace().next().map(str::to_string));
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let address = within(crate::harness::ENGINE_TIMEOUT, "the HTTP server's start", find_address)
        .await?
        .ok_or("the HTTP server did not say where it listens")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{address}/mcp")).auth_header(token),
    );
    let client = within(CALL_TIMEOUT, "connecting over HTTP", ().serve(transport)).await?;
    let case = time_execute(
        &client,
        "stateless `print(1)` (python), pool hit, over streamable HTTP",
        runs,
        json!({"language": "python", "code": "print(1)"}),
        Some(("python", Some(2))),
    )
    .await;
    let stopped = stop_server(client).await;
    let killed = server.kill().await;
    let case = case?;
    stopped?;
    killed?;
    Ok(case)
}

/// Stateless `print(1)` with the pool off: each run starts a container.
pub async fn pool_off_cases(runs: usize) -> Result<Vec<Case>, BoxError> {
    let cold = start_server(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_SESSION_SPARES", "0"),
    ])
    .await?;
    let cases = async {
        let miss = time_execute(
            &cold,
            "stateless `print(1)` (python), pool miss (pool off)",
            runs,
            print_one(),
            None,
        )
        .await?;
        let mut sessions = Sessions::new(&cold);
        let creates = async {
            let mut creates = Vec::new();
            for run in 0..=runs {
                let name = unique(&format!("cold-{run}"));
                let created = sessions.create_plain(&name, "python").await?;
                sessions.destroy(&name).await?;
                if run > 0 {
                    creates.push(created);
                }
            }
            Ok::<_, BoxError>(creates)
        }
        .await;
        sessions.close().await;
        Ok::<_, BoxError>(vec![
            miss,
            Case::new("session create (python), cold (no spares)", creates?),
        ])
    }
    .await;
    let stopped = stop_server(cold).await;
    let cases = cases?;
    stopped?;
    Ok(cases)
}

/// Stateless `print(1)` in python.
pub fn print_one() -> Value {
    json!({"language": "python", "code": "print(1)"})
}
