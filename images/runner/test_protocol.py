"""Tests of the runner's side of the protocol against the golden messages in
fixtures/ (standard library only; run by .ci/run with
`python3 -m unittest discover -s images/runner`). The host's tests
(src/core/protocol/tests.rs) check the same files from the other side.

Every host -> runner fixture must pass the runner's check of requests, and
every field of the minimal run and file fixtures is required. Every
runner -> host fixture must have the keys and value types of a message the
runner really sends: a Runner serves requests over pipes, running real
processes (and a real Python kernel) under temporary folders."""

import base64
import json
import os
import sys
import tempfile
import unittest

import runner_capture
import runner_protocol as protocol
from runner import Runner
from runner_channel import HostChannel
from test_jobs import LiveRunner, wait_until

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PYTHON = sys.executable


def fixtures(direction):
    folder = os.path.join(FIXTURES, direction)
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), "rb") as handle:
                found[name[: -len(".json")]] = handle.read()
    return found


def shape(value):
    """The keys and JSON types of `value`, not its values (a list: the set
    of its items' shapes)."""
    if isinstance(value, dict):
        return tuple(sorted((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", frozenset(shape(item) for item in value))
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if value is None:
        return "null"
    return type(value).__name__


class HostMessagesTest(unittest.TestCase):
    def test_every_host_fixture_is_accepted(self):
        found = fixtures("host_to_runner")
        self.assertGreaterEqual(len(found), 9, sorted(found))
        for name, text in found.items():
            with self.subTest(name):
                message = protocol.parse_request(text)
                self.assertEqual(message, json.loads(text))
                self.assertEqual(name.split("_")[0], message["type"])

    def test_every_field_of_the_minimal_requests_is_required(self):
        """The host sends every setting: a request without one is refused
        (with its id, so the host hears why), never run with a default."""
        found = fixtures("host_to_runner")
        for name in ("run_exec", "file_read", "cancel", "ping", "job_read"):
            minimal = json.loads(found[name])
            for key in minimal:
                with self.subTest(name=name, key=key):
                    partial = {k: v for k, v in minimal.items() if k != key}
                    with self.assertRaises(protocol.ProtocolError) as refused:
                        protocol.parse_request(json.dumps(partial).encode())
                    self.assertEqual(refused.exception.request_id, partial.get("id"))
        kernel = json.loads(found["run_kernel"])
        for key in ("kernel", "kernel_source"):
            with self.subTest(key=key), self.assertRaises(protocol.ProtocolError):
                protocol.parse_request(json.dumps({k: v for k, v in kernel.items() if k != key}).encode())

    def test_wrong_types_and_kinds_are_refused(self):
        run = json.loads(fixtures("host_to_runner")["run_kernel"])
        for key, bad in (
            ("timeout_ms", "30000"),
            ("timeout_ms", True),
            ("max_output_bytes", -1),
            ("mode", "fork"),
            ("kernel", "ruby"),
            ("env", {"A": 1}),
            ("steps", [{"phase": "test", "argv": ["x"]}]),
            ("steps", [{"phase": "run", "argv": []}]),
            ("collect_outputs", {"dir": "/outputs", "max_files": 10}),
            ("progress", "yes"),
            ("steps", [{"phase": "build", "argv": ["x"], "fix_imports": {"tool": "gofmt", "source": "/a", "before_build": True}}]),
            ("steps", [{"phase": "build", "argv": ["x"], "fix_imports": {"tool": "rustc", "source": "/a"}}]),
            ("steps", [{"phase": "build", "argv": ["x"], "transform": {"tool": "tsc", "source": "/a", "output": "/b", "flags": []}}]),
            ("steps", [{"phase": "build", "argv": ["x"], "transform": {"tool": "esbuild", "source": "/a", "output": "/b", "flags": [1]}}]),
            ("steps", [{"phase": "build", "argv": ["x"], "transform": {"tool": "esbuild", "source": "/a", "flags": []}}]),
        ):
            with self.subTest(key=key, bad=bad), self.assertRaises(protocol.ProtocolError):
                protocol.parse_request(json.dumps(dict(run, **{key: bad})).encode())
        for line in (b"[]", b"not json", b'{"type": "exec", "id": "x"}'):
            with self.subTest(line=line), self.assertRaises(protocol.ProtocolError):
                protocol.parse_request(line)


class RunnerMessagesTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.TemporaryDirectory()
        base = os.path.realpath(self.top.name)
        self.workspace = os.path.join(base, "workspace")
        self.outputs = os.path.join(base, "outputs")
        for folder in (self.workspace, self.outputs):
            os.mkdir(folder)
        self.sent = {}  # fixture name -> the runner's message

    def tearDown(self):
        self.top.cleanup()

    def serve(self, requests, kernel=None):
        """The runner's messages after serving `requests` (then the host
        closes the stream)."""
        host_read, host_write = os.pipe()
        with tempfile.TemporaryFile() as out:
            with os.fdopen(host_write, "wb") as pipe:
                for request in requests:
                    pipe.write(request if isinstance(request, bytes) else json.dumps(request).encode())
                    pipe.write(b"\n")
            runner = Runner(
                HostChannel(host_read, out.fileno()),
                kernel,
                workspace=self.workspace,
                stdin_path=os.path.join(self.workspace, ".stdin"),
            )
            try:
                runner.serve()
            finally:
                os.close(host_read)
                if runner.kernel is not None:
                    runner.kernel.stop()
            out.seek(0)
            return [json.loads(line) for line in out.read().splitlines()]

    def run_request(self, request_id, steps, **extra):
        request = {
            "type": "run",
            "id": request_id,
            "mode": "exec",
            "files": [],
            "steps": [step if isinstance(step, dict) else {"phase": step[0], "argv": step[1]} for step in steps],
            "env": {},
            "cwd": self.workspace,
            "timeout_ms": 10000,
            "max_output_bytes": 1 << 20,
        }
        request.update(extra)
        return request

    def python(self, code, phase="run"):
        return (phase, [PYTHON, "-c", code])

    def file_request(self, request_id, op, path, **extra):
        request = {
            "type": "file",
            "id": request_id,
            "op": op,
            "path": os.path.join(self.workspace, path),
            "roots": [{"path": self.workspace, "writable": True}],
            "max_bytes": 1 << 20,
            "max_entries": 100,
        }
        request.update(extra)
        return request

    def test_the_runners_messages_have_the_fixtures_shapes(self):
        self.exec_runs()
        self.kernel_runs()
        self.file_answers()
        self.job_answers()
        self.cell_answers()
        found = fixtures("runner_to_host")
        self.assertEqual(sorted(found), sorted(self.sent), "a fixture the runner was not seen to send, or the reverse")
        for name, text in found.items():
            with self.subTest(name):
                fixture, sent = json.loads(text), self.sent[name]
                self.assertEqual(shape(sent), shape(fixture), "sent: %r" % sent)
                self.assertEqual(sent["type"], fixture["type"])

    def test_a_retired_runner_refuses_later_requests(self):
        replies = self.serve([
            {"type": "retire", "id": "retire"},
            self.run_request("late", [self.python("print(1)")]),
            {"type": "ping", "id": "still-there"},
        ])
        self.assertEqual([reply["type"] for reply in replies], ["ready", "error", "pong"], replies)
        self.assertEqual(replies[1]["id"], "late")
        self.assertIn("retired", replies[1]["message"])

    def by_id(self, replies, kind):
        return {reply.get("id"): reply for reply in replies if reply["type"] == kind}

    def exec_runs(self):
        blocker = os.path.join(self.workspace, "blocker")
        open(blocker, "w").close()
        program = "import os\nfor name in ('a.csv', 'b.png', 'c.txt'):\n    open(os.path.join(%r, name), 'wb').write(b'x' * 8)\n"
        outputs = {"dir": self.outputs, "max_files": 2, "max_bytes": 1 << 20}
        slow = "import sys, time\nprint('started', flush=True)\ntime.sleep(5)"
        building = "import sys, time\nprint('Compiling', file=sys.stderr, flush=True)\ntime.sleep(0.4)"
        # A stand-in rustc that wants a `use` line rustc suggests (test_imports.py
        # tests the flow; here: the result that says so).
        rust_source = os.path.join(self.workspace, "main.rs")
        suggestion = {"file_name": rust_source, "byte_start": 0, "byte_end": 0,
                      "suggested_replacement": "use std::collections::HashMap;\n"}
        diagnostic = {"level": "error", "message": "use of undeclared type `HashMap`", "spans": [{}],
                      "children": [{"level": "help", "spans": [suggestion]}], "rendered": "error\n"}
        rustc = "import sys\nif 'HashMap;' not in open(sys.argv[1]).read():\n    print(sys.argv[2], file=sys.stderr)\n    sys.exit(1)"
        fixing_build = {
            "phase": "build",
            "argv": [PYTHON, "-c", rustc, rust_source, json.dumps(diagnostic)],
            "fix_imports": {"tool": "rustc", "source": rust_source, "before_build": False},
        }
        saved, runner_capture.PROGRESS_INTERVAL_S = runner_capture.PROGRESS_INTERVAL_S, 0.1
        try:
            replies = self.serve([
                self.run_request("ok", [self.python("print('hi')")]),
                self.run_request("build", [self.python("raise SystemExit(1)", "build"), self.python("print(1)")]),
                self.run_request("setup", [self.python("print(1)")], files=[{"path": blocker + "/main.py", "content": ""}]),
                self.run_request("slow", [self.python(slow)], timeout_ms=300),
                self.run_request("cancelled", [self.python(slow)]),
                {"type": "cancel", "id": "cancelled"},
                self.run_request("outputs", [self.python(program % self.outputs)], collect_outputs=outputs),
                self.run_request("progress", [self.python(building, "build")], progress=True),
                self.run_request("fixed", [fixing_build], files=[{"path": rust_source, "content": "fn main() {}\n"}]),
                {k: v for k, v in self.run_request("invalid", []).items() if k != "timeout_ms"},
                b"not json",
                {"type": "ping", "id": "ping"},
            ])
        finally:
            runner_capture.PROGRESS_INTERVAL_S = saved
        self.sent["ready"] = replies[0]
        results = self.by_id(replies, "result")
        self.assertEqual(results["ok"]["stdout"], "hi\n")
        self.sent["result"] = results["ok"]
        self.assertEqual((results["build"]["phase"], results["build"]["exit_code"]), ("build", 1))
        self.sent["result_build_failed"] = results["build"]
        self.assertEqual((results["setup"]["phase"], results["setup"]["exit_code"]), ("setup", 126))
        self.sent["result_setup"] = results["setup"]
        self.assertTrue(results["slow"]["timed_out"])
        self.assertEqual((results["slow"]["signal"], results["slow"]["stdout"]), (9, "started\n"))
        self.sent["result_timed_out"] = results["slow"]
        self.assertTrue(results["cancelled"]["cancelled"])
        self.sent["result_cancelled"] = results["cancelled"]
        artifacts = results["outputs"]["artifacts"]
        self.assertEqual([os.path.basename(a["path"]) for a in artifacts], ["a.csv", "b.png"])
        self.assertEqual(base64.b64decode(artifacts[1]["data_base64"]), b"x" * 8)
        self.assertEqual(results["outputs"]["artifacts_omitted"], 1)
        self.sent["result_artifacts"] = results["outputs"]
        self.assertEqual(results["fixed"]["notes"], ["Added `use std::collections::HashMap;` (rustc's suggestion)."])
        self.assertEqual((results["fixed"]["exit_code"], results["fixed"]["stderr"]), (0, ""))
        self.sent["result_notes"] = results["fixed"]
        self.assertNotIn("notes", results["ok"])
        progress = [reply for reply in replies if reply["type"] == "progress"]
        self.assertTrue(progress, replies)
        self.assertEqual((progress[-1]["phase"], progress[-1]["tail"]), ("build", "Compiling"))
        self.sent["progress"] = progress[-1]
        errors = self.by_id(replies, "error")
        self.assertIn("timeout_ms", errors["invalid"]["message"])
        self.sent["error"] = errors["invalid"]
        self.assertNotIn("id", errors[None])
        self.sent["error_unreadable"] = errors[None]
        self.sent["pong"] = self.by_id(replies, "pong")["ping"]

    def kernel_runs(self):
        cell = os.path.join(self.workspace, "cell.py")

        def cell_request(request_id, code):
            return self.run_request(
                request_id, [], mode="kernel", kernel="python", kernel_source=cell,
                files=[{"path": cell, "content": code}],
            )

        replies = self.serve([
            cell_request("closes", "import os\nprint('before', flush=True)\nos.close(1)\n"),
            cell_request("exits", "import os\nos._exit(3)\n"),
        ], kernel="python")
        self.assertEqual(replies[0], protocol.ready("python"))
        self.sent["ready_kernel"] = replies[0]
        results = self.by_id(replies, "result")
        self.assertEqual(results["closes"]["output_lost"], ["stdout"])
        self.sent["result_output_lost"] = results["closes"]
        self.assertEqual((results["exits"]["exit_code"], results["exits"]["state_lost"]), (3, True))
        self.sent["result_state_lost"] = results["exits"]

    def cell_answers(self):
        """A log of three cells, and its replay where one prints something
        else and one fails now (test_cells.py tests their behaviour)."""
        cell = os.path.join(self.workspace, "cell.py")
        data = os.path.join(self.workspace, "data.csv")
        open(data, "w").close()
        live = LiveRunner(self.workspace, kernel_kind="python")
        try:
            for request_id, code in (
                ("random", "import random\nprint(random.random())\n"),
                ("fails", "print(y)\n"),
                ("reads", "rows = open(%r).read().split()\n" % data),
            ):
                live.send(self.run_request(
                    request_id, [], mode="kernel", kernel="python", kernel_source=cell,
                    files=[{"path": cell, "content": code}], env={"N": "1"},
                ))
                live.reply("result", request_id)
            live.send({"type": "cells", "id": "cells-1"})
            self.sent["cells"] = live.reply("cells", "cells-1")
            os.remove(data)
            live.send({"type": "replay", "id": "replay-1", "cells": self.sent["cells"]["cells"], "complete": True})
            self.sent["replayed"] = live.reply("replayed", "replay-1")
        finally:
            live.close()
            live.runner.kernel.stop()
        self.assertEqual((self.sent["replayed"]["differed"], len(self.sent["replayed"]["failed"])), ([0], 1))

    def job_answers(self):
        """A job queried while it runs and once it ended (test_jobs.py
        tests their behaviour)."""
        live = LiveRunner(self.workspace)
        try:
            go = os.path.join(self.workspace, "go")
            job = "import os, time\nprint('epoch 1', flush=True)\nwhile not os.path.exists(%r):\n    time.sleep(0.01)\nprint('epoch 2')" % go
            live.send(self.run_request("job", [self.python(job)], keep=True, label="train()"))
            running = []
            wait_until(lambda: running.append(live.ask("read", "job")) or running[-1]["jobs"][0]["stdout"], "output")
            self.sent["job_running"] = running[-1]
            self.sent["job_list"] = live.ask("list")
            live.send(self.run_request("queued", [self.python("print(1)")]))
            self.sent["busy"] = live.reply("busy", "queued")
            open(go, "w").close()
            live.reply("result", "job")
            self.sent["job_done"] = live.ask("read", "job")
            self.assertEqual(self.sent["job_done"]["jobs"][0]["stdout"], "epoch 2\n")
        finally:
            live.close()

    def file_answers(self):
        os.symlink("/etc/passwd", os.path.join(self.workspace, "leak"))
        for index in range(3):
            os.mkdir(os.path.join(self.workspace, "many-%d" % index))
        content = base64.b64encode(b"hello\n").decode()
        replies = self.by_id(self.serve([
            self.file_request("write", "write", "notes.txt", content_base64=content),
            self.file_request("read", "read", "notes.txt"),
            self.file_request("mkdir", "mkdir", "results"),
            self.file_request("delete", "delete", "notes.txt"),
            self.file_request("missing", "read", "missing.txt"),
            self.file_request("large", "write", "big.bin", content_base64=base64.b64encode(b"x" * 10).decode()),
            self.file_request("too_large", "read", "big.bin", max_bytes=4),
            self.file_request("list_too_large", "list", "", max_entries=2),
            self.file_request("escape", "read", "leak"),
            self.file_request("failed", "read", "a\0b"),
        ]), "file")
        self.assertEqual(base64.b64decode(replies["read"]["content_base64"]), b"hello\n")
        for name in ("read", "write", "mkdir", "delete"):
            self.sent["file_" + name] = replies[name]
        self.sent["file_list"] = self.by_id(self.serve([
            self.file_request("list", "list", ""),
        ]), "file")["list"]
        self.assertGreaterEqual(len(self.sent["file_list"]["entries"]), 2)
        for name, reply in (
            ("not_found", "missing"),
            ("too_large", "too_large"),
            ("list_too_large", "list_too_large"),
            ("symlink_escape", "escape"),
            ("failed", "failed"),
        ):
            self.assertEqual(replies[reply]["error"]["kind"], name, replies[reply])
            self.sent["file_error_" + name] = replies[reply]


if __name__ == "__main__":
    unittest.main()
