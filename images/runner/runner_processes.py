"""The processes a request runs: each step as a fresh process group, and the
long-lived kernels (python_kernel.py, kernel.js, kernel.sh) that keep
variables, imports, functions, the working directory and the environment
between requests. On timeout or cancel a kernel is interrupted (SIGINT)
first, once it has said it runs the cell (an interrupt sooner would be
lost); if it does not stop within a grace period it is killed and
restarted, and the result says `state_lost`.

Everything a kernel process sends (output, its "done" line) is untrusted
data: the code runs in it and can write to any of its pipes.
"""

import json
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time

from runner_capture import READ_CHUNK, Stop, drain_now, pump
from runner_channel import log

SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))
# How long an interrupted kernel may take to stop before it is killed.
INTERRUPT_GRACE_S = 2.0
# How long a kernel may take to load before the runner reports ready anyway.
KERNEL_START_TIMEOUT_S = 30
# Most bytes a kernel's "done" line may have (it carries only an exit code).
MAX_DONE_LINE_BYTES = 4096
# What a kernel writes on its done pipe once a cell runs and an interrupt
# would stop it (an interrupt sooner would be lost, and the cell run on).
STARTED_LINE = b'{"started": true}'


def kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


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


def child_env(extra):
    """The runner's environment for a child, with `extra` on top."""
    env = dict(os.environ)
    env.pop("SANDBOX_SEED_DIRS", None)
    env.update(extra)
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
            cwd=request["cwd"],
            env=child_env(request["env"]),
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
        # The kernel said it is running the cell: an interrupt now stops it.
        self.started = False

    def fds(self):
        return [] if self.closed else [self.fd]

    def check(self, ready):
        """Reads what is ready; True once the request is over (its done line,
        or the pipe closed). A `started` line on the way only sets `started`."""
        if self.fd in ready and not self.closed:
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                data = None
            if data == b"":
                self.closed = True
            elif data:
                self.buffer += data
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            if line.strip() == STARTED_LINE:
                self.started = True
                continue
            self.message = done_message(line)
            return True
        if len(self.buffer) > MAX_DONE_LINE_BYTES:
            # Not a kernel's line: code wrote to the channel. The request is
            # over; what it said is not believed.
            self.buffer = b""
            self.message = {"exit_code": 1, "lost": []}
            return True
        return self.closed

    def over(self):
        return self.message is not None or self.closed


class StartWatch:
    """Waits on a DoneChannel until the kernel has started the cell (or the
    request is over): only then can an interrupt stop it."""

    def __init__(self, done):
        self.done = done

    def fds(self):
        return self.done.fds()

    def check(self, ready):
        return self.done.check(ready) or self.done.started


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
    "node-main": ["node", os.path.join(SANDBOX_DIR, "node_main.js")],
}


def make_kernel(kind, workspace, stdin_path):
    """The kernel of `kind`: a long-lived interpreter, or (`node-main`) a
    program started ahead of its one request."""
    if kind == "node-main":
        return WarmProgram(kind, workspace, stdin_path)
    return Kernel(kind, workspace, stdin_path)


class Kernel:
    """A long-lived interpreter in its own process group, started in
    `workspace`; a request's stdin reaches it through the file `stdin_path`."""

    # The kernel's own stdin (a request's stdin is a file it opens).
    stdin = subprocess.DEVNULL

    def __init__(self, kind, workspace, stdin_path):
        self.kind = kind
        self.workspace = workspace
        self.stdin_path = stdin_path
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
            stdin=self.stdin,
            stdout=out_write,
            stderr=err_write,
            cwd=self.workspace,
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
            stdin_path = self.stdin_path
            with open(stdin_path, "w", encoding="utf-8") as handle:
                handle.write(request["stdin"])
        env = request["env"]
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
        # A cancel that came with the request: the cell is not sent (an
        # interrupt the kernel gets before it reads the cell would be lost,
        # and the cell would run on).
        stop.host.listen(stop)
        if stop.cancelled:
            return 130, signal.SIGINT, restarted, []
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
            # Further cancels of this request must not cut the grace short.
            grace = Stop(None, time.monotonic() + INTERRUPT_GRACE_S, stop.host)
            if not done.over() and not done.started:
                pump(streams, grace, until_done=StartWatch(done))
            if not done.over():
                kill_group(self.process.pid, signal.SIGINT)
                pump(streams, grace, until_done=done)
            if done.message is None:
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



class WarmProgram(Kernel):
    """A program's interpreter started ahead of its one request (Node.js in
    a pooled container: node_main.js), so a stateless execute does not pay
    its start-up. The request turns it into the program itself: the run is
    over when the process ends, and its exit status is the result, as for a
    step. Its stdin is a pipe that carries the request's stdin. It is never
    reused: a second request, or one after it died, starts a fresh one."""

    stdin = subprocess.PIPE

    def start(self):
        super().start()
        # Whether a thread now owns the process's stdin (it closes it).
        self.feeding = False

    def stop(self):
        if self.process is not None and not self.feeding:
            self.process.stdin.close()
        super().stop()

    def run(self, source, request, stop, stdout, stderr):
        """Returns (exit_code, signal, state_lost, output_lost) like a
        kernel's run; a program has no state to lose."""
        if not self.alive():
            self.restart()
        stop.host.listen(stop)
        if stop.cancelled:
            return 130, signal.SIGINT, False, []
        line = json.dumps({"path": source, "env": request["env"], "cwd": request["cwd"]}) + "\n"
        try:
            os.write(self.control, line.encode("utf-8"))
        except OSError:  # it died since the check
            self.restart()
            os.write(self.control, line.encode("utf-8"))
        process = self.process
        self.feeding = True
        threading.Thread(
            target=feed_stdin,
            args=(process.stdin, (request.get("stdin") or "").encode("utf-8")),
            daemon=True,
        ).start()
        pump({self.out: stdout, self.err: stderr}, stop, process=process)
        kill_group(process.pid)
        returncode = process.wait()
        # Never reused: a later request gets a fresh process.
        self.stop()
        if returncode < 0:
            return 128 - returncode, -returncode, False, []
        return returncode, None, False, []
