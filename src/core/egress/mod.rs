//! Network for sandboxes, through the egress proxy (issue #14): the
//! sandbox networks, this server's proxy container, who is behind each
//! proxy address, and what each sandbox may reach and has used.
//!
//! How a sandbox gets network: it is handed an isolated network (no route
//! out, no host address on it: `docker/network.rs`) made ahead, with this
//! server's proxy on it at a fixed address (the subnet's second) and a
//! holder container whose network namespace the sandbox shares
//! (`networks.rs`, `docker/holder.rs`); the proxy variables name the proxy's
//! address ([`sandbox_env`]). When the sandbox is up, the ledger binds the
//! proxy's address on that network and the holder's address to its owner: a
//! connection counts as the owner's only when it comes from that address
//! to that proxy address (code runs with every capability dropped and
//! cannot forge its source address). Grants live with the session (label,
//! then record) so a restarted server, or a second one, serves the session
//! with them: before each execute, the serving server's proxy takes the
//! fixed address over ([`EgressGateway::adopt`]), so the connections, their
//! refusals and the user's approvals go to the server whose call runs the
//! code. Each server runs its own proxy, which goes with it.

mod allow_list;
mod asker;
mod error;
mod lease;
mod ledger;
mod networks;
mod protocol;
mod proxy;

pub use asker::{Approval, Asker, AskerGuard, Question, UserAsker};
pub use error::EgressError;
pub use lease::LeasedNetwork;
pub use ledger::{EgressTotals, Owner};
pub use networks::{NETWORK_PREFIX, OpenedNetwork};
pub use proxy::PROXY_PORT;

use crate::config::Config;
use crate::core::session_store::SessionStore;
use crate::docker::{NetworkMembers, SandboxEngine};
use crate::security::audit::AuditLog;
use crate::security::egress::{HostPattern, Policy};
use allow_list::AllowList;
use asker::Askers;
use ledger::Ledger;
use networks::Networks;
use parking_lot::Mutex;
use proxy::{Context, PROXY_NAME_PREFIX, ProxyProcess};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How old an unused sandbox network must be before it is collected (a
/// stateless execute's network exists a moment before its sandbox).
pub const ORPHAN_AGE: Duration = Duration::from_secs(120);

/// How long an execute's result waits for the proxy's reports on the
/// connections its program had open.
const SETTLE_LIMIT: Duration = Duration::from_millis(500);
const SETTLE_POLL: Duration = Duration::from_millis(5);
const SETTLE_STILL: Duration = Duration::from_millis(100);

/// How long taking a session network over from another proxy may take.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(15);
const TAKEOVER_POLL: Duration = Duration::from_millis(100);

/// The kind label of sandbox networks.
pub const NETWORK_KIND: &str = "sandbox-network";

/// Where a session's sandbox is on its sandbox network.
#[derive(Debug, Clone, Copy)]
pub struct NetworkPlace<'a> {
    pub network: &'a str,
    /// The container holding the sandbox's address there: the network's
    /// holder (for sessions made before holders, the sandbox itself).
    pub holder: &'a str,
    /// The sandbox container (a new one under the same owner starts a new
    /// account).
    pub sandbox: &'a str,
}

/// This server's door to the outside for sandboxes with network.
pub struct EgressGateway {
    engine: Arc<dyn SandboxEngine>,
    config: Arc<Config>,
    instance_id: String,
    audit: Arc<AuditLog>,
    ledger: Arc<Mutex<Ledger>>,
    proxy: tokio::sync::Mutex<Option<Arc<ProxyProcess>>>,
    askers: Askers,
    store: Arc<SessionStore>,
    /// `egress.allow` now: the user's "always" answers extend it.
    allow: Arc<AllowList>,
    networks: Networks,
    /// Proxies started so far (each gets a name of its own).
    started: AtomicU64,
}

impl EgressGateway {
    pub fn new(engine: Arc<dyn SandboxEngine>, config: Arc<Config>, instance_id: String, audit: Arc<AuditLog>) -> Self {
        let store = Arc::new(SessionStore::new(&config.state_dir));
        let allow = Arc::new(AllowList::new(&config.egress.allow));
        Self {
            engine,
            config,
            instance_id,
            audit,
            ledger: Arc::default(),
            proxy: tokio::sync::Mutex::new(None),
            askers: Askers::default(),
            store,
            allow,
            networks: Networks::default(),
            started: AtomicU64::new(0),
        }
    }

