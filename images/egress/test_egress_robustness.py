"""Tests of the egress proxy against requests it cannot serve and against
misbehaving peers: malformed requests, slow clients, clients that leave,
origins that never answer or never accept, bad lines from the server, and
its stopping (standard library only, no Docker; see egress_testing.py)."""

import socket
import subprocess
import sys
import time
import unittest

from egress_testing import LOOPBACK, OK_200, PROXY, TIMEOUT, ProxyTestCase, allow, read_all, read_exactly


class MalformedTest(ProxyTestCase):
    def test_requests_the_proxy_cannot_serve_get_400_with_a_reason(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        for request, status, reason in (
            (b"GARBAGE\r\n\r\n", b"400", b"the request line is not METHOD TARGET VERSION"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400", b"not a proxy request"),
            (b"GET https://example.org/ HTTP/1.1\r\n\r\n", b"400", b"https:// targets go through CONNECT"),
            (b"CONNECT example.org HTTP/1.1\r\n\r\n", b"400", b"the target needs a port"),
            (b"CONNECT example.org:99999 HTTP/1.1\r\n\r\n", b"400", b"invalid port"),
            (b"CONNECT 2130706433:443 HTTP/1.1\r\n\r\n", b"400", b"neither a host name nor a plain IP address"),
            (b"CONNECT 127.1:443 HTTP/1.1\r\n\r\n", b"400", b"neither a host name nor a plain IP address"),
            (b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", b"400", b"an IPv6 literal must be in brackets"),
            (b"GET http://user@example.org/ HTTP/1.1\r\n\r\n", b"400", b"credentials in the target"),
            (b"GET http://exa mple.org/ HTTP/1.1\r\n\r\n", b"400", b"the request line is not"),
            (b"CONNECT a.example:443 HTTP/2.0\r\n\r\n", b"400", b"unsupported protocol version"),
            (b"GET http://a.example/\tx HTTP/1.1\r\n\r\n", b"400", b"control character"),
            (b"GET http://a.example/ HTTP/1.1\r\nX: a\rb\r\n\r\n", b"400", b"control character"),
            (b"CONNECT a.example:443 HTTP/1.1\r\n folded\r\n\r\n", b"400", b"folded header lines"),
            (b"CONNECT a.example:443 HTTP/1.1\r\nno colon\r\n\r\n", b"400", b"malformed header line"),
            (b"TRACE http://a.example/ HTTP/1.1\r\n\r\n", b"405", b"TRACE is not forwarded"),
            (b"CONNECT a.example:443 HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n", b"400", b"larger than 16384"),
        ):
            with self.subTest(request=request[:60]):
                answer = self.exchange(request)
                self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), answer)
                body = answer.split(b"\r\n\r\n", 1)[1]
                self.assertTrue(body.startswith(b"multilang-sandbox egress: bad request: "), body)
                self.assertIn(reason, body)
                self.assertEqual(body.count(b"\n"), 1)
        self.assertEqual(self.server.of_type("ask"), [])

    def test_a_header_that_does_not_arrive_in_time_gets_408(self):
        self.server.configure(LOOPBACK)
        connection = self.connect()
        connection.sendall(b"CONNECT a.example:443 HTTP/1.1\r\n")
        started = time.monotonic()
        answer = read_all(connection)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(self.server.of_type("ask"), [])


class RobustnessTest(ProxyTestCase):
    arguments = ("--header-timeout", "2", "--idle-timeout", "1", "--connect-timeout", "1")

    def test_an_origin_that_does_not_accept_in_time_is_a_502(self):
        """A listener with a full backlog drops new SYNs (Linux), so the
        proxy's connect hangs until its connect timeout."""
        full = socket.socket()
        self.addCleanup(full.close)
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        queued = socket.create_connection(full.getsockname(), timeout=TIMEOUT)
        self.addCleanup(queued.close)
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        started = time.monotonic()
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % full.getsockname()[1])
        self.assertLess(time.monotonic() - started, 5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), answer)
        self.assertIn(b"timed out after 1 s", answer)
        closed = self.server.closed(self.server.next_ask()["id"])
        self.assertEqual((closed["allowed"], closed["address"]), (False, "127.0.0.1"))

    def test_sigterm_stops_the_proxy(self):
        self.server.configure(LOOPBACK)
        self.server.process.terminate()
        self.assertEqual(self.server.process.wait(TIMEOUT), 0)
        self.server.stop()  # reads the rest of its log
        self.assertTrue(self.server.log_lines("stopping: SIGTERM"))

    def test_a_client_that_leaves_while_its_ask_is_pending(self):
        self.server.configure(LOOPBACK, ask_timeout_ms=30000)
        connection = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        ask = self.server.next_ask()
        connection.close()
        closed = self.server.closed(ask["id"], timeout=5)
        self.assertEqual(closed["reason"], "the client closed the connection before the decision")
        self.assertIs(closed["allowed"], False)
        # a late decision for it is ignored, and the proxy goes on
        self.server.send(allow()(ask))
        self.server.policy = allow()
        second = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(second, len(OK_200)), OK_200)
        second.sendall(b"ok")
        self.assertEqual(read_exactly(second, 2), b"ok")
        self.assertEqual(len(self.server.of_type("closed")), 1)
        self.assertEqual(self.origins.echo.connections, 1)

    def test_an_origin_that_never_answers_is_cut_when_idle(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        silent = self.connect()
        silent.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\n\r\n" % self.origins.silent.getsockname()[1])
        silent_ask = self.server.next_ask()
        # meanwhile other connections are served
        tunnel = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(tunnel, len(OK_200)), OK_200)
        tunnel.sendall(b"still here")
        self.assertEqual(read_exactly(tunnel, 10), b"still here")
        self.assertEqual(read_all(silent, timeout=5), b"")
        closed = self.server.closed(silent_ask["id"])
        self.assertEqual((closed["allowed"], closed["reason"]), (True, "idle for 1 s"))
        self.assertEqual(closed["bytes_down"], 0)

    def test_bad_server_lines_are_logged_and_ignored(self):
        self.server.configure(LOOPBACK)
        for line in (
            b"not json\n",
            b"[1, 2]\n",
            b'{"type": "bogus"}\n',
            b'{"type": "configure", "allow_private": ["not a network"], "ask_timeout_ms": 1}\n',
            b'{"type": "configure", "allow_private": [], "ask_timeout_ms": -1}\n',
            b'{"type": "decision", "id": "c-999", "allow": true, "session": "x", "budget_bytes": 1}\n',
            b"\xff\xfe\n",
        ):
            self.server.send(line)
        # the last valid configure still holds (a loopback origin is reachable)
        self.server.policy = allow()
        tunnel = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(tunnel, len(OK_200)), OK_200)
        tunnel.sendall(b"ok")
        self.assertEqual(read_exactly(tunnel, 2), b"ok")
        self.assertGreaterEqual(len(self.server.log_lines("ignored")), 7)
        # a decision that names a pending connection but breaks the spec refuses it at once
        self.server.policy = lambda ask: {"type": "decision", "id": ask["id"], "allow": True}
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.origins.echo.server_address[1])
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"invalid decision from the server", answer)
        self.assertEqual(self.origins.echo.connections, 1)

    def test_the_end_of_the_servers_stream_stops_the_proxy(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        tunnel = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(tunnel, len(OK_200)), OK_200)
        pending = self.connect()
        self.server.policy = lambda ask: None
        pending.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
        self.server.wait_for(lambda m: m["type"] == "ask" and m["port"] == 1)
        started = time.monotonic()
        self.assertEqual(self.server.stop(), 0)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(read_all(tunnel, timeout=5), b"")
        self.assertEqual(read_all(pending, timeout=5), b"")


class ListenTest(unittest.TestCase):
    def test_a_proxy_that_cannot_listen_exits_1_without_a_ready(self):
        taken = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(taken.close)
        command = [sys.executable, "-E", "-s", PROXY, "--listen", "127.0.0.1:%d" % taken.getsockname()[1]]
        done = subprocess.run(command, stdin=subprocess.PIPE, capture_output=True, timeout=TIMEOUT)
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stdout, b"")
        self.assertIn(b"egress: cannot listen on 127.0.0.1 port", done.stderr)
