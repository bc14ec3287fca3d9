//! `egress.allow_private` and the one decision the proxy makes after
//! resolving an allowed host: may it connect to this address.
//!
//! Rules:
//! - Global unicast addresses are always reachable (the host was already
//!   allowed by name or literal before any lookup).
//! - Loopback, unspecified, broadcast and multicast are never reachable, not
//!   even when `egress.allow_private` covers them: in the proxy's container
//!   loopback (and `0.0.0.0`, which connects there) is the proxy itself, and
//!   the proxy relays TCP, which multicast and broadcast are not.
//! - Every other class (private, link-local with the cloud metadata address
//!   169.254.169.254, shared CGNAT space, unique local, documentation,
//!   reserved) is reachable only when an `egress.allow_private` entry names
//!   it: a network (`10.9.0.0/16`), an address (`10.9.0.5`), or a host name
//!   (`intranet.example`, `*.corp.example`). The proxy resolves names itself,
//!   so a host entry means "this host may resolve to such an address"
//!   (any but link-local: the cloud metadata address opens only to a
//!   network or address entry that names it); the host must still be
//!   allowed by `egress.allow` or a grant to be asked for.
//! - An IPv6 address carrying an IPv4 address is inside an entry's network
//!   when either address is.

use super::address::{AddressClass, embedded_ipv4};
use super::parse::PatternError;
use super::pattern::{Host, HostPattern, HostSpec};
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;

/// An `egress.allow_private` entry that cannot be used; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllowanceError {
    #[error("egress.allow_private: `{0}` is not a network: write a CIDR such as `10.9.0.0/16` or `fd00:9::/64`")]
    BadNetwork(String),
    #[error("egress.allow_private: `{given}` has bits set after the prefix: the network is `{network}`")]
    HostBits { given: String, network: IpNet },
    #[error("egress.allow_private: `{0}` is every address: name the private networks sandboxes may reach")]
    Everything(String),
    #[error("egress.allow_private: `{given}` is {}, which the egress proxy never connects to", .class.name())]
    NeverReachable { given: String, class: AddressClass },
    #[error(
        "egress.allow_private: `{0}` has a port: entries are networks, addresses or hosts (ports belong in egress.allow)"
    )]
    Port(String),
    #[error("egress.allow_private: {0}")]
    Host(#[from] PatternError),
}

/// One `egress.allow_private` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateEntry {
    /// A network, or one address as a /32 or /128.
    Network(IpNet),
    /// A host (name or `*.suffix`, no port) that may resolve to any
    /// address an entry can open.
    Host(HostPattern),
}

impl FromStr for PrivateEntry {
    type Err = AllowanceError;

    fn from_str(text: &str) -> Result<Self, AllowanceError> {
        let given = text.trim();
        let plain = given
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(given);
        let network = if given.contains('/') && !given.contains("://") {
            let network: IpNet = given.parse().map_err(|_| AllowanceError::BadNetwork(given.into()))?;
            if network.trunc() != network {
                return Err(AllowanceError::HostBits {
                    given: given.into(),
                    network: network.trunc(),
                });
            }
            if network.prefix_len() == 0 {
                return Err(AllowanceError::Everything(given.into()));
            }
            network
        } else if let Ok(ip) = plain.parse::<IpAddr>() {
            IpNet::from(ip)
        } else {
            // Addresses without a port were read above; with one, refused here.
            let pattern: HostPattern = given.parse()?;
            if pattern.port().is_some() {
                return Err(AllowanceError::Port(given.into()));
            }
            match pattern.host() {
                // An address written as a name (`1.2.3.4.`) is an address.
                HostSpec::Address(ip) => IpNet::from(*ip),
                _ => return Ok(PrivateEntry::Host(pattern)),
            }
        };
        // Any overlap counts: `64.0.0.0/2` holds 127.0.0.0/8.
        if let Some(class) = never_reachable_within(&network) {
            return Err(AllowanceError::NeverReachable {
                given: given.into(),
                class,
            });
        }
        Ok(PrivateEntry::Network(network))
    }
}

