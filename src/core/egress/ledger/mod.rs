//! The gateway's bookkeeping, without I/O: which sandbox is behind each
//! proxy address, what it may reach, what it has used, and the decision
//! on each connection the proxy asks about.

use super::asker::Approval;
use super::protocol::{Ask, Closed};
use crate::config::EgressSettings;
use crate::security::egress::{BUDGET_KEY, CONNECTIONS_KEY, HostPattern};
use crate::security::egress::{Decision, Host, Policy, PrivateEntry, Rule};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// Whose connections these are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A named session.
    Session(String),
    /// One stateless execute (its id).
    Execute(String),
    /// One install (`sandbox_install`, or a cached image being built; its
    /// id): it reaches only the registries its package manager is
    /// configured for, found in its image ([`Ledger::judge`]).
    Install(String),
}

impl Owner {
    /// The name the proxy logs and counts the connection under (session
    /// names cannot hold a space, so the two never meet).
    pub fn tag(&self) -> String {
        match self {
            Owner::Session(name) => name.clone(),
            Owner::Execute(id) => format!("execute {id}"),
            Owner::Install(id) => format!("install {id}"),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Session(name) => write!(f, "session `{name}`"),
            Owner::Execute(id) => write!(f, "stateless execute {id}"),
            Owner::Install(id) => write!(f, "install {id}"),
        }
    }
}

/// What one sandbox did through the proxy (since this server started
/// serving it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EgressTotals {
    /// Connections allowed and opened.
    pub connections: u64,
    /// Connections refused (by the grants, the address check or a cap).
    pub refused: u64,
    /// Bytes sent by the sandbox.
    pub bytes_up: u64,
    /// Bytes received by the sandbox.
    pub bytes_down: u64,
}

/// The sandbox behind one proxy address.
#[derive(Debug, Clone)]
struct Binding {
    owner: Owner,
    /// The sandbox's own address on its network: the only client served there.
    client: IpAddr,
}

#[derive(Debug, Default)]
struct Account {
    grants: Vec<HostPattern>,
    /// The sandbox's container (where a session's grants are kept).
    container: Option<String>,
    totals: EgressTotals,
    /// Bytes of connections already closed, against the budget.
    used: u64,
    /// Connections allowed and not yet closed.
    open: usize,
    /// Refusals the model has not been told about yet.
    untold: Vec<String>,
}

/// A connection between its decision and its `closed`.
#[derive(Debug, Clone)]
struct Pending {
    owner: Option<Owner>,
    /// What allowed it (none: refused by the decision).
    rule: Option<String>,
}

/// The answer to an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Allow {
        owner: Owner,
        rule: Rule,
        budget_bytes: u64,
        /// The host is an `egress.allow_private` host entry.
        private: bool,
    },
    Refuse {
        owner: Option<Owner>,
        reason: String,
    },
    /// Outside the grants and `egress.allow`; the user can be asked.
    AskUser {
        owner: Owner,
    },
}

/// What to tell the proxy after the user answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    Allow {
        budget_bytes: u64,
        private: bool,
        /// The owner's grants now (to be kept with a session).
        grants: Vec<HostPattern>,
        container: Option<String>,
    },
    Refused(String),
}

/// What the audit log records about an ended connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub owner: Option<Owner>,
    pub rule: Option<String>,
}

/// Every binding, account and pending connection of one server.
#[derive(Debug, Default)]
pub struct Ledger {
    by_via: HashMap<IpAddr, Binding>,
    accounts: HashMap<Owner, Account>,
    pending: HashMap<String, Pending>,
}

impl Ledger {
    /// `owner`'s sandbox at `client` reaches the proxy at `via`, with `grants`.
    pub fn bind(&mut self, via: IpAddr, owner: Owner, client: IpAddr, container: &str, grants: Vec<HostPattern>) {
        self.by_via.retain(|_, binding| binding.owner != owner);
        self.by_via.insert(
            via,
            Binding {
                owner: owner.clone(),
                client,
            },
        );
        let account = self.accounts.entry(owner).or_default();
        if account.container.as_deref().is_some_and(|known| known != container) {
            // A new sandbox under the same name (a session destroyed and
            // created again): nothing of the old one's carries over.
            *account = Account::default();
        }
        account.grants = grants;
        account.container = Some(container.to_string());
    }

    /// True when `owner` is bound to some proxy address.
    pub fn is_bound(&self, owner: &Owner) -> bool {
        self.by_via.values().any(|binding| &binding.owner == owner)
    }

    /// Forgets `owner`'s binding (its address may have changed); its account stays.
    pub fn unbind(&mut self, owner: &Owner) {
        self.by_via.retain(|_, binding| &binding.owner != owner);
    }

    /// Forgets every binding and connection (the proxy they belong to is
    /// gone); accounts stay.
    pub fn unbind_all(&mut self) {
        self.by_via.clear();
        // Its connections went with it: none will be reported closed.
        self.pending.clear();
        for account in self.accounts.values_mut() {
            account.open = 0;
        }
    }

