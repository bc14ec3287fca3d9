#!/usr/bin/env python3
"""multilang-sandbox in-container runner.

The runner is the main process of every sandbox container. It speaks a
newline-delimited JSON protocol on its own stdin/stdout (the container's
attached stream), so no `docker exec` is ever needed to run code:

  runner -> host  {"type": "ready", "protocol": 3, "kernel": "python"|null}
  host -> runner  {"type": "run", "id": "...", "mode": "exec"|"kernel",
                   "files": [{"path", "content"}],
                   "steps": [{"phase": "build"|"run", "argv": [...]}],
                   "kernel_source": "/tmp/run/cell.py",      (kernel mode)
                   "stdin": "...", "env": {...}, "cwd": "/workspace",
                   "timeout_ms": 30000, "max_output_bytes": 1048576,
                   "progress": false}
  runner -> host  {"type": "progress", "id": "...", "elapsed_ms": 1000,
                   "phase": "run", "stdout_bytes": 10, "stderr_bytes": 0,
                   "tail": "last lines of output"}      (each second, when
                                                        the run asked for it)
  runner -> host  {"type": "result", "id": "...", "exit_code": 0,
                   "signal": null, "stdout": "...", "stderr": "...",
                   "duration_ms": 12, "timed_out": false, "truncated": false,
                   "phase": "run", "state_lost": false,
                   "output_lost": []}   ("stdout"/"stderr": the code closed it)
  host -> runner  {"type": "cancel", "id": "..."}   stops the running request
  host -> runner  {"type": "ping", "id": "..."}     -> {"type": "pong", ...}
  host -> runner  {"type": "file", "id": "...", "op": ...}  -> {"type": "file", ...}
                   a file operation (see fileops.py), answered between reads
                   of a running program's output too (not while a kernel
                   starts or program files are written)

The runner is not dumpable (prctl PR_SET_DUMPABLE 0): code runs as the same
user, but cannot open its /proc/<pid>/fd, mem or environ, so it can neither
read the host's requests nor write replies of its own. Everything a kernel
process sends (output, its "done" line) is untrusted data: it is captured
within the caps and framed by the runner under the running request's id.

`exec` mode runs each step as a fresh process group (stateless executes, Go
and Rust builds). `kernel` mode first runs the build steps, then sends the
source file to a long-lived interpreter (a "kernel": python_kernel.py,
kernel.js or kernel.sh)
that keeps variables, imports, functions, the working directory and the
environment between requests. On timeout or cancel the kernel is interrupted
(SIGINT) first; if it does not stop within a grace period it is killed and
restarted, and the result says `state_lost`.

Output beyond `max_output_bytes` per stream is drained and dropped (so the
program never blocks on a full pipe) and the result says `truncated`. Only the
Python standard library is used, so the runner works on any host OS.
"""

import ctypes
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time

PROTOCOL = 3
READ_CHUNK = 65536
# After the main process of a step exits, how long to keep reading output
# from background processes it left behind before killing them.
DRAIN_AFTER_EXIT_S = 0.2
# How long an interrupted kernel may take to stop before it is killed.
INTERRUPT_GRACE_S = 2.0
# How often a run that asked for progress reports it.
PROGRESS_INTERVAL_S = 1.0
# Most lines and bytes of output a progress report carries.
PROGRESS_TAIL_LINES = 5
PROGRESS_TAIL_BYTES = 1024
# How long a kernel may take to load before the runner reports ready anyway.
KERNEL_START_TIMEOUT_S = 30
SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))
STDIN_PATH = "/tmp/run/.stdin"

# Most bytes a kernel's "done" line may have (it carries only an exit code).
MAX_DONE_LINE_BYTES = 4096
PR_SET_DUMPABLE = 4

pending_lines = []  # requests that arrived while another one was running


