//! Sandbox networks: made ahead as spares, handed out one per sandbox,
//! removed with it, and collected when a server died before removing them.
//!
//! A sandbox network is an isolated network (no route out, no host address
//! on it: `docker/network.rs`) with this server's proxy at a fixed address
//! (the subnet's second) and a holder container (`docker/holder.rs`) whose
//! network namespace the sandbox shares. Making one takes the network, the
//! proxy's join and the holder's start, some 350 ms of engine work; a spare
//! made in the background turns that into nothing at the sandbox's start,
//! and joining the holder's namespace is quicker than having a namespace
//! made (or none: `--network none` makes an empty one).

use super::proxy::{self, PROXY_NAME_PREFIX, ProxyProcess};
use super::{EgressError, EgressGateway, NETWORK_KIND, ORPHAN_AGE, Owner, proxy_address};
use crate::clock::unix_now;
use crate::docker::{DockerError, HolderSpec, NetworkMembers, labels};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

/// How many sandbox networks are kept ready.
pub const SPARE_NETWORKS: usize = 2;

/// Prefix of sandbox network names (the holder container has the same name).
pub const NETWORK_PREFIX: &str = "multilang-sandbox-network-";

/// The kind label of network holder containers.
pub const HOLDER_KIND: &str = "network-holder";

/// How old a network with a holder and no proxy on it must be before it
/// is collected (the proxy joins a network being made within moments).
const SPARE_GRACE: Duration = Duration::from_secs(10);

/// How long a network handed out for a sandbox may go without a container
/// naming it before it is collected (longer than a sandbox takes to start).
const HANDED_OUT_GRACE: Duration = Duration::from_secs(180);

/// How long shutdown waits for a spare being made.
const FILL_LIMIT: Duration = Duration::from_secs(10);

/// How many freed subnets are remembered.
const FREE_SUBNETS_KEPT: usize = 16;

/// A sandbox network for one sandbox, ready: the proxy on it, its holder up.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedNetwork {
    /// The network's name, which is also its holder container's.
    pub name: String,
    /// The proxy's address on it.
    pub via: IpAddr,
    /// The holder's address on it: where the sandbox's connections come from.
    pub address: IpAddr,
    /// The proxy container that joined it.
    proxy: String,
}

/// The sandbox networks of this server: spares, the ones handed out, and
/// the subnets of removed ones.
#[derive(Default)]
pub(super) struct Networks {
    spares: Mutex<Vec<OpenedNetwork>>,
    /// Made and not removed yet, with when each was handed out (`None`:
    /// a spare, or one being made). Never collected as orphans, except one
    /// handed out longer than [`HANDED_OUT_GRACE`] ago that no container
    /// names (its sandbox was never made: a failed or abandoned start).
    made: Mutex<HashMap<String, Option<Instant>>>,
    /// Subnets of sandbox networks this server removed, tried first for
    /// the next ones (picking a subnet costs a network made and removed).
    free_subnets: Mutex<Vec<String>>,
    filling: AtomicBool,
    closing: AtomicBool,
    fillers: TaskTracker,
}

impl EgressGateway {
    /// A sandbox network for one sandbox: a spare when one is ready (made
    /// with the running proxy), else one made now. Spares are made again
    /// in the background.
    pub async fn open_network(self: &Arc<Self>) -> Result<OpenedNetwork, EgressError> {
        let proxy = self.proxy().await?;
        let (spare, stale) = {
            let mut spares = self.networks.spares.lock();
            let (current, stale): (Vec<_>, Vec<_>) = spares.drain(..).partition(|spare| spare.proxy == proxy.name());
            *spares = current;
            (spares.pop(), stale)
        };
        for network in stale {
            self.discard_in_background(network.name);
        }
        let opened = match spare {
            Some(spare) => spare,
            // Once more when the engine fails a start.
            None => match self.make_network(&proxy).await {
                Ok(made) => made,
                Err(_) => self.make_network(&proxy).await?,
            },
        };
        self.networks
            .made
            .lock()
            .insert(opened.name.clone(), Some(Instant::now()));
        self.refill();
        Ok(opened)
    }

    /// Starts making spares (a server configured with `egress.allow` does
    /// at start, so its first sandbox with network starts quickly too).
    pub fn warm(self: &Arc<Self>) {
        self.refill();
    }

    /// Whether a sandbox network is this server's and still wanted.
    fn claimed_by_us(&self, network: &str) -> bool {
        match self.networks.made.lock().get(network) {
            Some(Some(handed_out)) => handed_out.elapsed() < HANDED_OUT_GRACE,
            Some(None) => true,
            None => false,
        }
    }

    /// Forgets `owner` and removes its network and the network's holder
    /// (the sandbox must be gone).
    pub async fn close_network(&self, network: &str, owner: &Owner) -> Result<(), DockerError> {
        self.ledger.lock().release(owner);
        self.remove_network(network).await
    }

