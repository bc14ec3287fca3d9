"""The host <-> runner protocol, version 6: its spec, the check of every
host message, and the runner's own messages.

Newline-delimited JSON on the runner's stdin (host -> runner) and stdout
(runner -> host): the container's attached stream, so no `docker exec` is
ever needed. Golden examples of every message are in fixtures/
(host_to_runner/, runner_to_host/); the tests of both sides read them
(test_protocol.py here, src/core/protocol/tests.rs on the host).

Defaults live on the host: it sends every setting, and a message that lacks
a required field, or has one of the wrong type, is answered with `error`.
The optional fields below are features that are off when absent.

  runner -> host  {"type": "ready", "protocol": 6,
                   "kernel": "python"|"node"|"bash"|"node-main"|null}
                   once, when the runner (and its kernel, if it was started
                   with one) is loaded.

  host -> runner  {"type": "run", "id": "...", "mode": "exec"|"kernel",
                   "files": [{"path": "/tmp/run/main.py", "content": "..."}],
                   "steps": [{"phase": "build"|"run", "argv": [...],
                              optional: "fix_imports": {
                                "tool": "goimports"|"rustc",
                                "source": "/tmp/run/main.go",
                                "before_build": true},
                              optional: "transform": {
                                "tool": "esbuild",
                                "source": "/tmp/run/main.ts",
                                "output": "/tmp/run/main.mjs",
                                "flags": ["--format=esm", ...]}}],
                   "env": {"NAME": "value"}, "cwd": "/workspace",
                   "timeout_ms": 30000, "max_output_bytes": 1048576,
                   optional:
                   "kernel": "python"|"node"|"bash"|"node-main", (kernel mode: both
                   "kernel_source": "/tmp/run/cell.py", required)
                   "stdin": "...",
                   "collect_outputs": {"dir": "/outputs", "max_files": 10,
                                       "max_bytes": 8388608},
                   "progress": true,
                   "keep": true, "label": "first line of the code"}
                  `exec` runs each step as a fresh process group and stops
                  at the first that fails or is stopped; `kernel` runs the
                  steps (builds), then has the kernel run `kernel_source`.
                  A step with `fix_imports` is a build that adds missing
                  imports to `source` (and drops unused Go ones) with the
                  tool and tries once more (runner_imports.py); goimports
                  runs before the first build too with `before_build`.
                  A step with `transform` is a build that turns `source`
                  into `output` as its argv would (`esbuild <source>
                  --outfile=<output> <flags>`), through the tool's service
                  when the runner keeps one running (runner_esbuild.py);
                  its argv runs when it does not.
                  `keep` makes the run a job from the start (below).
  runner -> host  {"type": "progress", "id": "...", "elapsed_ms": 1000,
                   "phase": "build"|"run", "stdout_bytes": 10,
                   "stderr_bytes": 0, "tail": "last lines of output"}
                  each second while it runs, when it asked for progress.
  runner -> host  {"type": "result", "id": "...", "exit_code": 0,
                   "signal": null, "stdout": "...", "stderr": "...",
                   "duration_ms": 12, "timed_out": false, "cancelled": false,
                   "truncated": false, "phase": "setup"|"build"|"run",
                   "state_lost": false, "output_lost": [],
                   "artifacts": [{"path": "/outputs/plot.png", "size": 1234,
                                  "mime": "image/png", "data_base64": "..."}],
                   "artifacts_omitted": 0,
                   optional: "notes": ["Added imports: fmt (goimports)."]}
                  exit_code is 128+N when signal N (`signal`) ended it;
                  `phase` is where it stopped (`setup`: its files could not
                  be written); `truncated`: a stream passed max_output_bytes
                  and the rest was dropped; `state_lost`: the kernel was
                  restarted, its variables are gone; `output_lost`: the
                  streams ("stdout", "stderr") the code closed, so what it
                  printed after was lost; `artifacts`: files written to
                  collect_outputs' dir during the request (bytes only for
                  images within max_bytes), `artifacts_omitted` those beyond
                  max_files.

  host -> runner  {"type": "cancel", "id": "..."}
                  stops the running request with this id (its result then
                  says `cancelled`); a cancel that arrives while an earlier
                  request runs is kept for the request it names; one for no
                  running request is dropped.
  host -> runner  {"type": "job", "id": "...", "op": "keep"|"read"|"forget"|"list",
                   "job": "<the run's id>" (all but list),
                   optional: "label": "..." (keep)}
  runner -> host  {"type": "job", "id": "...", "jobs": [
                    {"job": "...", "label": "...", "state": "running"|"done",
                     "started_ms": 1700000000000, "elapsed_ms": 1500,
                     "stdout_bytes": 10, "stderr_bytes": 0,
                     read only: "stdout": "...", "stderr": "...",
                     read, once done: "result": {the result message's
                                      fields but type, stdout and stderr
                                      empty},
                                      "unread": false}]}
                  Jobs (runner_jobs.py) are runs whose output and result
                  the runner keeps until the host forgets them: a run sent
                  with `keep`, or the running one after `keep` names it.
                  `read` returns the output not read before (whole UTF-8
                  characters, at most 1 MiB per stream: `unread` says more
                  is waiting) and, once it ended, its result; `forget`
                  drops a finished job; `list` lists the kept jobs. `jobs`
                  is empty when the runner keeps no such job (for `keep`:
                  the run has ended and its result was sent). Answered at
                  once, while a program runs too.
  runner -> host  {"type": "busy", "id": "...", "job": "..."}
                  the reply to a `run` that arrived while a job runs: it
                  was not run (jobs never hold other runs queued).
  host -> runner  {"type": "ping", "id": "..."}  -> {"type": "pong", "id": "..."}
  host -> runner  {"type": "cells", "id": "..."}
  runner -> host  {"type": "cells", "id": "...", "complete": true,
                   "cells": [{"request": {"mode": ..., "files": ...,
                                          "steps": ..., "env": ..., ...},
                              "exit_code": 0, "stdout_sha256": "...",
                              "stderr_sha256": "...", "duration_ms": 12,
                              "job": false}]}
                  the runs since the runner started, oldest first, kernel
                  runs before a kernel lost its state left out
                  (runner_cells.py); `complete` is false when the oldest
                  were dropped (the log's caps) or a run failed inside the
                  runner. Answered at once, while a program runs too.
  host -> runner  {"type": "replay", "id": "...", "cells": [...as above],
                   "complete": true}
  runner -> host  {"type": "replayed", "id": "...", "replayed": 3,
                   "failed": [{"cell": 2, "exit_code": 1, "stderr": "..."}],
                   "differed": [1], "cancelled": false, "duration_ms": 40}
                  runs the cells that succeeded again, in order, each as a
                  run under the replay's id (no progress, no outputs; a
                  cancel of that id ends the replay: `cancelled`); they
                  join this runner's log. `cell` and `differed` are indexes
                  into the `cells` sent; `failed`: those that now fail,
                  with the last 2000 characters of their stderr;
                  `differed`: those whose stdout is not what it was. What
                  a cell does to files it does again. `complete: false`
                  (the cells are an incomplete log) makes this runner's
                  log incomplete too.
  host -> runner  {"type": "retire", "id": "..."}
                  the container's one request is over and the host removes
                  the container later (when calls pause): the runner ends
                  every other process in the container (init excepted) at
                  once, as the container's end would (when it runs under
                  its own init, PID 1), and answers nothing; later
                  requests but `ping` are refused with `error`. A runner
                  that cannot end them all exits, ending the container.
  host -> runner  {"type": "file", "id": "...",
                   "op": "read"|"write"|"mkdir"|"list"|"delete",
                   "path": "/workspace/a.txt",
                   "roots": [{"path": "/workspace", "writable": true}],
                   "max_bytes": 10485760, "max_entries": 20000,
                   optional: "content_base64": "..."   (write)}
                  -> {"type": "file", "id": "...", ...}: see fileops.py.
                  Answered at once, between reads of a running program's
                  output too (not while a kernel starts or program files
                  are written).
  runner -> host  {"type": "error", "id": "...", "message": "..."}
                  for a message that breaks this spec or a request that
                  failed inside the runner; without "id" when the line was
                  not a JSON object.
"""

