"""Tests of runner_cells.py through a Runner serving over pipes with a real
Python kernel: the log of a session's runs, and a replay of it in a fresh
runner that rebuilds the interpreter's state."""

import os
import sys
import tempfile
import time
import unittest

import runner_cells
from test_jobs import LiveRunner


class CellsTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.TemporaryDirectory()
        self.workspace = os.path.realpath(self.top.name)
        self.cell = os.path.join(self.workspace, "cell.py")

    def tearDown(self):
        self.top.cleanup()

    def serve(self, requests):
        """A fresh runner's (Python kernel started) replies to `requests`,
        each sent once the one before it was answered."""
        live = LiveRunner(self.workspace, kernel_kind="python")
        answers = {"run": "result", "cells": "cells", "replay": "replayed"}
        try:
            replies = []
            for request in requests:
                live.send(request)
                replies.append(live.reply(answers[request["type"]], request["id"]))
            return replies
        finally:
            live.close()
            if live.runner.kernel is not None:
                live.runner.kernel.stop()

    def cell_request(self, request_id, code, **extra):
        request = {
            "type": "run", "id": request_id, "mode": "kernel", "kernel": "python", "kernel_source": self.cell,
            "files": [{"path": self.cell, "content": code}], "steps": [], "env": {}, "cwd": self.workspace,
            "timeout_ms": 10000, "max_output_bytes": 1 << 20,
        }
        request.update(extra)
        return request

    def side_command(self, request_id, argv):
        return {
            "type": "run", "id": request_id, "mode": "exec", "files": [], "steps": [{"phase": "run", "argv": argv}],
            "env": {}, "cwd": self.workspace, "timeout_ms": 10000, "max_output_bytes": 1 << 20,
        }

    def logged(self, requests):
        """The `cells` answer after `requests`."""
        return self.serve(requests + [{"type": "cells", "id": "log"}])[-1]

    def test_a_replay_in_a_fresh_kernel_rebuilds_the_state_and_reports_what_changed(self):
        counter = os.path.join(self.workspace, "counter.txt")
        log = self.logged([
            self.cell_request("a", "import os\nx = 41\nseen = open(os.environ['FILE']).read() if os.path.exists(os.environ['FILE']) else ''\nprint('a')", env={"FILE": counter}),
            self.cell_request("b", "raise ValueError('not replayed')"),
            self.side_command("c", [sys.executable, "-c", "open(%r, 'a').write('+')" % counter]),
            self.cell_request("d", "y = x + 1\nprint(open(%r).read())" % counter),
            self.cell_request("e", "import sys\nname = sys.stdin.read()\nprint(name)", stdin="from stdin"),
        ])
        self.assertEqual(log["type"], "cells")
        self.assertTrue(log["complete"])
        self.assertEqual([cell["exit_code"] for cell in log["cells"]], [0, 1, 0, 0, 0])
        self.assertEqual(log["cells"][0]["request"]["env"], {"FILE": counter})
        self.assertNotIn("id", log["cells"][0]["request"])
        # The file the side command grew is as the snapshot left it; the
        # replay grows it once more, so cell d prints something else now.
        replies = self.serve([
            {"type": "replay", "id": "again", "cells": log["cells"], "complete": True},
            self.cell_request("check", "print(x, y, name)"),
            {"type": "cells", "id": "log"},
        ])
        replayed, check, after = replies
        self.assertEqual(replayed["type"], "replayed")
        self.assertEqual((replayed["replayed"], replayed["failed"], replayed["differed"]), (4, [], [3]), replayed)
        self.assertEqual(check["stdout"], "41 42 from stdin\n", check)
        self.assertEqual(len(after["cells"]), 5, "the replayed runs and the check join the new log")
        self.assertTrue(after["complete"])

    def test_a_replay_of_an_incomplete_log_leaves_an_incomplete_log(self):
        log = self.logged([self.cell_request("a", "x = 1")])
        replies = self.serve([
            {"type": "replay", "id": "again", "cells": log["cells"], "complete": False},
            {"type": "cells", "id": "log"},
        ])
        self.assertEqual(replies[0]["replayed"], 1, replies[0])
        self.assertFalse(replies[1]["complete"])

    def test_a_cell_that_fails_now_is_reported_with_its_stderr(self):
        marker = os.path.join(self.workspace, "marker")
        open(marker, "w").close()
        log = self.logged([self.cell_request("a", "import os\nos.stat(%r)\nz = 1" % marker)])
        os.remove(marker)
        replayed = self.serve([{"type": "replay", "id": "again", "cells": log["cells"], "complete": True}])[0]
        self.assertEqual(replayed["replayed"], 1)
        self.assertEqual([failure["cell"] for failure in replayed["failed"]], [0])
        self.assertIn("FileNotFoundError", replayed["failed"][0]["stderr"])

    def test_a_kernel_that_lost_its_state_drops_the_runs_before_it(self):
        log = self.logged([
            self.cell_request("a", "x = 1"),
            self.side_command("b", [sys.executable, "-c", "print('files')"]),
            self.cell_request("c", "import os\nos._exit(3)"),
            self.cell_request("d", "x = 2"),
        ])
        self.assertEqual([cell["request"]["mode"] for cell in log["cells"]], ["exec", "kernel", "kernel"])
        self.assertEqual([cell["exit_code"] for cell in log["cells"]], [0, 3, 0])

    def test_a_cancel_of_the_replay_ends_it(self):
        slow = self.cell_request("slow", "import time\ntime.sleep(2)")
        log = self.logged([slow, slow])
        live = LiveRunner(self.workspace)  # no kernel yet: the replay starts one
        try:
            live.send({"type": "replay", "id": "again", "cells": log["cells"], "complete": True})
            time.sleep(0.5)
            live.send({"type": "cancel", "id": "again"})
            replayed = live.reply("replayed", "again")
        finally:
            live.close()
            live.runner.kernel.stop()
        self.assertEqual((replayed["replayed"], replayed["cancelled"]), (1, True), replayed)

    def test_a_replay_without_a_kernel_yet_starts_one(self):
        log = self.logged([self.cell_request("a", "x = 6 * 7")])
        live = LiveRunner(self.workspace)
        try:
            live.send({"type": "replay", "id": "again", "cells": log["cells"], "complete": True})
            self.assertEqual(live.reply("replayed", "again")["replayed"], 1)
            live.send(self.cell_request("check", "print(x)"))
            self.assertEqual(live.reply("result", "check")["stdout"], "42\n")
        finally:
            live.close()
            live.runner.kernel.stop()

    def test_the_log_keeps_the_newest_within_its_caps_and_says_it_is_incomplete(self):
        log = runner_cells.CellLog()
        result = {"exit_code": 0, "stdout": "", "stderr": "", "state_lost": False, "duration_ms": 1}
        for index in range(runner_cells.MAX_CELLS + 5):
            log.record(self.cell_request("c%d" % index, "n = %d" % index), result)
        self.assertEqual(len(log.cells), runner_cells.MAX_CELLS)
        self.assertFalse(log.complete)
        self.assertEqual(log.cells[-1]["request"]["files"][0]["content"], "n = %d" % (runner_cells.MAX_CELLS + 4))

        by_bytes = runner_cells.CellLog()
        big = self.cell_request("big", "s = '%s'" % ("x" * (runner_cells.MAX_LOG_BYTES // 3)))
        for _ in range(4):
            by_bytes.record(big, result)
        self.assertEqual((len(by_bytes.cells), by_bytes.complete), (2, False))
        self.assertLessEqual(by_bytes.size, runner_cells.MAX_LOG_BYTES)

    def test_a_run_that_failed_inside_the_runner_makes_the_log_incomplete(self):
        log = runner_cells.CellLog()
        log.lost_one()
        self.assertFalse(log.answer("log")["complete"])


if __name__ == "__main__":
    unittest.main()
