"""Build steps that fix a program's imports (a step's `fix_imports`; see
runner_protocol.py): snippets compile without the import lines a person
would add by reflex.

Go (`"tool": "goimports"`): goimports (Debian's golang-golang-x-tools, in
the Go image) adds the standard-library imports the code uses and removes
the unused ones. It runs before the first build of a wrapped snippet
(`before_build`), and for a full program only after a build that failed
with nothing but `"x" imported and not used` and `undefined: pkg` (used as
`pkg.Name`) errors; then the build is tried once more.

Rust (`"tool": "rustc"`): the build runs with `--error-format=json` (the
step's command adds it when SANDBOX_RUSTC_ERRORS=json). When every error
comes with rustc's own "consider importing" suggestion naming exactly one
item, the `use` lines are inserted where rustc says and the build is tried
once more. rustc marks every import suggestion MaybeIncorrect (it cannot
know the one meant); one with a single candidate is as sure as it gets,
and several candidates (`Ordering`: cmp or atomic) are left to the person.
The person reads rustc's own rendered messages, never JSON.

Either way the result's notes say what was changed. The file the person
sees in errors is the changed one.
"""

import json
import os
import re
import subprocess
import time

from runner_capture import Capture
from runner_processes import child_env, run_step

GOIMPORTS = "/usr/local/bin/goimports"
# Longest goimports may take (it takes milliseconds on a snippet).
GOIMPORTS_TIMEOUT_S = 10
# The JSON diagnostics of a build are kept whole up to this many bytes
# (they are larger than the rendered text); output beyond goes as it came.
MIN_JSON_CAPTURE = 4 << 20
# Most import paths and use lines a note names.
NOTE_ITEMS = 12

GO_ERROR = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")
GO_UNUSED = re.compile(r'^"[^"]+" imported (as \w+ )?and not used$')
GO_UNDEFINED = re.compile(r"^undefined: (?P<name>[A-Za-z_]\w*)$")
GO_PATH = re.compile(r"^[\w.~/-]+$")
RUST_USE = re.compile(r"^use [\w:{}, *]+;$")


def run_fixing_imports(step, request, stop, stdout, stderr):
    """Runs a build step with a `fix_imports`. Returns (exit_code, signal,
    notes)."""
    fix = step["fix_imports"]
    if fix["tool"] == "goimports":
        return build_go(step["argv"], fix, request, stop, stdout, stderr)
    return build_rust(step["argv"], fix, request, stop, stdout, stderr)


# ---------------------------------------------------------------- Go


def build_go(argv, fix, request, stop, stdout, stderr):
    source = fix["source"]
    if fix.get("before_build"):
        note = goimports(source, request, stop)
        exit_code, signal_number = run_step(argv, request, stop, stdout, stderr)
        return exit_code, signal_number, [note] if note else []
    errors = Capture(stderr.limit)
    exit_code, signal_number = run_step(argv, request, stop, stdout, errors)
    note = None
    if exit_code != 0 and not (stop.expired or stop.cancelled) and not errors.truncated:
        if only_go_import_errors(errors.text(), read_text(source)):
            note = goimports(source, request, stop)
    if note is None:
        stderr.add(b"".join(errors.chunks))
        stderr.truncated |= errors.truncated
        return exit_code, signal_number, []
    exit_code, signal_number = run_step(argv, request, stop, stdout, stderr)
    return exit_code, signal_number, [note]


def only_go_import_errors(output, source):
    """True when `go build` failed only on imports: unused ones, and
    undefined names used as a package (`strings.ToUpper` with no import)."""
    lines = source.split("\n") if source is not None else []
    found = False
    for line in output.splitlines():
        if not line.strip() or line.startswith("# "):
            continue
        error = GO_ERROR.match(line)
        if error is None:
            return False
        message = error.group("message")
        undefined = GO_UNDEFINED.match(message)
        if undefined is not None:
            if not used_as_package(lines, int(error.group("line")), int(error.group("column")), undefined.group("name")):
                return False
        elif not GO_UNUSED.match(message):
            return False
        found = True
    return found


def used_as_package(lines, line, column, name):
    """True when the source has `name.` at (line, column) (both from 1;
    Go counts columns in bytes)."""
    if not 1 <= line <= len(lines):
        return False
    text = lines[line - 1].encode("utf-8")
    return text[column - 1:].startswith((name + ".").encode("utf-8"))


