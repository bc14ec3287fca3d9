//! Asking the user about a connection outside a sandbox's grants: the
//! question, the answers, and the [`Asker`] an MCP client stands behind
//! (the MCP layer implements it with elicitation). The gateway asks the
//! asker of the tool call running code in that sandbox at that moment.

use super::ledger::Owner;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// "May `owner` reach `host:port`?"
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub owner: Owner,
    pub host: String,
    pub port: u16,
}

impl Question {
    /// The question as the user reads it.
    pub fn text(&self) -> String {
        format!(
            "Code in {} wants to reach {}:{} through the egress proxy. Allow it?",
            self.owner, self.host, self.port
        )
    }
}

/// The user's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// This connection only.
    Once,
    /// This host and port for the rest of the sandbox's life.
    ForSandbox,
    /// Not allowed; the text says how (declined, no answer in time, …).
    Refused(String),
}

/// Someone who can ask the user (a connected MCP client that declared
/// elicitation).
pub trait Asker: Send + Sync {
    /// Asks; answers within `limit` (no answer is a refusal).
    fn ask(&self, question: Question, limit: Duration) -> BoxFuture<'static, Approval>;
}

/// The asker an execute brings (its client), if it can ask.
#[derive(Clone, Default)]
pub struct UserAsker(pub Option<Arc<dyn Asker>>);

impl std::fmt::Debug for UserAsker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "UserAsker(client)"
        } else {
            "UserAsker(none)"
        })
    }
}

/// One registered asker and its registration number.
type Registered = (u64, Arc<dyn Asker>);

/// Who can be asked about each sandbox now: the askers of the executes
/// running in it.
#[derive(Default, Clone)]
pub(super) struct Askers {
    by_owner: Arc<parking_lot::Mutex<HashMap<Owner, Vec<Registered>>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Askers {
    /// `asker` can be asked about `owner` until the guard is dropped.
    pub(super) fn register(&self, owner: Owner, asker: Arc<dyn Asker>) -> AskerGuard {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.by_owner.lock().entry(owner.clone()).or_default().push((id, asker));
        AskerGuard {
            askers: self.clone(),
            owner,
            id,
        }
    }

    /// The most recent asker for `owner`.
    pub(super) fn for_owner(&self, owner: &Owner) -> Option<Arc<dyn Asker>> {
        self.by_owner
            .lock()
            .get(owner)
            .and_then(|askers| askers.last())
            .map(|(_, asker)| asker.clone())
    }
}

/// Keeps an asker registered; dropping it removes it.
pub struct AskerGuard {
    askers: Askers,
    owner: Owner,
    id: u64,
}

impl Drop for AskerGuard {
    fn drop(&mut self) {
        let mut by_owner = self.askers.by_owner.lock();
        if let Some(askers) = by_owner.get_mut(&self.owner) {
            askers.retain(|(id, _)| *id != self.id);
            if askers.is_empty() {
                by_owner.remove(&self.owner);
            }
        }
    }
}
