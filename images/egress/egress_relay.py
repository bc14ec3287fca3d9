"""Relaying an allowed connection's bytes both ways: counted, cut when the
session's byte budget is reached (shared by the session's open connections,
egress_budget.py: a connection is cut once it has bytes to relay and the
session has no room left) or when neither side has moved a byte for the
idle timeout. The client's end of stream is passed on (half close) and the
origin's answer still relayed; the origin's end of stream, or a failure on
either side, ends the connection.

The bytes go from socket to socket through a pipe with splice(2) (Linux),
so they never pass through Python objects: the proxy runs on one CPU, and
reading them into objects and writing them out again took about twice the
CPU per byte (StreamReader.read and StreamWriter.write). Bytes the
client's or the origin's StreamReader already holds (read ahead with the
request header, or sent by the origin before the relay starts) are
written first. Each direction moves at most a pipe's worth at a time and
reads again only once the pipe is emptied into the other side, so a slow
reader holds the proxy to a pipe plus the sockets' own buffers. Where
there is no splice(2) (not Linux) the bytes go through the streams
(StreamReader.read, StreamWriter.write and drain), with the same
semantics."""

import asyncio
import fcntl
import os
import socket
import time

CHUNK = 262144  # the stream relay's read size; what a cut connection still reads and drops
PIPE_BYTES = 1 << 20  # the pipe's capacity asked for (Linux caps it at fs.pipe-max-size)
BUDGET_REACHED = "byte budget reached"
SPLICE = hasattr(os, "splice")  # Linux; elsewhere (the unit tests on a Mac) the stream relay
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


def take_buffered(reader):
    """The bytes `reader` (an asyncio.StreamReader) holds and whether it has
    seen the end of stream, emptying it. Its transport must not be reading
    (the StreamReader has no public way to take what it holds without
    waiting)."""
    data = bytes(reader._buffer)
    reader._buffer.clear()
    return data, reader._eof


def discard(source):
    """Reads (and drops) what `source` holds, up to a chunk as the stream
    relay would have: bytes left unread make closing the socket a reset,
    and the client should see the cut as an end of stream."""
    try:
        source.recv(CHUNK)
    except OSError:
        pass


