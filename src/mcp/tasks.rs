//! MCP Tasks, as rmcp 3.11 implements them: the tasks extension
//! (`io.modelcontextprotocol/tasks`, the design of protocol 2026-07-28).
//! For a client that declares the extension, an execute that becomes a job
//! (`background: true`, or still running at its detach deadline), and an
//! install still running at the detach deadline, answer with a task
//! instead; `tasks/get` shows it (with the call's result inline once done)
//! and `tasks/cancel` stops it. An execute's task is followed by a task of
//! this server's until its job ends: it reads the job's output, sends it as
//! progress to the call's progress token, and keeps the final result for
//! `tasks/get` until the task expires. An install's task is the install
//! itself, carried on in the background.
//! `tasks/list` and `tasks/result` do not exist in this design (rmcp
//! answers them "method not found").

use super::SandboxServer;
use super::tools::ToolAnswer;
use crate::core::jobs::{Executed, JobProgress};
use crate::core::run::cap_output;
use parking_lot::Mutex;
use rmcp::model::{
    CallToolResult, CreateTaskResult, DetailedTask, JsonObject, Notification, ProgressNotificationParam, ProgressToken,
    ServerNotification, Task, TaskPayload, TaskStatus, TaskStatusNotificationParams,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a client should poll `tasks/get`.
const POLL_INTERVAL_MS: u64 = 1000;
/// How long one read of the job by the task's follower waits (its
/// progress notifications come as often).
const FOLLOW_STEP: Duration = Duration::from_secs(1);

/// Where a task stands.
#[derive(Debug, Clone)]
enum TaskState {
    Working,
    Completed(JsonObject),
    Failed(JsonObject),
    Cancelled,
}

/// How a task's work is stopped.
#[derive(Debug, Clone)]
enum TaskWork {
    /// An execute's job (its handle).
    Job(String),
    /// An install carried on in the background.
    Install(CancellationToken),
}

#[derive(Debug)]
struct TaskEntry {
    work: TaskWork,
    created_at: String,
    updated_at: String,
    /// When it last changed (a terminal task expires `ttl` after).
    changed: Instant,
    state: TaskState,
    /// `tasks/cancel` was asked: its end is `cancelled`.
    cancel_asked: bool,
}

/// The tasks of this process (every HTTP session's server shares them;
/// task ids are random, so one caller cannot guess another's).
pub struct TaskRegistry {
    tasks: Mutex<HashMap<String, TaskEntry>>,
    ttl: Duration,
    /// Stops the followers at shutdown.
    stop: CancellationToken,
}

impl TaskRegistry {
    /// Tasks kept `ttl` after they end.
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            tasks: Mutex::new(HashMap::new()),
            ttl,
            stop: CancellationToken::new(),
        })
    }

    fn task_of(&self, id: &str, entry: &TaskEntry) -> Task {
        Task::new(
            id.to_string(),
            status_of(&entry.state),
            entry.created_at.clone(),
            entry.updated_at.clone(),
        )
        .with_ttl_ms(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
        .with_poll_interval_ms(POLL_INTERVAL_MS)
    }

    fn insert(&self, work: TaskWork) -> Task {
        let id = uuid::Uuid::new_v4().to_string();
        let now = rmcp::task_manager::current_timestamp();
        let entry = TaskEntry {
            work,
            created_at: now.clone(),
            updated_at: now,
            changed: Instant::now(),
            state: TaskState::Working,
            cancel_asked: false,
        };
        let task = self.task_of(&id, &entry);
        let mut tasks = self.tasks.lock();
        tasks.retain(|_, entry| !(is_terminal(&entry.state) && entry.changed.elapsed() > self.ttl));
        tasks.insert(id, entry);
        task
    }

    /// The task `id` with its payload (the result, once completed).
    pub fn detailed(&self, id: &str) -> Result<DetailedTask, ErrorData> {
        let tasks = self.tasks.lock();
        let entry = tasks
            .get(id)
            .filter(|entry| !(is_terminal(&entry.state) && entry.changed.elapsed() > self.ttl))
            .ok_or_else(|| unknown(id))?;
        let payload = match &entry.state {
            TaskState::Working => TaskPayload::Working,
            TaskState::Completed(result) => TaskPayload::Completed { result: result.clone() },
            TaskState::Failed(error) => TaskPayload::Failed { error: error.clone() },
            TaskState::Cancelled => TaskPayload::Cancelled,
        };
        Ok(DetailedTask::new(self.task_of(id, entry), payload))
    }

    /// The working task that follows the job `job`, if one does.
    pub fn following(&self, job: &str) -> Option<String> {
        self.tasks
            .lock()
            .iter()
            .find(|(_, entry)| {
                matches!(&entry.work, TaskWork::Job(followed) if followed == job) && !is_terminal(&entry.state)
            })
            .map(|(id, _)| id.clone())
    }

    /// Marks the task as asked to stop; returns its work while it goes on.
    fn ask_cancel(&self, id: &str) -> Result<Option<TaskWork>, ErrorData> {
        let mut tasks = self.tasks.lock();
        let entry = tasks.get_mut(id).ok_or_else(|| unknown(id))?;
        if is_terminal(&entry.state) {
            return Ok(None);
        }
        entry.cancel_asked = true;
        Ok(Some(entry.work.clone()))
    }

    /// The task's end; returns it as it now stands.
    fn finish(&self, id: &str, state: TaskState) -> Option<DetailedTask> {
        {
            let mut tasks = self.tasks.lock();
            let entry = tasks.get_mut(id)?;
            entry.state = match state {
                TaskState::Completed(_) if entry.cancel_asked => TaskState::Cancelled,
                state => state,
            };
            entry.updated_at = rmcp::task_manager::current_timestamp();
            entry.changed = Instant::now();
        }
        self.detailed(id).ok()
    }

    /// Stops following the tasks (their jobs go on, as jobs).
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

fn status_of(state: &TaskState) -> TaskStatus {
    match state {
        TaskState::Working => TaskStatus::Working,
        TaskState::Completed(_) => TaskStatus::Completed,
        TaskState::Failed(_) => TaskStatus::Failed,
        TaskState::Cancelled => TaskStatus::Cancelled,
    }
}

fn is_terminal(state: &TaskState) -> bool {
    !matches!(state, TaskState::Working)
}

fn unknown(id: &str) -> ErrorData {
    ErrorData::invalid_params(
        format!("no task `{id}`: it never existed here, or it ended and expired"),
        None,
    )
}

/// True when the client of this call takes a task for an answer.
pub fn client_takes_tasks(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|capabilities| capabilities.supports_tasks())
}

