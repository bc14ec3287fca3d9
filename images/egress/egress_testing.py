"""The egress proxy's test harness (standard library only, no Docker): the
real proxy as a subprocess on loopback with the test playing the server on
its stdin and stdout (a thread reads every message; `policy` answers
asks), real origins on loopback (an HTTP server that records what it is
sent, a TCP echo server, and a listener that accepts and never answers),
and sockets that talk to the proxy as sandbox code would. 127.0.0.1 is not
a public address, and the proxy never connects to loopback except with
its test-only --test-allow-loopback switch: ServerSide passes it (unless
told otherwise), and tests that need to reach an origin configure
allow_private ["127.0.0.0/8"] (LOOPBACK). The proxy reads its routes from
files the test writes (--test-route-files; none unless a test says so), so
the host's own networks (docker0, ...) do not count as sandbox networks."""

import http.server
import ipaddress
import json
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest

PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "egress_proxy.py")
TIMEOUT = 10.0
LOOPBACK = ["127.0.0.0/8"]
OK_200 = b"HTTP/1.1 200 Connection established\r\n\r\n"


def allow(session="calc", budget=1 << 30, private=None):
    def decide(ask):
        decision = {"type": "decision", "id": ask["id"], "allow": True, "session": session, "budget_bytes": budget}
        if private is not None:
            decision["private"] = private
        return decision

    return decide


def route_text(*rows):
    """/proc/net/route's text (in this machine's byte order) for rows of
    (interface, network, gateway or None)."""
    lines = ["Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"]
    for interface, network, gateway in rows:
        network = ipaddress.IPv4Network(network)
        hexed = [
            "%08X" % int.from_bytes(address.packed, sys.byteorder)
            for address in (network.network_address, ipaddress.IPv4Address(gateway or 0), network.netmask)
        ]
        flags = "0003" if gateway else "0001"
        lines.append("\t".join([interface, hexed[0], hexed[1], flags, "0", "0", "0", hexed[2], "0", "0", "0"]))
    return "\n".join(lines) + "\n"


def deny(reason):
    return lambda ask: {"type": "decision", "id": ask["id"], "allow": False, "reason": reason}


class ServerSide:
    """The proxy process and the server's end of its stream."""

    def __init__(self, *arguments, loopback=True, routes=("", "")):
        self.folder = tempfile.TemporaryDirectory(prefix="egress-routes-")
        self.route_files = [os.path.join(self.folder.name, name) for name in ("route", "ipv6_route")]
        self.write_routes(*routes)
        command = [sys.executable, "-E", "-s", PROXY, "--listen", "127.0.0.1:0"] + list(arguments)
        command += ["--test-route-files"] + self.route_files
        if loopback:
            command.append("--test-allow-loopback")
        pipe = subprocess.PIPE
        self.process = subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=pipe)
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

    def write_routes(self, ipv4, ipv6):
        """What the proxy reads as /proc/net/route and /proc/net/ipv6_route
        (the next time it reads them: at most a second later)."""
        for path, text in zip(self.route_files, (ipv4, ipv6)):
            with open(path, "w") as file:
                file.write(text)

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
        self.folder.cleanup()
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
        with self.server.lock:
            self.server.connections += 1
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 128  # many connections at once


class HttpServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128


class Origins:
    """An HTTP origin, a TCP echo and a silent listener, on loopback."""

    def __init__(self):
        self.http = HttpServer(("127.0.0.1", 0), Recorder)
        self.http.seen = []
        self.echo = EchoServer(("127.0.0.1", 0), Echo)
        self.echo.connections = 0
        self.echo.lock = threading.Lock()
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
    loopback = True  # pass --test-allow-loopback
    routes = ("", "")  # the proxy's /proc/net/route and /proc/net/ipv6_route

    def setUp(self):
        self.origins = Origins()
        self.addCleanup(self.origins.stop)
        self.server = ServerSide(*self.arguments, loopback=self.loopback, routes=self.routes)
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