/// The class of a range `network` shares addresses with that no entry
/// can open (in any of its forms: `64.0.0.0/2` holds loopback, and so does
/// `::ffff:64.0.0.0/98`).
fn never_reachable_within(network: &IpNet) -> Option<AddressClass> {
    AddressClass::NEVER_ALLOWED.into_iter().find(|class| {
        class
            .ranges()
            .iter()
            .any(|never| network.contains(&never.network()) || never.contains(&network.network()))
    })
}

impl fmt::Display for PrivateEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateEntry::Network(net) if net.prefix_len() == net.max_prefix_len() => write!(f, "{}", net.addr()),
            PrivateEntry::Network(net) => write!(f, "{net}"),
            PrivateEntry::Host(pattern) => write!(f, "{pattern}"),
        }
    }
}

/// The parsed `egress.allow_private`: which non-global destinations the
/// proxy may connect to. Empty (the default) opens none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateAllowance {
    entries: Vec<PrivateEntry>,
}

impl PrivateAllowance {
    /// Parses every entry; the first that cannot be used is the error.
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self, AllowanceError> {
        let entries = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(PrivateAllowance { entries })
    }

    /// The entries that are networks or addresses (what the proxy is
    /// configured with; host entries are sent with each decision).
    pub fn networks(&self) -> impl Iterator<Item = &IpNet> {
        self.entries.iter().filter_map(|entry| match entry {
            PrivateEntry::Network(network) => Some(network),
            PrivateEntry::Host(_) => None,
        })
    }

    pub fn entries(&self) -> &[PrivateEntry] {
        &self.entries
    }

    /// The entry that opens `address` reached as `host`, if any. An
    /// IPv6 address carrying an IPv4 address is also looked up as that one.
    pub fn entry_for(&self, address: IpAddr, host: &str) -> Option<&PrivateEntry> {
        let inner = match address {
            IpAddr::V6(ip) => embedded_ipv4(ip).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let host = Host::parse(host);
        // A host entry never opens link-local (cloud metadata lives there):
        // only a network that names it does.
        let link_local = AddressClass::of(address) == AddressClass::LinkLocal;
        self.entries.iter().find(|entry| match entry {
            PrivateEntry::Network(net) => net.contains(&address) || inner.is_some_and(|inner| net.contains(&inner)),
            PrivateEntry::Host(pattern) => !link_local && host.as_ref().is_some_and(|host| pattern.matches_host(host)),
        })
    }
}

/// Why the proxy will not connect to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The host as asked (a name, or the literal address).
    pub host: String,
    pub address: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let literal = Host::parse(&self.host) == Some(Host::Address(self.address));
        if !literal {
            write!(f, "{} resolves to ", self.host)?;
        }
        write!(f, "{}", self.address)?;
        if let IpAddr::V6(ip) = self.address
            && let Some(inner) = embedded_ipv4(ip)
        {
            write!(f, " (carrying the IPv4 address {inner})")?;
        }
        let which = if literal { "" } else { ", which" };
        write!(f, "{which} is {}", self.class.name())?;
        match self.class.can_be_allowed() {
            false => write!(f, ": the egress proxy never connects there"),
            true => write!(
                f,
                ": the egress proxy connects there only when egress.allow_private names it \
                 (a network such as 10.9.0.0/16, the address, or the host)"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The address check: may the proxy connect to `address`, which `host`
/// resolved to (or which `host` is, for a literal)?
pub fn destination_allowed(address: IpAddr, host: &str, allowance: &PrivateAllowance) -> Result<(), Refusal> {
    let class = AddressClass::of(address);
    let allowed = match class {
        AddressClass::Global => true,
        _ if !class.can_be_allowed() => false,
        _ => allowance.entry_for(address, host).is_some(),
    };
    match allowed {
        true => Ok(()),
        false => Err(Refusal {
            host: host.to_string(),
            address,
            class,
        }),
    }
}
