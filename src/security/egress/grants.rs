//! Grant decisions: whether a session may reach `host:port` when the proxy
//! asks, and which of the hosts a model requests (`network: [...]` at session
//! create, or when it changes a session's grants) are covered by the user's
//! `egress.allow`.
//!
//! A connection is allowed by a grant of its sandbox only. A host that
//! `egress.allow` covers but the sandbox did not request is refused with a
//! reason saying the model can request it (no need to ask the user: they
//! allowed it already); anything else is asked of the user when that is
//! possible, else refused with a reason that names the config key. So a
//! sandbox reaches what was requested for it, never what another sandbox
//! requested, and `egress.allow` is the ceiling of what can be requested
//! without the user.

use super::pattern::{DEFAULT_PORTS, Host, HostPattern};
use super::{ALLOW_ENV, ALLOW_KEY};
use std::fmt;

/// What allowed a destination, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A pattern the session holds (requested and covered, or approved by
    /// the user).
    Grant(HostPattern),
    /// A pattern of `egress.allow`.
    Configured(HostPattern),
    /// A registry the package manager of an install is configured for
    /// (found in its image when the install starts).
    Registry(HostPattern),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Grant(pattern) => write!(f, "session grant `{pattern}`"),
            Rule::Configured(pattern) => write!(f, "{ALLOW_KEY} `{pattern}`"),
            Rule::Registry(pattern) => write!(f, "install registry `{pattern}`"),
        }
    }
}

/// The answer to "may this session reach host:port".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        rule: Rule,
    },
    /// `reason` is one line, shown to the program (HTTP 403) and the model.
    Refused {
        reason: String,
    },
    /// Outside every rule, and the user can be asked.
    AskUser,
}

/// What a decision is made from.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// `egress.allow`.
    pub configured: &'a [HostPattern],
    /// The session's grants.
    pub granted: &'a [HostPattern],
    /// Whether the user can be asked (`egress.ask` on and the client
    /// declared elicitation).
    pub can_ask: bool,
}

/// How one requested pattern fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Granted without asking.
    Covered { by: Rule },
    /// To be granted only if the user approves.
    NeedsApproval,
    /// `reason` names the config key and what to do.
    Refused { reason: String },
}

/// The verdict on each pattern of a request, in the order requested
/// (duplicates dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub items: Vec<(HostPattern, Verdict)>,
}

impl Review {
    pub fn covered(&self) -> impl Iterator<Item = &HostPattern> {
        self.items
            .iter()
            .filter(|(_, verdict)| matches!(verdict, Verdict::Covered { .. }))
            .map(|(p, _)| p)
    }

    pub fn needs_approval(&self) -> impl Iterator<Item = &HostPattern> {
        self.items
            .iter()
            .filter(|(_, verdict)| *verdict == Verdict::NeedsApproval)
            .map(|(p, _)| p)
    }

    /// Every refusal's reason, one line, or `None` when nothing was refused.
    pub fn refusal(&self) -> Option<String> {
        let reasons: Vec<&str> = self
            .items
            .iter()
            .filter_map(|(_, verdict)| match verdict {
                Verdict::Refused { reason } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

impl Policy<'_> {
    /// The decision on one connection to `host:port`, `host` as the proxy
    /// reports it (lower case; an IPv6 literal with or without brackets).
    pub fn decide(&self, host: &str, port: u16) -> Decision {
        let Some(parsed) = Host::parse(host) else {
            return Decision::Refused {
                reason: format!("`{host}` is neither a host name nor an IP address"),
            };
        };
        let matching = |patterns: &[HostPattern]| {
            patterns
                .iter()
                .find(|p| p.allows_port(port) && p.matches_host(&parsed))
                .cloned()
        };
        if let Some(pattern) = matching(self.granted) {
            return Decision::Allowed {
                rule: Rule::Grant(pattern),
            };
        }
        if let Some(pattern) = matching(self.configured) {
            // The user allows it, but this sandbox did not ask for it: the
            // model can, without bothering the user.
            return Decision::Refused {
                reason: format!(
                    "{parsed}:{port} is refused: it is not in this sandbox's grants, though {ALLOW_KEY} has `{pattern}`; \
                     request it with `network` (sandbox_session action \"network\", or on the execute)"
                ),
            };
        }
        if self.can_ask {
            return Decision::AskUser;
        }
        Decision::Refused {
            reason: self.refusal(&parsed, port),
        }
    }

    fn refusal(&self, host: &Host, port: u16) -> String {
        let other_port = self
            .granted
            .iter()
            .chain(self.configured)
            .find(|p| p.matches_host(host));
        let why = match (host, other_port) {
            (_, Some(pattern)) => format!("it is allowed on {} only (`{pattern}`)", pattern.ports_text()),
            (Host::Address(_), None) => "an IP address is reachable only when granted as that same address".into(),
            (Host::Name(_), None) => format!("it is neither in this sandbox's grants nor in {ALLOW_KEY}"),
        };
        let suggestion = match DEFAULT_PORTS.contains(&port) {
            true => host.to_string(),
            false => format!("{host}:{port}"),
        };
        format!("{host}:{port} is refused: {why}; {}", how_to_allow(&suggestion))
    }

    /// The verdict on each pattern a model requests: covered by
    /// `egress.allow` (or already granted to the session), else to be
    /// approved by the user when asking is possible, else refused. An IP
    /// literal is covered only by the same literal.
    pub fn review(&self, requested: &[HostPattern]) -> Review {
        let mut items: Vec<(HostPattern, Verdict)> = Vec::new();
        for pattern in requested {
            if items.iter().any(|(seen, _)| seen == pattern) {
                continue;
            }
            let by = |rule: fn(HostPattern) -> Rule, patterns: &[HostPattern]| {
                patterns.iter().find(|p| p.covers(pattern)).map(|p| rule(p.clone()))
            };
            let verdict = match by(Rule::Configured, self.configured).or_else(|| by(Rule::Grant, self.granted)) {
                Some(rule) => Verdict::Covered { by: rule },
                None if self.can_ask => Verdict::NeedsApproval,
                None => Verdict::Refused {
                    reason: self.request_refusal(pattern),
                },
            };
            items.push((pattern.clone(), verdict));
        }
        Review { items }
    }

    fn request_refusal(&self, pattern: &HostPattern) -> String {
        let same_host = self.configured.iter().find(|p| p.covers_hosts(pattern));
        let narrower: Vec<String> = self
            .configured
            .iter()
            .filter(|p| pattern.covers_hosts(p))
            .map(|p| format!("`{p}`"))
            .collect();
        let detail = if let Some(configured) = same_host {
            format!(" (it has `{configured}`, for {} only)", configured.ports_text())
        } else if pattern.is_address() {
            " (an IP address is covered only by that same address)".to_string()
        } else if !narrower.is_empty() {
            let which = if narrower.len() == 1 { "that" } else { "those" };
            format!(
                " (it has the narrower {}: request {which} instead)",
                narrower.join(", ")
            )
        } else {
            String::new()
        };
        let fix = how_to_allow(&pattern.to_string());
        format!("`{pattern}` is not covered by {ALLOW_KEY}{detail}; {fix}")
    }
}

fn how_to_allow(pattern: &str) -> String {
    format!(
        "the user can add `{pattern}` to {ALLOW_KEY} in the config file or to {ALLOW_ENV} in the environment \
         (the server reads it at start), and the model can then request it with `network`"
    )
}
