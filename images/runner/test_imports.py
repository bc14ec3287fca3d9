"""Tests of runner_imports.py (standard library only; run by .ci/run with
`python3 -m unittest discover -s images/runner`): when a Go build is worth
a goimports pass, which rustc suggestions are applied, and both build
flows end to end with stand-in compilers (small Python scripts that fail
the way go and rustc do until the import is there). The real goimports and
rustc run in the integration tests (tests/snippets.rs)."""

import json
import os
import stat
import sys
import tempfile
import time
import unittest

import runner_imports as imports
from runner_capture import Capture, Stop

PYTHON = sys.executable

# rustc 1.85's diagnostics (explanations cut) for a snippet using HashMap,
# BTreeSet (two errors with the same suggestion) and Ordering (two
# candidates) without `use`.
SOURCE = "/tmp/run/main.rs"


def undeclared(name, suggestions, code="E0433"):
    return {
        "$message_type": "diagnostic",
        "message": "failed to resolve: use of undeclared type `%s`" % name,
        "code": {"code": code, "explanation": "An undeclared crate, module, or type was used.\n"},
        "level": "error",
        "spans": [{"file_name": SOURCE, "byte_start": 28, "byte_end": 35, "is_primary": True,
                   "suggested_replacement": None, "suggestion_applicability": None}],
        "children": [{
            "message": "consider importing this struct",
            "code": None,
            "level": "help",
            "spans": [{"file_name": SOURCE, "byte_start": 0, "byte_end": 0, "is_primary": True,
                       "suggested_replacement": text, "suggestion_applicability": "MaybeIncorrect"}
                      for text in suggestions],
            "children": [],
            "rendered": None,
        }],
        "rendered": "error[%s]: failed to resolve: use of undeclared type `%s`\n --> %s:2:17\n\n" % (code, name, SOURCE),
    }


def mismatched():
    return {
        "$message_type": "diagnostic",
        "message": "mismatched types",
        "code": {"code": "E0308", "explanation": "Expected type did not match the received type.\n"},
        "level": "error",
        "spans": [{"file_name": SOURCE, "byte_start": 25, "byte_end": 31, "is_primary": True,
                   "suggested_replacement": None, "suggestion_applicability": None}],
        "children": [],
        "rendered": "error[E0308]: mismatched types\n --> %s:1:26\n\n" % SOURCE,
    }


def aborting(count):
    return {"$message_type": "diagnostic", "message": "aborting due to %d previous errors" % count,
            "code": None, "level": "error", "spans": [], "children": [],
            "rendered": "error: aborting due to %d previous errors\n\n" % count}


def lines(*messages):
    return "".join(json.dumps(message) + "\n" for message in messages)


class GoTriggerTest(unittest.TestCase):
    SOURCE = "package main\n\nimport \"os\"\n\nfunc main() {\n\tx := strings.ToUpper(\"a\")\n\tfmt.Println(x, y)\n}\n"

    def test_unused_and_missing_packages_are_import_errors(self):
        output = (
            "# command-line-arguments\n"
            "/tmp/run/main.go:3:8: \"os\" imported and not used\n"
            "/tmp/run/main.go:6:7: undefined: strings\n"
            "/tmp/run/main.go:7:2: undefined: fmt\n"
        )
        self.assertTrue(imports.only_go_import_errors(output, self.SOURCE))
        self.assertTrue(imports.only_go_import_errors(
            '/tmp/run/main.go:3:8: "math/rand" imported as r and not used\n', self.SOURCE))

    def test_other_errors_keep_the_first_build(self):
        for output in (
            "/tmp/run/main.go:7:17: undefined: y\n",  # a variable, not a package
            "/tmp/run/main.go:6:7: undefined: strings\n/tmp/run/main.go:7:10: cannot use x (variable of type int) as string value\n",
            "/tmp/run/main.go:3:1: syntax error: non-declaration statement outside function body\n",
            "/tmp/run/main.go:6:7: undefined: strings\ntoo many errors\n",
            "/tmp/run/main.go:99:1: undefined: fmt\n",  # a line the source does not have
            "# command-line-arguments\n",
            "",
        ):
            with self.subTest(output=output):
                self.assertFalse(imports.only_go_import_errors(output, self.SOURCE))

    def test_columns_count_bytes(self):
        source = "package main\nfunc main() { s := \"é\"; fmt.Println(s) }\n"
        column = source.split("\n")[1].encode().index(b"fmt") + 1
        self.assertTrue(imports.only_go_import_errors("/tmp/run/main.go:2:%d: undefined: fmt\n" % column, source))