class Pipe:
    """A non-blocking pipe, holding `held` bytes on their way. It starts at
    the kernel's default size and grows to PIPE_BYTES the first time it
    fills: a pipe's capacity counts against its user's pipe pages
    (fs.pipe-user-pages-soft) whether it is used or not, so only the
    connections that move bulk take large ones."""

    def __init__(self):
        self.read, self.write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.held = 0
        self.size = fcntl.fcntl(self.write, fcntl.F_GETPIPE_SZ)
        self.grown = False

    def filled(self):
        """Grows the pipe, once, when it was just filled."""
        if self.held < self.size or self.grown:
            return
        self.grown = True
        try:
            self.size = fcntl.fcntl(self.write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # over the user's pipe pages: the pipe keeps its size

    def close(self):
        os.close(self.read)
        os.close(self.write)


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

    def count(self, size, upward):
        self.share.spend(size)
        if upward:
            self.up += size
        else:
            self.down += size
        self.last = time.monotonic()

    def cut(self):
        """True (and the reason set) once the session has no room left."""
        if self.room() <= 0:
            self.reason = BUDGET_REACHED
            return True
        return False

    def failed(self, error, upward):
        if self.reason is None:
            way = "client -> origin" if upward else "origin -> client"
            self.reason = "relay failed (%s): %s" % (way, error)
        return "error"

    async def send(self, writer, data, upward):
        """Writes `data` within the budget; False once the budget is reached."""
        allowed = data[: max(self.room(), 0)]
        if allowed:
            writer.write(allowed)
            # counted once handed to the transport, so bytes written before
            # a cancelled (or failed) drain are in the totals too
            self.count(len(allowed), upward)
            await writer.drain()
            self.last = time.monotonic()
        return not self.cut()

    async def pump(self, reader, writer, upward):
        """Copies through the streams until end of stream ("eof"), the
        budget ("cut") or an error ("error"): the relay without splice(2)."""
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
            return self.failed(error, upward)

    async def ready(self, fd, writing):
        """Waits until `fd` can be read (or written)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        add, remove = (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)

        def wake():
            if not future.done():
                future.set_result(None)

        add(fd, wake)
        try:
            await future
        finally:
            remove(fd)

    async def splice_pump(self, source, target, upward):
        """Moves bytes from the socket `source` to the socket `target`
        through a pipe until end of stream ("eof"), the budget ("cut") or an
        error ("error")."""
        try:
            pipe = Pipe()
        except OSError as error:  # out of descriptors, or of the user's pipe pages
            return self.failed(error, upward)
        try:
            while True:
                if pipe.held == 0:
                    want = min(pipe.size, self.room())
                    if want <= 0:
                        # no room: cut once there are bytes to relay, pass an end of stream on
                        await self.ready(source.fileno(), False)
                        if self.room() > 0:
                            continue  # a later decision gave the session more
                        if source.recv(1, socket.MSG_PEEK):
                            self.cut()
                            discard(source)
                            return "cut"
                        target.shutdown(socket.SHUT_WR)
                        return "eof"
                    try:
                        moved = os.splice(source.fileno(), pipe.write, want, flags=SPLICE_FLAGS)
                    except BlockingIOError:
                        await self.ready(source.fileno(), False)
                        continue
                    if moved == 0:
                        target.shutdown(socket.SHUT_WR)
                        return "eof"
                    pipe.held = moved
                    pipe.filled()
                    # counted once taken from the source, as the stream relay
                    # counts bytes handed to the transport
                    self.count(moved, upward)
                try:
                    moved = os.splice(pipe.read, target.fileno(), pipe.held, flags=SPLICE_FLAGS)
                except BlockingIOError:
                    await self.ready(target.fileno(), True)
                    continue
                pipe.held -= moved
                self.last = time.monotonic()
                if pipe.held == 0 and self.cut():
                    discard(source)
                    return "cut"
        except (ConnectionError, OSError) as error:
            return self.failed(error, upward)
        finally:
            pipe.close()

    async def run(self, client, origin):
        """Relays between the (reader, writer) pairs until the end: the
        origin's end of stream ends the connection (the client's is passed
        on, and the origin's answer still relayed)."""
        if not SPLICE:
            await self.watch(self.pump(client[0], origin[1], True), self.pump(origin[0], client[1], False))
            return
        sockets = []
        upward = True
        try:
            ended = []
            # What the streams hold goes first, within the idle timeout (a
            # side that does not read must not hold the connection for ever).
            async with asyncio.timeout(self.idle_timeout):
                for (reader, source), (_, target), upward in ((client, origin, True), (origin, client, False)):
                    source.transport.pause_reading()
                    data, eof = take_buffered(reader)
                    target.transport.set_write_buffer_limits(0)  # drain() waits until all is sent
                    if data and not await self.send(target, data, upward):
                        return
                    await target.drain()
                    ended.append(eof)
            for _, writer in (client, origin):
                held = writer.transport.get_extra_info("socket")
                # a duplicate descriptor: the event loop will not watch a transport's own
                sockets.append(socket.fromfd(held.fileno(), held.family, held.type))
            ways = ((sockets[0], sockets[1], True), (sockets[1], sockets[0], False))
            await self.watch(*(self.passed_on(target) if eof else self.splice_pump(source, target, upward)
                               for (source, target, upward), eof in zip(ways, ended)))
        except TimeoutError:
            self.reason = "idle for %g s" % self.idle_timeout
        except (ConnectionError, OSError) as error:
            self.failed(error, upward)
        finally:
            loop = asyncio.get_running_loop()
            for held in sockets:
                # no watch may outlive its descriptor (a second cancel can end watch() early)
                loop.remove_reader(held.fileno())
                loop.remove_writer(held.fileno())
                held.close()

    async def passed_on(self, target):
        """A direction whose end of stream came before the relay: passed on."""
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return "eof"

    async def watch(self, up, down):
        """Runs both directions until the end or the idle timeout."""
        up = asyncio.ensure_future(up)
        down = asyncio.ensure_future(down)
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
