"""Relaying an allowed connection's bytes both ways: counted, cut when the
session's byte budget is reached (shared by the session's open connections,
egress_budget.py: a connection is cut once it has bytes to relay and the
session has no room left) or when neither side has moved a byte for the
idle timeout. The client's end of stream is passed on (half close) and the
origin's answer still relayed; the origin's end of stream, or a failure on
either side, ends the connection."""

import asyncio
import time

CHUNK = 262144
BUDGET_REACHED = "byte budget reached"


class Relay:
    """Bytes of one connection: `up` (client -> origin) and `down`, spent
    from its session's `share` (an egress_budget.SessionBudget)."""

    def __init__(self, share, idle_timeout):
        self.share = share
        self.idle_timeout = idle_timeout
        self.up = 0
        self.down = 0
        self.reason = None  # why it was cut, None when it ended normally
        self.last = time.monotonic()

    def room(self):
        return self.share.room()

    async def send(self, writer, data, upward):
        """Writes `data` within the budget; False once the budget is reached."""
        allowed = data[: max(self.room(), 0)]
        if allowed:
            writer.write(allowed)
            self.share.spend(len(allowed))
            # counted once handed to the transport, so bytes written before
            # a cancelled (or failed) drain are in the totals too
            if upward:
                self.up += len(allowed)
            else:
                self.down += len(allowed)
            self.last = time.monotonic()
            await writer.drain()
            self.last = time.monotonic()
        if self.room() <= 0:
            self.reason = BUDGET_REACHED
            return False
        return True

    async def pump(self, reader, writer, upward):
        """Copies until end of stream ("eof"), the budget ("cut") or an
        error ("error")."""
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return "eof"
                if not await self.send(writer, data, upward):
                    return "cut"
        except (ConnectionError, OSError) as error:
            if self.reason is None:
                way = "client -> origin" if upward else "origin -> client"
                self.reason = "relay failed (%s): %s" % (way, error)
            return "error"

    async def run(self, client, origin):
        """Relays between the (reader, writer) pairs until the end: the
        origin's end of stream ends the connection (the client's is passed
        on, and the origin's answer still relayed)."""
        up = asyncio.ensure_future(self.pump(client[0], origin[1], True))
        down = asyncio.ensure_future(self.pump(origin[0], client[1], False))
        tasks = {up, down}
        try:
            while tasks:
                wait = self.last + self.idle_timeout - time.monotonic()
                if wait <= 0:
                    self.reason = "idle for %g s" % self.idle_timeout
                    return
                done, tasks = await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if down in done or any(task.result() != "eof" for task in done):
                    return
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