class GoImportsTest(unittest.TestCase):
    def test_import_declarations_are_read_in_every_form(self):
        code = (
            "package main\n\nimport \"fmt\"\nimport m \"math\"\nimport (\n\t\"os\" // files\n\tstr \"strings\"\n)\n"
            "import (\"sort\"; \"time\")\n\nfunc main() { _ = \"import \\\"x\\\"\" }\nimport \"late\"\n"
        )
        self.assertEqual(imports.go_imports(code), ["fmt", "math", "os", "strings", "sort", "time"])

    def test_notes_say_what_changed(self):
        self.assertIsNone(imports.go_imports_note(["fmt"], ["fmt"]))
        self.assertEqual(imports.go_imports_note([], ["fmt", "strings"]), "Added imports: fmt, strings (goimports).")
        self.assertEqual(imports.go_imports_note(["os"], []), "Removed unused imports: os (goimports).")
        self.assertEqual(
            imports.go_imports_note(["os", "fmt"], ["fmt", "math"]),
            "Added imports: math; removed unused imports: os (goimports).",
        )
        many = ["p%d" % index for index in range(15)] + ['bad"path']
        self.assertTrue(imports.go_imports_note([], many).endswith("p11 and 4 more (goimports)."))


class RustSuggestionsTest(unittest.TestCase):
    def test_single_candidates_are_collected_once(self):
        items = imports.diagnostics(lines(
            undeclared("HashMap", ["use std::collections::HashMap;\n\n"]),
            undeclared("BTreeSet", ["use std::collections::BTreeSet;\n\n"], "E0412"),
            undeclared("BTreeSet", ["use std::collections::BTreeSet;\n\n"]),
            aborting(3),
        ))
        self.assertEqual(
            imports.missing_uses(items, SOURCE),
            [(0, "use std::collections::HashMap;\n\n"), (0, "use std::collections::BTreeSet;\n\n")],
        )

    def test_nothing_is_applied_when_an_error_is_not_a_single_import(self):
        for messages in (
            [undeclared("HashMap", ["use std::collections::HashMap;\n\n"]), mismatched(), aborting(2)],
            [undeclared("Ordering", ["use std::cmp::Ordering;\n\n", "use std::sync::atomic::Ordering;\n\n"])],
            [undeclared("Thing", ["let x = 1;\n"])],
            [mismatched()],
            [aborting(1)],
        ):
            with self.subTest(messages=[message["message"] for message in messages]):
                self.assertIsNone(imports.missing_uses(imports.diagnostics(lines(*messages)), SOURCE))
        other_file = undeclared("HashMap", ["use std::collections::HashMap;\n\n"])
        other_file["children"][0]["spans"][0]["file_name"] = "/elsewhere.rs"
        self.assertIsNone(imports.missing_uses([other_file], SOURCE))

    def test_uses_go_in_at_rustcs_byte_offsets(self):
        code = "// é\nfn main() {}\n"
        offset = len("// é\n".encode())
        changed = imports.insert_uses(code, [(offset, "use a::B;\n"), (0, "use c::D;\n")])
        self.assertEqual(changed, "use c::D;\n// é\nuse a::B;\nfn main() {}\n")
        self.assertIsNone(imports.insert_uses(code, [(999, "use a::B;\n")]))

    def test_people_read_the_rendered_text(self):
        output = lines(mismatched(), aborting(1)) + "note: a line that is not JSON\n"
        self.assertEqual(
            imports.render(output),
            "error[E0308]: mismatched types\n --> /tmp/run/main.rs:1:26\n\n"
            "error: aborting due to 1 previous errors\n\nnote: a line that is not JSON\n",
        )

    def test_notes_quote_the_lines(self):
        self.assertEqual(
            imports.rust_note(["use std::collections::HashMap;\n\n"]),
            "Added `use std::collections::HashMap;` (rustc's suggestion).",
        )
        self.assertEqual(
            imports.rust_note(["use std::rc::Rc;\n", "use std::fs;\n"]),
            "Added `use std::rc::Rc;`, `use std::fs;` (rustc's suggestions).",
        )


class Host:
    def fds(self):
        return []

    def listen(self, stop):
        pass


# Stand-in compilers: fail like the real ones until the source has the
# import, then succeed. Each counts its runs in <source>.runs.
FAKE_GO_BUILD = r"""
import sys
source = sys.argv[1]
open(source + ".runs", "a").write("x")
code = open(source).read()
if '"fmt"' in code and '"os"' not in code:
    sys.exit(0)
print("# command-line-arguments", file=sys.stderr)
for number, line in enumerate(code.split("\n"), 1):
    if '"os"' in line:
        print('%s:%d:2: "os" imported and not used' % (source, number), file=sys.stderr)
    column = line.find("fmt.")
    if column >= 0 and '"fmt"' not in code:
        print("%s:%d:%d: undefined: fmt" % (source, number, column + 1), file=sys.stderr)
    if "oops" in line:
        print("%s:%d:1: undefined: oops" % (source, number), file=sys.stderr)
sys.exit(1)
"""

# Adds "fmt" and drops "os", like goimports for these programs.
FAKE_GOIMPORTS = r"""#!%s
import sys
code = open(sys.argv[1]).read()
code = code.replace('import "os"\n', "")
if "fmt." in code and '"fmt"' not in code:
    code = code.replace("package main\n", 'package main\n\nimport "fmt"\n', 1)
sys.stdout.write(code)
"""

