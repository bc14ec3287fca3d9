#!/usr/bin/env python3
"""multilang-sandbox egress proxy: the main process of the egress container
that sits next to the sandboxes (one per engine). Sandbox code reaches the
outside only through it, with `CONNECT host:port` (HTTPS and any other TCP;
tunnelled, no TLS interception) or an absolute-form plain-HTTP request
(`GET http://host/path`, forwarded in origin-form with `Connection: close`
and without Proxy-* headers). The server decides every connection; the
proxy enforces it (egress_connection.py says in which order), resolves
names itself and connects only to global unicast addresses or to networks
the server's configuration names (egress_address.py), never to a sandbox
network, and keeps each session within its byte budget (egress_budget.py).
Refusals are HTTP 403 with a one-line reason the program sees; an origin
that cannot be reached is a 502; a request the proxy cannot read is a 400
(405 for TRACE, 408 when its header is not in within the header timeout);
a connection over one of the caps below is a 503, answered before its
request is read (no ask, no closed). Bytes after a plain-HTTP request's
head (its body, or more requests) go unchanged to the origin that was
checked; `Connection: close` ends the exchange there.

Design note (issue #14 asks why not a proxy from Debian): the parts that
make this proxy ours are the per-connection question to the server over
the attached stream (and its answer, possibly the user's, minutes later),
the address check after our own lookup, the per-session byte budget and
the `closed` report. A packaged proxy would need an external ACL helper
speaking to the server, a log parser for the byte counts and a patched
resolver path, and a second image with more packages, for what is here
a few hundred lines: its own HTTP is only reading a request head (no
response parsing, no keep-alive, no TLS), and it needs only a python3, so
no binary built on the host (which may be a Mac) goes into a container.

Usage: python3 -E -s egress_proxy.py [--listen HOST:PORT]  (0.0.0.0:3128)
  [--connect-timeout S] (10: per lookup, per address tried)
  [--header-timeout S] (10: for the request head)
  [--idle-timeout S] (600: no byte either way ends a connection)
  [--max-connections N] (1024: connections served at once)
  [--max-pending-asks N] (256: connections waiting for a decision)
  [--test-allow-loopback] [--test-route-files IPV4 IPV6]
Only the Python standard library is used (3.11+). Name lookups run in
threads, at most 32 at once.

Destinations never reached, whatever allow_private says: loopback
(127/8, ::1 and their IPv6 forms such as ::ffff:127.0.0.1), unspecified,
broadcast and multicast addresses (egress_address.py), and the proxy's
own addresses: the one the client reached (via), any address of its
interfaces, and its listening port on any local address. Inside the
proxy's container loopback is the proxy itself, and a connection to itself
would make a second ask seem to come from the proxy.

Nor, whatever allow_private or a decision's private say, any address on a
sandbox network (reason "<address> is on a sandbox network"): the proxy is
connected to the sandboxes' isolated networks (one per session) and to one
network with the default route, its way out. A destination inside a subnet
directly connected to any of the proxy's interfaces except those carrying
a default route (0.0.0.0/0 or ::/0) is refused, so that allow_private =
172.16.0.0/12 does not let one session reach another session's sandboxes.
The subnets come from /proc/net/route and /proc/net/ipv6_route, read again
when the last reading is a second old (a network joined later counts within
a second); where the files do not exist (not Linux) nothing more is
refused, and a file that exists but cannot be read refuses every address.

--test-allow-loopback lets allow_private (and a decision's private) open
loopback (the proxy's own port and non-loopback own addresses stay
refused); --test-route-files reads these two files instead of the
kernel's. Both exist only for the project's own tests, whose origins
listen on loopback next to the proxy; the server never passes them.

Protocol v1 with the server: newline-delimited JSON, one message per line,
on the proxy's stdin (server -> proxy) and stdout (proxy -> server; nothing
else is written there, diagnostics go to stderr). A server line that is not
a valid message is logged to stderr and ignored (a decision that names a
pending connection but is invalid refuses that connection at once). The end
of stdin stops the proxy (exit 0), and so do SIGTERM and SIGINT.

  proxy -> server  {"type": "ready", "protocol": 1, "listen": "0.0.0.0:3128"}
                   once, when listening ("listen": the address bound).
  server -> proxy  {"type": "configure", "allow_private": ["10.9.0.0/16"],
                   "ask_timeout_ms": 60000}
                   both fields required; may be sent again, and applies to
                   connections that arrive after it. allow_private: CIDRs
                   (or bare addresses) the proxy may connect to although
                   they are not global unicast. Before the first configure
                   every connection is refused (403, no ask, no closed).
  proxy -> server  {"type": "ask", "id": "c-1f2e3d4c-17", "client": "172.30.0.3",
                   "via": "172.30.0.2", "method": "CONNECT"|"GET"|...,
                   "host": "api.github.com", "port": 443}
                   for each connection with a readable request, before any
                   name resolution. client: the peer's address; via: the
                   proxy address it reached (IPv4-mapped shown as IPv4);
                   id: "c-", 8 hex digits random for each run of the
                   proxy, "-" and a counter, so an answer meant for an
                   earlier run (before a restart) matches no connection;
                   host: lower-cased without one trailing dot, IP literals
                   canonical (IPv6 compressed, without brackets, IPv4-mapped
                   as ::ffff:a.b.c.d); port: 80 when a plain-HTTP URL names
                   none.
  server -> proxy  {"type": "decision", "id": "c-1f2e3d4c-17", "allow": true,
                   "session": "calc", "budget_bytes": 1073741824,
                   optional "private": true|false|null}
                or {"type": "decision", "id": "c-1f2e3d4c-17", "allow": false,
                   "reason": "...", optional "session": "calc"|null}
                   Both may repeat the ask's "host" and "port" (optional,
                   null as absent): when one differs from the pending
                   ask's, the connection is refused ("decision for another
                   host").
                   No decision within ask_timeout_ms: refused with reason
                   "no decision in time". A decision for an id that is no
                   longer pending (late, or its client left) is ignored.
                   budget_bytes: the session's remaining byte budget as
                   the server knows it (its byte budget less the bytes,
                   both ways, of the session's connections already
                   reported in closed). The proxy keeps, per session, the
                   bytes relayed by its connections that are still open
                   (not yet reported in closed) and the latest budget a
                   decision gave; every open connection of the session
                   relays only while (bytes of the session's open
                   connections) < (latest budget), so concurrent
                   connections of a session share one budget and sessions
                   are independent. When a connection ends, its bytes
                   leave the open count and are taken off the latest
                   budget too (the server subtracts them from its next
                   budget), so the others' room stays as it was. A
                   connection whose session has no room at its decision (a
                   budget of 0, or one its open connections have used) is
                   refused ("byte budget reached"); one that has bytes to
                   relay when there is no room left is cut with the same
                   reason (an idle one stays until it has, or its idle
                   timeout). Race: a decision the server computed before
                   it read the closed of another connection of the session
                   still has that connection's bytes in its budget, which
                   the proxy no longer counts as open: beyond its budget,
                   a session may relay up to the bytes of the connections
                   whose closed crossed a decision on the way (the next
                   decision sets it right; a server whose session is over
                   its budget sends 0).
                   private (allow only; absent or null: false): true when
                   the server matched the host to a host name in the
                   user's egress.allow_private. This connection may then
                   reach every class allow_private networks could open
                   but link-local (private, shared carrier-grade NAT,
                   unique local, documentation, reserved), not only the
                   configured networks; link-local (cloud metadata) only
                   through a network that names it; loopback, unspecified, broadcast,
                   multicast, the proxy's own addresses and sandbox
                   networks stay refused.
  proxy -> server  {"type": "closed", "id": "c-1f2e3d4c-17", "session": "calc"|null,
                   "host": "api.github.com", "port": 443,
                   "address": "140.82.1.1"|null, "allowed": true|false,
                   "reason": null|"...", "bytes_up": 0, "bytes_down": 0,
                   "duration_ms": 12}
                   exactly once for every ask, when the connection ends.
                   allowed: the decision and the address check let it
                   through and the origin was connected. address: the last
                   address tried or refused (null: none resolved). reason:
                   null when it ended normally, else why it was refused
                   (the decision's reason, "no decision in time", "byte
                   budget reached", the address class, "... is on a
                   sandbox network", "cannot connect ...", "the client
                   closed the connection before the decision") or cut
                   ("byte budget reached", "idle for N s", a failed side).
                   bytes_up/down: relayed bytes, client -> origin (for
                   plain HTTP with the rewritten head) and back; the
                   proxy's own answers are not counted. A closed for an id
                   the server is still deciding tells it to stop.
"""

