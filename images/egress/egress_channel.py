"""The egress proxy's channels: the server's stream (newline-delimited JSON
on the proxy's stdin and stdout, see egress_proxy.py) and the proxy's own
log (stderr, which the engine keeps as the container's log).

The stream is served by two threads with blocking reads and writes (like
the runner's HostChannel, and whatever kind of file the stream is), so a
server that is slow to read never stalls the proxy's event loop."""

import os
import queue
import sys
import threading

READ_CHUNK = 65536
MAX_LINE_BYTES = 1 << 20


def log(text):
    try:
        sys.stderr.write("egress: %s\n" % text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class ServerChannel:
    """One line per message each way. `on_line(bytes)` and `on_close()` are
    called in the event loop `loop`; lines longer than MAX_LINE_BYTES are
    dropped (and logged)."""

    def __init__(self, loop, on_line, on_close, read_fd=0, write_fd=1):
        self.loop = loop
        self.on_line = on_line
        self.on_close = on_close
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.outbox = queue.Queue()

    def start(self):
        threading.Thread(target=self.read_loop, name="server-reader", daemon=True).start()
        threading.Thread(target=self.write_loop, name="server-writer", daemon=True).start()

    def send(self, data):
        """Queues one encoded line (bytes ending in a newline)."""
        self.outbox.put(data)

    def flush(self, timeout):
        """Waits up to `timeout` seconds for the queued lines to be written."""
        done = threading.Event()
        self.outbox.put(done)
        done.wait(timeout)

    def post(self, callback, *args):
        """Runs `callback(*args)` in the event loop (nothing once it is closed)."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass

    def write_loop(self):
        while True:
            item = self.outbox.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                view = memoryview(item)
                while view:
                    view = view[os.write(self.write_fd, view) :]
            except OSError as error:
                log("cannot write to the server: %s" % error)
                self.post(self.on_close)
                return

    def read_loop(self):
        buffer = bytearray()
        dropping = False
        while True:
            try:
                data = os.read(self.read_fd, READ_CHUNK)
            except OSError as error:
                log("cannot read from the server: %s" % error)
                data = b""
            if not data:
                self.post(self.on_close)
                return
            buffer.extend(data)
            while True:
                index = buffer.find(b"\n")
                if index < 0:
                    break
                line = bytes(buffer[:index])
                del buffer[: index + 1]
                if dropping:
                    dropping = False
                elif line.strip():
                    self.post(self.on_line, line)
            if len(buffer) > MAX_LINE_BYTES:
                if not dropping:
                    log("dropped a server line longer than %d bytes" % MAX_LINE_BYTES)
                dropping = True
                buffer.clear()
