//! Address classes: where a destination address sits in the address space
//! (global, loopback, private, link-local, CGNAT, unique local, multicast,
//! …), after the IANA special-purpose registries, with a name for messages.
//!
//! An IPv6 address that carries an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
//! the deprecated IPv4-compatible `::a.b.c.d` that Linux's `sit` tunnel still
//! routes, NAT64's `64:ff9b::/96`, 6to4's `2002::/16`) is classed as the IPv4
//! address inside, so `::ffff:127.0.0.1` is loopback. IPv6 outside the global
//! unicast block `2000::/3` is reserved unless listed.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where an address sits in the address space, as far as the proxy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Routed on the internet.
    Global,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16 (cloud metadata at 169.254.169.254), fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT.
    SharedCgnat,
    /// fc00::/7, IPv6's private space.
    UniqueLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Everything else not routed on the internet (0/8, 240/4, benchmarking,
    /// protocol assignments, IPv6 outside 2000::/3, …).
    Reserved,
}

use AddressClass::*;

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(first: u16, second: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(first, second, 0, 0, 0, 0, 0, 0), len)
}

/// IPv4 special-purpose ranges; the first that contains the address wins.
const IPV4: &[(Ipv4Net, AddressClass)] = &[
    (v4(0, 0, 0, 0, 32), Unspecified),
    (v4(255, 255, 255, 255, 32), Broadcast),
    (v4(0, 0, 0, 0, 8), Reserved), // "this network"
    (v4(10, 0, 0, 0, 8), Private),
    (v4(100, 64, 0, 0, 10), SharedCgnat),
    (v4(127, 0, 0, 0, 8), Loopback),
    (v4(169, 254, 0, 0, 16), LinkLocal),
    (v4(172, 16, 0, 0, 12), Private),
    (v4(192, 0, 0, 0, 24), Reserved), // IETF protocol assignments
    (v4(192, 0, 2, 0, 24), Documentation),
    (v4(192, 88, 99, 0, 24), Reserved), // 6to4 relay anycast, deprecated
    (v4(192, 168, 0, 0, 16), Private),
    (v4(198, 18, 0, 0, 15), Reserved), // benchmarking
    (v4(198, 51, 100, 0, 24), Documentation),
    (v4(203, 0, 113, 0, 24), Documentation),
    (v4(224, 0, 0, 0, 4), Multicast),
    (v4(240, 0, 0, 0, 4), Reserved),
];

/// IPv6 ranges after `::`, `::1` and the IPv4-carrying ones; the first that
/// contains the address wins, and an address in none of them is reserved.
const IPV6: &[(Ipv6Net, AddressClass)] = &[
    (v6(0x0100, 0, 64), Reserved), // discard-only
    (v6(0x2001, 0x0db8, 32), Documentation),
    (v6(0x2001, 0, 23), Reserved), // IETF protocol assignments, Teredo
    (v6(0x3fff, 0, 20), Documentation),
    (v6(0x2000, 0, 3), Global),
    (v6(0xfc00, 0, 7), UniqueLocal),
    (v6(0xfe80, 0, 10), LinkLocal),
    (v6(0xff00, 0, 8), Multicast),
];

impl AddressClass {
    /// The class of an address.
    pub fn of(address: IpAddr) -> AddressClass {
        match address {
            IpAddr::V4(ip) => IPV4
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map_or(Global, |(_, class)| *class),
            IpAddr::V6(ip) if ip.is_unspecified() => Unspecified,
            IpAddr::V6(ip) if ip.is_loopback() => Loopback,
            IpAddr::V6(ip) => match embedded_ipv4(ip) {
                Some(inner) => AddressClass::of(inner.into()),
                None => IPV6
                    .iter()
                    .find(|(net, _)| net.contains(&ip))
                    .map_or(Reserved, |(_, class)| *class),
            },
        }
    }

    /// The class in words, to follow "is": "10.0.0.5 is private".
    pub fn name(self) -> &'static str {
        match self {
            Global => "global",
            Loopback => "loopback",
            Private => "private",
            LinkLocal => "link-local (where cloud metadata services such as 169.254.169.254 live)",
            SharedCgnat => "shared carrier-grade NAT space (100.64.0.0/10)",
            UniqueLocal => "unique local (IPv6's private space, fc00::/7)",
            Multicast => "multicast",
            Unspecified => "unspecified (it means this machine)",
            Broadcast => "broadcast",
            Documentation => "reserved for documentation",
            Reserved => "reserved (not routed on the internet)",
        }
    }

    /// The classes no `egress.allow_private` entry can open, in the order
    /// a refusal names them.
    pub const NEVER_ALLOWED: [AddressClass; 4] = [Loopback, Unspecified, Broadcast, Multicast];

    /// Whether an `egress.allow_private` entry can open this class.
    pub fn can_be_allowed(self) -> bool {
        !Self::NEVER_ALLOWED.contains(&self)
    }

    /// Every range of this class from the tables above, with the IPv6
    /// forms that carry its IPv4 ranges (the ones [`embedded_ipv4`] reads).
    pub fn ranges(self) -> Vec<IpNet> {
        let mut ranges = Vec::new();
        for (net, _) in IPV4.iter().filter(|(_, class)| *class == self) {
            ranges.push(IpNet::V4(*net));
            ranges.extend(ipv6_forms(*net).into_iter().map(IpNet::V6));
        }
        ranges.extend(
            IPV6.iter()
                .filter(|(_, class)| *class == self)
                .map(|(net, _)| IpNet::V6(*net)),
        );
        match self {
            Loopback => ranges.push(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128))),
            Unspecified => ranges.push(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128))),
            _ => {}
        }
        ranges
    }
}

/// The IPv6 ranges that carry the addresses of `net`: IPv4-mapped,
/// IPv4-compatible, NAT64 and 6to4, the forms [`embedded_ipv4`] reads.
fn ipv6_forms(net: Ipv4Net) -> Vec<Ipv6Net> {
    let [a, b, c, d] = net.network().octets();
    let high = u16::from_be_bytes([a, b]);
    let low = u16::from_be_bytes([c, d]);
    let len = net.prefix_len();
    [
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, high, low), 96 + len),
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0, high, low), 96 + len),
        (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low), 96 + len),
        (Ipv6Addr::new(0x2002, high, low, 0, 0, 0, 0, 0), 16 + len),
    ]
    .into_iter()
    .filter_map(|(address, len)| Ipv6Net::new(address, len).ok())
    .collect()
}

/// The IPv4 address an IPv6 address carries, for the forms that reach it:
/// IPv4-mapped, IPv4-compatible (not `::` or `::1`), NAT64 `64:ff9b::/96`
/// and 6to4 `2002::/16`.
pub fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., a, b, c, d] = address.octets();
    let low = Ipv4Addr::new(a, b, c, d);
    match address.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] if !address.is_unspecified() && !address.is_loopback() => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, high, next, ..] => Some(Ipv4Addr::from((u32::from(high) << 16) | u32::from(next))),
        _ => None,
    }
}
