#!/usr/bin/env python3
"""multilang-sandbox in-container runner.

The runner is the main process of every sandbox container. It speaks a
newline-delimited JSON protocol on its own stdin/stdout (the container's
attached stream), so no `docker exec` is ever needed to run code:

  runner -> host   {"type": "ready", "protocol": 1}
  host -> runner   {"type": "run", "id": "...", "files": [{"path", "content"}],
                    "steps": [{"phase": "build"|"run", "argv": [...]}],
                    "stdin": "...", "env": {...}, "cwd": "/workspace",
                    "timeout_ms": 30000, "max_output_bytes": 1048576}
  runner -> host   {"type": "result", "id": "...", "exit_code": 0,
                    "signal": null, "stdout": "...", "stderr": "...",
                    "duration_ms": 12, "timed_out": false,
                    "truncated": false, "phase": "run"}

Steps run one after another in their own process group; a failing build step
stops the request. The timeout covers all steps: when it expires the whole
process group is killed. Output beyond `max_output_bytes` per stream is
drained and dropped (so the program never blocks on a full pipe) and the
reply says `truncated`. Only the Python standard library is used, so the
runner works wherever the image has `python3`, whatever the host OS.
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

PROTOCOL = 1
READ_CHUNK = 65536
# After the main process of a step exits, how long to keep reading output
# from background processes it left behind before killing them.
DRAIN_AFTER_EXIT_S = 0.2


def send(message):
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]


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
            subprocess.run(["cp", "-a", source, destination], check=False)


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
            data = data[:room]
            self.truncated = True
        self.chunks.append(data)
        self.size += len(data)

    def text(self):
        return b"".join(self.chunks).decode("utf-8", "replace")


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
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


def run_step(argv, request, deadline, stdout, stderr):
    """Run one step. Returns (exit_code, signal, timed_out)."""
    stdin_data = request.get("stdin")
    env = dict(os.environ)
    env.pop("SANDBOX_SEED_DIRS", None)
    env.update(request.get("env") or {})
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=request.get("cwd") or "/workspace",
            env=env,
            start_new_session=True,
        )
    except OSError as error:
        stderr.add(("cannot start %s: %s\n" % (argv[0], error)).encode())
        return 127, None, False

    if stdin_data:
        threading.Thread(
            target=feed_stdin,
            args=(process.stdin, stdin_data.encode("utf-8")),
            daemon=True,
        ).start()

    streams = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
    open_fds = set(streams)
    timed_out = False
    drain_deadline = None
    while open_fds:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if drain_deadline is None and process.poll() is not None:
            drain_deadline = now + DRAIN_AFTER_EXIT_S
        if drain_deadline is not None and now >= drain_deadline:
            break
        wait = min(deadline, drain_deadline or deadline) - now
        ready, _, _ = select.select(list(open_fds), [], [], min(wait, 0.05))
        for fd in ready:
            data = os.read(fd, READ_CHUNK)
            if data:
                streams[fd].add(data)
            else:
                open_fds.discard(fd)

    kill_group(process.pid)
    process.stdout.close()
    process.stderr.close()
    returncode = process.wait()
    if returncode < 0:
        return 128 - returncode, -returncode, timed_out
    return returncode, None, timed_out


def handle(request):
    started = time.monotonic()
    timeout_s = max(1, int(request.get("timeout_ms", 30000))) / 1000.0
    deadline = started + timeout_s
    limit = int(request.get("max_output_bytes", 1 << 20))
    stdout, stderr = Capture(limit), Capture(limit)
    exit_code, signal_number, timed_out, phase = 0, None, False, "run"
    try:
        write_files(request.get("files") or [])
    except OSError as error:
        stderr.add(("cannot write program files: %s\n" % error).encode())
        exit_code, phase = 126, "setup"
    else:
        for step in request.get("steps") or []:
            phase = step.get("phase", "run")
            exit_code, signal_number, timed_out = run_step(
                step["argv"], request, deadline, stdout, stderr
            )
            if timed_out or exit_code != 0:
                break
    return {
        "type": "result",
        "id": request.get("id"),
        "exit_code": exit_code,
        "signal": signal_number,
        "stdout": stdout.text(),
        "stderr": stderr.text(),
        "duration_ms": int((time.monotonic() - started) * 1000),
        "timed_out": timed_out,
        "truncated": stdout.truncated or stderr.truncated,
        "phase": phase,
    }


def main():
    seed_directories()
    send({"type": "ready", "protocol": PROTOCOL})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError as error:
            send({"type": "error", "message": "malformed request: %s" % error})
            continue
        if request.get("type") == "ping":
            send({"type": "pong", "id": request.get("id")})
            continue
        try:
            send(handle(request))
        except Exception as error:  # keep serving: report instead of dying
            log("request failed: %r" % error)
            send({"type": "error", "id": request.get("id"), "message": str(error)})


if __name__ == "__main__":
    main()
