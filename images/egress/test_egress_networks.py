"""Tests of how the egress proxy finds the sandbox networks (standard
library only): the route files of a proxy container as the kernel writes
them, parsed from sample text so the tests do not depend on this machine's
own routes; the proxy refusing them is in test_egress_guards.py."""

import ipaddress
import os
import tempfile
import time
import unittest

import egress_address as address
from egress_address import SandboxNetworks, parse_ipv4_routes, parse_ipv6_routes, sandbox_networks
from egress_testing import route_text


def ip(text):
    return ipaddress.ip_address(text)


def net(text):
    return ipaddress.ip_network(text)


# A proxy container on a little-endian machine: eth0 is its way out (the
# default route, 172.17.0.0/16), eth1 and eth2 two sessions' networks; eth1
# also has a route through a gateway, and there is a reject route.
IPV4_ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t00001EAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth2\t00011EAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0000140A\t01001EAC\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
eth2\t0000000A\t00000000\t0201\t0\t0\t0\t000000FF\t0\t0\t0
"""

# The same container's IPv6 routes: the unreachable defaults on lo, eth0's
# subnet and default route, eth1's unique local subnet, link-local and
# multicast on every interface, and routes to its own addresses.
IPV6_ROUTES = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd0a0000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
fd0a0000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth1
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""


class RouteParsingTest(unittest.TestCase):
    def test_ipv4_routes_as_the_kernel_writes_them(self):
        routes = parse_ipv4_routes(IPV4_ROUTES, "little")
        self.assertEqual(
            [(route.interface, str(route.network), route.gateway) for route in routes],
            [
                ("eth0", "0.0.0.0/0", True),
                ("eth0", "172.17.0.0/16", False),
                ("eth1", "172.30.0.0/24", False),
                ("eth2", "172.30.1.0/24", False),
                ("eth1", "10.20.0.0/16", True),
            ],
        )

    def test_ipv4_routes_of_a_big_endian_machine(self):
        text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n" \
               "eth1\tAC1E0000\t00000000\t0001\t0\t0\t0\tFFFFFF00\t0\t0\t0\n"
        [route] = parse_ipv4_routes(text, "big")
        self.assertEqual((route.interface, route.network, route.gateway), ("eth1", net("172.30.0.0/24"), False))

    def test_ipv6_routes_as_the_kernel_writes_them(self):
        routes = parse_ipv6_routes(IPV6_ROUTES)
        self.assertEqual(
            [(route.interface, str(route.network), route.gateway) for route in routes],
            [
                ("eth0", "fd00::/64", False),
                ("eth1", "fd0a::/64", False),
                ("eth0", "fe80::/64", False),
                ("eth1", "fe80::/64", False),
                ("eth0", "::/0", True),
                ("eth1", "ff00::/8", False),
            ],
        )

    def test_lines_that_are_not_routes_are_skipped(self):
        for text in ("", "garbage\n", "eth0\tZZ\t0\t1\t0\t0\t0\t0\n", "eth0\t00\t00\t1\n",
                     "eth0\t0000007F\t00000000\t0001\t0\t0\t0\t0000FF00\t0\t0\t0\n"):  # a mask with a hole
            with self.subTest(text=text):
                self.assertEqual(parse_ipv4_routes(text, "little"), [])
        for text in ("", "x " * 10, "fd00 40 0 0 0 0 0 0 1 eth0", "fd0a" + "0" * 28 + " 81 0 0 0 0 0 0 1 eth1"):
            with self.subTest(text=text):
                self.assertEqual(parse_ipv6_routes(text), [])


class SandboxNetworksTest(unittest.TestCase):
    def test_direct_subnets_of_interfaces_without_a_default_route(self):
        routes = parse_ipv4_routes(IPV4_ROUTES, "little") + parse_ipv6_routes(IPV6_ROUTES)
        self.assertEqual(
            sandbox_networks(routes),
            [net("172.30.0.0/24"), net("172.30.1.0/24"), net("fd0a::/64"), net("fe80::/64")],
        )

    def test_a_default_route_of_either_family_makes_the_way_out(self):
        ipv4 = parse_ipv4_routes(route_text(("eth0", "172.17.0.0/16", None), ("eth1", "172.30.0.0/24", None)))
        self.assertEqual(sandbox_networks(ipv4), [net("172.17.0.0/16"), net("172.30.0.0/24")])
        ipv6_default = [address.Route("eth0", net("::/0"), True)]
        self.assertEqual(sandbox_networks(ipv4 + ipv6_default), [net("172.30.0.0/24")])

    def test_loopback_and_a_machine_without_routes_have_none(self):
        self.assertEqual(sandbox_networks([address.Route("lo", net("127.0.0.0/8"), False)]), [])
        self.assertEqual(sandbox_networks([]), [])


class RouteFilesTest(unittest.TestCase):
    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.paths = (os.path.join(folder.name, "route"), os.path.join(folder.name, "ipv6_route"))

    def write(self, ipv4, ipv6=""):
        for path, text in zip(self.paths, (ipv4, ipv6)):
            with open(path, "w") as file:
                file.write(text)

    def test_addresses_on_a_sandbox_network(self):
        self.write(route_text(("eth0", "0.0.0.0/0", "172.17.0.1"), ("eth0", "172.17.0.0/16", None),
                              ("eth1", "172.30.0.0/24", None)), IPV6_ROUTES)
        networks = SandboxNetworks(self.paths)
        for text, expected in (
            ("172.30.0.3", "172.30.0.0/24"),
            ("::ffff:172.30.0.3", "172.30.0.0/24"),
            ("2002:ac1e:0003::1", "172.30.0.0/24"),  # 6to4 of 172.30.0.3
            ("fd0a::5", "fd0a::/64"),
        ):
            with self.subTest(text):
                self.assertEqual(networks.containing(ip(text)), net(expected))
        for text in ("172.17.0.5", "172.30.1.3", "10.20.0.1", "fd00::5", "8.8.8.8", "2606:4700::1"):
            with self.subTest(text):
                self.assertIsNone(networks.containing(ip(text)))

    def test_missing_files_add_no_refusal(self):
        networks = SandboxNetworks(self.paths)
        self.assertEqual(networks.current(), [])
        self.assertIsNone(networks.containing(ip("172.30.0.3")))

    def test_a_file_that_cannot_be_read_raises(self):
        os.mkdir(self.paths[0])
        with self.assertRaises(OSError):
            SandboxNetworks(self.paths).containing(ip("172.30.0.3"))

    def test_the_files_are_read_again_after_the_ttl(self):
        self.write(route_text(("eth0", "0.0.0.0/0", "172.17.0.1")))
        networks = SandboxNetworks(self.paths, ttl=0.2)
        self.assertIsNone(networks.containing(ip("8.8.8.8")))
        self.write(route_text(("eth0", "0.0.0.0/0", "172.17.0.1"), ("eth1", "8.8.8.0/24", None)))
        self.assertIsNone(networks.containing(ip("8.8.8.8")))  # a global address: the reading is still fresh
        time.sleep(0.25)
        self.assertEqual(networks.containing(ip("8.8.8.8")), net("8.8.8.0/24"))

    def test_a_network_joined_a_moment_ago_counts_at_once_for_private_addresses(self):
        self.write(route_text(("eth0", "0.0.0.0/0", "172.17.0.1")))
        networks = SandboxNetworks(self.paths, ttl=60)
        self.assertIsNone(networks.containing(ip("172.30.0.3")))
        self.write(route_text(("eth0", "0.0.0.0/0", "172.17.0.1"), ("eth1", "172.30.0.0/24", None)))
        self.assertEqual(networks.containing(ip("172.30.0.3")), net("172.30.0.0/24"))


if __name__ == "__main__":
    unittest.main()
