//! What every case shares: samples and their percentiles, the server under
//! test started behind rmcp's stdio client, tool calls and engine calls
//! that end with a clear error when they take too long, the wait for a warm
//! pool, and sessions destroyed whatever happens.

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Command;

pub type Client = RunningService<RoleClient, ()>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tool call without a `timeout_ms` of its own gets this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// A call that installs packages gets this long.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// An engine call, a server start or a server stop gets this long.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the pool may take to be full again.
const WARM_TIMEOUT: Duration = Duration::from_secs(90);

/// One row of the table: a name and its samples.
pub struct Case {
    pub name: String,
    pub samples: Vec<Duration>,
}

impl Case {
    pub fn new(name: impl Into<String>, samples: Vec<Duration>) -> Self {
        Self {
            name: name.into(),
            samples,
        }
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }
}

pub fn median(samples: &[Duration]) -> Duration {
    Case::new("", samples.to_vec()).percentile(0.5)
}

pub fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// The table of `cases`; `count` heads the column of sample counts.
pub fn table(cases: &[Case], count: &str) -> String {
    let mut table = format!("| case | {count} | median ms | p95 ms |\n|---|---|---|---|\n");
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

/// `future`'s answer, or an error naming `what` once `limit` has passed.
pub async fn within<T, E: Into<BoxError>>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    match tokio::time::timeout(limit, future).await {
        Ok(answer) => answer.map_err(|error| format!("{what}: {}", error.into()).into()),
        Err(_) => Err(format!("{what}: no answer within {} s", limit.as_secs()).into()),
    }
}

/// An engine call with [`ENGINE_TIMEOUT`].
pub async fn engine<T, E: Into<BoxError>>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    within(ENGINE_TIMEOUT, what, future).await
}

pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MULTILANG_SANDBOX_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("multilang-sandbox")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("multilang-sandbox"))
}

/// The release server over stdio with `env` set; only `initialize` is
/// exchanged (rmcp's client lists no tools by itself).
pub async fn start_server(env: &[(&str, &str)]) -> Result<Client, BoxError> {
    let mut command = Command::new(server_binary());
    command.env("MULTILANG_SANDBOX_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let transport = TokioChildProcess::new(command)?;
    within(ENGINE_TIMEOUT, "starting the server", ().serve(transport)).await
}

/// Closes the connection and waits for the server to stop.
pub async fn stop_server(client: Client) -> Result<(), BoxError> {
    within(ENGINE_TIMEOUT, "stopping the server", client.cancel()).await?;
    Ok(())
}

/// How long a call with `arguments` may take: its own `timeout_ms` plus
/// a minute, [`INSTALL_TIMEOUT`] when it installs packages, or
/// [`CALL_TIMEOUT`].
fn limit_for(arguments: &Value) -> Duration {
    if let Some(ms) = arguments["timeout_ms"].as_u64() {
        return Duration::from_millis(ms) + Duration::from_secs(60);
    }
    if arguments.get("packages").is_some() {
        return INSTALL_TIMEOUT;
    }
    CALL_TIMEOUT
}

/// Calls `tool`; a tool error or no answer in time is an error.
pub async fn call(client: &Client, tool: &str, arguments: Value) -> Result<Value, BoxError> {
    let limit = limit_for(&arguments);
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let request = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments));
    let result = within(limit, &format!("{tool} call"), request).await?;
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|content| content.as_text().map(|text| text.text.clone()))
            .collect();
        return Err(format!("{tool} failed: {}", text.join(" ")).into());
    }
    Ok(result.structured_content.unwrap_or_default())
}

/// `sandbox_execute`; an exit code other than 0 is an error.
pub async fn execute(client: &Client, arguments: Value) -> Result<Value, BoxError> {
    let structured = call(client, "sandbox_execute", arguments).await?;
    if structured["exit_code"] != 0 {
        return Err(format!("execute failed: {structured}").into());
    }
    Ok(structured)
}

/// `sandbox_execute` that must print exactly `stdout`.
pub async fn execute_expecting(client: &Client, arguments: Value, stdout: &str) -> Result<Value, BoxError> {
    let structured = execute(client, arguments).await?;
    if structured["stdout"] != stdout {
        return Err(format!("expected {stdout:?} on stdout: {structured}").into());
    }
    Ok(structured)
}

