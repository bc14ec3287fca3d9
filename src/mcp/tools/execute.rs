//! `sandbox_execute`: run code in a fresh sandbox.

use super::{OutcomeSlot, Reported, ToolAnswer, refusal, structured_result};
use crate::clock::unix_now;
use crate::core::artifacts::ArtifactContent;
use crate::core::egress::UserAsker;
use crate::core::error::ExecuteError;
use crate::core::jobs::{Executed, JobInfo, JobProgress};
use crate::core::run::ImageChoice;
use crate::core::{ExecuteRequest, ExecutionOutcome, Watch};
use crate::mcp::SandboxServer;
use crate::mcp::elicitation::ClientAsker;
use crate::mcp::progress::Reporter;
use crate::mcp::resources;
use crate::mcp::{client_limits, tasks};
use crate::runtime::Language;
use crate::security::audit::Outcome;
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ContentBlock, Resource, ResourceContents};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::Instrument;

/// Arguments of `sandbox_execute`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExecuteParams {
    /// Language of `code`: "python", "javascript", "typescript", "go", "rust" or "bash"
    /// (aliases: py, js, node, ts, golang, rs, sh).
    pub language: String,
    /// The program to run. Go code without `package main`/`func main()` and Rust code without
    /// `fn main()` are wrapped automatically, so plain statements work; missing Go imports and
    /// Rust `use` lines are added (the result's note says so). TypeScript runs without
    /// type-checking. Example: `print(sum(range(10)))`.
    pub code: String,
    /// Name of a session (see sandbox_session) to run in: Python, JavaScript, TypeScript and
    /// Bash sessions keep variables, imports and functions between calls; every session keeps
    /// its files in /workspace. `language: bash` in a session of another language runs a shell
    /// command in the same container. Omit it to run in a fresh sandbox that is thrown away.
    #[serde(default)]
    pub session: Option<String>,
    /// Time limit in milliseconds, compilation included. Default 30000, maximum 600000.
    /// When it expires the program is killed and the result says `timed_out: true`.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Text given to the program on standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Extra environment variables for the program, for example `{"DEBUG": "1"}`.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Python only: run in the data-science image (numpy, pandas, scipy, scikit-learn,
    /// matplotlib, seaborn, pillow, statsmodels). Not for sessions created without it.
    #[serde(default)]
    pub ml: Option<bool>,
    /// Stateless only: run in one of the user's own images (templates, listed in this tool's
    /// description and by sandbox_inspect), for example "data". `language` must be the
    /// template's. Its first use after the user changed it builds it (as long as its steps
    /// take); later uses start at once. Sessions take `template` at create.
    #[serde(default)]
    pub template: Option<String>,
    /// Packages the code needs, for example `["requests"]`: pip names for Python, npm names for
    /// JavaScript/TypeScript, crates for Rust (`serde@1`), Debian packages for Bash. The first
    /// use of a set installs it (seconds to minutes) and caches it; later uses start at once.
    /// Stateless executes only: for a session use sandbox_install with `session`.
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    /// Stateless only: hosts the code may reach over HTTP(S) through the egress proxy, for
    /// example `["api.github.com", "*.example.org"]` (ports 80 and 443 unless given, as
    /// `host:port`). Each must be in the user's allow list (egress.allow). Without it the code
    /// has no network. Sessions take `network` at create.
    #[serde(default)]
    pub network: Option<Vec<String>>,
    /// Start the code as a background job and return at once with its handle (`job.job`);
    /// collect its output and result with sandbox_job {"action": "wait", "job": ...}. For work
    /// longer than a minute: training, big builds, long downloads. `timeout` still bounds it.
    #[serde(default)]
    pub background: Option<bool>,
    /// Seconds after which a call still running returns a job handle and the output so far
    /// instead of making the client wait (the code keeps running). Default 45 (the user's
    /// jobs.detach_after_s); 0 waits to the end. Only matters when `timeout` is longer.
    #[serde(default)]
    pub detach_after: Option<u64>,
}

