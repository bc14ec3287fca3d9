"""Which destination addresses the egress proxy may connect to: only global
unicast ones, unless the server's configuration (`allow_private`) names the
network. The check runs on every address a name resolves to, and on IP
literals alike, so an allowed name that resolves to a private address (DNS
rebinding, or a name pointed at the cloud metadata service) is refused.

The address classes are explicit tables, the same as the server's
(src/security/egress/address.rs; its tests' cases are in
test_egress_parts.py), rather than `ipaddress`'s is_global/is_private,
which change between Python versions. An IPv6 address that carries an IPv4
address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
`64:ff9b::/96`, 6to4 `2002::/16`) is classed as the IPv4 address inside;
IPv6 outside `2000::/3` is reserved unless listed.

Loopback, unspecified, broadcast and multicast are never destinations,
whatever allow_private says: in the proxy's container loopback (and
0.0.0.0, which connects there) is the proxy itself. The one exception is
the project's own tests (`--test-allow-loopback`). Neither is any address
of the proxy's own (is_local).

A decision with `private` (the server matched the host to a host name in
egress.allow_private) opens every class allow_private networks could open
for that connection; the never-destinations stay refused.

Nor is any address on a sandbox network (SandboxNetworks), whatever
allow_private or `private` say: the proxy is connected to every session's
isolated network, and one session must not reach another's sandboxes. The
sandbox networks are the subnets of the proxy's interfaces other than the
ones that carry a default route, read from the kernel's route tables."""

import errno
import ipaddress
import socket
import sys
import time
from collections import namedtuple

GLOBAL = "global"
LOOPBACK = "loopback"
PRIVATE = "private"
LINK_LOCAL = "link-local"
SHARED_CGNAT = "shared carrier-grade NAT"
UNIQUE_LOCAL = "unique local"
MULTICAST = "multicast"
UNSPECIFIED = "unspecified"
BROADCAST = "broadcast"
DOCUMENTATION = "documentation"
RESERVED = "reserved"

NEVER = (LOOPBACK, UNSPECIFIED, BROADCAST, MULTICAST)
METADATA = ipaddress.ip_address("169.254.169.254")


def _table(rows):
    return [(ipaddress.ip_network(network), kind) for network, kind in rows]


# IPv4 special-purpose ranges; the first that contains the address wins,
# and an address in none of them is global.
IPV4 = _table([
    ("0.0.0.0/32", UNSPECIFIED),
    ("255.255.255.255/32", BROADCAST),
    ("0.0.0.0/8", RESERVED),  # "this network"
    ("10.0.0.0/8", PRIVATE),
    ("100.64.0.0/10", SHARED_CGNAT),
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),
    ("172.16.0.0/12", PRIVATE),
    ("192.0.0.0/24", RESERVED),  # IETF protocol assignments
    ("192.0.2.0/24", DOCUMENTATION),
    ("192.88.99.0/24", RESERVED),  # 6to4 relay anycast, deprecated
    ("192.168.0.0/16", PRIVATE),
    ("198.18.0.0/15", RESERVED),  # benchmarking
    ("198.51.100.0/24", DOCUMENTATION),
    ("203.0.113.0/24", DOCUMENTATION),
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),
])

# IPv6 ranges after ::, ::1 and the IPv4-carrying forms; the first that
# contains the address wins, and an address in none of them is reserved.
IPV6 = _table([
    ("100::/64", RESERVED),  # discard-only
    ("2001:db8::/32", DOCUMENTATION),
    ("2001::/23", RESERVED),  # IETF protocol assignments, Teredo
    ("3fff::/20", DOCUMENTATION),
    ("2000::/3", GLOBAL),
    ("fc00::/7", UNIQUE_LOCAL),
    ("fe80::/10", LINK_LOCAL),
    ("ff00::/8", MULTICAST),
])


def parse_literal(host):
    """`host` as an IP address when it is an IP literal (IPv6 without
    brackets), else None. Zone ids (fe80::1%eth0) are not literals we accept:
    they are refused as malformed hosts by the caller."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def canonical(address):
    """An address as text, the same on every Python (and as the server
    writes it): IPv4-mapped IPv6 as ::ffff:a.b.c.d, other IPv6 compressed."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return "::ffff:%s" % address.ipv4_mapped
    return str(address)


