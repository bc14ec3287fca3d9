//! This server's handle on one session: its connection to the session's
//! runner, and the turn that serializes executes.

use super::super::connection::RunnerConnection;
use crate::core::error::SessionError;
use crate::docker::SandboxEngine;
use crate::runtime::Language;
use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) struct SessionHandle {
    pub(super) container_id: String,
    pub(super) language: Language,
    /// Serializes executes, and file operations that must resume or start
    /// the container first.
    pub(super) turn: tokio::sync::Mutex<()>,
    /// This server's connection to the session's runner (file operations
    /// use it while an execute runs).
    connection: Mutex<Option<Arc<RunnerConnection>>>,
    /// File operations must wait for the turn instead of going to the
    /// running session at once: it is resumed for one just now, or a
    /// restore is replacing its files.
    pub(super) files_take_turn: AtomicBool,
    /// A snapshot, restore or fork copies the session's files while it is
    /// paused: pause and resume refuse meanwhile (a resume would let the
    /// session's processes race the copy).
    pub(super) copying: AtomicBool,
    /// The interpreter was restarted while stopping an execute the caller
    /// cancelled, so no one was told: the next execute's result says so.
    pub(super) state_lost_untold: AtomicBool,
}

impl SessionHandle {
    pub(super) fn new(container_id: String, language: Language, connection: Option<Arc<RunnerConnection>>) -> Self {
        Self {
            container_id,
            language,
            turn: tokio::sync::Mutex::new(()),
            connection: Mutex::new(connection),
            files_take_turn: AtomicBool::new(false),
            copying: AtomicBool::new(false),
            state_lost_untold: AtomicBool::new(false),
        }
    }

    /// The connection, while its stream is open.
    pub(super) fn live(&self) -> Option<Arc<RunnerConnection>> {
        self.lock_connection()
            .as_ref()
            .filter(|connection| connection.is_alive())
            .cloned()
    }

    pub(super) fn set_connection(&self, connection: Option<RunnerConnection>) {
        *self.lock_connection() = connection.map(Arc::new);
    }

    /// The live connection, attaching a new one when there is none.
    pub(super) async fn connect(&self, engine: &dyn SandboxEngine) -> Result<Arc<RunnerConnection>, SessionError> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let fresh = Arc::new(RunnerConnection::new(engine.attach_sandbox(&self.container_id).await?));
        *self.lock_connection() = Some(fresh.clone());
        Ok(fresh)
    }

    fn lock_connection(&self) -> MutexGuard<'_, Option<Arc<RunnerConnection>>> {
        self.connection.lock()
    }
}

/// Holds one of a handle's flags raised until dropped (however the work
/// that raised it ends, a dropped future included).
pub(super) struct Raised<'a>(&'a AtomicBool);

impl<'a> Raised<'a> {
    pub(super) fn raise(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
