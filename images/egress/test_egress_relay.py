"""Tests of the relay (standard library only, no Docker): a Relay between
two real loopback TCP connections, as the proxy holds them (asyncio
streams), with plain sockets as the client and the origin. Bytes handed to
a side are counted even when the relay is cancelled while they drain; the
bytes the streams already hold go first; the budget cuts mid-stream with
an end of stream, not a reset; an idle connection is cut; each side's end
of stream is passed on; a client that does not read holds the proxy to
bounded buffers."""

import asyncio
import socket
import time
import unittest
from unittest import mock

import egress_relay
from egress_budget import Budgets
from egress_relay import BUDGET_REACHED, PIPE_BYTES, Relay

TIMEOUT = 10


class StuckWriter:
    """A writer whose buffer never drains (a peer that stopped reading)."""

    def __init__(self):
        self.written = b""

    def write(self, data):
        self.written += data

    async def drain(self):
        await asyncio.Event().wait()


class RelayCountTest(unittest.TestCase):
    def test_bytes_written_before_a_cancel_are_counted(self):
        async def scenario():
            relay = Relay(Budgets().join("calc", 1000), 60)
            writer = StuckWriter()
            sending = asyncio.ensure_future(relay.send(writer, b"x" * 300, False))
            await asyncio.sleep(0.01)
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            return relay, writer

        relay, writer = asyncio.run(scenario())
        self.assertEqual(len(writer.written), 300)
        self.assertEqual((relay.up, relay.down), (0, 300))


async def streams():
    """The proxy's (reader, writer) of one loopback connection, and the
    plain non-blocking socket at its other end."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        peer = socket.create_connection(listener.getsockname())
        held, _ = listener.accept()
    peer.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=held)
    return reader, writer, peer


async def receive(peer, size=None):
    """Bytes from `peer` until its end of stream (or `size` of them)."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    while size is None or len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), TIMEOUT)
        if not chunk:
            break
        data += chunk
    return bytes(data)


