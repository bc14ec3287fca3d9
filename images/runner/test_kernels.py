"""Tests of the long-lived kernels (python_kernel.py, kernel.js, kernel.sh
through runner_processes.Kernel) on this machine's interpreters: a cancel
that reaches a kernel before it runs the cell still stops the cell and keeps
the kernel's state. Needs Python, Node.js and Bash (the CI machine has them)."""

import os
import shutil
import signal
import tempfile
import time
import unittest

from runner_capture import Capture, Stop
from runner_processes import DoneChannel, Kernel

# (kernel, cell that defines x = 7, cell that prints x, cell that never ends)
CASES = {
    "python": ("x = 7", "print(x)", "import time\nwhile True: time.sleep(1)"),
    "node": ("var x = 7", "console.log(x)", "for (;;) {}"),
    "bash": ("x=7", "echo $x", "while :; do sleep 1; done"),
}
ROUNDS = 30


def setUpModule():
    # In a container the runner starts with SIGINT at its default, so its
    # kernels do too. A test run in the background inherits SIGINT ignored,
    # which its children would inherit, and bash cannot trap a signal
    # ignored when it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)


class QuietHost:
    """A Stop's host that never hears anything from the host."""

    def fds(self):
        return []

    def listen(self, stop):
        pass


class KernelRun:
    def __init__(self, kind):
        self.workspace = tempfile.mkdtemp()
        self.kernel = Kernel(kind, self.workspace, os.path.join(self.workspace, "stdin"))
        self.kernel.start()

    def cell(self, code, cancel_after_s=30.0):
        """Runs `code`; cancels it `cancel_after_s` after it is sent (0: at
        once). Returns (exit_code, state_lost, stdout, stderr)."""
        path = os.path.join(self.workspace, "cell")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(code)
        stdout, stderr = Capture(1 << 16), Capture(1 << 16)
        stop = Stop("cell", time.monotonic() + cancel_after_s, QuietHost())
        exit_code, _signal, state_lost, _lost = self.kernel.run(path, {"env": {}, "stdin": ""}, stop, stdout, stderr)
        return exit_code, state_lost, stdout.text(), stderr.text()

    def close(self):
        self.kernel.stop()
        shutil.rmtree(self.workspace, ignore_errors=True)


class CancelAtOnceTest(unittest.TestCase):
    def check_kernel(self, kind):
        self.assertIsNotNone(shutil.which({"python": "python3"}.get(kind, kind)), "these tests need %s" % kind)
        define, show, endless = CASES[kind]
        run = KernelRun(kind)
        self.addCleanup(run.close)
        self.assertEqual(run.cell(define)[:2], (0, False))
        for round_number in range(ROUNDS):
            exit_code, state_lost, _, stderr = run.cell(endless, cancel_after_s=0)
            self.assertEqual((exit_code, state_lost), (130, False), "round %d: %s" % (round_number, stderr))
            exit_code, state_lost, stdout, stderr = run.cell(show)
            self.assertEqual((exit_code, state_lost, stdout), (0, False, "7\n"), "round %d: %s" % (round_number, stderr))

    def test_python(self):
        self.check_kernel("python")

    def test_node(self):
        self.check_kernel("node")

    def test_bash(self):
        self.check_kernel("bash")


class BetweenCellsTest(unittest.TestCase):
    def test_an_interrupt_between_python_cells_is_ignored(self):
        run = KernelRun("python")
        self.addCleanup(run.close)
        run.cell("x = 7")
        # Late: meant for a cell that has ended.
        os.killpg(run.kernel.process.pid, signal.SIGINT)
        time.sleep(0.1)
        self.assertEqual(run.cell("print(x)"), (0, False, "7\n", ""))

    def test_a_leading_use_strict_keeps_node_cells_strict(self):
        run = KernelRun("node")
        self.addCleanup(run.close)
        exit_code, _, _, stderr = run.cell("'use strict';\nundeclared = 5")
        self.assertEqual(exit_code, 1)
        self.assertIn("ReferenceError: undeclared is not defined", stderr)
        self.assertIn("cell:2", stderr, "line numbers are the cell's own")
        exit_code, _, _, stderr = run.cell("// a comment\n\n'use strict';\nundeclared = 5")
        self.assertIn("ReferenceError: undeclared is not defined", stderr)
        self.assertEqual(run.cell("#!/usr/bin/env node\nconsole.log(6 * 7)")[:3], (0, False, "42\n"))


class DoneChannelTest(unittest.TestCase):
    def test_a_started_line_is_not_the_end(self):
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        done = DoneChannel(read_fd)
        os.write(write_fd, b'{"started": true}\n')
        self.assertFalse(done.check([read_fd]))
        self.assertTrue(done.started)
        os.write(write_fd, b'{"exit_code": 3, "lost": []}\n')
        os.close(write_fd)
        self.assertTrue(done.check([read_fd]))
        self.assertEqual(done.message, {"exit_code": 3, "lost": []})


if __name__ == "__main__":
    unittest.main()
