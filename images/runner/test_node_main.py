"""Tests of the pre-started Node program (node_main.js and WarmProgram in
runner_processes.py): a pooled container's `node` that becomes the one
program a stateless execute runs, as `node <file>` would run it. Needs
Node.js on the machine (the CI machine has it)."""

import os
import shutil
import tempfile
import unittest

from test_jobs import LiveRunner

NODE = shutil.which("node")


def node_request(request_id, path, code, **extra):
    request = {
        "type": "run",
        "id": request_id,
        "mode": "kernel",
        "kernel": "node-main",
        "kernel_source": path,
        "files": [{"path": path, "content": code}],
        "steps": [],
        "env": {},
        "cwd": os.path.dirname(path),
        "timeout_ms": 10000,
        "max_output_bytes": 65536,
    }
    request.update(extra)
    return request


class NodeMainTest(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(NODE, "these tests need node on PATH")
        self.workspace = tempfile.mkdtemp()
        self.runner = LiveRunner(self.workspace, kernel_kind="node-main")

    def tearDown(self):
        self.runner.close()
        self.runner.runner.kernel.stop()
        shutil.rmtree(self.workspace, ignore_errors=True)

    def run_code(self, request_id, file_name, code, **extra):
        path = os.path.join(self.workspace, file_name)
        self.runner.send(node_request(request_id, path, code, **extra))
        return self.runner.reply("result", request_id)

    def test_the_program_is_the_main_module_with_its_own_argv_env_and_stdin(self):
        code = (
            "let input = '';\n"
            "process.stdin.on('data', (c) => (input += c)).on('end', () => {\n"
            "  console.log(JSON.stringify([require.main === module, process.argv.length,\n"
            "    process.argv[1], process.env.GREETING, process.cwd(), input]));\n"
            "});\n"
        )
        result = self.run_code("a", "main.js", code, env={"GREETING": "hi"}, stdin="some input")
        path = os.path.join(self.workspace, "main.js")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"].strip(), '[true,2,"%s","hi","%s","some input"]' % (path, self.workspace))
        self.assertFalse(result["state_lost"])

    def test_exit_codes_and_uncaught_errors_are_nodes_own(self):
        result = self.run_code("b", "main.js", "process.exitCode = 3; setTimeout(() => console.log('later'), 20);")
        self.assertEqual((result["exit_code"], result["stdout"]), (3, "later\n"))
        result = self.run_code("c", "main.js", "throw new Error('boom')")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("Error: boom", result["stderr"])
        self.assertNotIn("node_main.js", result["stderr"])

    def test_es_modules_with_top_level_await_run(self):
        code = "import os from 'node:os';\nawait new Promise((r) => setTimeout(r, 10));\nconsole.log(typeof os.cpus, import.meta.url.startsWith('file:'));\n"
        result = self.run_code("d", "main.mjs", code)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"], "function true\n")

    def test_a_timeout_kills_the_program_and_the_next_run_gets_a_fresh_node(self):
        result = self.run_code("e", "main.js", "setInterval(() => {}, 1000)", timeout_ms=300)
        self.assertTrue(result["timed_out"])
        result = self.run_code("f", "main.js", "console.log(globalThis.leftOver === undefined); globalThis.leftOver = 1")
        self.assertEqual(result["stdout"], "true\n")
        result = self.run_code("g", "main.js", "console.log(globalThis.leftOver === undefined)")
        self.assertEqual(result["stdout"], "true\n")


if __name__ == "__main__":
    unittest.main()