    /// Removes a network and its holder whose sandbox is gone, once its
    /// owner was released (a destroyed session).
    pub async fn remove_unused_network(&self, network: &str) -> Result<(), DockerError> {
        self.remove_network(network).await
    }

    /// Removes sandbox networks nothing uses any more: ones whose server
    /// died before removing them (its spares, or a stateless execute's),
    /// or whose session is gone. Returns how many.
    pub async fn collect_orphans(&self) -> Result<usize, DockerError> {
        let now = unix_now();
        let in_use = self.engine.label_values(labels::NETWORK_NAME).await?;
        let sessions = self.engine.label_values(labels::SESSION).await?;
        let mut removed = 0;
        for network in self
            .engine
            .networks_with_members(&[(labels::KIND, NETWORK_KIND)])
            .await?
        {
            let claim = if in_use.contains(&network.name) || self.claimed_by_us(&network.name) {
                Claim::Used
            } else if network.labels.get(labels::INSTANCE) == Some(&self.instance_id) {
                Claim::Ours
            } else {
                Claim::Others
            };
            if is_orphan(&network, claim, &sessions, now) {
                tracing::info!(network = %network.name, "removing an unused sandbox network");
                // One that cannot be removed now does not hold up the rest.
                match self.remove_network(&network.name).await {
                    Ok(()) => removed += 1,
                    Err(error) => {
                        tracing::warn!(network = %network.name, %error, "could not remove an unused sandbox network")
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Stops making spares and removes them.
    pub(super) async fn close_spares(&self) {
        self.networks.closing.store(true, Ordering::SeqCst);
        self.networks.fillers.close();
        if tokio::time::timeout(FILL_LIMIT, self.networks.fillers.wait())
            .await
            .is_err()
        {
            tracing::warn!("a spare sandbox network was still being made at shutdown");
        }
        let spares: Vec<OpenedNetwork> = std::mem::take(&mut *self.networks.spares.lock());
        let removals = spares.iter().map(|spare| self.remove_network(&spare.name));
        for result in futures::future::join_all(removals).await {
            if let Err(error) = result {
                tracing::warn!(%error, "could not remove a spare sandbox network");
            }
        }
    }

    /// Makes spares until [`SPARE_NETWORKS`] are ready, in the background
    /// (one maker at a time), when the user allowed hosts (`egress.allow`):
    /// otherwise networks (installs', sessions' with `network: []`) are
    /// made when wanted, and no subnet is held for nothing.
    fn refill(self: &Arc<Self>) {
        let networks = &self.networks;
        if self.allow.read().is_empty()
            || networks.closing.load(Ordering::SeqCst)
            || networks.filling.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let gateway = self.clone();
        networks.fillers.spawn(async move {
            let networks = &gateway.networks;
            let mut failures = 0;
            while networks.spares.lock().len() < SPARE_NETWORKS && !networks.closing.load(Ordering::SeqCst) {
                let made = async {
                    let proxy = gateway.proxy().await?;
                    gateway.make_network(&proxy).await
                };
                match made.await {
                    Ok(spare) => networks.spares.lock().push(spare),
                    // Once more (the engine fails a start now and then);
                    // then the next sandbox with network tries again.
                    Err(error) if failures == 0 => {
                        tracing::debug!(%error, "making a spare sandbox network failed; trying again");
                        failures += 1;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not make a spare sandbox network");
                        break;
                    }
                }
            }
            networks.filling.store(false, Ordering::SeqCst);
            // A spare taken after the last count waits for the next taking.
        });
    }

    /// Makes a sandbox network: the network, `proxy` on it, its holder up.
    async fn make_network(&self, proxy: &ProxyProcess) -> Result<OpenedNetwork, EgressError> {
        let id: String = uuid::Uuid::new_v4().simple().to_string().chars().take(12).collect();
        let name = format!("{NETWORK_PREFIX}{id}");
        self.networks.made.lock().insert(name.clone(), None);
        let labelled = |kind: &str| {
            HashMap::from([
                (labels::KIND.to_string(), kind.to_string()),
                (labels::INSTANCE.to_string(), self.instance_id.clone()),
            ])
        };
        let reuse = self.networks.free_subnets.lock().pop();
        let made = match self
            .engine
            .create_isolated_network(&name, &labelled(NETWORK_KIND), reuse.as_deref())
            .await
        {
            Ok(made) => made,
            Err(error) => {
                self.networks.made.lock().remove(&name);
                return Err(error.into());
            }
        };
        let ready = async {
            let via = proxy_address(made.subnet.as_deref(), &name)?;
            self.join(proxy, &name, via).await?;
            let image = proxy::image(&self.config);
            self.engine
                .start_network_holder(&HolderSpec {
                    network: &name,
                    image: &image,
                    labels: labelled(HOLDER_KIND),
                })
                .await?;
            let address = self.address_of(&name, &name).await?;
            Ok(OpenedNetwork {
                name: name.clone(),
                via,
                address,
                proxy: proxy.name().to_string(),
            })
        };
        match ready.await {
            Ok(opened) => Ok(opened),
            Err(error) => {
                let _ = self.remove_network(&name).await;
                Err(error)
            }
        }
    }

    /// Removes a sandbox network and its holder; its subnet is kept for
    /// the next network.
    async fn remove_network(&self, network: &str) -> Result<(), DockerError> {
        self.networks.made.lock().remove(network);
        self.engine.remove_sandbox(network).await?;
        if let Some(subnet) = self.engine.remove_network(network).await? {
            let mut free = self.networks.free_subnets.lock();
            free.push(subnet);
            let keep = free.len().saturating_sub(FREE_SUBNETS_KEPT);
            free.drain(..keep);
        }
        Ok(())
    }

    fn discard_in_background(self: &Arc<Self>, network: String) {
        let gateway = self.clone();
        self.networks.fillers.spawn(async move {
            if let Err(error) = gateway.remove_network(&network).await {
                tracing::warn!(%network, %error, "could not remove a spare sandbox network");
            }
        });
    }
}

/// Who a sandbox network is known to be used by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// A container names it, or this server made it and has not removed it.
    Used,
    /// This server's, which it removed (or tried to).
    Ours,
    /// Another server's (or one made before instance labels).
    Others,
}

/// Whether `network` is left over. A network with a holder is another
/// server's spare while that server's proxy is on it (a server that died
/// took its proxy along; a network being made has the proxy on it within
/// moments). Networks made before holders are named after their session,
/// or carry a stateless execute's sandbox while it runs, and are collected
/// after [`ORPHAN_AGE`].
fn is_orphan(network: &NetworkMembers, claim: Claim, sessions: &HashSet<String>, now: u64) -> bool {
    let older_than = |limit: Duration| {
        network
            .created
            .is_some_and(|created| now.saturating_sub(created) >= limit.as_secs())
    };
    let has_proxy = network
        .members
        .iter()
        .any(|member| member.starts_with(PROXY_NAME_PREFIX));
    if network.name.starts_with(NETWORK_PREFIX) {
        return match claim {
            Claim::Used => false,
            Claim::Ours => older_than(SPARE_GRACE),
            Claim::Others => !has_proxy && older_than(SPARE_GRACE),
        };
    }
    let used = match network.labels.get(labels::SESSION) {
        Some(session) => sessions.contains(session),
        None => network
            .members
            .iter()
            .any(|member| !member.starts_with(PROXY_NAME_PREFIX)),
    };
    claim != Claim::Used && !used && older_than(ORPHAN_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn network(name: &str, members: &[&str], age: u64, labels: &[(&str, &str)]) -> NetworkMembers {
        NetworkMembers {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            members: members.iter().map(ToString::to_string).collect(),
            subnet: None,
            created: Some(NOW - age),
        }
    }

    #[test]
    fn networks_with_holders_go_when_no_server_keeps_them() {
        let none = HashSet::new();
        let name = format!("{NETWORK_PREFIX}abc");
        let proxy = format!("{PROXY_NAME_PREFIX}other-0");
        // Another server's spare while its proxy is on it: kept.
        let spare = network(&name, &[&name, &proxy], 3600, &[]);
        assert!(!is_orphan(&spare, Claim::Others, &none, NOW));
        // Its server died (the proxy went with it): collected, once past
        // the moment a network being made has no proxy yet.
        let dead = network(&name, &[&name], 3600, &[]);
        assert!(is_orphan(&dead, Claim::Others, &none, NOW));
        let being_made = network(&name, &[], 2, &[]);
        assert!(!is_orphan(&being_made, Claim::Others, &none, NOW));
        // A sandbox names it, or this server made it: kept whatever else.
        assert!(!is_orphan(&dead, Claim::Used, &none, NOW));
        // This server's, removed before (a removal failed): collected.
        assert!(is_orphan(&spare, Claim::Ours, &none, NOW));
    }

    #[test]
    fn networks_made_before_holders_keep_their_rules() {
        let sessions = HashSet::from(["live".to_string()]);
        let proxy = format!("{PROXY_NAME_PREFIX}x-0");
        let session = |name: &str, age| {
            network(
                &format!("multilang-sandbox-session-{name}.network"),
                &[&proxy],
                age,
                &[(labels::SESSION, name)],
            )
        };
        assert!(!is_orphan(&session("live", 3600), Claim::Others, &sessions, NOW));
        assert!(is_orphan(&session("gone", 3600), Claim::Others, &sessions, NOW));
        assert!(!is_orphan(&session("gone", 5), Claim::Others, &sessions, NOW));
        let execute = |members: &[&str]| network("multilang-sandbox-execute-1", members, 3600, &[]);
        assert!(!is_orphan(
            &execute(&[&proxy, "sandbox"]),
            Claim::Others,
            &sessions,
            NOW
        ));
        assert!(is_orphan(&execute(&[&proxy]), Claim::Others, &sessions, NOW));
    }
}
