"""The log of what ran in a container since the runner started, so a
session restored from a snapshot, or forked, can rebuild its interpreter
state by running the same cells again in a fresh kernel (memory
checkpoints, CRIU, do not work on our machines' kernel).

Each entry is a run as the host sent it (files, steps, kernel, env, stdin,
working directory, limits; not its id, progress, outputs or job settings)
and how it ended: its exit code, SHA-256 digests of its stdout and stderr,
how long it took and whether it was a job. Runs that went to the kernel and
runs of fresh processes (a session's `language: bash` side commands,
package installs) are both kept, in order. When the kernel loses its state
(a restart), the kernel runs before it are dropped: replaying them would
bring back what the live session no longer had. The log holds at most
MAX_CELLS entries and MAX_LOG_BYTES of their requests (as JSON); past that
it keeps the newest and says it is incomplete, as it does when a run failed
inside the runner (a replay of it cannot rebuild the whole state).

`replay` runs the successful entries of a list the host sends (the log, or
part of it) in order, each under the replay's own id so a cancel of the
replay stops it, and reports how many ran, which failed now and which
printed something else than before. What a replayed run does to files it
does again: the host restores files after a replay.
"""

import hashlib
import json
import time

MAX_CELLS = 1000
MAX_LOG_BYTES = 16 * 1024 * 1024
# How much of a failed replayed cell's stderr its report keeps (the end).
STDERR_TAIL = 2000
# The parts of a run request a replay needs.
KEPT_FIELDS = ("mode", "files", "steps", "env", "cwd", "timeout_ms", "max_output_bytes", "kernel", "kernel_source", "stdin")


def digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def kept(request):
    """The parts of a run request a replay needs."""
    return {name: request[name] for name in KEPT_FIELDS if name in request}


def cell_of(request, result):
    """The log entry of `request`, which ended with `result`."""
    return {
        "request": kept(request),
        "exit_code": result["exit_code"],
        "stdout_sha256": digest(result["stdout"]),
        "stderr_sha256": digest(result["stderr"]),
        "duration_ms": result["duration_ms"],
        "job": bool(request.get("keep")),
    }


def size_of(cell):
    return len(json.dumps(cell["request"]))


class CellLog:
    def __init__(self):
        self.cells = []
        # Each cell's request size (as JSON), measured once when it is added.
        self.sizes = []
        self.complete = True

    @property
    def size(self):
        return sum(self.sizes)

    def record(self, request, result):
        """Adds a finished run; a kernel that lost its state drops the
        kernel runs before it."""
        if result.get("state_lost"):
            kept = [(cell, size) for cell, size in zip(self.cells, self.sizes) if cell["request"]["mode"] != "kernel"]
            self.cells = [cell for cell, _ in kept]
            self.sizes = [size for _, size in kept]
        cell = cell_of(request, result)
        self.cells.append(cell)
        self.sizes.append(size_of(cell))
        while self.cells and (len(self.cells) > MAX_CELLS or self.size > MAX_LOG_BYTES):
            del self.cells[0], self.sizes[0]
            self.complete = False

    def lost_one(self):
        """A run failed inside the runner: what it did is not in the log."""
        self.complete = False

    def answer(self, request_id):
        """The `cells` answer: every entry, and whether the log is whole."""
        return {"type": "cells", "id": request_id, "cells": self.cells, "complete": self.complete}


def replay(request_id, cells, run):
    """Runs each successful cell of `cells` again with `run(request)` (which
    returns its result), in order, under `request_id`; the `replayed`
    answer. A cell that ends otherwise than with exit code 0 now is
    `failed` (with the end of its stderr); one that prints other output
    than before is `differed`; a cancel ends the replay (`cancelled`)."""
    started = time.monotonic()
    replayed, failed, differed, cancelled = 0, [], [], False
    for index, cell in enumerate(cells):
        if cell["exit_code"] != 0:
            continue
        try:
            result = run(dict(kept(cell["request"]), type="run", id=request_id))
        except Exception as error:  # reported with the cell; the replay goes on
            result = {"exit_code": 1, "stdout": "", "stderr": "the runner failed: %s" % error, "cancelled": False}
        replayed += 1
        if result["cancelled"]:
            cancelled = True
            break
        if result["exit_code"] != 0:
            failed.append({"cell": index, "exit_code": result["exit_code"], "stderr": result["stderr"][-STDERR_TAIL:]})
        elif digest(result["stdout"]) != cell["stdout_sha256"]:
            differed.append(index)
    return {
        "type": "replayed",
        "id": request_id,
        "replayed": replayed,
        "failed": failed,
        "differed": differed,
        "cancelled": cancelled,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
