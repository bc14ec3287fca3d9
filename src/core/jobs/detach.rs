//! Running an execute's program so that it can become a job: the caller
//! waits for its end up to the detach deadline (none for a background
//! execute); past it, the runner is told to keep the run, the job goes in
//! the table, and the caller gets its handle and the output so far.

use super::{
    ActiveRun, Job, JobInfo, JobPlace, JobProgress, JobTable, NewJob, OwnedRun, RunEnd, ended_note, keep, read,
};
use crate::config::Config;
use crate::core::connection::RunnerConnection;
use crate::core::error::ExecuteError;
use crate::core::protocol::JobReport;
use crate::core::run::{ExecuteRequest, new_run_id};
use crate::runtime::{Kernel, Program};
use std::sync::Arc;
use std::time::Duration;

/// How an execute's run went.
pub enum Ran {
    /// It ended while the caller waited.
    Ended(RunEnd),
    /// It runs on as a job.
    Job(JobStarted),
}

/// A job an execute became: its handle, and the output it wrote so far.
pub struct JobStarted {
    pub job: Arc<Job>,
    pub info: JobInfo,
    pub stdout: String,
    pub stderr: String,
}

impl JobStarted {
    /// The caller's answer: the job's handle and output so far, after the
    /// execute's `notes`.
    pub fn progress(self, language: crate::runtime::Language, mut notes: Vec<String>) -> JobProgress {
        if self.info.state != super::JobState::Running {
            notes.push(ended_note(&self.info));
        }
        JobProgress::new(self.info, language, self.stdout, self.stderr, notes)
    }
}

/// What to run, and where.
pub struct Detachable<'a> {
    pub table: &'a JobTable,
    pub config: &'a Arc<Config>,
    pub connection: Arc<RunnerConnection>,
    pub request: &'a ExecuteRequest,
    pub program: Program,
    pub kernel: Option<Kernel>,
    pub place: JobPlace,
}

/// When a run that is still going becomes a job: at once for a background
/// execute; otherwise after `detach_after` (the call's, else the
/// configured one), never when that is zero or not shorter than the
/// run's own time limit (the run ends by then anyway).
fn detach_deadline(request: &ExecuteRequest, config: &Config) -> Option<Duration> {
    if request.background {
        return Some(Duration::ZERO);
    }
    let after = request.detach_after.unwrap_or(config.jobs.detach_after);
    (!after.is_zero() && after < Duration::from_millis(request.timeout_ms)).then_some(after)
}

impl Detachable<'_> {
    pub async fn run(self) -> Result<Ran, ExecuteError> {
        let request = self.request;
        let deadline = detach_deadline(request, self.config);
        if request.background {
            self.table.check_room()?;
        }
        let (watch, link) = request.watch.linked();
        let run_id = new_run_id();
        let label = request.label();
        let owned = OwnedRun {
            program: self.program,
            kernel: self.kernel,
            env: request.env.clone(),
            stdin: request.stdin.clone(),
            timeout_ms: request.timeout_ms,
            keep: request.background,
            label: label.clone(),
        };
        let active = ActiveRun::start(
            self.connection.clone(),
            run_id.clone(),
            owned,
            watch,
            self.config.clone(),
        )
        .await;
        let Some(deadline) = deadline else {
            return Ok(Ran::Ended(finish(&active).await));
        };
        // The deadline counts from the call's start (a package install, a
        // session's previous execute or a container start came first).
        let left = deadline.saturating_sub(request.received.elapsed());
        // A background run is a job however soon it ends: the runner keeps
        // it, and the caller gets its handle.
        if !request.background
            && let Some(end) = active.wait(left).await
        {
            return Ok(Ran::Ended(end));
        }
        if self.place == JobPlace::Stateless && !request.background && self.table.check_room().is_err() {
            // A job outside sessions holds a sandbox until collected: with
            // no room, the call goes on waiting, as without jobs.
            return Ok(Ran::Ended(finish(&active).await));
        }
        let kept = match keep(&self.connection, &run_id, &label).await {
            Ok(Some(report)) => report,
            // It ended meanwhile (or never started: a job runs there).
            Ok(None) => return Ok(Ran::Ended(finish(&active).await)),
            Err(error) => {
                tracing::warn!(%error, "could not make a run a job; waiting for it");
                return Ok(Ran::Ended(finish(&active).await));
            }
        };
        // The output so far goes to the caller; the job's reads go on from there.
        let so_far = if request.background {
            None
        } else {
            read(&self.connection, &run_id).await.ok().flatten()
        };
        drop(link);
        let stateless = self.place == JobPlace::Stateless;
        let job = Arc::new(Job::new(NewJob {
            run_id,
            place: self.place,
            language: request.language,
            timeout_ms: request.timeout_ms,
            connection: stateless.then_some(self.connection),
            run: Some(active),
        }));
        self.table.insert(job.clone());
        let report: &JobReport = so_far.as_ref().unwrap_or(&kept);
        Ok(Ran::Job(JobStarted {
            info: JobInfo::from_report(&job.place, report),
            stdout: report.stdout.clone().unwrap_or_default(),
            stderr: report.stderr.clone().unwrap_or_default(),
            job,
        }))
    }
}

async fn finish(active: &ActiveRun) -> RunEnd {
    active.finish().await.unwrap_or(Err(crate::core::run::RunFailure::Gone(
        crate::docker::DockerError::ContainerGone("the run's task ended without a result".into()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Language;

    #[test]
    fn the_detach_deadline_is_the_calls_then_the_configs_and_never_past_the_timeout() {
        let mut config = Config::default();
        config.jobs.detach_after = Duration::from_secs(45);
        let mut request = ExecuteRequest::stateless(Language::Python, "x", 600_000);
        assert_eq!(detach_deadline(&request, &config), Some(Duration::from_secs(45)));
        request.detach_after = Some(Duration::from_secs(3));
        assert_eq!(detach_deadline(&request, &config), Some(Duration::from_secs(3)));
        request.detach_after = Some(Duration::ZERO);
        assert_eq!(detach_deadline(&request, &config), None);
        request.detach_after = None;
        request.timeout_ms = 30_000;
        assert_eq!(detach_deadline(&request, &config), None, "ends by its timeout first");
        request.background = true;
        assert_eq!(detach_deadline(&request, &config), Some(Duration::ZERO));
    }
}
