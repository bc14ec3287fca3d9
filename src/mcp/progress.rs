//! Forwards a tool call's [`Update`]s to the MCP client: progress
//! notifications when the request carried a progress token, and warnings
//! as logging notifications at or above the level the client set.
// MCP logging is deprecated by SEP-2577 but is what clients show today.
#![allow(deprecated)]

use crate::core::{Update, Watch};
use rmcp::RoleServer;
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam};
use rmcp::service::RequestContext;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a finished call waits for its last notifications to go out.
const FLUSH_LIMIT: Duration = Duration::from_millis(500);

/// The lowest logging level the client wants (`logging/setLevel`);
/// warnings by default.
#[derive(Debug, Clone)]
pub struct LogLevel(Arc<AtomicU8>);

impl Default for LogLevel {
    fn default() -> Self {
        Self(Arc::new(AtomicU8::new(rank(LoggingLevel::Warning))))
    }
}

impl LogLevel {
    pub fn set(&self, level: LoggingLevel) {
        self.0.store(rank(level), Ordering::Relaxed);
    }

    fn allows(&self, level: LoggingLevel) -> bool {
        rank(level) >= self.0.load(Ordering::Relaxed)
    }
}

fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The task that sends one call's notifications.
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// A [`Watch`] for the call in `context` (cancelled when the client
    /// cancels the request) and the task forwarding its updates.
    pub fn start(context: &RequestContext<RoleServer>, log_level: &LogLevel) -> (Watch, Reporter) {
        let token = context.meta.get_progress_token();
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let watch = Watch::new(context.ct.clone(), Some(sender), token.is_some());
        let peer = context.peer.clone();
        let log_level = log_level.clone();
        let task = tokio::spawn(async move {
            let mut count = 0.0;
            while let Some(update) = receiver.recv().await {
                match update {
                    Update::Progress(message) => {
                        let Some(token) = token.clone() else { continue };
                        count += 1.0;
                        let notification = ProgressNotificationParam::new(token, count).with_message(message);
                        if let Err(error) = peer.notify_progress(notification).await {
                            tracing::debug!(%error, "cannot send a progress notification");
                        }
                    }
                    Update::Warning(message) => {
                        if !log_level.allows(LoggingLevel::Warning) {
                            continue;
                        }
                        let notification = LoggingMessageNotificationParam::new(LoggingLevel::Warning, message.into())
                            .with_logger("multilang-sandbox");
                        if let Err(error) = peer.notify_logging_message(notification).await {
                            tracing::debug!(%error, "cannot send a logging notification");
                        }
                    }
                }
            }
        });
        (watch, Reporter { task })
    }

    /// Waits (briefly) until every update of the finished call was sent;
    /// every [`Watch`] of the call must be dropped by then.
    pub async fn finish(self) {
        let mut task = self.task;
        if tokio::time::timeout(FLUSH_LIMIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_by_rank() {
        let level = LogLevel::default();
        assert!(level.allows(LoggingLevel::Warning) && level.allows(LoggingLevel::Error));
        assert!(!level.allows(LoggingLevel::Info));
        level.set(LoggingLevel::Error);
        assert!(!level.allows(LoggingLevel::Warning));
        level.set(LoggingLevel::Debug);
        assert!(level.allows(LoggingLevel::Info));
    }
}