def make_undumpable():
    """Closes /proc/<runner pid>/fd, mem and environ to the code (same uid):
    a non-dumpable process's /proc entries belong to root. Children get
    their own dumpable flag back when they exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except (OSError, AttributeError) as error:
        log("cannot make the runner non-dumpable: %r" % error)
        raise SystemExit(70)


def send(message):
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]


def handle_file_request(request):
    """Answers a `file` request (fileops.py, imported on first use: it is
    not needed to start, and the Python kernel never needs it)."""
    from fileops import handle_file_request as handle

    return handle(request)


def log(text):
    sys.stderr.write("runner: %s\n" % text)
    sys.stderr.flush()


def seed_directories():
    """Copy read-only warm caches baked into the image to writable places.

    SANDBOX_SEED_DIRS is a comma-separated list of `source:destination`
    pairs (for Go, the standard library build cache).
    """
    for pair in filter(None, os.environ.get("SANDBOX_SEED_DIRS", "").split(",")):
        source, _, destination = pair.partition(":")
        if os.path.isdir(source) and not os.path.exists(destination):
            subprocess.run(
                ["/bin/cp", "-a", source, destination],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                check=False,
            )


def write_files(files):
    for entry in files:
        path = entry["path"]
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(entry["content"])


class Capture:
    """Bounded capture of one output stream."""

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
    """Reports a long run's progress: elapsed time, phase, latest output."""

    def __init__(self, request_id, started, stdout, stderr):
        self.request_id = request_id
        self.started = started
        self.stdout = stdout
        self.stderr = stderr
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
        send({
            "type": "progress",
            "id": self.request_id,
            "elapsed_ms": int((now - self.started) * 1000),
            "phase": self.phase,
            "stdout_bytes": self.stdout.size,
            "stderr_bytes": self.stderr.size,
            "tail": "\n".join(line for line in lines[-PROGRESS_TAIL_LINES:]),
        })


class Stop:
    """Why a wait ended early: the deadline passed or the host cancelled.
    Also carries the run's progress reporter, if it asked for one."""

    def __init__(self, request_id, deadline, progress=None):
        self.request_id = request_id
        self.deadline = deadline
        self.cancelled = False
        self.expired = False
        self.progress = progress

    def due(self, now):
        if self.cancelled:
            return True
        if now >= self.deadline:
            self.expired = True
        return self.expired


def watch_host(stop):
    """Reads host messages that arrive while a request runs (non-blocking).

    A `cancel` for the running request stops it; other lines are queued.
    """
    global host_closed
    buffer = b""
    while not host_closed:
        ready, _, _ = select.select([0], [], [], 0)
        if not ready:
            break
        data = os.read(0, READ_CHUNK)
        if not data:
            host_closed = True
            break
        buffer += data
    if buffer:
        host_input.extend(buffer)
    while b"\n" in host_input:
        index = host_input.index(b"\n")
        line = bytes(host_input[:index])
        del host_input[: index + 1]
        try:
            message = json.loads(line)
        except ValueError:
            pending_lines.append(line)
            continue
        if not isinstance(message, dict):
            pending_lines.append(line)
        elif message.get("type") == "cancel" and stop.request_id is not None and message.get("id") == stop.request_id:
            stop.cancelled = True
        elif message.get("type") == "file":
            send(handle_file_request(message))
        else:
            pending_lines.append(line)


host_input = bytearray()
host_closed = False


def kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def pump(streams, stop, until_done=None, process=None):
    """Reads `streams` (fd -> Capture) until they close, `until_done()` says
    so, the process exits (plus a short drain), or `stop` is due.

    Returns True when it ended because `stop` was due.
    """
    open_fds = set(streams)
    drain_deadline = None
    # A cancel may already sit in the buffer (read together with its run).
    watch_host(stop)
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
        watched = list(open_fds) + ([] if host_closed else [0])
        extra = until_done.fds() if until_done else []
        ready, _, _ = select.select(watched + extra, [], [], max(0, min(wait, 0.05)))
        for fd in ready:
            if fd == 0:
                watch_host(stop)
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


def feed_stdin(pipe, data):
    try:
        if data:
            pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def child_env(request):
    env = dict(os.environ)
    env.pop("SANDBOX_SEED_DIRS", None)
    env.update(request.get("env") or {})
    return env