    /// Forgets `owner` entirely (its sandbox was removed).
    pub fn release(&mut self, owner: &Owner) {
        self.by_via.retain(|_, binding| &binding.owner != owner);
        self.accounts.remove(owner);
    }

    pub fn set_grants(&mut self, owner: &Owner, grants: Vec<HostPattern>) {
        self.accounts.entry(owner.clone()).or_default().grants = grants;
    }

    pub fn totals(&self, owner: &Owner) -> EgressTotals {
        self.accounts
            .get(owner)
            .map(|account| account.totals)
            .unwrap_or_default()
    }

    /// The refusals `owner`'s code met since the last call, oldest first.
    pub fn take_untold(&mut self, owner: &Owner) -> Vec<String> {
        self.accounts
            .get_mut(owner)
            .map(|account| std::mem::take(&mut account.untold))
            .unwrap_or_default()
    }

    /// The decision on one connection.
    /// `can_ask(owner)`: whether the user can be asked about `owner` now.
    pub fn judge(&mut self, ask: &Ask, settings: &EgressSettings, can_ask: impl Fn(&Owner) -> bool) -> Judgement {
        let judgement = self.judge_inner(ask, settings, can_ask);
        let (owner, rule) = match &judgement {
            Judgement::Allow { owner, rule, .. } => (Some(owner.clone()), Some(rule.to_string())),
            Judgement::Refuse { owner, reason } => {
                if let Some(account) = owner.as_ref().and_then(|owner| self.accounts.get_mut(owner)) {
                    tell(account, ask, reason);
                }
                (owner.clone(), None)
            }
            Judgement::AskUser { owner } => (Some(owner.clone()), None),
        };
        if let (Judgement::Allow { .. }, Some(owner)) = (&judgement, &owner)
            && let Some(account) = self.accounts.get_mut(owner)
        {
            account.open += 1;
        }
        self.pending.insert(ask.id.clone(), Pending { owner, rule });
        judgement
    }

    /// Books the user's answer to an ask the judgement sent to them; says
    /// what to tell the proxy. `ForSandbox` and `Always` add `host:port` to
    /// the owner's grants (the caller persists them for a session).
    pub fn answered(&mut self, ask: &Ask, owner: &Owner, approval: &Approval, settings: &EgressSettings) -> Answered {
        let budget_bytes = self.remaining_budget(owner, settings);
        let Some(account) = self.accounts.get_mut(owner) else {
            return Answered::Refused("the sandbox is gone".into());
        };
        if let Approval::Refused(reason) = approval {
            tell(account, ask, reason);
            return Answered::Refused(reason.clone());
        }
        // The connection ended while the user was deciding (the proxy
        // reported it closed): nothing is opened or counted for it.
        let Some(pending) = self.pending.get_mut(&ask.id) else {
            return Answered::Refused("the connection ended before the answer".into());
        };
        if matches!(approval, Approval::ForSandbox | Approval::Always)
            && let Some(host) = Host::parse(&ask.host)
        {
            let pattern = HostPattern::exact(&host, ask.port);
            if !account.grants.contains(&pattern) {
                account.grants.push(pattern);
            }
        }
        let rule = approval.rule().unwrap_or("the user");
        if budget_bytes == 0 {
            let reason = format!("byte budget reached ({BUDGET_KEY})");
            tell(account, ask, &reason);
            return Answered::Refused(reason);
        }
        account.open += 1;
        pending.rule = Some(rule.to_string());
        Answered::Allow {
            budget_bytes,
            private: private_host(settings, &ask.host),
            grants: account.grants.clone(),
            container: account.container.clone(),
        }
    }

    /// How many of `owner`'s connections the proxy has not reported closed.
    pub fn unsettled(&self, owner: &Owner) -> usize {
        self.pending
            .values()
            .filter(|pending| pending.owner.as_ref() == Some(owner))
            .count()
    }

    /// `owner`'s remaining budget now.
    pub fn remaining_budget(&self, owner: &Owner, settings: &EgressSettings) -> u64 {
        let used = self.accounts.get(owner).map_or(0, |account| account.used);
        settings.budget_bytes.saturating_sub(used)
    }

    fn judge_inner(&self, ask: &Ask, settings: &EgressSettings, can_ask: impl Fn(&Owner) -> bool) -> Judgement {
        let (Ok(via), Ok(client)) = (ask.via.parse::<IpAddr>(), ask.client.parse::<IpAddr>()) else {
            return refuse(None, "the proxy reported an unreadable address".into());
        };
        let Some(binding) = self.by_via.get(&via) else {
            return refuse(None, "this network is not a sandbox network this server serves".into());
        };
        let owner = binding.owner.clone();
        if binding.client != client {
            return refuse(
                Some(owner),
                "the connection does not come from the sandbox this network belongs to".into(),
            );
        }
        let account = self.accounts.get(&owner);
        let open = account.map_or(0, |account| account.open);
        if open >= settings.max_connections {
            return refuse(
                Some(owner),
                format!(
                    "{open} connections are open already, the most one sandbox may hold ({CONNECTIONS_KEY}); \
                     close some and retry"
                ),
            );
        }
        let grants = account.map(|account| account.grants.as_slice()).unwrap_or_default();
        if let Owner::Install(_) = owner {
            return judge_install(ask, owner, grants);
        }
        let budget_bytes = self.remaining_budget(&owner, settings);
        if budget_bytes == 0 {
            return refuse(
                Some(owner),
                format!(
                    "byte budget reached: this sandbox moved its {} MiB ({BUDGET_KEY})",
                    settings.budget_bytes / (1024 * 1024)
                ),
            );
        }
        let policy = Policy {
            configured: &settings.allow,
            granted: grants,
            can_ask: can_ask(&owner),
        };
        match policy.decide(&ask.host, ask.port) {
            Decision::Allowed { rule } => Judgement::Allow {
                private: private_host(settings, &ask.host),
                owner,
                rule,
                budget_bytes,
            },
            Decision::Refused { reason } => refuse(Some(owner), reason),
            Decision::AskUser => Judgement::AskUser { owner },
        }
    }

