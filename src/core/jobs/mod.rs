//! Jobs: executes that outlive the call that started them (issue #16). A
//! job is a run whose output and result the sandbox's runner keeps until
//! they are collected (`images/runner/runner_jobs.py`), so a session's job
//! survives this server and is found by the next one. This module holds
//! this server's table of the jobs it started or collects, the runner
//! queries, and how a finished job's reads become an execute's outcome;
//! the executor (`executor/jobs.rs`) ties them to sessions and sandboxes.

mod active;
mod detach;
mod query;

pub use active::{ActiveRun, OwnedRun, RunEnd};
pub use detach::{Detachable, JobStarted, Ran};
pub use query::{forget, keep, list, read};

use crate::config::JobSettings;
use crate::core::connection::RunnerConnection;
use crate::core::protocol::JobReport;
use crate::core::run::ExecutionOutcome;
use crate::runtime::Language;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

/// Failures of job operations.
#[derive(Debug, Error)]
pub enum JobError {
    #[error(
        "no job `{0}`: it was collected already, expired (finished jobs are kept for jobs.keep_s), or its sandbox is gone; `sandbox_job {{action: \"list\"}}` shows the jobs there are"
    )]
    Unknown(String),
    #[error(
        "{max} background jobs are running already (jobs.max_running): wait for one with sandbox_job {{action: \"wait\"}} or cancel one"
    )]
    TooMany { max: usize },
    #[error("`job` is required for this action: pass the id a background execute returned")]
    JobRequired,
    #[error("the job's sandbox stopped answering: {0}")]
    Unreachable(String),
}

/// Where a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPlace {
    /// In a session: the job id is `<session>/<run id>`, and the session's
    /// runner keeps it across servers.
    Session(String),
    /// In a sandbox of its own, kept until the job is collected or expires;
    /// lost with this server.
    Stateless,
}

/// A job's handle as callers see it: `<session>/<run id>` or `<run id>`.
pub fn job_id(place: &JobPlace, run_id: &str) -> String {
    match place {
        JobPlace::Session(session) => format!("{session}/{run_id}"),
        JobPlace::Stateless => run_id.to_string(),
    }
}

/// The session and run id a handle names.
pub fn parse_job_id(id: &str) -> (Option<&str>, &str) {
    match id.split_once('/') {
        Some((session, run)) => (Some(session), run),
        None => (None, id),
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
        }
    }
}

/// A job as `sandbox_job` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct JobInfo {
    /// The handle to pass as `job`.
    pub job: String,
    /// The session it runs in (none: a sandbox of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// "running" or "done" (done: its result waits to be collected with `wait`).
    pub state: JobState,
    /// The first line of its code.
    pub code: String,
    /// When it started, RFC 3339 (UTC).
    pub started: String,
    /// How long it ran, so far or in all, in milliseconds.
    pub elapsed_ms: u64,
    /// Output it wrote so far, in bytes (stdout and stderr together).
    pub output_bytes: u64,
}

impl JobInfo {
    /// Unix seconds when it started, by this server's clock (the session
    /// files it changed since are linked in its result).
    pub fn since(&self) -> u64 {
        crate::clock::unix_now().saturating_sub(self.elapsed_ms / 1000 + 1)
    }

    /// One line for a text rendering.
    pub fn describe(&self) -> String {
        format!(
            "{} [{}] {} s, {} bytes of output: {}",
            self.job,
            self.state.name(),
            self.elapsed_ms / 1000,
            self.output_bytes,
            self.code
        )
    }

    pub fn from_report(place: &JobPlace, report: &JobReport) -> Self {
        let started = chrono::DateTime::from_timestamp_millis(i64::try_from(report.started_ms).unwrap_or(i64::MAX))
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Self {
            job: job_id(place, &report.job),
            session: match place {
                JobPlace::Session(session) => Some(session.clone()),
                JobPlace::Stateless => None,
            },
            state: match report.state {
                crate::core::protocol::JobState::Running => JobState::Running,
                crate::core::protocol::JobState::Done => JobState::Done,
            },
            code: report.label.clone(),
            started,
            elapsed_ms: report.elapsed_ms,
            output_bytes: report.stdout_bytes + report.stderr_bytes,
        }
    }
}

/// What an execute, or a wait for a job, gives back.
#[derive(Debug)]
pub enum Executed {
    /// The code ran to its end (a job's result carries `job`).
    Done(ExecutionOutcome),
    /// It runs on as a job.
    Running(JobProgress),
}

/// A running job's state and the output it wrote since the last read.
#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    pub info: JobInfo,
    pub language: Language,
    pub stdout: String,
    pub stderr: String,
    pub notes: Vec<String>,
}

impl JobProgress {
    /// A job's answer: its handle, its output since the last read, the
    /// `notes` so far and, while it runs, how to go on.
    pub fn new(info: JobInfo, language: Language, stdout: String, stderr: String, mut notes: Vec<String>) -> Self {
        if info.state == JobState::Running {
            notes.push(still_running_note(&info));
        }
        Self {
            info,
            language,
            stdout,
            stderr,
            notes,
        }
    }
}

/// The note of a running job's answer: what it is and how to go on.
pub fn still_running_note(info: &JobInfo) -> String {
    format!(
        "Still running as job {job} ({seconds} s so far); this is its output since the last read. Collect the rest and its result with sandbox_job {{\"action\": \"wait\", \"job\": \"{job}\"}}, or stop it with \"cancel\".",
        job = info.job,
        seconds = info.elapsed_ms / 1000,
    )
}

