"""One client connection through the egress proxy, in the order that keeps
a refused host from ever being looked up or reached: read the request →
ask the server (the host is not resolved yet) → join the session's byte
budget → resolve → refuse addresses that are not global unicast (unless
allowed), the proxy's own and those on a sandbox network → connect → relay
within the session's byte budget → report `closed`. Every connection that
was asked about gets exactly one `closed`, whatever happened."""

import asyncio
import ipaddress
import socket
import threading
import time

from egress_address import LOOPBACK, address_class, canonical, is_local, parse_literal, refusal
from egress_channel import log
from egress_http import BadRequest, answer, origin_head, parse_head, read_head
from egress_relay import BUDGET_REACHED, Relay

STREAM_LIMIT = 1 << 18
EARLY_BYTES = 65536  # what a client may send ahead while its ask is pending
CLOSE_GRACE = 2.0


class Refused(Exception):
    """Ends a connection with the proxy's own answer (`status`, `text`);
    `reason` is what `closed` reports."""

    def __init__(self, status, text, reason):
        super().__init__(reason)
        self.status = status
        self.text = text
        self.reason = reason


def plain_address(sockaddr):
    """The IP of a socket address as text; IPv4-mapped IPv6 as IPv4."""
    try:
        address = ipaddress.ip_address(sockaddr[0])
    except (TypeError, ValueError, IndexError):
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