/// A JSON object of `value` (a result or an error).
fn object_of(value: impl serde::Serialize) -> JsonObject {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => JsonObject::new(),
    }
}

impl SandboxServer {
    /// Hands the job of `progress` to a new task and starts following it;
    /// returns the call's answer.
    pub(crate) fn start_task(&self, progress: JobProgress, context: &RequestContext<RoleServer>) -> CreateTaskResult {
        let task = self.tasks.insert(TaskWork::Job(progress.info.job.clone()));
        let follower = Follower {
            server: self.clone(),
            task: task.task_id.clone(),
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
            started: progress.info.since(),
        };
        tokio::spawn(follower.follow(progress));
        CreateTaskResult::new(task)
    }

    /// Carries `work` (an install under way, stopped by `cancel`) on as a
    /// task; returns the call's answer. Its end is the answer `work` gives.
    pub(crate) fn carry_on_as_task(
        &self,
        work: tokio::task::JoinHandle<ToolAnswer>,
        cancel: CancellationToken,
    ) -> CreateTaskResult {
        let task = self.tasks.insert(TaskWork::Install(cancel));
        let (tasks, id) = (self.tasks.clone(), task.task_id.clone());
        tokio::spawn(async move {
            let end = match work.await {
                Ok(answer) => {
                    let mut result = answer.into_result();
                    result.result_type = None;
                    TaskState::Completed(object_of(result))
                }
                Err(error) => TaskState::Failed(object_of(ErrorData::internal_error(
                    format!("the task's work stopped: {error}"),
                    None,
                ))),
            };
            tasks.finish(&id, end);
        });
        CreateTaskResult::new(task)
    }

    /// `tasks/cancel`: asks the task's work to stop (its end is `cancelled`).
    pub(crate) async fn cancel_task_job(&self, id: &str) -> Result<(), ErrorData> {
        match self.tasks.ask_cancel(id)? {
            Some(TaskWork::Job(job)) => {
                if let Err(error) = self.executor.job_stop(&job).await {
                    tracing::info!(%error, task = id, "could not stop a task's job");
                }
            }
            Some(TaskWork::Install(cancel)) => cancel.cancel(),
            None => {}
        }
        Ok(())
    }
}

/// Follows one task's job to its end.
struct Follower {
    server: SandboxServer,
    task: String,
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    /// Unix seconds when the job started (its changed session files are
    /// linked in the result).
    started: u64,
}