    /// Parses what a model asked for and checks it against `egress.allow`
    /// (and, when changing a session's grants, what it holds already).
    /// Returns the patterns to grant, or the refusal naming the config key.
    pub fn review(&self, requested: &[String], held: &[HostPattern]) -> Result<Vec<HostPattern>, EgressError> {
        let patterns = requested
            .iter()
            .map(|text| text.parse::<HostPattern>())
            .collect::<Result<Vec<_>, _>>()?;
        let policy = Policy {
            configured: &self.allow.read(),
            granted: held,
            can_ask: false,
        };
        let review = policy.review(&patterns);
        if let Some(refusal) = review.refusal() {
            return Err(EgressError::NotCovered(refusal));
        }
        Ok(review.covered().cloned().collect())
    }

    /// Binds `owner`'s sandbox (container `sandbox`, sharing the holder of
    /// `network`) with `grants`.
    pub fn bind(&self, owner: &Owner, network: &OpenedNetwork, sandbox: &str, grants: Vec<HostPattern>) {
        self.ledger
            .lock()
            .bind(network.via, owner.clone(), network.address, sandbox, grants);
    }

    /// Makes this server's proxy the one that serves a session's network
    /// (before each execute in it): its grants as kept with the session
    /// (another server may have changed them), the proxy joined and bound
    /// if it is not (a restart, another server's session), and any other
    /// server's proxy taken off the network, so the connections, their
    /// refusals and their notes are this server's, whose call runs the code.
    pub async fn adopt(
        &self,
        owner: &Owner,
        place: NetworkPlace<'_>,
        grants: Vec<HostPattern>,
    ) -> Result<(), EgressError> {
        self.set_grants(owner, grants.clone());
        let proxy = self.proxy().await?;
        let network = place.network;
        let facts = self.take_over(network, proxy.name()).await?;
        let joined = facts.members.iter().any(|member| member == proxy.name());
        if joined && self.ledger.lock().is_bound(owner) {
            return Ok(());
        }
        let via = self
            .join(&proxy, network, proxy_address(facts.subnet.as_deref(), network)?)
            .await?;
        let address = self.address_of(place.holder, network).await?;
        self.ledger
            .lock()
            .bind(via, owner.clone(), address, place.sandbox, grants);
        Ok(())
    }

