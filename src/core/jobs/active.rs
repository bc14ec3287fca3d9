//! A run followed by a task of its own, so it can outlive the call that
//! started it: the call waits for its end up to a deadline, and past the
//! deadline hands it to the job table instead of killing it.

use crate::config::Config;
use crate::core::connection::RunnerConnection;
use crate::core::protocol::RunResult;
use crate::core::run::{RunFailure, RunSpec, run_program_as};
use crate::core::watch::Watch;
use crate::runtime::{Kernel, Program};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a run ended, as its task saw it.
pub type RunEnd = Result<RunResult, RunFailure>;

/// What a run is made of, owned so its task can outlive the caller.
pub struct OwnedRun {
    pub program: Program,
    pub kernel: Option<Kernel>,
    pub env: BTreeMap<String, String>,
    pub stdin: Option<String>,
    pub timeout_ms: u64,
    /// A job from the start (a background execute).
    pub keep: bool,
    /// What the job is, in job lists (the first line of its code).
    pub label: String,
}

/// A run under way in its own task.
pub struct ActiveRun {
    pub id: String,
    pub connection: Arc<RunnerConnection>,
    /// The run's own watch: cancelling it stops the run.
    pub watch: Watch,
    end: Arc<Mutex<Option<RunEnd>>>,
    ended: watch::Receiver<bool>,
}

impl ActiveRun {
    /// Sends `run` as the run `id` through `connection` in a task of its
    /// own, followed by `watch`. Returns once the request is on its way.
    pub async fn start(
        connection: Arc<RunnerConnection>,
        id: String,
        run: OwnedRun,
        watch: Watch,
        config: Arc<Config>,
    ) -> Self {
        let end = Arc::new(Mutex::new(None));
        let (ended_tx, ended) = watch::channel(false);
        let (sent_tx, sent) = tokio::sync::oneshot::channel();
        let task = {
            let connection = connection.clone();
            let id = id.clone();
            let watch = watch.clone();
            let end = end.clone();
            async move {
                let spec = RunSpec {
                    program: &run.program,
                    kernel: run.kernel,
                    env: &run.env,
                    stdin: run.stdin.as_deref(),
                    timeout_ms: run.timeout_ms,
                    collect_outputs: true,
                    watch: &watch,
                    keep: run.keep,
                    label: Some(run.label.as_str()),
                };
                let result = run_program_as(&connection, &id, spec, &config, Some(sent_tx)).await;
                *end.lock() = Some(result);
                let _ = ended_tx.send(true);
            }
        };
        tokio::spawn(task);
        // The request is written (or failed to be) before this returns, so
        // what the caller sends next reaches the runner after it.
        let _ = sent.await;
        Self {
            id,
            connection,
            watch,
            end,
            ended,
        }
    }

    /// Waits up to `limit` for the run to end; `None` when it still runs.
    pub async fn wait(&self, limit: Duration) -> Option<RunEnd> {
        let mut ended = self.ended.clone();
        let ended = tokio::time::timeout(limit, ended.wait_for(|ended| *ended)).await;
        match ended {
            Ok(_) => self.take(),
            Err(_) => None,
        }
    }

    /// Hears when the run ends.
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.ended.clone()
    }

    /// Waits for the end, however long it takes.
    pub async fn finish(&self) -> Option<RunEnd> {
        let _ = self.ended.clone().wait_for(|ended| *ended).await;
        self.take()
    }

    /// True once the run's task has its end.
    pub fn has_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// The end, once (later calls get `None`).
    pub fn take(&self) -> Option<RunEnd> {
        self.end.lock().take()
    }
}
