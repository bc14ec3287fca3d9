//! Collecting jobs (`sandbox_job`): wait for one (its new output, and its
//! result once it ended), its status, cancel it, list them. A session's
//! job is found in the session's runner even when another server, or this
//! one before a restart, started it; a stateless job lives in this
//! server's table only.

use super::Executor;
use crate::core::connection::RunnerConnection;
use crate::core::error::ExecuteError;
use crate::core::jobs::{
    Executed, Job, JobError, JobInfo, JobPlace, JobProgress, NewJob, forget, list, parse_job_id, read,
};
use crate::core::protocol::{HostMessage, JobReport};
use crate::core::run::{CANCEL_GRACE, ExecuteRequest, RunFailure, outcome};
use crate::runtime::Language;
use crate::security::audit::{AuditEvent, JobEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a wait reads a job it did not start (it hears the end of
/// one it started at once).
const POLL: Duration = Duration::from_millis(250);
/// How long the finished-job sweep sleeps between rounds.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Executor {
    /// Waits up to `up_to` for the job to end (or `cancel`): its output
    /// since the last read and, once it ended, its result (the job is then
    /// collected and forgotten).
    pub async fn job_wait(
        &self,
        id: &str,
        up_to: Duration,
        cancel: &CancellationToken,
    ) -> Result<Executed, ExecuteError> {
        let job = self.find_job(id).await?;
        let deadline = Instant::now() + up_to;
        let cap = usize::try_from(self.config.max_output_bytes).unwrap_or(usize::MAX);
        // One reader at a time; what a failed or dropped wait read waits in
        // `unread` for the next.
        let mut unread = job.reading.lock().await;
        if let Some(session) = job.session() {
            // A session whose job is being collected is in use.
            self.sessions.note_activity(session).await;
        }
        loop {
            let connection = self.job_connection(&job).await?;
            let Some(report) = read(&connection, &job.run_id).await? else {
                return self.job_gone(&job).await;
            };
            unread.stdout.push_str(report.stdout.as_deref().unwrap_or(""));
            unread.stderr.push_str(report.stderr.as_deref().unwrap_or(""));
            let full = unread.stdout.len() >= cap || unread.stderr.len() >= cap;
            if report.unread && !full {
                // More output waits than one read returns.
                continue;
            }
            if report.state == crate::core::protocol::JobState::Done {
                job.mark_ended();
                let (stdout, stderr) = unread.take();
                if !report.unread {
                    return Ok(Executed::Done(
                        self.collect(&job, &connection, report, stdout, stderr).await,
                    ));
                }
                let mut progress = self.progress(&job, &report, stdout, stderr);
                progress.notes.push(
                    "The job has ended and more of its output waits: wait again to read it and get the result.".into(),
                );
                return Ok(Executed::Running(progress));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || full || cancel.is_cancelled() {
                let (stdout, stderr) = unread.take();
                return Ok(Executed::Running(self.progress(&job, &report, stdout, stderr)));
            }
            self.until_end(&job, left, cancel).await;
            if cancel.is_cancelled() {
                // Its answer would go nowhere: what was read waits in
                // `unread`, and the job is not collected.
                return Err(ExecuteError::Cancelled);
            }
        }
    }

    /// The job's state, without reading its output.
    pub async fn job_status(&self, id: &str) -> Result<JobInfo, ExecuteError> {
        let job = self.find_job(id).await?;
        let connection = self.job_connection(&job).await?;
        let reports = list(&connection).await?;
        let report = reports
            .iter()
            .find(|report| report.job == job.run_id)
            .ok_or_else(|| JobError::Unknown(id.to_string()))?;
        if report.state == crate::core::protocol::JobState::Done {
            // Adopted jobs count as running until seen ended.
            job.mark_ended();
        }
        Ok(JobInfo::from_report(&job.place, report))
    }

    /// Stops the job and returns its result (what it printed until then).
    pub async fn job_cancel(&self, id: &str) -> Result<Executed, ExecuteError> {
        self.job_stop(id).await?;
        self.job_wait(id, CANCEL_GRACE, &CancellationToken::new()).await
    }

    /// Asks the job to stop, without waiting for it.
    pub async fn job_stop(&self, id: &str) -> Result<(), ExecuteError> {
        let job = self.find_job(id).await?;
        if let Some(run) = job.run() {
            run.watch.cancel.cancel();
        }
        // Straight to the runner too: the run's own task may have ended
        // (its stream broke) while the job runs on.
        let connection = self.job_connection(&job).await?;
        let payload = HostMessage::Cancel { id: &job.run_id }
            .encode()
            .map_err(ExecuteError::Docker)?;
        connection.send(&payload).await.map_err(ExecuteError::Docker)?;
        self.audit
            .record(AuditEvent::Job(JobEvent::Cancelled { job: job.id.clone() }));
        Ok(())
    }

    /// This server's jobs, and the jobs kept in every running session.
    pub async fn job_list(&self) -> Vec<JobInfo> {
        let mut found: Vec<JobInfo> = Vec::new();
        for job in self.jobs.all() {
            if let (JobPlace::Stateless, Some(connection)) = (&job.place, &job.connection)
                && let Ok(reports) = list(connection).await
            {
                found.extend(
                    reports
                        .iter()
                        .filter(|report| report.job == job.run_id)
                        .map(|report| JobInfo::from_report(&job.place, report)),
                );
            }
        }
        let sessions = self.sessions.running_names().await.unwrap_or_default();
        let asked = sessions.iter().map(|name| async move {
            let connection = self.sessions.runner(name).await.ok()?;
            let reports = list(&connection).await.ok()?;
            let place = JobPlace::Session(name.clone());
            Some(
                reports
                    .iter()
                    .map(|report| JobInfo::from_report(&place, report))
                    .collect::<Vec<_>>(),
            )
        });
        for reports in futures::future::join_all(asked).await.into_iter().flatten() {
            found.extend(reports);
        }
        found.sort_by(|a, b| a.started.cmp(&b.started).then(a.job.cmp(&b.job)));
        found
    }

    /// Drops the results nobody collected within `jobs.keep_s`, now and
    /// then, until shutdown.
    pub(super) fn start_job_sweep(&self) {
        let jobs = self.jobs.clone();
        let audit = self.audit.clone();
        let sessions = self.sessions.clone();
        let stop = self.background.clone();
        self.background.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(SWEEP_EVERY) => {}
                    () = stop.stopping() => return,
                }
                for job in jobs.expired() {
                    // A job found in a session's runner is only let go: the
                    // runner keeps its result, which may be fresh.
                    let connection = match (&job.place, &job.connection, job.run()) {
                        (_, _, None) => None,
                        (JobPlace::Session(name), _, Some(_)) => sessions.runner(name).await.ok(),
                        (JobPlace::Stateless, connection, Some(_)) => connection.clone(),
                    };
                    if let Some(connection) = connection {
                        let _ = forget(&connection, &job.run_id).await;
                    }
                    jobs.remove(&job.id).await;
                    audit.record(AuditEvent::Job(JobEvent::Expired { job: job.id.clone() }));
                }
            }
        });
    }

    /// The job `id`: this server's, or one kept in its session's runner.
    async fn find_job(&self, id: &str) -> Result<Arc<Job>, ExecuteError> {
        if id.is_empty() {
            return Err(JobError::JobRequired.into());
        }
        if let Some(job) = self.jobs.get(id) {
            return Ok(job);
        }
        let (Some(session), run_id) = parse_job_id(id) else {
            return Err(JobError::Unknown(id.to_string()).into());
        };
        let connection = self
            .sessions
            .runner(session)
            .await
            .map_err(|_| JobError::Unknown(id.to_string()))?;
        let reports = list(&connection).await?;
        if !reports.iter().any(|report| report.job == run_id) {
            return Err(JobError::Unknown(id.to_string()).into());
        }
        let language = self
            .sessions
            .get(session)
            .await
            .ok()
            .and_then(|info| Language::parse(&info.language).ok())
            .unwrap_or(Language::Bash);
        let job = Arc::new(Job::new(NewJob {
            run_id: run_id.to_string(),
            place: JobPlace::Session(session.to_string()),
            language,
            timeout_ms: self.config.max_timeout_ms,
            connection: None,
            run: None,
        }));
        self.jobs.insert(job.clone());
        Ok(job)
    }

    async fn job_connection(&self, job: &Job) -> Result<Arc<RunnerConnection>, ExecuteError> {
        match (&job.place, &job.connection) {
            (JobPlace::Session(name), _) => Ok(self.sessions.runner(name).await?),
            (JobPlace::Stateless, Some(connection)) => Ok(connection.clone()),
            (JobPlace::Stateless, None) => Err(JobError::Unknown(job.id.clone()).into()),
        }
    }

    /// Waits up to `limit` for the end of a job this server started (a
    /// poll interval for one it did not), or for `cancel`.
    async fn until_end(&self, job: &Job, limit: Duration, cancel: &CancellationToken) {
        match job.run().filter(|run| !run.has_ended()) {
            Some(run) => {
                let mut ended = run.ended();
                tokio::select! {
                    _ = tokio::time::timeout(limit, ended.wait_for(|ended| *ended)) => {}
                    () = cancel.cancelled() => {}
                }
            }
            None => {
                tokio::select! {
                    () = tokio::time::sleep(limit.min(POLL)) => {}
                    () = cancel.cancelled() => {}
                }
            }
        }
    }

    fn progress(&self, job: &Job, report: &JobReport, stdout: String, stderr: String) -> JobProgress {
        let info = JobInfo::from_report(&job.place, report);
        JobProgress::new(info, job.language, stdout, stderr, Vec::new())
    }

    /// The finished job's result, with the output of this wait; the job is
    /// forgotten by its runner and this server.
    async fn collect(
        &self,
        job: &Job,
        connection: &RunnerConnection,
        report: JobReport,
        stdout: String,
        stderr: String,
    ) -> crate::core::run::ExecutionOutcome {
        let info = JobInfo::from_report(&job.place, &report);
        let mut request = ExecuteRequest::stateless(job.language, "", job.timeout_ms);
        request.session = job.session().map(str::to_string);
        let mut run = report
            .result
            .map(|result| *result)
            .unwrap_or_else(|| missing_result(&job.run_id));
        run.stdout = stdout;
        run.stderr = stderr;
        let mut collected = outcome(&self.config, &request, run, Vec::new());
        collected.duration_ms = info.elapsed_ms.max(collected.duration_ms);
        collected.job = Some(info);
        if let Err(error) = forget(connection, &job.run_id).await {
            tracing::debug!(%error, job = %job.id, "could not forget a collected job");
        }
        self.jobs.remove(&job.id).await;
        self.audit
            .record(AuditEvent::Job(JobEvent::Collected { job: job.id.clone() }));
        collected
    }

    /// The runner keeps no such job: what this server saw of its run.
    async fn job_gone(&self, job: &Job) -> Result<Executed, ExecuteError> {
        let end = job.run().and_then(|run| run.take());
        self.jobs.remove(&job.id).await;
        match end {
            Some(Err(RunFailure::Gone(error))) => Err(JobError::Unreachable(error.to_string()).into()),
            Some(Err(failure)) => Err(failure.into()),
            _ => Err(JobError::Unknown(job.id.clone()).into()),
        }
    }
}

/// A result for a finished job whose runner sent none (it cannot happen
/// with this runner; a forged reply gets this).
fn missing_result(run_id: &str) -> crate::core::protocol::RunResult {
    crate::core::protocol::RunResult {
        id: Some(run_id.to_string()),
        exit_code: 1,
        signal: None,
        stdout: String::new(),
        stderr: String::new(),
        duration_ms: 0,
        timed_out: false,
        cancelled: false,
        truncated: false,
        phase: crate::runtime::Phase::Run,
        state_lost: false,
        output_lost: Vec::new(),
        artifacts: Vec::new(),
        artifacts_omitted: 0,
        notes: vec!["The sandbox reported the job as ended without its result.".into()],
    }
}
