//! Asking the user about a connection outside a sandbox's grants: the
//! question, the answers, and the [`Asker`] an MCP client stands behind
//! (the MCP layer implements it with elicitation). The gateway asks the
//! asker of the tool call running code in that sandbox at that moment.

use super::ledger::Owner;
use crate::config::FileOrigin;
use crate::security::egress::{DEFAULT_PORTS, Host, HostPattern};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// "May `owner` reach `host:port`?"
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub owner: Owner,
    pub host: String,
    pub port: u16,
    /// The config file an "always" answer adds the host to (`None`: the
    /// server knows none, and "always" is not offered).
    pub config: Option<FileOrigin>,
}

impl Question {
    /// The question as the user reads it.
    pub fn text(&self) -> String {
        format!(
            "Code in {} wants to reach {}:{} through the egress proxy. Allow it?",
            self.owner, self.host, self.port
        )
    }

    /// What an "always" answer adds to `egress.allow`: the host, with the
    /// port unless it is one of the default ports (80, 443).
    pub fn always_pattern(&self) -> Option<HostPattern> {
        always_pattern(&self.host, self.port)
    }
}

/// The `egress.allow` pattern of an "always" answer about `host:port`.
pub(super) fn always_pattern(host: &str, port: u16) -> Option<HostPattern> {
    let host = Host::parse(host)?;
    let text = match DEFAULT_PORTS.contains(&port) {
        true => host.to_string(),
        false => format!("{host}:{port}"),
    };
    text.parse().ok()
}

/// The user's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// This connection only.
    Once,
    /// This host and port for the rest of the sandbox's life.
    ForSandbox,
    /// For the sandbox, and from now on for every sandbox that requests it:
    /// added to `egress.allow` in this server and in the config file.
    Always,
    /// Not allowed; the text says how (declined, no answer in time, …).
    Refused(String),
}

impl Approval {
    /// What allowed the connection, for the audit log (`None`: refused).
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Approval::Once => Some("the user (once)"),
            Approval::ForSandbox => Some("the user (for this sandbox)"),
            Approval::Always => Some("the user (always)"),
            Approval::Refused(_) => None,
        }
    }
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

/// An execute's registration: who asks for it, until when, and what the
/// user declined during it (not asked again).
struct Registration {
    id: u64,
    asker: Arc<dyn Asker>,
    /// When the execute's own time limit ends: no question outlives it.
    deadline: Instant,
    declined: Vec<(String, u16)>,
}

/// The question open for a sandbox: one at a time, so code cannot flood
/// the user; connections to the same host wait for the same answer.
struct Open {
    host: String,
    port: u16,
    answer: watch::Receiver<Option<Approval>>,
}

#[derive(Default)]
struct Inner {
    by_owner: HashMap<Owner, Vec<Registration>>,
    open: HashMap<Owner, Open>,
}

/// What a connection outside the grants does about the user.
pub(super) enum Turn {
    /// Ask, within `limit`, then [`Askers::finish`] with the answer.
    Ask {
        asker: Arc<dyn Asker>,
        limit: Duration,
        registration: u64,
        answer: watch::Sender<Option<Approval>>,
    },
    /// The same question is open: take its answer.
    Wait(watch::Receiver<Option<Approval>>),
    /// Not asked: the text says why.
    Refuse(String),
}

/// Who can be asked about each sandbox now (the executes running in it),
/// and the questions open.
#[derive(Default, Clone)]
pub(super) struct Askers {
    inner: Arc<Mutex<Inner>>,
    next: Arc<AtomicU64>,
}

impl Askers {
    /// `asker` can be asked about `owner` for `limit` (the execute's time
    /// limit), or until the guard is dropped.
    pub(super) fn register(&self, owner: Owner, asker: Arc<dyn Asker>, limit: Duration) -> AskerGuard {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.inner
            .lock()
            .by_owner
            .entry(owner.clone())
            .or_default()
            .push(Registration {
                id,
                asker,
                deadline: Instant::now() + limit,
                declined: Vec::new(),
            });
        AskerGuard {
            askers: self.clone(),
            owner,
            id,
        }
    }

    /// True when someone can be asked about `owner` now.
    pub(super) fn can_ask(&self, owner: &Owner) -> bool {
        self.inner.lock().by_owner.contains_key(owner)
    }

    /// Whether and how to ask about `host:port` for `owner`.
    pub(super) fn turn(&self, owner: &Owner, host: &str, port: u16, ask_timeout: Duration) -> Turn {
        let mut inner = self.inner.lock();
        let Some(registration) = inner.by_owner.get(owner).and_then(|all| all.last()) else {
            return Turn::Refuse("nobody could be asked".into());
        };
        if registration.declined.iter().any(|(h, p)| h == host && *p == port) {
            return Turn::Refuse("the user declined it earlier in this execute".into());
        }
        let left = registration.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Turn::Refuse("the execute that reached for it has run out of time".into());
        }
        let (asker, id) = (registration.asker.clone(), registration.id);
        if let Some(open) = inner.open.get(owner) {
            if open.host == host && open.port == port {
                return Turn::Wait(open.answer.clone());
            }
            return Turn::Refuse(format!(
                "the user is being asked about {}:{} first; retry once that is answered",
                open.host, open.port
            ));
        }
        let (answer, receiver) = watch::channel(None);
        inner.open.insert(
            owner.clone(),
            Open {
                host: host.to_string(),
                port,
                answer: receiver,
            },
        );
        Turn::Ask {
            asker,
            limit: ask_timeout.min(left),
            registration: id,
            answer,
        }
    }

    /// Closes the question with the user's `approval`: a refusal is
    /// remembered for the execute; an answer that comes after the execute
    /// ended counts as a refusal (the code that asked is gone).
    pub(super) fn finish(
        &self,
        owner: &Owner,
        registration: u64,
        host: &str,
        port: u16,
        approval: Approval,
    ) -> Approval {
        let mut inner = self.inner.lock();
        inner.open.remove(owner);
        let current = inner
            .by_owner
            .get_mut(owner)
            .and_then(|all| all.iter_mut().find(|entry| entry.id == registration));
        match (current, approval) {
            (None, _) => Approval::Refused("the execute that reached for it has ended".into()),
            (Some(entry), Approval::Refused(reason)) => {
                entry.declined.push((host.to_string(), port));
                Approval::Refused(reason)
            }
            (Some(_), approval) => approval,
        }
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
        let mut inner = self.askers.inner.lock();
        if let Some(all) = inner.by_owner.get_mut(&self.owner) {
            all.retain(|entry| entry.id != self.id);
            if all.is_empty() {
                inner.by_owner.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_adds_the_host_with_its_port_unless_a_default_one() {
        let pattern = |host: &str, port| always_pattern(host, port).map(|pattern| pattern.to_string());
        assert_eq!(pattern("api.github.com", 443).as_deref(), Some("api.github.com"));
        assert_eq!(pattern("api.github.com", 80).as_deref(), Some("api.github.com"));
        assert_eq!(pattern("origin.example", 8080).as_deref(), Some("origin.example:8080"));
        assert_eq!(pattern("10.9.0.7", 8080).as_deref(), Some("10.9.0.7:8080"));
        assert_eq!(pattern("2001:db8::1", 8443).as_deref(), Some("[2001:db8::1]:8443"));
        assert_eq!(pattern("not a host", 443), None);
        assert_eq!(Approval::Always.rule(), Some("the user (always)"));
        assert_eq!(Approval::Refused("no".into()).rule(), None);
    }
}
