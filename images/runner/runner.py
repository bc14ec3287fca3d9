#!/usr/bin/env python3
"""multilang-sandbox in-container runner: the main process of every sandbox
container. It serves the host's requests on its own stdin and stdout, the
container's attached stream, one at a time (the protocol and its spec:
runner_protocol.py): it runs programs as fresh processes or in a kernel
(runner_processes.py; Go and Rust builds that fix the program's imports:
runner_imports.py; TypeScript's types stripped by an esbuild kept running:
runner_esbuild.py), their output captured within caps
(runner_capture.py) and the files they write to the outputs folder
collected (runner_artifacts.py); it keeps the output and result of jobs
until the host collects them (runner_jobs.py); it answers file operations
(fileops.py) and job queries at once, even while a program runs; it logs
what ran so a restored session can run it again (runner_cells.py).

The runner is not dumpable (prctl PR_SET_DUMPABLE 0): code runs as the same
user, but cannot open its /proc/<pid>/fd, mem or environ, so it can neither
read the host's requests nor write replies of its own. Everything a kernel
process sends (output, its "done" line) is untrusted data: it is captured
within the caps and framed by the runner under the running request's id.

Only the Python standard library is used, so the runner works on any host
OS. It starts as `python3 -E -s`, so no installed package can shadow a
module it imports. Its modules are named runner_*: the Python kernel reads
PYTHONPATH and has this folder first on its path, where a plain name such
as `capture` would shadow a user's package of that name.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

import runner_protocol as protocol
from runner_artifacts import collect_artifacts
from runner_capture import Capture, Progress, Stop
from runner_cells import CellLog, replay
from runner_channel import HostChannel, log
from runner_jobs import Jobs
from runner_processes import make_kernel, run_step

STDIN_PATH = "/tmp/run/.stdin"
WORKSPACE = "/workspace"
PR_SET_DUMPABLE = 4


class Runner:
    """Serves the host on `channel`. `kernel_kind` is the kernel started at
    once (a session's, or a pooled Python container's), if any; kernels run
    in `workspace` and read a request's stdin from `stdin_path`."""

    def __init__(self, channel, kernel_kind=None, workspace=WORKSPACE, stdin_path=STDIN_PATH, under_own_init=False):
        self.channel = channel
        # Whether the runner is the child of its own init, PID 1 of the
        # container (it may then end every other process on `retire`).
        self.under_own_init = under_own_init
        self.retired = False
        self.kernel_kind = kernel_kind
        self.workspace = workspace
        self.stdin_path = stdin_path
        self.kernel = None
        self.jobs = Jobs()
        self.cells = CellLog()
        # esbuild's service, in an image that has esbuild (started in serve).
        self.esbuild = None

    def serve(self):
        """Says `ready`, then answers requests until the host closes the stream."""
        self.esbuild = start_esbuild_service()
        try:
            if self.kernel_kind:
                self.kernel = make_kernel(self.kernel_kind, self.workspace, self.stdin_path)
                self.kernel.start()
            self.channel.send(protocol.ready(self.kernel_kind))
            while True:
                line = self.channel.next_line()
                if line is None:
                    return
                line = line.strip()
                if line:
                    self.serve_line(line)
        finally:
            if self.esbuild is not None:
                self.esbuild.stop()

    def serve_line(self, line):
        try:
            request = protocol.parse_request(line)
        except protocol.ProtocolError as error:
            self.channel.send(protocol.error(str(error), error.request_id))
            return
        kind = request["type"]
        if self.retired and kind != "ping":
            self.channel.send(protocol.error("this container's request is over (it was retired)", request["id"]))
        elif kind == "retire":
            self.retire()
        elif kind == "ping":
            self.channel.send(protocol.pong(request["id"]))
        elif kind == "file":
            self.channel.send(answer_file(request))
        elif kind == "job":
            self.channel.send(self.jobs.answer(request))
        elif kind == "run":
            try:
                self.channel.send(self.run_logged(request))
            except Exception as error:  # keep serving: report instead of dying
                log("request failed: %r" % error)
                self.channel.send(protocol.error(str(error), request["id"]))
        elif kind == "cells":
            self.channel.send(self.cells.answer(request["id"]))
        elif kind == "replay":
            if not request["complete"]:
                # Rebuilt from a log that had lost cells: so has this one.
                self.cells.lost_one()
            try:
                self.channel.send(replay(request["id"], request["cells"], self.run_logged))
            except Exception as error:  # keep serving: report instead of dying
                log("replay failed: %r" % error)
                self.channel.send(protocol.error(str(error), request["id"]))
        # A cancel while nothing runs has nothing to stop.

    def retire(self):
        """The container's one request is over; the host removes the
        container when calls pause. Every other process ends now, as it
        would with the container, so nothing the code left behind runs on
        meanwhile; the runner exits (ending the container) if one outlives
        that."""
        self.retired = True
        if self.kernel is not None:
            self.kernel.stop()
        if self.esbuild is not None:
            self.esbuild.stop()
            self.esbuild = None
        if self.under_own_init and not end_other_processes():
            log("a process outlived the retire; ending the container")
            os._exit(1)

    # While a request runs, the runner is its Stop's `host`:

    def fds(self):
        return self.channel.fds()

    def listen(self, stop):
        """Host messages that arrived while a request runs: a cancel of it
        stops it, file, job and cells requests are answered at once, a run while
        a job runs is refused as busy, anything else waits its turn."""
        for line in self.channel.read_available():
            try:
                message = protocol.parse_request(line)
            except protocol.ProtocolError:
                self.channel.defer(line)
                continue
            if message["type"] == "cancel" and stop.request_id is not None and message["id"] == stop.request_id:
                stop.cancelled = True
            elif message["type"] == "file":
                self.channel.send(answer_file(message))
            elif message["type"] == "job":
                self.channel.send(self.jobs.answer(message))
            elif message["type"] == "cells":
                self.channel.send(self.cells.answer(message["id"]))
            elif message["type"] == "run" and self.jobs.running_job() is not None:
                self.channel.send(protocol.busy(message["id"], self.jobs.running_job().job_id))
            else:
                self.channel.defer(line)

    def run_logged(self, request):
        """Runs a checked `run` request and logs it (runner_cells.py);
        returns its `result`."""
        if request["mode"] == "kernel" and self.kernel is None:
            self.kernel = make_kernel(request["kernel"], self.workspace, self.stdin_path)
        try:
            result = self.run(request)
        except Exception:
            self.cells.lost_one()
            raise
        self.cells.record(request, result)
        return result

    def run(self, request):
        """Runs a checked `run` request; returns its `result` (kept too when
        the run is a job)."""
        started_ns = time.time_ns() - 1_000_000
        started = time.monotonic()
        limit = request["max_output_bytes"]
        stdout, stderr = Capture(limit), Capture(limit)
        self.jobs.start(request, stdout, stderr, started)
        try:
            result = self.run_captured(request, started_ns, started, stdout, stderr)
        except Exception as error:
            # A job must not stay "running" for ever; the caller reports it.
            self.jobs.end(failed_result(request["id"], error, started))
            raise
        self.jobs.end(result)
        return result

    def run_captured(self, request, started_ns, started, stdout, stderr):
        """Runs `request` with its output going to `stdout` and `stderr`."""
        request_id = request["id"]
        timeout_s = max(1, request["timeout_ms"]) / 1000.0
        progress = None
        if request.get("progress"):
            progress = Progress(request_id, started, stdout, stderr, self.channel.send)
        stop = Stop(request_id, started + timeout_s, self, progress)
        # A cancel that arrived while an earlier request ran waits among the deferred lines.
        stop.cancelled = self.channel.take_deferred(lambda line: is_cancel_of(line, request_id))
        exit_code, signal_number, phase, state_lost, output_lost = 0, None, "run", False, []
        notes = []
        try:
            write_files(request["files"])
        except OSError as error:
            stderr.add(("cannot write program files: %s\n" % error).encode())
            exit_code, phase = 126, "setup"
        else:
            for step in request["steps"]:
                phase = step["phase"]
                if progress is not None:
                    progress.phase = phase
                if step.get("fix_imports"):
                    exit_code, signal_number, fixed = fix_imports(step, request, stop, stdout, stderr)
                    notes.extend(fixed)
                elif step.get("transform") and step["transform"]["tool"] == "esbuild" and self.esbuild is not None:
                    exit_code, signal_number = self.transform(step, request, stop, stdout, stderr)
                else:
                    exit_code, signal_number = run_step(step["argv"], request, stop, stdout, stderr)
                if stop.expired or stop.cancelled or exit_code != 0:
                    break
            stopped = stop.expired or stop.cancelled
            if request["mode"] == "kernel" and exit_code == 0 and not stopped:
                phase = "run"
                if progress is not None:
                    progress.phase = phase
                exit_code, signal_number, state_lost, output_lost = self.kernel.run(
                    request["kernel_source"], request, stop, stdout, stderr
                )
        artifacts, omitted = [], 0
        if request.get("collect_outputs"):
            try:
                artifacts, omitted = collect_artifacts(request["collect_outputs"], started_ns)
            except OSError as error:
                log("cannot collect outputs: %r" % error)
        return protocol.result(request_id, {
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
            "artifacts": artifacts,
            "artifacts_omitted": omitted,
            "notes": notes,
        })

    def transform(self, step, request, stop, stdout, stderr):
        """A `transform` step through esbuild's service; the step's own argv
        when the service fails (it is not used again). Returns (exit_code, signal)."""
        from runner_esbuild import ServiceError

        try:
            exit_code, messages = self.esbuild.transform(step["transform"], stop.deadline)
        except ServiceError as error:
            log("esbuild service failed, running esbuild itself from now on: %s" % error)
            self.esbuild.stop()
            self.esbuild = None
            return run_step(step["argv"], request, stop, stdout, stderr)
        except OSError:  # the files: esbuild itself says what went wrong
            return run_step(step["argv"], request, stop, stdout, stderr)
        stderr.add(messages.encode("utf-8"))
        return exit_code, None