def goimports(source, request, stop):
    """Runs goimports on `source`; when it changed the imports, writes its
    result there and returns the note saying how. None when nothing changed
    or goimports failed (the build then reports what is wrong)."""
    before = read_text(source)
    if before is None:
        return None
    timeout = min(GOIMPORTS_TIMEOUT_S, max(0.1, stop.deadline - time.monotonic()))
    try:
        done = subprocess.run(
            [GOIMPORTS, source],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=request["cwd"],
            env=child_env(request["env"]),
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    after = done.stdout.decode("utf-8", "replace")
    note = go_imports_note(go_imports(before), go_imports(after))
    if note is None:
        return None
    if not write_text(source, after):
        return None
    return note


def go_imports(code):
    """The import paths of a Go file's import declarations."""
    paths = []
    in_block = False
    for raw in code.split("\n"):
        line = raw.strip()
        if in_block:
            if line.startswith(")"):
                in_block = False
                continue
            paths.extend(re.findall(r'"([^"]*)"', line.split("//")[0]))
            continue
        if line.startswith("import"):
            rest = line[len("import"):].lstrip()
            if rest.startswith("("):
                inside, closed, _ = rest[1:].partition(")")
                paths.extend(re.findall(r'"([^"]*)"', inside))
                in_block = not closed
            elif line[len("import"):][:1] in (" ", "\t", '"'):
                paths.extend(re.findall(r'"([^"]*)"', rest.split("//")[0])[:1])
        elif line.startswith(("func ", "type ", "var ", "const ")):
            break
    return paths


def go_imports_note(before, after):
    """The note for a change of imports, or None when they are the same."""
    added = [path for path in after if path not in before]
    removed = [path for path in before if path not in after]
    if not added and not removed:
        return None
    parts = []
    if added:
        parts.append("Added imports: %s" % listed(added))
    if removed:
        parts.append("%s unused imports: %s" % ("removed" if added else "Removed", listed(removed)))
    return "%s (goimports)." % "; ".join(parts)


def listed(paths):
    shown = [path for path in paths if GO_PATH.match(path)][:NOTE_ITEMS]
    more = len(paths) - len(shown)
    return ", ".join(shown) + (" and %d more" % more if more > 0 else "")


# ---------------------------------------------------------------- Rust


def build_rust(argv, fix, request, stop, stdout, stderr):
    source = fix["source"]
    json_request = dict(request, env=dict(request["env"], SANDBOX_RUSTC_ERRORS="json"))
    limit = max(stderr.limit, MIN_JSON_CAPTURE)
    errors = Capture(limit)
    exit_code, signal_number = run_step(argv, json_request, stop, stdout, errors)
    notes = []
    if exit_code != 0 and not (stop.expired or stop.cancelled) and not errors.truncated:
        code = read_text(source)
        uses = missing_uses(diagnostics(errors.text()), source) if code is not None else None
        if uses:
            changed = insert_uses(code, uses)
            if changed is not None and write_text(source, changed):
                notes.append(rust_note([text for _, text in uses]))
                errors = Capture(limit)
                exit_code, signal_number = run_step(argv, json_request, stop, stdout, errors)
    stderr.add(render(errors.text()).encode("utf-8"))
    stderr.truncated |= errors.truncated
    return exit_code, signal_number, notes


def diagnostics(output):
    """rustc's output as a list of items: a diagnostic (dict) per JSON line,
    any other line (a crash, a linker's words) as text."""
    items = []
    for line in output.splitlines(keepends=True):
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        items.append(message if isinstance(message, dict) else line)
    return items


def render(output):
    """What rustc would have printed for people: each diagnostic's
    `rendered` text, other lines as they came."""
    parts = []
    for item in diagnostics(output):
        if isinstance(item, dict):
            rendered = item.get("rendered")
            if isinstance(rendered, str):
                parts.append(rendered)
        else:
            parts.append(item)
    return "".join(parts)


def missing_uses(items, source):
    """The `use` insertions that fix every error, as (byte offset, text),
    or None when some error is not a missing import with one candidate."""
    uses = []
    errors = 0
    for item in items:
        if not isinstance(item, dict) or item.get("level") != "error":
            continue
        if not item.get("spans") and str(item.get("message", "")).startswith("aborting due to"):
            continue
        errors += 1
        suggestion = single_use_suggestion(item, source)
        if suggestion is None:
            return None
        if suggestion[1] not in [text for _, text in uses]:
            uses.append(suggestion)
    return uses if errors else None


def single_use_suggestion(diagnostic, source):
    """The one `use` line a diagnostic's help suggests inserting into
    `source`, as (byte offset, text); None when there are none or several."""
    found = set()
    for child in diagnostic.get("children") or []:
        if not isinstance(child, dict) or child.get("level") != "help":
            continue
        for span in child.get("spans") or []:
            if not isinstance(span, dict):
                continue
            text = span.get("suggested_replacement")
            if not isinstance(text, str) or not RUST_USE.match(text.strip()):
                continue
            start, end = span.get("byte_start"), span.get("byte_end")
            if span.get("file_name") != source or not isinstance(start, int) or start != end or start < 0:
                return None
            found.add((start, text))
    if len({text.strip() for _, text in found}) != 1:
        return None
    return min(found)


def insert_uses(code, uses):
    """`code` with each (byte offset, text) inserted; None when an offset
    is not in it."""
    data = code.encode("utf-8")
    for offset, text in sorted(uses, key=lambda use: use[0], reverse=True):
        if offset > len(data):
            return None
        data = data[:offset] + text.encode("utf-8") + data[offset:]
    return data.decode("utf-8", "replace")


def rust_note(lines):
    shown = ["`%s`" % line.strip() for line in lines[:NOTE_ITEMS]]
    more = len(lines) - len(shown)
    listed_uses = ", ".join(shown) + (" and %d more" % more if more > 0 else "")
    return "Added %s (rustc's suggestion%s)." % (listed_uses, "s" if len(lines) > 1 else "")


# ---------------------------------------------------------------- files


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def write_text(path, text):
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        return False
    return True