class RelayTest(unittest.TestCase):
    """Each test runs `scenario(client, origin)` against a relay between
    two fresh connections, then closes everything."""

    def setUp(self):
        if not egress_relay.SPLICE:
            self.skipTest("no splice(2) here (it is Linux's)")

    def relay(self, scenario, budget=1 << 40, idle_timeout=TIMEOUT, before=None, spent=0):
        """(the relay, what `scenario` returned); `spent`: bytes of the
        budget other connections of the session already relayed."""

        async def run():
            client_reader, client_writer, client = await streams()
            origin_reader, origin_writer, origin = await streams()
            share = Budgets().join("calc", budget)
            share.spend(spent)
            relay = Relay(share, idle_timeout)

            async def relay_and_close():
                # as the proxy's connection does once the relay ends
                try:
                    await relay.run((client_reader, client_writer), (origin_reader, origin_writer))
                finally:
                    for writer in (client_writer, origin_writer):
                        writer.close()

            try:
                if before is not None:
                    await before(client, origin, client_reader, origin_reader)
                relaying = asyncio.ensure_future(relay_and_close())
                outcome = await scenario(client, origin, relay, relaying)
                await asyncio.wait_for(relaying, TIMEOUT)
                return relay, outcome
            finally:
                for writer in (client_writer, origin_writer):
                    writer.close()
                for peer in (client, origin):
                    peer.close()

        return asyncio.run(run())

    def test_bytes_the_streams_hold_go_first_and_are_counted(self):
        async def before(client, origin, client_reader, origin_reader):
            # the request header is read, the body behind it is held; the
            # origin spoke first and ended
            client.sendall(b"HEAD|body held")
            origin.sendall(b"BANNER|banner held")
            origin.shutdown(socket.SHUT_WR)
            await client_reader.readuntil(b"|")
            await origin_reader.readuntil(b"|")
            await asyncio.sleep(0.05)  # the origin's end of stream reaches its reader

        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(client, b" and spliced")
            client.shutdown(socket.SHUT_WR)
            return await receive(origin), await receive(client)

        relay, (at_origin, at_client) = self.relay(scenario, before=before)
        self.assertEqual(at_origin, b"body held and spliced")
        self.assertEqual(at_client, b"banner held")
        self.assertEqual((relay.up, relay.down, relay.reason), (21, 11, None))

    def test_the_budget_cuts_mid_stream_with_an_end_of_stream(self):
        size = 3 * PIPE_BYTES

        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            sending = loop.create_task(loop.sock_sendall(origin, b"z" * size))
            received = await receive(client)
            sending.cancel()
            return received

        relay, received = self.relay(scenario, budget=PIPE_BYTES + 12345)
        self.assertEqual(received, b"z" * (PIPE_BYTES + 12345))
        self.assertEqual((relay.up, relay.down, relay.reason), (0, PIPE_BYTES + 12345, BUDGET_REACHED))

    def test_with_no_room_left_bytes_are_cut(self):
        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(client, b"more")
            return await receive(origin), await receive(client)

        relay, received = self.relay(scenario, budget=100, spent=100)
        self.assertEqual(received, (b"", b""))
        self.assertEqual((relay.up, relay.down, relay.reason), (0, 0, BUDGET_REACHED))

    def test_with_no_room_left_an_end_of_stream_is_still_passed_on(self):
        async def scenario(client, origin, relay, relaying):
            origin.shutdown(socket.SHUT_WR)
            return await receive(client)

        relay, received = self.relay(scenario, budget=100, spent=100)
        self.assertEqual(received, b"")
        self.assertEqual((relay.up, relay.down, relay.reason), (0, 0, None))

    def test_an_idle_connection_is_cut(self):
        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(client, b"ping")
            self.assertEqual(await receive(origin, 4), b"ping")
            started = time.monotonic()
            await asyncio.wait_for(asyncio.shield(relaying), TIMEOUT)
            return time.monotonic() - started

        relay, waited = self.relay(scenario, idle_timeout=0.3)
        self.assertEqual((relay.up, relay.down, relay.reason), (4, 0, "idle for 0.3 s"))
        self.assertGreater(waited, 0.2)

    def test_bytes_held_before_the_relay_do_not_outlast_the_idle_timeout(self):
        async def before(client, origin, client_reader, origin_reader):
            # an origin that reads nothing, behind small buffers
            origin.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            for reader in (client_reader, origin_reader):
                held = reader._transport.get_extra_info("socket")
                held.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(client, b"HEAD|" + b"x" * 100000)
            await client_reader.readuntil(b"|")
            await asyncio.sleep(0.05)  # the body reaches the client's reader

        async def scenario(client, origin, relay, relaying):
            started = time.monotonic()
            await asyncio.wait_for(asyncio.shield(relaying), TIMEOUT)
            return time.monotonic() - started

        relay, waited = self.relay(scenario, idle_timeout=0.5, before=before)
        self.assertEqual(relay.reason, "idle for 0.5 s")
        self.assertLess(waited, TIMEOUT)

    def test_the_clients_end_of_stream_is_passed_on_and_the_answer_still_relayed(self):
        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(client, b"question")
            client.shutdown(socket.SHUT_WR)
            self.assertEqual(await receive(origin), b"question")  # up to its end of stream
            self.assertFalse(relaying.done())
            await loop.sock_sendall(origin, b"answer")
            origin.shutdown(socket.SHUT_WR)
            return await receive(client)

        relay, received = self.relay(scenario)
        self.assertEqual(received, b"answer")
        self.assertEqual((relay.up, relay.down, relay.reason), (8, 6, None))

    def test_the_origins_end_of_stream_is_passed_on_and_ends_the_relay(self):
        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(origin, b"bye")
            origin.shutdown(socket.SHUT_WR)
            received = await receive(client)
            await asyncio.wait_for(asyncio.shield(relaying), TIMEOUT)
            return received

        relay, received = self.relay(scenario)
        self.assertEqual(received, b"bye")
        self.assertEqual((relay.up, relay.down, relay.reason), (0, 3, None))

    def test_a_client_that_does_not_read_holds_the_proxy_to_bounded_buffers(self):
        size = 64 << 20

        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            sending = loop.create_task(loop.sock_sendall(origin, b"s" * size))
            await asyncio.sleep(0.5)
            taken = relay.down  # what left the origin's socket while the client did not read
            received = await receive(client, size)
            await sending
            origin.shutdown(socket.SHUT_WR)
            self.assertEqual(await receive(client), b"")
            return taken, received

        relay, (taken, received) = self.relay(scenario)
        # a pipe plus the client socket's send buffer, far from the 64 MiB
        self.assertLess(taken, 16 << 20)
        self.assertEqual(len(received), size)
        self.assertEqual(received.count(b"s"), size)
        self.assertEqual((relay.down, relay.reason), (size, None))

    def test_a_reset_is_a_failure_of_its_direction(self):
        async def scenario(client, origin, relay, relaying):
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(client, b"hello")
            self.assertEqual(await receive(origin, 5), b"hello")
            origin.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            origin.close()  # a reset
            await asyncio.wait_for(asyncio.shield(relaying), TIMEOUT)

        relay, _ = self.relay(scenario)
        self.assertEqual((relay.up, relay.down), (5, 0))
        self.assertTrue(relay.reason.startswith("relay failed (origin -> client): "), relay.reason)



class StreamRelayTest(RelayTest):
    """The same, through the streams (the relay where there is no splice(2))."""

    def setUp(self):
        patch = mock.patch.object(egress_relay, "SPLICE", False)
        patch.start()
        self.addCleanup(patch.stop)


if __name__ == "__main__":
    unittest.main()