impl Follower {
    async fn follow(self, first: JobProgress) {
        let job = first.info.job.clone();
        let mut output = Output::new(self.server.executor.config().max_output_bytes);
        output.add(&first.stdout, &first.stderr);
        let mut reports = 0.0;
        let stop = self.server.tasks.stop.clone();
        let end = loop {
            let step = self.server.executor.job_wait(&job, FOLLOW_STEP, &stop).await;
            match step {
                Ok(Executed::Running(progress)) => {
                    output.add(&progress.stdout, &progress.stderr);
                    if stop.is_cancelled() {
                        return;
                    }
                    if let Some(token) = &self.token {
                        reports += 1.0;
                        let message = format!(
                            "running for {} s; latest output:\n{}",
                            progress.info.elapsed_ms / 1000,
                            tail(&progress.stdout, &progress.stderr)
                        );
                        let notification = ProgressNotificationParam::new(token.clone(), reports).with_message(message);
                        let _ = self.peer.notify_progress(notification).await;
                    }
                }
                Ok(Executed::Done(mut outcome)) => {
                    let (stdout, stderr, cut) = output.finish(&outcome.stdout, &outcome.stderr);
                    outcome.stdout = stdout;
                    outcome.stderr = stderr;
                    outcome.truncated |= cut;
                    let answer = self
                        .server
                        .answer_executed(Executed::Done(outcome), self.started, &self.peer)
                        .await;
                    let mut result: CallToolResult = answer.into_result();
                    result.result_type = None;
                    break TaskState::Completed(object_of(result));
                }
                Err(error) => {
                    let text = super::tools::error_message(&error);
                    break TaskState::Failed(object_of(ErrorData::internal_error(text, None)));
                }
            }
        };
        if let Some(detailed) = self.server.tasks.finish(&self.task, end) {
            let notification = ServerNotification::TaskStatusNotification(Notification::new(
                TaskStatusNotificationParams::new(detailed),
            ));
            if let Err(error) = self.peer.send_notification(notification).await {
                tracing::debug!(%error, "cannot send a task status notification");
            }
        }
    }
}

/// A task's output across the job's reads, within the output cap.
struct Output {
    cap: u64,
    stdout: String,
    stderr: String,
    cut: bool,
}

impl Output {
    fn new(cap: u64) -> Self {
        Self {
            cap,
            stdout: String::new(),
            stderr: String::new(),
            cut: false,
        }
    }

    fn add(&mut self, stdout: &str, stderr: &str) {
        self.cut |= push_capped(&mut self.stdout, stdout, self.cap);
        self.cut |= push_capped(&mut self.stderr, stderr, self.cap);
    }

    /// Everything, with the last read's output; true when some was cut.
    fn finish(mut self, stdout: &str, stderr: &str) -> (String, String, bool) {
        self.add(stdout, stderr);
        (self.stdout, self.stderr, self.cut)
    }
}

/// Appends what fits under `cap` bytes (whole characters); true when some
/// did not.
fn push_capped(into: &mut String, text: &str, cap: u64) -> bool {
    into.push_str(text);
    cap_output(into, cap)
}

/// The last lines of a read's output, for a progress message.
fn tail(stdout: &str, stderr: &str) -> String {
    let newest = if stdout.trim().is_empty() { stderr } else { stdout };
    let lines: Vec<&str> = newest.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_kept_whole_within_the_cap() {
        let mut output = Output::new(8);
        output.add("abc", "");
        output.add("déf", "x");
        let (stdout, stderr, cut) = output.finish("ghij", "y");
        // "abc" + "déf" is 7 bytes; of "ghij" one more fits.
        assert_eq!((stdout.as_str(), stderr.as_str(), cut), ("abcdéfg", "xy", true));
        assert_eq!(tail("a\nb\nc\nd\ne\nf\n", ""), "b\nc\nd\ne\nf");
        assert_eq!(tail("", "warn\n"), "warn");
    }

    #[test]
    fn tasks_end_cancelled_when_asked_and_unknown_ids_are_invalid_params() {
        let registry = TaskRegistry::new(Duration::from_secs(60));
        let task = registry.insert(TaskWork::Job("s/abc".into()));
        assert_eq!(task.status, TaskStatus::Working);
        let asked = registry.ask_cancel(&task.task_id).ok().flatten();
        assert!(matches!(asked, Some(TaskWork::Job(job)) if job == "s/abc"));
        let ended = registry
            .finish(&task.task_id, TaskState::Completed(JsonObject::new()))
            .map(|detailed| detailed.status());
        assert_eq!(ended, Some(TaskStatus::Cancelled));
        assert!(
            registry.ask_cancel(&task.task_id).ok().flatten().is_none(),
            "already over"
        );
        let error = registry.detailed("nope").err().map(|error| error.code);
        assert_eq!(error, Some(rmcp::model::ErrorCode::INVALID_PARAMS));
    }
}