def run_step(argv, request, stop, stdout, stderr):
    """Runs one step as its own process group. Returns (exit_code, signal)."""
    stdin_data = request.get("stdin")
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=request.get("cwd") or "/workspace",
            env=child_env(request),
            start_new_session=True,
        )
    except OSError as error:
        stderr.add(("cannot start %s: %s\n" % (argv[0], error)).encode())
        return 127, None
    if stdin_data:
        threading.Thread(
            target=feed_stdin,
            args=(process.stdin, stdin_data.encode("utf-8")),
            daemon=True,
        ).start()
    streams = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
    pump(streams, stop, process=process)
    kill_group(process.pid)
    process.stdout.close()
    process.stderr.close()
    returncode = process.wait()
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


class DoneChannel:
    """The kernel's "request finished" pipe: one JSON line per request."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = b""
        self.message = None
        self.closed = False

    def fds(self):
        return [] if self.closed else [self.fd]

    def check(self, ready):
        if self.fd in ready and not self.closed:
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                data = None
            if data == b"":
                self.closed = True
            elif data:
                self.buffer += data
        if b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            self.message = done_message(line)
            return True
        if len(self.buffer) > MAX_DONE_LINE_BYTES:
            # Not a kernel's line: code wrote to the channel. The request is
            # over; what it said is not believed.
            self.buffer = b""
            self.message = {"exit_code": 1, "lost": []}
            return True
        return self.closed


def done_message(line):
    """What a kernel's done line says: the exit code (0-255; 1 for any line
    that is not a kernel's, since the kernel's code can write to this pipe
    too) and which of stdout and stderr the code had closed (`lost`)."""
    try:
        message = json.loads(line[:MAX_DONE_LINE_BYTES])
        code = message.get("exit_code", 1)
        lost = message.get("lost") or []
    except (ValueError, AttributeError, RecursionError):
        return {"exit_code": 1, "lost": []}
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
        code = 1
    if not isinstance(lost, list):
        lost = []
    return {"exit_code": code, "lost": [name for name in ("stdout", "stderr") if name in lost]}


def ansi_c_quote(value):
    """Quotes for bash as $'...', so newlines stay inside one command line."""
    escaped = []
    for char in value:
        if char in "\\'":
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\r":
            escaped.append("\\r")
        elif ord(char) < 32 or ord(char) == 127:
            escaped.append("\\x%02x" % ord(char))
        else:
            escaped.append(char)
    return "$'" + "".join(escaped) + "'"


KERNEL_COMMANDS = {
    "python": [sys.executable, os.path.join(SANDBOX_DIR, "python_kernel.py")],
    "node": ["node", os.path.join(SANDBOX_DIR, "kernel.js")],
    "bash": ["bash", "--noprofile", "--norc", os.path.join(SANDBOX_DIR, "kernel.sh")],
}


class Kernel:
    """A long-lived interpreter in its own process group."""

    def __init__(self, kind):
        self.kind = kind
        self.process = None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        control_read, control_write = os.pipe()
        done_read, done_write = os.pipe()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        env = child_env({})
        env["SANDBOX_CTL_FD"] = str(control_read)
        env["SANDBOX_DONE_FD"] = str(done_write)
        self.process = subprocess.Popen(
            KERNEL_COMMANDS[self.kind],
            stdin=subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            cwd="/workspace",
            env=env,
            pass_fds=(control_read, done_write),
            start_new_session=True,
        )
        for fd in (control_read, done_write, out_write, err_write):
            os.close(fd)
        for fd in (done_read, out_read, err_read):
            os.set_blocking(fd, False)
        self.control = control_write
        self.done = done_read
        self.out = out_read
        self.err = err_read
        self.wait_ready()

    def wait_ready(self):
        """Waits for the kernel's first line on its done channel (it is
        loaded and waiting), so `ready` means ready to run code at once."""
        done = DoneChannel(self.done)
        deadline = time.monotonic() + KERNEL_START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.done], [], [], 0.1)
            if done.check(ready):
                if done.message is None:
                    log("%s kernel exited during start" % self.kind)
                return
        log("%s kernel did not start within %s s" % (self.kind, KERNEL_START_TIMEOUT_S))

    def stop(self):
        if self.process is None:
            return
        kill_group(self.process.pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self.control, self.done, self.out, self.err):
            try:
                os.close(fd)
            except OSError:
                pass
        self.process = None

    def restart(self):
        self.stop()
        self.start()

    def command(self, source, request):
        stdin_path = os.devnull
        if request.get("stdin"):
            stdin_path = STDIN_PATH
            with open(stdin_path, "w", encoding="utf-8") as handle:
                handle.write(request["stdin"])
        env = request.get("env") or {}
        if self.kind == "bash":
            exports = "".join("export %s=%s; " % (name, ansi_c_quote(value)) for name, value in env.items())
            line = "%s__msb_script=%s; __msb_stdin=%s" % (
                exports,
                shlex.quote(source),
                shlex.quote(stdin_path),
            )
        else:
            line = json.dumps({"path": source, "stdin_path": stdin_path, "env": env})
        return (line + "\n").encode("utf-8")

    def run(self, source, request, stop, stdout, stderr):
        """Returns (exit_code, signal, state_lost, output_lost)."""
        restarted = False
        if not self.alive():
            self.restart()
            restarted = True
        try:
            os.write(self.control, self.command(source, request))
        except OSError:
            self.restart()
            restarted = True
            os.write(self.control, self.command(source, request))
        streams = {self.out: stdout, self.err: stderr}
        done = DoneChannel(self.done)
        interrupted = pump(streams, stop, until_done=done, process=self.process)
        if interrupted:
            kill_group(self.process.pid, signal.SIGINT)
            # Further cancels of this request must not cut the grace short.
            grace = Stop(None, time.monotonic() + INTERRUPT_GRACE_S)
            if pump(streams, grace, until_done=done) or done.message is None:
                self.restart()
                return 137, signal.SIGKILL, True, []
            return 130, signal.SIGINT, restarted, done.message["lost"]
        if done.message is None:  # the kernel died (exit() in user code, a crash)
            drain_now(streams)
            returncode = self.process.wait()
            self.restart()
            if returncode < 0:
                return 128 - returncode, -returncode, True, []
            return returncode, None, True, []
        return done.message["exit_code"], None, restarted, done.message["lost"]


kernel = None


IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


MAX_OUTPUTS_SCANNED = 10000


def collect_artifacts(spec, since_ns):
    """Files written to the outputs folder since `since_ns`: images with
    their bytes (base64) up to the caps, everything else listed. Links and
    special files are skipped (opened without following links and without
    blocking), and at most MAX_OUTPUTS_SCANNED entries are looked at."""
    import base64
    import stat

    folder = spec.get("dir", "/outputs")
    max_files = int(spec.get("max_files", 10))
    max_bytes = int(spec.get("max_bytes", 8 << 20))
    found, scanned = [], 0
    for directory, _, names in os.walk(folder):
        for name in names:
            scanned += 1
            if scanned > MAX_OUTPUTS_SCANNED:
                break
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mtime_ns >= since_ns:
                found.append((path, info.st_size))
        if scanned > MAX_OUTPUTS_SCANNED:
            break
    found.sort()
    artifacts, used, omitted = [], 0, max(0, len(found) - max_files)
    for path, size in found[:max_files]:
        mime = IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
        entry = {"path": path, "size": size, "mime": mime or "application/octet-stream"}
        if mime and used + size <= max_bytes:
            data = read_regular_file(path, max_bytes - used)
            if data is not None:
                entry["data_base64"] = base64.b64encode(data).decode("ascii")
                used += len(data)
        artifacts.append(entry)
    return artifacts, omitted


def read_regular_file(path, limit):
    """The bytes of a regular file if it holds at most `limit` bytes, else
    None. Never follows a link, never blocks on a FIFO."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        from fileops import read_at_most

        return read_at_most(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def handle(request):
    started_ns = time.time_ns() - 1_000_000
    started = time.monotonic()
    timeout_s = max(1, int(request.get("timeout_ms", 30000))) / 1000.0
    limit = int(request.get("max_output_bytes", 1 << 20))
    stdout, stderr = Capture(limit), Capture(limit)
    progress = Progress(request.get("id"), started, stdout, stderr) if request.get("progress") else None
    stop = Stop(request.get("id"), started + timeout_s, progress)
    stop.cancelled = take_queued_cancel(request.get("id"))
    exit_code, signal_number, phase, state_lost, output_lost = 0, None, "run", False, []
    try:
        write_files(request.get("files") or [])
    except OSError as error:
        stderr.add(("cannot write program files: %s\n" % error).encode())
        exit_code, phase = 126, "setup"
    else:
        for step in request.get("steps") or []:
            phase = step.get("phase", "run")
            if progress is not None:
                progress.phase = phase
            exit_code, signal_number = run_step(step["argv"], request, stop, stdout, stderr)
            if stop.expired or stop.cancelled or exit_code != 0:
                break
        source = request.get("kernel_source")
        stopped = stop.expired or stop.cancelled
        if request.get("mode") == "kernel" and source and exit_code == 0 and not stopped:
            phase = "run"
            if progress is not None:
                progress.phase = phase
            exit_code, signal_number, state_lost, output_lost = kernel.run(source, request, stop, stdout, stderr)
    artifacts, omitted = [], 0
    if request.get("collect_outputs"):
        try:
            artifacts, omitted = collect_artifacts(request["collect_outputs"], started_ns)
        except OSError as error:
            log("cannot collect outputs: %r" % error)
    return {
        "type": "result",
        "id": request.get("id"),
        "artifacts": artifacts,
        "artifacts_omitted": omitted,
        "exit_code": exit_code,
        "signal": signal_number,
        "stdout": stdout.text(),
        "stderr": stderr.text(),
        "duration_ms": int((time.monotonic() - started) * 1000),
        "timed_out": stop.expired and not stop.cancelled,
        "cancelled": stop.cancelled,
        "truncated": stdout.truncated or stderr.truncated,
        "phase": phase,
        "state_lost": state_lost,
        "output_lost": output_lost,
    }


def take_queued_cancel(request_id):
    """True when a cancel for `request_id` arrived while an earlier request
    ran (it waits among the queued lines); removes it."""
    for index, line in enumerate(pending_lines):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("type") == "cancel" and message.get("id") == request_id:
            del pending_lines[index]
            return True
    return False


def next_line():
    if pending_lines:
        return pending_lines.pop(0)
    while b"\n" not in host_input:
        if host_closed:
            return None
        data = os.read(0, READ_CHUNK)
        if not data:
            return None
        host_input.extend(data)
    index = host_input.index(b"\n")
    line = bytes(host_input[:index])
    del host_input[: index + 1]
    return line


def serve(kernel_kind):
    global kernel
    seed_directories()
    os.makedirs(os.path.dirname(STDIN_PATH), exist_ok=True)
    if kernel_kind:
        kernel = Kernel(kernel_kind)
        kernel.start()
    send({"type": "ready", "protocol": PROTOCOL, "kernel": kernel_kind})
    while True:
        line = next_line()
        if line is None:
            return
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError as error:
            send({"type": "error", "message": "malformed request: %s" % error})
            continue
        kind = request.get("type")
        if kind == "ping":
            send({"type": "pong", "id": request.get("id"), "kernel_alive": bool(kernel and kernel.alive())})
            continue
        if kind == "cancel":
            continue  # nothing is running
        if kind == "file":
            send(handle_file_request(request))
            continue
        if request.get("mode") == "kernel" and kernel is None:
            kernel = Kernel(request.get("kernel") or "python")
        try:
            send(handle(request))
        except Exception as error:  # keep serving: report instead of dying
            log("request failed: %r" % error)
            send({"type": "error", "id": request.get("id"), "message": str(error)})


def become_init():
    """When the runner is the container's first process, it forks: the
    parent stays PID 1, reaps orphaned processes (zombies count against the
    pids limit) and passes termination signals on; the child serves. Both
    are non-dumpable (the flag survives fork), so no process the code can
    open in /proc holds the host's stream. Docker's own --init would be a
    dumpable process of the code's uid holding it."""
    child = os.fork()
    if child == 0:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda received, _frame: os.kill(child, received))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    make_undumpable()
    if os.getpid() == 1:
        become_init()
    kind = None
    if len(sys.argv) > 2 and sys.argv[1] == "--kernel":
        kind = sys.argv[2]
    serve(kind)