/// The lines of `sandbox_inspect` `pool`, one per language.
async fn pool_lines(client: &Client) -> Result<Vec<Value>, BoxError> {
    let state = call(client, "sandbox_inspect", json!({"target": "pool"})).await?;
    state["pool"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no pool in sandbox_inspect: {state}").into())
}

fn line_of(lines: &[Value], language: &str) -> Result<Value, BoxError> {
    lines
        .iter()
        .find(|line| line["language"] == language)
        .cloned()
        .ok_or_else(|| format!("no pool line for {language}: {lines:?}").into())
}

/// One language's line of `sandbox_inspect` `pool`.
pub async fn pool_entry(client: &Client, language: &str) -> Result<Value, BoxError> {
    line_of(&pool_lines(client).await?, language)
}

/// Waits until the pool holds `count` idle containers for `language` (its
/// target when `None`) and starts none for any language, so the next
/// execute is a hit and no start competes with it. Returns the language's
/// pool line.
pub async fn wait_for_warm_pool(client: &Client, language: &str, count: Option<u64>) -> Result<Value, BoxError> {
    let deadline = Instant::now() + WARM_TIMEOUT;
    loop {
        let lines = pool_lines(client).await?;
        let entry = line_of(&lines, language)?;
        let wanted = count.or(entry["target"].as_u64()).unwrap_or(1);
        if wanted == 0 {
            return Err(format!("the pool keeps no {language} containers: {entry}").into());
        }
        let starting_none = lines.iter().all(|line| line["starting"].as_u64() == Some(0));
        if entry["idle"].as_u64().unwrap_or(0) >= wanted && starting_none {
            // Let the background removal of the previous container finish too.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(entry);
        }
        if Instant::now() > deadline {
            return Err(format!("the {language} pool never warmed: {lines:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One language's line of `sandbox_inspect`'s warm spare sessions.
pub async fn spare_line(client: &Client, language: &str) -> Result<Value, BoxError> {
    let state = call(client, "sandbox_inspect", json!({"target": "sessions"})).await?;
    state["spares"]
        .as_array()
        .and_then(|lines| lines.iter().find(|line| line["language"] == language))
        .cloned()
        .ok_or_else(|| format!("no {language} spare line in sandbox_inspect: {state}").into())
}

/// Waits until `sandbox_inspect` shows a ready spare session for
/// `language`, so the next plain create claims one. Returns the claims
/// counted so far.
pub async fn wait_for_spare(client: &Client, language: &str) -> Result<u64, BoxError> {
    let deadline = Instant::now() + WARM_TIMEOUT;
    loop {
        let line = spare_line(client, language).await?;
        if line["ready"].as_u64().unwrap_or(0) >= 1 {
            return Ok(line["claimed"].as_u64().unwrap_or(0));
        }
        if Instant::now() > deadline {
            return Err(format!("no {language} spare session became ready: {line}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Times `runs` executes of `arguments` after one warm-up. With
/// `warm_pool`, each run waits for a full pool first, and a run the pool
/// counts as a miss is an error.
pub async fn time_execute(
    client: &Client,
    name: &str,
    runs: usize,
    arguments: Value,
    warm_pool: Option<(&str, Option<u64>)>,
) -> Result<Case, BoxError> {
    execute(client, arguments.clone()).await?; // warm-up
    let mut samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let before = match warm_pool {
            Some((language, count)) => Some(wait_for_warm_pool(client, language, count).await?),
            None => None,
        };
        let started = Instant::now();
        execute(client, arguments.clone()).await?;
        samples.push(started.elapsed());
        if let (Some(before), Some((language, _))) = (before, warm_pool) {
            let after = pool_entry(client, language).await?;
            if after["misses"] != before["misses"] {
                return Err(format!("{name}: run {run} was a pool miss ({before} then {after})").into());
            }
        }
    }
    Ok(Case::new(name, samples))
}

/// The sessions a group made, to destroy them whatever happens.
pub struct Sessions<'a> {
    client: &'a Client,
    live: Vec<String>,
}

impl<'a> Sessions<'a> {
    pub fn new(client: &'a Client) -> Self {
        Self {
            client,
            live: Vec::new(),
        }
    }

    /// `sandbox_session` `create` with `arguments` (which name the
    /// session); returns how long it took.
    pub async fn create(&mut self, arguments: Value) -> Result<Duration, BoxError> {
        let name = arguments["name"].as_str().ok_or("a session to create needs a name")?;
        self.live.push(name.to_string());
        let mut arguments = arguments;
        arguments["action"] = json!("create");
        let started = Instant::now();
        let created = call(self.client, "sandbox_session", arguments).await;
        let elapsed = started.elapsed();
        if let Err(error) = created {
            // A create that timed out may still have made the session.
            let name = self.live.pop().unwrap_or_default();
            let _ = call(
                self.client,
                "sandbox_session",
                json!({"action": "destroy", "name": name}),
            )
            .await;
            return Err(error);
        }
        Ok(elapsed)
    }

    /// Takes charge of destroying `name`, made by another call (a fork).
    pub fn adopt(&mut self, name: &str) {
        self.live.push(name.to_string());
    }

    /// A plain session of `language` called `name`.
    pub async fn create_plain(&mut self, name: &str, language: &str) -> Result<Duration, BoxError> {
        self.create(json!({"name": name, "language": language})).await
    }

    /// Destroys `name`; returns how long it took.
    pub async fn destroy(&mut self, name: &str) -> Result<Duration, BoxError> {
        let started = Instant::now();
        call(
            self.client,
            "sandbox_session",
            json!({"action": "destroy", "name": name}),
        )
        .await?;
        let elapsed = started.elapsed();
        self.live.retain(|held| held != name);
        Ok(elapsed)
    }

    /// Destroys what is left, saying so on stderr when one cannot be.
    pub async fn close(self) {
        for name in self.live {
            if let Err(error) = call(
                self.client,
                "sandbox_session",
                json!({"action": "destroy", "name": name}),
            )
            .await
            {
                eprintln!("could not destroy session {name}: {error}");
            }
        }
    }
}

/// A name unique to this run of the benchmark.
pub fn unique(prefix: &str) -> String {
    format!("bench-{prefix}-{}", std::process::id())
}
