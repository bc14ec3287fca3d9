"""Tests of fileops.py (standard library only; run by .ci/run with
`python3 -m unittest discover -s images/runner`). Folders under a temporary
directory stand in for a session's /workspace, /outputs and a read-only
host folder; a thread swapping a file with a link races the operations."""

import base64
import ctypes
import os
import tempfile
import threading
import unittest

from fileops import handle_file_request

RENAME_EXCHANGE = 2
AT_FDCWD = -100


class FileOpsTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.TemporaryDirectory()
        base = os.path.realpath(self.top.name)
        self.workspace = os.path.join(base, "workspace")
        self.outputs = os.path.join(base, "outputs")
        self.data = os.path.join(base, "data")
        for folder in (self.workspace, self.outputs, self.data):
            os.mkdir(folder)
        self.secret = os.path.join(base, "secret.txt")
        with open(self.secret, "w") as handle:
            handle.write("host secret")
        with open(os.path.join(self.data, "input.csv"), "w") as handle:
            handle.write("a,b\n")

    def tearDown(self):
        self.top.cleanup()

    def op(self, op, path, **extra):
        roots = [
            {"path": self.workspace, "writable": True},
            {"path": self.outputs, "writable": True},
            {"path": self.data, "writable": False},
        ]
        request = {"type": "file", "id": "t", "op": op, "path": path, "roots": roots}
        request.update(max_bytes=10 << 20, max_entries=20000)
        request.update(extra)
        reply = handle_file_request(request)
        self.assertEqual(reply["id"], "t")
        return reply

    def write(self, path, text):
        return self.op("write", path, content_base64=base64.b64encode(text.encode()).decode())

    def read_text(self, path):
        reply = self.op("read", path)
        self.assertNotIn("error", reply, reply)
        return base64.b64decode(reply["content_base64"]).decode()

    def kind(self, reply):
        return reply.get("error", {}).get("kind")

    def test_write_read_list_mkdir_delete(self):
        written = self.write(self.workspace + "/a/b/c.txt", "héllo")
        self.assertEqual(written["entry"]["kind"], "file")
        self.assertEqual(written["entry"]["size"], len("héllo".encode()))
        self.assertEqual(self.read_text(self.workspace + "/a/b/c.txt"), "héllo")
        self.write(self.workspace + "/a/b/c.txt", "x")  # replaced, not appended
        self.assertEqual(self.read_text(self.workspace + "/a/b/c.txt"), "x")
        listing = self.op("list", self.workspace + "/a")
        self.assertEqual([(e["name"], e["kind"]) for e in listing["entries"]], [("b", "folder")])
        self.assertEqual(self.op("mkdir", self.workspace + "/d/e")["entry"]["kind"], "folder")
        self.assertEqual(self.op("mkdir", self.workspace + "/d/e")["entry"]["kind"], "folder")
        self.assertEqual(self.kind(self.op("mkdir", self.workspace + "/a/b/c.txt")), "not_folder")
        self.assertEqual(self.kind(self.op("read", self.workspace + "/a")), "is_folder")
        self.assertEqual(self.kind(self.op("list", self.workspace + "/a/b/c.txt")), "not_folder")
        self.assertEqual(self.kind(self.op("read", self.workspace + "/nope")), "not_found")
        self.assertEqual(self.op("delete", self.workspace + "/a")["entry"]["kind"], "folder")
        self.assertFalse(os.path.exists(self.workspace + "/a"))
        self.assertEqual(self.kind(self.op("delete", self.workspace)), "root_folder")

    def test_read_only_roots_and_outside_paths_are_refused(self):
        self.assertEqual(self.read_text(self.data + "/input.csv"), "a,b\n")
        self.assertEqual(self.kind(self.write(self.data + "/new.txt", "x")), "read_only")
        self.assertEqual(self.kind(self.op("delete", self.data + "/input.csv")), "read_only")
        self.assertTrue(os.path.exists(self.data + "/input.csv"))
        self.assertEqual(self.kind(self.op("read", self.secret)), "outside")
        self.assertEqual(self.kind(self.op("read", self.workspace + "/../secret.txt")), "outside")

    def test_links_are_followed_only_inside_the_roots(self):
        os.symlink(self.outputs, self.workspace + "/out")
        self.write(self.workspace + "/out/plot.txt", "inside")
        self.assertEqual(self.read_text(self.outputs + "/plot.txt"), "inside")
        os.symlink("../outputs/plot.txt", self.workspace + "/relative")
        self.assertEqual(self.read_text(self.workspace + "/relative"), "inside")
        os.symlink(self.secret, self.workspace + "/leak")
        os.symlink(os.path.dirname(self.secret), self.workspace + "/up")
        os.symlink(self.secret + ".new", self.workspace + "/dangling")
        for path in ("/leak", "/up/secret.txt"):
            self.assertEqual(self.kind(self.op("read", self.workspace + path)), "symlink_escape", path)
        self.assertEqual(self.kind(self.write(self.workspace + "/dangling", "x")), "symlink_escape")
        self.assertFalse(os.path.exists(self.secret + ".new"))
        # A link into a read-only root is written through the root's access.
        os.symlink(self.data, self.workspace + "/data")
        self.assertEqual(self.kind(self.write(self.workspace + "/data/x", "x")), "read_only")
        os.symlink("loop", self.workspace + "/loop")
        self.assertEqual(self.kind(self.op("read", self.workspace + "/loop")), "symlink_escape")
        # Delete removes the link, never its target.
        self.assertEqual(self.op("delete", self.workspace + "/leak")["entry"]["kind"], "symlink")
        self.assertTrue(os.path.exists(self.secret))
        self.assertEqual(self.op("delete", self.workspace + "/out")["entry"]["kind"], "symlink")
        self.assertTrue(os.path.exists(self.outputs + "/plot.txt"))

    def test_special_files_and_caps(self):
        os.mkfifo(self.workspace + "/fifo")
        self.assertEqual(self.kind(self.op("read", self.workspace + "/fifo")), "not_found")
        self.assertEqual(self.kind(self.write(self.workspace + "/fifo", "x")), "not_found")
        self.write(self.workspace + "/big", "x" * 100)
        refused = self.op("read", self.workspace + "/big", max_bytes=10)
        self.assertEqual(self.kind(refused), "too_large")
        self.assertEqual((refused["error"]["size"], refused["error"]["max"]), (100, 10))
        for index in range(5):
            self.write(self.workspace + "/many/%d" % index, "")
        self.assertEqual(self.kind(self.op("list", self.workspace + "/many", max_entries=4)), "list_too_large")
        self.assertEqual(len(self.op("list", self.workspace + "/many", max_entries=5)["entries"]), 5)

    def test_bad_requests_are_answered_and_leak_nothing(self):
        self.assertEqual(self.kind(self.op("read", self.workspace + "/a\0b")), "failed")
        self.assertEqual(self.kind(self.op("frobnicate", self.workspace)), "failed")
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            # The parent's name is too long: mkdir fails inside make_folders.
            self.assertEqual(self.kind(self.write(self.workspace + "/" + "x" * 300 + "/f", "")), "failed")
            self.assertEqual(self.kind(self.op("mkdir", self.workspace + "/a/" + "y" * 300)), "failed")
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)

    def test_racing_a_file_with_a_link_never_leaves_the_roots(self):
        libc = ctypes.CDLL(None, use_errno=True)
        plain = self.workspace + "/swap"
        with open(plain, "w") as handle:
            handle.write("plain")
        os.symlink(self.secret, plain + ".link")
        if libc.renameat2(AT_FDCWD, plain.encode(), AT_FDCWD, (plain + ".link").encode(), RENAME_EXCHANGE) != 0:
            self.skipTest("renameat2(RENAME_EXCHANGE) is not supported here")
        stop = threading.Event()

        def swap():
            while not stop.is_set():
                libc.renameat2(AT_FDCWD, plain.encode(), AT_FDCWD, (plain + ".link").encode(), RENAME_EXCHANGE)

        swapper = threading.Thread(target=swap)
        swapper.start()
        kinds = set()
        try:
            for _ in range(2000):
                reply = self.op("read", plain)
                if "error" in reply:
                    kinds.add(reply["error"]["kind"])
                else:
                    self.assertEqual(base64.b64decode(reply["content_base64"]), b"plain")
                    kinds.add("read")
                reply = self.write(plain, "plain")
                kinds.add(self.kind(reply) or "written")
        finally:
            stop.set()
            swapper.join()
        with open(self.secret) as handle:
            self.assertEqual(handle.read(), "host secret")
        self.assertIn("read", kinds)
        self.assertTrue(kinds <= {"read", "written", "symlink_escape", "changed", "not_found"}, kinds)


if __name__ == "__main__":
    unittest.main()