import argparse
import asyncio
import ipaddress
import re
import resource
import secrets
import signal
import sys
from dataclasses import dataclass

import egress_protocol as protocol
from egress_address import ROUTE_FILES, SandboxNetworks
from egress_budget import Budgets
from egress_channel import ServerChannel, log
from egress_connection import CLOSE_GRACE, STREAM_LIMIT, Connection
from egress_http import answer

SHUTDOWN_GRACE = 2.0
DESCRIPTORS_PER_CONNECTION = 8  # client and origin sockets, their duplicates, two pipes (egress_relay.py)
BACKLOG = 1024  # sandboxes may open many connections at once
LOOKUPS = 32  # name lookups at once (each a thread)


@dataclass
class Settings:
    host: str = "0.0.0.0"
    port: int = 3128
    connect_timeout: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 600.0
    max_connections: int = 1024
    max_pending_asks: int = 256
    test_allow_loopback: bool = False
    route_files: tuple = ROUTE_FILES


class Proxy:
    """Listens for sandbox code and asks the server about each connection."""

    def __init__(self, settings, read_fd=0, write_fd=1):
        self.settings = settings
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.config = None  # the last configure message
        self.pending = {}  # ask id -> future of its decision
        self.budgets = Budgets()  # byte budgets of the sessions with connections
        self.sandbox_networks = SandboxNetworks(settings.route_files)
        self.count = 0
        # ids of one run never match another's (a late answer after a restart)
        self.run_prefix = secrets.token_hex(4)
        self.tasks = set()
        self.active = 0  # connections being served
        self.listen_port = None
        self.lookups = None
        self.channel = None
        self.stopped = None

    async def serve(self):
        """Says `ready`, then serves until the server closes its stream (or
        a signal); the exit code (1: it could not listen)."""
        loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        self.lookups = asyncio.Semaphore(LOOKUPS)
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self.stop, number.name)
        self.channel = ServerChannel(loop, self.on_line, self.stop, self.read_fd, self.write_fd)
        try:
            server = await asyncio.start_server(
                self.accept, self.settings.host, self.settings.port, limit=STREAM_LIMIT, backlog=BACKLOG
            )
        except OSError as error:
            log("cannot listen on %s port %d: %s" % (self.settings.host, self.settings.port, error))
            return 1
        bound = server.sockets[0].getsockname()
        self.listen_port = bound[1]
        host = "[%s]" % bound[0] if ":" in bound[0] else bound[0]
        listen = "%s:%d" % (host, bound[1])
        self.channel.start()
        self.channel.send(protocol.encode(protocol.ready(listen)))
        log("listening on %s" % listen)
        await self.stopped.wait()
        server.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=SHUTDOWN_GRACE)
        self.channel.flush(SHUTDOWN_GRACE)
        return 0

    def stop(self, why="the server closed its stream"):
        if not self.stopped.is_set():
            log("stopping: %s" % why)
            self.stopped.set()

    async def accept(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        self.active += 1
        try:
            if self.active > self.settings.max_connections:
                await self.turn_away(writer, "too many connections through the proxy; try again later")
            elif self.asks_full():
                await self.turn_away(writer, "too many connections waiting for a decision; try again later")
            else:
                await Connection(self, reader, writer).run()
        except asyncio.CancelledError:
            pass
        finally:
            self.active -= 1
            self.tasks.discard(task)

    def asks_full(self):
        return len(self.pending) >= self.settings.max_pending_asks

    async def turn_away(self, writer, text):
        """A 503 before reading the request (no ask, no closed)."""
        log("turned a connection away: %s" % text)
        try:
            writer.write(answer(503, text))
            await asyncio.wait_for(writer.drain(), CLOSE_GRACE)
        except (ConnectionError, OSError, TimeoutError):
            pass
        writer.transport.abort()

    def on_line(self, line):
        try:
            message = protocol.parse_server_message(line)
        except protocol.ProtocolError as error:
            log("ignored a server line: %s" % error)
            future = self.pending.get(error.request_id)
            if future is not None and not future.done():
                future.set_result({"allow": False, "reason": "invalid decision from the server: %s" % error})
            return
        if message["type"] == "configure":
            self.config = message
            log("configured: allow_private %s, ask timeout %d ms"
                % (message["allow_private"], message["ask_timeout_ms"]))
            return
        future = self.pending.get(message["id"])
        if future is None or future.done():
            log("ignored a decision for %s, which is not pending" % message["id"])
            return
        future.set_result(message)

    def new_id(self):
        self.count += 1
        return "c-%s-%d" % (self.run_prefix, self.count)

    def ask(self, request_id, client, via, method, host, port):
        """Sends an ask; the future of its decision."""
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.channel.send(protocol.encode(protocol.ask(request_id, client, via, method, host, port)))
        return future

    def forget(self, request_id):
        self.pending.pop(request_id, None)

    def report_closed(self, request_id, request, outcome):
        self.channel.send(protocol.encode(protocol.closed(request_id, outcome)))
        verdict = "allowed" if outcome["allowed"] else "refused"
        log(
            "%s %s %s (session %s): %s, address %s, up %d down %d bytes, %d ms%s"
            % (
                request_id,
                request.method,
                request.target,
                outcome["session"] or "-",
                verdict,
                outcome["address"] or "-",
                outcome["bytes_up"],
                outcome["bytes_down"],
                outcome["duration_ms"],
                "" if outcome["reason"] is None else ": " + outcome["reason"],
            )
        )


def listen_address(text):
    """HOST:PORT or [IPv6]:PORT."""
    host, colon, port = text.rpartition(":")
    if not colon or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an IP address in %r" % text)
    return host, int(port)


def seconds(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def count(text):
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a whole number above 0, got %r" % text)
    return int(text)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="egress_proxy.py", description="multilang-sandbox egress proxy")
    parser.add_argument("--listen", type=listen_address, default=("0.0.0.0", 3128), metavar="HOST:PORT")
    parser.add_argument("--connect-timeout", type=seconds, default=Settings.connect_timeout, metavar="S")
    parser.add_argument("--header-timeout", type=seconds, default=Settings.header_timeout, metavar="S")
    parser.add_argument("--idle-timeout", type=seconds, default=Settings.idle_timeout, metavar="S")
    parser.add_argument("--max-connections", type=count, default=Settings.max_connections, metavar="N")
    parser.add_argument("--max-pending-asks", type=count, default=Settings.max_pending_asks, metavar="N")
    parser.add_argument("--test-allow-loopback", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--test-route-files", nargs=2, default=ROUTE_FILES, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    host, port = arguments.listen
    return Settings(
        host,
        port,
        arguments.connect_timeout,
        arguments.header_timeout,
        arguments.idle_timeout,
        arguments.max_connections,
        arguments.max_pending_asks,
        arguments.test_allow_loopback,
        tuple(arguments.test_route_files),
    )


def raise_open_files(connections):
    """Raises the soft limit on open files towards what `connections`
    relayed at once need, within the hard limit the container was given."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections * DESCRIPTORS_PER_CONNECTION + LOOKUPS + 64
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    except (OSError, ValueError) as error:
        limit = soft
        log("cannot raise the open files limit: %s" % error)
    if limit < wanted:
        log("open files limited to %d: fewer than %d connections may be relayed at once" % (limit, connections))


def main(argv=None):
    settings = parse_arguments(sys.argv[1:] if argv is None else argv)
    raise_open_files(settings.max_connections)
    # stdout is the server's channel, written only through fd 1: a stray
    # print must not reach it.
    sys.stdout = sys.stderr
    return asyncio.run(Proxy(settings).serve())


if __name__ == "__main__":
    sys.exit(main())
