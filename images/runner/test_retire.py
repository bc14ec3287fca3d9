"""A retired runner ends every other process of its container: tested in a
PID namespace of its own (as in a container: init is PID 1, the runner its
child), which needs root and util-linux's unshare."""

import os
import shutil
import subprocess
import sys
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

# Init (PID 1 of the namespace) starts processes the way code would leave
# them (plain, in their own session, a process tree), forks the runner's
# stand-in, and reaps until it ends.
SCENARIO = textwrap.dedent(
    """
    import os, subprocess, sys
    sys.path.insert(0, %r)
    from runner import end_other_processes, live_processes
    left = [subprocess.Popen(["sleep", "300"], start_new_session=session) for session in (False, True)]
    left.append(subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True))
    child = os.fork()
    if child == 0:
        ended = end_other_processes()
        others = [pid for pid in live_processes() if pid not in (1, os.getpid())]
        print(ended, others, flush=True)
        os._exit(0 if ended and not others else 1)
    while True:
        pid, status = os.wait()
        if pid == child:
            sys.exit(os.waitstatus_to_exitcode(status))
    """
) % HERE


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare (a PID namespace)")
class RetireTest(unittest.TestCase):
    def test_every_process_but_init_and_the_runner_ends(self):
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", SCENARIO],
            capture_output=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 0, done)
        self.assertEqual(done.stdout.strip(), b"True []", done)


if __name__ == "__main__":
    unittest.main()