    /// Takes every other proxy off `network` (a killed server's may still
    /// be on its way out, holding the proxy address for a moment: wait for
    /// it) and returns the network as it is then.
    async fn take_over(&self, network: &str, ours: &str) -> Result<NetworkMembers, EgressError> {
        let deadline = tokio::time::Instant::now() + TAKEOVER_LIMIT;
        loop {
            let facts = self
                .engine
                .network_facts(network)
                .await?
                .ok_or_else(|| EgressError::NoAddress(network.to_string()))?;
            let others: Vec<&String> = facts
                .members
                .iter()
                .filter(|member| member.starts_with(PROXY_NAME_PREFIX) && member.as_str() != ours)
                .collect();
            if others.is_empty() {
                return Ok(facts);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EgressError::NoAddress(network.to_string()));
            }
            for other in others {
                tracing::debug!(network, proxy = %other, "taking another server's egress proxy off a session network");
                self.engine.disconnect_from_network(network, other).await?;
            }
            tokio::time::sleep(TAKEOVER_POLL).await;
        }
    }

    /// Forgets where `owner`'s sandbox is, so the next [`adopt`](Self::adopt)
    /// binds it anew.
    pub fn forget(&self, owner: &Owner) {
        self.ledger.lock().unbind(owner);
    }

    /// Forgets `owner` entirely, its totals too (its sandbox is being removed).
    pub fn release(&self, owner: &Owner) {
        self.ledger.lock().release(owner);
    }

    /// Lets `asker` be asked about connections of `owner` outside its
    /// grants (when `egress.ask` is on) until the guard is dropped: an
    /// execute registers its client while it runs.
    pub fn asking(&self, owner: &Owner, asker: &UserAsker, limit: Duration) -> Option<AskerGuard> {
        let asker = asker.0.clone()?;
        Some(self.askers.register(owner.clone(), asker, limit))
    }

    /// Changes what `owner` may reach.
    pub fn set_grants(&self, owner: &Owner, grants: Vec<HostPattern>) {
        self.ledger.lock().set_grants(owner, grants);
    }

    /// What `owner` has used through the proxy (as this server saw it).
    pub fn totals(&self, owner: &Owner) -> EgressTotals {
        self.ledger.lock().totals(owner)
    }

    /// Result notes on the connections `owner`'s code was refused since
    /// the last call (each says how the user can allow the host). Waits a
    /// moment for the proxy to report the connections the program left
    /// open (its exit closed them), so their refusals, cuts and audit
    /// events belong to this execute; a daemon's connections stay open.
    pub async fn refusal_notes(&self, owner: &Owner) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        let mut left = self.ledger.lock().unsettled(owner);
        let mut last_change = tokio::time::Instant::now();
        // Until none is left, or none has closed for a while (a kept-alive
        // connection of the kernel's stays open), within the limit.
        while left > 0 && tokio::time::Instant::now() < deadline && last_change.elapsed() < SETTLE_STILL {
            tokio::time::sleep(SETTLE_POLL).await;
            let now_left = self.ledger.lock().unsettled(owner);
            if now_left < left {
                last_change = tokio::time::Instant::now();
            }
            left = now_left;
        }
        refusal_notes(self.ledger.lock().take_untold(owner))
    }

    /// Removes this server's spare networks and its proxy.
    pub async fn shutdown(&self) {
        self.close_spares().await;
        let proxy = self.proxy.lock().await.take();
        if let Some(proxy) = proxy {
            proxy.stop().await;
        }
    }

    /// The running proxy, started when there is none.
    async fn proxy(&self) -> Result<Arc<ProxyProcess>, EgressError> {
        let mut slot = self.proxy.lock().await;
        if let Some(proxy) = slot.as_ref().filter(|proxy| proxy.is_alive()) {
            return Ok(proxy.clone());
        }
        if let Some(dead) = slot.take() {
            dead.stop().await;
        }
        // A new proxy has joined no network yet: sandboxes bind again as
        // they are used.
        self.ledger.lock().unbind_all();
        let context = Context {
            config: self.config.clone(),
            ledger: self.ledger.clone(),
            audit: self.audit.clone(),
            instance_id: self.instance_id.clone(),
            askers: self.askers.clone(),
            store: self.store.clone(),
            allow: self.allow.clone(),
        };
        let generation = self.started.fetch_add(1, Ordering::SeqCst);
        let proxy = Arc::new(ProxyProcess::start(self.engine.as_ref(), context, generation).await?);
        *slot = Some(proxy.clone());
        Ok(proxy)
    }

    /// Has the proxy join `network` at `address` (if it has not) and
    /// returns its address there.
    async fn join(&self, proxy: &ProxyProcess, network: &str, address: IpAddr) -> Result<IpAddr, EgressError> {
        let wanted = address.to_string();
        let deadline = tokio::time::Instant::now() + TAKEOVER_LIMIT;
        loop {
            match self.engine.connect_to_network(network, proxy.id(), Some(&wanted)).await {
                Ok(()) => return Ok(address),
                // A proxy just taken off the network may hold the address a
                // moment longer than it is listed: try again.
                Err(error) if error.is_address_in_use() && tokio::time::Instant::now() < deadline => {
                    if self.engine.address_on_network(proxy.id(), network).await?.is_some() {
                        return self.address_of(proxy.id(), network).await;
                    }
                    tracing::debug!(network, %error, "the proxy address is still held; trying again");
                    // Another server's proxy may have come back meanwhile.
                    self.take_over(network, proxy.name()).await?;
                    tokio::time::sleep(TAKEOVER_POLL).await;
                }
                // Joined already (another call got there first): where?
                Err(error) => {
                    return match self.engine.address_on_network(proxy.id(), network).await? {
                        Some(_) => self.address_of(proxy.id(), network).await,
                        None => Err(error.into()),
                    };
                }
            }
        }
    }

    async fn address_of(&self, container: &str, network: &str) -> Result<IpAddr, EgressError> {
        self.engine
            .address_on_network(container, network)
            .await?
            .and_then(|address| address.parse().ok())
            .ok_or_else(|| EgressError::NoAddress(network.to_string()))
    }
}