def start_esbuild_service():
    """esbuild's service, started when the image has esbuild (TypeScript);
    its module is loaded only then."""
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    for executable in (os.path.join(folder, "esbuild") for folder in folders if folder):
        if os.path.isfile(executable) and os.access(executable, os.X_OK):
            from runner_esbuild import EsbuildService

            return EsbuildService.started(executable)
    return None


def end_other_processes(attempts=100):
    """SIGKILLs every process of the container but init (PID 1) and the
    runner, again while new ones appear (a fork bomb's children); True once
    no other live process is left."""
    me = os.getpid()
    for _ in range(attempts):
        try:
            os.kill(-1, signal.SIGKILL)  # all but init and the caller
        except ProcessLookupError:
            return True
        if not [pid for pid in live_processes() if pid not in (1, me)]:
            return True
        time.sleep(0.001)
    return False


def live_processes():
    """The container's process ids, zombies left out (init reaps them)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                state = handle.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue  # ended meanwhile
        if state != b"Z":
            pids.append(int(entry))
    return pids


def failed_result(request_id, error, started):
    """The result kept for a job whose run failed inside the runner."""
    return protocol.result(request_id, {
        "exit_code": 1, "signal": None, "stdout": "", "stderr": "the runner failed: %s\n" % error,
        "duration_ms": int((time.monotonic() - started) * 1000), "timed_out": False, "cancelled": False,
        "truncated": False, "phase": "setup", "state_lost": False, "output_lost": [],
        "artifacts": [], "artifacts_omitted": 0,
    })


def is_cancel_of(line, request_id):
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(message, dict) and message.get("type") == "cancel" and message.get("id") == request_id


def answer_file(request):
    """Answers a `file` request (fileops.py, imported on first use: it is
    not needed to start, and the Python kernel never needs it)."""
    from fileops import handle_file_request

    return handle_file_request(request)


def fix_imports(step, request, stop, stdout, stderr):
    """Runs a build step that fixes the program's imports
    (runner_imports.py, imported on first use: only Go and Rust builds
    need it)."""
    from runner_imports import run_fixing_imports

    return run_fixing_imports(step, request, stop, stdout, stderr)


def write_files(files):
    for entry in files:
        path = entry["path"]
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(entry["content"])


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
    is_init = os.getpid() == 1
    if is_init:
        become_init()
    kind = None
    if len(sys.argv) > 2 and sys.argv[1] == "--kernel":
        kind = sys.argv[2]
    seed_directories()
    os.makedirs(os.path.dirname(STDIN_PATH), exist_ok=True)
    Runner(HostChannel(0, 1), kind, under_own_init=is_init).serve()