async def lookup(host, port, slots):
    """getaddrinfo in a daemon thread (a lookup that hangs delays neither
    the proxy's exit nor, up to the number of `slots`, other lookups).
    `slots` (an asyncio.Semaphore) caps the lookups running at once: a slot
    is given back when its thread ends, not when its caller stops waiting."""
    await slots.acquire()
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(method, value):
        slots.release()
        if not future.done():
            method(value)

    def work():
        try:
            outcome = (future.set_result, socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as error:
            outcome = (future.set_exception, error)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop is closed: the proxy stopped

    try:
        threading.Thread(target=work, name="lookup", daemon=True).start()
    except BaseException:
        slots.release()
        raise
    return await future


class Connection:
    def __init__(self, proxy, reader, writer):
        self.proxy = proxy
        self.settings = proxy.settings
        self.reader = reader
        self.writer = writer
        self.origin = None
        self.share = None  # its session's byte budget, once allowed
        self.started = time.monotonic()
        self.id = None
        self.request = None
        self.client = plain_address(writer.get_extra_info("peername") or ())
        self.via = plain_address(writer.get_extra_info("sockname") or ())
        self.outcome = {
            "session": None,
            "host": None,
            "port": None,
            "address": None,
            "allowed": False,
            "reason": None,
            "bytes_up": 0,
            "bytes_down": 0,
        }

    async def run(self):
        try:
            await self.serve()
        except Refused as refused:
            self.outcome["allowed"] = False
            self.outcome["reason"] = refused.reason
            await self.reply(refused.status, refused.text)
        except asyncio.CancelledError:
            self.outcome["reason"] = self.outcome["reason"] or "the proxy stopped"
            raise
        except Exception as error:  # a bug must cost one connection, not the proxy
            log("connection from %s failed: %r" % (self.client, error))
            self.outcome["reason"] = self.outcome["reason"] or "proxy error: %s" % error
        finally:
            await self.close()

    async def serve(self):
        request = await self.read_request()
        if request is None:
            return
        self.request = request
        self.outcome["host"] = request.host
        self.outcome["port"] = request.port
        config = self.proxy.config
        if config is None:
            log("refused %s from %s: not configured yet" % (request.target, self.client))
            await self.reply(403, self.denial("the proxy has no configuration yet"))
            return
        if self.proxy.asks_full():
            log("refused %s from %s: too many pending asks" % (request.target, self.client))
            await self.reply(503, "too many connections waiting for a decision; try again later")
            return
        self.id = self.proxy.new_id()
        decision, early = await self.ask(config)
        if decision is None:
            self.outcome["reason"] = "the client closed the connection before the decision"
            return
        self.outcome["session"] = decision.get("session")
        if not decision["allow"]:
            raise Refused(403, self.denial(decision["reason"]), decision["reason"])
        for name in ("host", "port"):
            if decision.get(name) is not None and decision[name] != getattr(request, name):
                reason = "decision for another host (%s %r, asked about %r)" % (
                    name, decision[name], getattr(request, name))
                raise Refused(403, self.denial("decision for another host"), reason)
        self.share = self.proxy.budgets.join(decision["session"], decision["budget_bytes"])
        if self.share.room() <= 0:  # a budget of 0, or the session's open connections used it
            raise Refused(403, self.denial(BUDGET_REACHED), BUDGET_REACHED)
        addresses = await self.destinations(config["networks"], decision.get("private") is True)
        self.origin = await self.connect(addresses)
        self.outcome["allowed"] = True
        relay = Relay(self.share, self.settings.idle_timeout)
        try:
            if request.method == "CONNECT":
                self.writer.write(answer(200))
                await relay.send(self.origin[1], early, True)
            else:
                head = origin_head(request)
                await relay.send(self.origin[1], head + early, True)
            if relay.reason is None:
                await relay.run((self.reader, self.writer), self.origin)
        finally:
            self.outcome["bytes_up"] = relay.up
            self.outcome["bytes_down"] = relay.down
            self.outcome["reason"] = relay.reason

    async def read_request(self):
        try:
            async with asyncio.timeout(self.settings.header_timeout):
                lines = await read_head(self.reader)
            return None if lines is None else parse_head(lines)
        except TimeoutError:
            log("bad request from %s: no request header in time" % self.client)
            await self.reply(408, "bad request: the request header did not arrive in time")
        except BadRequest as bad:
            log("bad request from %s: %s" % (self.client, bad))
            await self.reply(bad.status, "bad request: %s" % bad)
        except (ConnectionError, OSError):
            pass
        return None

    def denial(self, reason):
        return "%s is not allowed for this sandbox: %s" % (self.request.target, reason)

    async def ask(self, config):
        """(the server's decision, bytes the client sent meanwhile); the
        decision is None when the client left while it was pending."""
        request = self.request
        future = self.proxy.ask(self.id, self.client, self.via, request.method, request.host, request.port)
        early = bytearray()
        read = None
        try:
            async with asyncio.timeout(config["ask_timeout_ms"] / 1000):
                while not future.done():
                    if read is None and len(early) < EARLY_BYTES:
                        read = asyncio.ensure_future(self.reader.read(EARLY_BYTES - len(early)))
                    waiting = {future} if read is None else {future, read}
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if read is not None and read.done():
                        data = b"" if read.exception() else read.result()
                        read = None
                        if not data:
                            return None, b""
                        early += data
        except TimeoutError:
            return {"allow": False, "reason": "no decision in time"}, b""
        finally:
            self.proxy.forget(self.id)
            if read is not None:
                read.cancel()
        return future.result(), bytes(early)

    async def destinations(self, networks, private):
        """The addresses the request's host may be reached at, in order
        (`private`: the decision opens non-global addresses)."""
        host, port = self.request.host, self.request.port
        literal = parse_literal(host)
        if literal is not None:
            candidates = [literal]
        else:
            try:
                looking = lookup(host, port, self.proxy.lookups)
                infos = await asyncio.wait_for(looking, self.settings.connect_timeout)
            except Exception as error:  # gaierror, TimeoutError, an odd name's UnicodeError
                reason = "cannot resolve %s: %s" % (host, str(error) or "timed out")
                raise Refused(502, "cannot reach %s: %s" % (self.request.target, reason), reason)
            candidates = []
            for info in infos:
                address = parse_literal(info[4][0])
                if address is not None and address not in candidates:
                    candidates.append(address)
        judged = [(address, self.refusal(address, networks, private)) for address in candidates]
        accepted = [address for address, why in judged if why is None]
        if not accepted:
            if not candidates:
                reason = "%s resolves to no address" % host
                raise Refused(502, "cannot reach %s: %s" % (self.request.target, reason), reason)
            first, why = judged[0]
            self.outcome["address"] = canonical(first)
            if literal is not None:
                reason = "%s is %s" % (canonical(first), why)
            else:
                reason = "%s resolves to %s, which is %s" % (host, canonical(first), why)
            raise Refused(403, self.denial(reason), reason)
        return accepted

    def refusal(self, address, networks, private):
        """Why the proxy may not connect to `address` (None: it may): its
        class (egress_address.refusal), or it is on a sandbox network (one
        session would reach another's sandboxes), or it is the proxy's own,
        which would make a connection (and its ask) come from the proxy
        itself: the address the client reached, any address of the proxy's
        interfaces, or the listening port on any local address."""
        allow_loopback = self.settings.test_allow_loopback
        why = refusal(address, networks, allow_loopback, private)
        if why is not None:
            return why
        plain = address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address
        if self.request.port == self.proxy.listen_port and is_local(plain):
            return "the egress proxy itself (its own address and port)"
        try:
            sandbox = self.proxy.sandbox_networks.containing(address)
        except OSError as error:
            log("cannot read the route tables: %s" % error)
            return "not checked: the egress proxy cannot read its route tables"
        if sandbox is not None:
            return "on a sandbox network"
        if allow_loopback and address_class(plain) == LOOPBACK:
            return None  # the project's own tests: their origins share the proxy's loopback
        if str(plain) == self.via or is_local(plain):
            return "one of the egress proxy's own addresses"
        return None

    async def connect(self, addresses):
        """(reader, writer) of the origin at the first address that answers."""
        reason = None
        for address in addresses:
            self.outcome["address"] = canonical(address)
            log("%s connecting to %s port %d" % (self.id, address, self.request.port))
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(address), self.request.port, limit=STREAM_LIMIT),
                    self.settings.connect_timeout,
                )
            except (OSError, TimeoutError) as error:
                failure = str(error) or "timed out after %g s" % self.settings.connect_timeout
                reason = "cannot connect to %s port %d: %s" % (address, self.request.port, failure)
        raise Refused(502, "cannot reach %s: %s" % (self.request.target, reason), reason)

    async def reply(self, status, text):
        try:
            self.writer.write(answer(status, text))
            await asyncio.wait_for(self.writer.drain(), CLOSE_GRACE)
        except (ConnectionError, OSError, TimeoutError):
            pass

    async def close(self):
        if self.share is not None:
            relayed = self.outcome["bytes_up"] + self.outcome["bytes_down"]
            self.proxy.budgets.leave(self.share, relayed)
            self.share = None
        for writer in (self.writer, self.origin[1] if self.origin else None):
            if writer is None:
                continue
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE)
            except Exception:
                writer.transport.abort()
        if self.id is not None:
            outcome = dict(self.outcome, duration_ms=int((time.monotonic() - self.started) * 1000))
            self.proxy.report_closed(self.id, self.request, outcome)
