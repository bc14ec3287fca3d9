"""Tests of jobs (runner_jobs.py): a runner served over pipes from a thread,
queried while its job runs and after, as the host does."""

import json
import os
import select
import sys
import tempfile
import threading
import time
import unittest

import runner_jobs
from runner import Runner
from runner_channel import HostChannel

PYTHON = sys.executable
REPLY_TIMEOUT_S = 10


class LiveRunner:
    """A Runner serving in a thread: the test writes requests when it
    likes and waits for each reply."""

    def __init__(self, workspace, kernel_kind=None):
        self.to_runner_read, self.to_runner = os.pipe()
        self.from_runner, self.from_runner_write = os.pipe()
        self.buffer = b""
        self.seen = []
        self.runner = Runner(
            HostChannel(self.to_runner_read, self.from_runner_write),
            kernel_kind=kernel_kind,
            workspace=workspace,
            stdin_path=os.path.join(workspace, ".stdin"),
        )
        self.thread = threading.Thread(target=self.runner.serve, daemon=True)
        self.thread.start()
        self.reply("ready")

    def send(self, message):
        os.write(self.to_runner, (json.dumps(message) + "\n").encode())

    def reply(self, kind, request_id=None):
        """The runner's next message of `kind` (with `request_id`), waiting
        for it; the messages passed over stay in `seen`."""
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            for index, message in enumerate(self.seen):
                if message["type"] == kind and (request_id is None or message.get("id") == request_id):
                    return self.seen.pop(index)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s %r within %d s; seen %r" % (kind, request_id, REPLY_TIMEOUT_S, self.seen))
                ready, _, _ = select.select([self.from_runner], [], [], left)
                if ready:
                    self.buffer += os.read(self.from_runner, 65536)
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.seen.append(json.loads(line))

    def ask(self, op, job=None, query_id=None, **extra):
        query_id = query_id or "%s-%s-%f" % (op, job, time.monotonic())
        message = {"type": "job", "id": query_id, "op": op}
        if job is not None:
            message["job"] = job
        message.update(extra)
        self.send(message)
        return self.reply("job", query_id)

    def close(self):
        os.close(self.to_runner)
        self.thread.join(REPLY_TIMEOUT_S)
        for fd in (self.to_runner_read, self.from_runner, self.from_runner_write):
            os.close(fd)


def run_request(request_id, code, workspace, **extra):
    request = {
        "type": "run",
        "id": request_id,
        "mode": "exec",
        "files": [],
        "steps": [{"phase": "run", "argv": [PYTHON, "-c", code]}],
        "env": {},
        "cwd": workspace,
        "timeout_ms": 20000,
        "max_output_bytes": 1 << 20,
    }
    request.update(extra)
    return request


def wait_until(check, what):
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("%s did not happen within %d s" % (what, REPLY_TIMEOUT_S))


class JobsTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.TemporaryDirectory()
        self.workspace = os.path.realpath(self.top.name)
        self.live = LiveRunner(self.workspace)
        # The job waits for this file before each step of its output.
        self.go = os.path.join(self.workspace, "go")

    def tearDown(self):
        self.live.close()
        self.top.cleanup()

    def stepped(self, steps):
        """A program that prints `steps` one at a time, each once the test
        writes the next number to the go file."""
        return (
            "import os, sys, time\n"
            "for index, text in enumerate(%r):\n"
            "    while not (os.path.exists(%r) and int(open(%r).read() or -1) >= index):\n"
            "        time.sleep(0.01)\n"
            "    sys.stdout.write(text); sys.stdout.flush()\n"
        ) % (steps, self.go, self.go)

    def release(self, index):
        with open(self.go + ".tmp", "w") as handle:
            handle.write(str(index))
        os.replace(self.go + ".tmp", self.go)

    def read_until(self, job, wanted):
        """Reads `job` until its new output adds up to `wanted`."""
        got = []
        wait_until(lambda: got.append(self.live.ask("read", job)["jobs"][0]["stdout"]) or "".join(got) == wanted, "output %r" % wanted)
        return "".join(got)

    def test_reads_return_each_byte_once_and_the_result_at_the_end(self):
        steps = ["one\n", "é two ", "three\n"]
        self.live.send(run_request("j", self.stepped(steps), self.workspace, keep=True, label="count"))
        self.release(0)
        self.assertEqual(self.read_until("j", "one\n"), "one\n")
        self.release(1)
        self.assertEqual(self.read_until("j", "é two "), "é two ")
        running = self.live.ask("read", "j")["jobs"][0]
        self.assertEqual((running["state"], running["stdout"], running["label"]), ("running", "", "count"))
        self.assertNotIn("result", running)
        self.release(2)
        self.live.reply("result", "j")
        done = self.live.ask("read", "j")["jobs"][0]
        self.assertEqual((done["state"], done["stdout"], done["unread"]), ("done", "three\n", False))
        self.assertEqual((done["result"]["exit_code"], done["result"]["stdout"]), (0, ""))
        self.assertEqual(self.live.ask("list")["jobs"][0]["stdout_bytes"], len("one\né two three\n".encode()))
        self.assertEqual(self.live.ask("forget", "j")["jobs"][0]["state"], "done")
        self.assertEqual(self.live.ask("list")["jobs"], [])
        self.assertEqual(self.live.ask("read", "j")["jobs"], [])

    def test_a_run_becomes_a_job_when_kept_while_it_runs(self):
        self.live.send(run_request("r", self.stepped(["early\n", "late\n"]), self.workspace))
        self.release(0)
        wait_until(lambda: self.live.runner.jobs.current is not None and self.live.runner.jobs.current.stdout.size, "output")
        kept = self.live.ask("keep", "r", label="detached")["jobs"][0]
        self.assertEqual((kept["state"], kept["label"]), ("running", "detached"))
        self.release(1)
        self.assertEqual(self.live.reply("result", "r")["stdout"], "early\nlate\n")
        done = self.live.ask("read", "r")["jobs"][0]
        self.assertEqual((done["stdout"], done["result"]["exit_code"]), ("early\nlate\n", 0))
        # Keeping a run that has ended finds nothing: its result was sent.
        self.live.send(run_request("quick", "print(1)", self.workspace))
        self.live.reply("result", "quick")
        self.assertEqual(self.live.ask("keep", "quick")["jobs"], [])

    def test_runs_are_refused_while_a_job_runs_and_file_requests_answered(self):
        self.live.send(run_request("j", self.stepped(["x"]), self.workspace, keep=True))
        wait_until(lambda: self.live.runner.jobs.running_job(), "the job to start")
        self.live.send(run_request("other", "print(2)", self.workspace))
        self.assertEqual(self.live.reply("busy", "other")["job"], "j")
        self.live.send({"type": "file", "id": "f", "op": "list", "path": self.workspace,
                        "roots": [{"path": self.workspace, "writable": True}], "max_bytes": 1 << 20, "max_entries": 100})
        self.assertIn("entries", self.live.reply("file", "f"))
        self.release(0)
        self.live.reply("result", "j")
        self.live.send(run_request("after", "print(3)", self.workspace))
        self.assertEqual(self.live.reply("result", "after")["stdout"], "3\n")

    def test_a_cancelled_job_keeps_what_it_printed(self):
        self.live.send(run_request("j", self.stepped(["kept\n", "never\n"]), self.workspace, keep=True))
        self.release(0)
        wait_until(lambda: self.live.runner.jobs.current is not None and self.live.runner.jobs.current.stdout.size, "output")
        self.live.send({"type": "cancel", "id": "j"})
        self.assertTrue(self.live.reply("result", "j")["cancelled"])
        done = self.live.ask("read", "j")["jobs"][0]
        self.assertEqual((done["stdout"], done["result"]["cancelled"]), ("kept\n", True))
        # A running job is not forgotten.
        self.live.send(run_request("k", self.stepped(["a", "b"]), self.workspace, keep=True))
        wait_until(lambda: self.live.runner.jobs.running_job(), "the second job")
        self.assertEqual(self.live.ask("forget", "k")["jobs"][0]["state"], "running")
        self.live.send({"type": "cancel", "id": "k"})
        self.live.reply("result", "k")

    def test_a_cancel_that_comes_with_its_kernel_cell_keeps_the_kernel(self):
        """The cell is not sent: an interrupt the kernel got before reading
        it would be lost, the cell would run on and the kernel be killed."""
        cell = os.path.join(self.workspace, "cell.py")

        def cell_request(request_id, code):
            return run_request(request_id, "", self.workspace, mode="kernel", kernel="python", kernel_source=cell,
                               steps=[], files=[{"path": cell, "content": code}])

        self.live.send(cell_request("set", "x = 7"))
        self.assertEqual(self.live.reply("result", "set")["exit_code"], 0)
        both = [cell_request("busy", "import time\nwhile True: time.sleep(1)"), {"type": "cancel", "id": "busy"}]
        os.write(self.live.to_runner, "".join(json.dumps(message) + "\n" for message in both).encode())
        cancelled = self.live.reply("result", "busy")
        self.assertEqual((cancelled["cancelled"], cancelled["state_lost"]), (True, False), cancelled)
        self.live.send(cell_request("after", "print(x)"))
        self.assertEqual(self.live.reply("result", "after")["stdout"], "7\n")

    def test_long_output_is_read_in_bounded_pieces(self):
        saved, runner_jobs.READ_LIMIT = runner_jobs.READ_LIMIT, 1000
        try:
            self.live.send(run_request("j", "print('é' * 1500)", self.workspace, keep=True))
            self.live.reply("result", "j")
            pieces = []
            while True:
                job = self.live.ask("read", "j")["jobs"][0]
                pieces.append(job["stdout"])
                if not job["unread"]:
                    break
            self.assertTrue(all(len(piece.encode()) <= 1000 for piece in pieces), [len(p) for p in pieces])
            self.assertEqual("".join(pieces), "é" * 1500 + "\n")
        finally:
            runner_jobs.READ_LIMIT = saved

    def test_old_finished_jobs_make_room(self):
        saved, runner_jobs.MAX_FINISHED = runner_jobs.MAX_FINISHED, 2
        try:
            for index in range(4):
                self.live.send(run_request("j%d" % index, "print(%d)" % index, self.workspace, keep=True))
                self.live.reply("result", "j%d" % index)
            self.assertEqual([job["job"] for job in self.live.ask("list")["jobs"]], ["j2", "j3"])
        finally:
            runner_jobs.MAX_FINISHED = saved


if __name__ == "__main__":
    unittest.main()
