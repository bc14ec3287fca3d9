"""Tests of what the egress proxy refuses whatever the server says or
allows (standard library only, no Docker; see egress_testing.py): loopback,
the proxy's own addresses and sandbox networks as destinations (and what a
decision's `private` opens), decisions meant for another connection, and
connections over its caps."""

import os
import socket
import time

from egress_testing import (
    LOOPBACK,
    OK_200,
    TIMEOUT,
    ProxyTestCase,
    allow,
    deny,
    read_all,
    read_exactly,
    route_text,
)


def own_address():
    """An address of this machine that is not loopback (the source address
    of its default route), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


class LoopbackTest(ProxyTestCase):
    """The proxy as it runs in its container (without --test-allow-loopback)."""

    loopback = False

    def test_loopback_is_refused_even_when_allow_private_covers_it(self):
        self.server.policy = allow()
        port = self.origins.echo.server_address[1]
        for networks in (["0.0.0.0/0", "::/0"], ["64.0.0.0/2"], LOOPBACK + ["::1/128"]):
            self.server.configure(networks)
            for target in (b"127.0.0.1", b"127.8.9.10", b"[::1]", b"[::ffff:127.0.0.1]", b"localhost"):
                with self.subTest(networks=networks, target=target):
                    answer = self.exchange(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (target, port))
                    self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                    self.assertIn(b"(loopback) and never a destination", answer)
                    ask = self.server.next_ask()
                    self.assertFalse(self.server.connected(ask["id"]))
        self.assertEqual(self.origins.echo.connections, 0)

    def test_loopback_is_refused_even_when_the_decision_says_private(self):
        self.server.configure([])
        self.server.policy = allow(private=True)
        port = self.origins.echo.server_address[1]
        for target in (b"127.0.0.1", b"[::ffff:127.0.0.1]", b"localhost"):
            with self.subTest(target=target):
                answer = self.exchange(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (target, port))
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertIn(b"(loopback) and never a destination", answer)
                self.assertFalse(self.server.connected(self.server.next_ask()["id"]))
        self.assertEqual(self.origins.echo.connections, 0)


class PrivateTest(ProxyTestCase):
    """A decision's `private` opens what allow_private could open (here
    loopback, which --test-allow-loopback makes one of those classes)."""

    def test_private_opens_a_non_global_address_for_its_connection_only(self):
        self.server.configure([])
        port = self.origins.echo.server_address[1]
        for private in (None, False):
            self.server.policy = allow(private=private)
            with self.subTest(private=private):
                answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertIn(b"egress.allow_private does not include it", answer)
                self.assertFalse(self.server.connected(self.server.next_ask()["id"]))
        self.server.policy = allow(private=True)
        connection = self.tunnel("localhost:%d" % port)
        self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        connection.sendall(b"ok")
        self.assertEqual(read_exactly(connection, 2), b"ok")
        connection.close()
        closed = self.server.closed(self.server.next_ask()["id"])
        self.assertEqual((closed["allowed"], closed["address"]), (True, "127.0.0.1"))
        self.assertEqual(self.origins.echo.connections, 1)


def loopback_routes(interface):
    """Routes where loopback's 127.0.0.0/8 is directly connected to
    `interface` of a proxy whose way out is eth0."""
    return route_text(("eth0", "0.0.0.0/0", "172.17.0.1"), ("eth0", "172.17.0.0/16", None),
                      (interface, "127.0.0.0/8", None))


class SandboxNetworkTest(ProxyTestCase):
    """The tests' origins listen on loopback: the routes the proxy reads say
    127.0.0.0/8 is a sandbox network (on eth1) or on its way out (eth0)."""

    routes = (loopback_routes("eth1"), "")

    def test_a_sandbox_network_is_refused_whatever_allow_private_and_private_say(self):
        self.server.configure(LOOPBACK + ["0.0.0.0/0"])
        port = self.origins.echo.server_address[1]
        for private, target, address in (
            (None, b"127.0.0.1", "127.0.0.1"),
            (True, b"127.0.0.1", "127.0.0.1"),
            (True, b"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
            (True, b"localhost", "127.0.0.1"),
        ):
            reason = ("%s is on a sandbox network" % address).encode()
            if target == b"localhost":
                reason = b"localhost resolves to 127.0.0.1, which is on a sandbox network"
            self.server.policy = allow(private=private)
            with self.subTest(private=private, target=target):
                answer = self.exchange(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (target, port))
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertIn(reason, answer)
                closed = self.server.closed(self.server.next_ask()["id"])
                self.assertFalse(self.server.connected(closed["id"]))
                self.assertEqual((closed["allowed"], closed["address"]), (False, address))
                self.assertEqual(closed["reason"].encode(), reason)
        self.assertEqual(self.origins.echo.connections, 0)

    def test_the_network_of_the_way_out_is_not_one_and_routes_are_read_again(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        port = self.origins.echo.server_address[1]
        self.server.write_routes(loopback_routes("eth0"), "")  # read at the first connection
        connection = self.tunnel("127.0.0.1:%d" % port)
        self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        connection.close()
        self.assertTrue(self.server.connected(self.server.next_ask()["id"]))
        # the proxy joins a session's network: within a second it is refused
        self.server.write_routes(loopback_routes("eth2"), "")
        time.sleep(1.1)
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
        self.assertIn(b"127.0.0.1 is on a sandbox network", answer)
        self.assertEqual(self.origins.echo.connections, 1)

    def test_route_files_that_cannot_be_read_refuse_every_address(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        os.remove(self.server.route_files[0])
        os.mkdir(self.server.route_files[0])  # reading it fails (and the proxy has not read it yet)
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.origins.echo.server_address[1])
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"the egress proxy cannot read its route tables", answer)
        self.assertFalse(self.server.connected(self.server.next_ask()["id"]))
        self.assertEqual(self.origins.echo.connections, 0)


class OwnAddressTest(ProxyTestCase):
    def test_the_proxys_own_port_is_refused(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        for target in (b"127.0.0.1", b"localhost", b"127.0.0.2"):
            with self.subTest(target=target):
                answer = self.exchange(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (target, self.server.port))
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertIn(b"the egress proxy itself", answer)
                self.assertFalse(self.server.connected(self.server.next_ask()["id"]))
        self.assertEqual(len(self.server.of_type("ask")), 3)

    def test_the_proxys_other_addresses_are_refused(self):
        address = own_address()
        if address is None:
            self.skipTest("this machine has no address besides loopback")
        self.server.configure(LOOPBACK + [address])
        self.server.policy = allow()
        port = self.origins.echo.server_address[1]
        answer = self.exchange(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (address.encode(), port))
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"%s is one of the egress proxy's own addresses" % address.encode(), answer)
        closed = self.server.closed(self.server.next_ask()["id"])
        self.assertEqual((closed["allowed"], closed["address"]), (False, address))


class DecisionTest(ProxyTestCase):
    def test_ids_carry_a_prefix_of_their_run(self):
        self.server.configure(LOOPBACK)
        self.server.policy = deny("not granted")
        port = self.origins.echo.server_address[1]
        ids = []
        for _ in range(2):
            self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
            ids.append(self.server.next_ask()["id"])
        first, second = [request_id.split("-") for request_id in ids]
        self.assertEqual((len(first), first[0], len(first[1])), (3, "c", 8))
        int(first[1], 16)
        self.assertEqual(first[1], second[1])
        self.assertEqual(int(second[2]), int(first[2]) + 1)

    def test_a_decision_for_another_host_or_port_refuses(self):
        self.server.configure(LOOPBACK)
        port = self.origins.echo.server_address[1]
        for change in ({"host": "other.example"}, {"port": port + 1}):
            self.server.policy = lambda ask, change=change: dict(allow()(ask), **change)
            with self.subTest(change=change):
                answer = self.exchange(b"CONNECT LocalHost.:%d HTTP/1.1\r\n\r\n" % port)
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertIn(b"decision for another host", answer)
                closed = self.server.closed(self.server.next_ask()["id"])
                self.assertFalse(self.server.connected(closed["id"]))
                self.assertIn("decision for another host", closed["reason"])
        # the same host and port (normalised as the ask sent them) is followed
        self.server.policy = lambda ask: dict(allow()(ask), host=ask["host"], port=ask["port"])
        connection = self.tunnel("LocalHost.:%d" % port)
        self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        ask = self.server.next_ask()
        self.assertEqual((ask["host"], ask["port"]), ("localhost", port))
        connection.sendall(b"ok")
        self.assertEqual(read_exactly(connection, 2), b"ok")
        self.assertEqual(self.origins.echo.connections, 1)

    def test_a_port_in_other_digits_is_a_400(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        # request heads are read as Latin-1, where \xb2 \xb3 \xb9 are the
        # superscript digits that str.isdigit accepts
        for request in (b"CONNECT a.example:44\xb3 HTTP/1.1\r\n\r\n", b"GET http://a.example:\xb9/ HTTP/1.1\r\n\r\n"):
            with self.subTest(request=request):
                answer = self.exchange(request)
                self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
                self.assertIn(b"invalid port", answer)
        self.assertEqual(self.server.of_type("ask"), [])


class CapsTest(ProxyTestCase):
    arguments = ProxyTestCase.arguments + ("--max-connections", "2", "--max-pending-asks", "2")

    def test_connections_over_the_cap_get_503_before_their_request(self):
        self.server.configure(LOOPBACK, ask_timeout_ms=30000)
        port = self.origins.echo.server_address[1]
        waiting = [self.tunnel("127.0.0.1:%d" % port) for _ in range(2)]
        asks = [self.server.next_ask() for _ in waiting]
        extra = self.connect()  # sends nothing: the answer does not wait for a request
        answer = read_all(extra)
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
        self.assertIn(b"too many connections through the proxy", answer)
        self.assertEqual(len(self.server.of_type("ask")), 2)
        # a place freed is a place taken again
        self.server.send(allow()(asks[0]))
        self.assertEqual(read_exactly(waiting[0], len(OK_200)), OK_200)
        waiting[0].close()
        self.server.closed(asks[0]["id"])
        self.server.policy = allow()
        again = self.tunnel("127.0.0.1:%d" % port)
        self.assertEqual(read_exactly(again, len(OK_200)), OK_200)



class PendingCapTest(ProxyTestCase):
    arguments = ProxyTestCase.arguments + ("--max-pending-asks", "2")

    def test_pending_asks_over_the_cap_get_503_without_an_ask(self):
        self.server.configure(LOOPBACK, ask_timeout_ms=30000)
        port = self.origins.echo.server_address[1]
        waiting = [self.tunnel("127.0.0.1:%d" % port) for _ in range(2)]
        asks = [self.server.next_ask() for _ in waiting]
        for connect in (self.connect, lambda: self.tunnel("127.0.0.1:%d" % port)):
            answer = read_all(connect())
            self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
            self.assertIn(b"too many connections waiting for a decision", answer)
        self.assertEqual(len(self.server.of_type("ask")), 2)
        # answered asks are no longer pending
        for ask in asks:
            self.server.send(allow()(ask))
        for connection in waiting:
            self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        self.server.policy = allow()
        again = self.tunnel("127.0.0.1:%d" % port)
        self.assertEqual(read_exactly(again, len(OK_200)), OK_200)
        self.assertEqual(len(self.server.of_type("ask")), 3)
