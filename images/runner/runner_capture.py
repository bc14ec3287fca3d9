"""Capturing a program's output: bounded captures of stdout and stderr, the
pump that reads them (and the host's messages) until the program is done or
must stop, and the progress reports of a long run."""

import os
import select
import time

import runner_protocol as protocol

READ_CHUNK = 65536
# After the main process of a step exits, how long to keep reading output
# from background processes it left behind before killing them.
DRAIN_AFTER_EXIT_S = 0.2
# How often a run that asked for progress reports it.
PROGRESS_INTERVAL_S = 1.0
# Most lines and bytes of output a progress report carries.
PROGRESS_TAIL_LINES = 5
PROGRESS_TAIL_BYTES = 1024


class Capture:
    """Bounded capture of one output stream. Output beyond the limit is
    drained and dropped (so the program never blocks on a full pipe)."""

    def __init__(self, limit):
        self.limit = limit
        self.chunks = []
        self.size = 0
        self.truncated = False

    def add(self, data):
        room = self.limit - self.size
        if room <= 0:
            self.truncated = True
            return
        if len(data) > room:
            data = utf8_prefix(data, room)
            self.truncated = True
        self.chunks.append(data)
        self.size += len(data)

    def text(self):
        return b"".join(self.chunks).decode("utf-8", "replace")

    def tail(self, limit):
        """The last `limit` bytes or so (whole chunks from the end)."""
        taken, size = [], 0
        for chunk in reversed(self.chunks):
            taken.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(reversed(taken))[-limit:]


def utf8_prefix(data, limit):
    """The longest prefix of `data` of at most `limit` bytes that does not
    end inside a UTF-8 character."""
    cut = limit
    # Step back over continuation bytes (10xxxxxx) to the start of a character,
    # then drop that character if it does not fit whole.
    start = cut
    while start > 0 and start > cut - 4 and (data[start - 1] & 0xC0) == 0x80:
        start -= 1
    if start > 0:
        lead = data[start - 1]
        need = 1 if lead < 0x80 else 2 if lead >= 0xC0 and lead < 0xE0 else 3 if lead < 0xF0 else 4
        if (start - 1) + need > cut:
            cut = start - 1
    return data[:cut]


class Progress:
    """Reports a long run's progress through `send`: elapsed time, phase,
    latest output."""

    def __init__(self, request_id, started, stdout, stderr, send):
        self.request_id = request_id
        self.started = started
        self.stdout = stdout
        self.stderr = stderr
        self.send = send
        self.phase = "run"
        self.next_at = started + PROGRESS_INTERVAL_S
        self.newest = stdout
        self.sizes = (0, 0)

    def tick(self, now):
        if now < self.next_at:
            return
        self.next_at = now + PROGRESS_INTERVAL_S
        # Show the stream that grew since the last report (stdout if both did).
        if self.stderr.size > self.sizes[1] and self.stdout.size == self.sizes[0]:
            self.newest = self.stderr
        elif self.stdout.size > self.sizes[0]:
            self.newest = self.stdout
        self.sizes = (self.stdout.size, self.stderr.size)
        lines = self.newest.tail(PROGRESS_TAIL_BYTES).decode("utf-8", "replace").splitlines()
        self.send(protocol.progress(
            self.request_id,
            int((now - self.started) * 1000),
            self.phase,
            self.stdout.size,
            self.stderr.size,
            "\n".join(line for line in lines[-PROGRESS_TAIL_LINES:]),
        ))


class Stop:
    """Why a wait ended early: the deadline passed or the host cancelled.
    `host` hears the host while the wait lasts (its `fds()` to select on,
    its `listen(stop)` to read them, which may cancel); `progress` reports
    the run's progress, if it asked for that."""

    def __init__(self, request_id, deadline, host, progress=None):
        self.request_id = request_id
        self.deadline = deadline
        self.host = host
        self.cancelled = False
        self.expired = False
        self.progress = progress

    def due(self, now):
        if self.cancelled:
            return True
        if now >= self.deadline:
            self.expired = True
        return self.expired


def pump(streams, stop, until_done=None, process=None):
    """Reads `streams` (fd -> Capture) until they close, `until_done()` says
    so, the process exits (plus a short drain), or `stop` is due.

    Returns True when it ended because `stop` was due.
    """
    exit_fd = exit_watch(process)
    try:
        return pump_until(streams, stop, until_done, process, exit_fd)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)


def exit_watch(process):
    """A descriptor that turns readable when `process` exits (a pidfd), so
    the pump wakes at once when a program's output closed a moment before it
    ended (its 50 ms wake-ups are for timeouts and progress); None without
    one (an old kernel, or a process already reaped): the pump then sees
    the exit at its next wake-up."""
    if process is None or process.returncode is not None or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(process.pid)
    except OSError:
        return None


def pump_until(streams, stop, until_done, process, exit_fd):
    open_fds = set(streams)
    drain_deadline = None
    exit_fds = [] if exit_fd is None else [exit_fd]
    # A cancel may already sit in the buffer (read together with its run).
    stop.host.listen(stop)
    while open_fds or (process is not None and process.poll() is None):
        now = time.monotonic()
        if stop.due(now):
            return True
        if stop.progress is not None:
            stop.progress.tick(now)
        if process is not None and drain_deadline is None and process.poll() is not None:
            drain_deadline = now + DRAIN_AFTER_EXIT_S
        if drain_deadline is not None and now >= drain_deadline:
            return False
        if not open_fds and drain_deadline is not None:
            return False
        wait = min(stop.deadline, drain_deadline or stop.deadline) - now
        host_fds = stop.host.fds()
        extra = until_done.fds() if until_done else []
        ready, _, _ = select.select(list(open_fds) + host_fds + extra + exit_fds, [], [], max(0, min(wait, 0.05)))
        for fd in ready:
            if fd in exit_fds:
                # Readable from now on: the process ended, poll() reaps it.
                exit_fds.clear()
            elif fd in host_fds:
                stop.host.listen(stop)
            elif fd in streams:
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                if data:
                    streams[fd].add(data)
                else:
                    open_fds.discard(fd)
        if until_done and until_done.check(ready):
            drain_now(streams)
            return False
    return False


def drain_now(streams):
    """Reads what is already buffered in non-blocking pipes, for at most
    DRAIN_AFTER_EXIT_S (a background writer could otherwise keep it busy)."""
    deadline = time.monotonic() + DRAIN_AFTER_EXIT_S
    for fd, capture in streams.items():
        while time.monotonic() < deadline:
            try:
                data = os.read(fd, READ_CHUNK)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            capture.add(data)