FAKE_RUSTC = r"""
import json, os, sys
source = sys.argv[1]
open(source + ".runs", "a").write("x")
code = open(source).read()
if os.environ.get("SANDBOX_RUSTC_ERRORS") != "json":
    print("error: not asked for JSON", file=sys.stderr)
    sys.exit(2)
errors = [json.loads(line) for line in sys.argv[2:]]
if "use std::collections::HashMap;" in code:
    errors = []
for error in errors:
    print(json.dumps(error), file=sys.stderr)
sys.exit(1 if errors else 0)
"""


class BuildFlowTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.TemporaryDirectory()
        self.folder = os.path.realpath(self.top.name)
        fake = os.path.join(self.folder, "goimports")
        with open(fake, "w") as handle:
            handle.write(FAKE_GOIMPORTS % PYTHON)
        os.chmod(fake, stat.S_IRWXU)
        self.saved, imports.GOIMPORTS = imports.GOIMPORTS, fake

    def tearDown(self):
        imports.GOIMPORTS = self.saved
        self.top.cleanup()

    def build(self, tool, code, argv_tail=(), before_build=False, name="main.go"):
        source = os.path.join(self.folder, name)
        with open(source, "w") as handle:
            handle.write(code)
        script = FAKE_GO_BUILD if tool == "goimports" else FAKE_RUSTC
        step = {
            "phase": "build",
            "argv": [PYTHON, "-c", script, source, *argv_tail],
            "fix_imports": {"tool": tool, "source": source, "before_build": before_build},
        }
        request = {"env": {}, "cwd": self.folder}
        stdout, stderr = Capture(1 << 20), Capture(1 << 20)
        stop = Stop("r", time.monotonic() + 30, Host())
        exit_code, _signal, notes = imports.run_fixing_imports(step, request, stop, stdout, stderr)
        with open(source) as handle:
            changed = handle.read()
        with open(source + ".runs") as handle:
            runs = len(handle.read())
        return exit_code, notes, stderr.text(), changed, runs

    def test_a_wrapped_snippet_gets_its_imports_before_the_build(self):
        code = "package main\n\nfunc main() {\n    fmt.Println(42)\n}\n"
        exit_code, notes, stderr, changed, runs = self.build("goimports", code, before_build=True)
        self.assertEqual((exit_code, notes, stderr, runs), (0, ["Added imports: fmt (goimports)."], "", 1))
        self.assertIn('import "fmt"', changed)

    def test_a_full_program_is_fixed_after_a_build_that_failed_on_imports_only(self):
        code = 'package main\n\nimport "os"\n\nfunc main() {\n\tfmt.Println(42)\n}\n'
        exit_code, notes, stderr, changed, runs = self.build("goimports", code)
        self.assertEqual((exit_code, stderr, runs), (0, "", 2))
        self.assertEqual(notes, ["Added imports: fmt; removed unused imports: os (goimports)."])
        self.assertNotIn('"os"', changed)

    def test_a_full_program_with_another_error_is_built_once_and_left_alone(self):
        code = 'package main\n\nimport "os"\n\nfunc main() {\n\tfmt.Println(oops)\n}\n'
        exit_code, notes, stderr, changed, runs = self.build("goimports", code)
        self.assertEqual((exit_code, notes, changed, runs), (1, [], code, 1))
        self.assertIn("undefined: oops", stderr)
        self.assertIn("undefined: fmt", stderr)

    def test_rust_gets_the_suggested_use_and_one_more_build(self):
        code = "fn main() {\n    let m: HashMap<u8, u8> = HashMap::new();\n}\n"
        error = undeclared("HashMap", ["use std::collections::HashMap;\n\n"])
        for span in error["spans"] + error["children"][0]["spans"]:
            span["file_name"] = os.path.join(self.folder, "main.rs")
        exit_code, notes, stderr, changed, runs = self.build(
            "rustc", code, [json.dumps(error), json.dumps(aborting(1))], name="main.rs")
        self.assertEqual((exit_code, runs, stderr), (0, 2, ""))
        self.assertEqual(notes, ["Added `use std::collections::HashMap;` (rustc's suggestion)."])
        self.assertTrue(changed.startswith("use std::collections::HashMap;\n\nfn main()"))

    def test_a_rust_type_error_is_rendered_once_without_a_note(self):
        code = "fn main() { let x: i32 = \"text\"; }\n"
        exit_code, notes, stderr, changed, runs = self.build(
            "rustc", code, [json.dumps(mismatched()), json.dumps(aborting(1))], name="main.rs")
        self.assertEqual((exit_code, notes, changed, runs), (1, [], code, 1))
        self.assertTrue(stderr.startswith("error[E0308]: mismatched types\n"), stderr)
        self.assertNotIn('"$message_type"', stderr)


if __name__ == "__main__":
    unittest.main()
