"""Which destination addresses the egress proxy may connect to: only global
unicast ones, unless the server's configuration (`allow_private`) names the
network. The check runs on every address a name resolves to, and on IP
literals alike, so an allowed name that resolves to a private address (DNS
rebinding, or a name pointed at the cloud metadata service) is refused."""

import ipaddress

SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
METADATA = ipaddress.ip_address("169.254.169.254")


def parse_literal(host):
    """`host` as an IP address when it is an IP literal (IPv6 without
    brackets), else None. Zone ids (fe80::1%eth0) are not literals we accept:
    they are refused as malformed hosts by the caller."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


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
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4), or
    None. Connecting to one of those reaches the IPv4 address."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in SIX_TO_FOUR:
        return address.sixtofour
    return None


def address_class(address):
    """None for a global unicast address, else the name of its class (the
    reason it is refused), e.g. "loopback"."""
    inner = embedded_ipv4(address)
    if inner is not None:
        kind = address_class(inner)
        if kind is None:
            return None
        form = "IPv4-mapped" if address.ipv4_mapped is not None else "6to4"
        return "%s %s" % (form, kind)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address == METADATA:
        return "link-local (cloud metadata)"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in SHARED:
        return "shared (carrier-grade NAT)"
    if address.version == 6 and address in UNIQUE_LOCAL:
        return "unique local"
    if address.version == 6 and address.is_site_local:
        return "site-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "special-purpose"
    return None


def refusal(address, allow_private):
    """None when the proxy may connect to `address`, else why not, as the
    end of a sentence ("not a public address (loopback), ..."). An address
    inside an `allow_private` network is accepted, except unspecified and
    multicast ones, which are never a unicast destination."""
    kind = address_class(address)
    if kind is None:
        return None
    never = address.is_unspecified or address.is_multicast
    inner = embedded_ipv4(address)
    if inner is not None:
        never = never or inner.is_unspecified or inner.is_multicast
    if never:
        return "not a public address (%s) and never a destination" % kind
    for network in allow_private:
        if address in network or (inner is not None and inner in network):
            return None
    return "not a public address (%s), and egress.allow_private does not include it" % kind
