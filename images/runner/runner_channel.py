"""The runner's channels: the host's stream (newline-delimited JSON on the
runner's stdin and stdout, see runner_protocol.py) and the runner's own log
(stderr, which the engine keeps as the container's log)."""

import json
import os
import select
import sys
import threading

READ_CHUNK = 65536


def log(text):
    sys.stderr.write("runner: %s\n" % text)
    sys.stderr.flush()


class HostChannel:
    """One line per message each way. Lines read while a request runs and
    not handled at once wait in `deferred` and are served first, in order."""

    def __init__(self, read_fd=0, write_fd=1):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.write_lock = threading.Lock()
        self.buffer = bytearray()
        self.closed = False  # the host closed its end
        self.deferred = []

    def send(self, message):
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        with self.write_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.write_fd, view):]

    def fds(self):
        """What to select on for the host's next bytes (none once closed)."""
        return [] if self.closed else [self.read_fd]

    def read_available(self):
        """The complete lines that arrived, read without blocking."""
        while not self.closed:
            ready, _, _ = select.select([self.read_fd], [], [], 0)
            if not ready:
                break
            data = os.read(self.read_fd, READ_CHUNK)
            if not data:
                self.closed = True
                break
            self.buffer.extend(data)
        lines = []
        while b"\n" in self.buffer:
            lines.append(self.take_line())
        return lines

    def defer(self, line):
        self.deferred.append(line)

    def take_deferred(self, wanted):
        """Removes the first deferred line `wanted(line)` accepts; True when
        there was one."""
        for index, line in enumerate(self.deferred):
            if wanted(line):
                del self.deferred[index]
                return True
        return False

    def next_line(self):
        """The next line to serve, waiting for it; None once the host has
        closed its end."""
        if self.deferred:
            return self.deferred.pop(0)
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            data = os.read(self.read_fd, READ_CHUNK)
            if not data:
                self.closed = True
                return None
            self.buffer.extend(data)
        return self.take_line()

    def take_line(self):
        index = self.buffer.index(b"\n")
        line = bytes(self.buffer[:index])
        del self.buffer[: index + 1]
        return line
