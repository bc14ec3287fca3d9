//! The server's background work (pool upkeep, session garbage collection,
//! removals of used containers): one token stops it, one tracker waits for it.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// Owner of every task this server runs in the background. Clones share it.
#[derive(Clone, Default)]
pub struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` to its end; shutdown waits for it.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// True once shutdown began: loops stop taking new work.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Completes when shutdown begins; loops wait on it between rounds.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Tells every task to stop and waits up to `limit` for all of them
    /// (work under way, such as a container start, finishes first). False
    /// when some were still running at the limit.
    pub async fn shutdown(&self, limit: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn shutdown_stops_loops_and_waits_for_work_under_way() {
        let background = Background::new();
        let finished = Arc::new(AtomicU32::new(0));
        let looping = background.clone();
        let rounds = finished.clone();
        background.spawn(async move {
            loop {
                tokio::select! {
                    () = looping.stopping() => return,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        });
        let done = finished.clone();
        background.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            done.fetch_add(1000, Ordering::SeqCst);
        });
        assert!(background.shutdown(Duration::from_secs(5)).await);
        assert!(background.is_stopping());
        assert!(finished.load(Ordering::SeqCst) >= 1000, "the slow task was waited for");
    }

    #[tokio::test]
    async fn shutdown_reports_tasks_that_outlive_the_limit() {
        let background = Background::new();
        background.spawn(tokio::time::sleep(Duration::from_secs(30)));
        assert!(!background.shutdown(Duration::from_millis(50)).await);
    }
}