    /// Books an ended connection; says whom it was for and what allowed it.
    pub fn closed(&mut self, closed: &Closed) -> Settled {
        let pending = self.pending.remove(&closed.id);
        let (owner, rule) = match pending {
            Some(pending) => (pending.owner, pending.rule),
            None => (None, None),
        };
        if let Some(account) = owner.as_ref().and_then(|owner| self.accounts.get_mut(owner)) {
            let bytes = closed.bytes_up + closed.bytes_down;
            account.used += bytes;
            account.totals.bytes_up += closed.bytes_up;
            account.totals.bytes_down += closed.bytes_down;
            if rule.is_some() {
                account.open = account.open.saturating_sub(1);
            }
            if closed.allowed {
                account.totals.connections += 1;
            } else {
                account.totals.refused += 1;
                // A refusal by the decision was told when it was made; the
                // address check and the proxy's own limits are told here.
                if rule.is_some()
                    && let Some(reason) = &closed.reason
                {
                    account
                        .untold
                        .push(format!("{}:{}: {reason}", closed.host, closed.port));
                }
            }
            if closed.allowed
                && let Some(reason) = closed.reason.as_deref().filter(|reason| reason.contains("budget"))
            {
                account
                    .untold
                    .push(format!("{}:{}: {reason}", closed.host, closed.port));
            }
        }
        Settled { owner, rule }
    }
}

/// The decision on a connection of an install: the registries its package
/// manager is configured for (its grants, found in its image) are allowed,
/// and nothing else, without asking anyone. They come from the machine's
/// configuration, not from the model, so like `egress.allow_private` host
/// entries they may resolve to private addresses (an in-house mirror; never
/// link-local: the proxy keeps that for networks named in the
/// configuration). Installs are not held to `egress.budget_mb` (a large
/// package is normal; they have their own time and size limits), but to
/// `egress.max_connections` like every sandbox, and are audited like every
/// connection. An IP literal is never a registry here
/// (discovery grants names only), so it is refused.
fn judge_install(ask: &Ask, owner: Owner, grants: &[HostPattern]) -> Judgement {
    let registry = Host::parse(&ask.host).and_then(|host| {
        grants
            .iter()
            .find(|pattern| !pattern.is_address() && pattern.allows_port(ask.port) && pattern.matches_host(&host))
    });
    match registry {
        Some(pattern) => Judgement::Allow {
            owner,
            rule: Rule::Registry(pattern.clone()),
            budget_bytes: INSTALL_BUDGET,
            private: true,
        },
        None => {
            let found = grants.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            refuse(
                Some(owner),
                format!(
                    "{}:{} is refused: an install reaches only the package registries its package manager is \
                     configured for in the image ({})",
                    ask.host,
                    ask.port,
                    if found.is_empty() {
                        "none found".to_string()
                    } else {
                        found
                    }
                ),
            )
        }
    }
}

/// What an install may move: not `egress.budget_mb` (installs have their
/// own limits), so as much as the proxy can count.
const INSTALL_BUDGET: u64 = u64::MAX;

/// Keeps a refusal to tell the model in the execute's note.
fn tell(account: &mut Account, ask: &Ask, reason: &str) {
    account.untold.push(untold(&ask.host, ask.port, reason));
}

/// `host:port: reason`, without the `host:port is refused: ` some reasons
/// start with (the note names the host once).
fn untold(host: &str, port: u16, reason: &str) -> String {
    let reason = reason.split_once(" is refused: ").map_or(reason, |(_, why)| why);
    format!("{host}:{port}: {reason}")
}

fn refuse(owner: Option<Owner>, reason: String) -> Judgement {
    Judgement::Refuse { owner, reason }
}

/// True when `host` is named by a host entry of `egress.allow_private`.
fn private_host(settings: &EgressSettings, host: &str) -> bool {
    let Some(host) = Host::parse(host) else {
        return false;
    };
    settings.allow_private.entries().iter().any(|entry| match entry {
        PrivateEntry::Host(pattern) => pattern.matches_host(&host),
        PrivateEntry::Network(_) => false,
    })
}

#[cfg(test)]
mod tests;