/// The note of a job that ended before its call answered.
pub fn ended_note(info: &JobInfo) -> String {
    format!(
        "It ended as job {job}: collect its result with sandbox_job {{\"action\": \"wait\", \"job\": \"{job}\"}}.",
        job = info.job,
    )
}

/// What removes a stateless job's sandbox (its container and network).
pub type Cleanup = BoxFuture<'static, ()>;

/// A job this server started (or adopted from a session's runner).
pub struct Job {
    pub id: String,
    pub run_id: String,
    pub place: JobPlace,
    pub language: Language,
    pub timeout_ms: u64,
    /// Stateless: the connection to its sandbox's runner (a session's job
    /// uses the session's current connection).
    pub connection: Option<Arc<RunnerConnection>>,
    /// Its run, when this server started it (`None`: adopted).
    run: Option<ActiveRun>,
    /// Stateless: what removes its sandbox once collected.
    cleanup: Mutex<Option<Cleanup>>,
    /// When this server saw it end (for the expiry of uncollected results).
    ended_at: Mutex<Option<Instant>>,
    /// When this server started it or found it in a session's runner.
    found_at: Instant,
    /// One reader at a time, and the output read from the runner but not
    /// yet handed to a caller (a wait that failed or was dropped midway).
    pub reading: tokio::sync::Mutex<Unread>,
}

/// Output read from a job's runner and not handed over yet.
#[derive(Debug, Default)]
pub struct Unread {
    pub stdout: String,
    pub stderr: String,
}

impl Unread {
    /// Hands it all over: (stdout, stderr).
    pub fn take(&mut self) -> (String, String) {
        (std::mem::take(&mut self.stdout), std::mem::take(&mut self.stderr))
    }
}

/// What a new job is.
pub struct NewJob {
    pub run_id: String,
    pub place: JobPlace,
    pub language: Language,
    pub timeout_ms: u64,
    pub connection: Option<Arc<RunnerConnection>>,
    pub run: Option<ActiveRun>,
}

impl Job {
    pub fn new(new: NewJob) -> Self {
        Self {
            id: job_id(&new.place, &new.run_id),
            run_id: new.run_id,
            place: new.place,
            language: new.language,
            timeout_ms: new.timeout_ms,
            connection: new.connection,
            run: new.run,
            cleanup: Mutex::new(None),
            ended_at: Mutex::new(None),
            found_at: Instant::now(),
            reading: tokio::sync::Mutex::new(Unread::default()),
        }
    }

    pub fn session(&self) -> Option<&str> {
        match &self.place {
            JobPlace::Session(session) => Some(session),
            JobPlace::Stateless => None,
        }
    }

    /// Its run, when this server started it.
    pub fn run(&self) -> Option<&ActiveRun> {
        self.run.as_ref()
    }

    pub fn set_cleanup(&self, cleanup: Cleanup) {
        *self.cleanup.lock() = Some(cleanup);
    }

    /// When this server saw it end: a read said so, or its run's task ended.
    fn ended_at(&self) -> Option<Instant> {
        let mut ended_at = self.ended_at.lock();
        if ended_at.is_none() && self.run.as_ref().is_some_and(ActiveRun::has_ended) {
            *ended_at = Some(Instant::now());
        }
        *ended_at
    }

    /// True while it runs, as far as this server knows.
    fn is_running(&self) -> bool {
        self.ended_at().is_none()
    }

    pub fn mark_ended(&self) {
        self.ended_at.lock().get_or_insert_with(Instant::now);
    }
}

/// This server's jobs.
pub struct JobTable {
    settings: JobSettings,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl JobTable {
    pub fn new(settings: JobSettings) -> Self {
        Self {
            settings,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses a new background job when `jobs.max_running` of this
    /// server's run already (a stateless job counts until collected: it
    /// holds a sandbox).
    pub fn check_room(&self) -> Result<(), JobError> {
        let running = self
            .jobs
            .lock()
            .values()
            .filter(|job| job.run().is_some() && (job.place == JobPlace::Stateless || job.is_running()))
            .count();
        if running >= self.settings.max_running {
            return Err(JobError::TooMany {
                max: self.settings.max_running,
            });
        }
        Ok(())
    }

    pub fn insert(&self, job: Arc<Job>) {
        self.jobs.lock().insert(job.id.clone(), job);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().get(id).cloned()
    }

    /// Every job in the table.
    pub fn all(&self) -> Vec<Arc<Job>> {
        let mut jobs: Vec<Arc<Job>> = self.jobs.lock().values().cloned().collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        jobs
    }

    /// Takes the job out of the table and removes its sandbox, if it had one.
    pub async fn remove(&self, id: &str) {
        let job = self.jobs.lock().remove(id);
        if let Some(job) = job {
            let cleanup = job.cleanup.lock().take();
            if let Some(cleanup) = cleanup {
                cleanup.await;
            }
        }
    }

    /// The jobs whose results waited longer than `jobs.keep_s`.
    pub fn expired(&self) -> Vec<Arc<Job>> {
        let keep = self.settings.keep;
        self.jobs
            .lock()
            .values()
            .filter(|job| {
                // A job found in a session's runner and not seen to end is
                // let go after as long (it lives on in its session).
                (job.run().is_none() && job.found_at.elapsed() >= keep)
                    || job.ended_at().is_some_and(|ended| ended.elapsed() >= keep)
            })
            .cloned()
            .collect()
    }
}