/// Result of `sandbox_execute`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecuteOutput {
    /// Language the code ran as.
    pub language: String,
    /// Standard output (at most 1 MiB by default; see `truncated`).
    pub stdout: String,
    /// Standard error, including compiler messages and tracebacks.
    pub stderr: String,
    /// Exit code: 0 is success; 128+N means killed by signal N (137: killed). Absent while
    /// the code still runs as a job (see `job`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Time the program took inside the sandbox (compile and run), in milliseconds.
    pub duration_ms: u64,
    /// True when the time limit expired and the program was killed.
    pub timed_out: bool,
    /// True when output went beyond the cap and was cut.
    pub truncated: bool,
    /// Where the program stopped: "build" (compilation failed) or "run".
    pub phase: String,
    /// The session the code ran in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// True when the session's interpreter had to be restarted, so variables
    /// defined by earlier executes are gone (files are kept).
    pub state_lost: bool,
    /// A plain-words explanation when something unusual happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Files the code wrote to /outputs during this execute. PNG, JPEG, GIF and WebP images also
    /// come back as image content, SVG as an embedded resource; matplotlib figures are saved
    /// there automatically. In a session, files not included (and those beyond the count cap)
    /// come back as resource links (sandbox://sessions/<session>/outputs/<file>).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactInfo>,
    /// Present when the code runs (or ran) as a background job: its handle (`job.job`) and
    /// state. While it runs, stdout and stderr hold its output so far; collect the rest and
    /// the result with sandbox_job {"action": "wait", "job": ...}.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobInfo>,
}

/// A file the code wrote to /outputs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ArtifactInfo {
    /// Path inside the sandbox, for example "/outputs/figure-1.png".
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type, for example "image/png".
    pub mime: String,
    /// True when the file's content is included in this result (image content, or an
    /// embedded resource for SVG).
    pub returned: bool,
    /// For a matplotlib figure: what the chart shows (size; per axes the title, labels,
    /// scales and limits; per series its kind, label, number of points and ranges), as the
    /// sandbox's matplotlib backend wrote it into the PNG, so a model whose client drops
    /// images still knows the chart. Written inside the sandbox: as trusted as its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where to find the files listed without content, in the tools' words.
fn artifacts_note(session: Option<&str>) -> String {
    match session {
        Some(session) => format!(
            "Files listed under artifacts without content are linked as resources (resources/read) and can be read with sandbox_file_ops {{\"session\": \"{session}\", \"operation\": \"read\", \"path\": <path>}}."
        ),
        None => "Files listed under artifacts without content are gone with this sandbox; run in a session (sandbox_session) to read them with sandbox_file_ops, or print them.".to_string(),
    }
}

impl From<ExecutionOutcome> for ExecuteOutput {
    fn from(mut outcome: ExecutionOutcome) -> Self {
        if outcome.artifacts.iter().any(|artifact| artifact.content.is_none()) {
            outcome.notes.push(artifacts_note(outcome.session.as_deref()));
        }
        let artifacts = outcome
            .artifacts
            .iter()
            .map(|artifact| ArtifactInfo {
                path: artifact.path.clone(),
                size: artifact.size,
                mime: artifact.mime.to_string(),
                returned: artifact.content.is_some(),
                description: artifact.description.clone(),
            })
            .collect();
        Self {
            artifacts,
            language: outcome.language.name().to_string(),
            stdout: outcome.stdout,
            stderr: outcome.stderr,
            exit_code: Some(outcome.exit_code),
            duration_ms: outcome.duration_ms,
            timed_out: outcome.timed_out,
            truncated: outcome.truncated,
            phase: outcome.phase.name().to_string(),
            session: outcome.session,
            state_lost: outcome.state_lost,
            note: (!outcome.notes.is_empty()).then(|| outcome.notes.join(" ")),
            job: outcome.job,
        }
    }
}

impl From<JobProgress> for ExecuteOutput {
    fn from(progress: JobProgress) -> Self {
        Self {
            language: progress.language.name().to_string(),
            stdout: progress.stdout,
            stderr: progress.stderr,
            exit_code: None,
            duration_ms: progress.info.elapsed_ms,
            timed_out: false,
            truncated: false,
            phase: "run".to_string(),
            session: progress.info.session.clone(),
            state_lost: false,
            note: (!progress.notes.is_empty()).then(|| progress.notes.join(" ")),
            artifacts: Vec::new(),
            job: Some(progress.info),
        }
    }
}