def parse_networks(values):
    """The `allow_private` entries as networks (a bare address is its own
    /32 or /128; host bits are ignored: "10.9.0.1/16" is 10.9.0.0/16)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as error:
            raise ValueError("allow_private entry %r is not a network: %s" % (value, error))
    return networks


def embedded_ipv4(address):
    """The IPv4 address an IPv6 address carries, for the forms that reach
    it: IPv4-mapped, IPv4-compatible (not :: or ::1), NAT64 64:ff9b::/96 and
    6to4 2002::/16; else None."""
    if address.version != 6:
        return None
    value = int(address)
    high = value >> 32
    if high == 0xFFFF or (high == 0 and value > 1):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if high == 0x0064FF9B << 64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 112 == 0x2002:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return None


def address_class(address):
    """The class of an address: GLOBAL, LOOPBACK, PRIVATE, ..."""
    if address.version == 4:
        for network, kind in IPV4:
            if address in network:
                return kind
        return GLOBAL
    if int(address) == 0:
        return UNSPECIFIED
    if int(address) == 1:
        return LOOPBACK
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_class(inner)
    for network, kind in IPV6:
        if address in network:
            return kind
    return RESERVED


def class_words(address):
    """The class of a non-global address for messages ("loopback",
    "link-local (cloud metadata)")."""
    kind = address_class(address)
    if kind == LINK_LOCAL and METADATA in (address, embedded_ipv4(address)):
        return "link-local (cloud metadata)"
    return kind


def refusal(address, allow_private, allow_loopback=False, private=False):
    """None when the proxy may connect to `address` as far as its class
    goes, else why not, as the end of a sentence ("not a public address
    (loopback) and never a destination"). An address inside an
    `allow_private` network is accepted, and with `private` (the decision
    said so) any address that is not global, except loopback, unspecified,
    broadcast and multicast ones (loopback only with `allow_loopback`, for
    the project's own tests) and link-local ones (cloud metadata lives
    there: only an `allow_private` network that names it opens it, never a
    host name that happens to resolve there)."""
    kind = address_class(address)
    if kind == GLOBAL:
        return None
    if kind in NEVER and not (allow_loopback and kind == LOOPBACK):
        return "not a public address (%s) and never a destination" % class_words(address)
    if private and kind != LINK_LOCAL:
        return None
    inner = embedded_ipv4(address)
    for network in allow_private:
        if address in network or (inner is not None and inner in network):
            return None
    return "not a public address (%s), and egress.allow_private does not include it" % class_words(address)


def is_local(address):
    """Whether `address` is one of this machine's (this network namespace's)
    own addresses: binding a socket to it succeeds only then (EADDRNOTAVAIL
    otherwise). Asked at each connection, so the addresses of networks the
    proxy joins later count too. Any other failure counts as local (the
    proxy refuses rather than guesses)."""
    inner = embedded_ipv4(address)
    if inner is not None and address.ipv4_mapped is not None:
        address = inner
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError as error:
        return error.errno != errno.EADDRNOTAVAIL
    return True


# ------------------------------------------------------------ sandbox networks

ROUTE_FILES = ("/proc/net/route", "/proc/net/ipv6_route")
ROUTES_TTL = 1.0  # seconds a reading of the route files is used
RTF_GATEWAY = 0x2
RTF_REJECT = 0x200
RTF_LOCAL = 0x80000000  # IPv6: a route to one of the machine's own addresses

Route = namedtuple("Route", "interface network gateway")
Route.__doc__ = "A route: the interface, the destination network, whether it goes through a gateway."


def parse_ipv4_routes(text, byteorder=sys.byteorder):
    """The routes of /proc/net/route's `text` (columns Iface, Destination,
    Gateway, Flags, ..., Mask; addresses in hex, in the machine's byte
    order). Lines that do not read as a route (the header) and reject
    routes are left out."""
    routes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, flags, mask = (int(fields[index], 16) for index in (1, 3, 7))
            packed = destination.to_bytes(4, byteorder)
            netmask = str(ipaddress.IPv4Address(mask.to_bytes(4, byteorder)))
            network = ipaddress.IPv4Network((packed, netmask), strict=False)
        except (ValueError, OverflowError):
            continue
        if not flags & RTF_REJECT:
            routes.append(Route(fields[0], network, bool(flags & RTF_GATEWAY)))
    return routes


def parse_ipv6_routes(text):
    """The routes of /proc/net/ipv6_route's `text` (columns destination,
    prefix length, source, source prefix length, next hop, metric, use,
    refcount, flags, interface; in hex). Lines that do not read as a route,
    reject routes (the unreachable defaults on lo) and the routes to the
    machine's own addresses (is_local covers them) are left out."""
    routes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 10:
            continue
        try:
            destination = bytes.fromhex(fields[0])
            network = ipaddress.IPv6Network((destination, int(fields[1], 16)), strict=False)
            flags = int(fields[8], 16)
        except ValueError:
            continue
        if not flags & (RTF_REJECT | RTF_LOCAL):
            routes.append(Route(fields[9], network, bool(flags & RTF_GATEWAY)))
    return routes


def sandbox_networks(routes):
    """The networks directly connected to an interface that carries no
    default route (0.0.0.0/0 or ::/0, of either family): the sandboxes'
    isolated networks, as opposed to the proxy's way out. Loopback (lo) is
    not a sandbox network, and multicast routes (never destinations) are
    left out."""
    way_out = {route.interface for route in routes if route.network.prefixlen == 0} | {"lo"}
    networks = []
    for route in routes:
        direct = not route.gateway and route.network.prefixlen > 0
        multicast = address_class(route.network.network_address) == MULTICAST
        if direct and not multicast and route.interface not in way_out and route.network not in networks:
            networks.append(route.network)
    return networks


def read_route_file(path):
    """The text of a route file; "" when there is none (not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except FileNotFoundError:
        return ""


class SandboxNetworks:
    """The sandbox networks of this network namespace, read from the route
    files (`paths`: IPv4 then IPv6) at most once every `ttl` seconds, so
    networks the proxy joins later count within a second. A route file
    that exists but cannot be read raises OSError (the caller refuses)."""

    def __init__(self, paths=ROUTE_FILES, ttl=ROUTES_TTL):
        self.paths = paths
        self.ttl = ttl
        self.networks = []
        self.read_at = None

    def current(self):
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= self.ttl:
            ipv4, ipv6 = (read_route_file(path) for path in self.paths)
            self.networks = sandbox_networks(parse_ipv4_routes(ipv4) + parse_ipv6_routes(ipv6))
            self.read_at = now
        return self.networks

    def containing(self, address):
        """The sandbox network `address` (or the IPv4 address it carries)
        is on, else None. For an address that is not global the files are
        read afresh (sandbox networks come from the engine's private pools,
        and a network joined a moment ago must count at once); global ones
        use the reading of the last `ttl` seconds."""
        if address_class(address) != GLOBAL:
            self.read_at = None
        inner = embedded_ipv4(address)
        for network in self.current():
            if address in network or (inner is not None and inner in network):
                return network
        return None
