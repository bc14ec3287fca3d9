"""Tests of the egress proxy as the server sees it (standard library only, no
Docker; run by .ci/run with `python3 -m unittest discover -s images/egress`).

Each test starts the real proxy as a subprocess on loopback, plays the
server on its stdin and stdout (a thread reads every message; `policy`
answers asks), and talks to it as sandbox code would, through real sockets
and urllib, with real origins on loopback: an HTTP server, a TCP echo
server and one that accepts and never answers. 127.0.0.1 is not a public
address, so tests that need to reach an origin configure allow_private
["127.0.0.0/8"]; without it, the same origin is refused."""

import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "egress_proxy.py")
TIMEOUT = 10.0
LOOPBACK = ["127.0.0.0/8"]
OK_200 = b"HTTP/1.1 200 Connection established\r\n\r\n"


def allow(session="calc", budget=1 << 30):
    return lambda ask: {"type": "decision", "id": ask["id"], "allow": True, "session": session, "budget_bytes": budget}


def deny(reason):
    return lambda ask: {"type": "decision", "id": ask["id"], "allow": False, "reason": reason}


class ServerSide:
    """The proxy process and the server's end of its stream."""

    def __init__(self, *arguments):
        command = [sys.executable, "-E", "-s", PROXY, "--listen", "127.0.0.1:0"] + list(arguments)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages = []
        self.log = []
        self.changed = threading.Condition()
        self.policy = lambda ask: None
        self.asks_taken = set()
        self.readers = [
            threading.Thread(target=self.read_messages, daemon=True),
            threading.Thread(target=self.read_log, daemon=True),
        ]
        for thread in self.readers:
            thread.start()
        ready = self.wait_for(lambda m: m["type"] == "ready")
        self.port = int(ready["listen"].rsplit(":", 1)[1])

    def read_messages(self):
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                message = {"type": "<not json>", "line": line}
            with self.changed:
                self.messages.append(message)
                self.changed.notify_all()
            if message.get("type") == "ask":
                decision = self.policy(message)
                if decision is not None:
                    self.send(decision)

    def read_log(self):
        for line in self.process.stderr:
            with self.changed:
                self.log.append(line.decode("utf-8", "replace"))

    def send(self, message):
        data = message if isinstance(message, bytes) else (json.dumps(message) + "\n").encode()
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def configure(self, allow_private=(), ask_timeout_ms=5000):
        # the proxy logs each configure it applies: wait for it
        count = len(self.log_lines("configured"))
        self.send({"type": "configure", "allow_private": list(allow_private), "ask_timeout_ms": ask_timeout_ms})
        deadline = time.monotonic() + TIMEOUT
        while len(self.log_lines("configured")) <= count:
            if time.monotonic() > deadline:
                raise AssertionError("the proxy did not apply the configure")
            time.sleep(0.01)

    def log_lines(self, text):
        with self.changed:
            return [line for line in self.log if text in line]

    def connected(self, request_id):
        """Whether the proxy tried to connect anywhere for this connection
        (its log says so before the line that ends the connection)."""
        self.closed(request_id)
        prefix = "egress: %s " % request_id
        deadline = time.monotonic() + TIMEOUT
        while not [line for line in self.log_lines(prefix) if line.startswith(prefix) and " (session " in line]:
            if time.monotonic() > deadline:
                raise AssertionError("no end of %s in the log: %s" % (request_id, "".join(self.log)))
            time.sleep(0.01)
        return bool(self.log_lines("egress: %s connecting to " % request_id))

    def wait_for(self, wanted, timeout=TIMEOUT):
        """The first message (of all so far) that `wanted` accepts."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for message in self.messages:
                    if wanted(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError("no such message; got %r" % self.messages)
                self.changed.wait(left)

    def of_type(self, kind):
        with self.changed:
            return [message for message in self.messages if message["type"] == kind]

    def closed(self, request_id, timeout=TIMEOUT):
        return self.wait_for(lambda m: m["type"] == "closed" and m["id"] == request_id, timeout)

    def next_ask(self):
        """The first ask the test has not taken yet (waiting for it)."""
        ask = self.wait_for(lambda m: m["type"] == "ask" and m["id"] not in self.asks_taken)
        self.asks_taken.add(ask["id"])
        return ask

    def stop(self):
        """Closes the server's end; the proxy's exit code."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            code = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(TIMEOUT)
            code = None
        for thread in self.readers:
            thread.join(TIMEOUT)
        self.process.stdout.close()
        self.process.stderr.close()
        return code


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(b"")

    def do_POST(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def answer(self, body):
        self.server.seen.append((self.requestline, list(self.headers.items()), body))
        reply = b"hello from the origin" + (b": " + body if body else b"")
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *arguments):
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.connections += 1
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Origins:
    """An HTTP origin, a TCP echo and a silent listener, on loopback."""

    def __init__(self):
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.http.seen = []
        self.echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
        self.echo.daemon_threads = True
        self.echo.connections = 0
        for server in (self.http, self.echo):
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.silent = socket.create_server(("127.0.0.1", 0))
        self.held = []
        threading.Thread(target=self.hold, daemon=True).start()

    def hold(self):
        try:
            while True:
                self.held.append(self.silent.accept()[0])
        except OSError:
            pass

    def stop(self):
        for server in (self.http, self.echo):
            server.shutdown()
            server.server_close()
        self.silent.close()
        for connection in self.held:
            connection.close()


def read_all(connection, timeout=TIMEOUT):
    """Everything until the other side closes."""
    connection.settimeout(timeout)
    data = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk


def read_exactly(connection, size, timeout=TIMEOUT):
    connection.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class ProxyTestCase(unittest.TestCase):
    arguments = ("--header-timeout", "2", "--idle-timeout", "5", "--connect-timeout", "3")

    def setUp(self):
        self.origins = Origins()
        self.addCleanup(self.origins.stop)
        self.server = ServerSide(*self.arguments)
        self.addCleanup(self.check_stopped)
        self.sockets = []

    def check_stopped(self):
        for connection in self.sockets:
            connection.close()
        code = self.server.stop()
        self.assertEqual(code, 0, "".join(self.server.log))
        self.assertEqual(self.server.of_type("<not json>"), [], "stdout carries only protocol lines")

    def connect(self):
        connection = socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT)
        self.sockets.append(connection)
        return connection

    def exchange(self, request):
        """Sends `request`; the whole answer (the proxy closes after it)."""
        connection = self.connect()
        connection.sendall(request)
        return read_all(connection)

    def tunnel(self, target):
        connection = self.connect()
        connection.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), target.encode()))
        return connection


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

        threads = [threading.Thread(target=one, args=(index,)) for index in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        self.assertEqual(sorted(answers), list(range(20)))
        for index, (head, echoed) in answers.items():
            self.assertEqual((head, echoed), (OK_200, b"client %d" % index))
        ids = {ask["id"] for ask in self.server.of_type("ask")}
        self.assertEqual(len(ids), 20)
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
                        b"session: refused.invalid is not in this session's grants\n" % port
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
            (b"[::ffff:169.254.169.254]:80", "::ffff:169.254.169.254", b"IPv4-mapped link-local (cloud metadata)"),
            (b"[::1]:80", "::1", b"loopback"),
            (b"10.1.2.3:443", "10.1.2.3", b"private"),
            (b"100.64.0.1:443", "100.64.0.1", b"shared (carrier-grade NAT)"),
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
        self.assertIn(b"is not allowed for this session: no decision in time", answer)
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