import json

PROTOCOL = 6
KERNELS = ("python", "node", "bash", "node-main")
FILE_OPS = ("read", "write", "mkdir", "list", "delete")
JOB_OPS = ("keep", "read", "forget", "list")
STEP_PHASES = ("build", "run")
IMPORT_TOOLS = ("goimports", "rustc")
TRANSFORM_TOOLS = ("esbuild",)


class ProtocolError(ValueError):
    """A host message that breaks the spec; `request_id` when it has one."""

    def __init__(self, message, request_id=None):
        super().__init__(message)
        self.request_id = request_id


def parse_request(line):
    """The host's message on `line` (bytes), checked against the spec."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise ProtocolError("malformed request: %s" % error)
    if not isinstance(message, dict):
        raise ProtocolError("malformed request: not a JSON object")
    request_id = message.get("id") if isinstance(message.get("id"), str) else None
    try:
        check = CHECKS.get(message.get("type"))
        if check is None:
            raise ValueError("unknown type %r" % (message.get("type"),))
        field(message, "id", str)
        check(message)
    except ValueError as error:
        raise ProtocolError("invalid %s request: %s" % (message.get("type"), error), request_id)
    return message


def field(message, name, kind, optional=False, choices=None):
    """message[name], checked to be a `kind` (and one of `choices`)."""
    if name not in message:
        if optional:
            return None
        raise ValueError("%r is missing" % name)
    value = message[name]
    if kind is int:
        right = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        right = isinstance(value, kind)
    if not right or (choices is not None and value not in choices):
        raise ValueError("%r is not a valid %s: %r" % (name, kind.__name__, value))
    return value


def objects(message, name, optional=False):
    """message[name] as a list of JSON objects."""
    items = field(message, name, list, optional)
    if items is not None and not all(isinstance(item, dict) for item in items):
        raise ValueError("%r must hold objects" % name)
    return items or []


def strings(values, what):
    if not all(isinstance(value, str) for value in values):
        raise ValueError("%s must be strings" % what)


def check_run(message):
    mode = field(message, "mode", str, choices=("exec", "kernel"))
    for entry in objects(message, "files"):
        field(entry, "path", str)
        field(entry, "content", str)
    for step in objects(message, "steps"):
        field(step, "phase", str, choices=STEP_PHASES)
        argv = field(step, "argv", list)
        if not argv:
            raise ValueError("a step's argv is empty")
        strings(argv, "argv")
        fix = field(step, "fix_imports", dict, optional=True)
        if fix is not None:
            field(fix, "tool", str, choices=IMPORT_TOOLS)
            field(fix, "source", str)
            field(fix, "before_build", bool)
        transform = field(step, "transform", dict, optional=True)
        if transform is not None:
            field(transform, "tool", str, choices=TRANSFORM_TOOLS)
            field(transform, "source", str)
            field(transform, "output", str)
            strings(field(transform, "flags", list), "transform flags")
    env = field(message, "env", dict)
    strings(list(env) + list(env.values()), "env names and values")
    field(message, "cwd", str)
    field(message, "timeout_ms", int)
    field(message, "max_output_bytes", int)
    kernel_mode = mode == "kernel"
    field(message, "kernel", str, optional=not kernel_mode, choices=KERNELS)
    field(message, "kernel_source", str, optional=not kernel_mode)
    field(message, "stdin", str, optional=True)
    field(message, "progress", bool, optional=True)
    field(message, "keep", bool, optional=True)
    field(message, "label", str, optional=True)
    outputs = field(message, "collect_outputs", dict, optional=True)
    if outputs is not None:
        field(outputs, "dir", str)
        field(outputs, "max_files", int)
        field(outputs, "max_bytes", int)


def check_file(message):
    field(message, "op", str, choices=FILE_OPS)
    field(message, "path", str)
    for root in objects(message, "roots"):
        field(root, "path", str)
        field(root, "writable", bool)
    field(message, "max_bytes", int)
    field(message, "max_entries", int)
    field(message, "content_base64", str, optional=True)


def check_replay(message):
    field(message, "complete", bool)
    for index, cell in enumerate(objects(message, "cells")):
        try:
            check_run(field(cell, "request", dict))
            field(cell, "exit_code", int)
            field(cell, "stdout_sha256", str)
            field(cell, "stderr_sha256", str)
        except ValueError as error:
            raise ValueError("cell %d: %s" % (index, error))


def check_job(message):
    op = field(message, "op", str, choices=JOB_OPS)
    field(message, "job", str, optional=op == "list")
    field(message, "label", str, optional=True)


CHECKS = {
    "run": check_run,
    "file": check_file,
    "job": check_job,
    "cancel": lambda message: None,
    "ping": lambda message: None,
    "retire": lambda message: None,
    "cells": lambda message: None,
    "replay": check_replay,
}


# ---------------------------------------------------------------- runner -> host


def ready(kernel):
    return {"type": "ready", "protocol": PROTOCOL, "kernel": kernel}


def pong(request_id):
    return {"type": "pong", "id": request_id}


def error(text, request_id=None):
    """An `error`; without "id" when the request had none."""
    message = {"type": "error"}
    if request_id is not None:
        message["id"] = request_id
    message["message"] = text
    return message


def progress(request_id, elapsed_ms, phase, stdout_bytes, stderr_bytes, tail):
    return {
        "type": "progress",
        "id": request_id,
        "elapsed_ms": elapsed_ms,
        "phase": phase,
        "stdout_bytes": stdout_bytes,
        "stderr_bytes": stderr_bytes,
        "tail": tail,
    }


def job_status(job_id, label, state, started_ms, elapsed_ms, stdout_bytes, stderr_bytes):
    return {
        "job": job_id,
        "label": label,
        "state": state,
        "started_ms": started_ms,
        "elapsed_ms": elapsed_ms,
        "stdout_bytes": stdout_bytes,
        "stderr_bytes": stderr_bytes,
    }


def jobs_reply(request_id, jobs):
    return {"type": "job", "id": request_id, "jobs": jobs}


def busy(request_id, job_id):
    return {"type": "busy", "id": request_id, "job": job_id}


def result(request_id, outcome):
    """The `result` of a run; `outcome` has every other field."""
    message = {"type": "result", "id": request_id}
    for name in RESULT_FIELDS:
        message[name] = outcome[name]
    if outcome.get("notes"):
        message["notes"] = outcome["notes"]
    return message


RESULT_FIELDS = (
    "exit_code",
    "signal",
    "stdout",
    "stderr",
    "duration_ms",
    "timed_out",
    "cancelled",
    "truncated",
    "phase",
    "state_lost",
    "output_lost",
    "artifacts",
    "artifacts_omitted",
)
