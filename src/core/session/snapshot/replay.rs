//! Running a snapshot's logged cells again in a session's fresh kernel
//! (the runner's `replay`, `images/runner/runner_cells.py`): the cells
//! that succeeded run in order, with the env and stdin they had; a cancel
//! of the caller's call stops the replay.

use super::SnapshotError;
use crate::core::connection::{RequestFailure, RunnerConnection};
use crate::core::protocol::{HostMessage, LoggedCell, RunnerMessage};
use crate::core::run::{CANCEL_GRACE, new_run_id};
use crate::core::watch::Watch;
use serde::Serialize;
use std::time::Duration;

/// Time a replay may take beyond the sum of its cells' own timeouts: the
/// kernel's start, and each cell's overhead.
const REPLAY_MARGIN: Duration = Duration::from_secs(60);
const PER_CELL_MARGIN: Duration = Duration::from_millis(200);

/// What replaying a snapshot's cells did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct ReplaySummary {
    /// Cells run again: those that had succeeded, in their order.
    pub replayed: u32,
    /// Cells not run again because they had failed the first time (what such a cell did before
    /// it failed is not rebuilt).
    pub skipped: usize,
    /// Cells that fail now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<ReplayFailure>,
    /// Cells that succeeded but printed other output than the first time (their index in the
    /// log, from 0): random numbers, times, or state they read from outside.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differed: Vec<usize>,
    /// The replay was cancelled before its last cell: later cells' state is missing.
    pub cancelled: bool,
    /// Wall time of the replay in the session, in milliseconds.
    pub duration_ms: u64,
    /// False when the log had lost older cells: their state is missing.
    pub log_complete: bool,
}

/// A logged cell that failed when it ran again.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct ReplayFailure {
    /// Its index in the log, from 0.
    pub cell: usize,
    pub exit_code: i32,
    /// The end of its stderr.
    pub stderr: String,
}

impl From<crate::core::protocol::ReplayFailure> for ReplayFailure {
    fn from(failure: crate::core::protocol::ReplayFailure) -> Self {
        Self {
            cell: failure.cell,
            exit_code: failure.exit_code,
            stderr: failure.stderr,
        }
    }
}

/// Replays the successful cells of `cells` in the session behind
/// `connection`.
pub(super) async fn replay(
    connection: &RunnerConnection,
    cells: &[LoggedCell],
    log_complete: bool,
    watch: &Watch,
) -> Result<ReplaySummary, SnapshotError> {
    let skipped = cells.iter().filter(|cell| cell.exit_code != 0).count();
    let mut summary = ReplaySummary {
        replayed: 0,
        skipped,
        failed: Vec::new(),
        differed: Vec::new(),
        cancelled: false,
        duration_ms: 0,
        log_complete,
    };
    if skipped == cells.len() {
        return Ok(summary);
    }
    let broken = |detail: String| SnapshotError::ReplayBroken { detail };
    let id = new_run_id();
    let payload = HostMessage::Replay {
        id: &id,
        cells,
        complete: log_complete,
    }
    .encode()?;
    let mut pending = connection
        .start(&id, &payload, None)
        .await
        .map_err(|failure| match failure {
            RequestFailure::Gone(error) => SnapshotError::Docker(error),
            RequestFailure::Timeout => broken("the session did not take the replay".to_string()),
        })?;
    let limit = replay_limit(cells);
    let answered = tokio::select! {
        reply = pending.wait(limit) => match reply {
            Err(RequestFailure::Timeout) => None,
            reply => Some(reply),
        },
        () = watch.cancel.cancelled() => None,
    };
    let reply = match answered {
        Some(reply) => reply,
        None => {
            // Cancelled, or past its time: the runner stops the cell that
            // runs and answers with what was replayed.
            if let Ok(cancel) = (HostMessage::Cancel { id: &id }).encode() {
                let _ = connection.send(&cancel).await;
            }
            pending.wait(CANCEL_GRACE).await
        }
    };
    match reply {
        Ok(RunnerMessage::Replayed(report)) => {
            summary.replayed = report.replayed;
            summary.failed = report.failed.into_iter().map(ReplayFailure::from).collect();
            summary.differed = report.differed;
            summary.cancelled = report.cancelled;
            summary.duration_ms = report.duration_ms;
            Ok(summary)
        }
        Ok(RunnerMessage::Error { message, .. }) => Err(broken(message)),
        Ok(other) => Err(broken(format!("the session answered {other:?}"))),
        Err(RequestFailure::Timeout) => Err(broken(format!(
            "it neither ended within {} s nor stopped within {} s of being cancelled",
            limit.as_secs(),
            CANCEL_GRACE.as_secs()
        ))),
        Err(RequestFailure::Gone(error)) => Err(SnapshotError::Docker(error)),
    }
}

/// The longest a replay of `cells` may take: the successful cells' own
/// timeouts, plus a margin.
fn replay_limit(cells: &[LoggedCell]) -> Duration {
    let replayed: Vec<&LoggedCell> = cells.iter().filter(|cell| cell.exit_code == 0).collect();
    let cells_ms: u64 = replayed
        .iter()
        .map(|cell| {
            cell.request
                .get("timeout_ms")
                .and_then(|timeout| timeout.as_u64())
                .unwrap_or(0)
        })
        .sum();
    let count = u32::try_from(replayed.len()).unwrap_or(u32::MAX);
    Duration::from_millis(cells_ms) + REPLAY_MARGIN + PER_CELL_MARGIN * count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(exit_code: i32, timeout_ms: u64) -> LoggedCell {
        LoggedCell {
            request: serde_json::json!({"mode": "kernel", "timeout_ms": timeout_ms}),
            exit_code,
            stdout_sha256: String::new(),
            stderr_sha256: String::new(),
            duration_ms: 1,
            job: false,
        }
    }

    #[test]
    fn the_limit_counts_the_cells_that_run_again() {
        let cells = [cell(0, 30_000), cell(1, 600_000), cell(0, 5_000)];
        assert_eq!(
            replay_limit(&cells),
            Duration::from_millis(35_000) + REPLAY_MARGIN + PER_CELL_MARGIN * 2
        );
    }
}