impl ExecuteOutput {
    /// The short text rendering that accompanies the structured result.
    pub(crate) fn render(&self) -> String {
        let mut status = match (self.exit_code, &self.job) {
            (Some(exit_code), _) => format!("[{}] exit code {exit_code} in {} ms", self.language, self.duration_ms),
            (None, Some(job)) => format!(
                "[{}] still running as job {} ({} ms so far)",
                self.language, job.job, self.duration_ms
            ),
            (None, None) => format!("[{}] no exit code after {} ms", self.language, self.duration_ms),
        };
        if self.phase == "build" && self.exit_code != Some(0) {
            status.push_str(" (compilation failed)");
        }
        if self.timed_out {
            status.push_str(" (timed out)");
        }
        if self.truncated {
            status.push_str(" (output truncated)");
        }
        let mut text = status;
        if !self.stdout.is_empty() {
            text.push_str("\n--- stdout ---\n");
            text.push_str(&self.stdout);
        }
        if !self.stderr.is_empty() {
            text.push_str("\n--- stderr ---\n");
            text.push_str(&self.stderr);
        }
        if !self.artifacts.is_empty() {
            text.push_str("\n--- files in /outputs ---");
            for artifact in &self.artifacts {
                let shown = if artifact.returned { " (attached)" } else { "" };
                text.push_str(&format!(
                    "\n{} ({} bytes, {}){shown}",
                    artifact.path, artifact.size, artifact.mime
                ));
                if let Some(description) = &artifact.description {
                    for line in description.lines() {
                        text.push_str("\n    ");
                        text.push_str(line);
                    }
                }
            }
        }
        if let Some(note) = &self.note {
            text.push_str("\n--- note ---\n");
            text.push_str(note);
        }
        text
    }
}

#[tool_router(router = execute_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_execute",
        description = "Run code in an isolated Docker sandbox and return its output. \
Languages: python, javascript, typescript, go, rust, bash. No network unless `network` lists hosts \
the user allowed (then HTTP(S) through a proxy; HTTP_PROXY is set); 512 MiB memory; \
default time limit 30 s (`timeout` in ms). Returns stdout, stderr, exit_code, duration_ms, \
timed_out, truncated. Without `session` every call gets a fresh sandbox and nothing persists; \
with `session` (create one with sandbox_session) variables and files persist between calls.",
        output_schema = schema_for_output::<ExecuteOutput>(),
        title = "Run code in a sandbox",
        // Hints are per tool, so they must hold for every call. Code without
        // `network` has no network at all, but the same tool runs code with
        // hosts the user allowed and installs `packages` from the registries:
        // its world is open (a client that skips confirmation for closed-world
        // tools must not skip it here). Code in a session can delete the
        // session's files and write to host folders the user mounted writable:
        // destructive, and running code twice is not the same as once.
        annotations(
            title = "Run code in a sandbox",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn sandbox_execute(
        &self,
        Parameters(params): Parameters<ExecuteParams>,
        Extension(slot): Extension<OutcomeSlot>,
        context: RequestContext<RoleServer>,
    ) -> Reported {
        let span = tracing::info_span!("sandbox_execute", language = %params.language);
        async move {
            let (watch, reporter) = Reporter::start(&context, &self.log_level);
            let asker = ClientAsker::for_client(&context.peer);
            let client = client_limits::client_name(&context);
            let started = unix_now();
            let result = self.run_execute(params, watch, asker, client.as_deref()).await;
            reporter.finish().await;
            match result {
                // A client that takes tasks follows the job as a task.
                Ok(Executed::Running(progress)) if tasks::client_takes_tasks(&context) => {
                    slot.report_task(self.start_task(progress, &context))
                }
                Ok(executed) => slot.report(self.answer_executed(executed, started, &context.peer).await),
                Err(error) => slot.report(refusal(&error)),
            }
        }
        .instrument(span)
        .await
    }
}

impl SandboxServer {
    async fn run_execute(
        &self,
        params: ExecuteParams,
        watch: Watch,
        asker: UserAsker,
        client: Option<&str>,
    ) -> Result<Executed, ExecuteError> {
        let language = Language::parse(&params.language)?;
        let request = ExecuteRequest {
            language,
            code: params.code,
            timeout_ms: self.executor.timeout_ms(params.timeout)?,
            stdin: params.stdin,
            env: params.env.unwrap_or_default(),
            session: params.session,
            packages: params.packages.unwrap_or_default(),
            image: ImageChoice::from_arguments(params.ml, params.template.as_deref())?,
            network: params.network,
            asker,
            watch,
            background: params.background.unwrap_or(false),
            received: std::time::Instant::now(),
            detach_after: Some(client_limits::detach_after(
                params.detach_after.map(Duration::from_secs),
                self.executor.config().jobs.detach_after,
                client,
            )),
        };
        self.executor.execute(&request).await
    }

    /// The answer to an execute or a job's wait: the finished code's
    /// result (with its files, and the session files it changed since
    /// `started` as links), or a running job's handle and output so far.
    pub(crate) async fn answer_executed(
        &self,
        executed: Executed,
        started: u64,
        peer: &Peer<RoleServer>,
    ) -> ToolAnswer {
        match executed {
            Executed::Done(execution) => {
                let changed = self.changed_outputs(&execution, started).await;
                self.notify_changed(peer, &changed).await;
                success_or_code_error(execution, changed)
            }
            Executed::Running(progress) => {
                let output = ExecuteOutput::from(progress);
                let text = output.render();
                structured_result(&output, text, Outcome::Ok)
            }
        }
    }
}

