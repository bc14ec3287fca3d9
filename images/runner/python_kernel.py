"""The Python kernel: a long-lived interpreter the runner starts in a session
(and in a pooled Python container), which runs each request's file in one
persistent `__main__` namespace, so variables, imports and functions live on
between executes.

  runner -> kernel  one JSON line per request on the control pipe
                    (SANDBOX_CTL_FD): {"path", "stdin_path", "env"}
  kernel -> runner  on the done pipe (SANDBOX_DONE_FD): {"ready": true}
                    once, when loaded; per request {"started": true} when
                    its code runs (an interrupt from then on stops it), then
                    {"exit_code", "lost"}

An interrupt (SIGINT, the runner's timeout or cancel) raises
KeyboardInterrupt in the running code, once; between cells it is ignored: it
was meant for a cell that has just ended, and must neither end the kernel
nor cost it the next cell's line.

The code's output goes to the kernel's own stdout and stderr (pipes the
runner captures). The kernel runs the code, so everything it writes on these
pipes is untrusted: the runner parses the done line defensively.
"""

import json
import os
import signal
import sys
import traceback


def python_kernel():
    """The Python kernel: runs each request's file in one persistent namespace."""
    import builtins

    import threading as threads
    import types

    control = os.fdopen(int(os.environ.pop("SANDBOX_CTL_FD")), "rb")
    done_fd = int(os.environ.pop("SANDBOX_DONE_FD"))
    # User code runs in a real `__main__` module, so pickling and
    # multiprocessing find what it defines.
    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main_module
    namespace = main_module.__dict__
    sys.argv = ["main.py"]
    import fcntl

    # Copies of the output pipes, out of the code's usual way, to reopen
    # stdout and stderr if a cell closes them.
    saved_output = {fd: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 200) for fd in (1, 2)}
    armed = [False]

    def interrupt(_signal_number, _frame):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    os.write(done_fd, b'{"ready": true}\n')
    while True:
        try:
            line = control.readline()
        except KeyboardInterrupt:
            continue
        if not line:
            return
        exit_code = 0
        try:
            request = json.loads(line)
            os.environ.update(request.get("env") or {})
            path = request["path"]
            with open(path, encoding="utf-8") as handle:
                code = handle.read()
            if sys.stdin is not None and sys.stdin is not sys.__stdin__:
                sys.stdin.close()
            sys.stdin = open(request.get("stdin_path") or os.devnull, encoding="utf-8")
            namespace["__file__"] = path
            refresh_package_paths()
            compiled = compile(code, path, "exec")
            armed[0] = True
            try:
                os.write(done_fd, b'{"started": true}\n')
                exec(compiled, namespace)
                # Like the end of a program: wait for threads the code started.
                for thread in threads.enumerate():
                    if thread is not threads.main_thread() and not thread.daemon:
                        thread.join()
            finally:
                armed[0] = False
        except SystemExit as stop:
            exit_code = exit_status(stop.code)
        except BaseException as error:  # the user's exception, or an interrupt
            exit_code = 130 if isinstance(error, KeyboardInterrupt) else 1
            print_user_traceback(error)
        if exit_code != 130:
            # Figures drawn before an error are returned too (not with the next cell).
            try:
                save_figures()
            except KeyboardInterrupt:
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        lost = reopen_closed_output(saved_output)
        os.write(done_fd, (json.dumps({"exit_code": exit_code, "lost": lost}) + "\n").encode())


def reopen_closed_output(saved):
    """Reopens stdout and stderr when the code closed them; returns the
    names of those it had closed."""
    lost = []
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            lost.append(name)
            try:
                os.dup2(saved[fd], fd)
            except OSError:
                pass
    return lost


def save_figures():
    """Saves matplotlib figures still open at the end of a cell to /outputs."""
    if "matplotlib.pyplot" not in sys.modules:
        return
    try:
        import sandbox_mpl

        sandbox_mpl.save_open_figures()
    except Exception as error:  # a broken figure must not fail the cell
        print("could not save figures: %s" % error, file=sys.stderr)


def refresh_package_paths():
    """Makes packages installed since the last cell importable. Only the
    PYTHONPATH entries (/packages/python) are refreshed: a full
    importlib.invalidate_caches() costs ~15 ms on its first call."""
    for entry in filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        finder = sys.path_importer_cache.get(entry)
        if finder is None:
            sys.path_importer_cache.pop(entry, None)
        else:
            finder.invalidate_caches()


def exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def print_user_traceback(error):
    """Prints the traceback without the kernel's own frame."""
    tb = error.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_name == "python_kernel":
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb)


if __name__ == "__main__":
    python_kernel()
