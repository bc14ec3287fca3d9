//! The `job` requests of the runner protocol: keep a running run, read a
//! job's new output (and its result once it ended), forget it, list them.

use super::JobError;
use crate::core::connection::{RequestFailure, RunnerConnection};
use crate::core::protocol::{HostMessage, JobOp, JobQuery, JobReport, RunnerMessage};
use crate::core::run::new_run_id;
use std::time::Duration;

/// How long a job request may take: the runner answers at once, between
/// reads of a running program's output.
const QUERY_LIMIT: Duration = Duration::from_secs(10);

async fn ask(
    connection: &RunnerConnection,
    op: JobOp,
    job: Option<&str>,
    label: Option<&str>,
) -> Result<Vec<JobReport>, JobError> {
    let id = new_run_id();
    let payload = HostMessage::Job(JobQuery {
        id: &id,
        op,
        job,
        label,
    })
    .encode()
    .map_err(|error| JobError::Unreachable(error.to_string()))?;
    match connection.request(&id, &payload, QUERY_LIMIT).await {
        Ok(RunnerMessage::Job { jobs, .. }) => Ok(jobs),
        Ok(RunnerMessage::Error { message, .. }) => Err(JobError::Unreachable(format!(
            "its runner refused the request ({message}); a session made by an older image has no jobs: create it again"
        ))),
        Ok(other) => Err(JobError::Unreachable(format!("unexpected reply {other:?}"))),
        Err(RequestFailure::Timeout) => Err(JobError::Unreachable(format!(
            "no answer within {} s",
            QUERY_LIMIT.as_secs()
        ))),
        Err(RequestFailure::Gone(error)) => Err(JobError::Unreachable(error.to_string())),
    }
}

/// Makes the running run `run_id` a job; `None` when it has ended already
/// (its result was sent as any run's).
pub async fn keep(connection: &RunnerConnection, run_id: &str, label: &str) -> Result<Option<JobReport>, JobError> {
    Ok(ask(connection, JobOp::Keep, Some(run_id), Some(label))
        .await?
        .into_iter()
        .next())
}

/// The job's output not read before and, once it ended, its result;
/// `None` when the runner keeps no such job.
pub async fn read(connection: &RunnerConnection, run_id: &str) -> Result<Option<JobReport>, JobError> {
    Ok(ask(connection, JobOp::Read, Some(run_id), None)
        .await?
        .into_iter()
        .next())
}

/// Drops a finished job from the runner.
pub async fn forget(connection: &RunnerConnection, run_id: &str) -> Result<(), JobError> {
    ask(connection, JobOp::Forget, Some(run_id), None).await.map(drop)
}

/// Every job the runner keeps.
pub async fn list(connection: &RunnerConnection) -> Result<Vec<JobReport>, JobError> {
    ask(connection, JobOp::List, None, None).await
}
