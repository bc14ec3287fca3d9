//! `sandbox_job`: collect the executes that run on as background jobs:
//! wait for one (its new output, then its result), its status, cancel it,
//! list them.

use super::execute::ExecuteOutput;
use super::{OutcomeSlot, Reported, refusal, structured_result};
use crate::clock::unix_now;
use crate::core::jobs::{Executed, JobInfo};
use crate::mcp::{SandboxServer, client_limits};
use crate::security::audit::Outcome;
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long `wait` waits when the call does not say.
const DEFAULT_WAIT_S: u64 = 30;
/// The longest `wait` a call may ask for (clients cut calls short).
const MAX_WAIT_S: u64 = 300;

/// What to do with jobs.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    /// Wait for the job up to `wait` seconds: its output since the last read, and its result
    /// once it ended (the job is then collected).
    Wait,
    /// Its state, without reading its output.
    Status,
    /// Stop it; returns its result with what it printed.
    Cancel,
    /// Every job: this server's and those kept in running sessions.
    List,
}

/// Arguments of `sandbox_job`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobParams {
    /// wait, status, cancel or list.
    pub action: JobAction,
    /// The job's handle, as sandbox_execute returned it in `job.job` (for example
    /// "analysis/3f9a0c1b2d4e", or "3f9a0c1b2d4e" for a job outside sessions). Not for list.
    #[serde(default)]
    pub job: Option<String>,
    /// wait: seconds to wait for the job to end before returning what it printed so far
    /// (default 30, at most 300). Keep it under your client's own request timeout.
    #[serde(default)]
    pub wait: Option<u64>,
}

/// Result of `sandbox_job`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobOutput {
    /// wait and cancel: the job's output since the last read and, once it ended, its result
    /// (exit_code, artifacts, note) in the same shape as sandbox_execute's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ExecuteOutput>,
    /// status and list: the jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<JobInfo>>,
}

#[tool_router(router = job_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_job",
        description = "Collect code that runs as a background job: sandbox_execute returns a `job` \
handle when called with `background: true`, or when the code is still running after `detach_after` \
seconds (default 45) instead of making the client wait. `wait` returns the output printed since the \
last read and, once the job ended, its result (exit_code, files) as sandbox_execute would; call it \
again while the job runs. `status` shows its state, `cancel` stops it, `list` shows every job. A \
session with a running job refuses other executes until the job is collected or cancelled.",
        output_schema = schema_for_output::<JobOutput>(),
        title = "Collect a background job",
        // Waits and lists read; cancel stops code, and collecting a result
        // hands it over once.
        annotations(
            title = "Collect a background job",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn sandbox_job(
        &self,
        Parameters(params): Parameters<JobParams>,
        Extension(slot): Extension<OutcomeSlot>,
        context: RequestContext<RoleServer>,
    ) -> Reported {
        let job = params.job.unwrap_or_default();
        let executor = &self.executor;
        if matches!(params.action, JobAction::Wait | JobAction::Cancel)
            && let Some(task) = self.tasks.following(&job)
        {
            // Two readers would split its output between them.
            return slot.report(super::tool_error(format!(
                "job {job} is followed as the MCP task {task}: use tasks/get and tasks/cancel for it"
            )));
        }
        let answer = match params.action {
            JobAction::List => {
                let jobs = executor.job_list().await;
                let text = render_jobs(&jobs);
                structured_result(
                    &JobOutput {
                        result: None,
                        jobs: Some(jobs),
                    },
                    text,
                    Outcome::Ok,
                )
            }
            JobAction::Status => match executor.job_status(&job).await {
                Ok(info) => {
                    let text = render_jobs(std::slice::from_ref(&info));
                    structured_result(
                        &JobOutput {
                            result: None,
                            jobs: Some(vec![info]),
                        },
                        text,
                        Outcome::Ok,
                    )
                }
                Err(error) => refusal(&error),
            },
            JobAction::Wait | JobAction::Cancel => {
                let executed = if params.action == JobAction::Wait {
                    let asked = Duration::from_secs(params.wait.unwrap_or(DEFAULT_WAIT_S).min(MAX_WAIT_S));
                    // Under the client's own limit, where it is known: what
                    // a wait read after the client gave up would be lost.
                    let client = client_limits::client_name(&context);
                    let wait = client_limits::detach_after(Some(asked), asked, client.as_deref());
                    executor.job_wait(&job, wait, &context.ct).await
                } else {
                    executor.job_cancel(&job).await
                };
                match executed {
                    Ok(executed) => {
                        let since = started_at(&executed);
                        let mut answer = self.answer_executed(executed, since, &context.peer).await;
                        // The execute's shape, under `result`.
                        let output = answer.result.structured_content.take();
                        answer.result.structured_content = Some(serde_json::json!({ "result": output }));
                        answer
                    }
                    Err(error) => refusal(&error),
                }
            }
        };
        slot.report(answer)
    }
}

/// When the job started, in Unix seconds (the session files it changed
/// since then are linked in its result).
fn started_at(executed: &Executed) -> u64 {
    match executed {
        Executed::Done(outcome) => outcome
            .job
            .as_ref()
            .map_or_else(|| unix_now().saturating_sub(1), JobInfo::since),
        Executed::Running(progress) => progress.info.since(),
    }
}

fn render_jobs(jobs: &[JobInfo]) -> String {
    if jobs.is_empty() {
        return "No jobs.".to_string();
    }
    jobs.iter().map(JobInfo::describe).collect::<Vec<_>>().join("\n")
}
