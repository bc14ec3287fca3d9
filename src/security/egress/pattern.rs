//! Host patterns: what a user writes in `egress.allow` and a model in
//! `network: [...]` (a host name, a `*.suffix` wildcard or an IP literal,
//! with an optional port), matched against the host a connection asks for
//! and compared with one another. Reading one from text is `parse.rs`.
//!
//! Choices:
//! - `*.example.org` is every name under `example.org` at any depth
//!   (`api.example.org`, `a.b.example.org`) but not `example.org` itself:
//!   a site's apex and its subdomains are often run by different parties, so
//!   the user lists the apex when they mean it.
//! - Without `:port` a pattern allows ports 80 and 443 (HTTP and HTTPS);
//!   with one, only that port.
//! - An address pattern matches only that address (an IPv4-mapped IPv6
//!   address being the same as the IPv4 address inside); names never match
//!   addresses, nor addresses names.

use super::parse::check_name;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The ports a pattern without `:port` allows: HTTP and HTTPS.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// Which hosts a pattern stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostSpec {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Every name under this domain, at any depth, not the domain itself
    /// (written `*.domain`).
    Subdomains(String),
    /// Exactly this address (an IPv4-mapped IPv6 address equals the IPv4
    /// address inside).
    Address(IpAddr),
}

/// One entry of `egress.allow` or of a model's `network: [...]`.
/// `Display` writes the normalized form, which parses back to the same
/// pattern; serde reads and writes that same string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    host: HostSpec,
    /// `None`: the default ports, 80 and 443.
    port: Option<u16>,
}

/// The host a connection asks for, normalized: a name (lower case, no
/// trailing dot) or an IP address (IPv6 with or without brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Address(IpAddr),
}

impl Host {
    /// Reads a host as the proxy reports it. `None` when it is neither a
    /// valid host name nor an IP address (such a host matches nothing).
    pub fn parse(text: &str) -> Option<Host> {
        if let Some(inner) = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            return inner.parse::<Ipv6Addr>().ok().map(|ip| Host::Address(ip.into()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(Host::Address(ip));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        check_name(text, &name).ok()?;
        Some(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Address(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Address(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl HostPattern {
    /// A pattern from parts already checked (by `parse.rs`, or taken from a
    /// parsed host).
    pub(super) fn new(host: HostSpec, port: Option<u16>) -> HostPattern {
        HostPattern { host, port }
    }

    /// The pattern for exactly one destination (what a user approves when
    /// asked about `host:port`).
    pub fn exact(host: &Host, port: u16) -> HostPattern {
        let host = match host {
            Host::Name(name) => HostSpec::Name(name.clone()),
            Host::Address(ip) => HostSpec::Address(*ip),
        };
        HostPattern { host, port: Some(port) }
    }

    pub fn host(&self) -> &HostSpec {
        &self.host
    }

    /// The port given with `:port`; `None` means ports 80 and 443.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn is_address(&self) -> bool {
        matches!(self.host, HostSpec::Address(_))
    }

    /// Whether a connection to `host:port` is allowed by this pattern.
    /// `host` as the proxy reports it; one that is not a valid host name or
    /// address matches nothing.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.allows_port(port) && Host::parse(host).is_some_and(|host| self.matches_host(&host))
    }

    /// Whether the host part of this pattern covers `host`, whatever the port.
    pub fn matches_host(&self, host: &Host) -> bool {
        match (&self.host, host) {
            (HostSpec::Name(name), Host::Name(asked)) => name == asked,
            (HostSpec::Subdomains(domain), Host::Name(asked)) => is_under(asked, domain),
            (HostSpec::Address(ip), Host::Address(asked)) => ip.to_canonical() == asked.to_canonical(),
            _ => false,
        }
    }

    pub fn allows_port(&self, port: u16) -> bool {
        match self.port {
            Some(own) => own == port,
            None => DEFAULT_PORTS.contains(&port),
        }
    }

    /// Whether every destination `other` allows is also allowed by this
    /// pattern: `*.github.com` covers `api.github.com` and `*.api.github.com`;
    /// `api.github.com` covers only itself; an address covers only the same
    /// address; no port covers 80, 443 and no port.
    pub fn covers(&self, other: &HostPattern) -> bool {
        self.covers_hosts(other) && self.covers_ports(other)
    }

    /// `covers` for the host part alone.
    pub fn covers_hosts(&self, other: &HostPattern) -> bool {
        match (&self.host, &other.host) {
            (HostSpec::Name(own), HostSpec::Name(asked)) => own == asked,
            (HostSpec::Subdomains(own), HostSpec::Name(asked)) => is_under(asked, own),
            (HostSpec::Subdomains(own), HostSpec::Subdomains(asked)) => own == asked || is_under(asked, own),
            (HostSpec::Address(own), HostSpec::Address(asked)) => own.to_canonical() == asked.to_canonical(),
            _ => false,
        }
    }

    /// `covers` for the port part alone.
    pub fn covers_ports(&self, other: &HostPattern) -> bool {
        match (self.port, other.port) {
            (None, None) => true,
            (None, Some(asked)) => DEFAULT_PORTS.contains(&asked),
            (Some(own), Some(asked)) => own == asked,
            (Some(_), None) => false,
        }
    }

    /// "ports 80 and 443" or "port 8443", for messages.
    pub fn ports_text(&self) -> String {
        match self.port {
            Some(port) => format!("port {port}"),
            None => format!("ports {} and {}", DEFAULT_PORTS[0], DEFAULT_PORTS[1]),
        }
    }
}

/// Whether `name` is a subdomain of `domain` (at any depth, not `domain`).
fn is_under(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1 && name.ends_with(domain) && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostSpec::Name(name) => f.write_str(name)?,
            HostSpec::Subdomains(domain) => write!(f, "*.{domain}")?,
            HostSpec::Address(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostSpec::Address(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl From<HostPattern> for String {
    fn from(pattern: HostPattern) -> String {
        pattern.to_string()
    }
}
