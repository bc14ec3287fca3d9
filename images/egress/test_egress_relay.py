"""Tests of the relay's byte counts (standard library only): bytes handed to
a side are counted even when the relay is cancelled while they drain."""

import asyncio
import unittest

from egress_budget import Budgets
from egress_relay import Relay


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


if __name__ == "__main__":
    unittest.main()