/// The code ran: ok when it exited 0 in time, otherwise a code error with
/// its exit code (130 when cancelled) and whether the time limit expired.
/// Images come attached; of the `changed` session files, those not
/// attached come as resource links.
fn success_or_code_error(mut execution: ExecutionOutcome, changed: Vec<Resource>) -> ToolAnswer {
    let outcome = if execution.succeeded() {
        Outcome::Ok
    } else {
        Outcome::CodeError {
            exit_code: execution.exit_code,
            timed_out: execution.timed_out,
        }
    };
    let attached: Vec<ContentBlock> = execution
        .artifacts
        .iter()
        .filter_map(|artifact| match artifact.content.clone()? {
            ArtifactContent::Image(data) => Some(ContentBlock::image(data, artifact.mime)),
            ArtifactContent::Svg(text) => Some(ContentBlock::resource(ResourceContents::TextResourceContents {
                uri: format!("file://{}", artifact.path),
                mime_type: Some(artifact.mime.to_string()),
                text,
                meta: None,
            })),
        })
        .collect();
    if changed.len() > execution.artifacts.len() {
        // `changed` lists the reported files first, then the others.
        let linked = changed.len() - execution.artifacts.len();
        execution.notes.push(format!(
            "{linked} new files in /outputs beyond the cap are linked as resources in this result."
        ));
    }
    let links = resources::unattached(&execution, changed);
    let output = ExecuteOutput::from(execution);
    let text = output.render();
    let mut answer = structured_result(&output, text, outcome);
    answer.result.content.extend(attached);
    answer
        .result
        .content
        .extend(links.into_iter().map(ContentBlock::resource_link));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Phase;

    fn ran(exit_code: i64, timed_out: bool) -> ExecutionOutcome {
        ExecutionOutcome {
            language: Language::Python,
            session: None,
            stdout: String::new(),
            stderr: String::new(),
            exit_code,
            duration_ms: 5,
            timed_out,
            truncated: false,
            phase: Phase::Run,
            state_lost: false,
            notes: Vec::new(),
            artifacts: Vec::new(),
            job: None,
        }
    }

    #[test]
    fn the_outcome_follows_the_exit_code_and_the_time_limit() {
        let cases = [
            (ran(0, false), Outcome::Ok),
            (
                ran(3, false),
                Outcome::CodeError {
                    exit_code: 3,
                    timed_out: false,
                },
            ),
            (
                ran(137, true),
                Outcome::CodeError {
                    exit_code: 137,
                    timed_out: true,
                },
            ),
        ];
        for (execution, expected) in cases {
            let answer = success_or_code_error(execution, Vec::new());
            assert_eq!(answer.result.is_error, Some(expected.is_error()));
            assert_eq!(answer.outcome, expected);
        }
    }

    #[test]
    fn session_files_without_content_come_as_resource_links() {
        use crate::core::artifacts::Artifact;
        let artifact = |path: &str, content: Option<ArtifactContent>| Artifact {
            path: path.to_string(),
            size: 3,
            mime: crate::core::artifacts::mime_for(path),
            content,
            description: None,
        };
        let mut execution = ran(0, false);
        execution.session = Some("demo".into());
        execution.artifacts = vec![
            artifact("/outputs/a.png", Some(ArtifactContent::Image("iVBO".into()))),
            artifact("/outputs/b.csv", None),
        ];
        let changed = vec![
            resources::resource_for("demo", "/outputs/a.png", 3),
            resources::resource_for("demo", "/outputs/b.csv", 3),
            resources::resource_for("demo", "/outputs/c.txt", 3),
        ];
        let answer = success_or_code_error(execution.clone(), changed);
        let links: Vec<&str> = answer
            .result
            .content
            .iter()
            .filter_map(|block| block.as_resource_link().map(|link| link.uri.as_str()))
            .collect();
        assert_eq!(
            links,
            [
                "sandbox://sessions/demo/outputs/b.csv",
                "sandbox://sessions/demo/outputs/c.txt"
            ]
        );
        let text = answer.result.content[0]
            .as_text()
            .map(|t| t.text.clone())
            .unwrap_or_default();
        assert!(
            text.contains("1 new files in /outputs beyond the cap are linked"),
            "{text}"
        );
        // Stateless executes have no session to link into.
        execution.session = None;
        let answer = success_or_code_error(execution, Vec::new());
        assert!(
            answer
                .result
                .content
                .iter()
                .all(|block| block.as_resource_link().is_none())
        );
    }
}
