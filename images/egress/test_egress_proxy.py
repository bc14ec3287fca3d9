"""Tests of the egress proxy as the server sees it, for connections it lets
through and connections it refuses (standard library only, no Docker; run
by .ci/run with `python3 -m unittest discover -s images/egress`). The real
proxy runs as a subprocess on loopback, with real origins and real clients
(sockets and urllib): see egress_testing.py."""

import socket
import threading
import time
import urllib.request

from egress_testing import LOOPBACK, OK_200, TIMEOUT, ProxyTestCase, allow, deny, read_all, read_exactly

class AllowedTest(ProxyTestCase):
    def test_connect_is_tunnelled_and_its_bytes_counted(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow("calc")
        connection = self.tunnel("localhost:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        connection.sendall(b"ping" * 100)
        self.assertEqual(read_exactly(connection, 400), b"ping" * 100)
        connection.shutdown(socket.SHUT_WR)
        self.assertEqual(read_all(connection), b"")
        ask = self.server.next_ask()
        self.assertEqual(
            ask,
            {
                "type": "ask",
                "id": ask["id"],
                "client": "127.0.0.1",
                "via": "127.0.0.1",
                "method": "CONNECT",
                "host": "localhost",
                "port": self.origins.echo.server_address[1],
            },
        )
        closed = self.server.closed(ask["id"])
        self.assertTrue(self.server.connected(ask["id"]))
        self.assertEqual(closed["session"], "calc")
        self.assertEqual((closed["host"], closed["port"]), ("localhost", ask["port"]))
        self.assertEqual(closed["address"], "127.0.0.1")
        self.assertIs(closed["allowed"], True)
        self.assertIsNone(closed["reason"])
        self.assertEqual((closed["bytes_up"], closed["bytes_down"]), (400, 400))
        self.assertGreaterEqual(closed["duration_ms"], 0)

    def test_plain_http_is_forwarded_in_origin_form_without_proxy_headers(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        port = self.origins.http.server_address[1]
        request = (
            b"GET http://LocalHost:%d/path?q=1#fragment HTTP/1.1\r\n"
            b"Host: other.example\r\n"
            b"Proxy-Authorization: Basic c2VjcmV0\r\n"
            b"Proxy-Connection: keep-alive\r\n"
            b"Connection: keep-alive, X-Hop\r\n"
            b"X-Hop: 1\r\n"
            b"X-Kept: yes\r\n\r\n" % port
        )
        answer = self.exchange(request)
        self.assertTrue(answer.startswith(b"HTTP/1.0 200"), answer)
        self.assertTrue(answer.endswith(b"\r\n\r\nhello from the origin"), answer)
        [(line, headers, _)] = self.origins.http.seen
        self.assertEqual(line, "GET /path?q=1 HTTP/1.1")
        self.assertEqual(
            headers, [("Host", "localhost:%d" % port), ("X-Kept", "yes"), ("Connection", "close")]
        )
        ask = self.server.next_ask()
        self.assertEqual((ask["method"], ask["host"], ask["port"]), ("GET", "localhost", port))
        closed = self.server.closed(ask["id"])
        self.assertIs(closed["allowed"], True)
        sent = b"GET /path?q=1 HTTP/1.1\r\nHost: localhost:%d\r\nX-Kept: yes\r\nConnection: close\r\n\r\n" % port
        self.assertEqual((closed["bytes_up"], closed["bytes_down"]), (len(sent), len(answer)))

    def test_urllib_through_the_proxy_with_credentials_and_a_body(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        proxy = "http://user:secret@127.0.0.1:%d" % self.server.port
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
        url = "http://127.0.0.1:%d/upload" % self.origins.http.server_address[1]
        with opener.open(urllib.request.Request(url, data=b"a body"), timeout=TIMEOUT) as response:
            self.assertEqual(response.read(), b"hello from the origin: a body")
        [(line, headers, body)] = self.origins.http.seen
        self.assertEqual((line, body), ("POST /upload HTTP/1.1", b"a body"))
        self.assertNotIn("proxy-authorization", [name.lower() for name, _ in headers])
        self.assertEqual(self.server.next_ask()["host"], "127.0.0.1")

    def test_many_connections_at_once_are_all_answered(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        port = self.origins.echo.server_address[1]
        answers = {}

        def one(index):
            connection = socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT)
            with connection:
                connection.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
                head = read_exactly(connection, len(OK_200))
                payload = b"client %d" % index
                connection.sendall(payload)
                answers[index] = (head, read_exactly(connection, len(payload)))

        threads = [threading.Thread(target=one, args=(index,)) for index in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        self.assertEqual(sorted(answers), list(range(50)))
        for index, (head, echoed) in answers.items():
            self.assertEqual((head, echoed), (OK_200, b"client %d" % index))
        ids = {ask["id"] for ask in self.server.of_type("ask")}
        self.assertEqual(len(ids), 50)
        for request_id in ids:
            self.assertIs(self.server.closed(request_id)["allowed"], True)


class RefusedTest(ProxyTestCase):
    def test_a_refused_host_is_neither_resolved_nor_reached(self):
        """refused.invalid cannot resolve: a 403 (not a 502) shows the proxy
        refused before any lookup; an allowed one gets the 502."""
        self.server.configure(LOOPBACK)
        self.server.policy = deny("refused.invalid is not in this session's grants")
        port = self.origins.echo.server_address[1]
        for request in (
            b"CONNECT refused.invalid:%d HTTP/1.1\r\n\r\n" % port,
            b"GET http://refused.invalid:%d/ HTTP/1.1\r\n\r\n" % port,
        ):
            with self.subTest(request=request):
                answer = self.exchange(request)
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertTrue(
                    answer.endswith(
                        b"\r\n\r\nmultilang-sandbox egress: refused.invalid:%d is not allowed for this "
                        b"sandbox: refused.invalid is not in this session's grants\n" % port
                    ),
                    answer,
                )
                ask = self.server.next_ask()
                closed = self.server.closed(ask["id"])
                self.assertFalse(self.server.connected(ask["id"]))
                self.assertIs(closed["allowed"], False)
                self.assertEqual(closed["reason"], "refused.invalid is not in this session's grants")
                self.assertIsNone(closed["address"])
                self.assertEqual((closed["bytes_up"], closed["bytes_down"]), (0, 0))
        self.assertEqual(self.origins.echo.connections, 0)
        self.server.policy = allow()
        answer = self.exchange(b"CONNECT refused.invalid:%d HTTP/1.1\r\n\r\n" % port)
        self.assertTrue(answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), answer)
        self.assertIn(b"cannot resolve refused.invalid", answer)

    def test_an_allowed_name_that_resolves_to_loopback_is_refused(self):
        self.server.configure([])
        self.server.policy = allow()
        port = self.origins.echo.server_address[1]
        answer = self.exchange(b"CONNECT localhost:%d HTTP/1.1\r\n\r\n" % port)
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"localhost resolves to 127.0.0.1, which is not a public address (loopback)", answer)
        ask = self.server.next_ask()
        self.assertFalse(self.server.connected(ask["id"]))
        closed = self.server.closed(ask["id"])
        self.assertEqual((closed["allowed"], closed["address"], closed["session"]), (False, "127.0.0.1", "calc"))
        self.assertIn("(loopback)", closed["reason"])
        self.assertEqual(self.origins.echo.connections, 0)

    def test_ip_literals_go_through_the_same_check(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        for target, host, kind in (
            (b"169.254.169.254:80", "169.254.169.254", b"link-local (cloud metadata)"),
            (b"[::ffff:a9fe:A9FE]:80", "::ffff:169.254.169.254", b"link-local (cloud metadata)"),
            (b"[::1]:80", "::1", b"loopback"),
            (b"10.1.2.3:443", "10.1.2.3", b"private"),
            (b"100.64.0.1:443", "100.64.0.1", b"shared carrier-grade NAT"),
            (b"255.255.255.255:443", "255.255.255.255", b"broadcast"),
            (b"224.0.0.1:443", "224.0.0.1", b"multicast"),
            (b"0.0.0.0:443", "0.0.0.0", b"unspecified"),
        ):
            with self.subTest(target=target):
                answer = self.exchange(b"CONNECT %s HTTP/1.1\r\n\r\n" % target)
                self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
                self.assertIn(b"is not a public address (%s)" % kind, answer)
                ask = self.server.next_ask()
                self.assertEqual(ask["host"], host)
                closed = self.server.closed(ask["id"])
                self.assertFalse(self.server.connected(ask["id"]))
                self.assertIs(closed["allowed"], False)
                self.assertIn(kind.decode(), closed["reason"])

    def test_the_byte_budget_cuts_the_connection(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow(budget=100)
        connection = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        connection.sendall(b"x" * 60)
        self.assertEqual(read_all(connection), b"x" * 40)
        closed = self.server.closed(self.server.next_ask()["id"])
        self.assertIs(closed["allowed"], True)
        self.assertEqual(closed["reason"], "byte budget reached")
        self.assertEqual((closed["bytes_up"], closed["bytes_down"]), (60, 40))
        self.server.policy = allow(budget=0)
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.origins.echo.server_address[1])
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"byte budget reached", answer)
        self.assertEqual(self.origins.echo.connections, 1)

    def test_before_the_first_configure_everything_is_refused(self):
        self.server.policy = allow()
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.origins.echo.server_address[1])
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"the proxy has no configuration yet", answer)
        self.assertEqual(self.server.of_type("ask"), [])
        self.assertEqual(self.origins.echo.connections, 0)

    def test_no_decision_in_time_is_a_refusal(self):
        self.server.configure(LOOPBACK, ask_timeout_ms=300)
        started = time.monotonic()
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.origins.echo.server_address[1])
        self.assertLess(time.monotonic() - started, 5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"is not allowed for this sandbox: no decision in time", answer)
        ask = self.server.next_ask()
        closed = self.server.closed(ask["id"])
        self.assertEqual((closed["allowed"], closed["reason"]), (False, "no decision in time"))
        self.assertFalse(self.server.connected(ask["id"]))
        self.assertEqual(self.origins.echo.connections, 0)

    def test_an_unreachable_origin_is_a_502(self):
        spare = socket.create_server(("127.0.0.1", 0))
        port = spare.getsockname()[1]
        spare.close()
        self.server.configure(LOOPBACK)
        self.server.policy = allow()
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
        self.assertTrue(answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), answer)
        self.assertIn(b"cannot connect to 127.0.0.1 port %d" % port, answer)
        closed = self.server.closed(self.server.next_ask()["id"])
        self.assertEqual((closed["allowed"], closed["address"]), (False, "127.0.0.1"))
        self.assertIn("cannot connect", closed["reason"])