/// Where the proxy sits on a sandbox network: the subnet's second address
/// (the first is the gateway's, which no one holds). Fixed, so a sandbox's
/// proxy variables stay right when another proxy takes over, and named by
/// address, since gVisor's sandboxes cannot use the engine's resolver.
fn proxy_address(subnet: Option<&str>, network: &str) -> Result<IpAddr, EgressError> {
    subnet
        .and_then(|subnet| subnet.parse::<ipnet::IpNet>().ok())
        .and_then(|subnet| subnet.hosts().nth(1))
        .ok_or_else(|| EgressError::NoAddress(network.to_string()))
}

/// The environment that sends a sandbox's HTTP(S) through the proxy at
/// `proxy`: the variables pip, npm, cargo, git, curl, Go and Python's
/// urllib read.
pub fn sandbox_env(proxy: IpAddr) -> Vec<String> {
    let proxy = format!("http://{proxy}:{PROXY_PORT}");
    // Python and Node match IPv6 only in brackets, curl and Go either way.
    let none = "localhost,127.0.0.1,::1,[::1]";
    [
        ("HTTP_PROXY", proxy.as_str()),
        ("HTTPS_PROXY", &proxy),
        ("ALL_PROXY", &proxy),
        ("http_proxy", &proxy),
        ("https_proxy", &proxy),
        ("all_proxy", &proxy),
        ("NO_PROXY", none),
        ("no_proxy", none),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={value}"))
    .collect()
}

/// The result notes for refused connections (at most a few, then a count).
fn refusal_notes(refusals: Vec<String>) -> Vec<String> {
    const SHOWN: usize = 3;
    // The same refusal once, with how often it happened, in first-seen order.
    let mut distinct: Vec<(String, usize)> = Vec::new();
    for refusal in refusals {
        match distinct.iter_mut().find(|(seen, _)| *seen == refusal) {
            Some((_, count)) => *count += 1,
            None => distinct.push((refusal, 1)),
        }
    }
    let mut notes: Vec<String> = distinct
        .iter()
        .take(SHOWN)
        .map(|(refusal, count)| {
            let times = if *count > 1 {
                format!(" ({count} times)")
            } else {
                String::new()
            };
            format!("The egress proxy refused {}{times}.", refusal.trim_end_matches('.'))
        })
        .collect();
    if distinct.len() > SHOWN {
        let more: usize = distinct[SHOWN..].iter().map(|(_, count)| count).sum();
        notes.push(format!(
            "The egress proxy refused {more} more connections (see sandbox_security violations)."
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_notes_are_sentences_each_refusal_once() {
        let notes = refusal_notes(vec![
            "a.example:443: refused".into(),
            "a.example:443: refused".into(),
            "b.example:80: refused.".into(),
            "c.example:80: x".into(),
            "d.example:80: y".into(),
            "e.example:80: z".into(),
            "e.example:80: z".into(),
        ]);
        assert_eq!(
            notes,
            vec![
                "The egress proxy refused a.example:443: refused (2 times).",
                "The egress proxy refused b.example:80: refused.",
                "The egress proxy refused c.example:80: x.",
                "The egress proxy refused 3 more connections (see sandbox_security violations).",
            ]
        );
    }

    #[test]
    fn the_proxy_is_the_subnets_second_address_and_loopback_stays_direct() {
        assert_eq!(
            proxy_address(Some("172.19.0.0/16"), "n").unwrap(),
            "172.19.0.2".parse::<IpAddr>().unwrap()
        );
        assert!(proxy_address(None, "n").is_err());
        let env = sandbox_env("172.19.0.2".parse().unwrap());
        assert!(
            env.contains(&"HTTPS_PROXY=http://172.19.0.2:3128".to_string()),
            "{env:?}"
        );
        assert!(
            env.iter()
                .any(|line| line.starts_with("no_proxy=") && line.contains("[::1]")),
            "{env:?}"
        );
    }
}
